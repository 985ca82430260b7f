"""Event metrics in the warehouse: daily states recomputed from the facts, rolling 7/28-day windows from them.

Derived tables are exactly once whatever the moment of a crash (clickhouse/071): a daily state is a pure function of
the facts of its day, recomputed rather than added to, so a redelivered batch or a worker killed mid-insert can
leave a day pending, never counted twice or short:

- ``mark_touched``: the sink records the event days of each batch it stored (after the facts insert returned).
- ``refresh_pending``: recomputes the daily states (agg_behavior_event_daily, agg_behavior_active_daily: an exact
  bitmap of user hashes and an event count per UTC day x scope (x event)) of every touched day from
  fct_behavior_structured_event, then ``refresh_event_metrics`` recomputes ``agg_event_metric_daily`` for the window
  end days those days affect (a late event on day d changes the windows ending on d..d+27, d..horizon for all-time
  totals), then marks the days refreshed. The Snowplow sink runs it before it acks a batch; the worker's timer runs
  it too (for other writers: replays, backfills, and the horizon moving with the date).
- ``metric_series`` / ``active_users`` / ``active_users_28d``: per scope and day; subscription and account scopes
  join the namespace states to ``dim_namespace FINAL`` at query time, so late reference data applies to history.
- ``saas_monthly_users_by_stage``: SaaS users per month x stage x group x metric, for xMAU.

Windows are UTC days: the window ending on day D covers D-6..D (7d) or D-27..D (28d). End days are materialized up
to the data horizon (newest event day, capped at today); a missing row means 0. Metrics merge daily states, so a
query's cost depends on days x scopes (x events), never on raw event volume.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from streams.enrich.event_metrics import EventMetric, load_event_metrics
from streams.warehouse import QueryResult, Warehouse

STORED_SCOPES = ("instance", "namespace", "saas")
# Scopes rolled up at query time from namespace states: scope -> dim_namespace column (a fixed identifier).
ROLLUP_SCOPES = {"subscription": "dim_subscription_id", "account": "dim_crm_account_id"}
SCOPES = STORED_SCOPES + tuple(ROLLUP_SCOPES)
MAX_WINDOW = 28
CHUNK_DAYS = 31  # end days per refresh statement: bounds the fan-out of one INSERT ... SELECT


@functools.cache
def default_metrics() -> tuple[EventMetric, ...]:
    return tuple(load_event_metrics())


def _day(value: date | str) -> str:
    return value.isoformat() if isinstance(value, date) else date.fromisoformat(value).isoformat()


def _check_scope(scope: str) -> None:
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; one of {list(SCOPES)}")


# ---------------------------------------------------------------------------------------------------
# SQL building blocks. Only fixed identifiers are formatted in; every value is a bound parameter.


def _states_sql(table: str, scope: str | None, event_columns: bool) -> str:
    """Daily states of ``table`` as (behavior_date, scope, scope_id, [event_category, event_action,] users, events).

    scope None: every stored scope (materialization). A rollup scope maps namespace states through dim_namespace;
    the date bounds are the parameters {src_lo:Date} and {hi:Date}.
    """
    events = "a.event_category AS event_category, a.event_action AS event_action, " if event_columns else ""
    dates = "a.behavior_date BETWEEN {src_lo:Date} AND {hi:Date}"
    if scope is None:
        return (f"SELECT a.behavior_date AS behavior_date, a.scope AS scope, a.scope_id AS scope_id, {events}"
                f"a.users AS users, a.events AS events FROM {table} AS a FINAL WHERE {dates}")
    if scope in STORED_SCOPES:
        return (f"SELECT a.behavior_date AS behavior_date, a.scope AS scope, a.scope_id AS scope_id, {events}"
                f"a.users AS users, a.events AS events FROM {table} AS a FINAL "
                f"WHERE a.scope = {{scope:String}} AND {dates}")
    column = ROLLUP_SCOPES[scope]
    return (f"SELECT a.behavior_date AS behavior_date, {{scope:String}} AS scope, m.rollup_id AS scope_id, {events}"
            f"a.users AS users, a.events AS events FROM {table} AS a FINAL "
            f"INNER JOIN (SELECT toString(namespace_id) AS namespace_key, {column} AS rollup_id "
            f"FROM dim_namespace FINAL WHERE {column} != '') AS m ON a.scope_id = m.namespace_key "
            f"WHERE a.scope = 'namespace' AND {dates}")


# Metric definitions travel as one JSON parameter (portable across chdb and clickhouse-connect): one entry per
# (metric, event).
_DEFS_SQL = """
SELECT tupleElement(d, 1) AS key_path, tupleElement(d, 2) AS value_type, tupleElement(d, 3) AS operator,
       tupleElement(d, 4) AS window_days, tupleElement(d, 5) AS n_events,
       tupleElement(d, 6) AS category, tupleElement(d, 7) AS action
FROM (SELECT arrayJoin(JSONExtract({defs:String},
      'Array(Tuple(String, String, String, Int64, UInt64, String, String))')) AS d)
"""


def _defs_json(metrics: Iterable[EventMetric]) -> str:
    rows = [[m.key_path, m.value_type, m.operator, m.window_days, len(m.events), e.category, e.action]
            for m in metrics for e in m.events]
    return orjson.dumps(rows).decode()


def _event_windows_sql(states: str) -> str:
    """One state per (window length, scope, event, end day in [lo, hi]): the window's users and events.

    Computed once per event, however many metrics share it; each daily state goes to the end days whose
    window holds its day."""
    return f"""
SELECT window_days, scope, scope_id, category, action, metric_date,
       groupBitmapMergeState(users) AS users, sum(events) AS events
FROM (
    SELECT e.window_days AS window_days, s.scope AS scope, s.scope_id AS scope_id, s.event_category AS category,
           s.event_action AS action, s.users AS users, s.events AS events,
           s.behavior_date + arrayJoin(range(
               dateDiff('day', s.behavior_date, greatest(s.behavior_date, {{lo:Date}})),
               dateDiff('day', s.behavior_date, least(s.behavior_date + (e.window_days - 1), {{hi:Date}})) + 1
           )) AS metric_date
    FROM ({states}) AS s
    INNER JOIN (SELECT DISTINCT category, action, window_days FROM ({_DEFS_SQL})) AS e
        ON s.event_category = e.category AND s.event_action = e.action
)
GROUP BY window_days, scope, scope_id, category, action, metric_date
"""


def _rolling_sql(states: str) -> str:
    # OR: the union of the events' window users (or the sum of their events); AND (power users): the intersection
    # of the events' window users, 0 when one of the events did not happen in the window.
    return f"""
SELECT m.key_path AS key_path, w.scope AS scope, w.scope_id AS scope_id, w.metric_date AS metric_date,
       multiIf(m.operator = 'AND', if(count() = any(m.n_events), groupBitmapAnd(w.users), 0),
               m.value_type = 'user', groupBitmapMerge(w.users),
               m.value_type = 'event', sum(w.events),
               toUInt64(sum(w.events) > 0)) AS value
FROM ({_event_windows_sql(states)}) AS w
INNER JOIN ({_DEFS_SQL}) AS m
    ON w.category = m.category AND w.action = m.action AND w.window_days = m.window_days
GROUP BY key_path, m.value_type, m.operator, scope, scope_id, metric_date
HAVING value > 0
"""


def _all_time_sql(states: str) -> str:
    # Days before lo are summed into lo, then every day's count is carried to every end day up to hi.
    return f"""
SELECT key_path, scope, scope_id, metric_date,
       if(value_type = 'event', sum(day_events), toUInt64(sum(day_events) > 0)) AS value
FROM (
    SELECT key_path, value_type, scope, scope_id, day_events,
           first_day + arrayJoin(range(dateDiff('day', first_day, {{hi:Date}}) + 1)) AS metric_date
    FROM (
        SELECT m.key_path AS key_path, m.value_type AS value_type, s.scope AS scope, s.scope_id AS scope_id,
               greatest(s.behavior_date, {{lo:Date}}) AS first_day, sum(s.events) AS day_events
        FROM ({states}) AS s
        INNER JOIN ({_DEFS_SQL}) AS m ON s.event_category = m.category AND s.event_action = m.action
        GROUP BY key_path, value_type, scope, scope_id, first_day
    )
)
GROUP BY key_path, value_type, scope, scope_id, metric_date
HAVING value > 0
"""


def _metric_sql(kind: str, states: str) -> str:
    return {"rolling": _rolling_sql, "all": _all_time_sql}[kind](states)


def _kind(metric: EventMetric) -> str:
    return "all" if metric.window_days == 0 else "rolling"


def _params(kind: str, metrics: Sequence[EventMetric], lo: date, hi: date, scope: str | None) -> dict[str, Any]:
    src_lo = date(1970, 1, 1) if kind == "all" else lo - timedelta(days=MAX_WINDOW - 1)
    params: dict[str, Any] = {"defs": _defs_json(metrics), "lo": _day(lo), "hi": _day(hi), "src_lo": _day(src_lo)}
    if scope is not None:
        params["scope"] = scope
    return params


def _by_kind(metrics: Iterable[EventMetric]) -> dict[str, list[EventMetric]]:
    groups: dict[str, list[EventMetric]] = {}
    for metric in metrics:
        groups.setdefault(_kind(metric), []).append(metric)
    return groups


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
           + _metric_sql(kind, _states_sql("agg_behavior_event_daily", None, True)) + ")")
    warehouse.execute(sql, _params(kind, metrics, lo, hi, None))


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
    groups = _by_kind(metrics)
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
            warehouse.execute(sql, {"lo": _day(lo), "hi": _day(hi)})


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
    the caller checks for it (streams/erase.py proves and repeats)."""
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
    rolling = orjson.dumps([m.key_path for m in metrics if _kind(m) == "rolling"]).decode()
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
                          {"horizon": _day(horizon)})


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
    for kind, group in _by_kind(metrics).items():
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


# ---------------------------------------------------------------------------------------------------
# Reading


def metric_series(warehouse: Warehouse, metric: EventMetric, scope: str, start: date, end: date) -> QueryResult:
    """(metric_date, scope_id, value) of one metric for every end day in [start, end] (missing row = 0).

    Stored scopes read agg_event_metric_daily; subscription and account are merged from the namespace states
    through dim_namespace at query time.
    """
    _check_scope(scope)
    if scope in STORED_SCOPES:
        return warehouse.query(
            "SELECT metric_date, scope_id, value FROM agg_event_metric_daily FINAL "
            "WHERE scope = {scope:String} AND key_path = {key:String} AND metric_date BETWEEN {lo:Date} AND {hi:Date} "
            "ORDER BY metric_date, scope_id",
            {"scope": scope, "key": metric.key_path, "lo": _day(start), "hi": _day(end)},
        )
    kind = _kind(metric)
    sql = _metric_sql(kind, _states_sql("agg_behavior_event_daily", scope, True))
    return warehouse.query(f"SELECT metric_date, scope_id, value FROM ({sql}) ORDER BY metric_date, scope_id",
                           _params(kind, [metric], start, end, scope))


def active_users(warehouse: Warehouse, scope: str, start: date, end: date, window_days: int = 28) -> QueryResult:
    """(day, scope_id, users): distinct users with any event in the window ending on each day in [start, end].

    Reads only the daily states of agg_behavior_active_daily: days x scopes, whatever the event volume."""
    _check_scope(scope)
    if window_days not in (1, 7, 28):
        raise ValueError("window_days must be 1, 7 or 28")
    states = _states_sql("agg_behavior_active_daily", scope, False)
    sql = f"""
SELECT metric_date AS day, scope_id, groupBitmapMerge(users) AS users
FROM (
    SELECT scope_id, users,
           behavior_date + arrayJoin(range(
               dateDiff('day', behavior_date, greatest(behavior_date, {{lo:Date}})),
               dateDiff('day', behavior_date, least(behavior_date + {{window:Int64}} - 1, {{hi:Date}})) + 1
           )) AS metric_date
    FROM ({states})
)
GROUP BY metric_date, scope_id
HAVING users > 0
ORDER BY day, scope_id
"""
    params = {"scope": scope, "lo": _day(start), "hi": _day(end), "window": window_days,
              "src_lo": _day(start - timedelta(days=window_days - 1))}
    return warehouse.query(sql, params)


def active_users_28d(warehouse: Warehouse, scope: str, start: date | str, end: date | str) -> QueryResult:
    """28-day active users per scope_id for every day in [start, end]: rows (day, scope_id, users)."""
    lo, hi = date.fromisoformat(_day(start)), date.fromisoformat(_day(end))
    return active_users(warehouse, scope, lo, hi, 28)


def saas_monthly_users_by_stage(warehouse: Warehouse, start_month: date, end_month: date,
                                metrics: Sequence[EventMetric] | None = None, only_xmau: bool = True) -> QueryResult:
    """GitLab.com-wide users per month for xMAU: rows (month, stage, group, metric, users).

    users = the 28-day user metric on the last day of the month (the last 28 days of the calendar month), from the
    'saas' scope (every SaaS event, users counted once across namespaces). A month appears once the data horizon
    reached its last day. only_xmau keeps metrics tagged umau/smau/gmau/paid_gmau.
    """
    chosen = [m for m in (default_metrics() if metrics is None else metrics)
              if m.time_frame == "28d" and m.value_type == "user" and (m.is_xmau or not only_xmau)]
    attrs = orjson.dumps([[m.key_path, m.product_stage, m.product_group] for m in chosen]).decode()
    sql = """
SELECT toStartOfMonth(v.metric_date) AS month, d.stage AS stage, d.group AS group, toString(v.key_path) AS metric,
       v.value AS users
FROM agg_event_metric_daily AS v FINAL
INNER JOIN (
    SELECT tupleElement(t, 1) AS key_path, tupleElement(t, 2) AS stage, tupleElement(t, 3) AS group
    FROM (SELECT arrayJoin(JSONExtract({attrs:String}, 'Array(Tuple(String, String, String))')) AS t)
) AS d ON d.key_path = toString(v.key_path)
WHERE v.scope = 'saas' AND v.metric_date = toLastDayOfMonth(v.metric_date)
  AND v.metric_date BETWEEN toLastDayOfMonth({lo:Date}) AND toLastDayOfMonth({hi:Date})
ORDER BY month, stage, group, metric
"""
    return warehouse.query(sql, {"attrs": attrs, "lo": _day(start_month), "hi": _day(end_month)})
