"""Event metrics on the real engine: daily states (recomputed from the facts), rolling 7/28-day windows, totals,
indicators, power users, SaaS usage per namespace and xMAU rows, all compared with plain Python over the raw events.

Rows go straight into fct_behavior_structured_event through the Warehouse API (the Snowplow pipeline is built
separately), in arrival batches with late and duplicated events; the metrics are refreshed after every batch, as
the worker does, so late events must correct windows computed before they arrived.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pytest

from fleet.events import EventSample, generate_event_sample
from streams.config import Settings
from streams.event_metrics.definitions import EventMetric, EventMetricError, load_event_metrics, parse_event_metrics
from streams.event_metrics.read import active_users, active_users_28d, metric_series, saas_monthly_users_by_stage
from streams.event_metrics.refresh import (
    affected_end_days,
    mark_touched,
    rebuild_event_metrics,
    refresh_pending,
    sync_event_metric_definitions,
)
from streams.warehouse import Warehouse, load_migrations, migrate, open_warehouse

pytestmark = pytest.mark.integration

METRICS = load_event_metrics()

# Temporary local copies of two contract tables, used only while their owners' migrations (020-029, 030-039) are
# not in clickhouse/ yet. The columns are exactly the contract's.
_CONTRACT_FCT = """
CREATE TABLE IF NOT EXISTS fct_behavior_structured_event (
    event_id String, app_id LowCardinality(String), platform LowCardinality(String),
    event_type LowCardinality(String), event_category LowCardinality(String), event_action LowCardinality(String),
    event_label String, event_property String, event_value Nullable(Float64), event_schema String, event_data String,
    collector_tstamp DateTime64(3, 'UTC'), dvce_created_tstamp Nullable(DateTime64(3, 'UTC')),
    dvce_sent_tstamp Nullable(DateTime64(3, 'UTC')), derived_tstamp DateTime64(3, 'UTC'), behavior_date Date,
    user_hash UInt64, namespace_id UInt64, ultimate_parent_namespace_id UInt64, project_id UInt64,
    plan LowCardinality(String), environment LowCardinality(String), source LowCardinality(String),
    realm LowCardinality(String), deployment_type LowCardinality(String), instance_id String, host_name String,
    instance_version String, context_extra String, geo_country LowCardinality(String), geo_region String,
    geo_city String, ua_family LowCardinality(String), ingested_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree ORDER BY (behavior_date, event_id)
"""
_CONTRACT_DIM_NAMESPACE = """
CREATE TABLE IF NOT EXISTS dim_namespace (
    namespace_id UInt64, namespace_name String, plan String, dim_subscription_id String, dim_crm_account_id String,
    created_at DateTime64(3, 'UTC'), updated_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(updated_at) ORDER BY namespace_id
"""


def _owned_elsewhere(table: str, first: int, last: int) -> bool:
    return any(first <= m.version <= last and table in m.sql for m in load_migrations())


def open_migrated() -> Warehouse:
    warehouse = open_warehouse(Settings.from_env())
    if not _owned_elsewhere("fct_behavior_structured_event", 20, 29):
        warehouse.execute(_CONTRACT_FCT)
    if not _owned_elsewhere("dim_namespace", 30, 39):
        warehouse.execute(_CONTRACT_DIM_NAMESPACE)
    migrate(warehouse)
    return warehouse


def store_events(warehouse: Warehouse, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the contract promises the Snowplow sink does: an event_id already stored (or seen earlier in the same
    batch) is dropped before the insert, then the batch's days are marked for the derived tables' refresh."""
    ids = orjson.dumps(sorted({row["event_id"] for row in batch})).decode()
    stored = {r[0] for r in warehouse.query(
        "SELECT event_id FROM fct_behavior_structured_event WHERE event_id IN "
        "(SELECT arrayJoin(JSONExtract({ids:String}, 'Array(String)')))", {"ids": ids}).rows}
    fresh: dict[str, dict[str, Any]] = {}
    for row in batch:
        if row["event_id"] not in stored:
            fresh.setdefault(row["event_id"], row)
    warehouse.insert("fct_behavior_structured_event", list(fresh.values()))
    mark_touched(warehouse, {row["behavior_date"] for row in batch})
    return list(fresh.values())


def store_namespaces(warehouse: Warehouse, sample: EventSample) -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    warehouse.insert("dim_namespace", [{
        "namespace_id": ns, "namespace_name": f"group-{ns}", "plan": "premium", "dim_subscription_id": sub,
        "dim_crm_account_id": sample.accounts.get(sub, ""), "created_at": now, "updated_at": now,
    } for ns, sub in sample.subscriptions.items()])


# ---------------------------------------------------------------------------------------------------
# The independent computation: plain Python over the unique raw events.

Key = tuple[str, str]  # (scope, scope_id)


def scopes_of(row: dict[str, Any]) -> list[Key]:
    saas = row["realm"] == "saas" or row["deployment_type"] == ".com"
    namespace = row["ultimate_parent_namespace_id"] or row["namespace_id"]
    keys = [("instance", row["instance_id"])] if row["instance_id"] else []
    if saas and namespace:
        keys.append(("namespace", str(namespace)))
    if saas:
        keys.append(("saas", "all"))
    return keys


class Expected:
    """Per scope, day and event: the set of users and the number of events; then every metric by definition."""

    def __init__(self, rows: Iterable[dict[str, Any]], sample: EventSample) -> None:
        unique = {row["event_id"]: row for row in rows}.values()
        self.users: dict[tuple[Key, date, tuple[str, str]], set[int]] = defaultdict(set)
        self.events: dict[tuple[Key, date, tuple[str, str]], int] = defaultdict(int)
        self.active: dict[tuple[Key, date], set[int]] = defaultdict(set)
        self.keys: set[Key] = set()
        days = []
        for row in unique:
            day = row["behavior_date"]
            days.append(day)
            keys = scopes_of(row)
            keys += self._rollups(keys, sample)
            for key in keys:
                self.keys.add(key)
                if row["user_hash"]:
                    self.active[(key, day)].add(row["user_hash"])
                if row["event_type"] == "struct" and row["event_action"]:
                    event = (row["event_category"], row["event_action"])
                    self.events[(key, day, event)] += 1
                    if row["user_hash"]:
                        self.users[(key, day, event)].add(row["user_hash"])
        self.first, self.horizon = min(days), max(days)

    @staticmethod
    def _rollups(keys: list[Key], sample: EventSample) -> list[Key]:
        out = []
        for scope, scope_id in keys:
            if scope == "namespace":
                sub = sample.subscriptions.get(int(scope_id), "")
                if sub:
                    out += [("subscription", sub), ("account", sample.accounts[sub])]
        return out

    def _window(self, end: date, days: int) -> list[date]:
        if days == 0:
            return [self.first + timedelta(days=i) for i in range((end - self.first).days + 1)]
        return [end - timedelta(days=i) for i in range(days)]

    def value(self, metric: EventMetric, key: Key, end: date) -> int:
        window = self._window(end, metric.window_days)
        events = [(e.category, e.action) for e in metric.events]
        if metric.value_type == "user" and metric.operator == "AND":
            per_event = [set().union(*(self.users.get((key, d, e), set()) for d in window)) for e in events]
            return len(set.intersection(*per_event))
        if metric.value_type == "user":
            return len(set().union(*(self.users.get((key, d, e), set()) for d in window for e in events)))
        count = sum(self.events.get((key, d, e), 0) for d in window for e in events)
        return count if metric.value_type == "event" else int(count > 0)

    def series(self, metric: EventMetric, scopes: Iterable[str], start: date, end: date) -> dict[tuple, int]:
        out = {}
        for key in sorted(k for k in self.keys if k[0] in scopes):
            for offset in range((end - start).days + 1):
                day = start + timedelta(days=offset)
                value = self.value(metric, key, day)
                if value:
                    out[(metric.key_path, key[0], key[1], day)] = value
        return out

    def active_users(self, scope: str, start: date, end: date, window: int) -> dict[tuple, int]:
        out = {}
        for key in (k for k in self.keys if k[0] == scope):
            for offset in range((end - start).days + 1):
                day = start + timedelta(days=offset)
                users = set().union(*(self.active.get((key, day - timedelta(days=i)), set()) for i in range(window)))
                if users:
                    out[(day, key[1])] = len(users)
        return out


def _date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def stored_metrics(warehouse: Warehouse) -> dict[tuple, int]:
    sql = "SELECT key_path, scope, scope_id, metric_date, value FROM agg_event_metric_daily FINAL"
    rows = warehouse.query(sql).rows
    return {(k, s, i, _date(d)): int(v) for k, s, i, d, v in rows}


def expected_metrics(expected: Expected) -> dict[tuple, int]:
    out: dict[tuple, int] = {}
    for metric in METRICS:
        out.update(expected.series(metric, ("instance", "namespace", "saas"), expected.first, expected.horizon))
    return out


def _diff(got: dict, want: dict) -> list:
    keys = sorted(set(got) | set(want), key=str)
    return [(k, got.get(k), want.get(k)) for k in keys if got.get(k) != want.get(k)][:10]


# ---------------------------------------------------------------------------------------------------
# Cost: a quarter of 28-day active users per namespace reads the daily states only. First in the file: it opens its
# own chdb directory, which a process can do only while no other one (the module fixture below) is open.


def test_quarter_of_28_day_active_users_reads_days_times_scopes_not_events():
    spec = {"seed": 5, "start": date(2025, 1, 1), "days": 91 + 27, "namespaces": 8, "instances": 1, "users": 30}
    quarter = (date(2025, 1, 28), date(2025, 4, 28))
    warehouse = open_migrated()
    try:
        def measure(repeat: int) -> tuple[int, int, list]:
            for batch in generate_event_sample(**spec, repeat=repeat).batches:
                store_events(warehouse, batch)
            refresh_pending(warehouse, METRICS)
            for table in ("agg_behavior_active_daily", "agg_behavior_event_daily"):
                warehouse.execute(f"OPTIMIZE TABLE {table} FINAL")  # the same state rows whatever the volume
            raw = int(warehouse.query("SELECT count() FROM fct_behavior_structured_event").scalar())
            result = active_users_28d(warehouse, "namespace", *quarter)
            return raw, result.rows_read, result.rows

        raw_1, read_1, rows_1 = measure(1)
        raw_10, read_10, rows_10 = measure(10)  # the same events plus 9 copies of each with new ids
    finally:
        warehouse.close()
    assert raw_10 >= 9.5 * raw_1
    assert rows_10 == rows_1 and len(rows_1) == 91 * 8
    assert read_10 == read_1, (read_1, read_10)
    assert read_1 < raw_1 / 2
    print(f"\n28-day active users per namespace over a quarter: raw events {raw_1:,} -> {raw_10:,}, "
          f"rows read {read_1:,} -> {read_10:,}")


# ---------------------------------------------------------------------------------------------------
# Fixture: the sample loaded batch by batch, with a refresh after each batch and a checkpoint midway.

SAMPLE = {"seed": 11, "start": date(2025, 1, 6), "days": 75, "namespaces": 6, "instances": 2, "users": 40}


@pytest.fixture(scope="module")
def loaded():
    sample = generate_event_sample(**SAMPLE)
    warehouse = open_migrated()
    store_namespaces(warehouse, sample)
    sync_event_metric_definitions(warehouse, METRICS)
    arrived: list[dict[str, Any]] = []
    checkpoint: dict[str, Any] = {}
    middle = len(sample.batches) // 2
    for index, batch in enumerate(sample.batches):
        store_events(warehouse, batch)
        arrived += batch
        refresh_pending(warehouse, METRICS)  # what the Snowplow sink does after every batch
        if index == middle:
            checkpoint = {"got": stored_metrics(warehouse), "want": expected_metrics(Expected(arrived, sample))}
    yield warehouse, sample, Expected(sample.rows(), sample), checkpoint
    warehouse.close()


def test_sample_has_late_duplicated_and_anonymous_events(loaded):
    _, sample, expected, _ = loaded
    rows = sample.rows()
    assert len(rows) > len({r["event_id"] for r in rows})  # duplicates
    assert sum((r["collector_tstamp"].date() - r["behavior_date"]).days > 28 for r in rows) > 0  # very late
    assert any(r["user_hash"] == 0 for r in rows)
    assert any(r["user_hash"] >= 2**63 for r in rows)  # the full 64-bit range
    assert any(r["realm"] == "self-managed" and r["namespace_id"] in sample.namespace_ids for r in rows)


def test_raw_table_holds_each_event_once(loaded):
    warehouse, sample, _, _ = loaded
    unique = {r["event_id"] for r in sample.rows()}
    assert warehouse.query("SELECT count(), uniqExact(event_id) FROM fct_behavior_structured_event").rows == [
        (len(unique), len(unique))]


def test_daily_states_hold_exact_users_and_events(loaded):
    warehouse, _, expected, _ = loaded
    rows = warehouse.query(
        "SELECT scope, scope_id, behavior_date, event_category, event_action, groupBitmapMerge(users), sum(events) "
        "FROM agg_behavior_event_daily FINAL "
        "GROUP BY scope, scope_id, behavior_date, event_category, event_action").rows
    got = {((s, i), _date(d), (c, a)): (int(u), int(n)) for s, i, d, c, a, u, n in rows}
    want = {k: (len(expected.users.get(k, set())), n) for k, n in expected.events.items() if k[0][0] != "subscription"
            and k[0][0] != "account"}
    assert got == want


def test_every_metric_matches_python_after_late_events(loaded):
    warehouse, _, expected, _ = loaded
    got, want = stored_metrics(warehouse), expected_metrics(expected)
    assert len(want) > 1000
    assert got == want, _diff(got, want)
    kinds = {(METRICS_BY_KEY[k].value_type, METRICS_BY_KEY[k].operator, METRICS_BY_KEY[k].time_frame) for k, *_ in got}
    assert kinds >= {("user", "OR", "7d"), ("user", "OR", "28d"), ("user", "AND", "7d"), ("user", "AND", "28d"),
                     ("event", "OR", "7d"), ("event", "OR", "28d"), ("event", "OR", "all"),
                     ("boolean", "OR", "7d"), ("boolean", "OR", "28d"), ("boolean", "OR", "all")}


METRICS_BY_KEY = {m.key_path: m for m in METRICS}


def test_midway_values_matched_the_events_known_then(loaded):
    _, _, _, checkpoint = loaded
    assert checkpoint["want"]
    assert checkpoint["got"] == checkpoint["want"], _diff(checkpoint["got"], checkpoint["want"])


def test_power_users_are_an_intersection_not_a_union(loaded):
    warehouse, _, expected, _ = loaded
    power = METRICS_BY_KEY["counts_monthly.aggregated_metrics.code_review_power_users"]
    union = METRICS_BY_KEY["counts_monthly.aggregated_metrics.code_review_group_monthly_active_users"]
    got = stored_metrics(warehouse)
    pairs = [(v, got.get((union.key_path, *k[1:]), 0)) for k, v in got.items() if k[0] == power.key_path]
    assert pairs and all(p <= u for p, u in pairs) and any(p < u for p, u in pairs)


@pytest.mark.parametrize("scope", ["subscription", "account"])
def test_subscription_and_account_rollups_at_query_time(loaded, scope):
    warehouse, _, expected, _ = loaded
    for metric in METRICS:
        rows = metric_series(warehouse, metric, scope, expected.first, expected.horizon).rows
        got = {(metric.key_path, scope, i, _date(d)): int(v) for d, i, v in rows}
        want = expected.series(metric, (scope,), expected.first, expected.horizon)
        assert got == want, (metric.key_path, _diff(got, want))


def test_late_reference_data_applies_to_history(loaded, tmp_path):
    warehouse, sample, expected, _ = loaded
    metric = METRICS_BY_KEY["redis_hll_counters.code_review.i_code_review_user_create_mr_monthly"]
    unmapped = next(ns for ns, sub in sample.subscriptions.items() if not sub)
    before = metric_series(warehouse, metric, "subscription", expected.first, expected.horizon).rows
    assert "sub-late" not in {r[1] for r in before}
    later = datetime(2025, 6, 1, tzinfo=UTC)
    warehouse.insert("dim_namespace", [{
        "namespace_id": unmapped, "namespace_name": "late", "plan": "premium", "dim_subscription_id": "sub-late",
        "dim_crm_account_id": "acct-late", "created_at": later, "updated_at": later}])
    try:
        rows = metric_series(warehouse, metric, "subscription", expected.first, expected.horizon).rows
        got = {_date(d): int(v) for d, i, v in rows if i == "sub-late"}
        want = {k[3]: v for k, v in expected.series(metric, ("namespace",), expected.first, expected.horizon).items()
                if k[2] == str(unmapped)}
        assert want and got == want
    finally:
        warehouse.execute("DELETE FROM dim_namespace WHERE namespace_id = {ns:UInt64}", {"ns": unmapped})


@pytest.mark.parametrize("scope", ["instance", "namespace", "saas", "subscription", "account"])
@pytest.mark.parametrize("window", [7, 28])
def test_active_users(loaded, scope, window):
    warehouse, _, expected, _ = loaded
    start, end = expected.first, expected.horizon + timedelta(days=3)
    if window == 28:
        result = active_users_28d(warehouse, scope, start, end)
    else:
        result = active_users(warehouse, scope, start, end, window)
    assert result.columns == ["day", "scope_id", "users"]
    got = {(_date(d), i): int(u) for d, i, u in result.rows}
    want = expected.active_users(scope, start, end, window)
    assert want and got == want, _diff(got, want)


def test_saas_usage_per_namespace_monthly_mart(loaded):
    warehouse, _, expected, _ = loaded
    rows = warehouse.query(
        "SELECT month, namespace_id, metrics_path, time_frame, product_stage, metric_value "
        "FROM mart_saas_usage_namespace_monthly").dicts()
    days = (expected.first + timedelta(days=i) for i in range((expected.horizon - expected.first).days + 1))
    month_ends = [d for d in days if (d + timedelta(days=1)).day == 1]
    assert month_ends  # the sample spans at least one whole month end
    want = {}
    for metric in METRICS:
        for end in month_ends:
            for (key, _, ns, _), value in expected.series(metric, ("namespace",), end, end).items():
                want[(end.replace(day=1), int(ns), key)] = (metric.time_frame, metric.product_stage, value)
    got = {(_date(r["month"]), int(r["namespace_id"]), r["metrics_path"]):
           (r["time_frame"], r["product_stage"], int(r["metric_value"])) for r in rows}
    assert got == want, _diff(got, want)
    names = {r["metrics_path"] for r in rows}
    assert "redis_hll_counters.code_review.i_code_review_user_create_mr_monthly" in names  # Service Ping's name


def test_saas_monthly_users_by_stage_for_xmau(loaded):
    warehouse, _, expected, _ = loaded
    result = saas_monthly_users_by_stage(warehouse, expected.first.replace(day=1), expected.horizon, METRICS)
    assert result.columns == ["month", "stage", "group", "metric", "users"]
    want = set()
    for metric in METRICS:
        if metric.time_frame != "28d" or metric.value_type != "user" or not metric.is_xmau:
            continue
        for offset in range((expected.horizon - expected.first).days + 1):
            end = expected.first + timedelta(days=offset)
            value = expected.value(metric, ("saas", "all"), end)
            if (end + timedelta(days=1)).day == 1 and value:
                want.add((end.replace(day=1), metric.product_stage, metric.product_group, metric.key_path, value))
    got = {(_date(m), s, g, k, int(u)) for m, s, g, k, u in result.rows}
    assert want and got == want
    # users counted once across namespaces: SaaS-wide users are fewer than the sum over namespaces
    smau = METRICS_BY_KEY["redis_hll_counters.create.create_total_unique_counts_monthly"]
    end = max(m for m, *_ in got) + timedelta(days=40)
    end = end.replace(day=1) - timedelta(days=1)
    per_namespace = sum(v for v in expected.series(smau, ("namespace",), end, end).values())
    assert expected.value(smau, ("saas", "all"), end) < per_namespace


def test_refresh_with_nothing_new_changes_nothing(loaded):
    warehouse, _, _, _ = loaded
    before = stored_metrics(warehouse)
    assert refresh_pending(warehouse, METRICS) == 0
    assert stored_metrics(warehouse) == before


def test_rebuild_gives_the_same_rows_as_incremental_refreshes(loaded):
    warehouse, _, _, _ = loaded
    before = stored_metrics(warehouse)
    rebuild_event_metrics(warehouse, METRICS)
    assert stored_metrics(warehouse) == before


# ---------------------------------------------------------------------------------------------------
# Pure pieces


def test_affected_end_days_cover_the_windows_a_late_event_falls_in():
    horizon = date(2025, 3, 31)
    rolling, totals = affected_end_days([date(2025, 3, 1)], horizon, previous=horizon, oldest=date(2025, 1, 1))
    assert rolling == [(date(2025, 3, 1), date(2025, 3, 28))] and totals == [(date(2025, 3, 1), horizon)]
    rolling, totals = affected_end_days([date(2025, 4, 2)], date(2025, 4, 2), previous=horizon,
                                        oldest=date(2025, 1, 1))
    assert rolling == [(date(2025, 4, 1), date(2025, 4, 2))] and totals == [(date(2025, 4, 1), date(2025, 4, 2))]
    assert affected_end_days([], horizon, previous=None, oldest=date(2025, 1, 1)) == (
        [(date(2025, 1, 1), horizon)], [(date(2025, 1, 1), horizon)])


def test_definitions_are_checked():
    base = {"key_path": "x", "time_frame": "28d", "value_type": "user", "status": "active",
            "events": [{"name": "a"}]}
    assert parse_event_metrics(base)[0].events[0].category == "InternalEventTracking"
    assert [m.key_path for m in parse_event_metrics({**base, "time_frame": ["7d", "28d"]})] == ["x_weekly",
                                                                                               "x_monthly"]
    for bad, field in [({"value_type": "number"}, "value_type"), ({"operator": "XOR"}, "operator"),
                       ({"operator": "AND", "value_type": "event"}, "operator"), ({"time_frame": "all"}, "time_frame"),
                       ({"events": []}, "events"), ({"colour": "red"}, "colour"), ({"time_frame": "1d"}, "time_frame")]:
        with pytest.raises(EventMetricError, match=f"'{field}'"):
            parse_event_metrics({**base, **bad})


def test_event_definitions_do_not_disturb_the_service_ping_dictionary():
    from streams.enrich.metric_dictionary import MetricDictionary

    dictionary = MetricDictionary.from_dir()
    assert all(not d.key_path.startswith("usage_indicators.") for d in dictionary.definitions)
    shared = {m.key_path for m in METRICS} & {d.key_path for d in dictionary.definitions}
    assert "redis_hll_counters.code_review.i_code_review_user_create_mr_monthly" in shared


def test_a_writer_can_refresh_right_after_its_insert(loaded):
    """Last test using the fixture (it adds an event): a refresh after the insert corrects the windows of a late
    event."""
    warehouse, sample, _, _ = loaded
    rows = sample.rows()
    template = next(r for r in rows if r["event_action"] == "i_code_review_user_create_mr"
                    and r["realm"] == "saas" and r["ultimate_parent_namespace_id"])
    late = dict(template, event_id="00000000-0000-4000-8000-000000000001", user_hash=2**64 - 2,
                collector_tstamp=template["collector_tstamp"] + timedelta(days=60))
    stored = store_events(warehouse, [late])
    assert stored == [late]
    assert refresh_pending(warehouse, METRICS) > 0
    got, want = stored_metrics(warehouse), expected_metrics(Expected(rows + [late], sample))
    assert got == want, _diff(got, want)
    key = ("redis_hll_counters.code_review.i_code_review_user_create_mr_monthly", "namespace",
           str(template["ultimate_parent_namespace_id"]), template["behavior_date"])
    assert want[key] == Expected(rows, sample).value(METRICS_BY_KEY[key[0]], key[1:3], key[3]) + 1
