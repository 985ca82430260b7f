"""The stored reports (streams/warehouse/reports.py, clickhouse/150): the running worker fills them, and they hold
exactly the rows of their views (EXCEPT ALL both ways, duplicates counted) after a pipeline run, after every ping is
delivered again, after late reference data and new pings of an old month, and after a refresh killed midway.

A small demo fleet goes through the demo's pipeline (collector, broker, worker): the demo waits until the worker's
timer has refreshed every stored report, so what is compared here is what the running system wrote.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime

import pytest
from aiokafka import AIOKafkaProducer

from fleet.demo import DemoFleet, wait_until_landed
from fleet.demo import _run_pipeline as run_pipeline
from streams.agents.reports import pause_after
from streams.config import TOPIC_RAW_SERVICE_PING, Settings
from streams.warehouse import ServerWarehouse, open_warehouse
from streams.warehouse.reports import (
    REPORTS,
    Inputs,
    Report,
    differences,
    drop_stale_staging,
    months_to_refresh,
    refresh_report,
    refresh_reports,
    stale_reports,
    wait_until_current,
)
from streams.worker import WorkerProcess

pytestmark = pytest.mark.integration

INSTANCES, WEEKS, SEED = 5, 9, 42  # two months or more


@pytest.fixture(scope="module")
def pipeline(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, DemoFleet]:
    name = datetime.now(UTC).strftime("%H%M%S%f")
    settings = Settings.from_env(data_dir=tmp_path_factory.mktemp("reports"), kafka_bootstrap_servers=kafka_bootstrap,
                                 topic_prefix=f"rep-{name}.", app_id=f"rep-{name}", topic_partitions=2)
    fleet = DemoFleet.build(INSTANCES, WEEKS, SEED)
    asyncio.run(run_pipeline(settings, kafka_bootstrap, fleet))  # returns once the worker refreshed the reports
    return settings, fleet


@pytest.fixture(scope="module")
def warehouse(pipeline):
    opened = open_warehouse(pipeline[0])
    yield opened
    opened.close()


def assert_equal_to_views(warehouse: ServerWarehouse) -> dict[str, int]:
    """Every stored report equals its view; returns the rows of each."""
    counts = {}
    for report in REPORTS:
        total, only_view, only_table = differences(warehouse, report)
        assert (only_view, only_table) == (0, 0), (report.table, total, only_view, only_table)
        counts[report.table] = total
    return counts


def contents(warehouse: ServerWarehouse) -> dict[str, list]:
    return {r.table: warehouse.query(f"SELECT * FROM {r.table} ORDER BY ALL").rows for r in REPORTS}


def test_the_running_worker_fills_every_stored_report_with_its_views_rows(pipeline, warehouse) -> None:
    counts = assert_equal_to_views(warehouse)
    assert all(counts.values()), counts  # a table the running system leaves empty is a defect
    assert stale_reports(warehouse) == []
    months = warehouse.query("SELECT uniqExact(month) FROM rpt_xmau_monthly_stored").scalar()
    deliveries = {d for (d,) in warehouse.query("SELECT DISTINCT delivery FROM rpt_xmau_monthly_stored").rows}
    assert months >= 2 and deliveries == {"Self-Managed", "SaaS"}
    refreshed = {r for (r,) in warehouse.query("SELECT DISTINCT report FROM rpt_refresh_state").rows}
    assert refreshed == {r.table for r in REPORTS}


def test_redelivered_pings_change_no_stored_row(pipeline, warehouse, kafka_bootstrap) -> None:
    settings, fleet = pipeline
    before = contents(warehouse)

    async def redeliver() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, max_request_size=10 * 2**20)
        worker = WorkerProcess(settings, kafka_bootstrap, loglevel="INFO")  # its rebalances, if it stalls
        worker.start()
        await producer.start()
        try:
            for ping in fleet.pings:  # every ping again, straight onto the raw topic (a replay, a retrying producer)
                await producer.send_and_wait(settings.topic(TOPIC_RAW_SERVICE_PING), ping.body(),
                                             key=ping.uuid.encode() if ping.uuid else None)
            try:
                await wait_until_landed(settings, kafka_bootstrap, timeout=240)
            except TimeoutError as exc:
                raise AssertionError(f"{exc}\nworker log: {worker.log_path}\n{worker.log_tail(60)}") from exc
            await asyncio.to_thread(wait_until_current, warehouse)
            assert worker.alive(), worker.log_tail()
        finally:
            await producer.stop()
            worker.stop()

    asyncio.run(redeliver())
    assert contents(warehouse) == before
    assert_equal_to_views(warehouse)


def test_late_reference_data_and_new_pings_of_an_old_month_are_taken(pipeline, warehouse) -> None:
    first = warehouse.query("SELECT min(month) FROM rpt_xmau_monthly_stored").scalar()
    # A renamed account (late reference data: every month of every report naming it) ...
    account = warehouse.query("SELECT dim_crm_account_id FROM rpt_version_lag_account_monthly_stored "
                              "ORDER BY ping_created_date_month LIMIT 1").scalar()
    warehouse.execute("INSERT INTO dim_crm_account SELECT * REPLACE (concat(account_name, ' (renamed)') AS "
                      "account_name, now64(3, 'UTC') AS updated_at) FROM dim_crm_account FINAL "
                      "WHERE dim_crm_account_id = {a:String}", {"a": account})
    # ... and copies of the first month's pings under new ids (as if another fleet reported late).
    for table, replaced in (("fct_ping_instance_metric", "cityHash64(ping_id, 1) AS ping_id, "
                                                         "concat(installation_id, '-late') AS installation_id"),
                            ("fct_ping_instance", "cityHash64(ping_id, 1) AS ping_id, concat(installation_id, "
                                                  "'-late') AS installation_id, concat(instance_uuid, '-late') AS "
                                                  "instance_uuid")):
        warehouse.execute(f"INSERT INTO {table} SELECT * REPLACE ({replaced}) FROM {table} FINAL "
                          "WHERE toStartOfMonth(recorded_at) = {m:Date}", {"m": first})
    assert set(stale_reports(warehouse)) == {r.table for r in REPORTS}
    refresh_reports(warehouse)
    assert_equal_to_views(warehouse)
    assert warehouse.query("SELECT count() FROM rpt_version_lag_account_monthly_stored "
                           "WHERE endsWith(account_name, ' (renamed)')").scalar() > 0
    assert warehouse.query("SELECT count() FROM rpt_installation_types_monthly_stored").scalar() > 0
    assert not any(r.months for r in refresh_reports(warehouse))  # nothing changed since: nothing to do


def test_a_refresh_killed_midway_is_repaired_by_the_next_run(pipeline, warehouse) -> None:
    settings, _ = pipeline
    warehouse.execute("TRUNCATE TABLE rpt_refresh_state")  # every month of every report has to be recomputed
    env = os.environ | {"CLICKHOUSE_URL": settings.warehouse_url,
                        "DENOMAS_WAREHOUSE_DATABASE": settings.warehouse_database}
    child = subprocess.Popen([sys.executable, "-c", "from streams.config import Settings; "
                              "from streams.warehouse import open_warehouse; from streams.warehouse.reports import "
                              "refresh_reports; refresh_reports(open_warehouse(Settings.from_env()))"], env=env)
    staging = "SELECT count() FROM system.tables WHERE database = currentDatabase() " \
              "AND startsWith(name, 'rpt_refresh_staging_')"
    deadline = time.monotonic() + 120
    while not warehouse.query(staging).scalar() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert child.poll() is None, "the refresh ended before it could be killed midway"
    os.kill(child.pid, signal.SIGKILL)  # mid-refresh: a staging table exists, months are being swapped
    child.wait()
    assert stale_reports(warehouse)  # what it did not finish is still to do
    assert drop_stale_staging(warehouse, older_than=0) >= 1
    refresh_reports(warehouse)
    assert_equal_to_views(warehouse)
    assert stale_reports(warehouse) == []
    assert warehouse.query(staging).scalar() == 0


class ChangeAfterViewRead:
    """The real warehouse, on which `change` happens as soon as a refresh has read the view into its staging table,
    before it swaps the months in."""

    def __init__(self, warehouse: ServerWarehouse, change) -> None:
        self.warehouse, self.change, self.changed = warehouse, change, False

    def execute(self, sql: str, params: dict | None = None):
        result = self.warehouse.execute(sql, params)
        if sql.startswith("INSERT INTO rpt_refresh_staging_") and not self.changed:
            self.changed = True
            self.change()
        return result

    def __getattr__(self, name: str):
        return getattr(self.warehouse, name)


def test_rows_read_before_an_erasure_are_not_swapped_in_after_it(pipeline, warehouse) -> None:
    report = next(r for r in REPORTS if r.table == "rpt_installation_types_monthly_stored")
    month, installation = warehouse.query(
        "SELECT toStartOfMonth(recorded_at) AS m, installation_id FROM fct_ping_instance FINAL "
        "ORDER BY m DESC, installation_id LIMIT 1").rows[0]
    warehouse.execute("TRUNCATE TABLE rpt_refresh_state")  # every month is recomputed: the slow refresh reads it

    def erase_then_refresh() -> None:  # an erasure, and its own refresh, while the slow refresh is midway
        warehouse.execute("ALTER TABLE fct_ping_instance DELETE WHERE installation_id = {i:String} "
                          "AND toStartOfMonth(recorded_at) = {m:Date} SETTINGS mutations_sync = 2",
                          {"i": installation, "m": month})
        refresh_reports(warehouse)

    slow = ChangeAfterViewRead(warehouse, erase_then_refresh)
    refresh_report(slow, report, Inputs.read(warehouse, [report]))
    assert slow.changed
    assert stale_reports(warehouse, [report]) == []  # what the slow refresh read before the erasure stayed out
    assert differences(warehouse, report)[1:] == (0, 0)
    refresh_reports(warehouse)
    assert_equal_to_views(warehouse)


# ---------------------------------------------------------------------------------------------------
# Which months a change reaches (pure logic)


JUNE, JULY, AUGUST = date(2026, 6, 1), date(2026, 7, 1), date(2026, 8, 1)


@pytest.mark.parametrize("spread, expected", [("month", {JULY}), ("later", {JULY, AUGUST}),
                                              ("all", {JUNE, JULY, AUGUST})])
def test_a_changed_month_reaches_the_months_its_report_reads_it_for(spread, expected) -> None:
    report = Report("v", "month", spread)
    stored = {JUNE: 1, JULY: 2, AUGUST: 3}
    assert months_to_refresh(report, {JUNE: 1, JULY: 20, AUGUST: 3}, stored, set(stored)) == expected
    assert months_to_refresh(report, stored, stored, set(stored)) == set()


def test_a_month_without_inputs_any_more_is_recomputed_once() -> None:
    report = Report("v", "month", "month")
    # The month's facts were erased: recomputed (its partition dropped), then recorded with fingerprint 0.
    assert months_to_refresh(report, {JUNE: 1}, {JUNE: 1, JULY: 2}, {JUNE, JULY}) == {JULY}
    assert months_to_refresh(report, {JUNE: 1}, {JUNE: 1, JULY: 0}, {JUNE}) == set()
    # Rows stored for a month never recorded (a refresh killed before it recorded) are recomputed.
    assert months_to_refresh(report, {JUNE: 1}, {JUNE: 1}, {JUNE, JULY}) == {JULY}


def test_the_refresh_waits_ten_times_its_cost_between_runs_from_10_to_60_seconds() -> None:
    assert [pause_after(s) for s in (0.27, 3.0, 5.4, 20.0)] == [10.0, 30.0, 54.0, 60.0]
