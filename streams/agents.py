"""Faust agents: validate -> normalize -> enrich, then batched sinks into the warehouse.

Flow for Service Ping:
  usage.raw.service_ping --(normalize_service_ping)--> usage.normalized.service_ping --(sink)--> ClickHouse
                                   \\--> usage.dlq --(dead_letter_sink)--> raw_dead_letter

Delivery: each agent takes a batch, finishes all its effects (records delivered to the next topic,
or rows accepted by the warehouse), and only then lets Faust ack the batch; offsets are committed
after that. Redelivery is harmless because every writer is idempotent (streams/sink.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import faust
import orjson

from streams import sink
from streams.config import (
    MAX_MESSAGE_BYTES,
    TOPIC_DLQ,
    TOPIC_NORMALIZED_SERVICE_PING,
    TOPIC_RAW_SERVICE_PING,
    Settings,
    topic_config,
)
from streams.enrich.metric_dictionary import MetricDictionary
from streams.enrich.service_ping import (
    normalize_ping,
    parse_timestamp,
    ping_id_for,
    stable_id,
    validation_errors,
)
from streams.warehouse import Warehouse

log = logging.getLogger(__name__)

# Topics this app consumes: the consumer group's lag on them tells when everything has landed.
CONSUMED_TOPICS = [TOPIC_RAW_SERVICE_PING, TOPIC_NORMALIZED_SERVICE_PING, TOPIC_DLQ]


class Rejected(Exception):
    """A record that cannot be processed: it goes to the dead-letter topic with this reason."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(reason)
        self.stage = stage
        self.reason = reason


def _headers(event: faust.EventT) -> dict[str, str]:
    raw = event.headers or {}
    items = raw.items() if isinstance(raw, dict) else raw
    return {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in items}


def _received_at(headers: dict[str, str]) -> datetime:
    try:
        return parse_timestamp(headers["received_at"])
    except (KeyError, ValueError):
        return datetime.now(UTC)  # published straight to the topic by another producer


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return value.encode() if isinstance(value, str) else orjson.dumps(value)


def dead_letter(event: faust.EventT, source: str, stage: str, reason: str) -> tuple[bytes, dict[str, str]]:
    """The DLQ record: original bytes as the value, the why and where as headers."""
    message = event.message
    headers = _headers(event)
    letter_headers = {
        "source": source, "stage": stage, "reason": reason[:2000],
        "received_at": headers.get("received_at") or datetime.now(UTC).isoformat(),
        "failed_at": datetime.now(UTC).isoformat(),
        "kafka_topic": message.topic, "kafka_partition": str(message.partition), "kafka_offset": str(message.offset),
    }
    return _as_bytes(event.value), letter_headers


# ---------------------------------------------------------------------------------------------------
# Pure per-record steps (testable without a broker)


@dataclass
class ServicePingNormalizer:
    dictionary: MetricDictionary

    def __call__(self, value: bytes, headers: dict[str, str], partition: int, offset: int) -> dict:
        kind = headers.get("kind", "ping")
        received_at = _received_at(headers)
        try:
            document = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise Rejected("validate", f"not valid JSON: {exc}") from exc
        if kind == "error":
            return {"kind": "error", "report": self.error_report(document, received_at)}
        if kind == "metadata":
            return {"kind": "metadata", "report": self.timing_report(document, received_at)}
        errors = validation_errors(document)
        if errors:
            raise Rejected("validate", "schema: " + "; ".join(errors))
        try:
            record = normalize_ping(document, self.dictionary, ping_id_for(document, value), received_at)
        except ValueError as exc:
            raise Rejected("normalize", str(exc)) from exc
        record.update(kind="ping", raw=value.decode(), source={"partition": partition, "offset": offset})
        return record

    @staticmethod
    def error_report(document: Any, received_at: datetime) -> dict:
        error = document.get("error") if isinstance(document, dict) else None
        if not isinstance(error, dict) or not error.get("uuid"):
            raise Rejected("validate", "error report needs {\"error\": {\"uuid\": ...}}")
        message = str(error.get("message") or "")
        elapsed = error.get("elapsed")
        reported = error.get("time")
        return {
            "report_id": stable_id(str(error["uuid"]), str(reported), message),
            "instance_uuid": str(error["uuid"]), "hostname": str(error.get("hostname") or ""),
            "version": str(error.get("version") or ""), "message": message,
            "elapsed_s": float(elapsed) if isinstance(elapsed, int | float) else None,
            "reported_at": _iso_or_none(reported), "received_at": received_at.isoformat(),
        }

    @staticmethod
    def timing_report(document: Any, received_at: datetime) -> dict:
        metadata = document.get("metadata") if isinstance(document, dict) else None
        if not isinstance(metadata, dict) or not metadata.get("uuid") or not isinstance(metadata.get("metrics"), list):
            raise Rejected("validate", "metadata report needs {\"metadata\": {\"uuid\": ..., \"metrics\": [...]}}")
        metrics = [
            {"metrics_path": str(m["name"]),
             "time_elapsed_s": float(m["time_elapsed"]) if isinstance(m.get("time_elapsed"), int | float) else None,
             "error": str(m.get("error") or "")}
            for m in metadata["metrics"] if isinstance(m, dict) and m.get("name")
        ]
        return {
            "report_id": stable_id(str(metadata["uuid"]), received_at.isoformat(), str(len(metrics))),
            "instance_uuid": str(metadata["uuid"]), "received_at": received_at.isoformat(), "metrics": metrics,
        }


def _iso_or_none(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_timestamp(value).isoformat()
    except ValueError:
        return None


def letter_row(value: bytes, headers: dict[str, str]) -> dict:
    topic, partition, offset = headers.get("kafka_topic", ""), headers.get("kafka_partition", "0"), \
        headers.get("kafka_offset", "0")
    return {
        "dead_letter_id": stable_id(topic, partition, offset, headers.get("stage", "")),
        "source": headers.get("source", "unknown"), "stage": headers.get("stage", "unknown"),
        "reason": headers.get("reason", ""), "original": value,
        "received_at": headers.get("received_at") or datetime.now(UTC).isoformat(),
        "failed_at": headers.get("failed_at") or datetime.now(UTC).isoformat(),
        "kafka_topic": topic, "kafka_partition": int(partition), "kafka_offset": int(offset),
    }


# ---------------------------------------------------------------------------------------------------
# Faust wiring


@dataclass
class SinkStats:
    pings: int = 0
    metric_rows: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class PoisonBatch(Exception):
    """The warehouse is up but refused these rows: retrying will not help."""


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


def faust_broker_url(bootstrap_servers: str) -> str:
    return ";".join(f"kafka://{host.strip()}" for host in bootstrap_servers.split(",") if host.strip())


def build_app(settings: Settings, bootstrap_servers: str, warehouse: Warehouse, dictionary: MetricDictionary,
              stats: SinkStats | None = None) -> faust.App:
    """A Faust app with the Service Ping agents. One app per process; the warehouse is owned by it."""
    stats = stats or SinkStats()
    app = faust.App(
        settings.app_id,
        broker=faust_broker_url(bootstrap_servers),
        store="memory://",
        value_serializer="raw",
        key_serializer="raw",
        topic_partitions=settings.topic_partitions,
        consumer_auto_offset_reset="earliest",
        producer_max_request_size=MAX_MESSAGE_BYTES,
        consumer_max_fetch_size=MAX_MESSAGE_BYTES,
        producer_acks=-1,
        broker_commit_interval=1.0,
        web_enabled=False,
        autodiscover=False,
        datadir=str(settings.data_dir / "faust"),
    )
    def topic(name: str) -> faust.TopicT:
        return app.topic(settings.topic(name), value_type=bytes, config=topic_config(name))

    raw_pings, normalized_pings, dlq = (topic(name) for name in CONSUMED_TOPICS)
    normalize = ServicePingNormalizer(dictionary)

    @app.agent(raw_pings, name="normalize_service_ping")
    async def normalize_service_ping(stream: Any) -> None:
        async for events in stream.take_events(100, within=0.5):
            pending = []
            for event in events:
                message = event.message
                try:
                    record = normalize(_as_bytes(event.value), _headers(event), message.partition, message.offset)
                except Rejected as exc:
                    value, headers = dead_letter(event, "service_ping", exc.stage, exc.reason)
                    pending.append(await dlq.send(key=b"service_ping", value=value, headers=headers))
                    continue
                pending.append(await normalized_pings.send(key=message.key, value=orjson.dumps(record)))
            await asyncio.gather(*pending)  # delivered before this batch is acked

    @app.agent(normalized_pings, name="service_ping_sink")
    async def service_ping_sink(stream: Any) -> None:
        async for events in stream.take_events(settings.sink_batch_size, within=settings.sink_batch_seconds):
            try:
                await write_service_ping_batch(warehouse, [orjson.loads(e.value) for e in events], stats)
            except PoisonBatch:
                for event in events:  # isolate the record(s) the warehouse refuses; store the rest
                    try:
                        await write_service_ping_batch(warehouse, [orjson.loads(event.value)], stats)
                    except PoisonBatch as exc:
                        value, headers = dead_letter(event, "service_ping", "sink", str(exc))
                        await (await dlq.send(key=b"service_ping", value=value, headers=headers))

    @app.agent(dlq, name="dead_letter_sink")
    async def dead_letter_sink(stream: Any) -> None:
        async for events in stream.take_events(500, within=1.0):
            rows = [letter_row(_as_bytes(event.value), _headers(event)) for event in events]
            stats.dead_letters += await write_with_retry(lambda rows=rows: sink.write_dead_letters(warehouse, rows),
                                                         "dead letters", warehouse)

    @app.task
    async def publish_dictionary() -> None:
        await asyncio.to_thread(sink.load_metric_dictionary, warehouse, dictionary, datetime.now(UTC))

    return app


async def write_service_ping_batch(warehouse: Warehouse, records: list[dict], stats: SinkStats) -> None:
    pings = [r for r in records if r["kind"] == "ping"]
    errors = [r["report"] for r in records if r["kind"] == "error"]
    timings = [r["report"] for r in records if r["kind"] == "metadata"]

    def write() -> dict[str, int]:
        counts = sink.write_pings(warehouse, pings)
        counts["error_reports"] = sink.write_ping_errors(warehouse, errors)
        counts["timing_reports"] = sink.write_metric_timings(warehouse, timings)
        return counts

    counts = await write_with_retry(write, "service pings", warehouse)
    stats.pings += counts["pings"]
    stats.metric_rows += counts["metric_rows"]
    stats.duplicates += counts["duplicates"]
    log.info("stored %s", counts)
