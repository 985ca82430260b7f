"""What the event metrics must show for a generated Snowplow sample, computed in Python from the generator's own
rows (never from the warehouse), next to readers of what the warehouse shows.

The rules restated here, independently of the SQL (clickhouse/026-028 and 067-074, streams/event_metrics/):
- an event counts for a namespace only when it is a SaaS event (realm ``saas`` or deployment_type ``.com``), under
  its ultimate parent namespace (else its namespace); self-managed namespace ids are local to their instance;
- the window ending on day D covers D-6..D (7d) or D-27..D (28d); ``all`` covers every day up to D;
- user metrics count distinct users (OR: of any of the events; AND: of every event, power users), event metrics
  count events, boolean metrics are 1 when any event happened; a value of 0 is no row;
- monthly values are those of the window ending on the month's last day, for months whose last day is on or
  before the data horizon (the newest event day, capped at today).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from fleet.snowplow import ExpectedRow, SnowplowFleet
from streams.event_metrics.definitions import EventMetric, load_event_metrics
from streams.event_metrics.read import active_users
from streams.warehouse import Warehouse

XMAU_FLAGS = (("umau", "UMAU"), ("smau", "SMAU"), ("gmau", "GMAU"))  # SaaS has no Paid GMAU rows (clickhouse/067)

Cells = dict[tuple, int]


def is_saas(row: ExpectedRow) -> bool:
    return row.realm == "saas" or row.deployment_type == ".com"


def namespace_of(row: ExpectedRow) -> int:
    """The namespace an event counts for; 0 when it counts for none (self-managed, or no namespace)."""
    if not is_saas(row):
        return 0
    return row.ultimate_parent_namespace_id or row.namespace_id


def horizon(rows: Iterable[ExpectedRow], today: date | None = None) -> date | None:
    days = [row.behavior_date for row in rows]
    return min(max(days), today or datetime.now(UTC).date()) if days else None


def month_ends(rows: Sequence[ExpectedRow], today: date | None = None) -> list[date]:
    """Last days of the months from the first event's month up to the data horizon."""
    last = horizon(rows, today)
    if last is None:
        return []
    ends, month = [], min(row.behavior_date for row in rows).replace(day=1)
    while True:
        end = (month + timedelta(days=32)).replace(day=1) - timedelta(days=1)
        if end > last:
            return ends
        ends.append(end)
        month = end + timedelta(days=1)


def _in_window(day: date, end: date, window_days: int) -> bool:
    return day <= end and (window_days == 0 or day > end - timedelta(days=window_days))


@dataclass(frozen=True)
class FleetEventMetrics:
    """The expected numbers of one Snowplow sample."""

    rows: list[ExpectedRow]
    metrics: tuple[EventMetric, ...]
    ends: list[date]

    @classmethod
    def of(cls, fleet: SnowplowFleet, metrics: Sequence[EventMetric] | None = None,
           today: date | None = None) -> FleetEventMetrics:
        rows = list(fleet.expected_rows().values())
        return cls(rows, tuple(load_event_metrics() if metrics is None else metrics), month_ends(rows, today))

    def active_users(self, window_days: int) -> Cells:
        """(month end, namespace id) -> distinct users with any event (any type) in the window."""
        cells: dict[tuple, set[str]] = defaultdict(set)
        for row in self.rows:
            namespace = namespace_of(row)
            for end in self.ends:
                if namespace and row.user_id and _in_window(row.behavior_date, end, window_days):
                    cells[(end, namespace)].add(row.user_id)
        return {key: len(users) for key, users in cells.items()}

    def _value(self, metric: EventMetric, rows: list[ExpectedRow], end: date) -> int:
        names = {(e.category, e.action) for e in metric.events}
        window = [r for r in rows if (r.event_category, r.event_action) in names
                  and _in_window(r.behavior_date, end, metric.window_days)]
        if metric.value_type == "event":
            return len(window)
        if metric.value_type == "boolean":
            return int(bool(window))
        per_event = [{r.user_id for r in window if (r.event_category, r.event_action) == name and r.user_id}
                     for name in names]
        if metric.operator == "AND":
            return len(set.intersection(*per_event))
        return len(set.union(*per_event))

    def _struct_rows(self, key) -> dict[object, list[ExpectedRow]]:
        groups: dict[object, list[ExpectedRow]] = defaultdict(list)
        for row in self.rows:
            group = key(row)
            if group and row.event_type == "struct" and row.event_action:
                groups[group].append(row)
        return groups

    def namespace_mart(self) -> Cells:
        """mart_saas_usage_namespace_monthly: (month, namespace id, metrics_path) -> value."""
        cells: Cells = {}
        for namespace, rows in self._struct_rows(namespace_of).items():
            for metric in self.metrics:
                for end in self.ends:
                    value = self._value(metric, rows, end)
                    if value:
                        cells[(end.replace(day=1), namespace, metric.key_path)] = value
        return cells

    def saas_xmau(self) -> Cells:
        """rpt_xmau_monthly SaaS rows: (month, xMAU type, metrics_path) -> users of all SaaS events."""
        rows = self._struct_rows(lambda r: "saas" if is_saas(r) else None).get("saas", [])
        cells: Cells = {}
        for metric in self.metrics:
            if metric.time_frame != "28d" or metric.value_type != "user":
                continue
            for flag, label in XMAU_FLAGS:
                if not metric.has_indicator(flag):
                    continue
                for end in self.ends:
                    value = self._value(metric, rows, end)
                    if value:
                        cells[(end.replace(day=1), label, metric.key_path)] = value
        return cells

    def power_user_paths(self, window: str) -> set[str]:
        return {m.key_path for m in self.metrics if m.operator == "AND" and m.time_frame == window}


# ---------------------------------------------------------------------------------------------------
# What the warehouse shows


def _date(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def warehouse_active_users(warehouse: Warehouse, ends: Sequence[date], window_days: int) -> Cells:
    """(month end, namespace id) -> users, as streams.event_metrics.active_users reads the daily states."""
    if not ends:
        return {}
    result = active_users(warehouse, "namespace", min(ends), max(ends), window_days)
    wanted = set(ends)
    return {(_date(day), int(scope_id)): int(users) for day, scope_id, users in result.rows if _date(day) in wanted}


def warehouse_namespace_mart(warehouse: Warehouse) -> Cells:
    rows = warehouse.query("SELECT month, namespace_id, metrics_path, metric_value "
                           "FROM mart_saas_usage_namespace_monthly").rows
    return {(_date(month), int(namespace), str(path)): int(value) for month, namespace, path, value in rows}


def warehouse_mart_described(warehouse: Warehouse) -> tuple[int, int]:
    """(rows of the namespace mart, rows with time frame, value type and product stage filled)."""
    total, described = warehouse.query(
        "SELECT count(), countIf(time_frame != '' AND value_type != '' AND product_stage != '') "
        "FROM mart_saas_usage_namespace_monthly").rows[0]
    return int(total), int(described)


def warehouse_saas_xmau(warehouse: Warehouse) -> Cells:
    rows = warehouse.query("SELECT month, xmau_type, metrics_path, recorded_users FROM rpt_xmau_monthly "
                           "WHERE delivery = 'SaaS'").rows
    return {(_date(month), str(kind), str(path)): int(users) for month, kind, path, users in rows}


def only_paths(cells: Cells, paths: set[str]) -> Cells:
    return {key: value for key, value in cells.items() if key[2] in paths}


def differing(expected: Cells, actual: Cells) -> int:
    """Cells whose value differs (a cell on one side only counts too)."""
    return sum(1 for key in expected.keys() | actual.keys() if expected.get(key) != actual.get(key))
