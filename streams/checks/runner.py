"""Run a selection of checks, store every result in check_results, print them, turn failures into alert events."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streams.checks.completeness import completeness
from streams.checks.model import MODEL_CHECKS, Catalog
from streams.checks.pipeline import dead_letter_rate, freshness, xmau_change
from streams.checks.spec import ERROR, FAIL, PASS, WARN, Check, Result, load_checks
from streams.config import Settings
from streams.tables import format_table
from streams.warehouse import Warehouse

log = logging.getLogger(__name__)
_RANK = {PASS: 0, WARN: 1, FAIL: 2, ERROR: 3}


@dataclass(frozen=True)
class Run:
    run_id: str
    checked_at: datetime
    results: list[Result]

    @property
    def failed(self) -> bool:
        """An error-level check failed or could not run: the command exits non-zero."""
        return any(r.failed for r in self.results)

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(_RANK, 0)
        for result in self.results:
            counts[result.status] += 1
        return counts


def run_one(warehouse: Warehouse, catalog: Catalog, check: Check, settings: Settings, bootstrap: str | None,
            now: datetime) -> list[Result]:
    """One check's results; a check that raises reports status `error` with the exception."""
    try:
        if check.kind in MODEL_CHECKS:
            return [MODEL_CHECKS[check.kind](warehouse, catalog, check)]
        if check.kind == "freshness":
            return [freshness(warehouse, catalog, check, now)]
        if check.kind == "dead_letter_rate":
            return dead_letter_rate(warehouse, catalog, check, now)
        if check.kind == "xmau_change":
            return xmau_change(warehouse, catalog, check, now)
        if check.kind == "completeness":
            return completeness(warehouse, settings, bootstrap, check)
        raise LookupError(f"unknown check kind {check.kind}")
    except Exception as exc:
        log.warning("check %s could not run: %s", check.name, exc)
        return [Result(check, ERROR, None, "", f"{type(exc).__name__}: {exc}"[:1000])]


def run_checks(warehouse: Warehouse, settings: Settings, selectors: Sequence[str] = (), bootstrap: str | None = None,
               checks: Sequence[Check] | None = None, now: datetime | None = None, store: bool = True,
               progress: Callable[[int, int], object] | None = None) -> Run:
    """Run the selected checks (default: every declared one) and store their results; `progress(done, total)`
    after each check."""
    now = now or datetime.now(UTC)
    catalog = Catalog(warehouse)
    selected = [c for c in (load_checks() if checks is None else checks) if c.selected_by(selectors)]
    if selectors and not selected:
        raise LookupError(f"no check matches {list(selectors)}")
    results = []
    for done, check in enumerate(selected, 1):
        results += run_one(warehouse, catalog, check, settings, bootstrap, now)
        if progress is not None:
            progress(done, len(selected))
    run = Run(uuid.uuid4().hex, now, results)
    if store:
        store_results(warehouse, run)
    from streams import metrics

    metrics.observe_check_results(run.results)
    return run


def store_results(warehouse: Warehouse, run: Run) -> int:
    return warehouse.insert("check_results", [{
        "run_id": run.run_id, "checked_at": run.checked_at, "check_name": r.check.name, "kind": r.check.kind,
        "table_name": r.check.table, "scope": r.scope, "severity": r.check.severity, "status": r.status,
        "observed": r.observed, "threshold": r.threshold, "message": r.message,
    } for r in run.results])


def summary_rows(run: Run) -> list[tuple[Any, ...]]:
    """One line per check: its worst result (checks with many scopes say how many failed)."""
    by_check: dict[str, list[Result]] = {}
    for result in run.results:
        by_check.setdefault(result.check.name, []).append(result)
    rows = []
    for name, results in by_check.items():
        worst = max(results, key=lambda r: _RANK[r.status])
        bad = sum(1 for r in results if r.status != PASS)
        scopes = f"{bad}/{len(results)} scopes not passing; " if len(results) > 1 and bad else ""
        if len(results) > 1 and not bad and check_detail(results):
            scopes = check_detail(results)
        rows.append((worst.status.upper(), name, worst.check.table, worst.check.severity,
                     "" if worst.observed is None else worst.observed, worst.threshold,
                     (scopes + worst.message)[:160]))
    return rows


def check_detail(results: list[Result]) -> str:
    """Passing results with something to say (completeness per partition), side by side."""
    return "; ".join(f"{r.scope}: {r.message.split(' of ')[0]}" for r in results if r.message)


def format_run(run: Run) -> str:
    counts = run.counts()
    table = format_table(["status", "check", "table", "severity", "observed", "threshold", "detail"],
                         summary_rows(run), title=f"Trusted-data checks (run {run.run_id[:12]})")
    return table + (f"\n{len(run.results)} results: {counts[PASS]} pass, {counts[WARN]} warn, {counts[FAIL]} fail, "
                    f"{counts[ERROR]} error")


def alert_events(run: Run) -> list[dict[str, Any]]:
    """Alert events (the shape streams/alerts publishes on usage.alerts) for results that fail the run. One alert
    per check, scope and day: the schedule re-running a failing check does not open it again the same day."""
    events = []
    for r in run.results:
        if not r.failed:
            continue
        day = run.checked_at.date().isoformat()
        alert_id = f"check:{r.check.name}:{r.scope}:{day}"
        events.append({
            "event_id": f"{alert_id}:open", "alert_id": alert_id, "state": "open", "rule": f"check:{r.check.name}",
            "description": f"trusted-data check {r.check.kind} on {r.check.table} {r.status}: {r.message}"[:2000],
            "scope": {"type": "check", "id": f"{r.check.table}/{r.scope}" if r.scope else r.check.table},
            "signal": {"source": "checks", "measure": r.check.kind, "period": "run"},
            "condition": {"type": "check", "threshold": r.threshold}, "period": day, "opened_period": day,
            "value": r.observed, "baseline": None, "threshold": None, "recovery_level": None,
            "opened_value": r.observed, "change_pct": None, "detected_at": run.checked_at.isoformat(),
            "opened_at": run.checked_at.isoformat(), "resolved_at": None, "landed_at": None, "run_id": run.run_id,
        })
    return events


def check_and_report(settings: Settings, bootstrap: str | None) -> tuple[str, bool]:
    """Run every check on the settings' warehouse (nobody else may hold it); the printed table and whether an
    error-level check failed. The demo ends with this."""
    from streams.warehouse import open_warehouse

    warehouse = open_warehouse(settings)
    try:
        run = run_checks(warehouse, settings, bootstrap=bootstrap)
    finally:
        warehouse.close()
    return format_run(run), run.failed
