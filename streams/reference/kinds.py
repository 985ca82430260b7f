"""Reference data (licenses, subscriptions, CRM and billing accounts, namespaces, account mappings): pure logic.

One description per kind (its table, natural id, topic and columns) drives the CSV loader, the compacted-topic
agent and the Faust tables alike. The license -> subscription -> CRM account rule of the reference model (section
2.10 of the warehouse model) that these tables feed has one definition, in SQL: the view `prep_license_match`
(clickhouse/038), read by `prep_ping_subscription` and `prep_seat_link_subscription`.

License keys never enter the warehouse: only their md5/sha256 hashes do.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from streams.config import (
    TOPIC_REF_ACCOUNT_MAPPINGS,
    TOPIC_REF_ACCOUNTS,
    TOPIC_REF_BILLING_ACCOUNTS,
    TOPIC_REF_LICENSES,
    TOPIC_REF_NAMESPACES,
    TOPIC_REF_SUBSCRIPTIONS,
)

_MD5 = re.compile(r"^[0-9a-f]{32}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FORBIDDEN = frozenset({"license_key", "license", "key"})  # a clear license key must never be loaded


class FieldError(ValueError):
    """One bad value: which column and why (the caller adds where: CSV line or Kafka offset)."""

    def __init__(self, column: str, reason: str) -> None:
        super().__init__(f"column {column}: {reason}")
        self.column = column
        self.reason = reason


# ---------------------------------------------------------------------------------------------------
# Value parsers: text (CSV) or JSON values -> typed Python values. Empty means "not given".


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"expected text, got {type(value).__name__}")
    return str(value).strip()


def _parse_str(value: Any) -> str:
    return _text(value)


def _parse_count(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        text = _text(value)
        if not text:
            return 0
        if not re.fullmatch(r"[0-9]+", text):
            raise ValueError(f"not a whole number >= 0: {text!r}")
        number = int(text)
    if number < 0 or number >= 2**63:
        raise ValueError(f"out of range: {number}")
    return number


def _parse_flag(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    text = _text(value).lower()
    if text in ("", "0", "false", "f", "no"):
        return 0
    if text in ("1", "true", "t", "yes"):
        return 1
    raise ValueError(f"not a boolean (use true/false or 1/0): {text!r}")


def _parse_date(value: Any) -> date | None:
    text = _text(value)
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a date (YYYY-MM-DD): {text!r}") from None


def parse_datetime(value: Any) -> datetime | None:
    text = _text(value)
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not an ISO-8601 timestamp: {text!r}") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _hash_parser(pattern: re.Pattern[str], what: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = _text(value).lower()
        if text and not pattern.match(text):
            raise ValueError(f"not a {what}: {text[:80]!r}")
        return text

    return parse


def _parse_any_hash(value: Any) -> str:
    text = _text(value).lower()
    if text and not (_MD5.match(text) or _SHA256.match(text)):
        raise ValueError(f"not a license md5 (32 hex) or sha256 (64 hex): {text[:80]!r}")
    return text


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "str": _parse_str, "count": _parse_count, "flag": _parse_flag, "date": _parse_date,
    "datetime": parse_datetime, "md5": _hash_parser(_MD5, "32-character hex md5"),
    "sha256": _hash_parser(_SHA256, "64-character hex sha256"), "hash": _parse_any_hash,
}
_EMPTY: dict[str, Any] = {"str": "", "count": 0, "flag": 0, "date": None, "datetime": None, "md5": "",
                          "sha256": "", "hash": ""}


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # a key of _PARSERS
    required: bool = False
    doc: str = ""


@dataclass(frozen=True)
class RefKind:
    """One kind of reference data: a dim_ table, its natural id, its compacted topic, its columns."""

    name: str
    table: str
    key: str
    topic: str
    columns: tuple[Column, ...]
    data_class: str

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def key_of(self, row: Mapping[str, Any]) -> str:
        return str(row[self.key])


def _c(name: str, kind: str = "str", required: bool = False, doc: str = "") -> Column:
    return Column(name, kind, required, doc)


KINDS: dict[str, RefKind] = {kind.name: kind for kind in (
    RefKind("licenses", "dim_license", "dim_license_id", TOPIC_REF_LICENSES, (
        _c("dim_license_id", required=True, doc="CustomersDot license id"),
        _c("license_md5", "md5", doc="md5 of the license key (at least one hash is required)"),
        _c("license_sha256", "sha256", doc="sha256 of the license key"),
        _c("dim_subscription_id", doc="Zuora subscription id; empty for trials"),
        _c("license_user_count", "count", doc="seats on the license"),
        _c("license_plan", doc="starter/premium/ultimate..."),
        _c("is_trial", "flag"),
        _c("starts_at", "date"),
        _c("expires_at", "date"),
    ), "Yellow"),
    RefKind("subscriptions", "dim_subscription", "dim_subscription_id", TOPIC_REF_SUBSCRIPTIONS, (
        _c("dim_subscription_id", required=True),
        _c("subscription_name"),
        _c("dim_crm_account_id", doc="may be empty: then the billing account's CRM account is used"),
        _c("dim_billing_account_id"),
        _c("subscription_status", doc="Active, Cancelled, ..."),
        _c("product_tier"),
        _c("seats", "count", doc="licensed seats (Zuora quantity)"),
        _c("term_start_date", "date"),
        _c("term_end_date", "date"),
    ), "Yellow"),
    RefKind("accounts", "dim_crm_account", "dim_crm_account_id", TOPIC_REF_ACCOUNTS, (
        _c("dim_crm_account_id", required=True),
        _c("account_name", required=True),
        _c("dim_parent_crm_account_id"),
        _c("crm_account_type", doc="Customer, Prospect, Partner, ..."),
        _c("billing_country"),
    ), "Orange"),
    RefKind("billing_accounts", "dim_billing_account", "dim_billing_account_id", TOPIC_REF_BILLING_ACCOUNTS, (
        _c("dim_billing_account_id", required=True),
        _c("dim_crm_account_id"),
        _c("billing_account_name"),
        _c("currency"),
    ), "Orange"),
    RefKind("namespaces", "dim_namespace", "namespace_id", TOPIC_REF_NAMESPACES, (
        _c("namespace_id", "count", required=True, doc="Denomas.com top-level namespace id"),
        _c("namespace_name"),
        _c("plan"),
        _c("dim_subscription_id"),
        _c("dim_crm_account_id"),
        _c("created_at", "datetime"),
    ), "Orange"),
    RefKind("account_mappings", "dim_license_account_mapping", "license_hash", TOPIC_REF_ACCOUNT_MAPPINGS, (
        _c("license_hash", "hash", required=True, doc="license md5 (32 hex) or sha256 (64 hex)"),
        _c("dim_subscription_id", required=True, doc="used when CustomersDot has no subscription for it"),
        _c("dim_crm_account_id", doc="used when the subscription resolves to no account"),
        _c("note"),
    ), "Orange"),
)}
KIND_BY_TOPIC: dict[str, RefKind] = {kind.topic: kind for kind in KINDS.values()}
# Bookkeeping columns every dim_ reference table has besides the kind's own columns.
VERSION_COLUMNS = ("updated_at", "is_deleted")


def kind_named(name: str) -> RefKind:
    try:
        return KINDS[name.replace("-", "_")]
    except KeyError:
        raise ValueError(f"unknown reference kind {name!r}; one of: {', '.join(KINDS)}") from None


def check_columns(kind: RefKind, names: list[str]) -> list[FieldError]:
    """Header problems: unknown columns, missing required ones, a clear license key."""
    errors = []
    allowed = set(kind.column_names) | {"updated_at"}
    for name in names:
        if name in _FORBIDDEN:
            errors.append(FieldError(name, "license keys must never be loaded: give license_md5/license_sha256"))
        elif name not in allowed:
            errors.append(FieldError(name, f"unknown column for {kind.name}; allowed: {', '.join(sorted(allowed))}"))
    present = set(names)
    errors.extend(FieldError(c.name, "required column is missing") for c in kind.columns
                  if c.required and c.name not in present)
    if kind.name == "licenses" and not present & {"license_md5", "license_sha256"}:
        errors.append(FieldError("license_md5", "licenses need a license_md5 or a license_sha256 column"))
    return errors


def parse_record(kind: RefKind, values: Mapping[str, Any]) -> tuple[dict[str, Any], list[FieldError]]:
    """Typed row from text or JSON values, and every problem found (the row is usable only without errors)."""
    row: dict[str, Any] = {}
    errors: list[FieldError] = []
    for name in values:
        if name in _FORBIDDEN:
            errors.append(FieldError(name, "license keys must never be loaded: give license_md5/license_sha256"))
    for column in kind.columns:
        try:
            row[column.name] = _PARSERS[column.kind](values.get(column.name))
        except ValueError as exc:
            errors.append(FieldError(column.name, str(exc)))
            row[column.name] = _EMPTY[column.kind]
            continue
        if column.required and row[column.name] in ("", None):
            errors.append(FieldError(column.name, "required value is empty"))
    hash_errors = any(e.column in ("license_md5", "license_sha256") for e in errors)
    if kind.name == "licenses" and not hash_errors and not (row["license_md5"] or row["license_sha256"]):
        errors.append(FieldError("license_md5", "a license needs license_md5 or license_sha256"))
    try:
        row["updated_at"] = parse_datetime(values.get("updated_at"))
    except ValueError as exc:
        errors.append(FieldError("updated_at", str(exc)))
        row["updated_at"] = None
    row["is_deleted"] = 0
    return row, errors


def normalize_key(kind: RefKind, key: str) -> str:
    """The natural id as stored (hashes lower-cased, numbers canonical); ValueError when it is not valid."""
    value = _PARSERS[kind.columns[0].kind](key)
    if value in ("", None):
        raise ValueError(f"empty {kind.key}")
    return str(value)


def tombstone(kind: RefKind, key: str, updated_at: datetime) -> dict[str, Any]:
    """The row that deletes `key`: empty values, is_deleted = 1 (FINAL hides it and everything older)."""
    row = {column.name: _EMPTY[column.kind] for column in kind.columns}
    row[kind.key] = _PARSERS[kind.columns[0].kind](key)
    return row | {"updated_at": updated_at, "is_deleted": 1}


def to_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-ready copy (dates as ISO text) for topics and Faust tables."""
    return {k: (v.isoformat() if isinstance(v, date | datetime) else v) for k, v in row.items()}


def newest_per_key(kind: RefKind, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per natural id: the highest updated_at, later rows winning ties (as the engine does)."""
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = kind.key_of(row)
        if key not in best or row["updated_at"] >= best[key]["updated_at"]:
            best[key] = row
    return list(best.values())
