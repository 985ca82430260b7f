"""Snowplow endpoints, as the official trackers call them (ingestion-anchors.md sections 1.1-1.5).

  POST /com.snowplowanalytics.snowplow/tp2   payload_data JSON: one Kafka record per event     -> 200 "ok"
  GET|HEAD /i, /ice.png                        one event in the query string                     -> 200, 1x1 GIF
  OPTIONS on those paths                       CORS preflight

Answers follow what trackers retry (snowplow-tracker's `Emitter._should_retry`: 2xx is success; 400, 401,
403, 410 and 422 are never retried; anything else, and connection errors, are retried with back-off):
- 200 once the broker acknowledged every event of the request. Events are checked by the agent, not here,
  so a bad event inside a good request is accepted and becomes a bad row (Snowplow's collector does the same).
- 400 (not JSON, bad encoding, too large, undecodable query) or 422 (JSON but not payload_data): the request
  holds no usable event and a retry cannot help. Its bytes still go to the raw topic, marked bad with the
  reason, so the agent dead-letters them: nothing is silently dropped.
- 503 when the broker did not take the records: the tracker retries; copies that did reach the broker are
  exact duplicates, which the sink drops.

Raw records: one per request and user (kind `events`, a JSON array of the events; `event_index` lists their
positions in the request), keyed by the user so copies of an event meet on one partition. Receipt headers:
received_at (collector_tstamp), request_id, user agent, and `client_geo`, the coarse location of the client IP
(the tracker's `ip` parameter, else X-Forwarded-For, else the peer; none with `SP-Anonymous`), resolved here:
the IP is removed from the event body and never written to Kafka. User ids (`uid`, ids in `co`/`cx` contexts and
self-describing events) are replaced by their pseudonyms before anything is published (streams/enrich/personal.py);
the bytes of bad requests are kept with ids pseudonymized and IPs removed.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import orjson
from aiohttp import web

from streams.collector.common import BadRequest, Collector, body_read_errors, decode_body
from streams.config import MAX_BODY_BYTES, TOPIC_RAW_SNOWPLOW
from streams.enrich.geo import encode_location, locate
from streams.enrich.personal import pseudonymize_event, redact_bytes, redact_reason
from streams.enrich.snowplow import BAD_ADAPTER, BAD_FORMAT, BAD_SIZE, take_ip
from streams.enrich.snowplow_requests import EnvelopeError, query_event, request_records, split_payload
from streams.records import (
    H_BAD_ROW_TYPE,
    H_CLIENT_GEO,
    H_EVENT_INDEX,
    H_REASON,
    H_USERAGENT,
    KIND_BAD_REQUEST,
    KIND_EVENTS,
)

POST_PATH = "/com.snowplowanalytics.snowplow/tp2"
PIXEL_PATHS = ("/i", "/ice.png")
# The smallest transparent GIF (43 bytes), what Snowplow's collector answers on the pixel paths.
PIXEL = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")
_PIXEL_HEADERS = {"Cache-Control": "no-cache, no-store, must-revalidate"}
CORS_ORIGINS_ENV = "DENOMAS_CORS_ORIGINS"
# Bounded work per request: a tracker sends tens of events at a time; 20,000 would be 20,000 Kafka sends.
MAX_EVENTS_PER_REQUEST = 1000
SENDS_IN_FLIGHT = 32  # Kafka sends one request may have pending at once
REQUEST_DEADLINE_SECONDS = 20.0  # past this the broker is too slow: 503, the tracker retries
_KEPT_BAD_BYTES = 1024 * 1024  # of an oversized body, the first MiB is kept for the bad row
_CLEAN_INLINE_BYTES = 64 * 1024  # bad bodies up to this size are cleaned of ids and IPs on the event loop


def allowed_origins() -> frozenset[str]:
    """Origins whose pages may send with credentials (DENOMAS_CORS_ORIGINS, comma-separated); others get `*`."""
    return frozenset(o.strip() for o in os.environ.get(CORS_ORIGINS_ENV, "").split(",") if o.strip())


def cors_headers(request: web.Request) -> dict[str, str]:
    """Any page may send events, but only the configured origins with credentials: echoing every Origin with
    credentials would let any site act with a visitor's cookies for this host."""
    origin = request.headers.get("Origin", "")
    if origin and origin in allowed_origins():
        return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true", "Vary": "Origin"}
    return {"Access-Control-Allow-Origin": "*"}


def client_ip(request: web.Request) -> str | None:
    forwarded = request.headers.get("X-Forwarded-For", "")
    first = forwarded.split(",")[0].strip()
    return first or request.remote


class TooLarge(Exception):
    def __init__(self, head: bytes) -> None:
        super().__init__("body too large")
        self.head = head


async def read_limited(request: web.Request) -> bytes:
    """The body within BODY_READ_SECONDS (else 408, see body_read_errors); over the limit, TooLarge with its first
    MiB (answered as a bad row, not a retryable 413)."""
    async with body_read_errors():
        return await _read_limited(request)


async def _read_limited(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        head = b""
        while len(head) < _KEPT_BAD_BYTES and (chunk := await request.content.read(_KEPT_BAD_BYTES - len(head))):
            head += chunk
        raise TooLarge(head)
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise TooLarge(b"".join(chunks)[:_KEPT_BAD_BYTES])
    return b"".join(chunks)


def routes(collector: Collector) -> list[web.RouteDef]:
    topic = collector.settings.topic(TOPIC_RAW_SNOWPLOW)

    def base_headers(request: web.Request, kind: str) -> dict[str, str]:
        return collector.receipt("snowplow", kind) | {H_USERAGENT: request.headers.get("User-Agent", "")[:1000]}

    async def publish_events(request: web.Request, events: list[Any]) -> None:
        common = base_headers(request, KIND_EVENTS)
        anonymous = "SP-Anonymous" in request.headers
        connection_ip = None if anonymous else client_ip(request)

        def locate_event(event: Any) -> str | None:
            ip = take_ip(event)  # IP -> coarse location here, at the edge: no IP is ever written to Kafka
            return encode_location(locate(ip or connection_ip)) if not anonymous and (ip or connection_ip) else None

        in_flight = asyncio.Semaphore(SENDS_IN_FLIGHT)

        async def send(key: str | None, body: bytes, headers: dict[str, str]) -> None:
            async with in_flight:
                await collector.publish(topic, key, body, headers)

        sends = []
        for key, location, indexes, members in request_records(events, locate_event):
            headers = common | {H_EVENT_INDEX: ",".join(map(str, indexes))}
            if location is not None:
                headers[H_CLIENT_GEO] = location
            # ids pseudonymized after the key was chosen from them (the key is their keyed hash either way)
            sends.append(send(key, orjson.dumps([pseudonymize_event(e) for e in members]), headers))
        try:
            async with asyncio.timeout(REQUEST_DEADLINE_SECONDS):
                await asyncio.gather(*sends)
        except TimeoutError as exc:
            raise BadRequest(503, "temporarily unable to accept data; retry later") from exc

    async def publish_bad(request: web.Request, original: bytes, error: EnvelopeError) -> web.Response:
        headers = base_headers(request, KIND_BAD_REQUEST) | {
            H_EVENT_INDEX: "0", H_BAD_ROW_TYPE: error.bad_row_type, H_REASON: redact_reason(error.reason[:1000])}
        # never an id or an IP in clear; a big body is cleaned in a thread, so other requests are served meanwhile
        clean = await asyncio.to_thread(redact_bytes, original) if len(original) > _CLEAN_INLINE_BYTES else \
            redact_bytes(original)
        await collector.publish(topic, None, clean, headers)
        return web.json_response({"error": error.reason}, status=error.status, headers=cors_headers(request))

    async def post_events(request: web.Request) -> web.Response:
        try:
            raw = await read_limited(request)
        except TooLarge as exc:
            return await publish_bad(request, exc.head, EnvelopeError(
                400, BAD_SIZE, f"body exceeds {MAX_BODY_BYTES} bytes; send smaller batches"))
        body = raw
        try:
            try:
                body = decode_body(raw, request.headers.get("Content-Encoding", ""))
            except BadRequest as exc:
                raise EnvelopeError(400, BAD_SIZE if exc.status == 413 else BAD_FORMAT, exc.reason) from exc
            events = split_payload(body)
            if len(events) > MAX_EVENTS_PER_REQUEST:
                raise EnvelopeError(400, BAD_SIZE, f"{len(events)} events in one request; send at most "
                                                   f"{MAX_EVENTS_PER_REQUEST} per request")
        except EnvelopeError as exc:
            return await publish_bad(request, body, exc)  # decoded when it could be (so an ip can be blanked)
        await publish_events(request, events)
        return web.Response(text="ok", content_type="text/plain", headers=cors_headers(request))

    async def pixel(request: web.Request) -> web.Response:
        raw_query = request.rel_url.raw_query_string
        try:
            event = query_event(raw_query)
        except EnvelopeError as exc:
            return await publish_bad(request, raw_query.encode("utf-8", "surrogateescape"), exc)
        if event:
            await publish_events(request, [event])
        else:  # answered like any pixel (it may be a probe), but counted and explained as a bad row
            await publish_bad(request, b"", EnvelopeError(200, BAD_ADAPTER, "pixel request without event parameters"))
        return web.Response(body=PIXEL, content_type="image/gif", headers=_PIXEL_HEADERS | cors_headers(request))

    async def preflight(request: web.Request) -> web.Response:
        return web.Response(headers=cors_headers(request) | {
            "Access-Control-Allow-Headers": "Content-Type, SP-Anonymous",
            "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
            "Access-Control-Max-Age": "3600",
        })

    return [
        web.post(POST_PATH, post_events),
        web.options(POST_PATH, preflight),
        *(web.get(path, pixel) for path in PIXEL_PATHS),
        *(web.options(path, preflight) for path in PIXEL_PATHS),
    ]
