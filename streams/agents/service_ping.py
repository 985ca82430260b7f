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

from streams import sink
from streams.agents.common import (
    AgentContext,
    Rejected,
    as_bytes,
    event_headers,
    received_at,
    sink_batches,
    write_with_retry,
)
from streams.config import TOPIC_NORMALIZED_SERVICE_PING, TOPIC_RAW_SERVICE_PING
from streams.enrich.metric_dictionary import MetricDictionary
from streams.enrich.service_ping import normalize_ping, parse_timestamp, ping_id_for, stable_id, validation_errors

log = logging.getLogger(__name__)

CONSUMED_TOPICS = [TOPIC_RAW_SERVICE_PING, TOPIC_NORMALIZED_SERVICE_PING]


@dataclass
class ServicePingNormalizer:
    """Raw record -> normalized record (pure; raises Rejected for anything that cannot be used)."""

    dictionary: MetricDictionary

    def __call__(self, value: bytes, headers: dict[str, str], partition: int, offset: int) -> dict:
        kind = headers.get("kind", "ping")
        arrived = received_at(headers)
        try:
            document = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise Rejected("validate", f"not valid JSON: {exc}") from exc
        if kind == "error":
            return {"kind": "error", "report": error_report(document, arrived)}
        if kind == "metadata":
            return {"kind": "metadata", "report": timing_report(document, arrived)}
        errors = validation_errors(document)
        if errors:
            raise Rejected("validate", "schema: " + "; ".join(errors))
        try:
            record = normalize_ping(document, self.dictionary, ping_id_for(document, value), arrived)
        except ValueError as exc:
            raise Rejected("normalize", str(exc)) from exc
        record.update(kind="ping", raw=value.decode(), source={"partition": partition, "offset": offset})
        return record


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

    @ctx.app.agent(raw_pings, name="normalize_service_ping")
    async def normalize_service_ping(stream: Any) -> None:
        async for events in stream.take_events(settings.ping_batch_size, within=0.5):
            pending = []
            for event in events:
                message = event.message
                try:
                    record = normalize(as_bytes(event.value), event_headers(event), message.partition, message.offset)
                except Rejected as exc:
                    pending.append(await ctx.send_dead_letter(event, "service_ping", exc.stage, exc.reason))
                    continue
                except Exception as exc:  # a bug must not block the partition: park the record, keep going
                    log.exception("normalizing a ping failed")
                    pending.append(await ctx.send_dead_letter(event, "service_ping", "normalize", repr(exc)))
                    continue
                pending.append(await normalized_pings.send(key=message.key, value=orjson.dumps(record)))
            await asyncio.gather(*pending)  # delivered before this batch is acked

    async def write(records: list[dict]) -> None:
        counts = await write_with_retry(lambda: write_service_ping_batch(warehouse, records), "service pings",
                                        warehouse)
        await ctx.announce_landed("service_ping", [("instance", r["ping"]["installation_id"]) for r in records
                                                   if r["kind"] == "ping"])
        ctx.stats.add(**counts)
        log.info("stored %s", counts)

    @ctx.app.agent(normalized_pings, name="service_ping_sink")
    async def service_ping_sink(stream: Any) -> None:
        await sink_batches(ctx, stream, "service_ping", write, settings.ping_batch_size, settings.sink_batch_seconds)

    @ctx.app.task
    async def publish_dictionary() -> None:
        await asyncio.to_thread(sink.load_metric_dictionary, warehouse, ctx.dictionary, datetime.now(UTC))


def write_service_ping_batch(warehouse: Any, records: list[dict]) -> dict[str, int]:
    counts = sink.write_pings(warehouse, [r for r in records if r["kind"] == "ping"])
    counts["error_reports"] = sink.write_ping_errors(warehouse, [r["report"] for r in records if r["kind"] == "error"])
    counts["timing_reports"] = sink.write_metric_timings(
        warehouse, [r["report"] for r in records if r["kind"] == "metadata"])
    return counts
