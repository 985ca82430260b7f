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
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson

from streams.agents.common import AgentContext, as_bytes, dead_letter, event_headers, received_at, sink_batches
from streams.agents.common import write_with_retry as _write_with_retry
from streams.alerts.landed import event_scopes
from streams.config import TOPIC_NORMALIZED_SNOWPLOW, TOPIC_RAW_SNOWPLOW
from streams.enrich.geo import decode_location
from streams.enrich.iglu import Registry
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
    BadEvent,
    Receipt,
    bad_row,
    normalize_event,
    take_ip,
)
from streams.warehouse import Warehouse

log = logging.getLogger(__name__)

SOURCE = "snowplow"
TABLE = "fct_behavior_structured_event"
CONSUMED_TOPICS = [TOPIC_RAW_SNOWPLOW, TOPIC_NORMALIZED_SNOWPLOW]
_TIMESTAMPS = ("collector_tstamp", "dvce_created_tstamp", "dvce_sent_tstamp", "true_tstamp", "derived_tstamp")


class BadRow(Exception):
    """A raw record that becomes a dead letter: its (IP-free) bytes, the stage and the bad-row JSON."""

    def __init__(self, stage: str, original: bytes, reason: str) -> None:
        super().__init__(reason)
        self.stage, self.original, self.reason = stage, original, reason


def receipt_from(headers: dict[str, str], ip: str | None) -> Receipt:
    geo = headers.get(H_CLIENT_GEO)
    try:
        index = int(headers.get(H_EVENT_INDEX, "0"))
    except ValueError:
        index = 0
    return Receipt(collector_tstamp=received_at(headers), request_id=headers.get("request_id", ""),
                   event_index=index, collector=headers.get("collector", ""),
                   useragent=headers.get(H_USERAGENT, ""), ip=ip,
                   location=decode_location(geo) if geo is not None and not ip else None)


@dataclass
class SnowplowNormalizer:
    """Raw record -> normalized record (pure; raises BadRow for anything that cannot be used)."""

    registry: Registry
    key: bytes

    def __call__(self, value: bytes, headers: dict[str, str], source: dict[str, Any]) -> dict[str, Any]:
        now = datetime.now(UTC)
        if headers.get("kind") == "bad_request":  # the collector found no events in the request
            receipt = receipt_from(headers, None)
            reason = bad_row(headers.get(H_BAD_ROW_TYPE, BAD_FORMAT), [headers.get(H_REASON, "bad request")],
                             receipt.public(), now)
            raise BadRow("collector", value, reason)
        try:
            event = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            receipt = receipt_from(headers, None)
            raise BadRow("validate", value, bad_row(BAD_FORMAT, [f"record is not valid JSON: {exc}"],
                                                    receipt.public(), now)) from exc
        ip = take_ip(event) or headers.get(H_CLIENT_IP) or None  # another producer may have left `ip` in
        original = orjson.dumps(event) if isinstance(event, dict) and ip and b'"ip"' in value else value
        receipt = receipt_from(headers, ip)
        try:
            row = normalize_event(event, receipt, self.registry, self.key)
        except BadEvent as exc:
            raise BadRow("validate", original, bad_row(exc.bad_row_type, exc.messages, receipt.public(), now)) from exc
        except Exception as exc:  # a bug must not block the partition: park the record as an enrichment failure
            log.exception("enriching a Snowplow event failed")
            raise BadRow("enrich", original, bad_row(BAD_ENRICHMENT, [repr(exc)], receipt.public(), now)) from exc
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


def warehouse_row(row: dict[str, Any], ingested_at: datetime) -> dict[str, Any]:
    out = dict(row)
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
    warehouse.insert(TABLE, [warehouse_row(r["row"], now) for r in fresh])
    return WriteResult(len(fresh), duplicates, conflicts)


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
    return record["raw"].encode(), {k: v.encode() for k, v in headers.items()}


# ---------------------------------------------------------------------------------------------------


NORMALIZE_BATCH = 500  # raw events per normalize step (and at most per normalized record)


def register(ctx: AgentContext) -> None:
    raw_events = ctx.topic(TOPIC_RAW_SNOWPLOW)
    normalized_events = ctx.topic(TOPIC_NORMALIZED_SNOWPLOW)
    normalize = SnowplowNormalizer(Registry.from_dir(), hash_key())
    warehouse, settings = ctx.warehouse, ctx.settings

    async def send_bad_row(event: Any, bad: BadRow) -> Any:
        _, headers = dead_letter(event, SOURCE, bad.stage, bad.reason)
        return await ctx.dlq.send(key=SOURCE.encode(), value=bad.original,
                                  headers={k: v.encode() for k, v in headers.items()})

    @ctx.app.agent(raw_events, name="normalize_snowplow")
    async def normalize_snowplow(stream: Any) -> None:
        async for events in stream.take_events(NORMALIZE_BATCH, within=0.5):
            pending = []
            by_partition: dict[int, list[dict]] = {}
            for event in events:
                message = event.message
                source = {"topic": message.topic, "partition": message.partition, "offset": message.offset}
                try:
                    record = normalize(as_bytes(event.value), event_headers(event), source)
                except BadRow as bad:
                    pending.append(await send_bad_row(event, bad))
                    continue
                by_partition.setdefault(message.partition, []).append(record)
            # One normalized Kafka record per raw partition and batch: per-event produce/consume overhead was
            # the pipeline's limit. The key keeps each raw partition's order on one normalized partition.
            for partition, records in by_partition.items():
                pending.append(await normalized_events.send(key=f"raw-partition-{partition}".encode(),
                                                            value=orjson.dumps(records)))
            await asyncio.gather(*pending)  # delivered before this batch is acked

    async def write(batches: list[list[dict]]) -> None:
        records = [record for batch in batches for record in batch]
        result = await _write_with_retry(lambda: write_behavior_events(warehouse, records), "snowplow events",
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
        records_per_insert = max(1, settings.event_batch_size // NORMALIZE_BATCH)  # each record is a batch
        await sink_batches(ctx, stream, SOURCE, write, records_per_insert, settings.sink_batch_seconds)
