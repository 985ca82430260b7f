"""The dashboard in a real browser (Debian's chromium driven by Playwright) on a pipeline fed by the sample fleet.

The seed-42 fleet goes through the demo's pipeline once for the module (HTTP collector -> Kafka -> worker -> the
warehouse service; the demo's checks run too). Then the dashboard runs as its own process and every page is opened:
the numbers in its tables equal the page's queries asked of the warehouse by the test, and the key ones equal
numbers computed independently (the generator's own SaaS xMAU and namespace active users, installation types from
the pings sent, dead letters from the invalid pings); filters, sorting, hover and the data class are used as a person
would. Screenshots go to test-artifacts/dashboard/.
"""

from __future__ import annotations

import asyncio
import re
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from fleet.demo import DemoFleet
from fleet.demo import _run_pipeline as run_pipeline
from fleet.event_metrics import FleetEventMetrics
from streams.checks.runner import check_and_report
from streams.config import PROJECT_ROOT, Settings
from streams.dashboard import DashboardProcess
from streams.dashboard.entity_pages import entity_page
from streams.dashboard.page_model import Filters, parse_filters
from streams.dashboard.pages import PAGES, over_views
from streams.dashboard.server import plotly_js, warehouse_url
from streams.warehouse import ServerWarehouse, open_warehouse
from streams.warehouse_service.process import free_port

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "dashboard"
INSTANCES, WEEKS, SEED = 6, 10, 42  # 10 weeks from 2026-06-01: June and July end inside the data


@pytest.fixture(scope="module")
def pipeline(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, DemoFleet]:
    """The demo's pipeline (collector, broker, worker) fed the fleet, then the trusted-data checks, without the
    demo's printed report (tests/pipeline/test_demo.py checks that; here the dashboard is the report)."""
    name = datetime.now(UTC).strftime("%H%M%S%f")
    settings = Settings.from_env(data_dir=tmp_path_factory.mktemp("dashboard"), kafka_bootstrap_servers=kafka_bootstrap,
                                 topic_prefix=f"dash-{name}.", app_id=f"dash-{name}", topic_partitions=2)
    fleet = DemoFleet.build(INSTANCES, WEEKS, SEED)
    asyncio.run(run_pipeline(settings, kafka_bootstrap, fleet))
    check_and_report(settings, kafka_bootstrap)  # fills check_results, as the demo and the worker's schedule do
    return settings, fleet


@pytest.fixture(scope="module")
def board(pipeline) -> str:
    settings, _ = pipeline
    with DashboardProcess(settings, free_port()) as process:
        yield process.url


@pytest.fixture(scope="module")
def warehouse(pipeline):
    opened = open_warehouse(pipeline[0])
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def browser(board):  # after the pipeline: Playwright's sync API keeps an event loop running in this thread
    if not CHROMIUM.exists():  # a failure, never a skip: .ci/run installs it (apt-get install chromium)
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser, board):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.errors = []
    opened.requests = []
    opened.on("pageerror", lambda exc: opened.errors.append(str(exc)))
    opened.on("request", lambda request: opened.requests.append(request.url))
    yield opened
    context.close()


def open_page(page, url: str, shot: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-ready]", timeout=60_000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)
    assert page.get_attribute("body", "data-ready") == "1", page.inner_text("#panels")
    assert page.errors == []


def shown(page, panel: str) -> list[list[str]]:
    """The rows of a panel's table as the page shows them (cell values, in order)."""
    return page.eval_on_selector_all(
        f'table[data-panel="{panel}"] tbody tr',
        "rows => rows.map(r => Array.from(r.cells).map(c => c.dataset.value))")


def as_shown(rows: list[tuple]) -> list[list[str]]:
    """Warehouse rows as the page prints them (JSON numbers as JavaScript's String() writes them)."""
    def text(value) -> str:
        if value is None:
            return ""
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)
    return [[text(v) for v in row] for row in rows]


def asked(warehouse: ServerWarehouse, sql: str, params: dict) -> list[tuple]:
    return warehouse.query(sql, params).rows


def column(page, panel: str, name: str) -> list[str]:
    index = page.eval_on_selector_all(f'table[data-panel="{panel}"] thead th',
                                      "ths => ths.map(th => th.dataset.column)").index(name)
    return [row[index] for row in shown(page, panel)]


def data_classes(warehouse: ServerWarehouse, tables: tuple[str, ...]) -> list[str]:
    """The class words that start the tables' COMMENTs (read here with a regex of the test's own)."""
    comments = dict(warehouse.query("SELECT name, comment FROM system.tables WHERE database = currentDatabase()").rows)
    classes: list[str] = []
    for table in tables:
        found = re.match(r"^\s*([A-Za-z]+(?:\s*/\s*[A-Za-z]+)*)\.", comments[table])
        assert found, f"{table} has no data class in its COMMENT"
        classes += [c.strip().title() for c in found.group(1).split("/") if c.strip().title() not in classes]
    return classes


# ---------------------------------------------------------------------------------------------------
# Every page: the numbers it shows are the warehouse's


@pytest.mark.parametrize("key", list(PAGES))
def test_every_page_shows_the_warehouse_numbers_and_its_data_class(key, page, board, warehouse) -> None:
    definition = PAGES[key]
    open_page(page, f"{board}/{key}", key)
    params = Filters().params()
    for panel in definition.panels:
        assert shown(page, panel.key) == as_shown(asked(warehouse, over_views(panel.sql), params)), panel.key
    badges = page.eval_on_selector_all("#data-class .class", "spans => spans.map(s => s.textContent)")
    assert badges == data_classes(warehouse, definition.tables)
    assert badges and "unclassified" not in badges
    if any(p.chart for p in definition.panels):
        assert page.locator(".chart .main-svg").count() >= 1  # plotly drew


def test_the_charts_come_from_the_dashboard_itself_not_a_cdn(page, board) -> None:
    open_page(page, f"{board}/xmau", "xmau-offline")
    assert page.requests and all(url.startswith(board) for url in page.requests), page.requests
    with urllib.request.urlopen(f"{board}/static/plotly.min.js") as response:
        assert response.read() == plotly_js().read_bytes()


def test_saas_xmau_equals_the_generators_own_count(page, board, pipeline) -> None:
    _, fleet = pipeline
    expected = {(month.strftime("%Y-%m"), kind, path): users
                for (month, kind, path), users in FleetEventMetrics.of(fleet.snowplow).saas_xmau().items()}
    open_page(page, f"{board}/xmau?delivery=SaaS", "xmau-saas")
    rows = shown(page, "all")
    columns = page.eval_on_selector_all('table[data-panel="all"] thead th', "ths => ths.map(th => th.dataset.column)")
    got = {(r[columns.index("report_month")], r[columns.index("xmau_type")], r[columns.index("metrics_path")]):
           int(r[columns.index("recorded")]) for r in rows}
    assert expected and got == expected
    assert set(column(page, "umau", "delivery")) == {"SaaS"}


def test_installation_types_equal_the_pings_sent(page, board, pipeline) -> None:
    _, fleet = pipeline
    last: dict[tuple, tuple[str, str]] = {}
    for ping in (p for p in fleet.pings if p.valid):
        key = (ping.uuid, ping.hostname, ping.recorded_at[:7])
        last[key] = max(last.get(key, ("", "")), (ping.recorded_at, ping.payload["installation_type"]))
    expected = Counter((month, kind) for (_, _, month), (_, kind) in last.items())
    open_page(page, f"{board}/installation-types", "installation-types-generator")
    got = {(m, t): int(n) for m, t, n in shown(page, "trend")}
    assert got == dict(expected)


def test_dead_letters_by_reason_hold_every_invalid_ping(page, board, pipeline) -> None:
    _, fleet = pipeline
    open_page(page, f"{board}/pipeline", "pipeline-dead-letters")
    by_source = Counter()
    for source, _, _, records, _ in shown(page, "dead_letters"):
        by_source[source] += int(records)
    assert by_source["service_ping"] == sum(1 for p in fleet.pings if not p.valid) > 0
    statuses = set(column(page, "checks", "status"))
    assert statuses and statuses <= {"pass", "warn", "fail", "error"}
    assert set(column(page, "failed", "status")) <= {"warn", "fail", "error"}


def test_customer_success_utilization_is_billable_over_licensed(page, board) -> None:
    open_page(page, f"{board}/customer-success", "customer-success")
    billable, licensed = column(page, "mart", "billable_user_count"), column(page, "mart", "license_user_count")
    utilization = column(page, "mart", "utilization")
    checked = [(b, lic, u) for b, lic, u in zip(billable, licensed, utilization, strict=True) if b and lic and u]
    assert checked
    for b, lic, u in checked:
        assert float(u) == round(int(b) / int(lic), 4)


# ---------------------------------------------------------------------------------------------------
# An account, instance or namespace: users over time, alerts marked


def test_a_namespace_page_shows_the_generators_7_and_28_day_users(page, board, pipeline) -> None:
    _, fleet = pipeline
    metrics = FleetEventMetrics.of(fleet.snowplow)
    expected = {7: metrics.active_users(7), 28: metrics.active_users(28)}
    namespace = max({ns for _, ns in expected[28]}, key=lambda ns: sum(v for (_, n), v in expected[28].items()
                                                                        if n == ns))
    open_page(page, f"{board}/entity?q={namespace}", "entity-search")
    page.click(f'table[data-panel="matches"] a[href="/entity?type=namespace&id={namespace}"]')
    page.wait_for_selector("body[data-ready]")
    assert page.get_attribute("body", "data-page") == "entity-namespace"
    days = dict(zip(column(page, "users", "day"), zip(column(page, "users", "users_7d"),
                                                       column(page, "users", "users_28d"), strict=True), strict=True))
    ends = [end for end in metrics.ends if (end, namespace) in expected[28]]
    assert ends
    for end in ends:
        assert days[end.isoformat()] == (str(expected[7].get((end, namespace), 0) or ""),
                                         str(expected[28][(end, namespace)])), end
    page.screenshot(path=str(ARTIFACTS / "entity-namespace.png"), full_page=True)


def test_an_instance_page_marks_its_alerts_on_the_chart(page, board, warehouse) -> None:
    alerted = warehouse.query("""SELECT i.installation_id, count() FROM alerts AS a FINAL
                                 INNER JOIN (SELECT DISTINCT installation_id FROM fct_ping_instance FINAL) AS i
                                 ON a.scope_id = i.installation_id
                                 WHERE a.scope_type = 'instance' GROUP BY i.installation_id
                                 ORDER BY count() DESC, i.installation_id LIMIT 1""").rows
    assert alerted, "the fleet's sudden drops open alerts"
    installation_id, alerts = alerted[0]
    open_page(page, f"{board}/entity?type=instance&id={installation_id}", "entity-instance")
    assert len(shown(page, "alerts")) >= alerts
    marks = page.evaluate("""() => document.querySelector('.chart[data-panel="users"]').data
                                   .filter(t => t.name === 'alerts').map(t => t.x.length)""")
    assert marks == [len(shown(page, "alerts"))]
    pings = warehouse.query("SELECT count() FROM fct_ping_instance FINAL WHERE installation_id = {id:String} "
                            "AND active_user_count >= 0", {"id": installation_id}).scalar()
    assert len([v for v in column(page, "users", "ping_active_users") if v]) == pings
    params = Filters().params() | {"id": installation_id}
    for panel in entity_page("instance").panels:
        assert shown(page, panel.key) == as_shown(asked(warehouse, over_views(panel.sql), params)), panel.key
    assert column(page, "about", "installation_id") == [installation_id]


# ---------------------------------------------------------------------------------------------------
# Filters, sorting, hover, bad input


def test_month_range_and_delivery_filters(page, board, warehouse) -> None:
    open_page(page, f"{board}/xmau", "xmau-all")
    months = sorted(set(column(page, "all", "report_month")))
    assert len(months) >= 2
    page.fill('input[name="from"]', months[1])
    page.fill('input[name="to"]', months[1])
    page.select_option('select[name="delivery"]', "Self-Managed")
    page.click("#filters button[type=submit]")
    page.wait_for_selector("body[data-ready]")
    page.screenshot(path=str(ARTIFACTS / "xmau-filtered.png"), full_page=True)
    assert set(column(page, "all", "report_month")) == {months[1]}
    assert set(column(page, "all", "delivery")) == {"Self-Managed"}
    filters = parse_filters({"from": months[1], "to": months[1], "delivery": "Self-Managed"})
    count = warehouse.query("SELECT count() FROM rpt_xmau_monthly WHERE delivery = 'Self-Managed' AND "
                            "formatDateTime(month, '%Y-%m') = {m:String}", {"m": months[1]}).scalar()
    assert len(shown(page, "all")) == count == len(asked(warehouse, PAGES["xmau"].panels[2].sql, filters.params()))


def test_account_search(page, board, warehouse) -> None:
    name, account_id = warehouse.query(
        "SELECT any(account_name), dim_crm_account_id FROM mart_product_usage_paid_user_metrics_monthly "
        "WHERE account_name != '' GROUP BY dim_crm_account_id ORDER BY dim_crm_account_id LIMIT 1").rows[0]
    open_page(page, f"{board}/customer-success", "customer-success-all")
    page.fill('input[name="q"]', name.upper())  # case does not matter
    page.click("#filters button[type=submit]")
    page.wait_for_selector("body[data-ready]")
    page.screenshot(path=str(ARTIFACTS / "customer-success-search.png"), full_page=True)
    expected = warehouse.query("SELECT count() FROM mart_product_usage_paid_user_metrics_monthly "
                               "WHERE positionCaseInsensitive(account_name, {n:String}) > 0 "
                               "OR positionCaseInsensitive(hostname, {n:String}) > 0 "
                               "OR positionCaseInsensitive(dim_crm_account_id, {n:String}) > 0", {"n": name}).scalar()
    assert 0 < len(shown(page, "mart")) == expected
    assert account_id in column(page, "mart", "dim_crm_account_id")


def test_tables_sort_by_a_clicked_column(page, board) -> None:
    open_page(page, f"{board}/version-lag", "version-lag-sorted")
    values = [int(v) for v in column(page, "installations", "minors_behind")]
    header = page.locator('table[data-panel="installations"] th[data-column="minors_behind"]')
    header.click()
    assert [int(v) for v in column(page, "installations", "minors_behind")] == sorted(values)
    header.click()
    assert [int(v) for v in column(page, "installations", "minors_behind")] == sorted(values, reverse=True)
    assert header.get_attribute("aria-sort") == "descending"


def test_charts_show_values_on_hover(page, board) -> None:
    open_page(page, f"{board}/version-lag", "version-lag-hover")
    installations = column(page, "trend", "installations")
    point = page.locator('.chart[data-panel="trend"] .scatterlayer .trace').first.locator(".points path").first
    point.hover(force=True)
    page.wait_for_selector('.chart[data-panel="trend"] .hoverlayer .hovertext', timeout=10_000)
    text = page.text_content('.chart[data-panel="trend"] .hoverlayer')
    page.screenshot(path=str(ARTIFACTS / "version-lag-hover.png"))
    assert installations[0] in text


def test_a_bad_filter_is_refused_with_the_reason(page, board) -> None:
    page.goto(f"{board}/xmau?from=2026-13")
    assert "months are YYYY-MM" in page.inner_text("body")
    for query in ("from=2026-13", "delivery=Mars", "from=2026-08&to=2026-06", "type=planet&id=1"):
        path = "entity" if query.startswith("type") else "xmau"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{board}/api/{path}?{query}")
        assert refused.value.code == 400 and refused.value.read().startswith(b'{"error":')


# ---------------------------------------------------------------------------------------------------
# Pure parts


def test_filters_parse_and_reject() -> None:
    assert parse_filters({"from": "2026-06", "to": "2026-07", "delivery": "SaaS", "q": " acme "}) == Filters(
        date(2026, 6, 1), date(2026, 7, 1), "SaaS", "acme")
    assert parse_filters({}) == Filters()


def test_the_dashboard_user_comes_from_the_environment() -> None:
    settings = Settings(clickhouse_url="http://127.0.0.1:8123")
    assert warehouse_url(settings, {}) == "http://127.0.0.1:8123"
    assert warehouse_url(settings, {"DENOMAS_WAREHOUSE_USER": "board", "DENOMAS_WAREHOUSE_PASSWORD": "p@ss:w"}) == \
        "http://board:p%40ss%3Aw@127.0.0.1:8123"

