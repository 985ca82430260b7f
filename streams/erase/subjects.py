"""The erasure list: what every sink consults before it stores (one set lookup per record), and the subjects
(user, namespace, instance) a record, an event or a dead letter names. Erasures themselves: run.py.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from streams.enrich.pseudonym import hash_key, hashed_user
from streams.enrich.snowplow import BadEvent, decode_contexts, standard_context
from streams.warehouse import Warehouse

LIST_TABLE, PENDING_TABLE, LOG_TABLE = "erasure_list", "erasure_pending", "erasure_log"
NAMESPACE_COLUMNS = ("namespace_id", "ultimate_parent_namespace_id")
# dead letters whose bytes name a user, an instance or a host
SUBJECT_SOURCES = ("snowplow", "service_ping", "seat_link", "version_check")


@functools.cache
def erasure_key() -> bytes:
    """A key of its own for the list, derived from the user-hash secret (same secret, other purpose)."""
    return hashlib.blake2b(b"denomas-erasure-list", key=hash_key(), digest_size=32).digest()


@functools.lru_cache(maxsize=1 << 16)  # users, namespaces and instances repeat from record to record
def subject_digest(kind: str, value: str | int) -> str:
    return hashlib.blake2b(f"{kind}:{value}".encode(), key=erasure_key(), digest_size=16).hexdigest()


Subject = tuple[str, str | int]  # (kind, value): ("user", user_hash), ("namespace", id), ("instance", uuid)


@dataclass(frozen=True)
class ErasureList:
    digests: frozenset[str] = frozenset()

    def erased(self, subjects: Iterable[Subject]) -> bool:
        return bool(self.digests) and any(subject_digest(kind, value) in self.digests for kind, value in subjects)

    def keep(self, records: Sequence[Any], subjects: Callable[[Any], Iterable[Subject]]) -> list[Any]:
        if not self.digests:  # the usual case costs nothing
            return list(records)
        return [record for record in records if not self.erased(subjects(record))]


def load_erasure_list(warehouse: Warehouse) -> ErasureList:
    """Read per batch (a small table), inside the sink's retried write: a retry sees an erasure made meanwhile."""
    return ErasureList(frozenset(str(row[0]) for row in warehouse.query(
        f"SELECT subject_digest FROM {LIST_TABLE}").rows))


def without_erased(warehouse: Warehouse, records: Sequence[Any],
                   subjects: Callable[[Any], Iterable[Subject]]) -> list[Any]:
    return load_erasure_list(warehouse).keep(records, subjects)


def _is_saas(context: dict) -> bool:
    """Namespace ids are Denomas.com's only on SaaS events; self-managed ones are local to their instance."""
    return context.get("realm") == "saas" or context.get("deployment_type") == ".com"


def event_subjects(row: dict) -> list[Subject]:
    """A fct_behavior_structured_event row's user, (SaaS) namespaces and instance."""
    out: list[Subject] = [("user", row["user_hash"])] if row.get("user_hash") else []
    out += [("namespace", row[name]) for name in NAMESPACE_COLUMNS if row.get(name) and _is_saas(row)]
    return out + ([("instance", row["instance_id"])] if row.get("instance_id") else [])


def snowplow_record_subjects(record: dict) -> list[Subject]:
    return event_subjects(record["row"])


def ping_record_subjects(record: dict) -> list[Subject]:
    """A normalized Service Ping record (kind ping, error or metadata)."""
    body = record.get("ping") or record.get("report") or {}
    return [("instance", body["instance_uuid"])] if body.get("instance_uuid") else []


def seat_link_subjects(record: dict) -> list[Subject]:
    """By uuid; reports of clients too old to send one, by the host name (listed only when no other instance has
    reported it)."""
    out: list[Subject] = [("instance", record["instance_uuid"])] if record.get("instance_uuid") else []
    return out + ([("host", record["hostname"])] if record.get("hostname") else [])


def landed_subjects(landed: Any) -> list[Subject]:
    """A usage.landed scope (streams/alerts/landed.py): an instance (uuid or installation id) or a namespace.
    Installation ids of an erased instance are listed under its kind, so alerts never evaluate it again."""
    return [(landed.scope_type, landed.scope_id)] if landed.scope_type in ("instance", "namespace") else []


def version_check_subjects(record: dict) -> list[Subject]:
    return [("host", record["host"])] if record.get("host") else []


def reference_subjects(row: dict) -> list[Subject]:
    """A reference row of a Denomas.com namespace (dim_namespace)."""
    return [("namespace", row["namespace_id"])] if row.get("namespace_id") else []


def _event_subjects_raw(event: Any) -> list[Subject]:
    """The user, namespaces and instance of a raw tracker event (as normalize_event reads them)."""
    if not isinstance(event, dict):
        return []
    try:
        standard = standard_context(decode_contexts(event))
    except (BadEvent, ValueError, TypeError, KeyError):
        standard = {}
    user = standard.get("user_id")
    hashed = hashed_user(user if user not in (None, "") else event.get("uid"))
    out: list[Subject] = [("user", hashed)] if hashed else []
    out += [("namespace", standard[name]) for name in NAMESPACE_COLUMNS
            if isinstance(standard.get(name), int) and standard[name] > 0 and _is_saas(standard)]
    return out + ([("instance", standard["instance_id"])] if standard.get("instance_id") else [])


def letter_subjects(source: str, original: bytes | str) -> list[Subject]:
    """Subjects named in a dead letter's (or a raw record's) bytes: Snowplow events, Service Ping, Seat Link or
    Version Check JSON."""
    if source not in SUBJECT_SOURCES:
        return []
    try:
        document = orjson.loads(original)
    except orjson.JSONDecodeError:
        return []
    if source == "snowplow":
        if isinstance(document, dict) and isinstance(document.get("data"), list):  # a whole payload_data request
            document = document["data"]
        events = document if isinstance(document, list) else [document]
        return [subject for event in events for subject in _event_subjects_raw(event)]
    if not isinstance(document, dict):
        return []
    if source == "version_check":  # the raw check's envelope: the instance is known by the referer's host
        from streams.enrich.version_check import host_from_referer

        referer = document.get("referer")
        host = host_from_referer(referer) if isinstance(referer, str) else ""
        return [("host", host)] if host else []
    ids = (document.get("uuid"), document.get("instance_id"), (document.get("metadata") or {}).get("uuid")
           if isinstance(document.get("metadata"), dict) else None,
           (document.get("error") or {}).get("uuid") if isinstance(document.get("error"), dict) else None)
    return [("instance", value) for value in ids if isinstance(value, str) and value]


def letter_row_subjects(row: dict) -> list[Subject]:
    return letter_subjects(row.get("source", ""), row.get("original", b""))
