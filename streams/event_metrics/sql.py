"""Event metrics as SQL: the scopes, and the statements that turn daily states into metric values (used by
refresh.py to materialize them and by read.py to read rolled-up scopes). Only fixed identifiers are formatted in;
every value is a bound parameter.
"""


from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import Any

import orjson

from streams.event_metrics.definitions import EventMetric, load_event_metrics

STORED_SCOPES = ("instance", "namespace", "saas")
# Scopes rolled up at query time from namespace states: scope -> dim_namespace column (a fixed identifier).
ROLLUP_SCOPES = {"subscription": "dim_subscription_id", "account": "dim_crm_account_id"}
SCOPES = STORED_SCOPES + tuple(ROLLUP_SCOPES)
MAX_WINDOW = 28
CHUNK_DAYS = 31  # end days per refresh statement: bounds the fan-out of one INSERT ... SELECT


@functools.cache
def default_metrics() -> tuple[EventMetric, ...]:
    return tuple(load_event_metrics())


def day_text(value: date | str) -> str:
    return value.isoformat() if isinstance(value, date) else date.fromisoformat(value).isoformat()


def check_scope(scope: str) -> None:
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; one of {list(SCOPES)}")


# ---------------------------------------------------------------------------------------------------
# SQL building blocks. Only fixed identifiers are formatted in; every value is a bound parameter.


def states_sql(table: str, scope: str | None, event_columns: bool) -> str:
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
DEFS_SQL = """
SELECT tupleElement(d, 1) AS key_path, tupleElement(d, 2) AS value_type, tupleElement(d, 3) AS operator,
       tupleElement(d, 4) AS window_days, tupleElement(d, 5) AS n_events,
       tupleElement(d, 6) AS category, tupleElement(d, 7) AS action
FROM (SELECT arrayJoin(JSONExtract({defs:String},
      'Array(Tuple(String, String, String, Int64, UInt64, String, String))')) AS d)
"""


def defs_json(metrics: Iterable[EventMetric]) -> str:
    rows = [[m.key_path, m.value_type, m.operator, m.window_days, len(m.events), e.category, e.action]
            for m in metrics for e in m.events]
    return orjson.dumps(rows).decode()


def event_windows_sql(states: str) -> str:
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
    INNER JOIN (SELECT DISTINCT category, action, window_days FROM ({DEFS_SQL})) AS e
        ON s.event_category = e.category AND s.event_action = e.action
)
GROUP BY window_days, scope, scope_id, category, action, metric_date
"""


def rolling_sql(states: str) -> str:
    # OR: the union of the events' window users (or the sum of their events); AND (power users): the intersection
    # of the events' window users, 0 when one of the events did not happen in the window.
    return f"""
SELECT m.key_path AS key_path, w.scope AS scope, w.scope_id AS scope_id, w.metric_date AS metric_date,
       multiIf(m.operator = 'AND', if(count() = any(m.n_events), groupBitmapAnd(w.users), 0),
               m.value_type = 'user', groupBitmapMerge(w.users),
               m.value_type = 'event', sum(w.events),
               toUInt64(sum(w.events) > 0)) AS value
FROM ({event_windows_sql(states)}) AS w
INNER JOIN ({DEFS_SQL}) AS m
    ON w.category = m.category AND w.action = m.action AND w.window_days = m.window_days
GROUP BY key_path, m.value_type, m.operator, scope, scope_id, metric_date
HAVING value > 0
"""


def all_time_sql(states: str) -> str:
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
        INNER JOIN ({DEFS_SQL}) AS m ON s.event_category = m.category AND s.event_action = m.action
        GROUP BY key_path, value_type, scope, scope_id, first_day
    )
)
GROUP BY key_path, value_type, scope, scope_id, metric_date
HAVING value > 0
"""


def metric_sql(kind: str, states: str) -> str:
    return {"rolling": rolling_sql, "all": all_time_sql}[kind](states)


def metric_kind(metric: EventMetric) -> str:
    return "all" if metric.window_days == 0 else "rolling"


def metric_params(kind: str, metrics: Sequence[EventMetric], lo: date, hi: date, scope: str | None) -> dict[str, Any]:
    src_lo = date(1970, 1, 1) if kind == "all" else lo - timedelta(days=MAX_WINDOW - 1)
    params: dict[str, Any] = {"defs": defs_json(metrics), "lo": day_text(lo), "hi": day_text(hi),
                              "src_lo": day_text(src_lo)}
    if scope is not None:
        params["scope"] = scope
    return params


def by_kind(metrics: Iterable[EventMetric]) -> dict[str, list[EventMetric]]:
    groups: dict[str, list[EventMetric]] = {}
    for metric in metrics:
        groups.setdefault(metric_kind(metric), []).append(metric)
    return groups
