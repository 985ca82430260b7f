"""HTTP collector: a drop-in endpoint for what Denomas instances send.

It checks only what it must to answer correctly (size, encoding, JSON), stamps receipt metadata into
Kafka headers, publishes the original bytes to the raw topic, and answers like the original service
once the broker has acknowledged the record (so an accepted ping is never lost).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid as uuid_lib
import zlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from aiohttp import web

from streams.config import MAX_BODY_BYTES, MAX_MESSAGE_BYTES, TOPIC_RAW_SERVICE_PING, Settings
from streams.enrich.service_ping import ping_id_for

log = logging.getLogger(__name__)

# Kafka header names carrying receipt metadata next to the original bytes.
H_RECEIVED_AT = "received_at"
H_SOURCE = "source"
H_KIND = "kind"
H_REQUEST_ID = "request_id"
H_COLLECTOR = "collector"
H_PING_ID = "ping_id"


class Publisher(Protocol):
    async def publish(self, topic: str, key: bytes | None, value: bytes, headers: dict[str, str]) -> None: ...


class KafkaPublisher:
    """aiokafka producer with acks=all and idempotence: a 200 means the broker has the record."""

    def __init__(self, bootstrap_servers: str) -> None:
        self._bootstrap = bootstrap_servers
        self._producer: Any = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap, acks="all", enable_idempotence=True,
            max_request_size=MAX_MESSAGE_BYTES, linger_ms=2, request_timeout_ms=15000,
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def publish(self, topic: str, key: bytes | None, value: bytes, headers: dict[str, str]) -> None:
        await self._producer.send_and_wait(
            topic, value=value, key=key, headers=[(k, v.encode()) for k, v in headers.items()]
        )


class BadRequest(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def decode_body(raw: bytes, content_encoding: str) -> bytes:
    """Undo gzip/deflate transport encoding, refusing bodies that inflate past the size limit."""
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise BadRequest(415, f"unsupported Content-Encoding {content_encoding!r}; send gzip, deflate or none")
    inflater = zlib.decompressobj(wbits=47)  # 32 + 15: accept gzip and zlib headers
    try:
        body = inflater.decompress(raw, MAX_BODY_BYTES + 1)
    except zlib.error as exc:
        raise BadRequest(400, f"body is not valid {encoding}: {exc}") from exc
    if len(body) > MAX_BODY_BYTES or inflater.unconsumed_tail:
        raise BadRequest(413, f"decompressed body exceeds {MAX_BODY_BYTES} bytes")
    if not inflater.eof:
        raise BadRequest(400, f"truncated {encoding} body")
    return body


def parse_json_object(body: bytes) -> dict:
    if not body.strip():
        raise BadRequest(400, "empty body; expected a JSON object")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(400, f"body is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise BadRequest(422, f"expected a JSON object, got {type(document).__name__}")
    return document


def _error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Collector:
    def __init__(self, publisher: Publisher, settings: Settings | None = None) -> None:
        self.publisher = publisher
        self.settings = settings or Settings()
        self.collector_name = socket.gethostname()

    def receipt(self, source: str, kind: str) -> dict[str, str]:
        return {
            H_RECEIVED_AT: datetime.now(UTC).isoformat(timespec="milliseconds"),
            H_SOURCE: source,
            H_KIND: kind,
            H_REQUEST_ID: uuid_lib.uuid4().hex,
            H_COLLECTOR: self.collector_name,
        }

    async def read_json(self, request: web.Request) -> tuple[bytes, dict]:
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            raise BadRequest(413, f"body of {request.content_length} bytes exceeds {MAX_BODY_BYTES}")
        raw = await request.read()
        body = decode_body(raw, request.headers.get("Content-Encoding", ""))
        return body, parse_json_object(body)

    async def publish(self, topic: str, key: str | None, body: bytes, headers: dict[str, str]) -> None:
        try:
            await self.publisher.publish(topic, key.encode() if key else None, body, headers)
        except Exception as exc:  # broker down or timed out: the client must retry, nothing was accepted
            log.error("publish to %s failed: %s", topic, exc)
            raise BadRequest(503, "temporarily unable to accept data; retry later") from exc

    # --- Service Ping -----------------------------------------------------------------------------

    async def usage_data(self, request: web.Request) -> web.Response:
        body, document = await self.read_json(request)
        ping_id = ping_id_for(document, body)
        headers = self.receipt("service_ping", "ping") | {H_PING_ID: str(ping_id)}
        topic = self.settings.topic(TOPIC_RAW_SERVICE_PING)
        await self.publish(topic, _str_or_none(document.get("uuid")), body, headers)
        # Instances read conv_index.usage_data_id (older ones dev_ops_score.usage_data_id): a positive integer.
        answer = {"usage_data_id": ping_id}
        return web.json_response({"conv_index": answer, "dev_ops_score": answer})

    async def usage_ping_errors(self, request: web.Request) -> web.Response:
        body, document = await self.read_json(request)
        error = document.get("error")
        if not isinstance(error, dict):
            raise BadRequest(422, "expected {\"error\": {...}}")
        await self.publish(self.settings.topic(TOPIC_RAW_SERVICE_PING), _str_or_none(error.get("uuid")), body,
                           self.receipt("service_ping", "error"))
        return web.json_response({}, status=201)

    async def usage_ping_metadata(self, request: web.Request) -> web.Response:
        body, document = await self.read_json(request)
        metadata = document.get("metadata")
        if not isinstance(metadata, dict) or not isinstance(metadata.get("metrics", []), list):
            raise BadRequest(422, "expected {\"metadata\": {\"uuid\": ..., \"metrics\": [...]}}")
        await self.publish(self.settings.topic(TOPIC_RAW_SERVICE_PING), _str_or_none(metadata.get("uuid")), body,
                           self.receipt("service_ping", "metadata"))
        return web.json_response({}, status=201)

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BadRequest as exc:
        return _error(exc.status, exc.reason)
    except web.HTTPRequestEntityTooLarge:
        return _error(413, f"body exceeds {MAX_BODY_BYTES} bytes")


def build_app(collector: Collector) -> web.Application:
    app = web.Application(middlewares=[errors_as_json], client_max_size=MAX_BODY_BYTES)
    app.router.add_post("/usage_data", collector.usage_data)
    app.router.add_post("/usage_ping_errors", collector.usage_ping_errors)
    app.router.add_post("/usage_ping_metadata", collector.usage_ping_metadata)
    app.router.add_get("/health", collector.health)
    return app


class RunningCollector:
    """Collector + its Kafka producer on host:port, for the CLI and the tests."""

    def __init__(self, bootstrap_servers: str, settings: Settings | None = None, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.settings = settings or Settings.from_env()
        self.publisher = KafkaPublisher(bootstrap_servers)
        self.host, self.port = host, port
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        await self.publisher.start()
        # auto_decompress=False: we inflate ourselves, with a size cap against gzip bombs.
        self._runner = web.AppRunner(build_app(Collector(self.publisher, self.settings)), auto_decompress=False,
                                     access_log=None)
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
