"""Event metrics refresher: keeps agg_event_metric_daily current as behavior events are stored.

No topic of its own: a timer (on the leader worker) calls ``refresh_pending``, which finds the event days stored
since its last run (agg_behavior_stored_day, filled by a materialized view whoever wrote the events: the Snowplow
sink, a replay, a backfill) and recomputes the 7/28-day windows and totals those days affect. A timer rather than a
call inside the sink: one refresh covers many sink batches (a recompute costs days x scopes, the same for one batch
or fifty), and it cannot slow down or fail the sink's acks. Its progress is kept in the warehouse, so a crash or a
failed run only means the next run takes the same days again.
"""

from __future__ import annotations

import asyncio
import logging

from streams.agents.common import AgentContext
from streams.event_metrics import refresh_pending

log = logging.getLogger(__name__)

CONSUMED_TOPICS: list[str] = []
REFRESH_INTERVAL_SECONDS = 30.0


def register(ctx: AgentContext) -> None:
    @ctx.app.timer(interval=REFRESH_INTERVAL_SECONDS, on_leader=True)
    async def refresh_event_metrics() -> None:
        try:
            days = await asyncio.to_thread(refresh_pending, ctx.warehouse)
        except Exception:  # the warehouse may be down: the same days are taken again next time
            log.exception("event metrics refresh failed; retrying at the next tick")
            return
        if days:
            log.info("event metrics refreshed for %d window end days", days)
