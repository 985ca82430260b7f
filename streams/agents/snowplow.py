"""Snowplow agents.

  usage.raw.snowplow --normalize_snowplow--> usage.normalized.snowplow --snowplow_sink--> fct_behavior_structured_event
          \\--> usage.dlq (bad requests, protocol and schema violations)   \\--> usage.dlq (event_id conflicts)

normalize_snowplow validates each event against the tracker protocol and our Iglu schemas, decodes contexts and
self-describing events, enriches (ids, timestamps with clock-skew correction, IP -> location, user agent ->
family, user id -> keyed hash) and forwards a record without the IP. snowplow_sink lands batches idempotently.

Duplicates (reference model section 6.2 drops every copy of a duplicated event_id; we keep more):
- same event_id, same fingerprint (a tracker retry, a redelivery, a replay): one copy is stored, the rest skipped;
- same event_id, different content (a client reusing ids): the first copy stored wins; later ones are not
  stored but dead-lettered as `event_id_conflict` bad rows with their bytes, so nothing disappears silently and
  the stored row never changes under a materialized view. Copies are keyed alike (user/namespace) when they share
  the user, so "first" is partition order; across users it is arrival order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson

from streams.agents.common import (
    H_PART,
    AgentContext,
    as_bytes,
    dead_letter,
    event_headers,
    received_at,
    sink_batches,
)
from streams.agents.common import write_with_retry as _write_with_retry
from streams.alerts.landed import event_scopes
from streams.config import TOPIC_NORMALIZED_SNOWPLOW, TOPIC_RAW_SNOWPLOW
from streams.enrich.geo import decode_location
from streams.enrich.iglu import Registry
from streams.enrich.limits import json_depth_exceeds, too_deep_reason
from streams.enrich.personal import pseudonymize_event, redact_bytes
from streams.enrich.pseudonym import hash_key
from streams.enrich.snowplow import (
    BAD_CONFLICT,
    BAD_ENRICHMENT,
    BAD_FORMAT,
    H_BAD_ROW_TYPE,
    H_CLIENT_GEO,
    H_CLIENT_IP,
    H_EVENT_INDEX,
    H_REASON,
    H_USERAGENT,
    KIND_EVENTS,
    BadEvent,
    Receipt,
    bad_row,
    normalize_event,
    take_ip,
)
from streams.erase import snowplow_record_subjects, without_erased
from streams.event_metrics import mark_touched, refresh_pending
from streams.warehouse import Warehouse

log = logging.getLogger(__name__)

SOURCE = "snowplow"
TABLE = "fct_behavior_structured_event"
CONSUMED_TOPICS = [TOPIC_RAW_SNOWPLOW, TOPIC_NORMALIZED_SNOWPLOW]
_TIMESTAMPS = ("collector_tstamp", "dvce_created_tstamp", "dvce_sent_tstamp", "true_tstamp", "derived_tstamp")


class BadRow(Exception):
    """An event (or a whole raw record) that becomes a dead letter: its (IP-free) bytes, the stage, the bad-row
    JSON, and `part`, the event's index in its request when the raw record holds several events."""

    def __init__(self, stage: str, original: bytes, reason: str, part: int | None = None) -> None:
        super().__init__(reason)
        self.stage, self.original, self.reason, self.part = stage, original, reason, part

    def __reduce__(self) -> tuple[type[BadRow], tuple[str, bytes, str, int | None]]:
        return BadRow, (self.stage, self.original, self.reason, self.part)  # crosses process boundaries


def receipt_from(headers: dict[str, str], ip: str | None, index: int | None = None) -> Receipt:
    geo = headers.get(H_CLIENT_GEO)
    if index is None:
        try:
            index = int(headers.get(H_EVENT_INDEX, "0"))
        except ValueError:
            index = 0
    return Receipt(collector_tstamp=received_at(headers), request_id=headers.get("request_id", ""),
                   event_index=index, collector=headers.get("collector", ""),
                   useragent=headers.get(H_USERAGENT, ""), ip=ip,
                   location=decode_location(geo) if geo is not None and not ip else None)


def _indexes(headers: dict[str, str], count: int) -> list[int]:
    """The request positions of a multi-event record's events (0..count-1 when the header is unusable)."""
    try:
        indexes = [int(part) for part in headers.get(H_EVENT_INDEX, "").split(",")]
    except ValueError:
        indexes = []
    return indexes if len(indexes) == count else list(range(count))


def _unusable_record(value: bytes, headers: dict[str, str], reason: str) -> BadRow:
    """A raw record whose bytes hold no event at all: one bad row for the whole record."""
    return BadRow("validate", value, bad_row(BAD_FORMAT, [reason], receipt_from(headers, None).public(),
                                             datetime.now(UTC)))


@dataclass
class SnowplowNormalizer:
    """Raw record -> normalized records and bad rows (pure)."""

    registry: Registry
    key: bytes

    def records(self, value: bytes, headers: dict[str, str], source: dict[str, Any]) -> list[dict[str, Any] | BadRow]:
        """Every event of a raw record, normalized or as a BadRow. The collector publishes one record per request
        and user (kind `events`, a JSON array); a record of kind `event` holds one event (other producers)."""
        if headers.get("kind") != KIND_EVENTS:
            try:
                return [self(value, headers, source)]
            except BadRow as bad:
                return [bad]
        try:
            events = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            return [_unusable_record(value, headers, f"record is not valid JSON: {exc}")]
        if not isinstance(events, list):
            return [_unusable_record(value, headers, "a record of kind events holds a JSON array of events")]
        if json_depth_exceeds(events):  # checked before anything writes it again (orjson writes 254 levels at most)
            return [_unusable_record(value, headers, too_deep_reason())]
        out: list[dict[str, Any] | BadRow] = []
        for index, event in zip(_indexes(headers, len(events)), events, strict=True):
            try:
                out.append(self._normalize(event, None, headers, source | {"part": index}, index))
            except BadRow as bad:
                out.append(bad)
        return out

    def __call__(self, value: bytes, headers: dict[str, str], source: dict[str, Any]) -> dict[str, Any]:
        """One raw record holding one event -> its normalized record; raises BadRow."""
        if headers.get("kind") == "bad_request":  # the collector found no events in the request
            receipt = receipt_from(headers, None)
            reason = bad_row(headers.get(H_BAD_ROW_TYPE, BAD_FORMAT), [headers.get(H_REASON, "bad request")],
                             receipt.public(), datetime.now(UTC))
            raise BadRow("collector", value, reason)
        try:
            event = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise _unusable_record(value, headers, f"record is not valid JSON: {exc}") from exc
        if json_depth_exceeds(event):
            raise _unusable_record(value, headers, too_deep_reason())
        return self._normalize(event, value, headers, source, None)

    def _normalize(self, event: Any, value: bytes | None, headers: dict[str, str], source: dict[str, Any],
                   index: int | None) -> dict[str, Any]:
        ip = take_ip(event) or headers.get(H_CLIENT_IP) or None  # another producer may have left `ip` in
        cleaned = pseudonymize_event(event, self.key)  # nor may it have pseudonymized the user ids
        # the event alone, without an ip parameter, ids pseudonymized (the record's own bytes when they are that)
        original = orjson.dumps(cleaned) if value is None or cleaned is not event or ip else value
        event = cleaned
        receipt = receipt_from(headers, ip, index)
        try:
            row = normalize_event(event, receipt, self.registry, self.key)
        except BadEvent as exc:
            raise BadRow("validate", original, bad_row(exc.bad_row_type, exc.messages, receipt.public(),
                                                       datetime.now(UTC)), index) from exc
        except Exception as exc:  # a bug must not block the partition: park the event as an enrichment failure
            log.exception("enriching a Snowplow event failed")
            raise BadRow("enrich", original, bad_row(BAD_ENRICHMENT, [repr(exc)], receipt.public(),
                                                     datetime.now(UTC)), index) from exc
        return {"row": row, "raw": original.decode(errors="replace"), "receipt": receipt.public(), "source": source}


# ---------------------------------------------------------------------------------------------------
# The idempotent writer (also usable from replays).


@dataclass
class WriteResult:
    stored: int
    duplicates: int
    conflicts: list[dict]


def stored_fingerprints(warehouse: Warehouse, event_ids: list[str]) -> dict[str, int]:
    if not event_ids:
        return {}
    # Ids travel as one comma-joined String: they are UUIDs, and chdb cannot bind Array(String) parameters.
    result = warehouse.query(
        f"SELECT event_id, any(event_fingerprint) FROM {TABLE} "
        "WHERE event_id IN (SELECT arrayJoin(splitByChar(',', {ids:String}))) GROUP BY event_id",
        {"ids": ",".join(event_ids)})
    return {str(event_id): int(fp) for event_id, fp in result.rows}


def warehouse_row(row: dict[str, Any], ingested_at: datetime, source: dict[str, Any] | None = None) -> dict[str, Any]:
    out = dict(row)
    # the raw record's position, for the completeness check (clickhouse/025); -1 when a replay does not know it
    out["kafka_partition"], out["kafka_offset"] = (source or {}).get("partition", -1), (source or {}).get("offset", -1)
    for name in _TIMESTAMPS:
        out[name] = datetime.fromisoformat(out[name]) if out[name] else None
    out["behavior_date"] = date.fromisoformat(out["behavior_date"])
    out["ingested_at"] = ingested_at
    return out


def write_behavior_events(warehouse: Warehouse, records: list[dict[str, Any]],
                          ingested_at: datetime | None = None) -> WriteResult:
    """Insert the events whose event_id is not stored yet; see the module doc for duplicates and conflicts."""
    winners = stored_fingerprints(warehouse, list(dict.fromkeys(r["row"]["event_id"] for r in records)))
    fresh, duplicates, conflicts = [], 0, []
    for record in records:
        event_id, fp = record["row"]["event_id"], record["row"]["event_fingerprint"]
        if event_id not in winners:
            winners[event_id] = fp
            fresh.append(record)
        elif winners[event_id] == fp:
            duplicates += 1
        else:
            conflicts.append(record)
    now = ingested_at or datetime.now(UTC)
    warehouse.insert(TABLE, [warehouse_row(r["row"], now, r.get("source")) for r in fresh])
    return WriteResult(len(fresh), duplicates, conflicts)


def store_behavior_events(warehouse: Warehouse, records: list[dict[str, Any]]) -> WriteResult:
    """The sink's unit of work, safe to repeat after a failure or crash at any point: the new facts, the days of
    every record of the batch (also those skipped as already stored), then the derived tables of every pending day
    recomputed from the facts (streams/event_metrics.py). Returns what write_behavior_events found."""
    records = without_erased(warehouse, records, snowplow_record_subjects)  # README "Erasure"
    result = write_behavior_events(warehouse, records)
    mark_touched(warehouse, {date.fromisoformat(r["row"]["behavior_date"]) for r in records})
    refresh_pending(warehouse)
    return result


def conflict_letter(record: dict[str, Any], now: datetime) -> tuple[bytes, dict[str, bytes]]:
    """Dead letter for an event_id that is already stored with other content, at its raw-topic position."""
    row, source = record["row"], record["source"]
    reason = bad_row(BAD_CONFLICT, [f"event_id {row['event_id']} is already stored with different content "
                                    f"(fingerprint {row['event_fingerprint']:016x} differs); this copy was not stored"],
                     record["receipt"], now)
    headers = {
        "source": SOURCE, "stage": "dedup", "reason": reason,
        "received_at": record["receipt"]["collector_tstamp"], "failed_at": now.isoformat(),
        "kafka_topic": source["topic"], "kafka_partition": str(source["partition"]),
        "kafka_offset": str(source["offset"]),
    }
    if "part" in source:
        headers[H_PART] = str(source["part"])
    return record["raw"].encode(), {k: v.encode() for k, v in headers.items()}


# ---------------------------------------------------------------------------------------------------


NORMALIZE_BATCH = 500  # raw records per normalize step, and events per normalized record at most
NORMALIZED_RECORD_BYTES = 1024 * 1024  # a normalized record is cut after this many bytes


def json_array_chunks(items: list[Any], max_items: int, max_bytes: int) -> Iterator[bytes]:
    """`items` as JSON arrays of at most max_items items, each cut once it holds max_bytes (so a record stays far
    below the broker's limit however big single events are: one item is at most one collector request)."""
    chunk: list[bytes] = []
    size = 0
    for item in items:
        encoded = orjson.dumps(item)
        chunk.append(encoded)
        size += len(encoded) + 1
        if len(chunk) >= max_items or size >= max_bytes:
            yield b"[" + b",".join(chunk) + b"]"
            chunk, size = [], 0
    if chunk:
        yield b"[" + b",".join(chunk) + b"]"


RawItem = tuple[bytes, dict[str, str], dict[str, Any]]  # a raw record's value, headers and Kafka position


@dataclass
class NormalizedBatch:
    chunks: list[tuple[int, bytes]]  # (raw partition, normalized record: a JSON array of events), in order
    bad: list[tuple[int, BadRow]]  # (index of the raw record in the batch, its bad row)


def normalize_batch(normalize: SnowplowNormalizer, items: list[RawItem], first_index: int = 0) -> NormalizedBatch:
    """Raw records -> few normalized Kafka records per raw partition (per-record produce/consume overhead was the
    pipeline's limit), each below NORMALIZED_RECORD_BYTES, plus the bad rows."""
    by_partition: dict[int, list[dict]] = {}
    bad: list[tuple[int, BadRow]] = []
    for index, (value, headers, source) in enumerate(items, start=first_index):
        for record in normalize.records(value, headers, source):
            if isinstance(record, BadRow):
                bad.append((index, record))
            else:
                by_partition.setdefault(source["partition"], []).append(record)
    chunks = [(partition, chunk) for partition, records in by_partition.items()
              for chunk in json_array_chunks(records, NORMALIZE_BATCH, NORMALIZED_RECORD_BYTES)]
    return NormalizedBatch(chunks, bad)


def register(ctx: AgentContext) -> None:
    records_per_insert = max(1, ctx.settings.event_batch_size // NORMALIZE_BATCH)  # each record is a batch
    # Memory held per topic is bounded in records: two normalize steps of raw records (a request each), two
    # inserts of normalized ones (up to NORMALIZED_RECORD_BYTES each).
    raw_events = ctx.topic(TOPIC_RAW_SNOWPLOW, buffered=2 * NORMALIZE_BATCH)
    normalized_events = ctx.topic(TOPIC_NORMALIZED_SNOWPLOW, buffered=2 * records_per_insert)
    normalize = SnowplowNormalizer(Registry.from_dir(), hash_key())
    warehouse, settings = ctx.warehouse, ctx.settings

    async def send_bad_row(event: Any, bad: BadRow) -> Any:
        _, headers = dead_letter(event, SOURCE, bad.stage, bad.reason)
        if bad.part is not None:
            headers[H_PART] = str(bad.part)
        # bad rows of records no agent could parse keep their bytes: ids and IPs are taken out of them here
        return await ctx.dlq.send(key=SOURCE.encode(), value=redact_bytes(bad.original, normalize.key),
                                  headers={k: v.encode() for k, v in headers.items()})

    @ctx.app.agent(raw_events, name="normalize_snowplow")
    async def normalize_snowplow(stream: Any) -> None:
        async for events in stream.take_events(NORMALIZE_BATCH, within=0.5):
            items = [(as_bytes(e.value), event_headers(e), {"topic": e.message.topic, "partition": e.message.partition,
                                                             "offset": e.message.offset}) for e in events]
            batch = normalize_batch(normalize, items)
            pending = [await send_bad_row(events[index], bad) for index, bad in batch.bad]
            for partition, chunk in batch.chunks:  # the key keeps a raw partition's order on one normalized one
                pending.append(await normalized_events.send(key=f"raw-partition-{partition}".encode(), value=chunk))
            await asyncio.gather(*pending)  # delivered before this batch is acked

    async def write(batches: list[list[dict]]) -> None:
        records = [record for batch in batches for record in batch]
        result = await _write_with_retry(lambda: store_behavior_events(warehouse, records), "snowplow events",
                                         warehouse)
        await ctx.announce_landed("events", event_scopes(r["row"] for r in records))  # alert evaluation
        now = datetime.now(UTC)
        letters = []
        for record in result.conflicts:
            value, headers = conflict_letter(record, now)
            letters.append(await ctx.dlq.send(key=SOURCE.encode(), value=value, headers=headers))
        await asyncio.gather(*letters)
        ctx.stats.add(behavior_events=result.stored, behavior_duplicates=result.duplicates,
                      behavior_conflicts=len(result.conflicts))
        log.info("stored %d snowplow events (%d duplicates, %d conflicts)", result.stored, result.duplicates,
                 len(result.conflicts))

    @ctx.app.agent(normalized_events, name="snowplow_sink")
    async def snowplow_sink(stream: Any) -> None:
        await sink_batches(ctx, stream, SOURCE, write, records_per_insert, settings.sink_batch_seconds)
