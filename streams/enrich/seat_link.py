"""Pure Seat Link logic: license key hashing at the edge, validation, one shape for every generation.

Generations an instance may send (formats.md section 3.2):
  12.9    {date, license_key, max_historical_user_count, active_users}
  13.x    `timestamp` replaces `date`; `active_users` becomes `billable_users_count`
  14.x    + gitlab_version, hostname, instance_id (one version also license_md5)
  later   + add_on_metrics; 18.1 + unique_instance_id
No I/O here: the collector, the agent and the tests share this one implementation.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, time
from functools import cache
from typing import Any

import orjson
from jsonschema import Draft202012Validator

from streams.config import SCHEMAS_DIR
from streams.enrich.service_ping import installation_id_for
from streams.records import SeatLinkRecord, parse_timestamp, stable_id

KEY_FIELD = "license_key"
SHA256_FIELD = "license_key_sha256"
MD5_FIELD = "license_key_md5"


def normalized_license_data(key: str) -> str:
    """The product's License#normalized_data: CRLF -> LF, trailing newlines dropped, one newline added.

    Pings carry md5/sha256 of this string, so Seat Link must hash the same thing to match them.
    """
    return key.replace("\r\n", "\n").rstrip("\n") + "\n"


def license_hashes(key: str) -> tuple[str, str]:
    """(md5, sha256) hex digests of a license key, as the instance's pings report them."""
    data = normalized_license_data(key).encode()
    return hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()


def hash_license_key(document: dict) -> dict:
    """The report with `license_key` replaced, in place of it, by its sha256 and md5. Nothing else changes."""
    out: dict[str, Any] = {}
    for name, value in document.items():
        if name == KEY_FIELD:
            if isinstance(value, str) and value:  # anything else cannot be hashed; it is dropped, never kept
                md5, sha256 = license_hashes(value)
                out[SHA256_FIELD], out[MD5_FIELD] = sha256, md5
        elif name not in (SHA256_FIELD, MD5_FIELD):  # only our own hashes may sit in these fields
            out[name] = value
    return out


# ---------------------------------------------------------------------------------------------------
# Validation


@cache
def _validator() -> Draft202012Validator:
    schema = orjson.loads((SCHEMAS_DIR / "seat_link.schema.json").read_bytes())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


# Messages for rules whose default text repeats the whole report (reasons end up in the dead-letter table).
_ROOT_MESSAGES = {"anyOf": "needs a timestamp or a date", "not": "license_key must never travel in clear"}


def validation_errors(report: Any) -> list[str]:
    """Schema violations of a hashed report (license_key already replaced), each naming its JSON path."""
    errors = sorted(_validator().iter_errors(report), key=lambda e: list(e.absolute_path))
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {_ROOT_MESSAGES.get(e.validator, e.message)}"
            for e in errors[:10]]


# ---------------------------------------------------------------------------------------------------
# Normalization


def generation(report: dict) -> str:
    """Which client generation sent the report (newest feature present wins)."""
    if "unique_instance_id" in report:
        return "18.1+"
    if "add_on_metrics" in report:
        return "add_on_metrics"
    if any(name in report for name in ("gitlab_version", "hostname", "instance_id")):
        return "14.x"
    if "timestamp" in report:
        return "13.x"
    return "12.9"


def report_timestamp(report: dict) -> datetime:
    """`timestamp` (13.x+) when present, else midnight UTC of `date` (12.9). Raises ValueError."""
    if report.get("timestamp"):
        text = str(report["timestamp"]).strip()
        return parse_timestamp(text[:-4] + "+00:00" if text.endswith(" UTC") else text)  # Ruby Time#to_s
    if report.get("date"):
        return datetime.combine(date.fromisoformat(str(report["date"])), time(0), UTC)
    raise ValueError("report has neither timestamp nor date")


def seat_link_id_for(license_sha256: str, reported: datetime, instance_uuid: str) -> int:
    """Stable id of one report: a report sent twice (a retry, a manual sync) gets the same id."""
    return stable_id("seat_link", license_sha256, reported.isoformat(timespec="milliseconds"), instance_uuid)


def _int(value: Any) -> int | None:
    return value if type(value) is int else None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def normalize_seat_link(report: dict, received_at: datetime) -> SeatLinkRecord:
    """One validated, hashed report -> the fct_seat_link record (JSON-able). Raises ValueError."""
    reported = report_timestamp(report)
    sha256, md5 = report[SHA256_FIELD], report[MD5_FIELD]
    instance_uuid = _text(report.get("instance_id"))
    hostname = _text(report.get("hostname"))
    billable = _int(report.get("billable_users_count"))
    add_ons = report.get("add_on_metrics") or []
    return {
        "seat_link_id": seat_link_id_for(sha256, reported, instance_uuid),
        "license_md5": md5,
        "license_sha256": sha256,
        "instance_uuid": instance_uuid,
        "unique_instance_id": _text(report.get("unique_instance_id")),
        "hostname": hostname,
        "installation_id": installation_id_for(instance_uuid, hostname) if instance_uuid else "",
        "gitlab_version": _text(report.get("gitlab_version")),
        "report_timestamp": reported.isoformat(timespec="milliseconds"),
        "report_date": reported.date().isoformat(),
        "active_user_count": billable if billable is not None else _int(report.get("active_users")),
        "max_historical_user_count": _int(report.get("max_historical_user_count")),
        "license_user_count": _int(report.get("license_user_count")),
        "add_on_metrics": orjson.dumps(add_ons, option=orjson.OPT_SORT_KEYS).decode(),
        "payload_generation": generation(report),
        "received_at": received_at.isoformat(timespec="milliseconds"),
    }
