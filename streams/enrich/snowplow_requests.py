"""Snowplow tracker requests as the collector reads them (streams/collector/snowplow.py): the events of a POST
body (`payload_data`) or of a GET /i query string, and a request's events grouped into raw Kafka records by partition
key (the user's keyed hash, else the namespace, else the event id). A body with no usable events is an
`EnvelopeError`: the collector dead-letters it and answers its status. What the agent does with each event:
streams/enrich/snowplow.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson

from streams.enrich.iglu import parse_uri
from streams.enrich.limits import json_depth_exceeds, too_deep_reason
from streams.enrich.pseudonym import hashed_user
from streams.enrich.snowplow import (
    BAD_ADAPTER,
    BAD_FORMAT,
    SNOWPLOW_VENDOR,
    BadEvent,
    as_str,
    decode_contexts,
    standard_context,
)

PAYLOAD_DATA_SCHEMA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"


class EnvelopeError(Exception):
    """A request body that holds no usable events: the collector dead-letters it and answers `status`."""

    def __init__(self, status: int, bad_row_type: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.bad_row_type, self.reason = status, bad_row_type, reason


def split_payload(body: bytes) -> list[Any]:
    """The events of a POST body (`payload_data`): 400 when it is not JSON, 422 when it is not payload_data."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError(400, BAD_FORMAT, f"body is not valid JSON: {exc}") from exc
    if json_depth_exceeds(document):
        raise EnvelopeError(400, BAD_FORMAT, f"body is {too_deep_reason()}")
    if not isinstance(document, dict):
        raise EnvelopeError(422, BAD_ADAPTER, f"expected a payload_data object, got {type(document).__name__}")
    key = parse_uri(document.get("schema"))
    if key is None or (key.vendor, key.name, key.format, key.model) != (SNOWPLOW_VENDOR, "payload_data",
                                                                        "jsonschema", 1):
        raise EnvelopeError(422, BAD_ADAPTER, f"schema must be {PAYLOAD_DATA_SCHEMA} (model 1), "
                                              f"got {str(document.get('schema'))[:200]!r}")
    data = document.get("data")
    if not isinstance(data, list) or not data:
        raise EnvelopeError(422, BAD_ADAPTER, "payload_data needs a non-empty array of events in data")
    return data


def query_event(raw_query: str) -> dict[str, str]:
    """The event of a GET /i request (first value of a repeated parameter wins); {} when there is none."""
    try:
        raw_query.encode("utf-8")  # raw bytes that are not UTF-8 arrive as lone surrogates
        pairs = parse_qsl(raw_query, keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise EnvelopeError(400, BAD_FORMAT, f"query string is not valid UTF-8 form encoding: {exc}") from exc
    event: dict[str, str] = {}
    for name, value in pairs:
        event.setdefault(name, value)
    return event


def partition_key(event: Any, key: bytes | None = None) -> str | None:
    """Kafka key: the user (keyed hash), else the namespace, else the event id, so copies of an event meet."""
    if not isinstance(event, dict):
        return None
    try:
        standard = standard_context(decode_contexts(event))
    except BadEvent:
        standard = {}
    user = standard.get("user_id")
    hashed = hashed_user(user if user not in (None, "") else as_str(event.get("uid")) or None, key)
    if hashed:
        return f"u:{hashed:016x}"
    namespace = standard.get("namespace_id")
    if isinstance(namespace, int) and not isinstance(namespace, bool) and namespace > 0:
        return f"n:{namespace}"
    eid = event.get("eid")
    return f"e:{eid.lower()}" if isinstance(eid, str) and eid else None


def request_records(events: list[Any], locate_event: Callable[[Any], str | None],
                    key: bytes | None = None) -> list[tuple[str | None, str | None, list[int], list[Any]]]:
    """A request's events as raw records: one per (Kafka key, location), each (key, location, indexes, events).

    One record per request and user, as Snowplow's collector keeps a request together: the per-record cost
    of the broker and of Faust is paid once per request, not once per event. `locate_event` takes the
    event's `ip` parameter out and returns its encoded location (None for none).
    """
    groups: dict[tuple[str | None, str | None], tuple[list[int], list[Any]]] = {}
    for index, event in enumerate(events):
        location = locate_event(event)
        indexes, members = groups.setdefault((partition_key(event, key), location), ([], []))
        indexes.append(index)
        members.append(event)
    return [(k, location, indexes, members) for (k, location), (indexes, members) in groups.items()]
