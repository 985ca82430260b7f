"""HTTP collector: drop-in endpoints for what Denomas instances and trackers send.

It checks only what it must to answer correctly (size, encoding, JSON), stamps receipt metadata into
Kafka headers, publishes the original bytes to the source's raw topic, and answers like the original
service once the broker has acknowledged the record (so an accepted record is never lost).
Each source's endpoints live in their own module and are mounted here.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from streams import metrics
from streams.collector import common, seat_link, service_ping, snowplow, version_check
from streams.collector.common import (
    MAX_BODY_BYTES,
    BadRequest,
    Collector,
    KafkaPublisher,
    Publisher,
    decode_body,
    error_response,
    parse_json_object,
    safe_text,
)
from streams.config import Settings
from streams.kafka.admin import RepeatFilter, limit_repeated_logs
from streams.kafka.topics import ensure_topics

log = logging.getLogger(__name__)

__all__ = ["BadRequest", "Collector", "Publisher", "RunningCollector", "build_app", "decode_body",
           "parse_json_object", "serve"]

SOURCES = [service_ping, seat_link, version_check, snowplow]
INTERNAL_ERROR = "internal error"  # the start of the log line of a request answered 500 (bench/fuzz.py looks for it)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BadRequest as exc:
        return error_response(exc.status, exc.reason)
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, f"body exceeds {MAX_BODY_BYTES} bytes")
    except web.HTTPException:
        raise  # aiohttp's own answers (404, 405)
    except Exception:  # a bug: its traceback is logged with the request, and the answer names the log line
        incident = uuid.uuid4().hex[:12]
        log.exception("%s (answered 500, incident %s) for %s %s", INTERNAL_ERROR, incident, request.method,
                      safe_text(str(request.rel_url))[:300])
        return error_response(500, f"{INTERNAL_ERROR}; logged as incident {incident}")


class MalformedRequestFilter(RepeatFilter):
    """aiohttp logs a traceback for every malformed request its parser refuses with 400 (a bad request line or
    header): repeats of those are counted, not shown, so no client can flood the log. Its other errors (an
    exception in a handler, answered 500) share the message, so they always pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return super().filter(record) if isinstance(error, HttpProcessingError) else True


def limit_malformed_request_logs() -> None:
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequestFilter) for f in server_log.filters):
        server_log.addFilter(MalformedRequestFilter())


def build_app(collector: Collector) -> web.Application:
    app = web.Application(middlewares=[metrics.count_requests, errors_as_json], client_max_size=MAX_BODY_BYTES)
    for source in SOURCES:
        app.add_routes(source.routes(collector))
    app.router.add_get("/health", collector.health)
    app.router.add_get("/metrics", metrics.metrics_handler())
    return app


class RunningCollector:
    """Collector + its Kafka producer on host:port, for the CLI and the tests."""

    def __init__(self, bootstrap_servers: str, settings: Settings | None = None, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.settings = settings or Settings.from_env()
        self.bootstrap_servers = bootstrap_servers
        self.publisher = KafkaPublisher(bootstrap_servers)
        self.host, self.port = host, port
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        limit_repeated_logs(common.__name__)  # a broker away must not flood the log (thousands of lines a second)
        limit_malformed_request_logs()
        await ensure_topics(self.bootstrap_servers, self.settings)
        await self.publisher.start()
        # auto_decompress=False: we inflate ourselves, with a size cap against gzip bombs.
        app = build_app(Collector(self.publisher, self.settings))
        self._runner = web.AppRunner(app, auto_decompress=False, access_log=None,
                                     keepalive_timeout=common.HEADER_READ_SECONDS)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.url

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        await self.publisher.stop()


async def serve(settings: Settings, bootstrap_servers: str) -> None:
    """Run the collector until cancelled (the `collector` CLI command)."""
    running = RunningCollector(bootstrap_servers, settings, settings.collector_host, settings.collector_port)
    url = await running.start()
    print(f"collector listening on {url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await running.stop()
