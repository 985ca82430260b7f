"""Deterministic Snowplow events for the sample fleet, with the rows the warehouse must end up holding.

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
import base64
import random
import time
import uuid as uuidlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from fleet.pings import generate_fleet
from streams.enrich.geo import locate
from streams.enrich.useragent import ua_family

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
_BROWSERS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
    "Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 "
    "Edg/126.0.2592.68",
)
# Client addresses: documentation ranges stand in for countries; 10.x is a private (local) address.
_IP_PREFIXES = ("192.0.2.", "198.51.100.", "203.0.113.", "10.20.30.")
_PLANS = ("free", "free", "premium", "ultimate")
_EDITION_PLAN = {"CE": "free", "EE Free": "free", "EE": "starter", "EES": "starter", "EEP": "premium",
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
# Building events


@dataclass(frozen=True)
class _Device:
    tracker: str
    ua: str
    ip: str
    skew_ms: int
    platform: str
    tracker_version: str
    base64: bool  # cx/ue_px (base64) or co/ue_pr (plain JSON)


def _device(rng: random.Random, name: str, platform: str) -> _Device:
    if platform == "web":
        ua, tv = rng.choice(_BROWSERS), "js-3.24.0"
    else:
        ua, tv = f"Denomas/{SAAS_VERSION} (Ruby; snowplow-tracker-ruby)", "rb-0.8.0"
    skew = rng.choice((0, 0, 0, 0, rng.randint(-90, 90) * 1000, rng.randint(-3, 3) * 3_600_000 + 1234,
                       rng.randint(-2, 2) * 86_400_000))
    ip = rng.choice(_IP_PREFIXES) + str(rng.randint(1, 254))
    return _Device(name, ua, ip, skew, platform, tv, rng.random() < 0.6)


def _b64(document: Any, rng: random.Random) -> str:
    text = base64.urlsafe_b64encode(orjson.dumps(document)).decode()
    return text if rng.random() < 0.5 else text.rstrip("=")  # trackers differ on padding


def _ms(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(milliseconds=1))


@dataclass(frozen=True)
class _Scope:
    """The standard-context fields of one sender."""

    app_id: str
    environment: str
    source: str
    realm: str
    deployment_type: str
    plan: str
    namespace_id: int = 0
    ultimate_parent_namespace_id: int = 0
    instance_id: str = ""
    host_name: str = ""
    instance_version: str = ""


def _event(rng: random.Random, device: _Device, scope: _Scope, user_id: int, created_at: datetime,
           project_id: int, url_base: str, internal: str | None = None) -> GeneratedEvent:
    """One good event and its expected row; `internal`: an internal event of that name, else a random kind."""
    kind = "internal" if internal else rng.choices(("internal", "ui", "page_view", "link_click"),
                                                 weights=(5, 2, 2, 1) if device.platform == "web" else (1, 0, 0, 0))[0]
    eid = str(uuidlib.UUID(int=rng.getrandbits(128), version=4))
    extra = {"label_count": rng.randint(1, 5)} if rng.random() < 0.3 else None
    context: dict[str, Any] = {
        "environment": scope.environment, "source": scope.source, "realm": scope.realm,
        "deployment_type": scope.deployment_type, "plan": scope.plan, "user_id": user_id,
        "namespace_id": scope.namespace_id or None, "ultimate_parent_namespace_id":
            scope.ultimate_parent_namespace_id or None, "project_id": project_id or None,
        "instance_id": scope.instance_id or None, "host_name": scope.host_name or None,
        "instance_version": scope.instance_version or None, "extra": extra,
    }
    contexts = {"schema": CONTEXTS, "data": [{"schema": STANDARD, "data": context}]}
    payload = {"e": "se", "eid": eid, "tv": device.tracker_version, "tna": "gl", "aid": scope.app_id,
               "p": device.platform, "dtm": str(_ms(created_at) + device.skew_ms), "uid": str(user_id),
               "ua": device.ua, "ip": device.ip}
    category = action = label = prop = schema = url = ""
    value: float | None = None
    data: dict | None = None
    if kind == "internal":
        category, action = "InternalEventTracking", internal or rng.choice(INTERNAL_EVENTS)
        label = rng.choice(("", "redis_hll", "merge_request"))
        value = float(rng.randint(1, 20)) if rng.random() < 0.4 else None
    elif kind == "ui":
        category, action, label, prop = rng.choice(UI_EVENTS)
        value = round(rng.uniform(0, 100), 2) if rng.random() < 0.5 else None
    if kind in ("internal", "ui"):
        payload |= {"se_ca": category, "se_ac": action}
        payload |= {"se_la": label} if label else {}
        payload |= {"se_pr": prop} if prop else {}
        payload |= {"se_va": repr(value)} if value is not None else {}
        event_type = "struct"
    elif kind == "page_view":
        url = f"{url_base}/-/merge_requests/{rng.randint(1, 400)}"
        payload |= {"e": "pv", "url": url, "page": "Merge request"}
        event_type = "page_view"
    else:
        schema, data = LINK_CLICK, {"targetUrl": f"{url_base}/-/issues/{rng.randint(1, 900)}", "elementId": "link"}
        inner = {"schema": UNSTRUCT, "data": {"schema": schema, "data": data}}
        encoded = {"ue_px": _b64(inner, rng)} if device.base64 else {"ue_pr": orjson.dumps(inner).decode()}
        payload |= {"e": "ue"} | encoded
        event_type = "unstruct"
    payload |= {"cx": _b64(contexts, rng)} if device.base64 else {"co": orjson.dumps(contexts).decode()}
    location = locate(device.ip)
    expected = ExpectedRow(
        event_id=eid, app_id=scope.app_id, platform=device.platform, event_type=event_type,
        event_category=category, event_action=action, event_label=label, event_property=prop, event_value=value,
        event_schema=schema, event_data=data, behavior_date=created_at.date(), created_at=created_at,
        user_id=str(user_id), namespace_id=scope.namespace_id,
        ultimate_parent_namespace_id=scope.ultimate_parent_namespace_id, project_id=project_id, plan=scope.plan,
        environment=scope.environment, source=scope.source, realm=scope.realm, deployment_type=scope.deployment_type,
        instance_id=scope.instance_id, host_name=scope.host_name, instance_version=scope.instance_version,
        context_extra=extra, geo_country=location.country, geo_region=location.region, geo_city=location.city,
        ua_family=ua_family(device.ua), page_url=url,
    )
    return GeneratedEvent(payload, device.tracker, created_at, created_at, device.skew_ms, expected)


def _moment(rng: random.Random, start: date, week: int) -> datetime:
    """A time inside the week, between 01:00 and 22:59 UTC so that transit delays never change the day."""
    day = start + timedelta(weeks=week, days=rng.randint(0, 6))
    return datetime(day.year, day.month, day.day, rng.randint(1, 22), rng.randint(0, 59), rng.randint(0, 59),
                    rng.randint(0, 999) * 1000, tzinfo=UTC)


def _saas_scope(ns: SaasNamespace, source: str) -> _Scope:
    return _Scope("denomas", "production", source, "saas", ".com", ns.plan, ns.namespace_id,
                  ns.ultimate_parent_namespace_id, host_name=SAAS_HOST, instance_version=SAAS_VERSION)


def _saas_events(rng: random.Random, namespaces: list[SaasNamespace], weeks: int, start: date) -> list[GeneratedEvent]:
    events = []
    devices: dict[int, _Device] = {}
    backend = _device(rng, "saas-backend", "srv")
    for ns in namespaces:
        for week in range(weeks):
            for user in ns.user_ids:
                if week < _joined_week(ns, user):
                    continue
                if ns.namespace_id == ns.ultimate_parent_namespace_id:  # every member signs in each week
                    events.append(_event(rng, backend, _saas_scope(ns, "denomas-rails"), user,
                                         _moment(rng, start, week), 0, f"https://{SAAS_HOST}/{ns.path}", "user_login"))
                device = devices.setdefault(user, _device(rng, f"browser-{user}", "web"))
                for _ in range(rng.choice((0, 1, 1, 2, 2, 3))):
                    sender = device if rng.random() < 0.7 else backend
                    scope = _saas_scope(ns, "denomas-javascript" if sender is device else "denomas-rails")
                    project = rng.choice(ns.project_ids + (0,))
                    url_base = f"https://{SAAS_HOST}/{ns.path}" + (f"/project-{project}" if project else "")
                    events.append(_event(rng, sender, scope, user, _moment(rng, start, week), project, url_base))
                if rng.random() < REVIEW_SESSION_RATE:
                    events += _review_session(rng, backend, ns, user, start, week)
    return events


def _joined_week(ns: SaasNamespace, user: int) -> int:
    """SaaS groups grow slowly, as Denomas.com's active users do (a few percent a month): the newest member of every
    fourth top-level group joins during the fleet's weeks, one group a month; everyone else is there from week 0."""
    index = ns.ultimate_parent_namespace_id - 20_001
    if index % 4 == 1 and ns.namespace_id == ns.ultimate_parent_namespace_id and user == ns.user_ids[-1]:
        return 2 + 4 * (index // 4)
    return 0


def _review_session(rng: random.Random, backend: _Device, ns: SaasNamespace, user: int, start: date,
                    week: int) -> list[GeneratedEvent]:
    """The backend's events of one REVIEW_SESSION of `user` in `ns` during `week`."""
    scope = _saas_scope(ns, "denomas-rails")
    project = rng.choice(ns.project_ids)
    url_base = f"https://{SAAS_HOST}/{ns.path}/project-{project}"
    return [_event(rng, backend, scope, user, _moment(rng, start, week), project, url_base, action)
            for action in REVIEW_SESSION]


def _instance_events(rng: random.Random, instances: int, weeks: int, seed: int,
                     start: date) -> tuple[list[GeneratedEvent], list[str]]:
    events, senders = [], []
    pings = generate_fleet(instances, weeks, seed=seed, start=start)
    by_instance: dict[str, list] = defaultdict(list)
    for ping in pings:
        by_instance[ping.uuid].append(ping)
    for uuid in sorted(by_instance):
        version = ""
        backend: _Device | None = None
        for ping in sorted(by_instance[uuid], key=lambda p: p.week):
            if ping.valid:
                version = str(ping.payload["version"])
            if not version:
                continue  # no valid ping yet: the instance's version is unknown
            backend = backend or _device(rng, f"instance-{uuid}", "srv")
            plan = _EDITION_PLAN.get(str(ping.payload.get("edition")), "free")
            users = range(1, min(int(ping.payload.get("active_user_count") or 1), 6) + 1)
            scope = _Scope("denomas_sm", "self-managed", "denomas-rails", "self-managed", "self-managed", plan,
                           instance_id=uuid, host_name=ping.hostname, instance_version=version)
            for user in users:
                for _ in range(rng.choice((0, 1, 2, 3))):
                    namespace = rng.randint(1, 30)
                    local = replace(scope, namespace_id=namespace, ultimate_parent_namespace_id=namespace)
                    url_base = f"https://{ping.hostname}/group-{namespace}"
                    events.append(_event(rng, backend, local, user, _moment(rng, start, ping.week),
                                         rng.randint(1, 200), url_base))
            if uuid not in senders:
                senders.append(uuid)
    return events, senders


# ---------------------------------------------------------------------------------------------------
# Defects, duplicates, late events


def _break(event: GeneratedEvent, defect: str, rng: random.Random) -> None:
    payload = event.payload
    if defect == "missing_e":
        del payload["e"]
    elif defect == "bad_base64_context":
        payload.pop("co", None)
        payload["cx"] = "eyJzY2hlbWEiOiAiaWdsdTpjb20u!!not*base64"
    elif defect == "context_schema_violation":
        payload.pop("cx", None)
        payload["co"] = orjson.dumps({"schema": CONTEXTS, "data": [
            {"schema": STANDARD, "data": {"plan": "premium", "namespace_id": -5}}]}).decode()
    elif defect == "unknown_event_code":
        payload["e"] = "zz"
    elif defect == "bad_eid":
        payload["eid"] = "not-a-uuid-" + str(rng.randint(1, 99))
    elif defect == "unregistered_schema":
        payload.pop("cx", None)
        payload["co"] = orjson.dumps({"schema": CONTEXTS, "data": [
            {"schema": "iglu:com.denomas/denomas_standard/jsonschema/9-0-0", "data": {"environment": "x"}}]}).decode()
    event.expected, event.defect = None, defect


def _bad_requests(rng: random.Random, weeks: int) -> list[GeneratedRequest]:
    good_event = {"e": "se", "se_ca": "c", "se_ac": "a", "tv": "py-1.1.0", "p": "srv"}
    result = []
    for n in range(max(1, weeks // 4)):
        body = orjson.dumps({"schema": PAYLOAD_DATA, "data": [good_event]})
        result += [
            GeneratedRequest(body[: rng.randint(10, len(body) - 5)], "not_json", 400),
            GeneratedRequest(orjson.dumps({"schema": "iglu:com.acme/batch/jsonschema/1-0-0", "data": [good_event]}),
                             "wrong_schema", 422),
            GeneratedRequest(orjson.dumps({"schema": PAYLOAD_DATA, "data": {"e": "se", "n": n}}), "data_not_list",
                             422),
        ]
    return result


def generate_snowplow(instances: int, weeks: int, seed: int = 42, start: date = date(2026, 6, 1),
                      namespaces: int | None = None) -> SnowplowFleet:
    """Events of `saas_namespaces(namespaces)` and of `generate_fleet(instances, weeks, seed, start)`'s instances."""
    rng = random.Random(f"denomas-snowplow:{seed}:events")
    spaces = saas_namespaces(namespaces if namespaces is not None else max(2, instances // 4), seed)
    events = _saas_events(rng, spaces, weeks, start)
    sm_events, senders = _instance_events(rng, instances, weeks, seed, start)
    events += sm_events
    for event in events:  # late: sent days later (offline device, queued backend)
        if rng.random() < LATE_RATE:
            event.sent_at, event.late = event.created_at + timedelta(days=rng.randint(2, 9)), True
    good = list(events)
    for position, index in enumerate(sorted(rng.sample(range(len(good)), max(1, round(len(good) * DEFECT_RATE))))):
        _break(good[index], EVENT_DEFECTS[position % len(EVENT_DEFECTS)], rng)
    originals = [e for e in good if e.expected is not None]
    for n, original in enumerate(rng.sample(originals, max(2, round(len(originals) * DUPLICATE_RATE)))):
        copy = dict(original.payload)
        conflict = n % 4 == 3  # every fourth copy reuses the id with other content
        if conflict:
            copy["se_la"] = "conflicting-copy"
        events.append(GeneratedEvent(copy, original.tracker, original.created_at,
                                     original.sent_at + timedelta(hours=rng.randint(1, 30)), original.skew_ms,
                                     None, duplicate=not conflict, conflict=conflict))
    events.sort(key=lambda e: (e.sent_at, e.tracker))
    return SnowplowFleet(events, _bad_requests(rng, weeks), spaces, senders)


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
