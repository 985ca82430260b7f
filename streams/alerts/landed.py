"""What the sinks announce on usage.landed after a write, and the scopes a batch of rows touches (pure).

A sink calls `await ctx.announce_landed(source, scopes)` once its rows are stored; `source` is the signal
source the alert rules name, `scopes` are (scope_type, scope_id) pairs in the ids the signals use:

  Service Ping  ctx.announce_landed("service_ping", [("instance", r["ping"]["installation_id"]), ...])
  Seat Link     ctx.announce_landed("seat_link", seat_link_scopes(records))
  events        ctx.announce_landed("events", event_scopes(r["row"] for r in records))

The evaluator derives subscriptions and accounts from these itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

SOURCES = ("service_ping", "seat_link", "events")


@dataclass(frozen=True)
class Landed:
    """One record of usage.landed: data for this scope was stored by this source's sink."""

    source: str
    scope_type: str
    scope_id: str
    landed_at: str | None = None

    @classmethod
    def from_json(cls, doc: Any) -> Landed:
        if not isinstance(doc, dict):
            raise ValueError("a landed record is a JSON object")
        missing = [k for k in ("source", "scope_type", "scope_id") if not isinstance(doc.get(k), str) or not doc[k]]
        if missing:
            raise ValueError(f"landed record needs text fields {', '.join(missing)}")
        return cls(doc["source"], doc["scope_type"], doc["scope_id"], doc.get("landed_at"))


def seat_link_scopes(records: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Seat Link reports -> their installations (reports without an instance uuid have none)."""
    return [("instance", r["installation_id"]) for r in records if r.get("installation_id")]


def event_scopes(rows: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Behavior events -> the instance and namespace scopes they count for: the instance uuid of events that carry
    one, and the top-level namespace (else the namespace) of SaaS events ('saas', all of Denomas.com, is no alert
    scope). The rule's definition is the view prep_behavior_event_scope (clickhouse/070); this restates it because
    the Snowplow sink runs it on the batch in memory, between its write and its ack, and the view cannot pick out
    a batch's events (it has no event id) without a pass over the whole fact per batch.
    tests/integration/test_event_scope_rule.py keeps the two in agreement."""
    scopes = []
    for row in rows:
        if row.get("instance_id"):
            scopes.append(("instance", str(row["instance_id"])))
        namespace = row.get("ultimate_parent_namespace_id") or row.get("namespace_id") or 0
        if namespace and (row.get("realm") == "saas" or row.get("deployment_type") == ".com"):
            scopes.append(("namespace", str(namespace)))
    return list(dict.fromkeys(scopes))
