"""The heavy reports as tables: each `<view>_stored` (clickhouse/150) holds exactly the rows of its view, recomputed
from the view for the months whose inputs changed, so a dashboard page reads a small table instead of the facts.

The view stays the one definition; a refresh is a pure function of what is stored, never added to, so a crash or a
redelivered batch cannot count anything twice:

- fingerprints: for every month, a hash of its inputs as they are now: the month's pings (fct_ping_instance, whose
  row is written after its metric rows and payload), its Seat Links, its SaaS month-end event metrics, whether the
  month is complete (today), and every other table the view reads (reference data, dictionary, releases), found by
  following the views' definitions in system.tables;
- a month whose fingerprint differs from the one stored in rpt_refresh_state is recomputed, with the months the
  report reaches from it (`spread`): `month` only it; `later` it and every later month (a previous month's value,
  versions seen by then); `all` every month (estimates use first and last versions over the whole history);
- recompute: INSERT INTO a staging copy SELECT * FROM the view WHERE month IN (...), then each month's partition is
  swapped in (REPLACE PARTITION, atomic: a reader sees the old month or the new one, never half or twice) or
  dropped when the view has no rows for it, unless its inputs changed while the view was read (fingerprints read
  again just before the swaps: rows read before an erasure never come back); then the fingerprints taken before the
  recompute are stored. A refresh killed anywhere leaves the previous rows and the old fingerprints: the next run
  recomputes the same months.

The worker group's leader runs `refresh_reports` in a loop paced by its cost (streams/agents/reports.py); tests and
benchmarks run it directly. Refreshes may overlap (a leader change): each month is swapped in whole, and the
fingerprint kept for a month is the one of the refresh that swapped it in last (rpt_refresh_state is versioned by
the swap time), so when an older read was swapped in after a newer one, its older fingerprint makes the next run
recompute the month.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from streams.warehouse import Warehouse


@dataclass(frozen=True)
class Report:
    view: str  # the one definition
    month: str  # its month column (the stored table is partitioned by it)
    spread: str  # month | later | all: which months a changed month reaches

    @property
    def table(self) -> str:
        return f"{self.view}_stored"


REPORTS: tuple[Report, ...] = (
    Report("rpt_xmau_monthly", "month", "all"),
    Report("rpt_version_lag_monthly", "ping_created_date_month", "later"),
    Report("rpt_version_lag_account_monthly", "ping_created_date_month", "later"),
    Report("rpt_installation_types_monthly", "ping_created_date_month", "month"),
    Report("rpt_topology_monthly", "ping_created_date_month", "later"),
    Report("rpt_stage_adoption_monthly", "ping_created_date_month", "month"),
    Report("rpt_stage_adoption_account_monthly", "ping_created_date_month", "month"),
    Report("mart_product_usage_paid_user_metrics_monthly", "snapshot_month", "month"),
)
STORED = {report.table: report for report in REPORTS}

# Facts fingerprinted per month: table -> (month expression, what identifies a row's content, filter). A ping or
# Seat Link is written once under its id and never changed (the sinks skip stored ids; erasure deletes rows), so its
# id stands for its content; fct_ping_instance also stands for the ping's metric rows and payload: they are written
# before the ping row, never after.
MONTHLY_FACTS: dict[str, tuple[str, str, str]] = {
    "fct_ping_instance": ("toStartOfMonth(recorded_at)", "cityHash64(ping_id)", "1"),
    "fct_seat_link": ("toStartOfMonth(report_date)", "cityHash64(seat_link_id)", "1"),
    "agg_event_metric_daily": ("toStartOfMonth(metric_date)", "cityHash64(key_path, scope_id, metric_date, value)",
                               "scope = 'saas' AND metric_date = toLastDayOfMonth(metric_date)"),
}
COVERED = frozenset({"fct_ping_instance_metric", "raw_service_ping", "raw_service_ping_part"})
STAGING_PREFIX = "rpt_refresh_staging_"
STALE_STAGING_SECONDS = 3600  # a staging table this old belongs to a killed refresh


def _check_identifier(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"not an identifier: {name!r}")
    return name


def _yyyymm(month: date) -> int:
    return month.year * 100 + month.month


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


# ---------------------------------------------------------------------------------------------------
# Inputs and their fingerprints


def base_tables(warehouse: Warehouse, views: Iterable[str]) -> dict[str, set[str]]:
    """view -> every table (not view) it reads, following views through their definitions in system.tables."""
    rows = warehouse.query("SELECT name, engine, create_table_query, currentDatabase() FROM system.tables "
                           "WHERE database = currentDatabase()").rows
    objects = {name: (engine, query) for name, engine, query, _ in rows}
    database = str(rows[0][3]) if rows else ""
    return {view: _reads(objects, database, view) for view in views}


def _reads(objects: dict[str, tuple[str, str]], database: str, view: str) -> set[str]:
    found, seen, todo = set(), set(), [view]
    while todo:
        name = todo.pop()
        if name in seen or name not in objects:
            continue
        seen.add(name)
        engine, query = objects[name]
        if engine != "View":
            found.add(name)
            continue
        todo += re.findall(rf"\b{re.escape(database)}\.`?(\w+)`?", query)
    return found


def _content_hashes(warehouse: Warehouse, tables: Iterable[str]) -> dict[str, int]:
    """table -> a hash of its whole content, for the small inputs (reference data, dictionary, releases): FINAL, so a
    merge or a redelivered duplicate changes nothing."""
    parts = [f"SELECT '{_check_identifier(t)}' AS t, count() AS n, sum(cityHash64(tuple(*))) AS h FROM {t} FINAL"
             for t in sorted(tables)]
    if not parts:
        return {}
    return {t: hash_pair(int(n), int(h)) for t, n, h in warehouse.query(" UNION ALL ".join(parts)).rows}


def _monthly_hashes(warehouse: Warehouse, tables: Iterable[str]) -> dict[str, dict[date, int]]:
    """table -> month -> a hash of the month's facts (FINAL: duplicates and merges change nothing)."""
    parts = []
    for table in sorted(tables):
        month, content, where = MONTHLY_FACTS[table]
        parts.append(f"SELECT '{table}' AS t, {month} AS m, count() AS n, sum({content}) AS h "
                     f"FROM {table} FINAL WHERE {where} GROUP BY m")
    found: dict[str, dict[date, int]] = {t: {} for t in tables}
    if parts:
        for t, m, n, h in warehouse.query(" UNION ALL ".join(parts)).rows:
            found[t][_as_date(m)] = hash_pair(int(n), int(h))
    return found


@dataclass
class Inputs:
    """What the reports read, hashed as it is now: per month for the facts, whole for the rest."""

    tables: dict[str, set[str]]  # report view -> the tables it reads (but those COVERED)
    monthly: dict[str, dict[date, int]]
    whole: dict[str, int]
    current_month: date

    @classmethod
    def read(cls, warehouse: Warehouse, reports: Sequence[Report]) -> Inputs:
        tables = {view: found - COVERED for view, found in base_tables(warehouse, [r.view for r in reports]).items()}
        every = set().union(*tables.values())
        current = _as_date(warehouse.query("SELECT toStartOfMonth(today())").scalar())
        return cls(tables, _monthly_hashes(warehouse, every & set(MONTHLY_FACTS)),
                   _content_hashes(warehouse, every - set(MONTHLY_FACTS)), current)

    def fingerprints(self, report: Report) -> dict[date, int]:
        """month -> the fingerprint of the month's inputs for `report` (a month becoming complete changes it)."""
        tables = sorted(self.tables[report.view])
        whole = 0
        for table in tables:
            if table not in MONTHLY_FACTS:
                whole = hash_pair(whole, self.whole[table])
        found = {}
        for month in {m for t in tables if t in MONTHLY_FACTS for m in self.monthly[t]}:
            fp = hash_pair(whole, int(month < self.current_month))
            for table in tables:
                if table in MONTHLY_FACTS:
                    fp = hash_pair(fp, self.monthly[table].get(month, 0))
            found[month] = fp
        return found


def hash_pair(a: int, b: int) -> int:
    """Two 64-bit numbers into one (order matters), in Python: the same on every run and process."""
    return (a * 0x9E3779B97F4A7C15 + b) % (1 << 64)


def stored_fingerprints(warehouse: Warehouse, report: Report) -> dict[date, int]:
    rows = warehouse.query("SELECT month, argMax(fingerprint, refreshed_at) FROM rpt_refresh_state "
                           "WHERE report = {report:String} GROUP BY month", {"report": report.table}).rows
    return {_as_date(m): int(fp) for m, fp in rows}


def _stored_months(warehouse: Warehouse, report: Report) -> set[date]:
    rows = warehouse.query("SELECT DISTINCT partition FROM system.parts WHERE database = currentDatabase() "
                           "AND table = {table:String} AND active", {"table": report.table}).rows
    return {date(int(p) // 100, int(p) % 100, 1) for (p,) in rows}


def months_to_refresh(report: Report, now: dict[date, int], stored: dict[date, int],
                      present: set[date]) -> set[date]:
    """The months to recompute: those whose fingerprint changed (or that are stored but have no inputs any more),
    and the months the report reaches from them."""
    known = set(now) | set(stored) | present
    changed = {m for m in known if now.get(m, 0) != stored.get(m) or (m in present and m not in stored)}
    if not changed:
        return set()
    if report.spread == "all":
        return known
    if report.spread == "later":
        return {m for m in known if m >= min(changed)}
    return changed


# ---------------------------------------------------------------------------------------------------
# Recompute


def drop_stale_staging(warehouse: Warehouse, older_than: int = STALE_STAGING_SECONDS) -> int:
    """Drop the staging tables of refreshes killed midway (older than `older_than` seconds); return how many."""
    rows = warehouse.query("SELECT name FROM system.tables WHERE database = currentDatabase() "
                           "AND startsWith(name, {prefix:String}) "
                           "AND metadata_modification_time <= now() - {age:UInt32}",
                           {"prefix": STAGING_PREFIX, "age": older_than}).rows
    for (name,) in rows:
        warehouse.execute(f"DROP TABLE IF EXISTS {_check_identifier(name)}")
    return len(rows)


def recompute(warehouse: Warehouse, report: Report, months: Sequence[date],
              expected: dict[date, int]) -> tuple[int, dict[date, datetime]]:
    """Recompute `months` of the report from its view and swap in those whose inputs still have the `expected`
    fingerprints; return the rows written and when each month was swapped in.

    A month whose inputs changed while the view was read (an erasure, a late ping) keeps its rows and fingerprint
    and is taken by the next run: swapping in rows read before an erasure would show the erased subject again."""
    swapped: dict[date, datetime] = {}
    if not months:
        return 0, swapped
    staging = f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
    table, view, column = report.table, report.view, report.month
    warehouse.execute(f"CREATE TABLE {staging} AS {table}")
    try:
        params = {"months": sorted(months)}
        warehouse.execute(f"INSERT INTO {staging} SELECT * FROM {view} WHERE has({{months:Array(Date)}}, {column})",
                          params)
        filled = {date(int(p) // 100, int(p) % 100, 1) for (p,) in warehouse.query(
            "SELECT DISTINCT partition FROM system.parts WHERE database = currentDatabase() AND table = {t:String} "
            "AND active", {"t": staging}).rows}
        current = Inputs.read(warehouse, [report]).fingerprints(report)
        for month in sorted(months):  # partition ids are yyyymm integers computed here, never user input
            if current.get(month, 0) != expected.get(month, 0):
                continue
            if month in filled:
                warehouse.execute(f"ALTER TABLE {table} REPLACE PARTITION {_yyyymm(month)} FROM {staging}")
            else:
                warehouse.execute(f"ALTER TABLE {table} DROP PARTITION {_yyyymm(month)}")
            swapped[month] = datetime.now(UTC)
        return int(warehouse.query(f"SELECT count() FROM {staging}").scalar()), swapped
    finally:
        warehouse.execute(f"DROP TABLE IF EXISTS {staging}")


def _record(warehouse: Warehouse, report: Report, swapped: dict[date, datetime], now: dict[date, int]) -> None:
    """Each month's fingerprint, versioned by when its rows were swapped in: of two refreshes of a month, the
    fingerprint kept is that of the rows the table holds (the later swap), whichever records first."""
    warehouse.insert("rpt_refresh_state", [{"report": report.table, "month": m, "fingerprint": now.get(m, 0),
                                            "refreshed_at": at} for m, at in sorted(swapped.items())])


@dataclass
class Refreshed:
    report: str
    months: int
    rows: int
    seconds: float


def refresh_report(warehouse: Warehouse, report: Report, inputs: Inputs) -> Refreshed:
    """Bring one stored report up to date with its view; months whose inputs did not change are left alone.
    `inputs` are read before the recompute reads: a change meanwhile is taken by the next run."""
    started = time.perf_counter()
    now = inputs.fingerprints(report)
    months = months_to_refresh(report, now, stored_fingerprints(warehouse, report), _stored_months(warehouse, report))
    rows, swapped = recompute(warehouse, report, sorted(months), now)
    if swapped:
        _record(warehouse, report, swapped, now)
    return Refreshed(report.table, len(months), rows, time.perf_counter() - started)


def refresh_reports(warehouse: Warehouse, reports: Sequence[Report] = REPORTS) -> list[Refreshed]:
    """Refresh every stored report (safe to repeat, and to be killed anywhere)."""
    drop_stale_staging(warehouse)
    inputs = Inputs.read(warehouse, reports)
    return [refresh_report(warehouse, report, inputs) for report in reports]


def stale_reports(warehouse: Warehouse, reports: Sequence[Report] = REPORTS) -> list[str]:
    """The stored reports with a month whose inputs changed since it was recomputed (empty: all current)."""
    inputs = Inputs.read(warehouse, reports)
    return [r.table for r in reports
            if months_to_refresh(r, inputs.fingerprints(r), stored_fingerprints(warehouse, r),
                                 _stored_months(warehouse, r))]


def differences(warehouse: Warehouse, report: Report) -> tuple[int, int, int]:
    """(rows of the view, rows only in the view, rows only in the table): EXCEPT ALL both ways, duplicates counted."""
    view, table = report.view, report.table
    rows = int(warehouse.query(f"SELECT count() FROM {view}").scalar())
    only_view = int(warehouse.query(f"SELECT count() FROM (SELECT * FROM {view} EXCEPT ALL "
                                    f"SELECT * FROM {table})").scalar())
    only_table = int(warehouse.query(f"SELECT count() FROM (SELECT * FROM {table} EXCEPT ALL "
                                     f"SELECT * FROM {view})").scalar())
    return rows, only_view, only_table


def wait_until_current(warehouse: Warehouse, timeout: float = 600.0, progress=None) -> float:
    """Until the worker's refresh has every stored report current (the running system fills them); seconds waited."""
    started = time.monotonic()
    while stale := stale_reports(warehouse):
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"stored reports not refreshed within {timeout:.0f} s: {', '.join(stale)}")
        if progress is not None:
            progress(stale)
        time.sleep(1.0)
    return time.monotonic() - started
