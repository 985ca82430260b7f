"""Reading event metrics: one metric per scope and day, active users over 1/7/28-day windows, SaaS users per month
and stage (xMAU).
"""


from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import orjson

from streams.event_metrics.definitions import EventMetric
from streams.event_metrics.sql import (
    STORED_SCOPES,
    check_scope,
    day_text,
    default_metrics,
    metric_kind,
    metric_params,
    metric_sql,
    states_sql,
)
from streams.warehouse import QueryResult, Warehouse


def metric_series(warehouse: Warehouse, metric: EventMetric, scope: str, start: date, end: date) -> QueryResult:
    """(metric_date, scope_id, value) of one metric for every end day in [start, end] (missing row = 0).

    Stored scopes read agg_event_metric_daily; subscription and account are merged from the namespace states
    through dim_namespace at query time.
    """
    check_scope(scope)
    if scope in STORED_SCOPES:
        return warehouse.query(
            "SELECT metric_date, scope_id, value FROM agg_event_metric_daily FINAL "
            "WHERE scope = {scope:String} AND key_path = {key:String} AND metric_date BETWEEN {lo:Date} AND {hi:Date} "
            "ORDER BY metric_date, scope_id",
            {"scope": scope, "key": metric.key_path, "lo": day_text(start), "hi": day_text(end)},
        )
    kind = metric_kind(metric)
    sql = metric_sql(kind, states_sql("agg_behavior_event_daily", scope, True))
    return warehouse.query(f"SELECT metric_date, scope_id, value FROM ({sql}) ORDER BY metric_date, scope_id",
                           metric_params(kind, [metric], start, end, scope))


def active_users(warehouse: Warehouse, scope: str, start: date, end: date, window_days: int = 28) -> QueryResult:
    """(day, scope_id, users): distinct users with any event in the window ending on each day in [start, end].

    Reads only the daily states of agg_behavior_active_daily: days x scopes, whatever the event volume."""
    check_scope(scope)
    if window_days not in (1, 7, 28):
        raise ValueError("window_days must be 1, 7 or 28")
    states = states_sql("agg_behavior_active_daily", scope, False)
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
    params = {"scope": scope, "lo": day_text(start), "hi": day_text(end), "window": window_days,
              "src_lo": day_text(start - timedelta(days=window_days - 1))}
    return warehouse.query(sql, params)


def active_users_28d(warehouse: Warehouse, scope: str, start: date | str, end: date | str) -> QueryResult:
    """28-day active users per scope_id for every day in [start, end]: rows (day, scope_id, users)."""
    lo, hi = date.fromisoformat(day_text(start)), date.fromisoformat(day_text(end))
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
    return warehouse.query(sql, {"attrs": attrs, "lo": day_text(start_month), "hi": day_text(end_month)})
