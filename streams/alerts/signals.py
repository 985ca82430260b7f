"""Reading a rule's signal for a set of scopes from the warehouse (only those scopes, only recent history).

Sources and scopes (scope ids are what the sinks announce on usage.landed):
- service_ping: one point per installation and week (or day): the latest ping's `active_user_count` column of
  fct_ping_instance, or a 7d/28d metric of fct_ping_instance_metric. Error markers (-1, -2, ...) are NULL there,
  so a failed counter is a missing point, never a drop. Subscriptions and accounts: pings mapped through
  `prep_ping_subscription` (reference data) when it exists, else the subscription id the license in the
  ping names (accounts need the reference data).
- seat_link: fct_seat_link.active_user_count per installation and day; subscriptions and accounts through
  `prep_seat_link_subscription` (license by md5 or sha256 -> subscription -> account).
- events: distinct users over the 7/28 days ending on each day, merged from the daily bitmaps of
  agg_behavior_active_daily (instance = instance uuid, namespace = top-level namespace); subscriptions and
  accounts union their namespaces' bitmaps through dim_namespace (exact distinct users, not a sum).
Every value travels as a bound parameter; only fixed SQL fragments chosen here are put together.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import date, timedelta

from streams.alerts import series as S
from streams.alerts.evaluate import Point
from streams.alerts.params import id_list, json_ids
from streams.alerts.rules import Rule
from streams.warehouse import Warehouse

EPOCH = date(1970, 1, 1)
_PERIOD_SQL = {"week": "toMonday({col})", "day": "toDate({col})"}
IDS = id_list("ids")
_GROUP_COLUMN = {"subscription": "dim_subscription_id", "account": "dim_crm_account_id"}


class Tables:
    """Which tables exist (other parts of the model arrive with their own migrations)."""

    def __init__(self, warehouse: Warehouse, ttl_seconds: float = 30.0) -> None:
        self.warehouse = warehouse
        self.ttl_seconds = ttl_seconds
        self._names: set[str] = set()
        self._read_at = float("-inf")

    def __contains__(self, name: object) -> bool:
        if name not in self._names and time.monotonic() - self._read_at > self.ttl_seconds:
            rows = self.warehouse.query("SELECT name FROM system.tables WHERE database = currentDatabase()").rows
            self._names = {row[0] for row in rows}
            self._read_at = time.monotonic()
        return name in self._names


def _date(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _ids_params(ids: Iterable[str] | None) -> dict:
    return {"all": 1 if ids is None else 0, "ids": json_ids(ids or [])}


class SignalReader:
    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse
        self.tables = Tables(warehouse)

    # -- availability ----------------------------------------------------------------------------

    def missing(self, rule: Rule) -> str | None:
        """Why this rule cannot be evaluated yet (a table it needs does not exist), or None."""
        needs = {
            "service_ping": ["fct_ping_instance"] + (["fct_ping_instance_metric"] if rule.signal.metric else []),
            "seat_link": ["fct_seat_link"],
            "events": ["agg_behavior_active_daily"],
        }[rule.signal.source]
        if rule.signal.source == "service_ping" and rule.scope == "account":
            needs.append("prep_ping_subscription")
        if rule.signal.source == "seat_link" and rule.scope in ("subscription", "account"):
            needs.append("prep_seat_link_subscription")
        if rule.signal.source == "events" and rule.scope in ("subscription", "account"):
            needs.append("dim_namespace")
        absent = [name for name in needs if name not in self.tables]
        return f"needs {', '.join(absent)}" if absent else None

    # -- which scopes a landing affects ----------------------------------------------------------

    def affected(self, rule: Rule, landed_type: str, landed_ids: Iterable[str]) -> set[str]:
        """Scope ids of `rule.scope` that data landed for scopes (landed_type, landed_ids) can change."""
        ids = sorted(set(landed_ids))
        if not ids:
            return set()
        if landed_type == rule.scope:
            return set(ids)
        source = rule.signal.source
        params = {"ids": json_ids(ids)}
        if source == "service_ping" and landed_type == "instance":
            sql = f"""SELECT DISTINCT group_id FROM ({self._ping_groups(rule.scope)}) AS m
                      WHERE ping_id IN (SELECT ping_id FROM fct_ping_instance
                                        WHERE installation_id IN {IDS})
                        AND group_id != ''"""
        elif source == "seat_link" and landed_type == "instance":
            sql = f"""SELECT DISTINCT group_id FROM ({self._seat_link_groups(rule.scope)})
                      WHERE installation_id IN {IDS} AND group_id != ''"""
        elif source == "events" and landed_type == "namespace" and rule.scope in ("subscription", "account"):
            column = _GROUP_COLUMN[rule.scope]
            sql = f"""SELECT DISTINCT {column} FROM dim_namespace FINAL
                      WHERE toString(namespace_id) IN {IDS} AND {column} != ''"""
        else:
            return set()
        return {str(row[0]) for row in self.warehouse.query(sql, params).rows}

    # -- series ------------------------------------------------------------------------------------

    def series(self, rule: Rule, ids: Iterable[str] | None, since: date | None = None,
               today: date | None = None) -> dict[str, list[Point]]:
        """The rule's points per scope id, for `ids` (None: every scope), from `since` on."""
        since = since or EPOCH
        if rule.signal.period == "week":
            since -= timedelta(days=since.weekday())  # whole weeks only
        source = rule.signal.source
        if source == "events":
            return self._events(rule, ids, since, today or date.today())
        if rule.scope == "instance":
            values = self._ping_values(rule) if source == "service_ping" else self._seat_link_values()
            sql = f"""SELECT installation_id, {self._period(rule)} AS period, argMax(value, recorded_at)
                      FROM ({values}) WHERE ({{all:UInt8}} = 1 OR installation_id IN {IDS})
                        AND recorded_at >= {{since:Date}}
                      GROUP BY installation_id, period"""
            rows = self.warehouse.query(sql, self._params(rule, ids, since)).rows
            return S.by_scope((str(i), _date(p), float(v)) for i, p, v in rows)
        if source == "service_ping":
            sql = f"""SELECT m.group_id, v.installation_id, {self._period(rule, 'v.recorded_at')} AS period,
                             argMax(v.value, v.recorded_at)
                      FROM ({self._ping_values(rule)}) AS v
                      INNER JOIN ({self._ping_groups(rule.scope)}) AS m ON v.ping_id = m.ping_id
                      WHERE ({{all:UInt8}} = 1 OR m.group_id IN {IDS}) AND m.group_id != ''
                        AND v.recorded_at >= {{since:Date}}
                      GROUP BY m.group_id, v.installation_id, period"""
        else:
            sql = f"""SELECT m.group_id, s.installation_id, {self._period(rule, 's.recorded_at')} AS period,
                             argMax(s.value, s.recorded_at)
                      FROM ({self._seat_link_values()}) AS s
                      INNER JOIN ({self._seat_link_groups(rule.scope)}) AS m ON s.seat_link_id = m.seat_link_id
                      WHERE ({{all:UInt8}} = 1 OR m.group_id IN {IDS}) AND m.group_id != ''
                        AND s.recorded_at >= {{since:Date}}
                      GROUP BY m.group_id, s.installation_id, period"""
        rows = self.warehouse.query(sql, self._params(rule, ids, since)).rows
        return S.rollup(((str(g), str(m), _date(p), float(v)) for g, m, p, v in rows), rule.carry_forward_days)

    def all_ids(self, rule: Rule) -> list[str]:
        return sorted(self.series(rule, None).keys())

    @staticmethod
    def _params(rule: Rule, ids: Iterable[str] | None, since: date) -> dict:
        metric = {"metric": rule.signal.metric} if rule.signal.metric else {}
        return _ids_params(ids) | {"since": since.isoformat()} | metric

    # -- SQL pieces (fixed text, chosen by rule fields that were validated) -------------------------

    @staticmethod
    def _period(rule: Rule, column: str = "recorded_at") -> str:
        return _PERIOD_SQL[rule.signal.period].format(col=column)

    @staticmethod
    def _ping_values(rule: Rule) -> str:
        if rule.signal.measure == "metric":
            return ("SELECT ping_id, installation_id, recorded_at, metric_value AS value "
                    "FROM fct_ping_instance_metric FINAL "
                    "WHERE metrics_path = {metric:String} AND metric_value IS NOT NULL")
        return ("SELECT ping_id, installation_id, recorded_at, toFloat64(active_user_count) AS value "
                "FROM fct_ping_instance FINAL WHERE active_user_count IS NOT NULL AND active_user_count >= 0")

    @staticmethod
    def _seat_link_values() -> str:
        return ("SELECT seat_link_id, installation_id, report_timestamp AS recorded_at, "
                "toFloat64(active_user_count) AS value FROM fct_seat_link FINAL "
                "WHERE active_user_count IS NOT NULL AND active_user_count >= 0")

    def _ping_groups(self, scope: str) -> str:
        """ping_id -> subscription or account id (the reference model's matching, else the reported id)."""
        if "prep_ping_subscription" in self.tables:
            return f"SELECT ping_id, {_GROUP_COLUMN[scope]} AS group_id FROM prep_ping_subscription"
        return "SELECT ping_id, license_subscription_id AS group_id FROM fct_ping_instance FINAL"

    @staticmethod
    def _seat_link_groups(scope: str) -> str:
        """seat_link_id -> subscription or account id (license by md5 or sha256, as the reference model)."""
        return (f"SELECT seat_link_id, installation_id, {_GROUP_COLUMN[scope]} AS group_id "
                "FROM prep_seat_link_subscription")

    def _events(self, rule: Rule, ids: Iterable[str] | None, since: date, today: date) -> dict[str, list[Point]]:
        """Distinct users of the window ending on each day. A day counts as complete once the scope has events
        of a later day (its users keep arriving until then), so a partly loaded history never looks like a
        drop; `include_ongoing` also evaluates the newest day, today included."""
        window = rule.signal.window_days
        until = today if rule.include_ongoing else today - timedelta(days=1)
        lowest = since - timedelta(days=window - 1)  # the first window needs its earlier days
        params = _ids_params(ids) | {"w": window, "scope": rule.scope, "lo": lowest.isoformat(),
                                     "since": since.isoformat(), "until": until.isoformat(),
                                     "today": today.isoformat()}
        if rule.scope in ("instance", "namespace"):
            daily = f"""SELECT scope_id AS group_id, behavior_date, users FROM agg_behavior_active_daily FINAL
                        WHERE scope = {{scope:String}} AND ({{all:UInt8}} = 1 OR scope_id IN {IDS})
                          AND behavior_date BETWEEN {{lo:Date}} AND {{today:Date}}"""
        else:
            column = _GROUP_COLUMN[rule.scope]
            daily = f"""SELECT n.group_id AS group_id, a.behavior_date AS behavior_date, a.users AS users
                        FROM agg_behavior_active_daily AS a FINAL
                        INNER JOIN (SELECT toString(namespace_id) AS scope_id, {column} AS group_id
                                    FROM dim_namespace FINAL WHERE {column} != '') AS n ON a.scope_id = n.scope_id
                        WHERE a.scope = 'namespace' AND ({{all:UInt8}} = 1 OR n.group_id IN {IDS})
                          AND a.behavior_date BETWEEN {{lo:Date}} AND {{today:Date}}"""
        sql = f"""SELECT group_id, toDate(behavior_date + k) AS day, groupBitmapMerge(users) AS users
                  FROM ({daily}) ARRAY JOIN range({{w:UInt32}}) AS k
                  GROUP BY group_id, day
                  HAVING day BETWEEN {{since:Date}} AND {{until:Date}}"""
        rows = self.warehouse.query(sql, params).rows
        newest = self.warehouse.query(f"SELECT group_id, max(behavior_date) FROM ({daily}) GROUP BY group_id",
                                      params).rows
        lag = timedelta(days=0 if rule.include_ongoing else 1)
        ends = {str(g): min(until, _date(d) - lag) for g, d in newest}
        series = S.by_scope((str(g), _date(d), float(u)) for g, d, u in rows)
        return S.fill_days({g: [p for p in points if p.period <= ends[g]] for g, points in series.items()}, ends)
