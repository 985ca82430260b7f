"""Event metrics: the definitions in dim_event_metric, and agg_event_metric_daily kept current as events are stored.

No topic of its own:
- at start, every worker writes the definitions (schemas/event_metrics/**) to ``dim_event_metric``: the marts read
  time frame, value type, stage and xMAU flags from it (a ReplacingMergeTree, so each start's load replaces the last).
  A definition that is new, or whose time frame, value type, operator or events changed since the stored one, is
  first recomputed over every stored day (``rebuild_event_metrics``): the refresh below only covers new days;
- a timer (on the leader worker) calls ``refresh_pending``, which finds the event days stored since its last run
  (agg_behavior_stored_day, filled by a materialized view whoever wrote the events: the Snowplow sink, a replay, a
  backfill) and recomputes the 7/28-day windows and totals those days affect. A timer rather than a call inside the
  sink: one refresh covers many sink batches (a recompute costs days x scopes, the same for one batch or fifty), and
  it cannot slow down or fail the sink's acks. Its progress is kept in the warehouse, so a crash or a failed run only
  means the next run takes the same days again;
- a stopping worker refreshes once more, so the events it stored since the last tick are covered when it is gone
  (what `denomas-usage demo` reads after stopping its worker).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from streams.agents.common import AgentContext
from streams.enrich.event_metrics import EventMetric
from streams.event_metrics import (
    data_horizon,
    default_metrics,
    rebuild_event_metrics,
    refresh_pending,
    sync_event_metric_definitions,
)
from streams.warehouse import Warehouse

log = logging.getLogger(__name__)

CONSUMED_TOPICS: list[str] = []
REFRESH_INTERVAL_SECONDS = 30.0


def _computed_by(metric: EventMetric) -> tuple:
    """What a metric's values depend on (a change of description or stage needs no recompute)."""
    return (metric.time_frame, metric.value_type, metric.operator, [e.label() for e in metric.events])


def start_event_metrics(warehouse: Warehouse, metrics: Sequence[EventMetric] | None = None) -> tuple[int, int]:
    """A worker's start: recompute the new or changed definitions over the stored history, then write every
    definition to dim_event_metric. Returns (definitions written, definitions recomputed)."""
    metrics = list(default_metrics() if metrics is None else metrics)
    stored = {row[0]: tuple(row[1:]) for row in warehouse.query(
        "SELECT key_path, time_frame, value_type, operator, events FROM dim_event_metric FINAL").rows}
    changed = [m for m in metrics if stored.get(m.key_path) != _computed_by(m)]
    if changed and data_horizon(warehouse) is not None:  # nothing stored yet: nothing to recompute
        rebuild_event_metrics(warehouse, changed)
    return sync_event_metric_definitions(warehouse, metrics), len(changed)


async def refresh(warehouse: Warehouse) -> int:
    """One refresh run; a failure is logged, not raised: the same days are taken again next time."""
    try:
        days = await asyncio.to_thread(refresh_pending, warehouse)
    except Exception:  # the warehouse may be down
        log.exception("event metrics refresh failed; retrying at the next tick")
        return 0
    if days:
        log.info("event metrics refreshed for %d window end days", days)
    return days


def register(ctx: AgentContext) -> None:
    warehouse = ctx.warehouse

    @ctx.app.task
    async def write_event_metric_definitions() -> None:
        try:
            written, recomputed = await asyncio.to_thread(start_event_metrics, warehouse)
        except Exception:  # a broken warehouse at start: the marts keep the previous definitions
            log.exception("event metric definitions not written to dim_event_metric")
            return
        log.info("dim_event_metric: %d definitions written, %d new or changed ones recomputed", written, recomputed)

    @ctx.app.timer(interval=REFRESH_INTERVAL_SECONDS, on_leader=True)
    async def refresh_event_metrics() -> None:
        await refresh(warehouse)

    @ctx.app.on_before_shutdown.connect
    async def refresh_before_stopping(app: Any, **kwargs: Any) -> None:
        await refresh(warehouse)
