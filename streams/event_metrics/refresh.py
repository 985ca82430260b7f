"""Materializing event metrics: daily states recomputed from the facts, then the windows they affect (see the
package notes in streams/event_metrics/__init__.py).
"""


from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from streams.event_metrics.definitions import EventMetric
from streams.event_metrics.sql import (
    CHUNK_DAYS,
    MAX_WINDOW,
    by_kind,
    day_text,
    default_metrics,
    metric_kind,
    metric_params,
    metric_sql,
    states_sql,
)
from streams.warehouse import Warehouse

# ---------------------------------------------------------------------------------------------------
# Materialization


def _date_or_none(value: Any) -> date | None:
    if value in (None, "", "1970-01-01"):  # max()/min() of an empty table is the zero date
        return None
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def data_horizon(warehouse: Warehouse, today: date | None = None) -> date | None:
    """The newest event day in the daily states, capped at today (a device clock in the future moves nothing)."""
    newest = _date_or_none(warehouse.query("SELECT max(behavior_date) FROM agg_behavior_active_daily").scalar())
    if newest is None:
        return None
    return min(newest, today or datetime.now(UTC).date())


def _previous_horizon(warehouse: Warehouse) -> date | None:
    return _date_or_none(warehouse.query("SELECT max(last_end_date) FROM agg_event_metric_refresh").scalar())


def _oldest_day(warehouse: Warehouse) -> date | None:
    return _date_or_none(warehouse.query("SELECT min(behavior_date) FROM agg_behavior_active_daily").scalar())


def merge_ranges(ranges: Iterable[tuple[date, date]]) -> list[tuple[date, date]]:
    """Union of closed day ranges, as sorted disjoint ranges."""
    merged: list[tuple[date, date]] = []
    for lo, hi in sorted(r for r in ranges if r[0] <= r[1]):
        if merged and lo <= merged[-1][1] + timedelta(days=1):
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _chunks(ranges: Iterable[tuple[date, date]], size: int = CHUNK_DAYS) -> list[tuple[date, date]]:
    out = []
    for lo, hi in ranges:
        start = lo
        while start <= hi:
            end = min(hi, start + timedelta(days=size - 1))
            out.append((start, end))
            start = end + timedelta(days=1)
    return out


def affected_end_days(touched: Iterable[date], horizon: date, previous: date | None,
                      oldest: date | None) -> tuple[list[tuple[date, date]], list[tuple[date, date]]]:
    """End-day ranges to recompute: (rolling windows, all-time totals).

    A touched day d affects rolling windows ending d..d+27 and totals ending d..horizon; when the horizon moved
    past the previous refresh, the days in between are new end days for every scope. No previous refresh means
    everything from the oldest day.
    """
    if previous is None:  # first refresh: everything
        everything = [(oldest, horizon)] if oldest is not None and oldest <= horizon else []
        return everything, list(everything)
    starts = [d for d in touched if d <= horizon]
    rolling = [(d, min(horizon, d + timedelta(days=MAX_WINDOW - 1))) for d in starts]
    if previous < horizon:
        starts.append(previous + timedelta(days=1))
        rolling.append((previous + timedelta(days=1), horizon))
    return merge_ranges(rolling), [(min(starts), horizon)] if starts else []


def _write(warehouse: Warehouse, kind: str, metrics: Sequence[EventMetric], lo: date, hi: date) -> None:
    sql = ("INSERT INTO agg_event_metric_daily (key_path, scope, scope_id, metric_date, value, computed_at) "
           "SELECT key_path, scope, scope_id, metric_date, value, now64(3, 'UTC') FROM ("
           + metric_sql(kind, states_sql("agg_behavior_event_daily", None, True)) + ")")
    warehouse.execute(sql, metric_params(kind, metrics, lo, hi, None))


def _log_refresh(warehouse: Warehouse, first: date, horizon: date, touched: list[date], metrics: int,
                 stored_through: datetime | None) -> None:
    warehouse.insert("agg_event_metric_refresh", [{
        "refreshed_at": datetime.now(UTC), "first_end_date": first, "last_end_date": horizon,
        "touched_days": touched, "metrics": metrics, "stored_through": stored_through or _EPOCH,
    }])


def refresh_event_metrics(warehouse: Warehouse, touched_days: Iterable[date],
                          metrics: Sequence[EventMetric] | None = None, today: date | None = None,
                          stored_through: datetime | None = None) -> int:
    """Recompute the metric rows the given event days affect (call after each stored batch); return the
    number of end days recomputed. Idempotent: it reads only the daily states."""
    metrics = list(default_metrics() if metrics is None else metrics)
    touched = sorted(set(touched_days))
    horizon = data_horizon(warehouse, today)
    if horizon is None or not metrics:
        return 0
    previous = _previous_horizon(warehouse)
    rolling, totals = affected_end_days(touched, horizon, previous, _oldest_day(warehouse))
    if not rolling and not totals:
        return 0
    groups = by_kind(metrics)
    for kind, ranges in (("rolling", rolling), ("all", totals)):
        for lo, hi in _chunks(ranges):
            if groups.get(kind):
                _write(warehouse, kind, groups[kind], lo, hi)
    _log_refresh(warehouse, min(r[0] for r in rolling + totals), horizon, touched, len(metrics), stored_through)
    return sum((hi - lo).days + 1 for lo, hi in merge_ranges(rolling + totals))


_NEVER = "toDateTime64(0, 3, 'UTC')"


def mark_touched(warehouse: Warehouse, days: Iterable[date]) -> None:
    """Record that events of these days were stored. Call after the facts insert returned (so the facts are visible
    at touched_at), for every record of the batch, also those skipped as already stored: a batch redelivered after
    a crash then still marks its days."""
    _day_status(warehouse, days, touched_at="now64(3, 'UTC')")


def _day_status(warehouse: Warehouse, days: Iterable[date], touched_at: str = _NEVER, refreshed_from: str = _NEVER,
                params: dict[str, Any] | None = None) -> None:
    """One agg_behavior_day_status row per day; the two times are fixed SQL expressions (values go in `params`)."""
    days = sorted(set(days))
    if days:
        warehouse.execute(
            "INSERT INTO agg_behavior_day_status (behavior_date, touched_at, refreshed_from) "
            f"SELECT toDate(arrayJoin(JSONExtract({{days:String}}, 'Array(String)'))), {touched_at}, {refreshed_from}",
            {"days": orjson.dumps([d.isoformat() for d in days]).decode()} | (params or {}))


def mark_all_touched(warehouse: Warehouse) -> None:
    """Mark every stored event day pending, e.g. after facts were loaded by hand or a table was rebuilt."""
    warehouse.execute("INSERT INTO agg_behavior_day_status (behavior_date, touched_at, refreshed_from) "
                      "SELECT DISTINCT behavior_date, now64(3, 'UTC'), toDateTime64(0, 3, 'UTC') "
                      "FROM fct_behavior_structured_event")


def pending_days(warehouse: Warehouse) -> list[date]:
    rows = warehouse.query("SELECT behavior_date FROM agg_behavior_day_status GROUP BY behavior_date "
                           "HAVING max(touched_at) > max(refreshed_from) ORDER BY behavior_date").rows
    return [d for d in (_date_or_none(row[0]) for row in rows) if d is not None]


# The daily states of one day range, recomputed from the facts (each event once per scope: prep_behavior_event_scope).
# computed_at is the statement's start, when it reads the facts: of two recomputes of a day, the later one read more.
_DAILY_STATES_SQL = {
    "agg_behavior_event_daily": """
INSERT INTO agg_behavior_event_daily
    (behavior_date, scope, scope_id, event_category, event_action, users, events, computed_at)
SELECT behavior_date, scope, scope_id, event_category, event_action,
       groupBitmapStateIf(user_hash, user_hash != 0), toUInt64(count()), now64(3, 'UTC')
FROM prep_behavior_event_scope
WHERE behavior_date BETWEEN {lo:Date} AND {hi:Date} AND event_type = 'struct' AND event_action != ''
GROUP BY behavior_date, scope, scope_id, event_category, event_action""",
    "agg_behavior_active_daily": """
INSERT INTO agg_behavior_active_daily (behavior_date, scope, scope_id, users, events, computed_at)
SELECT behavior_date, scope, scope_id, groupBitmapStateIf(user_hash, user_hash != 0), toUInt64(count()),
       now64(3, 'UTC')
FROM prep_behavior_event_scope
WHERE behavior_date BETWEEN {lo:Date} AND {hi:Date}
GROUP BY behavior_date, scope, scope_id""",
}


def recompute_daily_states(warehouse: Warehouse, days: Iterable[date]) -> None:
    for lo, hi in _chunks(merge_ranges((d, d) for d in days)):
        for sql in _DAILY_STATES_SQL.values():
            warehouse.execute(sql, {"lo": day_text(lo), "hi": day_text(hi)})


def refresh_pending(warehouse: Warehouse, metrics: Sequence[EventMetric] | None = None,
                    today: date | None = None) -> int:
    """Bring every derived behavior table up to date with the facts; return the metric end days recomputed.

    The days touched since their last recompute (agg_behavior_day_status) get their daily states recomputed from the
    facts, then the 7/28-day metrics of the end days those days affect, then the days are marked refreshed as of
    the start of this run. Safe to run at any time, concurrently and repeatedly, and to be killed anywhere: a day
    stays pending until all of it is written, and every step recomputes from what is stored instead of adding to it.
    """
    started = _format_ts(_timestamp(warehouse.query("SELECT now64(3, 'UTC')").scalar()))
    days = pending_days(warehouse)
    recompute_daily_states(warehouse, days)
    end_days = refresh_event_metrics(warehouse, days, metrics, today, stored_through=_timestamp(started))
    _day_status(warehouse, days, refreshed_from="toDateTime64({started:String}, 3, 'UTC')",
                params={"started": started})
    return end_days


def recompute_days(warehouse: Warehouse, days: Iterable[date], metrics: Sequence[EventMetric] | None = None,
                   today: date | None = None) -> int:
    """After facts were deleted (an erasure): recompute the derived tables of these days and delete every row
    written before this run for those days (daily states) and the end days they feed (metrics); return the metric
    end days recomputed. A recompute writes no row for a group whose every event is gone, so without the delete the
    old row (with the erased users in its bitmap) would stand. Concurrent refreshes are safe but for one race: a
    daily recompute that read the facts before they were deleted and wrote after the delete here leaves a stale row;
    the caller checks for it (streams/erase/ proves and repeats)."""
    days = sorted(set(days))
    if not days:
        return 0
    started = _format_ts(_timestamp(warehouse.query("SELECT now64(3, 'UTC')").scalar()))
    recompute_daily_states(warehouse, days)
    params = {"days": orjson.dumps([d.isoformat() for d in days]).decode(), "started": started}
    for table in _DAILY_STATES_SQL:
        warehouse.execute(f"ALTER TABLE {table} DELETE WHERE has(JSONExtract({{days:String}}, 'Array(Date)'), "
                          "behavior_date) AND computed_at < toDateTime64({started:String}, 3, 'UTC') "
                          "SETTINGS mutations_sync = 2", params)
    # The metrics' own start: after the delete above, so a metric row computed since (by us or a concurrent refresh)
    # read daily states that were all recomputed after the facts were deleted.
    params["started"] = _format_ts(_timestamp(warehouse.query("SELECT now64(3, 'UTC')").scalar()))
    metrics = list(default_metrics() if metrics is None else metrics)
    end_days = refresh_event_metrics(warehouse, days, metrics, today)
    rolling = orjson.dumps([m.key_path for m in metrics if metric_kind(m) == "rolling"]).decode()
    # Rolling windows: a day d feeds the end days d..d+27; all-time totals: every end day from the first day on.
    warehouse.execute(
        "ALTER TABLE agg_event_metric_daily DELETE WHERE computed_at < toDateTime64({started:String}, 3, 'UTC') AND "
        "if(has(JSONExtract({rolling:String}, 'Array(String)'), toString(key_path)), "
        f"arrayExists(d -> metric_date BETWEEN d AND d + {MAX_WINDOW - 1}, "
        "JSONExtract({days:String}, 'Array(Date)')), metric_date >= {first:Date}) SETTINGS mutations_sync = 2",
        params | {"rolling": rolling, "first": days[0].isoformat()})
    _forget_beyond_horizon(warehouse, today)
    _day_status(warehouse, days, refreshed_from="toDateTime64({started:String}, 3, 'UTC')",
                params={"started": started})  # the days' states were recomputed from facts as of `started`
    return end_days


def _forget_beyond_horizon(warehouse: Warehouse, today: date | None) -> None:
    """When the newest days lost all their events the horizon moves back: end days after it are no longer
    materialized (as in a rebuild), and the refresh log must not claim them (the next refresh recomputes them)."""
    horizon = data_horizon(warehouse, today) or date(1970, 1, 1)
    if (_previous_horizon(warehouse) or horizon) <= horizon:
        return
    for table, column in (("agg_event_metric_daily", "metric_date"), ("agg_event_metric_refresh", "last_end_date")):
        warehouse.execute(f"ALTER TABLE {table} DELETE WHERE {column} > {{horizon:Date}} SETTINGS mutations_sync = 2",
                          {"horizon": day_text(horizon)})


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


def _format_ts(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def rebuild_event_metrics(warehouse: Warehouse, metrics: Sequence[EventMetric] | None = None,
                          today: date | None = None) -> int:
    """Recompute the given metrics (default: all) from scratch, e.g. after a definition changed."""
    metrics = list(default_metrics() if metrics is None else metrics)
    keys = orjson.dumps([m.key_path for m in metrics]).decode()
    warehouse.execute("DELETE FROM agg_event_metric_daily WHERE has(JSONExtract({keys:String}, 'Array(String)'), "
                      "toString(key_path))", {"keys": keys})
    sync_event_metric_definitions(warehouse, metrics)
    horizon, oldest = data_horizon(warehouse, today), _oldest_day(warehouse)
    if horizon is None or oldest is None:
        return 0
    for kind, group in by_kind(metrics).items():
        for lo, hi in _chunks([(oldest, horizon)]):
            _write(warehouse, kind, group, lo, hi)
    return (horizon - oldest).days + 1  # not logged: the refresh log tracks the whole definition set


def sync_event_metric_definitions(warehouse: Warehouse, metrics: Sequence[EventMetric] | None = None) -> int:
    """Write the definitions to dim_event_metric (the mart reads stage/group/time_frame from it)."""
    metrics = list(default_metrics() if metrics is None else metrics)
    now = datetime.now(UTC)
    rows = [{
        "key_path": m.key_path, "description": m.description, "time_frame": m.time_frame,
        "value_type": m.value_type, "operator": m.operator, "events": [e.label() for e in m.events],
        "product_section": m.product_section, "product_stage": m.product_stage, "product_group": m.product_group,
        "metric_status": m.status, "tier": list(m.tier),
        "performance_indicator_type": list(m.performance_indicator_type),
        "is_smau": int(m.has_indicator("smau")), "is_gmau": int(m.has_indicator("gmau")),
        "is_paid_gmau": int(m.has_indicator("paid_gmau")), "is_umau": int(m.has_indicator("umau")), "loaded_at": now,
    } for m in metrics]
    return warehouse.insert("dim_event_metric", rows)
