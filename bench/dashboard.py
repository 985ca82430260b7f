"""Dashboard page answer times at 100x the sample's raw volume (issue 14's target: under 300 ms).

The sample fleet (`make run`'s 40 instances x 12 weeks) goes through the real pipeline once; its facts are then
copied inside the engine into 99 more fleets of other installations, instances, namespaces and users (INSERT ...
SELECT with new ids: 100x the pings, metric rows, Seat Links, dead letters and Snowplow events), the event
aggregates are recomputed from the facts as the sink does, and the stored reports from their views as the worker's
timer does (streams/warehouse/reports.py; its time is reported). Then the dashboard runs as its own process and
each page is asked over HTTP:
- first answer: a question not asked before (its own month range, so no cached answer can serve it): the target,
  under 300 ms;
- cached answer: the same question again while the data is unchanged (best of 5): what a person reloading or
  sharing a link gets, and every page's unfiltered view, which the dashboard keeps warm in the background.
The baseline of a first answer is the page's raw queries: its panels asked of the views (the reports computed from
the facts, as the dashboard read them before the stored reports) straight through clickhouse-connect one after the
other, with the same filter; the ratio shows what reading the stored rows saves.
"""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from bench.common import Result
from fleet.demo import DemoFleet, run_and_compare
from streams.config import Settings
from streams.dashboard import DashboardProcess
from streams.dashboard.entity_pages import entity_page
from streams.dashboard.page_model import Page, parse_filters
from streams.dashboard.pages import PAGES, over_views
from streams.event_metrics.refresh import mark_all_touched, refresh_pending
from streams.warehouse import ServerWarehouse, open_warehouse
from streams.warehouse.reports import refresh_reports
from streams.warehouse_service.process import free_port

# How each fact table is copied into another fleet (copy number c): new ids, hostnames, users; same licenses, so
# the copies belong to the sample's subscriptions and accounts.
_COPIES = {
    "fct_ping_instance": "cityHash64(ping_id, c) AS ping_id, concat(installation_id, '-', toString(c)) AS "
                         "installation_id, concat(instance_uuid, '-', toString(c)) AS instance_uuid, "
                         "concat(toString(c), '.', hostname) AS hostname",
    "fct_ping_instance_metric": "cityHash64(ping_id, c) AS ping_id, "
                                "concat(installation_id, '-', toString(c)) AS installation_id",
    "raw_service_ping": "cityHash64(ping_id, c) AS ping_id, concat(instance_uuid, '-', toString(c)) AS instance_uuid",
    "fct_seat_link": "cityHash64(seat_link_id, c) AS seat_link_id, concat(instance_uuid, '-', toString(c)) AS "
                     "instance_uuid, concat(unique_instance_id, '-', toString(c)) AS unique_instance_id, "
                     "concat(toString(c), '.', hostname) AS hostname, "
                     "concat(installation_id, '-', toString(c)) AS installation_id",
    "raw_dead_letter": "cityHash64(dead_letter_id, c) AS dead_letter_id",
    "fct_behavior_structured_event": (
        "concat(event_id, '-', toString(c)) AS event_id, if(user_hash = 0, 0, cityHash64(user_hash, c)) AS user_hash, "
        "if(namespace_id = 0, 0, namespace_id + c * 1000000) AS namespace_id, "
        "if(ultimate_parent_namespace_id = 0, 0, ultimate_parent_namespace_id + c * 1000000) "
        "AS ultimate_parent_namespace_id, "
        "if(instance_id = '', '', concat(instance_id, '-', toString(c))) AS instance_id"),
}


def multiply(warehouse: ServerWarehouse, scale: int, progress) -> dict[str, int]:
    """Copy the sample's facts into scale - 1 more fleets (one streaming INSERT ... SELECT per table); the event
    aggregates are then recomputed from the facts."""
    for table, replaced in _COPIES.items():
        warehouse.execute(f"INSERT INTO {table} SELECT * REPLACE ({replaced}) FROM {table} FINAL "
                          "ARRAY JOIN range(1, {scale:UInt32}) AS c", {"scale": scale})
        progress(f"    {table}: copied to {scale}x")
    mark_all_touched(warehouse)
    refresh_pending(warehouse, today=datetime.now(UTC).date())
    return {table: int(warehouse.query(f"SELECT count() FROM {table} FINAL").scalar()) for table in _COPIES}


def stored_reports(warehouse: ServerWarehouse, progress) -> list[Result]:
    """Every stored report recomputed from its view at this volume (the worker's timer does the same after a change),
    then a run that finds nothing changed (what the timer costs while nothing lands)."""
    started = time.perf_counter()
    done = refresh_reports(warehouse)
    full = time.perf_counter() - started
    for item in done:
        progress(f"    {item.report}: {item.months} months, {item.rows:,} rows, {item.seconds:.1f} s")
    started = time.perf_counter()
    idle = refresh_reports(warehouse)
    assert not any(item.months for item in idle), idle
    return [Result("stored reports: recomputed from their views (every month)", full, "s", None, "",
                   ", ".join(f"{i.report} {i.seconds:.1f} s" for i in done)),
            Result("stored reports: a refresh run with nothing changed", time.perf_counter() - started, "s", None,
                   "", "fingerprints of the inputs only")]


def _get(url: str) -> tuple[float, dict]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as response:
        answer = json.loads(response.read())
    return time.perf_counter() - started, answer


def _direct(warehouse: ServerWarehouse, page: Page, params: dict) -> float:
    """The page's raw queries (over the views, not their stored rows) straight through clickhouse-connect, one after
    the other."""
    started = time.perf_counter()
    for panel in page.panels:
        warehouse.query(over_views(panel.sql), params)
    return time.perf_counter() - started


def _pages(warehouse: ServerWarehouse) -> list[tuple[str, Page, str, dict]]:
    """(name, page, query string, extra params) of every page, the entity pages for the busiest scopes."""
    instance = warehouse.query("SELECT installation_id FROM fct_ping_instance FINAL GROUP BY installation_id "
                               "ORDER BY count() DESC, installation_id LIMIT 1").scalar()
    namespace = warehouse.query("SELECT scope_id FROM agg_behavior_active_daily WHERE scope = 'namespace' "
                                "GROUP BY scope_id ORDER BY count() DESC, scope_id LIMIT 1").scalar()
    found = [(key, page, "", {}) for key, page in PAGES.items()]
    return found + [("entity: instance", entity_page("instance"), f"type=instance&id={instance}", {"id": instance}),
                    ("entity: namespace", entity_page("namespace"), f"type=namespace&id={namespace}",
                     {"id": namespace})]


def wait_warm(url: str, progress, timeout: float = 3600) -> float:
    """Until the dashboard's background warm-up has every unfiltered page ready (so first answers below are not
    measured while it still asks): returns how long that took."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if all(_get(f"{url}/api/{key}")[1].get("cached") for key in PAGES):
            return time.perf_counter() - started
        time.sleep(2)
    progress("    warm-up did not finish in time; first answers share the engine with it")
    return time.perf_counter() - started


def measure(url: str, warehouse: ServerWarehouse, progress) -> list[Result]:
    warm = wait_warm(url, progress)
    results = [Result("dashboard: every unfiltered page warm after start", warm, "s", None, "",
                      "the background warm-up (asked once per data change)")]
    for round_, (name, page, query, extra) in enumerate(_pages(warehouse)):
        api = f"{url}/api/{'entity' if page.requires else page.key}?{query}"
        to = f"2148-{1 + round_ % 12:02d}"  # a month range not asked before: no cached answer
        fresh = f"{api}&to={to}"
        cold, answer = _get(fresh)
        cached = min(_get(fresh)[0] for _ in range(5))
        direct = _direct(warehouse, page, parse_filters({"to": to}).params() | extra)
        rows = sum(len(p["rows"]) for p in answer["panels"])
        results.append(Result(f"dashboard {name}: first answer", cold * 1000, "ms", direct * 1000, "< 300 ms",
                              f"{rows:,} rows shown; baseline: its raw queries (the views) asked directly"))
        results.append(Result(f"dashboard {name}: cached answer", cached * 1000, "ms", None, "< 300 ms",
                              "same question, data unchanged (best of 5)"))
        progress(f"    {name}: first {cold * 1000:,.0f} ms (direct {direct * 1000:,.0f} ms), cached "
                 f"{cached * 1000:,.0f} ms")
    return results


def run(bootstrap: str, workdir: Path, quick: bool, progress) -> list[Result]:
    instances, weeks, scale = (12, 10, 10) if quick else (40, 12, 100)
    settings = Settings.from_env(data_dir=workdir / "dashboard", kafka_bootstrap_servers=bootstrap,
                                 topic_prefix="bench-dashboard.", app_id="bench-dashboard", topic_partitions=2,
                                 warehouse_database="bench_dashboard")
    progress(f"  the sample fleet ({instances} x {weeks} weeks) through the pipeline")
    run_and_compare(settings, DemoFleet.build(instances, weeks, seed=42))
    warehouse = open_warehouse(settings)
    try:
        progress(f"  copying its facts to {scale}x in the engine")
        started = time.perf_counter()
        counts = multiply(warehouse, scale, progress)
        results = [Result(f"dashboard data at {scale}x the sample's raw volume", time.perf_counter() - started, "s",
                          None, "", ", ".join(f"{t} {n:,}" for t, n in counts.items()))]
        results += stored_reports(warehouse, progress)
        with DashboardProcess(settings, free_port(), log_path=workdir / "dashboard.log") as board:
            results += measure(board.url, warehouse, progress)
    finally:
        warehouse.close()
    return results
