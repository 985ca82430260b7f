"""Deterministic Snowplow events for the sample fleet, with the rows the warehouse must end up holding: their shapes
and sending them here, generating them in fleet/snowplow_events.py (`generate_snowplow`).

Two kinds of senders over the same weeks as `fleet.pings.generate_fleet` (same seed, same instances):
- SaaS namespaces (`saas_namespaces`): browser events (page views, UI clicks, link clicks as self-describing
  events) and backend events, with the Denomas standard context (realm saas, plan of the namespace);
- the fleet's self-managed instances, in the weeks they send Service Pings: backend events named like the
  Service Ping redis_hll events (i_code_review_user_create_mr, i_search_total, ...), with instance_id /
  host_name / instance_version / plan of that week's ping (namespace ids are local to each instance).

Users have stable ids, devices a stable user agent, IP (documentation ranges, see streams/enrich/geo.py) and
clock skew. The sample also has late events (sent days after they happened), exact duplicates (a tracker
retry: same eid, same content, new stm), event-id conflicts (same eid, other content), malformed events inside
good batches, and malformed requests. `ExpectedRow` is written while each event is built, from the
generator's own choices, so tests compare the warehouse with an independent record.

`send_snowplow` posts the events as trackers do: per tracker (device or backend), batches of up to 10 in one
payload_data POST, `stm` stamped at send time with the device's skew, so the collector's skew correction
puts every event back on the day it happened.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

if TYPE_CHECKING:
    from streams.progress import ProgressCallback

PAYLOAD_DATA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
CONTEXTS = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1"
UNSTRUCT = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0"
STANDARD = "iglu:com.denomas/denomas_standard/jsonschema/1-0-0"
LINK_CLICK = "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1"
BATCH_SIZE = 10
SAAS_HOST = "denomas.com"
SAAS_VERSION = "18.2.0"

# Service Ping redis_hll event names (their _weekly/_monthly metrics count distinct users of these events).
INTERNAL_EVENTS = (
    "i_code_review_user_create_mr", "i_code_review_user_approve_mr", "i_code_review_user_merge_mr", "i_search_total",
    "i_search_paid", "i_package_maven_user", "i_package_npm_user", "g_edit_by_web_ide", "g_analytics_contribution",
    "g_analytics_valuestream", "g_compliance_dashboard", "g_compliance_audit_events",
    "incident_management_alert_status_changed", "user_login", "g_project_management_issue_created",
    "g_project_management_issue_closed", "git_write_action",
)
# A code review session: one user creates, approves and merges merge requests in one week (the events of the
# code_review_power_users metrics, operator AND). SaaS users hold one in some weeks.
REVIEW_SESSION = ("i_code_review_user_create_mr", "i_code_review_user_approve_mr", "i_code_review_user_merge_mr")
REVIEW_SESSION_RATE = 0.2
UI_EVENTS = (  # (category, action, label, property)
    ("projects:merge_requests:show", "click_button", "approve", "mr_widget"),
    ("projects:merge_requests:show", "click_button", "merge", "mr_widget"),
    ("projects:issues:index", "click_link", "new_issue", "issues_list"),
    ("groups:analytics:value_stream", "view_chart", "lead_time", ""),
    ("projects:pipelines:show", "click_button", "retry", "pipeline_header"),
)
EVENT_DEFECTS = ("missing_e", "bad_base64_context", "context_schema_violation", "unknown_event_code", "bad_eid",
                 "unregistered_schema")
DEFECT_RATE = 0.02
LATE_RATE = 0.04
DUPLICATE_RATE = 0.03
BROWSERS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
    "Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 "
    "Edg/126.0.2592.68",
)
# Client addresses: documentation ranges stand in for countries; 10.x is a private (local) address.
IP_PREFIXES = ("192.0.2.", "198.51.100.", "203.0.113.", "10.20.30.")
_PLANS = ("free", "free", "premium", "ultimate")
EDITION_PLAN = {"CE": "free", "EE Free": "free", "EE": "starter", "EES": "starter", "EEP": "premium",
                 "EEU": "ultimate"}


@dataclass(frozen=True)
class SaasNamespace:
    namespace_id: int
    ultimate_parent_namespace_id: int
    path: str
    plan: str
    project_ids: tuple[int, ...]
    user_ids: tuple[int, ...]


@dataclass(frozen=True)
class ExpectedRow:
    """What fct_behavior_structured_event must hold for one event (user_id as sent: the test hashes it)."""

    event_id: str
    app_id: str
    platform: str
    event_type: str
    event_category: str
    event_action: str
    event_label: str
    event_property: str
    event_value: float | None
    event_schema: str
    event_data: dict | None
    behavior_date: date
    created_at: datetime
    user_id: str | None
    namespace_id: int
    ultimate_parent_namespace_id: int
    project_id: int
    plan: str
    environment: str
    source: str
    realm: str
    deployment_type: str
    instance_id: str
    host_name: str
    instance_version: str
    context_extra: dict | None
    geo_country: str
    geo_region: str
    geo_city: str
    ua_family: str
    page_url: str


@dataclass
class GeneratedEvent:
    payload: dict[str, str]  # tracker-protocol parameters without stm (stamped when sent)
    tracker: str  # one device or backend: its events travel together in batches
    created_at: datetime  # when it happened (true time)
    sent_at: datetime  # when the tracker sends it (nominal); late events days after created_at
    skew_ms: int  # the device clock's offset: dtm and stm are both off by this much
    expected: ExpectedRow | None = None  # None: must not land as a new row (defect, duplicate, conflict)
    defect: str | None = None
    duplicate: bool = False  # exact copy of an earlier event (a tracker retry)
    conflict: bool = False  # same eid as an earlier event, other content
    late: bool = False

    @property
    def event_id(self) -> str:
        return self.payload.get("eid", "")


@dataclass(frozen=True)
class GeneratedRequest:
    """A malformed request: no events in it, the collector dead-letters it and answers `status`."""

    body: bytes
    defect: str
    status: int


@dataclass
class SnowplowFleet:
    events: list[GeneratedEvent]  # in the order the trackers send them
    bad_requests: list[GeneratedRequest]
    namespaces: list[SaasNamespace]
    instances: list[str] = field(default_factory=list)  # uuids of the self-managed instances that sent events

    def expected_rows(self) -> dict[str, ExpectedRow]:
        return {e.expected.event_id: e.expected for e in self.events if e.expected is not None}

    def expected_dead_letters(self) -> Counter[str]:
        """Dead letters by stage: malformed events (validate), id conflicts (dedup), bad requests (collector)."""
        counts: Counter[str] = Counter()
        counts["validate"] = sum(1 for e in self.events if e.defect)
        counts["dedup"] = sum(1 for e in self.events if e.conflict)
        counts["collector"] = len(self.bad_requests)
        return counts

    def expected_counts(self) -> dict[str, int]:
        """What `landed_counts` must read after this fleet (and nothing else) was sent."""
        return {"events": len(self.expected_rows()), "bad_rows": sum(self.expected_dead_letters().values())}

    def summary(self) -> dict[str, Any]:
        return {
            "events": len(self.events), "rows": len(self.expected_rows()),
            "duplicates": sum(e.duplicate for e in self.events), "conflicts": sum(e.conflict for e in self.events),
            "late": sum(e.late for e in self.events), "malformed_events": sum(bool(e.defect) for e in self.events),
            "bad_requests": len(self.bad_requests), "namespaces": len(self.namespaces),
            "instances": len(self.instances),
        }


def landed_counts(warehouse: Any) -> dict[str, int]:
    """Snowplow rows as queries see them: events landed, bad rows (one per bad event or request)."""
    return {
        "events": int(warehouse.query("SELECT count() FROM fct_behavior_structured_event FINAL").scalar()),
        "bad_rows": int(warehouse.query("SELECT count() FROM raw_snowplow_bad_row").scalar()),
    }


def saas_namespaces(count: int, seed: int = 42) -> list[SaasNamespace]:
    """Top-level SaaS groups (ids from 20001) and, for every third one, a subgroup (ids from 30001)."""
    rng = random.Random(f"denomas-snowplow:{seed}:namespaces")
    result = []
    for index in range(count):
        top = 20_001 + index
        plan = rng.choice(_PLANS)
        users = tuple(1_000_000 + index * 100 + n for n in range(rng.randint(3, 7)))
        projects = tuple(500_000 + index * 100 + n for n in range(rng.randint(1, 3)))
        result.append(SaasNamespace(top, top, f"group-{index}", plan, projects, users))
        if index % 3 == 2:
            sub = 30_001 + index
            result.append(SaasNamespace(sub, top, f"group-{index}/team", plan,
                                        (600_000 + index * 100,), users[: max(2, len(users) // 2)]))
    return result


# ---------------------------------------------------------------------------------------------------
# Sending


@dataclass
class SnowplowSendReport:
    requests: int = 0
    events_sent: int = 0
    events_accepted: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


def tracker_batches(events: list[GeneratedEvent], size: int = BATCH_SIZE) -> list[list[GeneratedEvent]]:
    """Requests as trackers make them, in sending order: per tracker, its events of one day in batches of at
    most `size`. Duplicates and conflicting copies come last, one per request (retries), so every copy is
    sent after its original."""
    batches: list[list[GeneratedEvent]] = []
    open_batches: dict[str, list[GeneratedEvent]] = {}
    for event in events:
        if event.duplicate or event.conflict:
            continue
        batch = open_batches.get(event.tracker)
        if batch and (len(batch) == size or batch[-1].sent_at.date() != event.sent_at.date()):
            batches.append(open_batches.pop(event.tracker))
        open_batches.setdefault(event.tracker, []).append(event)
    batches += open_batches.values()
    batches.sort(key=lambda batch: batch[-1].sent_at)  # stable: one tracker's batches keep their order
    return batches + [[event] for event in events if event.duplicate or event.conflict]


async def send_snowplow(url: str, events: list[GeneratedEvent], bad_requests: list[GeneratedRequest] = (),
                        concurrency: int = 4, progress: ProgressCallback | None = None) -> SnowplowSendReport:
    """POST the events in tracker batches to {url}/com.snowplowanalytics.snowplow/tp2, then the bad requests.

    Batches of one tracker are sent in order, `stm` is stamped now with the device's skew, as a tracker
    would; duplicates and conflicting copies go after all other batches."""
    report = SnowplowSendReport()
    endpoint = f"{url}/com.snowplowanalytics.snowplow/tp2"
    batches = tracker_batches(list(events))
    retries = [b for b in batches if b[0].duplicate or b[0].conflict]
    by_tracker: dict[str, list[list[GeneratedEvent]]] = defaultdict(list)
    for batch in batches[: len(batches) - len(retries)]:
        by_tracker[batch[0].tracker].append(batch)

    async def post(session: aiohttp.ClientSession, body: bytes) -> int:
        async with session.post(endpoint, data=body,
                                headers={"Content-Type": "application/json; charset=utf-8"}) as response:
            text = await response.text()
            report.requests += 1
            report.statuses[response.status] += 1
            if response.status != 200:
                report.failures.append(f"{response.status}: {text[:200]}")
            return response.status

    async def send(session: aiohttp.ClientSession, batch: list[GeneratedEvent]) -> None:
        stm = str(int(time.time() * 1000) + batch[0].skew_ms)
        body = orjson.dumps({"schema": PAYLOAD_DATA, "data": [e.payload | {"stm": stm} for e in batch]})
        if await post(session, body) == 200:
            report.events_accepted += len(batch)
        report.events_sent += len(batch)
        if progress is not None:
            progress(report.events_sent, len(events))

    async def worker(session: aiohttp.ClientSession, queue: list[list[list[GeneratedEvent]]]) -> None:
        while queue:
            for batch in queue.pop():
                await send(session, batch)

    async with aiohttp.ClientSession() as session:
        trackers = list(by_tracker.values())[::-1]
        await asyncio.gather(*(worker(session, trackers) for _ in range(concurrency)))
        for batch in retries:  # after their originals were accepted
            await send(session, batch)
        for request in bad_requests:
            await post(session, request.body)
    return report
