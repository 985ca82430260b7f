"""Seat Link agents.

  usage.raw.seat_link --normalize_seat_link--> usage.normalized.seat_link --seat_link_sink--> fct_seat_link
                              \\--> usage.dlq (not JSON, schema, unusable timestamp; key hashed, never in clear)
"""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson

from streams.agents.common import AgentContext, Rejected, sink_batches, write_with_retry
from streams.agents.normalizing import normalize_batches
from streams.alerts.landed import seat_link_scopes
from streams.config import TOPIC_NORMALIZED_SEAT_LINK, TOPIC_RAW_SEAT_LINK
from streams.enrich.limits import json_depth_exceeds
from streams.enrich.seat_link import KEY_FIELD, hash_license_key, normalize_seat_link, validation_errors
from streams.records import SeatLinkRecord, received_at
from streams.warehouse.writers import write_seat_links

log = logging.getLogger(__name__)

CONSUMED_TOPICS = [TOPIC_RAW_SEAT_LINK, TOPIC_NORMALIZED_SEAT_LINK]


# A JSON string literal, closed or cut off by the end of the bytes, and whether a colon follows it (a key).
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*(?:"|\\?$)(\s*:)?')

_BARE_TEXT = re.compile(rb"[A-Za-z0-9+/=_\-]{16,}")  # an unquoted token as long as a key could be


def redact(value: bytes) -> bytes:
    """The bytes a dead letter may keep: never a license key in clear, whatever another producer sent.

    A JSON document keeps its shape with every `license_key`, at any depth, hashed; bytes that are not such a
    document (truncated JSON, too deep, not JSON) keep their keys and numbers but every string value is blanked."""
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError:
        return blank_string_values(value)
    if json_depth_exceeds(document):
        return blank_string_values(value)
    hashed = _hash_keys_anywhere(document)
    return value if hashed == document else orjson.dumps(hashed)


def blank_string_values(value: bytes) -> bytes:
    """String values blanked; bytes with a long unquoted token outside strings (not JSON) are not kept."""
    blanked = _STRING.sub(lambda m: m.group(0) if m.group(1) else b'"[redacted]"', value)
    if _BARE_TEXT.search(_STRING.sub(b"", blanked)):
        return f"[redacted: {len(value)} bytes that are not JSON]".encode()
    return blanked


def _hash_keys_anywhere(value: Any) -> Any:
    if isinstance(value, list):
        return [_hash_keys_anywhere(item) for item in value]
    if isinstance(value, dict):
        hashed = hash_license_key(value) if KEY_FIELD in value else value  # hashes already there stay
        return {name: _hash_keys_anywhere(item) for name, item in hashed.items()}
    return value


def normalize(value: bytes, headers: dict[str, str], message: Any = None) -> SeatLinkRecord:
    """Raw record -> fct_seat_link record (pure; raises Rejected for anything that cannot be used)."""
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise Rejected("validate", f"not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise Rejected("validate", f"expected a JSON object, got {type(document).__name__}")
    report = hash_license_key(document) if KEY_FIELD in document else document
    errors = validation_errors(report)
    if errors:
        raise Rejected("validate", "schema: " + "; ".join(errors))
    try:
        record = normalize_seat_link(report, received_at(headers))
    except ValueError as exc:
        raise Rejected("normalize", str(exc)) from exc
    record["payload"] = orjson.dumps(report).decode() if report is not document else value.decode()
    return record


def register(ctx: AgentContext) -> None:
    raw = ctx.topic(TOPIC_RAW_SEAT_LINK)
    normalized = ctx.topic(TOPIC_NORMALIZED_SEAT_LINK)
    warehouse, settings = ctx.warehouse, ctx.settings

    @ctx.app.agent(raw, name="normalize_seat_link")
    async def normalize_seat_link_agent(stream: Any) -> None:
        await normalize_batches(ctx, stream, "seat_link", normalize, normalized, redact)

    async def write(records: list[dict]) -> None:
        counts = await write_with_retry(lambda: write_seat_links(warehouse, records), "seat links", warehouse)
        await ctx.announce_landed("seat_link", seat_link_scopes(records))  # alert evaluation (streams/alerts)
        ctx.stats.add(**counts)
        log.info("stored %s", counts)

    @ctx.app.agent(normalized, name="seat_link_sink")
    async def seat_link_sink(stream: Any) -> None:
        await sink_batches(ctx, stream, "seat_link", write, settings.sink_batch_size, settings.sink_batch_seconds)
