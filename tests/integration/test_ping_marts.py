"""Service Ping marts (clickhouse/045-052, 060-066) against an independent model over the generator's raw pings.

The fleet lands through the real sink functions (normalize_ping + write_pings) into the real engine (chdb), in a
shuffled order, with some last-pings-of-the-month held back and landed late, one batch redelivered, and a second
unmerged copy of every fourth ping's rows: every number must still equal the model (tests/support/ping_model.py).
"""

from __future__ import annotations

import random
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

import pytest

from fleet.pings import generate_fleet
from streams.enrich.metric_dictionary import MetricDictionary
from streams.records import ping_id_for
from streams.warehouse import Warehouse, load_migrations
from tests.support.ping_model import Model, duplicate_rows, land, normalized_records, open_warehouse

pytestmark = pytest.mark.integration

INSTANCES, WEEKS, SEED = 30, 16, 16
MY_VIEWS = (
    "dim_ping_instance", "fct_ping_instance_metric_7_day", "fct_ping_instance_metric_28_day",
    "fct_ping_instance_metric_all_time", "fct_ping_instance_metric_none_null", "fct_ping_instance_metric_monthly",
    "mart_ping_instance_metric_monthly", "rpt_ping_metric_first_last_versions", "rpt_version_lag_monthly",
    "rpt_version_lag_account_monthly", "rpt_installation_types_monthly", "rpt_topology_monthly",
    "rpt_stage_adoption_monthly", "rpt_stage_adoption_account_monthly", "rpt_active_user_changes_monthly",
)


def _d(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


@dataclass
class Landed:
    model: Model
    early_model: Model
    early_monthly: dict
    views: dict[str, list[dict]] = field(default_factory=dict)
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)
    tie: list[tuple] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    catalog: str = ""
    show: str = ""
    type_mismatches: dict[str, list] = field(default_factory=dict)


def _monthly(warehouse: Warehouse) -> dict:
    rows = warehouse.query("SELECT * FROM fct_ping_instance_metric_monthly").dicts()
    return {(r["installation_id"], r["metrics_path"], _d(r["ping_created_date_month"])): r for r in rows}


def _check_tie_break(warehouse: Warehouse) -> list[tuple]:
    """Two pings of one installation with the same recorded_at: the higher ping_id is the last of the month.
    (Our ids derive from uuid + recorded_at, so real pings cannot tie; these rows are crafted and removed.)"""
    warehouse.execute("""
        INSERT INTO fct_ping_instance (ping_id, installation_id, instance_uuid, hostname, recorded_at, version)
        VALUES (7, 'tie-break', 'tie', 'tie', '2026-06-10 10:00:00', '18.1.0'),
               (9, 'tie-break', 'tie', 'tie', '2026-06-10 10:00:00', '18.1.0'),
               (8, 'tie-break', 'tie', 'tie', '2026-06-03 10:00:00', '18.1.0')""")
    rows = warehouse.query("SELECT ping_id, is_last_ping_of_month FROM dim_ping_instance "
                           "WHERE installation_id = 'tie-break' ORDER BY ping_id").rows
    warehouse.execute("ALTER TABLE fct_ping_instance DELETE WHERE installation_id = 'tie-break' "
                      "SETTINGS mutations_sync = 2")
    return rows


def marts_views() -> list[str]:
    """Every view migrations 045-069 create: the Service Ping marts and xMAU."""
    names = []
    for migration in load_migrations():
        if 45 <= migration.version <= 69:
            names += re.findall(r"CREATE VIEW IF NOT EXISTS (\w+)", migration.sql)
    return names


def _declared_type_mismatches(warehouse: Warehouse) -> dict[str, list]:
    """Columns whose declared type differs from what the view's SELECT yields (a silent cast would hide bugs)."""
    found = {}
    for view in marts_views():
        select = warehouse.query("SELECT as_select FROM system.tables WHERE database = currentDatabase() "
                                 "AND name = {t:String}", {"t": view}).scalar()
        inner = dict(row[:2] for row in warehouse.query(f"DESCRIBE ({select})").rows)
        declared = warehouse.query("SELECT name, type FROM system.columns WHERE database = currentDatabase() "
                                   "AND table = {t:String} ORDER BY position", {"t": view}).rows
        wrong = [(name, kind, inner.get(name)) for name, kind in declared if inner.get(name) != kind]
        if wrong:
            found[view] = wrong
    return found


@pytest.fixture(scope="module")
def landed(tmp_path_factory: pytest.TempPathFactory) -> Landed:
    from streams.catalog import catalog_markdown
    from streams.marts import parse_month, show_text

    dictionary = MetricDictionary.from_dir()
    valid = [p for p in generate_fleet(INSTANCES, WEEKS, seed=SEED) if p.valid]
    model = Model(valid, dictionary)
    ids = [ping_id_for(p.payload, p.body()) for p in valid]
    last_ids = {p.ping_id for p in model.last_pings().values()}
    late = {i for i in last_ids if i % 3 == 0}  # some last pings of the month arrive after the rest
    records = list(zip(ids, normalized_records(valid, dictionary), valid, strict=True))
    random.Random(SEED).shuffle(records)
    early = [r for r in records if r[0] not in late]
    warehouse = open_warehouse(tmp_path_factory.mktemp("marts") / "chdb", dictionary)
    try:
        land(warehouse, [r[1] for r in early])
        result = Landed(model=model, early_model=Model([r[2] for r in early], dictionary),
                        early_monthly=_monthly(warehouse))
        result.tie = _check_tie_break(warehouse)
        land(warehouse, [r[1] for r in records if r[0] in late] + [r[1] for r in early[:40]])  # late + redelivered
        duplicate_rows(warehouse)
        for table in ("fct_ping_instance", "fct_ping_instance_metric"):
            plain = int(warehouse.query(f"SELECT count() FROM {table}").scalar())
            final = int(warehouse.query(f"SELECT count() FROM {table} FINAL").scalar())
            result.counts[table] = (plain, final)
        for view in MY_VIEWS:
            started = time.perf_counter()
            result.views[view] = warehouse.query(f"SELECT * FROM {view}").dicts()
            result.timings[view] = time.perf_counter() - started
        result.type_mismatches = _declared_type_mismatches(warehouse)
        result.catalog = catalog_markdown(warehouse)
        result.show = show_text(warehouse, "rpt_topology_monthly", scope="scaling=down",
                                month_from=parse_month("2026-07"), month_to=parse_month("2026-09"))
        return result
    finally:
        warehouse.close()


def test_duplicates_are_stored_and_late_pings_landed(landed: Landed) -> None:
    for table, (plain, final) in landed.counts.items():
        assert plain > final, f"{table}: the duplicated rows must be there, unmerged"
    assert final > 0
    pings_final = landed.counts["fct_ping_instance"][1]
    assert pings_final == len(landed.model.pings)


def test_last_ping_of_month_ties_go_to_the_highest_ping_id(landed: Landed) -> None:
    assert landed.tie == [(7, 0), (8, 0), (9, 1)]


def test_dim_ping_instance_flags_the_last_ping_of_each_month(landed: Landed) -> None:
    rows = landed.views["dim_ping_instance"]
    assert len(rows) == len(landed.model.pings)  # one row per ping despite the duplicate copies
    expected_last = {p.ping_id for p in landed.model.last_pings().values()}
    assert {r["ping_id"] for r in rows if r["is_last_ping_of_month"]} == expected_last
    by_id = {p.ping_id: p for p in landed.model.pings}
    for row in rows:
        ping = by_id[row["ping_id"]]
        assert (row["installation_id"], _d(row["ping_created_date_month"]), row["major_minor_version_id"],
                row["version_is_prerelease"], row["ping_edition"], row["product_tier"]) == (
            ping.installation_id, ping.month, ping.version_id, ping.prerelease, ping.ping_edition, ping.tier)
    assert any(r["version_is_prerelease"] for r in rows) and any(r["product_tier"] == "Free" for r in rows)
    trial = {p.ping_id: int(bool(p.payload.get("license_trial_ends_on"))
                            and p.recorded_at.date() < date.fromisoformat(p.payload["license_trial_ends_on"]))
             for p in landed.model.pings}
    assert {r["ping_id"]: r["is_trial"] for r in rows} == trial and any(trial.values())
    weeks = {(p.installation_id, p.recorded_at.date() - timedelta(days=p.recorded_at.weekday()))
             for p in landed.model.pings}
    assert sum(r["is_last_ping_of_week"] for r in rows) == len(weeks)


def test_time_frame_views_split_metrics_like_the_dictionary(landed: Landed) -> None:
    expected = landed.model.time_frame_rows()
    for name, pairs in expected.items():
        got = [(r["ping_id"], r["metrics_path"]) for r in landed.views[f"fct_ping_instance_metric_{name}"]]
        assert len(got) == len(set(got)), f"{name}: duplicate rows leak through"
        assert set(got) == pairs, name
        assert pairs, name
    total = sum(len(p.metrics) for p in landed.model.pings)
    assert sum(len(v) for v in expected.values()) == total  # the four views partition the fact


def test_monthly_values_equal_the_model(landed: Landed) -> None:
    expected = landed.model.monthly()
    rows = landed.views["fct_ping_instance_metric_monthly"]
    got = {(r["installation_id"], r["metrics_path"], _d(r["ping_created_date_month"])): r for r in rows}
    assert len(got) == len(rows)
    assert got.keys() == expected.keys()
    for key, want in expected.items():
        row = got[key]
        assert (row["metric_value"], row["previous_metric_value"], _d(row["previous_ping_created_date_month"]),
                row["monthly_metric_value"]) == (want["metric_value"], want["previous_metric_value"],
                                                 want["previous_month"], want["monthly_metric_value"]), key


def test_monthly_values_cover_resets_error_markers_and_first_months(landed: Landed) -> None:
    """The scenarios the rules exist for are really in the data (so the equality above is not vacuous)."""
    model = landed.model
    expected = model.monthly()
    resets = [k for k, v in expected.items() if v["previous_metric_value"] is not None
              and v["metric_value"] < v["previous_metric_value"]]
    assert resets and all(expected[k]["monthly_metric_value"] == 0 for k in resets)  # counter reset: floored at 0
    months = model.months
    skipped = [k for k, v in expected.items() if v["previous_month"] is not None
               and months.index(k[2]) - months.index(v["previous_month"]) > 1]
    assert skipped, "an all-time metric whose previous month's last ping had an error marker"
    last = model.last_pings()
    errors = [(i, path, m) for (i, m), p in last.items() for path, v in p.metrics.items()
              if v < 0 and model.time_frame(path) in ("28d", "all")]
    assert errors and not any(k in expected for k in errors)  # error markers never count
    firsts = [k for k, v in expected.items() if model.time_frame(k[1]) == "all" and v["previous_metric_value"] is None]
    assert firsts and all(expected[k]["monthly_metric_value"] == expected[k]["metric_value"] for k in firsts)


def test_a_late_last_ping_replaces_the_months_values(landed: Landed) -> None:
    before, after = landed.early_model.monthly(), landed.model.monthly()
    assert landed.early_monthly.keys() == before.keys()
    for key, want in before.items():
        assert landed.early_monthly[key]["monthly_metric_value"] == want["monthly_metric_value"], key
    changed = [k for k in before
               if k in after and before[k]["monthly_metric_value"] != after[k]["monthly_metric_value"]]
    assert changed, "late pings must have changed some monthly values"


def test_mart_monthly_carries_ping_attributes_and_xmau_flags(landed: Landed) -> None:
    model = landed.model
    last = model.last_pings()
    rows = landed.views["mart_ping_instance_metric_monthly"]
    assert len(rows) == len(model.monthly())
    for row in rows:
        ping = last[(row["installation_id"], _d(row["ping_created_date_month"]))]
        assert (row["ping_id"], row["ping_edition"], row["ping_product_tier"], row["major_minor_version_id"],
                row["latest_subscription_id"], row["instance_user_count"]) == (
            ping.ping_id, ping.ping_edition, ping.tier, ping.version_id, ping.subscription, ping.active_users)
        flags = model.flags(row["metrics_path"])
        assert {k: row[k] for k in flags} == flags
    assert sum(r["is_smau"] for r in rows) > 0 and sum(r["is_paid_gmau"] for r in rows) > 0


def test_first_last_versions_per_metric(landed: Landed) -> None:
    expected = landed.model.first_last_versions()
    rows = landed.views["rpt_ping_metric_first_last_versions"]
    got = {(r["metrics_path"], r["ping_edition"], r["version_is_prerelease"]):
           (r["first_major_minor_version_id_with_counter"], r["last_major_minor_version_id_with_counter"],
            r["dim_installation_count"]) for r in rows}
    assert got == expected
    for row in rows:
        first = row["first_major_minor_version_id_with_counter"]
        assert row["first_major_minor_version_with_counter"] == f"{first // 100}.{first % 100}"
    assert any(first != last for first, last, _ in expected.values())


def test_version_lag_from_versions_seen(landed: Landed) -> None:
    expected = landed.model.version_lag()
    rows = landed.views["rpt_version_lag_monthly"]
    got = {(r["installation_id"], _d(r["ping_created_date_month"])): (r["latest_major_minor_version"],
                                                                       r["minors_behind"]) for r in rows}
    assert got == expected
    assert all(r["lag_basis"] == "pings" and r["is_far_behind"] == int(r["minors_behind"] >= 3) for r in rows)
    assert any(r["is_far_behind"] for r in rows) and any(not r["is_far_behind"] for r in rows)
    assert landed.views["rpt_version_lag_account_monthly"] == []  # no reference data: no accounts


def test_installation_types_over_time(landed: Landed) -> None:
    rows = landed.views["rpt_installation_types_monthly"]
    got = {(_d(r["ping_created_date_month"]), r["installation_type"], r["ping_edition"]):
           (r["installations"], r["paid_installations"], r["active_users"], r["share_of_installations"]) for r in rows}
    assert got == landed.model.installation_types()


def test_topology_and_runners_scaling(landed: Landed) -> None:
    expected = landed.model.topology()
    rows = landed.views["rpt_topology_monthly"]
    assert len(rows) == len(expected)
    for row in rows:
        want = expected[(row["installation_id"], _d(row["ping_created_date_month"]))]
        got = {k: row[k] for k in want} | {"previous_month": _d(row["previous_month"])}
        assert got == want
    scalings = {r["scaling"] for r in rows}
    assert {"first", "up", "down", "same"} <= scalings
    assert "down" in landed.show and "rpt_topology_monthly" in landed.show


def test_stage_adoption_per_installation(landed: Landed) -> None:
    rows = landed.views["rpt_stage_adoption_monthly"]
    got = {(r["installation_id"], _d(r["ping_created_date_month"]), r["product_stage"]):
           (r["metrics_with_usage"], r["max_metric_value"]) for r in rows}
    assert got == landed.model.stage_adoption()
    per_installation = defaultdict(set)
    for installation, month, stage in got:
        per_installation[(installation, month)].add(stage)
    assert len({len(s) for s in per_installation.values()}) > 1  # installations differ in what they adopt


def test_active_user_changes_month_over_month(landed: Landed) -> None:
    rows = landed.views["rpt_active_user_changes_monthly"]
    got = {(r["installation_id"], _d(r["ping_created_date_month"])):
           (r["active_user_count"], r["previous_active_user_count"], r["active_user_change"],
            r["active_user_change_pct"], r["is_drop"], r["is_significant_drop"]) for r in rows}
    assert got == landed.model.active_user_changes()
    assert any(v[4] for v in got.values()) and any(v[2] is None for v in got.values())


def test_every_view_has_class_grain_and_column_comments(landed: Landed) -> None:
    for view in MY_VIEWS:
        section = landed.catalog.split(f"\n#### {view}\n", 1)[1].split("\n#### ", 1)[0]
        assert "- class: unclassified" not in section, view
        assert "- grain: one row per" in section, view
        column_lines = [line for line in section.splitlines() if line.startswith("| `")]
        assert column_lines and all(not line.rstrip().endswith("|  |") for line in column_lines), view
    assert "## Service Ping metrics" in landed.catalog
    assert "| `usage_activity_by_stage_monthly.manage.events` | 28d |" in landed.catalog


def test_views_answer_quickly(landed: Landed) -> None:
    slow = {view: round(seconds, 2) for view, seconds in landed.timings.items() if seconds > 10}
    assert slow == {}


def test_views_declare_the_types_their_queries_return(landed: Landed) -> None:
    assert len(marts_views()) == 24
    assert landed.type_mismatches == {}


def test_show_builds_bound_filters_and_rejects_bad_requests() -> None:
    from streams.marts import ObjectInfo, ShowError, parse_month, show_query

    info = ObjectInfo("rpt_x", "View", "", [("month", "Date"), ("installation_id", "String"),
                                            ("product_stage", "LowCardinality(String)"), ("tier", "Array(String)")])
    sql, params = show_query(info, scope="x' OR 1=1 --", month_from=date(2026, 6, 1), month_to=date(2026, 7, 1))
    assert "x' OR" not in sql and params["scope"] == "x' OR 1=1 --"
    assert "(toString(installation_id) = {scope:String} OR toString(product_stage) = {scope:String})" in sql
    assert "month >= {month_from:Date} AND month <= {month_to:Date}" in sql and sql.endswith("LIMIT {limit:UInt64}")
    sql, params = show_query(info, scope="product_stage=plan")
    assert "toString(product_stage) = {scope:String}" in sql and params["scope"] == "plan"
    with pytest.raises(ShowError, match="no column"):
        show_query(info, scope="nope=1")
    with pytest.raises(ShowError, match="YYYY-MM"):
        parse_month("2026-7x")
    assert parse_month("2026-07") == date(2026, 7, 1)
    with pytest.raises(ShowError, match="no month column"):
        show_query(ObjectInfo("dim_y", "View", "", [("a", "String")]), month_from=date(2026, 1, 1))
    with pytest.raises(ShowError, match="aggregate states"):
        show_query(ObjectInfo("agg_z", "AggregatingMergeTree", "", [("u", "AggregateFunction(uniq, UInt64)")]))
