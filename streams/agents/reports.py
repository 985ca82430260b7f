"""The stored reports (streams/warehouse/reports.py) kept current by the running workers: a loop on the group's leader
recomputes, from their views, the months whose inputs changed (pings, Seat Links, event metrics, reference data, the
date), and waits after each run ten times what it took (10 s to 60 s). Progress is kept in the warehouse
(rpt_refresh_state, and the stored months swapped in whole), so a crash or a failed run only means the next run takes
the same months again; runs that overlap during a leader change are safe (streams/warehouse/reports.py). On the
leader only: one run per group does the work once. No topic of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time

from streams.agents.common import AgentContext
from streams.warehouse import Warehouse
from streams.warehouse.reports import refresh_reports

log = logging.getLogger(__name__)

CONSUMED_TOPICS: list[str] = []
REFRESH_INTERVAL_SECONDS = 10.0  # a run that finds nothing changed reads only fingerprints
# A run costs the one engine the sinks write through (a new ping recomputes every xMAU month: 2-5 s at the bench's
# volume); waiting ten times its duration keeps the refresh under ~10 % of the engine's time while data flows.
# Refreshing every 10 s whatever a run cost made Service Ping ingest 35 % slower (bench, 25.2 -> 16.3 pings/s).
RUN_COST_FACTOR = 10.0
MAX_PAUSE_SECONDS = 60.0  # the stored reports are never more than a minute (and a run) behind


def pause_after(run_seconds: float) -> float:
    """Seconds to wait before the next run, given how long the last one took."""
    return min(MAX_PAUSE_SECONDS, max(REFRESH_INTERVAL_SECONDS, RUN_COST_FACTOR * run_seconds))


async def refresh(warehouse: Warehouse) -> int:
    """One refresh run; a failure is logged, not raised: the same months are taken again next time."""
    try:
        done = await asyncio.to_thread(refresh_reports, warehouse)
    except Exception:  # the warehouse may be down
        log.exception("stored reports refresh failed; retrying at the next tick")
        return 0
    months = sum(r.months for r in done)
    if months:
        log.info("stored reports refreshed: %s", ", ".join(f"{r.report} {r.months} months {r.seconds:.1f} s"
                                                           for r in done if r.months))
    return months


def register(ctx: AgentContext) -> None:
    warehouse, app = ctx.warehouse, ctx.app

    @app.task
    async def refresh_stored_reports() -> None:
        while not app.should_stop:
            started = time.monotonic()
            if app.is_leader():
                await refresh(warehouse)
            await asyncio.sleep(pause_after(time.monotonic() - started))
