"""Snowplow tracker protocol: validate -> decode -> enrich each event for the agent, and the bad-row types. How the
collector reads a request into events and Kafka records: streams/enrich/snowplow_requests.py.

Pure functions, no I/O. Terms follow Snowplow's: a POST body is a `payload_data` self-describing JSON whose
`data` is a list of events; each event is a flat object of string parameters (`e`, `eid`, `tv`, `p`, `dtm`,
`stm`, `se_ca`, ...); entities ("contexts") travel in `co` (JSON) or `cx` (URL-safe base64 JSON), a
self-describing event in `ue_pr` / `ue_px`. Events that cannot be used raise `BadEvent` with the type of
Snowplow bad row they would be and the failure messages; `bad_row` renders that as JSON.

Identity and duplicates: `event_id` is the tracker's `eid`. `event_fingerprint` hashes the event's parameters
without `stm`, `eid`, `nuid` and `cv` (Snowplow's default fingerprint exclusions: a tracker retry resends the
same event with a new `stm`), so two copies with the same eid and fingerprint are exact duplicates.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from jsonschema import Draft7Validator

from streams.enrich.fastschema import CompiledValidator
from streams.enrich.geo import Location, locate
from streams.enrich.iglu import SNOWPLOW_SCHEMAS_DIR, Registry, SchemaKey, parse_uri
from streams.enrich.limits import json_depth_exceeds, too_deep_reason
from streams.enrich.pseudonym import hashed_user
from streams.enrich.useragent import parse_user_agent

PROCESSOR = {"artifact": "denomas-usage-snowplow", "version": "0.1.0"}
SNOWPLOW_VENDOR = "com.snowplowanalytics.snowplow"
DENOMAS_VENDOR = "com.denomas"
DENOMAS_STANDARD = ("com.denomas", "denomas_standard")

EVENT_TYPES = {"se": "struct", "ue": "unstruct", "pv": "page_view", "pp": "page_ping", "tr": "transaction",
               "ti": "transaction_item"}
# Snowplow's default event-fingerprint exclusions.
FINGERPRINT_EXCLUDED = frozenset({"stm", "eid", "nuid", "cv"})

# Bad-row types (Snowplow's, plus one of ours for an event_id that arrives again with other content).
_BADROWS = "iglu:com.snowplowanalytics.snowplow.badrows"
BAD_FORMAT = f"{_BADROWS}/collector_payload_format_violation/jsonschema/1-0-0"
BAD_SIZE = f"{_BADROWS}/size_violation/jsonschema/1-0-0"
BAD_ADAPTER = f"{_BADROWS}/adapter_failures/jsonschema/1-0-0"
BAD_PROTOCOL = f"{_BADROWS}/tracker_protocol_violations/jsonschema/1-0-0"
BAD_SCHEMA = f"{_BADROWS}/schema_violations/jsonschema/2-0-0"
BAD_ENRICHMENT = f"{_BADROWS}/enrichment_failures/jsonschema/2-0-0"
BAD_CONFLICT = "iglu:com.denomas.badrows/event_id_conflict/jsonschema/1-0-0"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)  # ClickHouse DateTime64 ends in 2299; later device times are garbage
_MAX_MESSAGES, _MAX_MESSAGE_CHARS, _MAX_UA_CHARS = 5, 240, 200
_DERIVED_ID_NAMESPACE = uuid.UUID("6f1d3c1e-2b7a-4c55-9a3e-5d0b1c2e7f40")

_PROTOCOL = CompiledValidator(Draft7Validator(orjson.loads(
    (SNOWPLOW_SCHEMAS_DIR / "tracker_protocol_event.schema.json").read_bytes())), draft=7)


class BadEvent(Exception):
    """One event that cannot be used; `bad_row_type` is the Snowplow bad-row schema it maps to."""

    def __init__(self, bad_row_type: str, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.bad_row_type, self.messages = bad_row_type, messages


# ---------------------------------------------------------------------------------------------------
# The tracker's `ip` parameter: the collector takes it out at the edge, the agent whatever another producer left in.


def take_ip(event: Any) -> str | None:
    """Remove the tracker's `ip` parameter (it overrides the connection's address, as in Snowplow)."""
    if isinstance(event, dict):
        value = event.pop("ip", None)
        return value if isinstance(value, str) and value else None
    return None


# ---------------------------------------------------------------------------------------------------
# Decoding self-describing JSON (contexts and self-describing events).


def b64decode_any(text: str) -> bytes:
    """Standard or URL-safe base64, padded or not (trackers differ)."""
    cleaned = text.strip().replace("-", "+").replace("_", "/").rstrip("=")
    return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)


def _self_describing_param(event: dict, plain: str, encoded: str) -> Any:
    if plain in event:
        name, text = plain, event[plain]
    elif encoded in event:
        name = encoded
        if not isinstance(event[encoded], str):  # JSON lets it be anything; only text is base64
            raise BadEvent(BAD_SCHEMA, [f"{name}: expected a base64 string, got {type(event[encoded]).__name__}"])
        try:
            text = b64decode_any(event[encoded]).decode()
        except (binascii.Error, ValueError) as exc:
            raise BadEvent(BAD_SCHEMA, [f"{name}: not valid base64: {exc}"]) from exc
    else:
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise BadEvent(BAD_SCHEMA, [f"{name}: not valid JSON: {exc}"]) from exc
    if json_depth_exceeds(value):
        raise BadEvent(BAD_SCHEMA, [f"{name}: {too_deep_reason()}"])
    return value


def _is_self_describing(value: Any) -> bool:
    return isinstance(value, dict) and parse_uri(value.get("schema")) is not None and "data" in value


def _envelope(value: Any, param: str, name: str) -> Any:
    key = parse_uri(value.get("schema")) if isinstance(value, dict) else None
    if key is None or (key.vendor, key.name, key.model) != (SNOWPLOW_VENDOR, name, 1) or "data" not in value:
        expected = f"iglu:{SNOWPLOW_VENDOR}/{name}/jsonschema/1-*-*"
        raise BadEvent(BAD_SCHEMA, [f"{param}: expected a self-describing {expected} JSON with data"])
    return value["data"]


def decode_contexts(event: dict) -> list[dict]:
    """The entities of `co` / `cx` as a list of self-describing JSONs ({schema, data})."""
    value = _self_describing_param(event, "co", "cx")
    if value is None:
        return []
    entities = _envelope(value, "co" if "co" in event else "cx", "contexts")
    if not isinstance(entities, list) or not all(_is_self_describing(e) for e in entities):
        raise BadEvent(BAD_SCHEMA, ["contexts: data must be a list of self-describing JSONs {schema: iglu URI, data}"])
    return entities


def decode_unstruct(event: dict) -> dict | None:
    """The self-describing event of `ue_pr` / `ue_px` ({schema, data})."""
    value = _self_describing_param(event, "ue_pr", "ue_px")
    if value is None:
        return None
    inner = _envelope(value, "ue_pr" if "ue_pr" in event else "ue_px", "unstruct_event")
    if not _is_self_describing(inner):
        raise BadEvent(BAD_SCHEMA, ["unstruct_event: data must be a self-describing JSON {schema: iglu URI, data}"])
    return inner


def _key(entity: dict) -> SchemaKey:
    key = parse_uri(entity["schema"])
    assert key is not None  # checked by _is_self_describing
    return key


def standard_context(entities: list[dict]) -> dict:
    """Data of the Denomas standard context, {} when the event has none."""
    found = [e["data"] for e in entities if (_key(e).vendor, _key(e).name) == DENOMAS_STANDARD]
    if len(found) > 1:
        raise BadEvent(BAD_SCHEMA, [f"{len(found)} denomas_standard contexts; an event carries at most one"])
    return found[0] if found and isinstance(found[0], dict) else {}


def schema_errors(registry: Registry, entity: dict, where: str) -> list[str]:
    """Validate a self-describing JSON. Our vendor's schemas must resolve; other vendors' are kept unvalidated."""
    key = _key(entity)
    validator = registry.validator(key)
    if validator is None:
        if key.vendor == DENOMAS_VENDOR or key.vendor.startswith(DENOMAS_VENDOR + "."):
            return [f"{where} {key.uri}: schema not found in the registry"]
        return []
    return [f"{where} {key.uri}: {error.json_path}: {error.message}"
            for error in sorted(validator.iter_errors(entity["data"]), key=lambda e: list(e.path))]


# ---------------------------------------------------------------------------------------------------
# Validation, timestamps, the enriched row.


def protocol_errors(event: Any) -> list[str]:
    if not isinstance(event, dict):
        return [f"an event must be an object of string parameters, got {type(event).__name__}"]
    return [f"{error.json_path}: {error.message}"[:_MAX_MESSAGE_CHARS]
            for error in sorted(_PROTOCOL.iter_errors(event), key=lambda e: list(e.path))]


def epoch_ms(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    ms = int(value)  # the protocol schema allows digits only
    if not (0 <= ms < (_LATEST - _EPOCH) // timedelta(milliseconds=1)):
        raise BadEvent(BAD_PROTOCOL, [f"{name}: {value} is not a plausible epoch-milliseconds timestamp"])
    return ms


def derived_tstamp_ms(collector_ms: int, created_ms: int | None, sent_ms: int | None, true_ms: int | None) -> int:
    """Snowplow's derived_tstamp, clamped to never be after the collector received the event.

    A user-set true timestamp wins; else the device's own delay (sent - created) is taken off the
    collector time, which cancels the device clock's skew; else the collector time.
    """
    if true_ms is not None:
        derived = true_ms
    elif created_ms is not None and sent_ms is not None and created_ms <= sent_ms:
        derived = collector_ms - (sent_ms - created_ms)
    else:
        derived = collector_ms
    return max(0, min(derived, collector_ms))


def to_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def iso_ms(ms: int | None) -> str | None:
    return None if ms is None else from_ms(ms).isoformat(timespec="milliseconds")


def fingerprint(event: dict) -> int:
    content = {k: v for k, v in event.items() if k not in FINGERPRINT_EXCLUDED}
    return int.from_bytes(hashlib.blake2b(orjson.dumps(content, option=orjson.OPT_SORT_KEYS),
                                          digest_size=8).digest(), "big")


@dataclass(frozen=True)
class Receipt:
    """What the collector stamped on a raw record. `ip` is used for the geo lookup only, never returned."""

    collector_tstamp: datetime
    request_id: str = ""
    event_index: int = 0
    collector: str = ""
    useragent: str = ""
    ip: str | None = None
    location: Location | None = None  # resolved by the collector; then no IP exists downstream at all

    def public(self) -> dict[str, Any]:
        """The receipt without the IP: what bad rows and normalized records may carry."""
        return {"collector": self.collector,
                "collector_tstamp": self.collector_tstamp.isoformat(timespec="milliseconds"),
                "request_id": self.request_id, "event_index": self.event_index,
                "useragent": self.useragent[:_MAX_UA_CHARS]}


def event_id_for(event: dict, receipt: Receipt) -> str:
    eid = event.get("eid")
    if eid:
        return str(uuid.UUID(eid))  # canonical lower-case form; the protocol schema checked the shape
    # Snowplow generates a missing id; ours is derived from the receipt and content, so a replay keeps it.
    return str(uuid.uuid5(_DERIVED_ID_NAMESPACE, f"{receipt.request_id}/{receipt.event_index}/{fingerprint(event)}"))


def as_str(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def _uint(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _json_or_empty(value: Any) -> str:
    return "" if value is None else orjson.dumps(value).decode()


def normalize_event(event: Any, receipt: Receipt, registry: Registry, key: bytes | None = None) -> dict[str, Any]:
    """One tracker event -> one fct_behavior_structured_event row (JSON-ready). Raises BadEvent."""
    errors = protocol_errors(event)
    if errors:
        raise BadEvent(BAD_PROTOCOL, errors)
    entities = decode_contexts(event)
    unstruct = decode_unstruct(event) if event["e"] == "ue" else None
    errors = [m for i, e in enumerate(entities) for m in schema_errors(registry, e, f"contexts[{i}]")]
    if unstruct is not None:
        errors += schema_errors(registry, unstruct, "unstruct_event")
    if errors:
        raise BadEvent(BAD_SCHEMA, errors)
    standard = standard_context(entities)
    others = [e for e in entities if (_key(e).vendor, _key(e).name) != DENOMAS_STANDARD]

    collector_ms = to_ms(receipt.collector_tstamp)
    created_ms, sent_ms = epoch_ms(event.get("dtm"), "dtm"), epoch_ms(event.get("stm"), "stm")
    true_ms = epoch_ms(event.get("ttm"), "ttm")
    derived_ms = derived_tstamp_ms(collector_ms, created_ms, sent_ms, true_ms)
    value = float(event["se_va"]) if event.get("se_va", "").strip() else None
    if value is not None and not math.isfinite(value):
        raise BadEvent(BAD_PROTOCOL, [f"se_va: {event['se_va']!r} is not a finite number"])
    location = receipt.location if receipt.location is not None else locate(receipt.ip)
    user = standard.get("user_id")
    return {
        "event_id": event_id_for(event, receipt),
        "app_id": event.get("aid", ""), "platform": event["p"], "event_type": EVENT_TYPES[event["e"]],
        "event_category": event.get("se_ca", ""), "event_action": event.get("se_ac", ""),
        "event_label": event.get("se_la", ""), "event_property": event.get("se_pr", ""), "event_value": value,
        "event_schema": unstruct["schema"] if unstruct else "",
        "event_data": _json_or_empty(unstruct["data"]) if unstruct else "",
        "collector_tstamp": iso_ms(collector_ms), "dvce_created_tstamp": iso_ms(created_ms),
        "dvce_sent_tstamp": iso_ms(sent_ms), "true_tstamp": iso_ms(true_ms), "derived_tstamp": iso_ms(derived_ms),
        "behavior_date": from_ms(derived_ms).date().isoformat(),
        "user_hash": hashed_user(user if user not in (None, "") else event.get("uid"), key),  # ids are pseudonyms
        "namespace_id": _uint(standard.get("namespace_id")),
        "ultimate_parent_namespace_id": _uint(standard.get("ultimate_parent_namespace_id")),
        "project_id": _uint(standard.get("project_id")),
        **{name: as_str(standard.get(name)) for name in ("plan", "environment", "source", "realm", "deployment_type",
                                                      "instance_id", "host_name", "instance_version")},
        "context_extra": _json_or_empty(standard.get("extra")),
        "contexts": _json_or_empty(others) if others else "",
        "geo_country": location.country, "geo_region": location.region, "geo_city": location.city,
        **parse_user_agent(event.get("ua") or receipt.useragent).columns(),
        "tracker_version": event["tv"], "name_tracker": event.get("tna", ""),
        "page_url": event.get("url", ""), "page_title": event.get("page", ""),
        "page_referrer": event.get("refr", ""),
        "event_fingerprint": fingerprint(event),
    }


def bad_row(bad_row_type: str, messages: list[str], receipt: dict[str, Any], failed_at: datetime) -> str:
    """A Snowplow-shaped bad row (processor, failure, payload metadata) as compact JSON, under 2000 characters.

    The payload's bytes are not repeated here: the dead-letter record carries them as `original`.
    """
    shown = [m[:_MAX_MESSAGE_CHARS] for m in messages[:_MAX_MESSAGES]]
    if len(messages) > _MAX_MESSAGES:
        shown.append(f"... and {len(messages) - _MAX_MESSAGES} more")
    document = {
        "schema": bad_row_type,
        "data": {
            "processor": PROCESSOR,
            "failure": {"timestamp": failed_at.isoformat(timespec="milliseconds"), "messages": shown},
            "payload": receipt,
        },
    }
    return orjson.dumps(document).decode()
