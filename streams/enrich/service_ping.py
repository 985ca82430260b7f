"""Pure Service Ping logic: ids, validation, version parsing, flattening, normalization.

No I/O here, so the agents, backfills and tests share exactly one implementation.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Any

import orjson
from jsonschema import Draft202012Validator, FormatChecker

from streams.config import SCHEMAS_DIR
from streams.enrich.metric_dictionary import MetricDictionary
from streams.records import parse_timestamp

# Identifiers that happen to be numbers: kept as columns of the ping, never as metric values
# (pg_system_id also exceeds the 2^53 that a Float64 holds exactly).
IDENTITY_PATHS = frozenset({"database.pg_system_id", "license_id"})
# Service Ping's fallback values (-1 timeout/failure, -2 error, -1000 deprecated metric): error markers, never counts.
ERROR_MARKERS = frozenset({-1, -2, -1000})
# Float64 (metric_value) holds every integer exactly only up to 2^53: a value beyond that is flagged, not rounded.
EXACT_LIMIT = 2**53
# How to read a metric row (value_kind): a count, an indicator stored as 1/0, or a flagged value that is no count.
NUMBER, BOOLEAN, ERROR_MARKER, NEGATIVE, TOO_LARGE = "number", "boolean", "error_marker", "negative", "too_large"


def installation_id_for(uuid: str, hostname: str | None) -> str:
    """An installation is the unique combination of instance uuid and hostname."""
    return hashlib.md5(f"{uuid}|{hostname or ''}".encode()).hexdigest()


# ---------------------------------------------------------------------------------------------------
# Validation


@cache
def _validator() -> Draft202012Validator:
    schema = orjson.loads((SCHEMAS_DIR / "service_ping.schema.json").read_bytes())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def validation_errors(payload: Any) -> list[str]:
    """Human-readable schema violations, each naming the JSON path; empty when valid."""
    errors = sorted(_validator().iter_errors(payload), key=lambda e: list(e.absolute_path))
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in errors[:10]]


# ---------------------------------------------------------------------------------------------------
# Version and timestamps

_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:[-+]([0-9A-Za-z.+-]*))?$")


@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int
    prerelease: str  # e.g. "pre", "rc1"; empty for a release
    edition_suffix: str  # "ee" for "17.2.1-ee", else empty

    @property
    def is_prerelease(self) -> bool:
        return bool(self.prerelease)


def parse_version(text: str) -> Version:
    match = _VERSION.match(text.strip())
    if not match:
        raise ValueError(f"not a version: {text!r}")
    major, minor, patch, suffix = match.groups()
    tags = [t for t in re.split(r"[-+.]", suffix or "") if t]
    edition = "ee" if "ee" in (t.lower() for t in tags) else ""
    prerelease = ".".join(t for t in tags if t.lower() != "ee")
    return Version(int(major), int(minor), int(patch), prerelease, edition)


def _parse_date(value: Any) -> date | None:
    if not value or not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def product_tier(edition: str | None, license_expires_at: date | None, recorded_at: datetime) -> str:
    """The reference model's tier rule (an expired license counts as Free)."""
    if edition in (None, "", "CE", "EE Free"):
        return "Free"
    if license_expires_at and license_expires_at < recorded_at.date():
        return "Free"
    return {"EE": "Starter", "EES": "Starter", "EEP": "Premium", "EEU": "Ultimate"}.get(edition, "Unknown")


# ---------------------------------------------------------------------------------------------------
# Flattening


def _segment(name: str, root: bool) -> str:
    """One key as a path segment. Keys that are empty or hold '.', '[' or ']' are written ['key'] (backslash
    escapes ' and \\ inside), the bracket notation of Snowflake's own path syntax: `{"a.b": 1}` is `['a.b']`, never
    the `a.b` of `{"a": {"b": 1}}`, and no key can pose as a list index."""
    if name and "." not in name and "[" not in name and "]" not in name:
        return name if root else "." + name
    return "['" + name.replace("\\", "\\\\").replace("'", "\\'") + "']"


def _quoted_children(path: str, mapping: dict) -> tuple[str, Iterator[tuple[str, Any]]]:
    """(prefix, (name, value) items) of an object with odd keys at `path`: each leaf's path is prefix + name."""
    return path, iter([(_segment(name, not path), value) for name, value in mapping.items()])


def flatten_columns(payload: dict) -> tuple[list[str], list[int | float], list[int]]:
    """Every numeric leaf as two columns, paths and values, in document order, plus the positions of the
    booleans among them (stored as 1/0). Paths are dotted, list items path[i], odd keys ['key'] (_segment).

    Pings carry thousands of leaves and this is the hot loop: iterative (payloads are client-controlled, so
    no recursion), with a stack of (path prefix, children iterator) so a container's leaves are appended as
    they are met instead of each being pushed and popped; a nested container suspends its parent.
    """
    paths: list[str] = []
    values: list[int | float] = []
    booleans: list[int] = []
    add_path, add_value = paths.append, values.append
    stack: list[tuple[str, Iterator[tuple[str, Any]]]] = [("", iter(payload.items()))]
    if any("." in key or "[" in key or "]" in key or not key for key in payload):
        stack = [_quoted_children("", payload)]
    while stack:
        prefix, children = stack[-1]
        for name, value in children:
            kind = type(value)
            if kind is int or kind is float:
                path = prefix + name
                if path not in IDENTITY_PATHS:
                    add_path(path)
                    add_value(value)
            elif kind is dict:
                keys = "".join(value)  # one check per object, at C speed: nearly every key is a plain name
                if "." in keys or "[" in keys or "]" in keys or "" in value:
                    stack.append(_quoted_children(prefix + name, value))
                else:
                    stack.append((f"{prefix}{name}.", iter(value.items())))
                break
            elif kind is list:
                stack.append((prefix + name, zip([f"[{index}]" for index in range(len(value))], value, strict=True)))
                break
            elif kind is bool:
                booleans.append(len(paths))
                add_path(prefix + name)
                add_value(int(value))
        else:
            stack.pop()  # children exhausted
    return paths, values, booleans


# ---------------------------------------------------------------------------------------------------
# Normalization: one validated payload -> the ping row and its metric rows


def _int_or_none(value: Any) -> int | None:
    return value if type(value) is int else None


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def normalize_ping(payload: dict, dictionary: MetricDictionary, ping_id: int, received_at: datetime,
                   body: bytes | None = None) -> dict:
    """The normalized record for `usage.normalized.service_ping`: JSON-ready, dates as ISO strings.
    `body` (the raw bytes) lets a flagged value keep its exact literal (see exact_literals)."""
    uuid = payload["uuid"]
    hostname = _str(payload.get("hostname"))
    recorded_at = parse_timestamp(payload["recorded_at"])
    version = parse_version(payload["version"])
    edition = _str(payload.get("edition")) or "CE"
    license_expires_at = _parse_date(payload.get("license_expires_at"))
    database = payload.get("database") if isinstance(payload.get("database"), dict) else {}
    pg_system_id = database.get("pg_system_id")
    metrics = metric_columns(*flatten_columns(payload), dictionary)
    if body is not None:
        exact_literals(metrics, body)
    ping = {
        "ping_id": ping_id,
        "installation_id": installation_id_for(uuid, hostname),
        "instance_uuid": uuid,
        "hostname": hostname,
        "recorded_at": recorded_at.isoformat(),
        "received_at": received_at.isoformat(),
        "version": payload["version"],
        "major_version": version.major,
        "minor_version": version.minor,
        "patch_version": version.patch,
        "prerelease": version.prerelease,
        "version_edition": version.edition_suffix,
        "edition": edition,
        "main_edition": "CE" if edition == "CE" else "EE",
        "product_tier": product_tier(edition, license_expires_at, recorded_at),
        "installation_type": _str(payload.get("installation_type")),
        "active_user_count": _int_or_none(payload.get("active_user_count")),
        "historical_max_users": _int_or_none(payload.get("historical_max_users")),
        "license_user_count": _int_or_none(payload.get("license_user_count")),
        "license_billable_users": _int_or_none(payload.get("license_billable_users")),
        "license_md5": _str(payload.get("license_md5")),
        "license_sha256": _str(payload.get("license_sha256")),
        "license_id": _int_or_none(payload.get("license_id")),
        "license_subscription_id": _str(payload.get("license_subscription_id")),
        "license_plan": _str(payload.get("license_plan")),
        "license_trial": 1 if payload.get("license_trial") is True else 0,
        "license_starts_at": _iso(_parse_date(payload.get("license_starts_at"))),
        "license_expires_at": _iso(license_expires_at),
        "license_trial_ends_on": _iso(_parse_date(payload.get("license_trial_ends_on"))),
        "pg_system_id": pg_system_id if type(pg_system_id) is int and pg_system_id >= 0 else None,
        "metric_count": len(metrics["metrics_path"]),
        "error_metric_count": len(metrics["error_value"]) - metrics["error_value"].count(0),
        "flagged_metric_count": sum(1 for _, kind, _ in metrics["flags"] if kind in (NEGATIVE, TOO_LARGE)),
    }
    return {"ping": ping, "metrics": metrics}


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


# Definition attributes a metric row carries (MetricDictionary.row_attributes, in this order).
ATTRIBUTE_FIELDS = (
    "is_defined", "time_frame", "data_source", "product_section", "product_stage", "product_group", "tier",
    "performance_indicator_type", "metric_status",
)


def metric_columns(paths: list[str], values: list[int | float], booleans: list[int],
                   dictionary: MetricDictionary) -> dict[str, Any]:
    """The metrics of one ping, column-wise (pings carry thousands: columns serialize and insert fast).

    Each metric points at its definition attributes (ATTRIBUTE_FIELDS) by id; `attributes` holds the
    [id, attributes] pairs used. Rows that are not plain counts are listed in `flags` as [index, value_kind,
    value_text] (value_kind above): booleans keep 1/0; an error marker (exactly -1, -2 or -1000) becomes
    metric_value None + error_value; any other negative value, and any value beyond +-2^53, becomes metric_value
    None with the value as text, so no value is truncated into a marker, rounded or dropped.
    """
    ids = dictionary.attribute_ids(paths)
    table = dictionary.attributes_by_id
    # Odd values are a few among thousands of counts: patch them into otherwise plain columns.
    metric_value, error_value = values.copy(), [0] * len(values)
    flags: list[list[Any]] = [[index, BOOLEAN, ""] for index in booleans]
    odd = [index for index, value in enumerate(values) if value < 0]
    if values and max(values) > EXACT_LIMIT:  # max() runs at C speed; too large values are rarer still
        odd += [index for index, value in enumerate(values) if value > EXACT_LIMIT]
    for index in odd:
        value = values[index]
        metric_value[index] = None
        if value in ERROR_MARKERS:
            error_value[index] = int(value)
            flags.append([index, ERROR_MARKER, ""])
        else:
            flags.append([index, NEGATIVE if value < 0 else TOO_LARGE, repr(value)])
    return {
        "metrics_path": paths,
        "metric_value": metric_value,
        "error_value": error_value,
        "attribute_id": ids,
        "attributes": [[i, table[i]] for i in set(ids)],
        "flags": flags,
    }


def exact_literals(metrics: dict[str, Any], body: bytes) -> None:
    """Give flagged floats of 2^63 and beyond their exact literal. The fast parser reads an integer literal beyond
    64 bits as a float; the standard library's parser keeps it as an exact int (only done for such pings)."""
    wanted = [flag for flag in metrics["flags"] if flag[1] in (NEGATIVE, TOO_LARGE)
              and not flag[2].lstrip("-").isdigit() and abs(float(flag[2])) >= 2**63]
    if not wanted:
        return
    try:
        paths, values, _ = flatten_columns(json.loads(body))
    except (ValueError, RecursionError):
        return  # keep the float's text; the raw payload is stored as sent
    for flag in wanted:
        index = flag[0]
        if index < len(paths) and paths[index] == metrics["metrics_path"][index]:
            flag[2] = str(values[index])
