"""Pieces every source's agents share: the context, headers, dead letters, retrying warehouse writes.

Delivery: each agent takes a batch, finishes all its effects (records delivered to the next topic, or
rows accepted by the warehouse), and only then lets Faust ack the batch; offsets are committed after
that. Redelivery is harmless because every writer is idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import faust
import orjson

from streams.config import TOPIC_LANDED, Settings, topic_config
from streams.enrich.metric_dictionary import MetricDictionary
from streams.enrich.service_ping import parse_timestamp, stable_id
from streams.warehouse import Warehouse

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

    async def send_dead_letter(self, event: faust.EventT, source: str, stage: str, reason: str) -> Any:
        """Queue the DLQ record; returns the delivery future to await before the batch is acked."""
        value, headers = dead_letter(event, source, stage, reason)
        encoded = {name: text.encode() for name, text in headers.items()}
        return await self.dlq.send(key=source.encode(), value=value, headers=encoded)

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


def event_headers(event: faust.EventT) -> dict[str, str]:
    raw = event.headers or {}
    items = raw.items() if isinstance(raw, dict) else raw
    return {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in items}


def received_at(headers: dict[str, str]) -> datetime:
    try:
        return parse_timestamp(headers["received_at"])
    except (KeyError, ValueError):
        return datetime.now(UTC)  # published straight to the topic by another producer


def as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return value.encode() if isinstance(value, str) else orjson.dumps(value)


H_PART = "part"  # dead-letter header: which event of a multi-event record failed


def dead_letter(event: faust.EventT, source: str, stage: str, reason: str) -> tuple[bytes, dict[str, str]]:
    """The DLQ record: original bytes as the value, the why and where as headers."""
    message = event.message
    headers = event_headers(event)
    letter_headers = {
        "source": source, "stage": stage, "reason": reason[:2000],
        "received_at": headers.get("received_at") or datetime.now(UTC).isoformat(),
        "failed_at": datetime.now(UTC).isoformat(),
        "kafka_topic": message.topic, "kafka_partition": str(message.partition), "kafka_offset": str(message.offset),
    }
    return as_bytes(event.value), letter_headers


def letter_row(value: bytes, headers: dict[str, str]) -> dict:
    """A raw_dead_letter row. Its id is the failed record's Kafka position (and the failed part of it, when a
    record holds several events), so a redelivery replaces it."""
    topic = headers.get("kafka_topic", "")
    partition, offset = headers.get("kafka_partition", "0"), headers.get("kafka_offset", "0")
    part = [headers[H_PART]] if H_PART in headers else []
    return {
        "dead_letter_id": stable_id(topic, partition, offset, headers.get("stage", ""), *part),
        "source": headers.get("source", "unknown"), "stage": headers.get("stage", "unknown"),
        "reason": headers.get("reason", ""), "original": value,
        "received_at": headers.get("received_at") or datetime.now(UTC).isoformat(),
        "failed_at": headers.get("failed_at") or datetime.now(UTC).isoformat(),
        "kafka_topic": topic, "kafka_partition": int(partition), "kafka_offset": int(offset),
    }


def warehouse_is_up(warehouse: Warehouse) -> bool:
    try:
        return warehouse.query("SELECT 1").scalar() == 1
    except Exception:
        return False


async def write_with_retry(write: Callable[[], Any], what: str, warehouse: Warehouse) -> Any:
    """Run a warehouse write in a thread; retry while the warehouse itself is failing.

    The batch is not acked until the write succeeds, so nothing is lost while the warehouse is down.
    If the warehouse is up and still refuses the rows, raise PoisonBatch so the caller can isolate
    the bad records instead of blocking the partition forever.
    """
    delay = 0.5
    while True:
        try:
            return await asyncio.to_thread(write)
        except Exception as exc:
            if await asyncio.to_thread(warehouse_is_up, warehouse):
                raise PoisonBatch(f"{what}: {exc}") from exc
            log.error("writing %s failed (%s); warehouse down, retrying in %.1f s", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)


async def sink_batches(ctx: AgentContext, stream: Any, source: str, write: Callable[[list[Any]], Any],
                       batch_size: int, within: float) -> None:
    """The loop every sink agent runs: decode a batch, write it, isolate records the warehouse refuses."""
    async for events in stream.take_events(batch_size, within=within):
        try:
            await write([orjson.loads(e.value) for e in events])
        except PoisonBatch:
            for event in events:
                try:
                    await write([orjson.loads(event.value)])
                except PoisonBatch as exc:
                    await (await ctx.send_dead_letter(event, source, "sink", str(exc)))
