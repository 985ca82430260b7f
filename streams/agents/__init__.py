"""Faust agents: one module per source (validate -> normalize -> enrich -> batched sink).

`build_app` creates the Faust app for a worker process and lets every source register its agents.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
from aiohttp import web

from streams import metrics
from streams.agents import (
    alerts,
    checks,
    consumer,
    event_metrics,
    reference,
    reports,
    seat_link,
    service_ping,
    snowplow,
    version_check,
)
from streams.agents.batching import AckAfterStream
from streams.agents.common import (
    WAREHOUSE_HEALTH,
    AgentContext,
    PoisonBatch,
    SinkStats,
    letter_row,
    write_with_retry,
)
from streams.config import MAX_MESSAGE_BYTES, TOPIC_DLQ, Settings, topic_config
from streams.enrich.metric_dictionary import MetricDictionary
from streams.erase.subjects import letter_row_subjects, without_erased
from streams.heap import release_free_memory
from streams.kafka.topics import ensure_topics
from streams.records import as_bytes, event_headers
from streams.warehouse import Warehouse, writers

log = logging.getLogger(__name__)

FETCH_BYTES_PER_PARTITION = 1024 * 1024
SOURCES = [service_ping, reference, seat_link, version_check, snowplow, alerts, event_metrics, reports, checks]
# Topics this app consumes: the consumer group's lag on them tells when everything has landed.
CONSUMED_TOPICS = [topic for source in SOURCES for topic in source.CONSUMED_TOPICS] + [TOPIC_DLQ]


def faust_broker_url(bootstrap_servers: str) -> str:
    return ";".join(f"kafka://{host.strip()}" for host in bootstrap_servers.split(",") if host.strip())


# A killed worker's partitions wait for its session to expire before a new worker gets them: Faust's 60 s
# default meant a minute without processing after every crash. 6 s is the broker's minimum
# (group.min.session.timeout.ms); heartbeats every second, so only an event loop blocked for 6 s loses the
# partitions (a rebalance, nothing lost: unacknowledged batches are redelivered).
SESSION_TIMEOUT_SECONDS = 6.0
HEARTBEAT_SECONDS = 1.0
# A safety net: topics are created before the consumer subscribes (ProjectApp), so a fresh broker needs no
# metadata refresh; aiokafka's default (5 min) would leave a worker without partitions that long otherwise.
METADATA_MAX_AGE_MS = 30_000


class ProjectApp(faust.App):
    """A Faust app that makes sure our topics exist with the project's settings before it subscribes, on a
    transport that reads again what it dropped on partitions never committed (streams/agents/consumer.py)."""

    project_settings: Settings
    bootstrap_servers: str

    async def on_first_start(self) -> None:
        await super().on_first_start()
        await ensure_topics(self.bootstrap_servers, self.project_settings)

    def _new_transport(self) -> consumer.Transport:
        return consumer.Transport(self.conf.broker_consumer, self)  # streams/agents/consumer.py: the seek fix


def faust_app(app_id: str, settings: Settings, bootstrap_servers: str) -> faust.App:
    """A Faust app with this project's consumer/producer settings and no agents yet."""
    app = ProjectApp(
        app_id,
        broker=faust_broker_url(bootstrap_servers),
        store="memory://",
        value_serializer="raw",
        key_serializer="raw",
        topic_partitions=settings.topic_partitions,
        consumer_auto_offset_reset="earliest",
        producer_max_request_size=MAX_MESSAGE_BYTES,
        # A soft limit (KIP-74): a bigger record is still fetched whole. Prefetch stays ~1 MiB per partition.
        consumer_max_fetch_size=FETCH_BYTES_PER_PARTITION,
        producer_acks=-1,
        broker_commit_interval=1.0,
        web_enabled=False,
        autodiscover=False,
        datadir=str(settings.data_dir / "faust"),
        Stream=AckAfterStream,  # batches are acked only after they were stored
        # Don't wait at shutdown/rebalance for batches that cannot finish (warehouse down): they stay
        # unacknowledged and are redelivered, which the idempotent writers absorb.
        stream_wait_empty=False,
        broker_session_timeout=SESSION_TIMEOUT_SECONDS,
        broker_heartbeat_interval=HEARTBEAT_SECONDS,
        consumer_metadata_max_age_ms=METADATA_MAX_AGE_MS,
    )
    app.project_settings, app.bootstrap_servers = settings, bootstrap_servers
    return app


def build_app(settings: Settings, bootstrap_servers: str, warehouse: Warehouse, dictionary: MetricDictionary,
              stats: SinkStats | None = None) -> faust.App:
    """A Faust app with every source's agents. One app per process; the warehouse is owned by it."""
    app = faust_app(settings.app_id, settings, bootstrap_servers)
    dlq = app.topic(settings.topic(TOPIC_DLQ), value_type=bytes, config=topic_config(TOPIC_DLQ))
    ctx = AgentContext(app, settings, warehouse, dictionary, stats or SinkStats(), dlq)
    for source in SOURCES:
        source.register(ctx)
    register_dead_letter_sink(ctx)
    register_memory_release(ctx)
    register_stall_guard(ctx)
    register_health_page(ctx)
    return app


MEMORY_RELEASE_SECONDS = 1.0


def register_stall_guard(ctx: AgentContext) -> None:
    """Every few seconds, read again the records Faust dropped without processing (streams/agents/consumer.py)."""
    guard = consumer.StallGuard(ctx.app.consumer)

    @ctx.app.timer(interval=consumer.STALL_CHECK_SECONDS)
    async def read_dropped_records_again() -> None:
        await guard.check()


def register_memory_release(ctx: AgentContext) -> None:
    """Every second, give freed memory back to the OS (Python's heap and the engine's): batches of big pings
    free tens of MB each, and both allocators would otherwise keep it, growing the worker batch after batch."""

    def release() -> None:
        release_free_memory()
        ctx.warehouse.release_memory()

    @ctx.app.timer(interval=MEMORY_RELEASE_SECONDS)
    async def release_memory() -> None:
        await asyncio.to_thread(release)


def register_dead_letter_sink(ctx: AgentContext) -> None:
    @ctx.app.agent(ctx.dlq, name="dead_letter_sink")
    async def dead_letter_sink(stream: Any) -> None:
        async for events in stream.take_events(500, within=1.0):
            rows = [letter_row(as_bytes(event.value), event_headers(event)) for event in events]
            try:
                stored = await write_with_retry(lambda rows=rows: writers.write_dead_letters(  # README "Erasure"
                    ctx.warehouse, without_erased(ctx.warehouse, rows, letter_row_subjects)),
                                                "dead letters", ctx.warehouse)
            except PoisonBatch:  # the end of the line: find the refused letters, keep their why without the bytes
                stored = sum([await _store_letter(ctx, row) for row in rows])
            ctx.stats.add(dead_letters=stored)
            metrics.observe_dead_letters(rows)


async def _store_letter(ctx: AgentContext, row: dict) -> int:
    try:
        return await write_with_retry(lambda: writers.write_dead_letters(ctx.warehouse, [row]), "dead letter",
                                      ctx.warehouse)
    except PoisonBatch as exc:
        log.error("dead letter %s refused; storing it without its original bytes: %s", row["dead_letter_id"], exc)
        bare = row | {"original": b"", "reason": f"{row['reason']} [original bytes not storable: {exc}]"[:4000]}
        return await write_with_retry(lambda: writers.write_dead_letters(ctx.warehouse, [bare]), "dead letter",
                                      ctx.warehouse)


def register_health_page(ctx: AgentContext) -> None:
    """GET http://127.0.0.1:<DENOMAS_WORKER_PORT>/health: 200 while warehouse writes pass, 503 with the fault while
    they fail (the sinks then hold their offsets and retry). Port 0 turns it off."""
    port = ctx.settings.worker_web_port
    if not port:
        return

    async def health(request: web.Request) -> web.Response:
        return web.json_response(WAREHOUSE_HEALTH.as_dict(), status=200 if WAREHOUSE_HEALTH.ok else 503)

    @ctx.app.task
    async def serve_health() -> None:
        site_app = web.Application()
        site_app.router.add_get("/health", health)
        site_app.router.add_get("/metrics", checks.metrics_page(ctx))
        runner = web.AppRunner(site_app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", port).start()
        except OSError as exc:  # another worker on this machine has the port: run without the page
            log.warning("worker health page not served: port %d: %s", port, exc)
