"""Normalized records (streams/records.py) -> warehouse rows, written idempotently: every source's writer.

Used by the Faust sink agents and by replays. Every writer is safe to call twice with the same
records: it skips ids already stored, and the tables are ReplacingMergeTree on the same ids, so a
redelivered batch changes no query result before or after merges.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from streams.enrich.metric_dictionary import MetricDictionary
from streams.enrich.service_ping import ATTRIBUTE_FIELDS, ERROR_MARKER, NUMBER
from streams.erase.subjects import seat_link_subjects, version_check_subjects, without_erased
from streams.records import SeatLinkRecord, SnowplowRecord, VersionCheckRecord, parse_timestamp
from streams.reference.kinds import VERSION_COLUMNS, RefKind, newest_per_key
from streams.warehouse import RowsRefused, Warehouse


def _ts(value: str | None) -> datetime | None:
    return parse_timestamp(value) if value else None


def _date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def existing_ids(warehouse: Warehouse, table: str, column: str, ids: Sequence[int]) -> set[int]:
    if not ids:
        return set()
    result = warehouse.query(
        f"SELECT DISTINCT {column} FROM {table} WHERE {column} IN {{ids:Array(UInt64)}}", {"ids": list(ids)}
    )
    return {int(row[0]) for row in result.rows}


def unique_by(records: Iterable[dict], key: str) -> list[dict]:
    seen: set[Any] = set()
    out = []
    for record in records:
        if record[key] not in seen:
            seen.add(record[key])
            out.append(record)
    return out


# ---------------------------------------------------------------------------------------------------
# Service Ping


_PING_TIMESTAMPS = ("recorded_at", "received_at")
_PING_DATES = ("license_starts_at", "license_expires_at", "license_trial_ends_on")


def ping_row(ping: dict) -> dict:
    row = dict(ping)
    for name in _PING_TIMESTAMPS:
        row[name] = _ts(row[name])
    for name in _PING_DATES:
        row[name] = _date(row[name])
    return row


def metric_columns(records: Sequence[dict]) -> dict[str, list[Any]]:
    """fct_ping_instance_metric rows of several normalized pings, column-wise (ready for one insert)."""
    columns: dict[str, list[Any]] = {name: [] for name in ("ping_id", "installation_id", "recorded_at",
                                                         "metrics_path", "metric_value", "error_value",
                                                         "value_kind", "value_text", *ATTRIBUTE_FIELDS)}
    for record in records:
        ping, metrics = record["ping"], record["metrics"]
        count = len(metrics["metrics_path"])
        columns["ping_id"] += [ping["ping_id"]] * count
        columns["installation_id"] += [ping["installation_id"]] * count
        columns["recorded_at"] += [_ts(ping["recorded_at"])] * count
        for name in ("metrics_path", "metric_value", "error_value"):
            columns[name] += metrics[name]
        kinds, texts = value_kinds(metrics)
        columns["value_kind"] += kinds
        columns["value_text"] += texts
        by_id = {attribute_id: attrs for attribute_id, attrs in metrics["attributes"]}
        picked = [by_id[i] for i in metrics["attribute_id"]]
        for position, name in enumerate(ATTRIBUTE_FIELDS):
            columns[name] += [attrs[position] for attrs in picked]
    return columns


def value_kinds(metrics: dict) -> tuple[list[str], list[str]]:
    """value_kind and value_text of each metric row: number unless flagged (records normalized before flags
    existed carry none: their error markers are known from error_value)."""
    count = len(metrics["metrics_path"])
    kinds, texts = [NUMBER] * count, [""] * count
    flags = metrics.get("flags")
    if flags is None:
        flags = [[index, ERROR_MARKER, ""] for index, error in enumerate(metrics["error_value"]) if error]
    for index, kind, text in flags:
        kinds[index], texts[index] = kind, text
    return kinds, texts


def raw_row(record: dict) -> dict:
    ping = record["ping"]
    return {
        "ping_id": ping["ping_id"], "instance_uuid": ping["instance_uuid"], "recorded_at": _ts(ping["recorded_at"]),
        "received_at": _ts(ping["received_at"]), "kafka_partition": record["source"]["partition"],
        "kafka_offset": record["source"]["offset"], "payload": record["raw"].encode(),
    }


def piece_row(record: dict) -> dict:
    """A raw_service_ping_part row: one part's slice of the original payload."""
    source, part = record["source"], record["part"]
    return {"ping_id": record["ping"]["ping_id"], "kafka_partition": source["partition"],
            "kafka_offset": source["offset"], "part": part["index"], "parts": part["count"],
            "piece": record["raw"].encode()}


def assembled(warehouse: Warehouse, last_part: dict) -> dict:
    """The whole ping (its raw payload joined from every stored piece) that `last_part` completes."""
    source, count = last_part["source"], last_part["part"]["count"]
    rows = warehouse.query(
        "SELECT part, piece FROM raw_service_ping_part FINAL WHERE ping_id = {ping:UInt64} "
        "AND kafka_partition = {partition:UInt32} AND kafka_offset = {offset:UInt64} ORDER BY part",
        {"ping": last_part["ping"]["ping_id"], "partition": source["partition"], "offset": source["offset"]}).rows
    if [int(part) for part, _ in rows] != list(range(count)):
        raise RowsRefused(f"ping {last_part['ping']['ping_id']}: {len(rows)} of its {count} parts are stored")
    return last_part | {"raw": "".join(piece for _, piece in rows)}


def write_pings(warehouse: Warehouse, records: Sequence[dict]) -> dict[str, int]:
    """Write normalized pings (whole, or cut into parts); return how many pings and metric rows were new.

    Order matters for crash safety: metrics and raw first, the ping row last. A ping counts as stored
    only once its fct_ping_instance row exists, so a crash in between leads to a full rewrite on
    redelivery (and the Replacing tables collapse the partial copy). A ping in parts (consecutive on one
    partition, maybe over several batches) stores each part's metric rows and payload piece as it comes; its
    last part joins the pieces into raw_service_ping and then writes the ping row.
    """
    unique = list({_copy_key(r): r for r in reversed(records)}.values())  # first copy wins
    stored = existing_ids(warehouse, "fct_ping_instance", "ping_id", [r["ping"]["ping_id"] for r in unique])
    fresh = [r for r in unique if r["ping"]["ping_id"] not in stored]
    metrics = metric_columns(fresh)
    warehouse.insert_columns("fct_ping_instance_metric", metrics)
    parts = [r for r in fresh if "part" in r]
    warehouse.insert("raw_service_ping_part", [piece_row(r) for r in parts])
    whole = [r for r in fresh if "part" not in r]
    whole += [assembled(warehouse, r) for r in parts if r["part"]["index"] == r["part"]["count"] - 1]
    whole = list({r["ping"]["ping_id"]: r for r in reversed(whole)}.values())  # first copy wins
    warehouse.insert("raw_service_ping", [raw_row(r) for r in whole])
    warehouse.insert("fct_ping_instance", [ping_row(r["ping"]) for r in whole])
    return {"pings": len(whole), "metric_rows": len(metrics["metrics_path"]), "duplicates": len(records) - len(fresh)}


def _copy_key(record: dict) -> tuple:
    """Copies of one ping collapse to the first; the parts of one raw record stay apart."""
    part = record.get("part")
    if part is None:
        return (record["ping"]["ping_id"],)
    return record["ping"]["ping_id"], record["source"]["partition"], record["source"]["offset"], part["index"]


def write_ping_errors(warehouse: Warehouse, reports: Sequence[dict]) -> int:
    rows = unique_by(reports, "report_id")
    stored = existing_ids(warehouse, "fct_ping_error", "report_id", [r["report_id"] for r in rows])
    fresh = [
        r | {"reported_at": _ts(r["reported_at"]), "received_at": _ts(r["received_at"])}
        for r in rows if r["report_id"] not in stored
    ]
    return warehouse.insert("fct_ping_error", fresh)


def write_metric_timings(warehouse: Warehouse, reports: Sequence[dict]) -> int:
    reports = unique_by(reports, "report_id")
    stored = existing_ids(warehouse, "fct_ping_metric_timing", "report_id", [r["report_id"] for r in reports])
    rows = [
        {"report_id": r["report_id"], "instance_uuid": r["instance_uuid"], "received_at": _ts(r["received_at"])} | m
        for r in reports if r["report_id"] not in stored for m in r["metrics"]
    ]
    return warehouse.insert("fct_ping_metric_timing", rows)


def write_dead_letters(warehouse: Warehouse, letters: Sequence[dict]) -> int:
    rows = unique_by(letters, "dead_letter_id")
    stored = existing_ids(warehouse, "raw_dead_letter", "dead_letter_id", [r["dead_letter_id"] for r in rows])
    fresh = [
        r | {"received_at": _ts(r["received_at"]), "failed_at": _ts(r["failed_at"])}
        for r in rows if r["dead_letter_id"] not in stored
    ]
    return warehouse.insert("raw_dead_letter", fresh)


def load_metric_dictionary(warehouse: Warehouse, dictionary: MetricDictionary, loaded_at: datetime) -> int:
    """Publish the dictionary as dim_ping_metric (the newest load wins)."""
    rows = [{
        "metrics_path": d.key_path, "description": d.description or "", "time_frame": d.time_frame,
        "data_source": d.data_source or "", "data_category": d.data_category or "",
        "product_section": d.product_section or "", "product_stage": d.product_stage or "",
        "product_group": d.product_group or "", "value_type": d.value_type or "", "metric_status": d.status or "",
        "milestone": str(d.milestone or ""), "tier": list(d.tier),
        "performance_indicator_type": list(d.performance_indicator_type), "is_smau": int(d.is_smau),
        "is_gmau": int(d.is_gmau), "is_paid_gmau": int(d.is_paid_gmau), "is_umau": int(d.is_umau),
        "loaded_at": loaded_at,
    } for d in dictionary.definitions]
    return warehouse.insert("dim_ping_metric", rows)


# ---------------------------------------------------------------------------------------------------
# Seat Link


def seat_link_row(record: dict) -> dict:
    return record | {
        "report_timestamp": parse_timestamp(record["report_timestamp"]),
        "report_date": date.fromisoformat(record["report_date"]),
        "received_at": parse_timestamp(record["received_at"]),
    }


def write_seat_links(warehouse: Warehouse, records: Sequence[SeatLinkRecord]) -> dict[str, int]:
    """Idempotent: a report already stored (same seat_link_id) is skipped, in the batch and across batches."""
    rows = unique_by(without_erased(warehouse, records, seat_link_subjects), "seat_link_id")  # README "Erasure"
    stored = existing_ids(warehouse, "fct_seat_link", "seat_link_id", [r["seat_link_id"] for r in rows])
    fresh = [seat_link_row(r) for r in rows if r["seat_link_id"] not in stored]
    warehouse.insert("fct_seat_link", fresh)
    return {"seat_links": len(fresh), "seat_link_duplicates": len(records) - len(fresh)}


# ---------------------------------------------------------------------------------------------------
# Version Check


def write_version_checks(warehouse: Warehouse, records: Sequence[VersionCheckRecord]) -> dict[str, int]:
    """Idempotent on check_id, like every sink."""
    rows = unique_by(without_erased(warehouse, records, version_check_subjects), "check_id")  # README "Erasure"
    stored = existing_ids(warehouse, "fct_version_check", "check_id", [r["check_id"] for r in rows])
    fresh = [r | {"checked_at": parse_timestamp(r["checked_at"])} for r in rows if r["check_id"] not in stored]
    warehouse.insert("fct_version_check", fresh)
    return {"version_checks": len(fresh), "version_check_duplicates": len(records) - len(fresh)}


# ---------------------------------------------------------------------------------------------------
# Snowplow events (see streams/agents/snowplow.py for duplicates and conflicts)


BEHAVIOR_TABLE = "fct_behavior_structured_event"
_EVENT_TIMESTAMPS = ("collector_tstamp", "dvce_created_tstamp", "dvce_sent_tstamp", "true_tstamp", "derived_tstamp")


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
        f"SELECT event_id, any(event_fingerprint) FROM {BEHAVIOR_TABLE} "
        "WHERE event_id IN (SELECT arrayJoin(splitByChar(',', {ids:String}))) GROUP BY event_id",
        {"ids": ",".join(event_ids)})
    return {str(event_id): int(fp) for event_id, fp in result.rows}


def warehouse_row(row: dict[str, Any], ingested_at: datetime, source: dict[str, Any] | None = None) -> dict[str, Any]:
    out = dict(row)
    # the raw record's position, for the completeness check (clickhouse/025); -1 when a replay does not know it
    out["kafka_partition"], out["kafka_offset"] = (source or {}).get("partition", -1), (source or {}).get("offset", -1)
    for name in _EVENT_TIMESTAMPS:
        out[name] = datetime.fromisoformat(out[name]) if out[name] else None
    out["behavior_date"] = date.fromisoformat(out["behavior_date"])
    out["ingested_at"] = ingested_at
    return out


def write_behavior_events(warehouse: Warehouse, records: list[SnowplowRecord],
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
    warehouse.insert(BEHAVIOR_TABLE, [warehouse_row(r["row"], now, r.get("source")) for r in fresh])
    return WriteResult(len(fresh), duplicates, conflicts)


# ---------------------------------------------------------------------------------------------------
# Reference data


def write_reference(warehouse: Warehouse, kind: RefKind, rows: Sequence[dict[str, Any]]) -> int:
    """Insert versioned rows (upserts and tombstones) into the kind's dim_ table; returns rows written."""
    names = kind.column_names + VERSION_COLUMNS
    latest = newest_per_key(kind, list(rows))
    return warehouse.insert(kind.table, [{name: row[name] for name in names} for row in latest])
