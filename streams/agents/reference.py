"""Reference-data agent: the compacted usage.ref.* topics -> Faust tables (stream-time lookup) and dim_ tables.

  usage.ref.{licenses,subscriptions,accounts,billing_accounts,namespaces,account_mappings}
      --reference_sink--> Faust tables ref_<kind> (+ ref_license_by_hash)  and  dim_license, dim_subscription, ...
                      \\--> usage.dlq (value not a JSON object, bad column values, key and id disagree)

A record's key is the natural id and its value a JSON object with the kind's columns (the id may be left out);
a null value (tombstone) deletes the id. The version (updated_at) is the value's own `updated_at`, else the
record's timestamp; a tombstone takes the record's timestamp, but never less than the version it deletes.

The Faust tables hold each id's current row and version (what a tombstone or an older record is compared with).
They are partitioned by key, so in a deployment with several workers a worker sees only the keys of its partitions;
the embedded deployment (one worker) sees all of them. Matching licenses to subscriptions and accounts is the
warehouse's (prep_license_match), which sees every key.
"""

from __future__ import annotations

import logging
import weakref
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import faust
import orjson

from streams.agents.common import AgentContext, PoisonBatch, Rejected, write_with_retry
from streams.config import REFERENCE_TOPICS
from streams.erase.subjects import reference_subjects, without_erased
from streams.reference.kinds import (
    KIND_BY_TOPIC,
    KINDS,
    RefKind,
    normalize_key,
    parse_datetime,
    parse_record,
    to_json,
    tombstone,
)
from streams.warehouse.writers import write_reference

log = logging.getLogger(__name__)

CONSUMED_TOPICS = list(REFERENCE_TOPICS)
LICENSE_BY_HASH = "license_by_hash"


@dataclass
class ReferenceTables:
    """One Faust table per kind (natural id -> JSON row) plus the license hash index (hash -> license id)."""

    tables: dict[str, Any]

    def current(self, kind: RefKind, key: str) -> dict[str, Any] | None:
        return self.tables[kind.name].get(key)

    def upsert(self, kind: RefKind, key: str, row: dict[str, Any]) -> None:
        if kind.name == "licenses":
            self._unindex(self.current(kind, key))
            for license_hash in (row["license_md5"], row["license_sha256"]):
                if license_hash:
                    self.tables[LICENSE_BY_HASH][license_hash] = key
        self.tables[kind.name][key] = to_json({k: v for k, v in row.items() if k != "is_deleted"})

    def delete(self, kind: RefKind, key: str) -> None:
        previous = self.current(kind, key)
        if previous is None:
            return
        if kind.name == "licenses":
            self._unindex(previous)
        del self.tables[kind.name][key]

    def _unindex(self, previous: dict[str, Any] | None) -> None:
        index = self.tables[LICENSE_BY_HASH]
        for column in ("license_md5", "license_sha256"):
            license_hash = (previous or {}).get(column)
            if license_hash and index.get(license_hash) == previous.get("dim_license_id"):
                del index[license_hash]


_TABLES: weakref.WeakKeyDictionary[faust.App, ReferenceTables] = weakref.WeakKeyDictionary()


def reference_tables(app: faust.App) -> ReferenceTables:
    """The app's reference tables, declared once (before the app starts) whichever agent asks first."""
    if app not in _TABLES:
        names = [*KINDS, LICENSE_BY_HASH]
        # use_partitioner: a batch mixes partitions, so changelog partitions follow the key, not the event.
        _TABLES[app] = ReferenceTables({
            name: app.Table(f"ref_{name}", default=None, key_type=str, use_partitioner=True,
                            help=f"reference data: {name}")
            for name in names
        })
    return _TABLES[app]


def _record_time(event: faust.EventT) -> datetime:
    timestamp = event.message.timestamp
    if not timestamp:
        return datetime.now(UTC)
    return datetime.fromtimestamp(round(float(timestamp) * 1000) / 1000, UTC)


def _kind_of(topic: str, prefix: str) -> RefKind:
    return KIND_BY_TOPIC[topic[len(prefix):] if prefix and topic.startswith(prefix) else topic]


def reference_row(kind: RefKind, key: str, value: bytes | None, record_time: datetime,
                  tables: ReferenceTables) -> dict[str, Any] | None:
    """The versioned dim_ row for one record, after applying it to the tables; None if it is older than what
    the tables hold (an out-of-order update). Raises Rejected for records that cannot be used."""
    try:
        key = normalize_key(kind, key)
    except ValueError as exc:
        raise Rejected("validate", f"{kind.name}: bad record key (the key is the {kind.key}): {exc}") from exc
    previous = tables.current(kind, key)
    previous_version = parse_datetime(previous["updated_at"]) if previous else None
    if value is None:
        version = max(record_time, previous_version) if previous_version else record_time
        tables.delete(kind, key)
        return tombstone(kind, key, version)
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise Rejected("validate", f"{kind.name}: value is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise Rejected("validate", f"{kind.name}: value must be a JSON object (or null to delete)")
    given = document.get(kind.key)
    if given not in (None, "") and str(given).strip().lower() != key.lower():  # hashes are stored lower-case
        raise Rejected("validate", f"{kind.name}: key {key!r} and {kind.key} {given!r} disagree")
    row, errors = parse_record(kind, document | {kind.key: key})
    if errors:
        raise Rejected("validate", f"{kind.name} {key}: " + "; ".join(str(e) for e in errors))
    row["updated_at"] = row["updated_at"] or record_time
    if previous_version and row["updated_at"] < previous_version:
        return None  # older than the version we have: the warehouse would ignore it too
    tables.upsert(kind, key, row)
    return row


async def changelogs_known_to_producer(app: faust.App, tables: ReferenceTables) -> None:
    """Wait until the producer has metadata for the tables' changelog topics. A table write partitions its changelog
    record at once (use_partitioner): a reference record that arrived right after start, before the producer knew a
    freshly created changelog topic, crashed the agent (aiokafka's partitioner found no partitions)."""
    producer = app.producer._ensure_producer()  # type: ignore[attr-defined]  # the aiokafka producer
    for table in tables.tables.values():
        await producer.partitions_for(table.changelog_topic.get_topic_name())


def register(ctx: AgentContext) -> None:
    tables = reference_tables(ctx.app)
    topics = ctx.app.topic(*(ctx.settings.topic(name) for name in REFERENCE_TOPICS), value_type=bytes)
    prefix, warehouse = ctx.settings.topic_prefix, ctx.warehouse

    async def write(rows: dict[str, list[dict[str, Any]]]) -> None:
        for name, kind_rows in rows.items():
            stored = await write_with_retry(lambda k=KINDS[name], r=kind_rows: write_reference(  # README "Erasure"
                warehouse, k, without_erased(warehouse, r, reference_subjects)),
                                            f"reference {name}", warehouse)
            ctx.stats.add(**{f"reference_{name}": stored})

    @ctx.app.agent(topics, name="reference_sink")
    async def reference_sink(stream: Any) -> None:
        await changelogs_known_to_producer(ctx.app, tables)
        async for events in stream.take_events(500, within=0.5):
            rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
            sources: dict[int, faust.EventT] = {}
            pending = []
            for event in events:
                message = event.message
                kind = _kind_of(message.topic, prefix)
                key = message.key.decode(errors="replace") if message.key else ""
                try:
                    row = reference_row(kind, key, event.value, _record_time(event), tables)
                except Rejected as exc:
                    pending.append(await ctx.send_dead_letter(event, f"reference.{kind.name}", exc.stage, exc.reason))
                    continue
                if row is not None:
                    rows[kind.name].append(row)
                    sources[id(row)] = event
            try:
                await write(rows)
            except PoisonBatch:  # the warehouse refuses something: find it, park it, keep the rest
                for name, kind_rows in rows.items():
                    for row in kind_rows:
                        try:
                            await write({name: [row]})
                        except PoisonBatch as exc:
                            pending.append(await ctx.send_dead_letter(sources[id(row)], f"reference.{name}", "sink",
                                                                      str(exc)))
            for future in pending:
                await future  # dead letters delivered before this batch is acked
