"""xMAU and estimated xMAU (clickhouse/053-069) against an independent model over the generator's raw pings.

One warehouse, two states, both compared with the model (tests/support/ping_model.py):
1. pings only: the subscription population comes from the license fields the pings carry, version lag from the
   versions pings reported;
2. after loading reference data (dim_license, dim_subscription, dim_crm_account: renewals, subscriptions that
   never ping, an expired one, a free one, one Zuora lacks) and the release list (dim_app_release).
Duplicated (unmerged) rows are present throughout. Then the CLI (`show`, `catalog`) and `demo_tables` run on it.
"""

from __future__ import annotations

import contextlib
import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from fleet.pings import fleet_licenses, generate_fleet
from streams.config import SCHEMAS_DIR
from streams.enrich.metric_dictionary import MetricDictionary
from streams.warehouse import Warehouse, open_warehouse
from tests.support.ping_model import (
    GRAINS,
    OFFICIAL,
    Model,
    Reference,
    Subscription,
    duplicate_rows,
    land,
    normalized_records,
)
from tests.support.ping_model import open_warehouse as open_test_warehouse

pytestmark = pytest.mark.integration

INSTANCES, WEEKS, SEED = 30, 16, 13
LOADED_AT = datetime(2026, 12, 1, tzinfo=UTC)
VIEWS = (
    "prep_ping_subscription_population_monthly", "rpt_ping_latest_subscriptions_monthly",
    "rpt_ping_subscriptions_reported_counts_monthly", "rpt_ping_subscriptions_on_versions_counts_monthly",
    "rpt_ping_metric_estimate_factors_monthly", "rpt_ping_metric_totals_w_estimates_monthly",
    "rpt_xmau_self_managed_monthly", "rpt_xmau_monthly", "rpt_ping_metric_first_last_versions",
    "rpt_version_lag_monthly", "rpt_version_lag_account_monthly", "rpt_stage_adoption_account_monthly",
)


def _d(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


@dataclass
class State:
    model: Model
    views: dict[str, list[dict]] = field(default_factory=dict)


@dataclass
class Run:
    pings: State
    reference: State
    cli: dict[str, str] = field(default_factory=dict)
    demo: str = ""
    catalog: str = ""
    saas_rows: list[dict] = field(default_factory=list)
    saas_expected: dict = field(default_factory=dict)


def reference_rows(reference: Reference, licenses: list) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {"dim_license": [], "dim_subscription": [], "dim_crm_account": []}
    for n, lic in enumerate(licenses):
        hashes = ({"license_md5": lic.md5, "license_sha256": ""} if n % 3 == 0 else
                  {"license_md5": "", "license_sha256": lic.sha256} if n % 3 == 1 else
                  {"license_md5": lic.md5, "license_sha256": lic.sha256})
        rows["dim_license"].append({
            "dim_license_id": str(lic.license_id), **hashes, "dim_subscription_id": lic.subscription_id or "",
            "license_user_count": lic.seats, "license_plan": lic.plan, "is_trial": int(lic.trial),
            "starts_at": lic.starts_at, "expires_at": lic.expires_at, "updated_at": LOADED_AT, "is_deleted": 0})
    for sub in reference.subscriptions.values():
        rows["dim_subscription"].append({
            "dim_subscription_id": sub.subscription_id, "subscription_name": f"A-{sub.subscription_id[-6:]}",
            "dim_crm_account_id": sub.account_id, "dim_billing_account_id": "", "subscription_status": sub.status,
            "product_tier": sub.tier, "seats": sub.seats, "term_start_date": sub.start, "term_end_date": sub.end,
            "updated_at": LOADED_AT, "is_deleted": 0})
    for account, name in reference.accounts.items():
        rows["dim_crm_account"].append({
            "dim_crm_account_id": account, "account_name": name, "dim_parent_crm_account_id": "",
            "crm_account_type": "Customer", "billing_country": "DE", "updated_at": LOADED_AT, "is_deleted": 0})
    return rows


def make_reference() -> tuple[Reference, list]:
    """CustomersDot/Zuora stand-ins for the fleet's licenses: seats differ from the pings' (+5), two instances
    share each account, one subscription is missing from Zuora, one expired, one free, and two never ping."""
    licenses = fleet_licenses(INSTANCES, WEEKS, seed=SEED)
    order = {uuid: i for i, uuid in enumerate(dict.fromkeys(lic.instance_uuid for lic in licenses))}
    subscriptions: dict[str, Subscription] = {}
    accounts: dict[str, str] = {}
    paid = [lic for lic in licenses if lic.subscription_id]
    for n, lic in enumerate(paid):
        account = f"0014acct{order[lic.instance_uuid] // 2:04d}"
        accounts[account] = f"Account {order[lic.instance_uuid] // 2}"
        if n == 0:
            continue  # Zuora does not know this one: its pings map to it, but it is not in the population
        status, tier = ("Expired", "Premium") if n == 1 else ("Active", "Free") if n == 2 else ("Active", "Premium")
        subscriptions[lic.subscription_id] = Subscription(lic.subscription_id, account, status, tier, lic.seats + 5,
                                                          lic.starts_at, lic.expires_at)
    subscriptions["2c92a0ffextra0001"] = Subscription("2c92a0ffextra0001", "0014acct9999", "Active", "Ultimate", 50,
                                                      date(2026, 1, 1), date(2027, 1, 1))
    subscriptions["2c92a0ffextra0002"] = Subscription("2c92a0ffextra0002", "0014acct9999", "Cancelled", "Premium", 20,
                                                      date(2026, 7, 15), date(2026, 9, 15))
    accounts["0014acct9999"] = "Never Pings Inc"
    hashes = {h: lic.subscription_id or "" for lic in licenses for h in (lic.md5, lic.sha256)}
    # the loaded dim_license rows carry only some hashes (see reference_rows): the model sees the same ones
    known: dict[str, str] = {}
    for n, lic in enumerate(licenses):
        for h in ((lic.md5,) if n % 3 == 0 else (lic.sha256,) if n % 3 == 1 else (lic.md5, lic.sha256)):
            known[h] = hashes[h]
    return Reference(subscriptions, known, accounts), licenses


def seed_releases() -> dict[int, date]:
    releases: dict[int, date] = {}
    with (SCHEMAS_DIR / "releases.csv").open() as handle:
        for row in csv.DictReader(handle):
            key = int(row["major"]) * 100 + int(row["minor"])
            day = date.fromisoformat(row["release_date"])
            releases[key] = min(releases.get(key, day), day)
    return releases


def _snapshot(warehouse: Warehouse, model: Model) -> State:
    return State(model, {view: warehouse.query(f"SELECT * FROM {view}").dicts() for view in VIEWS})


def _apply_saas_hook(warehouse: Warehouse) -> tuple[list[dict], dict]:
    """Add SaaS event metrics (rpt_xmau_monthly, clickhouse/069, unions them in), read the union back."""
    base = {"description": "", "operator": "OR", "events": [], "product_section": "dev", "product_group": "g",
            "metric_status": "active", "tier": [], "performance_indicator_type": [], "is_paid_gmau": 0,
            "loaded_at": LOADED_AT}
    metrics = [  # (key_path, time_frame, value_type, stage, umau, smau, gmau)
        ("saas.users_monthly", "28d", "user", "manage", 1, 0, 0),
        ("saas.plan_users_monthly", "28d", "user", "plan", 0, 1, 1),
        ("saas.plan_users_weekly", "7d", "user", "plan", 0, 1, 0),
        ("saas.create_events_monthly", "28d", "event", "create", 0, 1, 0),
        ("saas.untagged_monthly", "28d", "user", "verify", 0, 0, 0),
    ]
    warehouse.insert("dim_event_metric", [base | {
        "key_path": k, "time_frame": tf, "value_type": vt, "product_stage": st, "is_umau": u, "is_smau": s,
        "is_gmau": g} for k, tf, vt, st, u, s, g in metrics])
    july, august, mid_august = date(2026, 7, 31), date(2026, 8, 31), date(2026, 8, 15)
    values = [  # (key_path, scope, metric_date, value): only 'saas' rows on a month's last day count
        ("saas.users_monthly", "saas", july, 900), ("saas.users_monthly", "saas", august, 950),
        ("saas.users_monthly", "saas", mid_august, 999), ("saas.users_monthly", "namespace", august, 5),
        ("saas.plan_users_monthly", "saas", august, 400), ("saas.plan_users_weekly", "saas", august, 1),
        ("saas.create_events_monthly", "saas", august, 7), ("saas.untagged_monthly", "saas", august, 3),
    ]
    warehouse.insert("agg_event_metric_daily", [
        {"key_path": k, "scope": sc, "scope_id": "all", "metric_date": d, "value": v, "computed_at": LOADED_AT}
        for k, sc, d, v in values])
    expected = {(date(2026, 7, 1), "UMAU", "saas.users_monthly"): 900,
                (date(2026, 8, 1), "UMAU", "saas.users_monthly"): 950,
                (date(2026, 8, 1), "SMAU", "saas.plan_users_monthly"): 400,
                (date(2026, 8, 1), "GMAU", "saas.plan_users_monthly"): 400}
    return warehouse.query("SELECT * FROM rpt_xmau_monthly").dicts(), expected


def _cli(*argv: str) -> str:
    from streams.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(list(argv)) == 0
    return out.getvalue()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    from streams.marts import demo_tables
    from streams.releases import seed_if_empty

    dictionary = MetricDictionary.from_dir()
    valid = [p for p in generate_fleet(INSTANCES, WEEKS, seed=SEED) if p.valid]
    data_dir = tmp_path_factory.mktemp("xmau")
    warehouse = open_test_warehouse(data_dir / "chdb", dictionary)
    reference, licenses = make_reference()
    try:
        records = normalized_records(valid, dictionary)
        land(warehouse, records + records[:30])
        duplicate_rows(warehouse, every=3)
        pings = _snapshot(warehouse, Model(valid, dictionary))
        for table, rows in reference_rows(reference, licenses).items():
            warehouse.insert(table, rows)
        assert seed_if_empty(warehouse) > 0
        result = Run(pings, _snapshot(warehouse, Model(valid, dictionary, reference, seed_releases())))
        result.demo = demo_tables(warehouse)
        result.saas_rows, result.saas_expected = _apply_saas_hook(warehouse)
    finally:
        warehouse.close()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DENOMAS_DATA_DIR", str(data_dir))
        patch.setenv("DENOMAS_WAREHOUSE_DATABASE", warehouse.database)  # the CLI reads what was loaded above
        result.cli["xmau"] = _cli("show", "rpt_xmau_monthly", "--scope", "UMAU", "--from", "2026-07", "--to", "2026-08")
        result.cli["lag"] = _cli("show", "rpt_version_lag_account_monthly", "--scope", "0014acct0001")
        result.cli["list"] = _cli("show")
        catalog = data_dir / "catalog.md"
        result.cli["catalog"] = _cli("catalog", "--output", str(catalog))
        result.catalog = catalog.read_text()
    return result


@pytest.fixture(scope="module", params=["pings", "reference"])
def state(request: pytest.FixtureRequest, run: Run) -> State:
    return getattr(run, request.param)


def test_population_of_paid_subscriptions(state: State) -> None:
    rows = state.views["prep_ping_subscription_population_monthly"]
    got = {(_d(r["ping_created_date_month"]), r["latest_subscription_id"]):
           (r["licensed_user_count"], r["is_missing_from_population"]) for r in rows}
    assert len(got) == len(rows)
    assert got == state.model.population()
    source = "reference" if state.model.reference else "pings"
    assert {r["population_source"] for r in rows} == {source}
    assert any(missing for _, missing in got.values())  # pinged while not active: still counted


def test_latest_subscriptions_with_installations(state: State) -> None:
    rows = state.views["rpt_ping_latest_subscriptions_monthly"]
    got = {(_d(r["ping_created_date_month"]), r["latest_subscription_id"], r["installation_id"]): r for r in rows}
    expected = state.model.latest_subscriptions()
    assert len(got) == len(rows) and got.keys() == expected.keys()
    for key, want in expected.items():
        assert {k: got[key][k] for k in want} == want, key
    assert any(not r["has_sent_pings"] for r in rows)  # subscriptions that did not report that month


def test_reported_and_on_version_counts(state: State) -> None:
    totals = {(_d(r["ping_created_date_month"]), r["metrics_path"], r["ping_edition"]):
              (r["total_subscription_count"], r["total_licensed_users"])
              for r in state.views["rpt_ping_subscriptions_reported_counts_monthly"]}
    assert totals == state.model.reported_counts()
    on_versions = {(_d(r["ping_created_date_month"]), r["metrics_path"], r["ping_edition"]):
                   (r["total_subscription_count"], r["total_licensed_users"])
                   for r in state.views["rpt_ping_subscriptions_on_versions_counts_monthly"]}
    assert on_versions == state.model.on_versions_counts()


def test_estimate_factors_for_all_four_methods(state: State) -> None:
    rows = state.views["rpt_ping_metric_estimate_factors_monthly"]
    got = {(_d(r["ping_created_date_month"]), r["metrics_path"], r["ping_edition"], r["estimation_grain"]):
           (r["reporting_count"], r["not_reporting_count"], r["total_count"], r["percent_reporting"]) for r in rows}
    assert len(got) == len(rows)
    expected = state.model.factors()
    assert got == expected
    assert {key[3] for key in got} == set(GRAINS)
    percents = {grain: [v[3] for k, v in got.items() if k[3] == grain] for grain in GRAINS}
    assert all(0 < min(p) < 1 for p in percents.values())  # somebody is always not reporting
    version_check = {k[:3]: v[3] for k, v in got.items() if k[3] == OFFICIAL}
    reported = {k[:3]: v[3] for k, v in got.items() if k[3] == GRAINS[2]}
    assert any(version_check[k] != reported.get(k) for k in version_check)  # the two conditions differ


def test_totals_with_estimates_side_by_side(state: State) -> None:
    rows = state.views["rpt_ping_metric_totals_w_estimates_monthly"]
    got = {(_d(r["ping_created_date_month"]), r["metrics_path"], r["ping_edition"], r["ping_product_tier"],
            r["estimation_grain"]): (r["recorded_usage"], r["estimated_usage"], r["total_usage_with_estimate"])
           for r in rows}
    assert len(got) == len(rows)
    assert got == state.model.totals_with_estimates()
    assert all(r["recorded_usage"] + r["estimated_usage"] == r["total_usage_with_estimate"] for r in rows)
    assert any(r["estimated_usage"] > 0 for r in rows if r["estimation_grain"] == OFFICIAL)


def test_xmau_recorded_and_estimated(state: State) -> None:
    rows = state.views["rpt_xmau_self_managed_monthly"]
    got = {(_d(r["month"]), r["xmau_type"], r["metrics_path"]):
           (r["recorded_users"], r["estimated_users"], r["total_users_with_estimate"], r["reporting_installations"])
           for r in rows}
    assert len(got) == len(rows)
    expected = state.model.xmau()
    assert got == expected
    assert {key[1] for key in got} == {"UMAU", "SMAU", "GMAU", "Paid GMAU"}
    both = [(m, p) for (m, t, p) in got if t == "Paid GMAU" and (m, "GMAU", p) in got]
    assert any(got[(m, "Paid GMAU", p)][0] < got[(m, "GMAU", p)][0] for m, p in both)  # free tiers left out
    assert all(r["is_complete_month"] == int(_d(r["month"]) < date.today().replace(day=1)) for r in rows)
    assert all(r["delivery"] == "Self-Managed" for r in rows)


def test_xmau_union_view_has_the_self_managed_rows(state: State) -> None:
    union = state.views["rpt_xmau_monthly"]
    self_managed = [r for r in union if r["delivery"] == "Self-Managed"]
    key = lambda r: (r["month"], r["xmau_type"], r["metrics_path"])  # noqa: E731
    assert sorted(self_managed, key=key) == sorted(state.views["rpt_xmau_self_managed_monthly"], key=key)


def test_version_lag_uses_the_release_list_once_loaded(run: Run) -> None:
    for state, basis in ((run.pings, "pings"), (run.reference, "releases")):
        rows = state.views["rpt_version_lag_monthly"]
        got = {(r["installation_id"], _d(r["ping_created_date_month"])):
               (r["latest_major_minor_version"], r["minors_behind"]) for r in rows}
        assert got == state.model.version_lag()
        assert {r["lag_basis"] for r in rows} == {basis}
    before = {(r["installation_id"], r["ping_created_date_month"]): r["minors_behind"]
              for r in run.pings.views["rpt_version_lag_monthly"]}
    after = {(r["installation_id"], r["ping_created_date_month"]): r["minors_behind"]
             for r in run.reference.views["rpt_version_lag_monthly"]}
    assert before != after  # releases nobody runs yet count too
    versions = {(r["metrics_path"], r["ping_edition"], r["version_is_prerelease"]):
                (r["first_major_minor_version_id_with_counter"], r["last_major_minor_version_id_with_counter"],
                 r["dim_installation_count"]) for r in run.reference.views["rpt_ping_metric_first_last_versions"]}
    assert versions == run.reference.model.first_last_versions()


def test_account_rollups(run: Run) -> None:
    model = run.reference.model
    lag = model.version_lag()
    expected: dict[tuple[str, date], list] = {}
    for (installation, month), ping in model.last_pings().items():
        account = model.account_of(ping)
        if account:
            expected.setdefault((account, month), []).append(lag[(installation, month)][1])
    rows = run.reference.views["rpt_version_lag_account_monthly"]
    got = {(r["dim_crm_account_id"], _d(r["ping_created_date_month"])):
           (r["installations"], r["far_behind_installations"], r["max_minors_behind"]) for r in rows}
    assert got == {k: (len(v), sum(1 for x in v if x >= 3), max(v)) for k, v in expected.items()}
    assert any(r["installations"] == 2 for r in rows) and all(r["account_name"] for r in rows)

    adoption = model.stage_adoption()
    installations_of: dict[tuple[str, date], set[str]] = {}
    for (installation, month), ping in model.last_pings().items():
        if model.account_of(ping):
            installations_of.setdefault((model.account_of(ping), month), set()).add(installation)
    want: dict[tuple[str, date, str], tuple[int, int]] = {}
    for (account, month), members in installations_of.items():
        for stage in {s for (i, m, s) in adoption if i in members and m == month}:
            adopting = sum(1 for i in members if (i, month, stage) in adoption)
            want[(account, month, stage)] = (adopting, len(members))
    got_adoption = {(r["dim_crm_account_id"], _d(r["ping_created_date_month"]), r["product_stage"]):
                    (r["adopting_installations"], r["account_installations"])
                    for r in run.reference.views["rpt_stage_adoption_account_monthly"]}
    assert got_adoption == want and want


def test_cli_show_and_catalog(run: Run) -> None:
    xmau = run.cli["xmau"]
    assert xmau.startswith("rpt_xmau_monthly\n") and "(4 rows)" in xmau  # July and August, SM and SaaS
    expected = run.reference.model.xmau()
    for month in (date(2026, 7, 1), date(2026, 8, 1)):
        recorded, estimated, total, _ = expected[(month, "UMAU", "usage_activity_by_stage_monthly.manage.events")]
        line = next(line for line in xmau.splitlines() if line.startswith(f"{month.isoformat()}  Self-Managed"))
        assert f"{recorded:,}" in line and f"{estimated:,}" in line and f"{total:,}" in line
        saas = next(line for line in xmau.splitlines() if line.startswith(f"{month.isoformat()}  SaaS"))
        assert f"{run.saas_expected[(month, 'UMAU', 'saas.users_monthly')]:,}" in saas
    model = run.reference.model
    months = {m for (_, m), ping in model.last_pings().items() if model.account_of(ping) == "0014acct0001"}
    assert months and f"({len(months)} rows)" in run.cli["lag"] and "0014acct0001" in run.cli["lag"]
    assert "rpt_xmau_monthly" in run.cli["list"] and "rpt_version_lag_monthly" in run.cli["list"]
    assert "wrote" in run.cli["catalog"]
    assert "#### rpt_ping_metric_totals_w_estimates_monthly" in run.catalog
    assert "- class: Yellow" in run.catalog and "## Service Ping metrics" in run.catalog


def test_demo_tables(run: Run) -> None:
    demo = run.demo
    expected = run.reference.model.xmau()
    umau = expected[(date(2026, 8, 1), "UMAU", "usage_activity_by_stage_monthly.manage.events")]
    line = next(line for line in demo.splitlines() if line.startswith("2026-08") and " UMAU " in line)
    assert line.split()[-3:] == [f"{umau[0]:,}", f"{umau[1]:,}", f"{umau[2]:,}"]
    latest = max(run.reference.model.months)
    lag = run.reference.model.version_lag()
    behind = sum(1 for (_, month), (_, minors) in lag.items() if month == latest and minors >= 3)
    total = sum(1 for (_, month) in lag if month == latest)
    assert f"Version lag, {latest:%Y-%m}: {behind} of {total} installations" in demo


def test_catalog_file_in_the_repo_is_current_for_these_views() -> None:
    """docs/catalog.md is generated; it must at least describe every mart and report of 040-047."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "catalog.md").read_text()
    for view in VIEWS:
        assert f"#### {view}\n" in text, view


def test_saas_hook_unions_saas_users_into_xmau(run: Run) -> None:
    saas = {(_d(r["month"]), r["xmau_type"], r["metrics_path"]): r for r in run.saas_rows if r["delivery"] == "SaaS"}
    assert {k: r["recorded_users"] for k, r in saas.items()} == run.saas_expected
    assert all(r["estimated_users"] == 0 and r["total_users_with_estimate"] == r["recorded_users"]
               for r in saas.values())
    self_managed = [r for r in run.saas_rows if r["delivery"] == "Self-Managed"]
    key = lambda r: (r["month"], r["xmau_type"], r["metrics_path"])  # noqa: E731
    assert sorted(self_managed, key=key) == sorted(run.reference.views["rpt_xmau_self_managed_monthly"], key=key)


def test_xmau_through_the_real_broker_path(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """HTTP collector -> Kafka -> Faust worker -> chdb, then xMAU and version lag equal the model."""
    import asyncio

    from fleet.demo import send_pings
    from tests.support.pipeline import pipeline_settings, running_pipeline

    settings = pipeline_settings(tmp_path_factory, "xmau-broker", topic_partitions=2, sink_batch_size=50)
    fleet = generate_fleet(12, 10, seed=SEED)

    async def pipeline() -> None:
        async with running_pipeline(settings, kafka_bootstrap) as running:
            report = await send_pings(running.url, fleet + fleet[:20], progress=False)  # 20 pings sent twice
            assert report.accepted == len(fleet) + 20
            await running.landed()

    asyncio.run(pipeline())
    warehouse = open_warehouse(settings)
    try:
        releases = int(warehouse.query("SELECT count() FROM dim_app_release").scalar())
        xmau = warehouse.query("SELECT * FROM rpt_xmau_self_managed_monthly").dicts()
        lag = warehouse.query("SELECT * FROM rpt_version_lag_monthly").dicts()
    finally:
        warehouse.close()
    valid = [p for p in fleet if p.valid]
    model = Model(valid, MetricDictionary.from_dir(), releases=seed_releases() if releases else None)
    got = {(_d(r["month"]), r["xmau_type"], r["metrics_path"]):
           (r["recorded_users"], r["estimated_users"], r["total_users_with_estimate"], r["reporting_installations"])
           for r in xmau}
    assert got == model.xmau() and got
    got_lag = {(r["installation_id"], _d(r["ping_created_date_month"])):
               (r["latest_major_minor_version"], r["minors_behind"]) for r in lag}
    assert got_lag == model.version_lag() and {r["lag_basis"] for r in lag} == {"releases" if releases else "pings"}
