"""Event metrics: the definitions in dim_event_metric, and agg_event_metric_daily kept current as events are stored.

No topic of its own:
- at start, every worker writes the definitions (schemas/event_metrics/**) to ``dim_event_metric``: the marts read
  time frame, value type, stage and xMAU flags from it (a ReplacingMergeTree, so each start's load replaces the last).
  A definition that is new, or whose time frame, value type, operator or events changed since the stored one, is
  first recomputed over every stored day (``rebuild_event_metrics``): the refresh below only covers new days;
- the Snowplow sink refreshes the derived tables of the days each batch touched before it acks it
  (``streams.event_metrics.refresh_pending``); a timer on the leader worker runs the same refresh for other writers
  (a replay, a backfill) and for the data horizon moving with the date. Progress is kept in the warehouse
  (agg_behavior_day_status), so a crash or a failed run only means the next run takes the same days again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from streams.agents.common import AgentContext
from streams.event_metrics.definitions import EventMetric
from streams.event_metrics.refresh import (
    data_horizon,
    rebuild_event_metrics,
    refresh_pending,
    sync_event_metric_definitions,
)
from streams.event_metrics.sql import default_metrics
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

