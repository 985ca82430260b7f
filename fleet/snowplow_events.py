"""Generating the sample fleet's Snowplow events (`generate_snowplow`): SaaS namespaces' browser and backend events,
the self-managed instances' backend events in the weeks they send Service Pings, then late events, defects,
duplicates and event-id conflicts. The shapes, what each event must produce, and sending: fleet/snowplow.py.
"""

from __future__ import annotations

import base64
import random
import uuid as uuidlib
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from fleet.pings import generate_fleet
from streams.enrich.geo import locate
from streams.enrich.useragent import ua_family

if TYPE_CHECKING:
    pass

from fleet.snowplow import (
    BROWSERS,
    CONTEXTS,
    DEFECT_RATE,
    DUPLICATE_RATE,
    EDITION_PLAN,
    EVENT_DEFECTS,
    INTERNAL_EVENTS,
    IP_PREFIXES,
    LATE_RATE,
    LINK_CLICK,
    PAYLOAD_DATA,
    REVIEW_SESSION,
    REVIEW_SESSION_RATE,
    SAAS_HOST,
    SAAS_VERSION,
    STANDARD,
    UI_EVENTS,
    UNSTRUCT,
    ExpectedRow,
    GeneratedEvent,
    GeneratedRequest,
    SaasNamespace,
    SnowplowFleet,
    saas_namespaces,
)

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
        ua, tv = rng.choice(BROWSERS), "js-3.24.0"
    else:
        ua, tv = f"Denomas/{SAAS_VERSION} (Ruby; snowplow-tracker-ruby)", "rb-0.8.0"
    skew = rng.choice((0, 0, 0, 0, rng.randint(-90, 90) * 1000, rng.randint(-3, 3) * 3_600_000 + 1234,
                       rng.randint(-2, 2) * 86_400_000))
    ip = rng.choice(IP_PREFIXES) + str(rng.randint(1, 254))
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
            plan = EDITION_PLAN.get(str(ping.payload.get("edition")), "free")
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
