"""The stored reports (streams/warehouse/reports.py) kept current by the running workers: a timer on the group's leader
recomputes, from their views, the months whose inputs changed (pings, Seat Links, event metrics, reference data, the
date). Progress is kept in the warehouse (rpt_refresh_state, and the stored months swapped in whole), so a crash or a
failed run only means the next run takes the same months again; runs that overlap during a leader change are safe
(streams/warehouse/reports.py). On the leader only: one run per group does the work once. No topic of its own.
"""

from __future__ import annotations

import asyncio
import logging

from streams.agents.common import AgentContext
from streams.warehouse import Warehouse
from streams.warehouse.reports import refresh_reports

log = logging.getLogger(__name__)

CONSUMED_TOPICS: list[str] = []
REFRESH_INTERVAL_SECONDS = 10.0  # a run that finds nothing changed reads only fingerprints


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
    warehouse = ctx.warehouse

    @ctx.app.timer(interval=REFRESH_INTERVAL_SECONDS, on_leader=True)
    async def refresh_stored_reports() -> None:
        await refresh(warehouse)
