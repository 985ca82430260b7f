"""The main job (`denomas-usage demo`) on a small fleet: every number agrees with the generator's own count, and
every mart it prints holds rows, filled by the running system (the worker), not by the demo.

Plus the generator-side rules of the event metric rows (fleet/event_metrics.py) on hand-made events.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from fleet.demo import PRINTED_MARTS, DemoFleet, run_and_compare
from fleet.event_metrics import FleetEventMetrics, is_saas, month_ends
from fleet.snowplow import ExpectedRow
from streams.config import Settings
from streams.event_metrics.definitions import EventMetric, EventRef
from streams.event_metrics.sql import default_metrics
from streams.warehouse import open_warehouse

EVENT_METRIC_ROWS = (
    "SaaS: 7-day active users per namespace at month ends",
    "SaaS: 28-day active users per namespace at month ends",
    "SaaS: 7-day power users (AND metrics) per namespace",
    "SaaS: 28-day power users (AND metrics) per namespace",
    "SaaS: xMAU users (rpt_xmau_monthly, delivery SaaS)",
    "SaaS: metric values (mart_saas_usage_namespace_monthly rows)",
    "SaaS:   of which with time frame, value type and stage",
)


@pytest.fixture(scope="module")
def demo_run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, DemoFleet, list]:
    name = datetime.now(UTC).strftime("%H%M%S%f")
    settings = Settings.from_env(data_dir=tmp_path_factory.mktemp("demo"), kafka_bootstrap_servers=kafka_bootstrap,
                                 topic_prefix=f"demo-{name}.", app_id=f"demo-{name}", topic_partitions=2)
    fleet = DemoFleet.build(12, 10, seed=42)  # 10 weeks from 2026-06-01: two month ends (June, July); the golden
    # records of clickhouse/checks hold for it (as for `make run`'s 40 x 12)
    return settings, fleet, run_and_compare(settings, fleet)


def test_every_number_agrees_with_the_generator(demo_run) -> None:
    _, _, rows = demo_run
    assert [row for row in rows if row[1] != row[2]] == []
    by_name = {name: expected for name, expected, _ in rows}
    assert set(EVENT_METRIC_ROWS) <= set(by_name)
    assert [name for name in EVENT_METRIC_ROWS if by_name[name] == 0] == []  # each row compares real numbers


def test_no_mart_the_demo_prints_is_empty(demo_run) -> None:
    settings, _, _ = demo_run
    warehouse = open_warehouse(settings)
    try:
        counts = {mart: int(warehouse.query(f"SELECT count() FROM {mart}").scalar()) for mart in PRINTED_MARTS}
    finally:
        warehouse.close()
    assert [mart for mart, count in counts.items() if count == 0] == []


def test_the_worker_filled_the_event_metric_tables(demo_run) -> None:
    settings, fleet, _ = demo_run
    saas_days = {r.behavior_date for r in fleet.snowplow.expected_rows().values()
                 if is_saas(r) and r.event_type == "struct"}
    warehouse = open_warehouse(settings)
    try:
        defined = {row[0] for row in warehouse.query("SELECT key_path FROM dim_event_metric FINAL").rows}
        metric_days = {date.fromisoformat(str(d)[:10]) for (d,) in warehouse.query(
            "SELECT DISTINCT metric_date FROM agg_event_metric_daily FINAL WHERE scope = 'saas'").rows}
        deliveries = {row[0] for row in warehouse.query("SELECT DISTINCT delivery FROM rpt_xmau_monthly").rows}
    finally:
        warehouse.close()
    assert defined == {m.key_path for m in default_metrics()}
    assert saas_days and saas_days <= metric_days
    assert deliveries == {"SaaS", "Self-Managed"}


def test_worker_log_is_plain_text(demo_run) -> None:
    settings, _, _ = demo_run
    log = (settings.data_dir / "worker.log").read_bytes()
    assert log and b"\x1b" not in log


# ---------------------------------------------------------------------------------------------------
# The generator-side computation on hand-made events


def _row(day: date, user: str, action: str, namespace: int = 20001, parent: int = 20001,
         realm: str = "saas", deployment: str = ".com") -> ExpectedRow:
    moment = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    return ExpectedRow(
        event_id=f"{day}-{user}-{action}-{namespace}", app_id="denomas", platform="srv", event_type="struct",
        event_category="InternalEventTracking", event_action=action, event_label="", event_property="",
        event_value=None, event_schema="", event_data=None, behavior_date=day, created_at=moment, user_id=user,
        namespace_id=namespace, ultimate_parent_namespace_id=parent, project_id=0, plan="free", environment="x",
        source="x", realm=realm, deployment_type=deployment, instance_id="", host_name="", instance_version="",
        context_extra=None, geo_country="", geo_region="", geo_city="", ua_family="", page_url="")


def _metric(key: str, window: str, operator: str, *actions: str, value_type: str = "user",
            indicators: tuple[str, ...] = ()) -> EventMetric:
    return EventMetric(key, "", window, value_type, operator, tuple(EventRef("InternalEventTracking", a)
                                                                     for a in actions),
                       "dev", "create", "code_review", (), indicators, "active")


def test_generator_side_windows_scopes_and_power_users() -> None:
    june_30 = date(2026, 6, 30)
    rows = [
        _row(date(2026, 6, 24), "a", "create"),  # in both windows ending June 30 (D-6)
        _row(date(2026, 6, 23), "b", "create"),  # D-7: only in the 28-day window
        _row(date(2026, 6, 3), "c", "create"),  # D-27: the first day of the 28-day window
        _row(date(2026, 6, 2), "d", "create"),  # D-28: in no window
        _row(date(2026, 6, 25), "a", "merge"),  # a did both: a power user
        _row(date(2026, 6, 26), "e", "merge", namespace=30001),  # a subgroup counts under its parent
        _row(date(2026, 6, 26), "f", "create", realm="self-managed", deployment="self-managed"),  # not SaaS
        _row(date(2026, 7, 2), "a", "create"),  # after June, before the horizon
    ]
    metrics = (_metric("users_28d", "28d", "OR", "create", indicators=("smau",)),
               _metric("power_7d", "7d", "AND", "create", "merge"),
               _metric("events_all", "all", "OR", "create", value_type="event"))
    expected = FleetEventMetrics(rows, metrics, month_ends(rows, today=date(2026, 12, 1)))
    assert expected.ends == [june_30]  # July's last day is after the newest event
    assert expected.active_users(7) == {(june_30, 20001): 2}  # a, e
    assert expected.active_users(28) == {(june_30, 20001): 4}  # a, b, c, e
    june = june_30.replace(day=1)
    assert expected.namespace_mart() == {(june, 20001, "users_28d"): 3, (june, 20001, "power_7d"): 1,
                                         (june, 20001, "events_all"): 4}
    assert expected.saas_xmau() == {(june, "SMAU", "users_28d"): 3}
