"""Collector machinery shared by every source: body decoding, receipt metadata, publishing."""

from __future__ import annotations

import logging
import socket
import uuid as uuid_lib
import zlib
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from aiohttp import web

from streams.config import MAX_BODY_BYTES, MAX_MESSAGE_BYTES, Settings

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


def error_response(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


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

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})


def str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
