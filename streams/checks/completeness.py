"""Completeness against Kafka: every offset of a raw topic up to the log end is landed or dead-lettered.

Per partition, an offset is accounted for when
  - a dead letter names it (raw_dead_letter.kafka_topic/partition/offset: the normalizer rejected it, or for
    Snowplow one bad event of the request or an event_id conflict), or
  - the warehouse stores it by position (raw_service_ping.kafka_partition/offset; for Snowplow, the position of the
    request record on fct_behavior_structured_event: one landed event accounts for its record), or
  - the record, read back from Kafka, has an identity the warehouse holds: a ping's ping_id (a resent ping lands
    once, so its second offset is accounted by content), an error or metadata report's report_id, a Seat Link's
    seat_link_id, a version check's check_id, any event_id of a Snowplow request (a tracker's retry lands nothing
    new: its events are stored from the first request). Only offsets not accounted by position are read back, or
  - the record names an erased subject (streams/erase/: its rows were deleted on purpose and the sinks drop it).
The result per partition: "complete through offset N (time T)", N the last offset of the gap-free prefix. Offsets
after a gap while the worker's group still has lag on the source's topics are in flight (warn); a gap while the group
has no lag is data that was accepted and never landed (fail).
"""

from __future__ import annotations

import asyncio
import functools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.checks.spec import PASS, WARN, Check, Result, outcome
from streams.config import (
    TOPIC_DLQ,
    TOPIC_NORMALIZED_SEAT_LINK,
    TOPIC_NORMALIZED_SERVICE_PING,
    TOPIC_NORMALIZED_SNOWPLOW,
    TOPIC_NORMALIZED_VERSION_CHECK,
    TOPIC_RAW_SEAT_LINK,
    TOPIC_RAW_SERVICE_PING,
    TOPIC_RAW_SNOWPLOW,
    TOPIC_RAW_VERSION_CHECK,
    Settings,
)
from streams.erase.subjects import ErasureList, letter_subjects, load_erasure_list
from streams.kafka.admin import OffsetProbe
from streams.warehouse import Warehouse

Identity = tuple[str, str, int | str]  # table, id column, id


def _headers(record: object) -> dict[str, str]:
    return {k: (v or b"").decode("utf-8", errors="replace") for k, v in getattr(record, "headers", None) or []}


def service_ping_identity(record: object) -> list[Identity]:
    from streams.agents.service_ping import error_report, timing_report
    from streams.records import H_KIND, KIND_ERROR, KIND_METADATA, KIND_PING, ping_id, received_at

    value, headers = record.value, _headers(record)  # type: ignore[attr-defined]
    document = orjson.loads(value)
    kind = headers.get(H_KIND, KIND_PING)
    if kind == KIND_ERROR:
        return [("fct_ping_error", "report_id", error_report(document, received_at(headers))["report_id"])]
    if kind == KIND_METADATA:
        return [("fct_ping_metric_timing", "report_id", timing_report(document, received_at(headers))["report_id"])]
    return [("fct_ping_instance", "ping_id", ping_id(headers, document, value))]


def seat_link_identity(record: object) -> list[Identity]:
    from streams.agents.seat_link import normalize

    return [("fct_seat_link", "seat_link_id", normalize(record.value, _headers(record))["seat_link_id"])]  # type: ignore


def version_check_identity(record: object) -> list[Identity]:
    from streams.agents.version_check import check_id_for

    message = SimpleNamespace(topic=record.topic, partition=record.partition, offset=record.offset)  # type: ignore
    return [("fct_version_check", "check_id", check_id_for(_headers(record), message))]


@functools.cache
def _snowplow_normalizer() -> object:
    from streams.agents.snowplow import SnowplowNormalizer
    from streams.enrich.iglu import Registry
    from streams.enrich.pseudonym import hash_key

    return SnowplowNormalizer(Registry.from_dir(), hash_key())


def snowplow_identity(record: object) -> list[Identity]:
    """The event ids of a request record, as the normalizer derives them (also for events without an eid)."""
    source = {"topic": record.topic, "partition": record.partition, "offset": record.offset}  # type: ignore
    events = _snowplow_normalizer().records(record.value, _headers(record), source)  # type: ignore
    return [("fct_behavior_structured_event", "event_id", e["row"]["event_id"]) for e in events if isinstance(e, dict)]


@dataclass(frozen=True)
class Accounting:
    """How a raw topic's offsets are accounted for."""

    normalized_topic: str
    identity: Callable[[object], list[Identity]]
    offset_table: str | None = None  # a table keeping kafka_partition / kafka_offset of this topic
    source: str = ""  # the dead-letter source name: the subjects an erasure may have removed (erase.letter_subjects)


ACCOUNTING = {
    TOPIC_RAW_SERVICE_PING: Accounting(TOPIC_NORMALIZED_SERVICE_PING, service_ping_identity, "raw_service_ping",
                                       "service_ping"),
    TOPIC_RAW_SEAT_LINK: Accounting(TOPIC_NORMALIZED_SEAT_LINK, seat_link_identity, source="seat_link"),
    TOPIC_RAW_VERSION_CHECK: Accounting(TOPIC_NORMALIZED_VERSION_CHECK, version_check_identity,
                                        source="version_check"),
    TOPIC_RAW_SNOWPLOW: Accounting(TOPIC_NORMALIZED_SNOWPLOW, snowplow_identity, "fct_behavior_structured_event",
                                   "snowplow"),
}


def _positions(warehouse: Warehouse, topic: str, accounting: Accounting) -> dict[int, set[int]]:
    """Offsets per partition the warehouse names: dead letters of the topic, and stored positions."""
    found: dict[int, set[int]] = defaultdict(set)
    queries = ["SELECT kafka_partition, kafka_offset FROM raw_dead_letter FINAL WHERE kafka_topic = {topic:String}"]
    if accounting.offset_table:
        queries.append(f"SELECT DISTINCT kafka_partition, kafka_offset FROM {accounting.offset_table} FINAL "
                       "WHERE kafka_offset >= 0")
    for sql in queries:
        for partition, offset in warehouse.query(sql, {"topic": topic}).rows:
            found[int(partition)].add(int(offset))
    return found


def _erased(erasures: ErasureList, source: str, records: dict[int, object]) -> set[int]:
    """Offsets whose record names an erased user, namespace or instance (nothing of it may land)."""
    if not erasures.digests or not source:
        return set()
    return {offset for offset, record in records.items()
            if erasures.erased(letter_subjects(source, record.value))}  # type: ignore[attr-defined]


def _runs(offsets: list[int]) -> list[tuple[int, int]]:
    """Sorted offsets -> (first, last) runs of consecutive offsets."""
    runs: list[tuple[int, int]] = []
    for offset in offsets:
        if runs and offset == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], offset)
        else:
            runs.append((offset, offset))
    return runs


async def _read(consumer: AIOKafkaConsumer, tp: TopicPartition, offsets: list[int]) -> dict[int, object]:
    """The records at these offsets (compacted or deleted ones are simply absent)."""
    records: dict[int, object] = {}
    for first, last in _runs(offsets):
        consumer.seek(tp, first)
        position = first
        while position <= last:
            batch = (await consumer.getmany(tp, timeout_ms=2000)).get(tp, [])
            if not batch:
                break
            for record in batch:
                if first <= record.offset <= last:
                    records[record.offset] = record
                position = record.offset + 1
    return records


def _stored(warehouse: Warehouse, identities: dict[int, list[Identity]]) -> set[int]:
    """Offsets with at least one identity the warehouse holds."""
    by_table: dict[tuple[str, str], dict[int | str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for offset, idents in identities.items():
        for table, column, ident in idents:
            by_table[(table, column)][ident].append(offset)
    found: set[int] = set()
    for (table, column), offsets in by_table.items():
        if all(isinstance(i, int) for i in offsets):
            where, params = f"{column} IN {{ids:Array(UInt64)}}", {"ids": list(offsets)}
        else:  # text ids (UUIDs) travel comma-joined: chdb cannot bind Array(String) parameters
            where = f"{column} IN (SELECT arrayJoin(splitByChar(',', {{ids:String}})))"
            params = {"ids": ",".join(map(str, offsets))}
        for (ident,) in warehouse.query(f"SELECT DISTINCT {column} FROM {table} WHERE {where}", params).rows:
            found.update(offsets.get(ident if isinstance(ident, str) else int(ident), ()))
    return found


async def _completeness(warehouse: Warehouse, settings: Settings, bootstrap: str, check: Check) -> list[Result]:
    accounting = ACCOUNTING.get(check.table)
    if accounting is None:
        raise LookupError(f"no per-offset accounting for topic {check.table}")
    topic = settings.topic(check.table)
    async with OffsetProbe(bootstrap) as probe:
        partitions = sorted(await probe.partitions([topic]))
        ends = await probe.end_offsets(partitions)
        lag = await probe.group_lag(settings.app_id, [topic, settings.topic(accounting.normalized_topic),
                                                      settings.topic(TOPIC_DLQ)])
    known = await asyncio.to_thread(_positions, warehouse, topic, accounting)
    erasures = await asyncio.to_thread(load_erasure_list, warehouse)  # once per check, not per partition
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                max_partition_fetch_bytes=16 * 1024 * 1024)
    await consumer.start()
    try:
        consumer.assign(partitions)
        starts = await consumer.beginning_offsets(partitions) if partitions else {}
        results = []
        for tp in partitions:
            missing = [o for o in range(starts[tp], ends[tp]) if o not in known[tp.partition]]
            records = await _read(consumer, tp, missing)
            identities = {}
            for offset, record in records.items():
                try:
                    identities[offset] = accounting.identity(record)
                except Exception:  # not a record the pipeline could store: it should be a dead letter
                    continue
            found = await asyncio.to_thread(_stored, warehouse, identities)
            found |= _erased(erasures, accounting.source, {o: r for o, r in records.items() if o not in found})
            unaccounted = [o for o in missing if o not in found]
            through = (unaccounted[0] if unaccounted else ends[tp]) - 1
            at = (await _read(consumer, tp, [through])).get(through) if through >= starts[tp] else None
            results.append(_result(check, tp.partition, through, ends[tp], unaccounted, lag, at))
        return results
    finally:
        await consumer.stop()


def _result(check: Check, partition: int, through: int, end: int, unaccounted: list[int], lag: int,
            record: object | None) -> Result:
    when = datetime.fromtimestamp(record.timestamp / 1000, UTC).isoformat(timespec="seconds") if record else "-"  # type: ignore
    text = f"complete through offset {through} (time {when}) of {end} records"
    if unaccounted:
        text += (f"; {len(unaccounted)} offsets neither landed nor dead-lettered, first {unaccounted[:5]}"
                 + (f" (group lag {lag}: in flight)" if lag else " while the group has no lag"))
    scope = f"partition {partition}"
    if unaccounted and lag:
        return Result(check, WARN, through, f"through offset {end - 1}", text, scope)
    result = outcome(check, bool(unaccounted), through, f"through offset {end - 1}", text, scope)
    return result if result.status != PASS else Result(check, PASS, through, result.threshold, text, scope)


def completeness(warehouse: Warehouse, settings: Settings, bootstrap: str | None, check: Check) -> list[Result]:
    if not bootstrap:
        raise LookupError("no Kafka to compare with: set KAFKA_BOOTSTRAP_SERVERS")
    return asyncio.run(_completeness(warehouse, settings, bootstrap, check))
