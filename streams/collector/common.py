"""Collector machinery shared by every source: body decoding, receipt metadata, publishing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import zlib
from collections.abc import AsyncIterator
from typing import Any, Protocol

import orjson
from aiohttp import web
from aiokafka import AIOKafkaProducer, errors

from streams import metrics
from streams.config import MAX_BODY_BYTES, MAX_MESSAGE_BYTES, Settings
from streams.enrich.limits import json_depth_exceeds, too_deep_reason
from streams.records import receipt

log = logging.getLogger(__name__)

class Publisher(Protocol):
    async def publish(self, topic: str, key: bytes | None, value: bytes, headers: dict[str, str]) -> None: ...


# The producer's idempotence state is broken for good after these (aiokafka issue 1017: after a broker restart
# every later send to the partition fails with OutOfOrderSequenceNumber); only a new producer (new id) helps.
FATAL_PRODUCER_ERRORS: tuple[type[Exception], ...] = (
    errors.OutOfOrderSequenceNumber, errors.UnknownProducerId, errors.InvalidProducerEpoch,
    errors.InvalidProducerIdMapping, errors.ProducerFenced, errors.ProducerClosed, errors.IllegalStateError,
)
RESTART_BACKOFF_SECONDS = 1.0  # at most one new producer a second while the broker is away
PUBLISH_TIMEOUT_SECONDS = 5.0  # a healthy broker acknowledges in milliseconds
METADATA_RETRY_SECONDS = 0.5
BODY_READ_SECONDS = 10.0  # a client still sending its body after this is answered 408
# A connection must deliver a whole request head within this of opening (or of its previous answer), else it is
# closed: aiohttp has no header timeout, and its idle timer (keepalive_timeout, 3630 s by default) is the only one
# running while a head is incomplete, so it is set to this. Above aiohttp's client keep-alive (15 s), so a client
# of ours never reuses a connection the collector is closing.
HEADER_READ_SECONDS = 20.0


def back_off_failed_metadata(client: Any) -> None:
    """Pause after a failed metadata update of this aiokafka client.

    aiokafka 0.14's sender asks for new metadata again as soon as an update fails, without the backoff its
    comment promises: with the broker away that is thousands of connection attempts (and two log lines each)
    a second, a core busy for as long as the broker is away.
    """
    update = client._metadata_update

    async def update_with_backoff(cluster: Any, topics: Any) -> bool:
        updated = await update(cluster, topics)
        if not updated:
            await asyncio.sleep(METADATA_RETRY_SECONDS)
        return updated

    client._metadata_update = update_with_backoff


class ProducerUnavailable(Exception):
    """No producer right now (the broker is away); the request is answered 503."""


class KafkaPublisher:
    """aiokafka producer with acks=all and idempotence: a 200 means the broker has the record.

    A producer that failed for good is replaced by a new one: the records it had acknowledged are on the
    broker, the others were answered 503 (the client sends them again), so nothing acknowledged is lost.
    """

    def __init__(self, bootstrap_servers: str) -> None:
        self._bootstrap = bootstrap_servers
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._next_start = 0.0
        self._closing: set[asyncio.Task] = set()
        self.restarts = 0

    async def _new_producer(self) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap, acks="all", enable_idempotence=True,
            max_request_size=MAX_MESSAGE_BYTES, linger_ms=2, request_timeout_ms=15000,
        )
        back_off_failed_metadata(producer.client)
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        return producer

    async def start(self) -> None:
        self._producer = await self._new_producer()

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()
        await asyncio.gather(*self._closing, return_exceptions=True)

    async def _current(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                if time.monotonic() < self._next_start:
                    raise ProducerUnavailable("the Kafka producer is being restarted")
                self._next_start = time.monotonic() + RESTART_BACKOFF_SECONDS
                self._producer = await self._new_producer()
                self.restarts += 1
                log.warning("started a new Kafka producer")
            return self._producer

    def _retire(self, producer: AIOKafkaProducer, error: Exception) -> None:
        if self._producer is not producer:
            return  # a concurrent request retired it already
        self._producer = None
        log.warning("the Kafka producer failed for good (%s); the next request starts a new one", error)
        task = asyncio.create_task(producer.stop())  # lets its other in-flight sends finish or fail
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def publish(self, topic: str, key: bytes | None, value: bytes, headers: dict[str, str]) -> None:
        producer = await self._current()
        try:
            # Bounded: with the broker away aiokafka may hold a record for as long as the broker is gone; the
            # client gets a 503 instead and sends again (if the held record lands after all, it lands twice).
            async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
                delivery = await producer.send(
                    topic, value=value, key=key, headers=[(k, v.encode()) for k, v in headers.items()]
                )
                await asyncio.shield(delivery)
            metrics.observe_accepted(topic.rsplit(".", 1)[-1])  # usage.raw.<source>, after the broker's ack
        except FATAL_PRODUCER_ERRORS as exc:
            self._retire(producer, exc)
            raise


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
    if json_depth_exceeds(document):  # what parses may not be writable again; no payload of ours nests this deep
        raise BadRequest(400, f"body is {too_deep_reason()}")
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
        return receipt(source, kind, self.collector_name)

    async def read_json(self, request: web.Request) -> tuple[bytes, dict]:
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            raise BadRequest(413, f"body of {request.content_length} bytes exceeds {MAX_BODY_BYTES}")
        raw = await self.read_body(request)
        body = decode_body(raw, request.headers.get("Content-Encoding", ""))
        return body, parse_json_object(body)

    async def publish(self, topic: str, key: str | None, body: bytes, headers: dict[str, str]) -> None:
        # Header and query text reach us with undecodable bytes as surrogates: they are replaced, never raised on.
        headers = {name: safe_text(value) for name, value in headers.items()}
        try:
            await self.publisher.publish(topic, safe_text(key).encode() if key else None, body, headers)
        except errors.MessageSizeTooLargeError as exc:
            raise BadRequest(413, f"record too large for the broker: {exc}") from exc
        except (errors.KafkaError, ProducerUnavailable, TimeoutError, OSError) as exc:
            # broker down or timed out: the client must retry, nothing was accepted
            log.error("publish to %s failed: %s %s", topic, type(exc).__name__, exc)
            raise BadRequest(503, "temporarily unable to accept data; retry later") from exc

    async def read_body(self, request: web.Request) -> bytes:
        """The whole body within BODY_READ_SECONDS: a client that dribbles it gets 408, not a held connection."""
        async with body_read_errors():
            return await request.read()

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})


@contextlib.asynccontextmanager
async def body_read_errors() -> AsyncIterator[None]:
    """Reading a body within BODY_READ_SECONDS, and what a client does wrong while sending it as 4xx: too slow is 408;
    gone before the end (aiohttp: ConnectionResetError "Connection lost") or a broken body framing is 400, with the
    reason in the log's access line instead of a 500 traceback (a client that left never sees the answer)."""
    try:
        async with asyncio.timeout(BODY_READ_SECONDS):
            yield
    except TimeoutError as exc:
        raise BadRequest(408, f"body not received within {BODY_READ_SECONDS:.0f} s") from exc
    except (ConnectionError, web.RequestPayloadError) as exc:
        raise BadRequest(400, f"body not received whole: {type(exc).__name__} {exc}") from exc


def safe_text(text: str) -> str:
    """`text` as valid UTF-8 text: aiohttp keeps undecodable request bytes as lone surrogates, which no encoder
    accepts."""
    return text.encode("utf-8", "replace").decode("utf-8")


def str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
