"""The record contract between the collectors and the agents: what travels on Kafka, in one place.

A raw record (usage.raw.<source>) is the client's original bytes; what the collector knew about the request travels
as text headers (H_*): the receipt, the record's kind (KIND_*) and per-source extras. The agents turn it into one or
more normalized records (usage.normalized.<source>), JSON whose shapes are the typed dicts below; timestamps in them
are ISO 8601 text (Kafka values are JSON) and are read back with parse_timestamp. What no agent can use becomes one
dead letter on usage.dlq (dead_letter): the bytes, with why and where as headers, stored by the dead-letter sink as
one raw_dead_letter row (letter_row).
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict

import orjson

# ---------------------------------------------------------------------------------------------------
# Headers

# The receipt: stamped by the collector on every raw record.
H_RECEIVED_AT = "received_at"
H_SOURCE = "source"
H_KIND = "kind"
H_REQUEST_ID = "request_id"
H_COLLECTOR = "collector"
# Per source.
H_PING_ID = "ping_id"  # service_ping, kind ping: the id the collector answered (ping_id_for)
H_CLIENT_GEO = "client_geo"  # snowplow: coarse location resolved at the edge ("country|region|city"); never the IP
H_USERAGENT = "useragent"  # snowplow
H_EVENT_INDEX = "event_index"  # snowplow: the event's index in its request; comma-separated for KIND_EVENTS
H_BAD_ROW_TYPE = "bad_row_type"  # snowplow, kind bad_request: the bad row's schema
H_REASON = "reason"  # snowplow bad_request and every dead letter: why
# Dead letters (besides H_SOURCE, H_REASON, H_RECEIVED_AT).
H_STAGE = "stage"
H_FAILED_AT = "failed_at"
H_KAFKA_TOPIC = "kafka_topic"
H_KAFKA_PARTITION = "kafka_partition"
H_KAFKA_OFFSET = "kafka_offset"
H_PART = "part"  # which event of a multi-event record failed

# ---------------------------------------------------------------------------------------------------
# Kinds (H_KIND)

KIND_PING, KIND_ERROR, KIND_METADATA = "ping", "error", "metadata"  # service_ping
KIND_EVENTS = "events"  # snowplow: a JSON array of one request's events for one user (what the collector writes)
KIND_EVENT = "event"  # snowplow: one event (other producers)
KIND_BAD_REQUEST = "bad_request"  # snowplow: a request without usable events; H_BAD_ROW_TYPE and H_REASON say why
KIND_REPORT = "report"  # seat_link
# version_check: the request format ("json", "svg" or "png")


def receipt(source: str, kind: str, collector: str) -> dict[str, str]:
    """The headers every raw record gets from the collector that accepted it."""
    return {
        H_RECEIVED_AT: timestamp_text(datetime.now(UTC), "milliseconds"),
        H_SOURCE: source,
        H_KIND: kind,
        H_REQUEST_ID: uuid.uuid4().hex,
        H_COLLECTOR: collector,
    }


def event_headers(event: Any) -> dict[str, str]:
    """A Faust event's Kafka headers as text. Other producers may publish anything: bytes that are not UTF-8 are
    replaced, never allowed to raise (one such header used to stop every agent on its partition)."""
    raw = event.headers or {}
    items = raw.items() if isinstance(raw, dict) else raw
    return {_text(k): _text(v) for k, v in items}


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def received_at(headers: dict[str, str]) -> datetime:
    try:
        return parse_timestamp(headers[H_RECEIVED_AT])
    except (KeyError, ValueError):
        return datetime.now(UTC)  # published straight to the topic by another producer


def as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return value.encode() if isinstance(value, str) else orjson.dumps(value)


# ---------------------------------------------------------------------------------------------------
# Ids and timestamps


def stable_id(*parts: str) -> int:
    """A positive 63-bit id derived from its parts: the same ping always gets the same id."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 1) or 1


def ping_id_for(payload: Any, body: bytes) -> int:
    """Id the collector answers with. uuid + recorded_at identify a ping (the reference idempotency key)."""
    if isinstance(payload, dict) and payload.get("uuid") and payload.get("recorded_at"):
        return stable_id(str(payload["uuid"]), str(payload["recorded_at"]))
    return stable_id("body", hashlib.sha256(body).hexdigest())


def ping_id(headers: dict[str, str], payload: Any, body: bytes) -> int:
    """A raw ping's id: the one the collector answered (H_PING_ID), else (another producer) derived like it."""
    text = headers.get(H_PING_ID, "")
    if text.isascii() and text.isdigit() and 0 < int(text) < 2**63:
        return int(text)
    return ping_id_for(payload, body)


def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 time (also with a space or a Z) as an aware UTC datetime; naive text is taken as UTC."""
    value = datetime.fromisoformat(text.strip().replace(" ", "T", 1).replace("Z", "+00:00"))
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


def timestamp_text(value: datetime, timespec: str = "auto") -> str:
    """How a time travels in headers and normalized records."""
    return value.isoformat(timespec=timespec)


# ---------------------------------------------------------------------------------------------------
# Normalized records (usage.normalized.<source>)

IsoTime = str  # a timestamp as timestamp_text wrote it
IsoDate = str


class Position(TypedDict):
    """Where a raw record was read; `part` is the event's index when the record held several."""

    topic: NotRequired[str]
    partition: int
    offset: int
    part: NotRequired[int]


class PingRecord(TypedDict):
    """service_ping, kind ping: `ping` is one fct_ping_instance row (recorded_at, received_at: IsoTime), `metrics`
    its metric columns; `raw` the original JSON. Big pings travel cut into parts (agents/service_ping.py)."""

    kind: str
    ping: dict[str, Any]
    metrics: dict[str, Any]
    raw: str
    source: Position


class PingReportRecord(TypedDict):
    """service_ping, kinds error and metadata: one error report or one metric timing report."""

    kind: str
    report: dict[str, Any]


class SeatLinkRecord(TypedDict):
    seat_link_id: int
    license_md5: str
    license_sha256: str
    instance_uuid: str
    unique_instance_id: str
    hostname: str
    installation_id: str
    gitlab_version: str
    report_timestamp: IsoTime
    report_date: IsoDate
    active_user_count: int | None
    max_historical_user_count: int | None
    license_user_count: int | None
    add_on_metrics: str  # JSON text
    payload_generation: str
    received_at: IsoTime
    payload: NotRequired[str]  # the report as received, license key hashed (added by the agent)


class VersionCheckRecord(TypedDict):
    check_id: int
    checked_at: IsoTime
    version: str
    major_version: int
    minor_version: int
    patch_version: int
    prerelease: str
    edition: str
    host: str
    severity: str
    latest_version: str
    request_format: str


class SnowplowRecord(TypedDict):
    """One enriched event: `row` a fct_behavior_structured_event row (timestamps IsoTime), `raw` the event's
    pseudonymized JSON, `receipt` the collector's receipt without the IP. Travel in JSON arrays of records."""

    row: dict[str, Any]
    raw: str
    receipt: dict[str, Any]
    source: Position


# ---------------------------------------------------------------------------------------------------
# Dead letters (usage.dlq)


def dead_letter(source: str, stage: str, reason: str, position: Position, received: str | None = None,
                failed_at: datetime | None = None) -> dict[str, bytes]:
    """The headers of a dead letter, encoded for Kafka; its value is the failed bytes (redacted by the caller).
    `received`: the failed record's receipt time (H_RECEIVED_AT), now when unknown."""
    now = failed_at or datetime.now(UTC)
    headers = {
        H_SOURCE: source, H_STAGE: stage, H_REASON: reason,
        H_RECEIVED_AT: received or timestamp_text(now), H_FAILED_AT: timestamp_text(now),
        H_KAFKA_TOPIC: position.get("topic", ""), H_KAFKA_PARTITION: str(position["partition"]),
        H_KAFKA_OFFSET: str(position["offset"]),
    }
    if "part" in position:
        headers[H_PART] = str(position["part"])
    return {name: text.encode() for name, text in headers.items()}
