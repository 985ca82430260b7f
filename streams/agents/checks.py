"""The worker's share of trusted data: checks on a schedule, Prometheus metrics on /metrics.

  leader, every DENOMAS_CHECK_INTERVAL seconds (default 300; 0: off) --run_checks--> check_results
        \\--> usage.alerts (one open event per failing error-level check, scope and day: the alert delivery
              agents deliver it like any alert)
  GET /metrics on the worker's health port: landed / dead-lettered records, batch insert latency, receipt ->
  stored latency, check results, consumer lag per topic (read from the broker at scrape time) and Faust's own
  sensor (messages, commits, rebalances).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor

from streams import metrics
from streams.agents.common import AgentContext
from streams.config import TOPIC_ALERTS
from streams.kafka.admin import OffsetProbe

log = logging.getLogger(__name__)

CONSUMED_TOPICS: list[str] = []
DEFAULT_INTERVAL_SECONDS = 300.0


def check_interval() -> float:
    return float(os.environ.get("DENOMAS_CHECK_INTERVAL", DEFAULT_INTERVAL_SECONDS))


_FAUST_METRICS: dict[str, FaustMetrics] = {}


def faust_metrics(app_id: str) -> FaustMetrics:
    """Faust's sensor metrics in our registry, once per app id (a registry refuses a name twice; tests build
    several apps in one process)."""
    name = "faust_" + app_id.replace("-", "_").replace(".", "_")
    if name not in _FAUST_METRICS:
        _FAUST_METRICS[name] = FaustMetrics.create(metrics.REGISTRY, name)
    return _FAUST_METRICS[name]


def register(ctx: AgentContext) -> None:
    ctx.app.monitor = PrometheusMonitor(metrics=faust_metrics(ctx.settings.app_id))
    interval = check_interval()
    if interval <= 0:
        return
    alerts_topic = ctx.topic(TOPIC_ALERTS)

    @ctx.app.timer(interval=interval, on_leader=True)
    async def scheduled_checks() -> None:
        from streams.checks.runner import alert_events, run_checks

        try:
            run = await asyncio.to_thread(run_checks, ctx.warehouse, ctx.settings,
                                          bootstrap=ctx.settings.kafka_bootstrap_servers)
        except Exception:  # a broken declaration file must not stop the worker; the log says why
            log.exception("scheduled checks could not run")
            return
        events = alert_events(run)
        sent = [await alerts_topic.send(key=e["rule"].encode(), value=orjson.dumps(e)) for e in events]
        await asyncio.gather(*sent)
        log.info("checks run %s: %s; %d alert events", run.run_id, run.counts(), len(events))


def metrics_page(ctx: AgentContext) -> Callable[[Any], Awaitable[Any]]:
    """The /metrics handler of the worker: refreshes the lag gauge from the broker, then renders the registry."""
    from streams.agents import CONSUMED_TOPICS as consumed

    topics = [ctx.settings.topic(t) for t in dict.fromkeys(consumed)]
    probe: list[OffsetProbe] = []

    async def refresh_lag() -> None:
        bootstrap = ctx.settings.kafka_bootstrap_servers
        if not bootstrap:
            return
        try:
            if not probe:
                probe.append(await OffsetProbe(bootstrap).__aenter__())
            partitions = await probe[0].partitions(topics)
            committed = await probe[0].committed(ctx.settings.app_id, partitions, timeout=5)
            ends = await probe[0].end_offsets(partitions)
        except Exception as exc:  # the page still answers with the other metrics
            log.warning("consumer lag not read: %s", exc)
            return
        lag = dict.fromkeys(topics, 0)
        for tp, end in ends.items():
            meta = committed.get(tp)
            lag[tp.topic] += max(0, end - (meta.offset if meta is not None and meta.offset >= 0 else 0))
        metrics.set_lag(lag)

    return metrics.metrics_handler(refresh_lag)
