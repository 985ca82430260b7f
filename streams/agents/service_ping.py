"""Service Ping agents.

  usage.raw.service_ping --normalize_service_ping--> usage.normalized.service_ping --service_ping_sink--> ClickHouse
                                 \\--> usage.dlq (schema or parse failures, with the original bytes)
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from streams.agents.common import (
    AgentContext,
    Rejected,
    sink_batches,
    write_with_retry,
)
from streams.config import MAX_MESSAGE_BYTES, TOPIC_NORMALIZED_SERVICE_PING, TOPIC_RAW_SERVICE_PING
from streams.enrich.metric_dictionary import MetricDictionary
from streams.enrich.service_ping import normalize_ping, validation_errors
from streams.erase.subjects import ping_record_subjects, without_erased
from streams.records import (
    H_KIND,
    KIND_ERROR,
    KIND_METADATA,
    KIND_PING,
    PingRecord,
    PingReportRecord,
    as_bytes,
    event_headers,
    parse_timestamp,
    ping_id,
    received_at,
    stable_id,
)
from streams.warehouse import writers

log = logging.getLogger(__name__)

CONSUMED_TOPICS = [TOPIC_RAW_SERVICE_PING, TOPIC_NORMALIZED_SERVICE_PING]
# A normalized ping above this many bytes is cut into parts (a quarter of the topic's record limit: a normalized
# record is ~1.9x its raw ping, and the collector accepts 8 MiB pings).
PART_BYTES = MAX_MESSAGE_BYTES // 4


@dataclass
class ServicePingNormalizer:
    """Raw record -> normalized record (pure; raises Rejected for anything that cannot be used)."""

    dictionary: MetricDictionary

    def __call__(self, value: bytes, headers: dict[str, str], partition: int,
                 offset: int) -> PingRecord | PingReportRecord:
        kind = headers.get(H_KIND, KIND_PING)
        arrived = received_at(headers)
        try:
            document = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise Rejected("validate", f"not valid JSON: {exc}") from exc
        if kind == KIND_ERROR:
            return {"kind": KIND_ERROR, "report": error_report(document, arrived)}
        if kind == KIND_METADATA:
            return {"kind": KIND_METADATA, "report": timing_report(document, arrived)}
        errors = validation_errors(document)
        if errors:
            raise Rejected("validate", "schema: " + "; ".join(errors))
        try:
            record = normalize_ping(document, self.dictionary, ping_id(headers, document, value), arrived, value)
        except ValueError as exc:
            raise Rejected("normalize", str(exc)) from exc
        record.update(kind=KIND_PING, raw=value.decode(), source={"partition": partition, "offset": offset})
        return record


def encoded_parts(record: dict, limit: int = PART_BYTES) -> list[bytes]:
    """The normalized record as Kafka values: one, or a ping cut into parts of at most `limit` bytes each."""
    encoded = orjson.dumps(record)
    if len(encoded) <= limit or record.get("kind") != "ping":
        return [encoded]
    count = -(-len(encoded) // limit)
    while count <= len(record["metrics"]["metrics_path"]) + len(record["raw"]):
        parts = [orjson.dumps(part) for part in split_record(record, count)]
        if max(map(len, parts)) <= limit:
            return parts
        count *= 2  # uneven slices (long paths, escaped quotes in the raw JSON): cut finer
    raise Rejected("normalize", f"ping cannot be cut into records of {limit} bytes")


def split_record(record: dict, count: int) -> list[dict]:
    """A normalized ping as `count` parts: each has the ping, a contiguous slice of the metrics and of the raw
    JSON, and part = {index, count}. The sink writes the ping once its last part is stored (writers.write_pings)."""
    metrics, raw = record["metrics"], record["raw"]
    rows, chars = len(metrics["metrics_path"]), len(raw)
    attributes = {attribute_id: values for attribute_id, values in metrics["attributes"]}
    parts = []
    for index in range(count):
        low, high = rows * index // count, rows * (index + 1) // count
        piece = {name: metrics[name][low:high] for name in ("metrics_path", "metric_value", "error_value",
                                                             "attribute_id")}
        piece["attributes"] = [[i, attributes[i]] for i in set(piece["attribute_id"])]
        piece["flags"] = [[i - low, kind, text] for i, kind, text in metrics["flags"] if low <= i < high]
        parts.append(record | {"metrics": piece, "raw": raw[chars * index // count:chars * (index + 1) // count],
                               "part": {"index": index, "count": count}})
    return parts


def is_last_part(record: dict) -> bool:
    """A whole ping, or the last part of one (the one that completes it)."""
    part = record.get("part")
    return part is None or part["index"] == part["count"] - 1


def error_report(document: Any, arrived: datetime) -> dict:
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, dict) or not error.get("uuid"):
        raise Rejected("validate", 'error report needs {"error": {"uuid": ...}}')
    message = str(error.get("message") or "")
    elapsed = error.get("elapsed")
    reported = error.get("time")
    return {
        "report_id": stable_id(str(error["uuid"]), str(reported), message),
        "instance_uuid": str(error["uuid"]), "hostname": str(error.get("hostname") or ""),
        "version": str(error.get("version") or ""), "message": message,
        "elapsed_s": float(elapsed) if isinstance(elapsed, int | float) else None,
        "reported_at": _iso_or_none(reported), "received_at": arrived.isoformat(),
    }


def timing_report(document: Any, arrived: datetime) -> dict:
    metadata = document.get("metadata") if isinstance(document, dict) else None
    if not isinstance(metadata, dict) or not metadata.get("uuid") or not isinstance(metadata.get("metrics"), list):
        raise Rejected("validate", 'metadata report needs {"metadata": {"uuid": ..., "metrics": [...]}}')
    metrics = [
        {"metrics_path": str(m["name"]),
         "time_elapsed_s": float(m["time_elapsed"]) if isinstance(m.get("time_elapsed"), int | float) else None,
         "error": str(m.get("error") or "")}
        for m in metadata["metrics"] if isinstance(m, dict) and m.get("name")
    ]
    return {
        "report_id": stable_id(str(metadata["uuid"]), arrived.isoformat(), str(len(metrics))),
        "instance_uuid": str(metadata["uuid"]), "received_at": arrived.isoformat(), "metrics": metrics,
    }


def _iso_or_none(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_timestamp(value).isoformat()
    except ValueError:
        return None


def register(ctx: AgentContext) -> None:
    warehouse, settings = ctx.warehouse, ctx.settings
    # Pings are big (100 kB raw, more normalized): a few batches in memory per topic, not Faust's 4,096 records.
    raw_pings = ctx.topic(TOPIC_RAW_SERVICE_PING, buffered=4 * settings.ping_batch_size)
    normalized_pings = ctx.topic(TOPIC_NORMALIZED_SERVICE_PING, buffered=4 * settings.ping_batch_size)
    normalize = ServicePingNormalizer(ctx.dictionary)

    async def publish(event: Any) -> list[Any]:
        """One raw record -> its normalized record(s) queued for delivery, or its dead letter. Every failure of
        this one record (normalize, serialize, send) parks it with the reason; none escapes the agent."""
        message = event.message
        try:
            values = encoded_parts(
                normalize(as_bytes(event.value), event_headers(event), message.partition, message.offset))
        except Rejected as exc:
            return [await ctx.send_dead_letter(event, "service_ping", exc.stage, exc.reason)]
        except Exception as exc:  # a bug must not block the partition: park the record, keep going
            log.exception("normalizing a ping failed")
            return [await ctx.send_dead_letter(event, "service_ping", "normalize", repr(exc))]
        sent = []
        try:
            for value in values:  # parts in order, on the raw record's key: consecutive on one partition
                sent.append(await normalized_pings.send(key=message.key, value=value))
        except Exception as exc:
            log.exception("publishing a normalized ping failed")
            return sent + [await ctx.send_dead_letter(event, "service_ping", "normalize", f"publish: {exc!r}")]
        return sent

    @ctx.app.agent(raw_pings, name="normalize_service_ping")
    async def normalize_service_ping(stream: Any) -> None:
        async for events in stream.take_events(settings.ping_batch_size, within=0.5):
            pending = [(event, await publish(event)) for event in events]
            for event, futures in pending:  # delivered before this batch is acked
                try:
                    await asyncio.gather(*futures)
                except Exception as exc:  # the broker refused this record: park it, the others stand
                    log.exception("delivering a normalized ping failed")
                    await (await ctx.send_dead_letter(event, "service_ping", "normalize", f"delivery: {exc!r}"))

    async def write(records: list[dict]) -> None:
        counts = await write_with_retry(lambda: write_service_ping_batch(warehouse, records), "service pings",
                                        warehouse)
        await ctx.announce_landed("service_ping", [("instance", r["ping"]["installation_id"]) for r in records
                                                   if r["kind"] == "ping" and is_last_part(r)])
        ctx.stats.add(**counts)
        log.info("stored %s", counts)

    @ctx.app.agent(normalized_pings, name="service_ping_sink")
    async def service_ping_sink(stream: Any) -> None:
        await sink_batches(ctx, stream, "service_ping", write, settings.ping_batch_size, settings.sink_batch_seconds)

    @ctx.app.task
    async def publish_dictionary() -> None:
        await asyncio.to_thread(writers.load_metric_dictionary, warehouse, ctx.dictionary, datetime.now(UTC))


def write_service_ping_batch(warehouse: Any, records: list[dict]) -> dict[str, int]:
    records = without_erased(warehouse, records, ping_record_subjects)  # README "Erasure"
    counts = writers.write_pings(warehouse, [r for r in records if r["kind"] == KIND_PING])
    counts["error_reports"] = writers.write_ping_errors(
        warehouse, [r["report"] for r in records if r["kind"] == KIND_ERROR])
    counts["timing_reports"] = writers.write_metric_timings(
        warehouse, [r["report"] for r in records if r["kind"] == KIND_METADATA])
    return counts
