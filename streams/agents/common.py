"""Pieces every source's agents share: the context, sending and storing dead letters, retrying warehouse writes.

The record contract (headers, kinds, the dead-letter builder, normalized record types) is streams/records.py.

Delivery: each agent takes a batch, finishes all its effects (records delivered to the next topic, or
rows accepted by the warehouse), and only then lets Faust ack the batch; offsets are committed after
that. Redelivery is harmless because every writer is idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import faust
import orjson

from streams import metrics
from streams.config import TOPIC_LANDED, Settings, topic_config
from streams.enrich.metric_dictionary import MetricDictionary
from streams.enrich.personal import redact_bytes, redact_reason
from streams.records import (
    H_FAILED_AT,
    H_KAFKA_OFFSET,
    H_KAFKA_PARTITION,
    H_KAFKA_TOPIC,
    H_PART,
    H_REASON,
    H_RECEIVED_AT,
    H_SOURCE,
    H_STAGE,
    Position,
    as_bytes,
    dead_letter,
    event_headers,
    parse_timestamp,
    stable_id,
)
from streams.warehouse import Warehouse, is_data_error

log = logging.getLogger(__name__)


class Rejected(Exception):
    """A record that cannot be processed: it goes to the dead-letter topic with this reason."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(reason)
        self.stage = stage
        self.reason = reason


class PoisonBatch(Exception):
    """The warehouse is up but refused these rows: retrying will not help."""


@dataclass
class SinkStats:
    """What the sinks stored in this process (for logs and tests)."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, **counts: int) -> None:
        metrics.observe_counts(counts)
        for name, value in counts.items():
            self.counts[name] = self.counts.get(name, 0) + value


@dataclass
class AgentContext:
    """What a source needs to register its agents: the app, its settings, the warehouse, the DLQ."""

    app: faust.App
    settings: Settings
    warehouse: Warehouse
    dictionary: MetricDictionary
    stats: SinkStats
    dlq: faust.TopicT
    _landed: faust.TopicT | None = field(default=None, repr=False)

    def topic(self, name: str, buffered: int | None = None) -> faust.TopicT:
        """`buffered`: records held in memory per agent before fetching pauses (default: Faust's 4,096;
        pass a small number for topics of big records)."""
        return self.app.topic(self.settings.topic(name), value_type=bytes, config=topic_config(name),
                              maxsize=buffered)

    async def send_dead_letter(self, event: faust.EventT, source: str, stage: str, reason: str,
                               value: bytes | None = None, part: int | None = None) -> Any:
        """Queue the DLQ record; returns the delivery future to await before the batch is acked.

        `value`: the bytes to keep, by default the event's. Neither they nor the reason keep a user id or an IP in
        clear (streams.enrich.personal), whoever published the failed record. `part`: the failed event's index in a
        multi-event record."""
        headers = dead_letter(source, stage, redact_reason(reason[:2000]), event_position(event, part),
                              event_headers(event).get(H_RECEIVED_AT))
        kept = redact_bytes(as_bytes(event.value)) if value is None else value
        return await self.dlq.send(key=source.encode(), value=kept, headers=headers)

    async def announce_landed(self, source: str, scopes: Iterable[tuple[str, str]]) -> None:
        """Tell the alert evaluator that `source` stored data for these (scope_type, scope_id) scopes.

        Call it after the write succeeded and before the batch is acked (it waits for the broker), e.g.
        `await ctx.announce_landed("service_ping", [("instance", installation_id), ...])`. One small record
        per distinct scope on usage.landed, keyed by scope, so one scope is evaluated in order.
        """
        if self._landed is None:
            self._landed = self.topic(TOPIC_LANDED)
        landed_at = datetime.now(UTC).isoformat()
        pending = [
            await self._landed.send(key=f"{scope_type}:{scope_id}".encode(), value=orjson.dumps(
                {"source": source, "scope_type": scope_type, "scope_id": scope_id, "landed_at": landed_at}))
            for scope_type, scope_id in dict.fromkeys(scopes) if scope_id
        ]
        await asyncio.gather(*pending)


def event_position(event: faust.EventT, part: int | None = None) -> Position:
    message = event.message
    position: Position = {"topic": message.topic, "partition": message.partition, "offset": message.offset}
    if part is not None:
        position["part"] = part
    return position


def letter_row(value: bytes, headers: dict[str, str]) -> dict:
    """A raw_dead_letter row. Its id is the failed record's Kafka position (and the failed part of it, when a
    record holds several events), so a redelivery replaces it. Headers come from any producer: a field that is
    not what we write (a partition that is not a number, a time that does not parse) is kept as text in the
    reason and replaced by a neutral value, never allowed to stop the dead-letter sink. Records other producers put
    on the DLQ are stored with ids pseudonymized and IPs removed, as ours are."""
    topic = headers.get(H_KAFKA_TOPIC, "")
    partition, offset = headers.get(H_KAFKA_PARTITION, "0"), headers.get(H_KAFKA_OFFSET, "0")
    part = [headers[H_PART]] if H_PART in headers else []
    reason = headers.get(H_REASON, "")
    problems = [f"{name}={headers.get(name)!r}" for name, ok in (
        (H_KAFKA_PARTITION, _is_int(partition, 2**31)), (H_KAFKA_OFFSET, _is_int(offset, 2**63)),
        (H_RECEIVED_AT, _is_time(headers.get(H_RECEIVED_AT))), (H_FAILED_AT, _is_time(headers.get(H_FAILED_AT))))
        if not ok and headers.get(name) is not None]
    if problems:
        reason = f"{reason} [unusable dead-letter headers: {', '.join(problems)}]"[:4000]
    now = datetime.now(UTC).isoformat()
    return {
        "dead_letter_id": stable_id(topic, partition, offset, headers.get(H_STAGE, ""), *part),
        "source": headers.get(H_SOURCE, "unknown"), "stage": headers.get(H_STAGE, "unknown"),
        "reason": redact_reason(reason), "original": redact_bytes(value),
        "received_at": headers[H_RECEIVED_AT] if _is_time(headers.get(H_RECEIVED_AT)) else now,
        "failed_at": headers[H_FAILED_AT] if _is_time(headers.get(H_FAILED_AT)) else now,
        "kafka_topic": topic, "kafka_partition": int(partition) if _is_int(partition, 2**31) else 0,
        "kafka_offset": int(offset) if _is_int(offset, 2**63) else 0,
    }


def _is_int(text: str, limit: int) -> bool:
    return text.isascii() and text.isdigit() and int(text) < limit


def _is_time(text: str | None) -> bool:
    try:
        parse_timestamp(text or "")
    except (ValueError, TypeError, OverflowError):
        return False
    return True


def warehouse_is_up(warehouse: Warehouse) -> bool:
    """The warehouse answers queries (it may still refuse writes: a full or read-only disk)."""
    try:
        return warehouse.query("SELECT 1").scalar() == 1
    except Exception:
        return False


class WarehouseHealth:
    """Whether this process's warehouse writes pass, for logs and the worker's /health page.

    Logs a bounded number of lines while writes fail: one when the fault starts, one every REPORT_SECONDS while it
    lasts, one when it ends."""

    REPORT_SECONDS = 30.0

    def __init__(self) -> None:
        self.failing_since: float | None = None
        self.last_error = ""
        self.failed_writes = 0
        self._reported_at = 0.0

    @property
    def ok(self) -> bool:
        return self.failing_since is None

    def failed(self, what: str, exc: BaseException, retry_in: float) -> None:
        now = time.monotonic()
        self.failed_writes += 1
        self.last_error = f"{what}: {exc}"[:500]
        if self.failing_since is None:
            self.failing_since = now
        elif now - self._reported_at < self.REPORT_SECONDS:
            return
        self._reported_at = now
        log.error("warehouse write failing for %.0f s (%d failed attempts); holding offsets, retrying in %.1f s: %s",
                  now - self.failing_since, self.failed_writes, retry_in, self.last_error)

    def succeeded(self) -> None:
        if self.failing_since is not None:
            log.warning("warehouse writes pass again after %.1f s (%d failed attempts)",
                        time.monotonic() - self.failing_since, self.failed_writes)
            self.failing_since, self.failed_writes, self.last_error = None, 0, ""

    def as_dict(self) -> dict[str, Any]:
        failing = None if self.failing_since is None else round(time.monotonic() - self.failing_since, 1)
        return {"warehouse_writes": "ok" if self.ok else "failing", "failing_seconds": failing,
                "failed_attempts": self.failed_writes, "last_error": self.last_error}


WAREHOUSE_HEALTH = WarehouseHealth()  # one per process: every sink of the worker shares its warehouse
RETRY_MAX_SECONDS = 30.0


def retry_delay(attempt: int) -> float:
    """Exponential backoff with full jitter (0.25 s, 0.5 s, ... capped at 30 s): sinks that failed together do not
    retry together."""
    return random.uniform(0.1, min(RETRY_MAX_SECONDS, 0.25 * 2 ** min(attempt, 8)))


async def write_with_retry(write: Callable[[], Any], what: str, warehouse: Warehouse) -> Any:
    """Run a warehouse write in a thread; retry until it passes unless the rows themselves are refused.

    The batch is not acked until the write succeeds, so nothing is lost while the warehouse is down, full or
    read-only. Only a data error (streams.warehouse.is_data_error) raises PoisonBatch, so the caller can isolate
    the bad records instead of blocking the partition. Every write must be safe to repeat (the writers are
    idempotent), because a failed attempt may have stored part of its rows.
    """
    attempt = 0
    while True:
        started = time.monotonic()
        try:
            result = await asyncio.to_thread(write)
        except Exception as exc:
            if is_data_error(exc):
                raise PoisonBatch(f"{what}: {exc}") from exc
            attempt += 1
            delay = retry_delay(attempt)
            WAREHOUSE_HEALTH.failed(what, exc, delay)
            await asyncio.sleep(delay)
            continue
        WAREHOUSE_HEALTH.succeeded()
        metrics.observe_insert(what, time.monotonic() - started)
        return result


async def sink_batches(ctx: AgentContext, stream: Any, source: str, write: Callable[[list[Any]], Any],
                       batch_size: int, within: float) -> None:
    """The loop every sink agent runs: decode a batch, write it, isolate records the warehouse refuses.

    A record that is not a normalized record of ours (another producer wrote to the topic) becomes a dead letter;
    the records around it are written."""
    async for events in stream.take_events(batch_size, within=within):
        decoded, letters = [], []
        for event in events:
            try:
                decoded.append((event, orjson.loads(event.value)))
            except (orjson.JSONDecodeError, TypeError) as exc:
                letters.append(await ctx.send_dead_letter(event, source, "sink", f"not a normalized record: {exc}"))
        await asyncio.gather(*letters)
        if not decoded:
            continue
        try:
            await write([record for _, record in decoded])
        except PoisonBatch:
            await _write_one_by_one(ctx, source, write, decoded)
        except Exception:  # a record of the wrong shape (write_with_retry retries every warehouse fault itself)
            log.exception("writing a %s batch failed; writing its records one by one", source)
            await _write_one_by_one(ctx, source, write, decoded)
        else:
            metrics.observe_stored(source, [record for _, record in decoded])


async def _write_one_by_one(ctx: AgentContext, source: str, write: Callable[[list[Any]], Any],
                            decoded: list[tuple[faust.EventT, Any]]) -> None:
    for event, record in decoded:
        try:
            await write([record])
        except PoisonBatch as exc:
            await (await ctx.send_dead_letter(event, source, "sink", str(exc)))
        except Exception as exc:  # JSON of the wrong shape, or a bug: park the record, keep the partition going
            await (await ctx.send_dead_letter(event, source, "sink", f"cannot write this record: {exc!r}"))
