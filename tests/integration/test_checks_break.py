"""Each trusted-data check on the real engine: break the data on purpose, see the check fail; repair, see it pass.

A fresh migrated warehouse per test; rows are written with the warehouse interface, as the sinks do.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from streams.checks.model import Catalog
from streams.checks.runner import alert_events, format_run, run_checks, run_one
from streams.checks.spec import FAIL, PASS, WARN, Check, load_checks
from streams.config import Settings
from streams.warehouse import migrate
from tests.support.fresh import fresh_warehouse

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
GOLDEN_UUID = "c8913d7e-f5fc-49ab-a542-972c6450fee0"
GOLDEN_AT = datetime(2026, 6, 5, 9, 3, 5, 427000, tzinfo=UTC)


@pytest.fixture
def warehouse(tmp_path):
    wh = fresh_warehouse(migrated=False)
    migrate(wh)
    yield wh
    wh.close()


def declared(name: str) -> Check:
    return next(c for c in load_checks() if c.name == name)


def run(warehouse, check: Check, now: datetime = NOW):
    return run_one(warehouse, Catalog(warehouse), check, Settings.from_env(), None, now)


def ping(ping_id: int, installation: str = "inst-a", recorded_at: datetime = NOW, **extra) -> dict:
    return {"ping_id": ping_id, "installation_id": installation, "instance_uuid": "uuid-" + installation,
            "recorded_at": recorded_at, "received_at": recorded_at, "version": "17.1.0"} | extra


def test_a_duplicated_grain_row_fails_unique_and_a_copy_that_merges_away_does_not(warehouse):
    check = declared("unique_fct_ping_instance__ping_id")
    warehouse.insert("fct_ping_instance", [ping(1), ping(2)])
    warehouse.insert("fct_ping_instance", [ping(1)])  # a redelivered copy: same sort key, FINAL collapses it
    assert [r.status for r in run(warehouse, check)] == [PASS]
    warehouse.insert("fct_ping_instance", [ping(2, installation="inst-b")])  # same ping_id, another row
    [result] = run(warehouse, check)
    assert (result.status, result.observed) == (FAIL, 1)


def test_a_combined_grain_is_one_key(warehouse):
    check = declared("unique_fct_ping_instance_metric__ping_id__metrics_path")
    rows = [{"ping_id": 1, "installation_id": "a", "recorded_at": NOW, "metrics_path": p} for p in ("x", "y")]
    warehouse.insert("fct_ping_instance_metric", rows)
    assert run(warehouse, check)[0].status == PASS
    warehouse.insert("fct_ping_instance_metric", [rows[0] | {"installation_id": "b"}])
    assert (run(warehouse, check)[0].status, run(warehouse, check)[0].observed) == (FAIL, 1)


def test_a_null_or_empty_key_fails_not_null(warehouse):
    check = declared("not_null_fct_ping_instance_installation_id")
    warehouse.insert("fct_ping_instance", [ping(1)])
    assert run(warehouse, check)[0].status == PASS
    warehouse.insert("fct_ping_instance", [ping(2, installation="")])
    assert (run(warehouse, check)[0].status, run(warehouse, check)[0].observed) == (FAIL, 1)


def test_an_orphan_metric_row_fails_relationships(warehouse):
    to_ping = declared("relationships_fct_ping_instance_metric_ping_id__fct_ping_instance_ping_id")
    to_dictionary = declared("relationships_fct_ping_instance_metric_metrics_path__dim_ping_metric_metrics_path")
    warehouse.insert("fct_ping_instance", [ping(1)])
    warehouse.insert("dim_ping_metric", [{"metrics_path": "counts.issues", "loaded_at": NOW},
                                         {"metrics_path": "topology", "loaded_at": NOW}])
    metric = {"ping_id": 1, "installation_id": "inst-a", "recorded_at": NOW, "is_defined": 1}
    warehouse.insert("fct_ping_instance_metric", [metric | {"metrics_path": "counts.issues"},
                                                  metric | {"metrics_path": "topology.nodes[0].node_cpus"},
                                                  metric | {"metrics_path": "counts.undefined", "is_defined": 0}])
    assert [run(warehouse, c)[0].status for c in (to_ping, to_dictionary)] == [PASS, PASS]
    warehouse.insert("fct_ping_instance_metric", [metric | {"ping_id": 99, "metrics_path": "counts.issues"},
                                                  metric | {"metrics_path": "counts.not_in_dictionary"}])
    assert [(r.status, r.observed) for c in (to_ping, to_dictionary) for r in run(warehouse, c)] == [(FAIL, 1),
                                                                                                   (FAIL, 1)]


def test_accepted_values_name_what_else_they_found(warehouse):
    check = declared("accepted_values_fct_version_check_severity")
    row = {"check_id": 1, "checked_at": NOW, "severity": "success"}
    warehouse.insert("fct_version_check", [row])
    assert run(warehouse, check)[0].status == PASS
    warehouse.insert("fct_version_check", [row | {"check_id": 2, "severity": "critical"}])
    [result] = run(warehouse, check)
    assert (result.status, result.observed) == (FAIL, 1) and "critical" in result.message


def test_an_altered_golden_record_fails(warehouse):
    check = declared("golden_ping_umbrella2_2026_06_05")
    assert run(warehouse, check)[0].status == FAIL  # missing: 0 rows
    golden = ping(5, "627d9f7caccca47d33a1471cf1d02809", GOLDEN_AT, instance_uuid=GOLDEN_UUID,
                  hostname="git.umbrella-2.example", edition="EE Free", main_edition="EE", active_user_count=22,
                  installation_type="gitlab-helm-chart", error_metric_count=2)
    warehouse.insert("fct_ping_instance", [golden])
    assert run(warehouse, check)[0].status == PASS
    warehouse.execute("ALTER TABLE fct_ping_instance UPDATE active_user_count = 23 WHERE ping_id = 5 "
                      "SETTINGS mutations_sync = 1")
    [result] = run(warehouse, check)
    assert result.status == FAIL and "active_user_count: expected 22, found '23'" in result.message


def test_freshness_warns_then_fails_as_the_newest_arrival_ages(warehouse):
    check = declared("freshness_seat_link")  # warn after 1 day, error after 7 days
    assert run(warehouse, check)[0].status == FAIL  # no records at all
    warehouse.insert("fct_seat_link", [{"seat_link_id": 1, "received_at": NOW, "report_timestamp": NOW,
                                        "report_date": NOW.date()}])
    statuses = [run(warehouse, check, NOW + timedelta(days=d))[0].status for d in (0, 2, 8)]
    assert statuses == [PASS, WARN, FAIL]
    assert run(warehouse, check, NOW + timedelta(days=2))[0].observed == 2 * 86400


def test_dead_letter_rate_per_source_and_reason(warehouse):
    check = Check("dlr", "dead_letter_rate", "fct_seat_link", "error",
                  {"source": "seat_link", "time_column": "received_at", "max_rate": 0.2, "window_hours": 24})
    warehouse.insert("fct_seat_link", [{"seat_link_id": i, "received_at": NOW, "report_timestamp": NOW,
                                        "report_date": NOW.date()} for i in range(8)])
    letter = {"source": "seat_link", "stage": "validate", "received_at": NOW, "failed_at": NOW,
              "kafka_topic": "usage.raw.seat_link"}
    warehouse.insert("raw_dead_letter", [letter | {"dead_letter_id": 1, "reason": "schema: date missing"},
                                         letter | {"dead_letter_id": 2, "reason": "not valid JSON: x"}])
    assert {r.scope: (r.status, r.observed) for r in run(warehouse, check)} == {
        "validate/schema": (PASS, 0.1), "validate/not valid JSON": (PASS, 0.1)}
    warehouse.insert("raw_dead_letter", [letter | {"dead_letter_id": i, "reason": f"schema: bad {i}"}
                                         for i in range(3, 6)])
    assert {r.scope: r.status for r in run(warehouse, check)} == {"validate/schema": FAIL,
                                                                  "validate/not valid JSON": PASS}  # 4/13 > 20 %


def test_an_xmau_jump_of_more_than_ten_percent_is_flagged(warehouse):
    warehouse.execute("CREATE TABLE xmau_probe ENGINE = MergeTree ORDER BY month AS SELECT * FROM rpt_xmau_monthly "
                      "WHERE 0")
    check = Check("xmau_probe_change", "xmau_change", "xmau_probe", "error", {"max_change": 0.10})
    row = {"delivery": "Self-Managed", "xmau_type": "UMAU", "metrics_path": "usage.umau", "is_complete_month": 1}
    warehouse.insert("xmau_probe", [row | {"month": NOW.date().replace(month=m, day=1), "total_users_with_estimate": u}
                                    for m, u in ((6, 1000), (7, 1090), (8, 990))])
    assert [r.status for r in run(warehouse, check)] == [PASS, PASS]  # +9.0 %, -9.2 %
    warehouse.insert("xmau_probe", [row | {"month": NOW.date().replace(month=9, day=1),
                                           "total_users_with_estimate": 1200}])  # +21.2 %
    results = run(warehouse, check)
    assert [r.status for r in results] == [PASS, PASS, FAIL]
    assert results[-1].observed == pytest.approx(210 / 990, abs=1e-6)


def _xmau_rows(delivery: str, xmau_type: str, stage: str, path: str, users: tuple[int, ...]) -> list[dict]:
    return [{"delivery": delivery, "xmau_type": xmau_type, "product_stage": stage, "metrics_path": path,
             "month": NOW.date().replace(month=6 + i, day=1), "total_users_with_estimate": u, "is_complete_month": 1}
            for i, u in enumerate(users)]


def test_the_declared_xmau_checks_judge_the_kpis_as_the_seed_does(warehouse):
    """UMAU per delivery (its metrics summed), SMAU per stage from 1000 users on; a small series is no KPI."""
    warehouse.execute("CREATE TABLE xmau_probe ENGINE = MergeTree ORDER BY month AS SELECT * FROM rpt_xmau_monthly "
                      "WHERE 0")
    umau, smau = (replace(declared(n), table="xmau_probe") for n in ("xmau_umau_month_over_month",
                                                                     "xmau_smau_month_over_month"))
    warehouse.insert("xmau_probe", _xmau_rows("Self-Managed", "UMAU", "manage", "a", (50_000, 51_000, 52_500))
                     + _xmau_rows("Self-Managed", "UMAU", "manage", "b", (10, 30, 60))  # +200 %, but 0.1 % of UMAU
                     + _xmau_rows("SaaS", "UMAU", "manage", "c", (400, 410, 425))
                     + _xmau_rows("Self-Managed", "SMAU", "plan", "d", (20_000, 20_500, 21_000))
                     + _xmau_rows("Self-Managed", "SMAU", "secure", "e", (300, 600, 900)))  # below 1000: left out
    assert {r.scope: r.status for r in run(warehouse, umau)} == {
        "Self-Managed/2026-07-01": PASS, "Self-Managed/2026-08-01": PASS, "SaaS/2026-07-01": PASS,
        "SaaS/2026-08-01": PASS}
    assert {r.scope: r.status for r in run(warehouse, smau)} == {"Self-Managed/plan/2026-07-01": PASS,
                                                                "Self-Managed/plan/2026-08-01": PASS}
    warehouse.insert("xmau_probe", _xmau_rows("SaaS", "UMAU", "manage", "c", (0, 0, 0, 500))[3:]  # Sep: +17.6 %
                     + _xmau_rows("Self-Managed", "SMAU", "secure", "e", (0, 0, 0, 1_500))[3:]  # from 900: left out
                     + _xmau_rows("Self-Managed", "SMAU", "plan", "d", (0, 0, 0, 17_000))[3:])  # -19.0 %
    jumps = {r.scope: (r.status, r.observed) for r in run(warehouse, umau) + run(warehouse, smau) if r.status != PASS}
    assert jumps == {"SaaS/2026-09-01": (WARN, pytest.approx(75 / 425, abs=1e-6)),
                     "Self-Managed/plan/2026-09-01": (WARN, pytest.approx(-4_000 / 21_000, abs=1e-6))}


def test_a_declared_relationship_tolerance_passes_below_and_fails_above(warehouse):
    check = replace(declared("relationships_dim_license_dim_subscription_id__dim_subscription_dim_subscription_id"),
                    severity="error")
    share = check.params["max_share"]
    warehouse.insert("dim_subscription", [{"dim_subscription_id": "S1", "updated_at": NOW}])
    licenses = [{"dim_license_id": f"L{i}", "dim_subscription_id": "S1", "updated_at": NOW} for i in range(20)]
    warehouse.insert("dim_license", licenses + [{"dim_license_id": "L-trial", "dim_subscription_id": "",
                                                 "updated_at": NOW}])
    assert run(warehouse, check)[0].status == PASS
    stale = int(20 * share / (1 - share))  # orphans that keep the share at or below the tolerance
    warehouse.insert("dim_license", [{"dim_license_id": f"X{i}", "dim_subscription_id": f"gone-{i}",
                                      "updated_at": NOW} for i in range(stale)])
    assert (run(warehouse, check)[0].status, run(warehouse, check)[0].observed) == (PASS, stale)
    warehouse.insert("dim_license", [{"dim_license_id": "X-more", "dim_subscription_id": "gone-more",
                                      "updated_at": NOW}])
    [result] = run(warehouse, check)
    assert (result.status, result.observed) == (FAIL, stale + 1)
    assert f"{stale + 1} of {21 + stale} rows" in result.message


def test_a_run_is_stored_printed_and_failing_checks_become_alert_events(warehouse):
    checks = [declared("unique_fct_ping_instance__ping_id"), declared("not_null_fct_ping_instance_installation_id"),
              declared("xmau_umau_month_over_month")]
    warehouse.insert("fct_ping_instance", [ping(1), ping(1, installation="")])
    result = run_checks(warehouse, Settings.from_env(), checks=checks, now=NOW)
    assert result.failed and result.counts() == {"pass": 1, "warn": 0, "fail": 2, "error": 0}
    stored = warehouse.query("SELECT check_name, status, observed FROM check_results WHERE run_id = {r:String} "
                             "ORDER BY check_name", {"r": result.run_id}).rows
    assert stored == [("not_null_fct_ping_instance_installation_id", "fail", 1), (
        "unique_fct_ping_instance__ping_id", "fail", 1), ("xmau_umau_month_over_month", "pass", None)]
    assert "FAIL" in format_run(result) and "2 fail" in format_run(result)
    events = alert_events(result)
    assert sorted(e["rule"] for e in events) == ["check:not_null_fct_ping_instance_installation_id",
                                                 "check:unique_fct_ping_instance__ping_id"]
    assert all(isinstance(e[k], str) for e in events for k in ("event_id", "alert_id", "rule", "state"))
    assert {r.status for r in run_checks(warehouse, Settings.from_env(), checks=checks[2:], now=NOW).results} == {
        PASS}


def test_a_check_that_cannot_run_is_an_error_not_a_pass(warehouse):
    [result] = run(warehouse, Check("unique_nothing", "unique", "no_such_table", "error", {"columns": ["x"]}))
    assert result.status == "error" and result.failed and "no_such_table" in result.message
    [warned] = run(warehouse, Check("w", "unique", "fct_ping_instance", "warn", {"columns": ["nope"]}))
    assert warned.status == "error" and not warned.failed  # a warn-level check never fails the run
