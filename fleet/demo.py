"""The main job on the embedded default: broker + collector + worker, the sample fleet over HTTP,
then what landed next to what the generator sent.

Also the building blocks the integration tests use (send pings over HTTP, count what landed).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from unittest import mock

import aiohttp

from fleet.event_metrics import (
    FleetEventMetrics,
    differing,
    only_paths,
    warehouse_active_users,
    warehouse_mart_described,
    warehouse_namespace_mart,
    warehouse_saas_xmau,
)
from fleet.pings import GeneratedPing, generate_fleet
from fleet.reference import FleetReference, fleet_reference
from fleet.seat_link import (
    generate_seat_links,
    generate_version_checks,
    seat_link_summary,
    send_seat_links,
    send_version_checks,
    version_check_summary,
)
from fleet.seat_link import landed_counts as seat_version_landed
from fleet.snowplow import SnowplowFleet, send_snowplow
from fleet.snowplow import landed_counts as snowplow_landed
from fleet.snowplow_events import generate_snowplow
from streams.agents import CONSUMED_TOPICS
from streams.checks.runner import check_and_report
from streams.collector import RunningCollector
from streams.config import Settings
from streams.kafka.admin import wait_for_zero_lag
from streams.kafka.broker import kafka_cluster
from streams.kafka.topics import ensure_topics
from streams.progress import ItemProgress, ProgressCallback
from streams.reference.kinds import KINDS as REFERENCE_KINDS
from streams.reference.load import match_rate
from streams.reference.load import publish as publish_reference
from streams.tables import format_table
from streams.warehouse import Warehouse, count_rows, open_warehouse
from streams.warehouse.reports import REPORTS, differences, wait_until_current
from streams.warehouse_service.process import WarehouseServiceProcess
from streams.warehouse_service.users import write_demo_users
from streams.worker import WorkerProcess


@dataclass
class SendReport:
    sent: int = 0
    accepted: int = 0
    rejected_by_collector: int = 0
    ping_ids: dict[str, int] = field(default_factory=dict)  # uuid|recorded_at -> id the collector answered
    failures: list[str] = field(default_factory=list)


async def send_pings(url: str, pings: Sequence[GeneratedPing], concurrency: int = 8,
                     progress: bool = True) -> SendReport:
    """POST each ping to /usage_data as an instance would (every other one gzip-encoded)."""
    report = SendReport()
    queue: asyncio.Queue[tuple[int, GeneratedPing]] = asyncio.Queue()
    for item in enumerate(pings):
        queue.put_nowait(item)
    counter = ItemProgress("sent", len(pings))

    async def post(session: aiohttp.ClientSession, index: int, ping: GeneratedPing) -> None:
        body = ping.body()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if index % 2:
            body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
        async with session.post(f"{url}/usage_data", data=body, headers=headers) as response:
            answer = await response.json(content_type=None)
            report.sent += 1
            if response.status == 200:
                report.accepted += 1
                report.ping_ids[f"{ping.uuid}|{ping.recorded_at}"] = answer["conv_index"]["usage_data_id"]
            else:
                report.rejected_by_collector += 1
                report.failures.append(f"{response.status}: {answer}")

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            index, ping = queue.get_nowait()
            await post(session, index, ping)
            if progress:
                counter.advance()

    async with aiohttp.ClientSession() as session:
        with counter if progress else contextlib.nullcontext():
            await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return report


def landed(warehouse: Warehouse) -> dict[str, int]:
    """What the warehouse holds, counted as queries see it (FINAL: exact before merges)."""
    return {
        "pings": count_rows(warehouse, "fct_ping_instance"),
        "raw_pings": count_rows(warehouse, "raw_service_ping"),
        "metric_rows": count_rows(warehouse, "fct_ping_instance_metric"),
        "error_marker_rows": int(warehouse.query(
            "SELECT count() FROM fct_ping_instance_metric FINAL WHERE error_value != 0").scalar()),
        "rejects": int(warehouse.query(
            "SELECT count() FROM raw_dead_letter FINAL WHERE source = 'service_ping'").scalar()),
        "installations": int(warehouse.query("SELECT uniqExact(installation_id) FROM dim_installation").scalar()),
    }


async def wait_until_landed(settings: Settings, bootstrap: str, timeout: float = 300,
                            topics: list[str] | None = None, progress: ProgressCallback | None = None) -> None:
    """Everything published so far has been processed: the worker's group has no lag on any of `topics`
    (unprefixed names; default: every topic the worker consumes)."""
    names = [settings.topic(t) for t in (topics or CONSUMED_TOPICS)]
    await wait_for_zero_lag(bootstrap, settings.app_id, names, timeout=timeout, progress=progress)


@dataclass
class DemoFleet:
    """Everything the sample fleet sends: pings, Seat Links, version checks and Snowplow events."""

    pings: list[GeneratedPing]
    seat_links: list
    version_checks: list
    snowplow: SnowplowFleet
    reference: FleetReference

    @classmethod
    def build(cls, instances: int, weeks: int, seed: int) -> DemoFleet:
        pings = generate_fleet(instances, weeks, seed=seed)
        return cls(pings, generate_seat_links(instances, weeks, seed, pings=pings),
                   generate_version_checks(pings, seed), generate_snowplow(instances, weeks, seed),
                   fleet_reference(instances, weeks, seed))


@dataclass
class DemoReports:
    pings: SendReport
    seat_links: object
    version_checks: object
    snowplow: object


async def feed(url: str, fleet: DemoFleet) -> DemoReports:
    """Send every source over HTTP, as the real clients do."""
    print(f"  Service Ping: {len(fleet.pings):,} pings")
    pings = await send_pings(url, fleet.pings)
    print(f"  Seat Link: {len(fleet.seat_links):,} daily reports", flush=True)
    with ItemProgress("sent", len(fleet.seat_links)) as progress:
        seat_links = await send_seat_links(url, fleet.seat_links, progress=progress)
    print(f"  Version Check: {len(fleet.version_checks):,} checks", flush=True)
    with ItemProgress("sent", len(fleet.version_checks)) as progress:
        version_checks = await send_version_checks(url, fleet.version_checks, progress=progress)
    answered = Counter(s for s in version_checks.severities if s)
    print(f"    answered as of the day each was made: {', '.join(f'{n} {s}' for s, n in sorted(answered.items()))}")
    print(f"  Snowplow: {len(fleet.snowplow.events):,} events in tracker batches", flush=True)
    with ItemProgress("sent", len(fleet.snowplow.events)) as progress:
        snowplow = await send_snowplow(url, fleet.snowplow.events, fleet.snowplow.bad_requests, progress=progress)
    return DemoReports(pings, seat_links, version_checks, snowplow)


async def _run_pipeline(settings: Settings, bootstrap: str, fleet: DemoFleet) -> DemoReports:
    await ensure_topics(bootstrap, settings)
    worker = WorkerProcess(settings, bootstrap)
    # The fleet's checks were made on their pings' days: the collector answers them as of those days.
    collector = RunningCollector(bootstrap, replace(settings, version_check_replay=True))
    worker.start()
    try:
        url = await collector.start()
        print(f"collector on {url}; worker log {worker.log_path}")
        print("  reference data: licenses, subscriptions, accounts, namespaces on the compacted usage.ref.* topics")
        for kind in fleet.reference.base_kinds():
            await publish_reference(settings, bootstrap, REFERENCE_KINDS[kind], fleet.reference.rows[kind])
        reports = await feed(url, fleet)
        print("  waiting for the agents to land everything ...", flush=True)
        with ItemProgress("records processed", 0) as progress:
            await wait_until_landed(settings, bootstrap, progress=progress)
        print("  waiting for the worker to refresh the stored reports ...", flush=True)
        await asyncio.to_thread(wait_reports_current, settings)
        if not worker.alive():
            raise RuntimeError(f"worker exited early:\n{worker.log_tail()}")
        return reports
    finally:
        await collector.stop()
        worker.stop()


def comparison(fleet: DemoFleet, reports: DemoReports, warehouse: Warehouse) -> list[tuple[str, int, int]]:
    """(what, the generator's own number, what the pipeline did or holds) for every source."""
    valid = [p for p in fleet.pings if p.valid]
    got = landed(warehouse)
    seat = seat_link_summary(fleet.seat_links)
    checks = version_check_summary(fleet.version_checks)
    sources = seat_version_landed(warehouse)
    events = snowplow_landed(warehouse)
    expected_events = fleet.snowplow.expected_counts()
    return [
        ("Service Ping: pings sent over HTTP", len(fleet.pings), reports.pings.sent),
        ("Service Ping: accepted by the collector (200)", len(fleet.pings), reports.pings.accepted),
        ("Service Ping: pings landed (fct_ping_instance)", len(valid), got["pings"]),
        ("Service Ping: raw payloads (raw_service_ping)", len(valid), got["raw_pings"]),
        ("Service Ping: metric rows (fct_ping_instance_metric)", sum(len(p.expected_metrics) for p in valid),
         got["metric_rows"]),
        ("Service Ping:   of which error markers (-1/-2/-1000)",
         sum(1 for p in valid for v in p.expected_metrics.values() if v < 0), got["error_marker_rows"]),
        ("Service Ping: rejects (usage.dlq -> raw_dead_letter)", len(fleet.pings) - len(valid), got["rejects"]),
        ("Service Ping: installations (dim_installation)", len({(p.uuid, p.hostname) for p in valid}),
         got["installations"]),
        ("Seat Link: reports accepted (200)", seat["accepted"], reports.seat_links.accepted),
        ("Seat Link: refused by the collector (4xx)", seat["refused_by_collector"], reports.seat_links.refused),
        ("Seat Link: reports landed once (fct_seat_link)", seat["landed"], sources["seat_links"]),
        ("Seat Link: rejects (raw_dead_letter)", seat["dead_letters"], sources["seat_link_rejects"]),
        ("Version Check: checks answered (200)", checks["accepted"], reports.version_checks.accepted),
        ("Version Check: checks landed (fct_version_check)", checks["landed"], sources["version_checks"]),
        ("Snowplow: events landed once (fct_behavior_structured_event)", expected_events["events"],
         events["events"]),
        ("Snowplow: bad rows (raw_snowplow_bad_row)", expected_events["bad_rows"], events["bad_rows"]),
        *event_metric_rows(FleetEventMetrics.of(fleet.snowplow), warehouse),
        *stored_report_rows(warehouse),
    ]


def wait_reports_current(settings: Settings) -> None:
    """Until the running worker's timer has refreshed every stored report (streams/warehouse/reports.py) from what
    landed."""
    warehouse = open_warehouse(settings)
    try:
        wait_until_current(warehouse)
    finally:
        warehouse.close()


def stored_report_rows(warehouse: Warehouse) -> list[tuple[str, int, int]]:
    """Each stored report (what the dashboard reads) against its view: the view's rows, the stored rows equal to
    them, then every row in one and not the other (EXCEPT ALL both ways)."""
    rows, differing_rows, empty = [], 0, 0
    for report in REPORTS:
        total, only_view, only_table = differences(warehouse, report)
        rows.append((f"Reports: {report.table} (= {report.view})", total, total - only_view))
        differing_rows += only_view + only_table
        empty += total - only_view == 0
    return rows + [("Reports: stored rows that differ from their views", 0, differing_rows),
                   ("Reports: stored reports the running system left empty", 0, empty)]


def event_metric_rows(expected: FleetEventMetrics, warehouse: Warehouse) -> list[tuple[str, int, int]]:
    """SaaS event metrics: sums over namespaces (or metrics) x month ends, then the cells that differ anywhere."""
    mart, got_mart = expected.namespace_mart(), warehouse_namespace_mart(warehouse)
    mart_rows, described = warehouse_mart_described(warehouse)
    pairs = {
        "SaaS: 7-day active users per namespace at month ends": (
            expected.active_users(7), warehouse_active_users(warehouse, expected.ends, 7)),
        "SaaS: 28-day active users per namespace at month ends": (
            expected.active_users(28), warehouse_active_users(warehouse, expected.ends, 28)),
        "SaaS: 7-day power users (AND metrics) per namespace": (
            only_paths(mart, expected.power_user_paths("7d")), only_paths(got_mart, expected.power_user_paths("7d"))),
        "SaaS: 28-day power users (AND metrics) per namespace": (
            only_paths(mart, expected.power_user_paths("28d")),
            only_paths(got_mart, expected.power_user_paths("28d"))),
        "SaaS: xMAU users (rpt_xmau_monthly, delivery SaaS)": (expected.saas_xmau(), warehouse_saas_xmau(warehouse)),
    }
    rows = [(name, sum(want.values()), sum(got.values())) for name, (want, got) in pairs.items()]
    return rows + [
        ("SaaS: metric values (mart_saas_usage_namespace_monthly rows)", len(mart), mart_rows),
        ("SaaS:   of which with time frame, value type and stage", len(mart), described),
        ("SaaS: values that differ from the generator's, all rows above", 0,
         sum(differing(want, got) for want, got in pairs.values()) + differing(mart, got_mart)),
    ]


def run_demo(settings: Settings, instances: int = 40, weeks: int = 12, seed: int = 42) -> int:
    """The README's run command. Returns 0 when what landed equals what the generator sent."""
    started = time.monotonic()
    fleet = DemoFleet.build(instances, weeks, seed)
    invalid = sum(1 for p in fleet.pings if not p.valid)
    print(f"sample fleet: {instances} instances x {weeks} weeks, seed {seed}: {len(fleet.pings):,} pings "
          f"({invalid} deliberately invalid), {len(fleet.seat_links):,} Seat Links, "
          f"{len(fleet.version_checks):,} version checks, {len(fleet.snowplow.events):,} Snowplow events")
    checks: list[str] = []
    rows = run_and_compare(settings, fleet, checks)
    ok = all(expected == actual for _, expected, actual in rows)
    print(f"\n{'all numbers agree' if ok else 'MISMATCH'} ({time.monotonic() - started:.1f} s); "
          f"warehouse data in {settings.chdb_path if not settings.clickhouse_url else settings.clickhouse_url}")
    print("\n" + "\n".join(checks))  # the run ends with the trusted-data checks (`denomas-usage check`)
    return 0 if ok else 1


@contextlib.contextmanager
def warehouse_service(settings: Settings) -> Iterator[Settings]:
    """The embedded warehouse service on settings.warehouse_port (a ClickHouse server or an already running service
    when CLICKHOUSE_URL is set); yields the settings every process of the demo uses."""
    if settings.clickhouse_url:
        yield settings
        return
    users_path, writer_password = write_demo_users(settings.data_dir)  # the worker runs as `writer` (README "Roles")
    writer = {"DENOMAS_WAREHOUSE_USER": "writer", "DENOMAS_WAREHOUSE_PASSWORD": writer_password}
    with WarehouseServiceProcess(settings, port=settings.warehouse_port, users_path=users_path) as service, \
            mock.patch.dict(os.environ, writer):  # the processes started meanwhile (and this one) connect as writer
        print(f"warehouse (ClickHouse HTTP interface) at {service.url}: analysts connect here while it runs, e.g.\n"
              f"  curl '{service.url}/?query=SELECT+count()+FROM+usage.fct_behavior_structured_event'\n"
              f"  clickhouse_connect.get_client(host='127.0.0.1', port={service.port}, database='usage')")
        yield replace(settings, clickhouse_url=service.url)


def run_and_compare(settings: Settings, fleet: DemoFleet,
                    checks: list[str] | None = None) -> list[tuple[str, int, int]]:
    """Send `fleet` through the running system, print the agreement table and the marts; return the table's rows.
    The trusted-data check table goes into `checks` when given (the demo prints it last), else it is printed."""
    with warehouse_service(settings) as settings, dashboard_process(settings), kafka_cluster(settings) as bootstrap:
        print(f"kafka at {bootstrap}")
        return _compare(settings, fleet, bootstrap, checks)


@contextlib.contextmanager
def dashboard_process(settings: Settings) -> Iterator[None]:
    """The dashboard while the demo runs (numbers appear as they land); DENOMAS_DASHBOARD_PORT, else 8050 when free."""
    from streams.dashboard import DashboardProcess, dashboard_port, port_if_free

    with DashboardProcess(settings, port_if_free(dashboard_port())) as board:
        print(f"dashboard at {board.url}/ (while the demo runs; afterwards: `denomas-usage warehouse` and "
              f"`denomas-usage dashboard` with DENOMAS_DATA_DIR={settings.data_dir})")
        yield


def _compare(settings: Settings, fleet: DemoFleet, bootstrap: str,
             checks: list[str] | None = None) -> list[tuple[str, int, int]]:
    reports = asyncio.run(_run_pipeline(settings, bootstrap, fleet))
    checks_table, checks_failed = check_and_report(settings, bootstrap)  # completeness reads the broker
    warehouse = open_warehouse(settings)  # the live warehouse, through the service
    try:
        rows = comparison(fleet, reports, warehouse)
        table = [(name, expected, actual, "yes" if expected == actual else "NO") for name, expected, actual in rows]
        print()
        print(format_table(["", "generator", "pipeline", "agree"], table, title="Every source, end to end"))
        for section in demo_sections(warehouse):
            print()
            print(section)
    finally:
        warehouse.close()
    if checks is None:
        print(f"\n{checks_table}")
    else:
        checks.append(checks_table)
    return rows + [("Trusted-data checks failing at error level (denomas-usage check)", 0, int(checks_failed))]


# Every mart or report the demo prints (tests/pipeline/test_demo.py checks that none is empty after a run).
PRINTED_MARTS = ("rpt_xmau_monthly", "rpt_version_lag_monthly", "rpt_license_match_rate",
                 "mart_product_usage_paid_user_metrics_monthly", "mart_saas_usage_namespace_monthly")


def demo_sections(warehouse: Warehouse) -> list[str]:
    """The reports a person wants to see after the run."""
    from streams.marts import demo_tables

    rate = match_rate(warehouse)
    mart = warehouse.query(
        "SELECT snapshot_month, dim_subscription_id, dim_crm_account_id, hostname, cleaned_version, "
        "license_user_count, billable_user_count, active_user_count, max_historical_user_count, "
        "round(license_utilization, 2) AS utilization FROM mart_product_usage_paid_user_metrics_monthly "
        "ORDER BY snapshot_month DESC, dim_subscription_id LIMIT 12")
    saas = warehouse.query(
        "SELECT formatDateTime(month, '%Y-%m') AS report_month, namespace_id, metrics_path, time_frame, value_type, "
        "product_stage, metric_value FROM mart_saas_usage_namespace_monthly "
        "WHERE month = (SELECT max(month) FROM mart_saas_usage_namespace_monthly) AND value_type = 'user' "
        "ORDER BY namespace_id, metrics_path LIMIT 12")
    return [
        demo_tables(warehouse),
        format_table(rate.columns, rate.rows, title="License -> subscription -> account match rate"),
        format_table(mart.columns, mart.rows,
                     title="Customer-success mart (mart_product_usage_paid_user_metrics_monthly), newest 12 rows"),
        format_table(saas.columns, saas.rows,
                     title="SaaS usage per namespace (mart_saas_usage_namespace_monthly), user metrics of the "
                           "newest month, first 12 rows"),
    ]
