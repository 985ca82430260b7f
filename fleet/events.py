"""A deterministic sample of behavior events, as rows of ``fct_behavior_structured_event``.

GitLab.com namespaces (SaaS events, realm 'saas' / deployment_type '.com') and self-managed instances (backend
events with an instance id and instance-local namespace ids) send internal events, other structured events,
page views and anonymous events. The rows arrive in batches by collector day, with what real traffic has:

- late events: sent days (up to 40) after they happened, so they land after their windows were first computed;
- duplicates: the same event_id again in a later batch or twice in one batch (a writer must store it once);
- users active in several namespaces (so SaaS-wide users are not the sum over namespaces);
- ``repeat``: every event emitted that many times with new ids, same user, day and scope: raw volume grows while
  the days x scopes x events grid (what the daily states hold) stays the same.

Everything derives from ``seed`` through one ``random.Random``.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

INTERNAL = "InternalEventTracking"
# (event_action, weight, carries a namespace on SaaS)
_EVENTS = (
    ("i_code_review_user_create_mr", 8, True),
    ("i_code_review_user_approve_mr", 6, True),
    ("i_code_review_user_merge_mr", 5, True),
    ("git_write_action", 10, True),
    ("g_edit_by_web_ide", 2, True),
    ("g_project_management_issue_created", 6, True),
    ("g_project_management_issue_closed", 4, True),
    ("i_package_maven_user", 2, True),
    ("i_package_npm_user", 3, True),
    ("package_pull", 4, True),
    ("user_login", 6, False),
    ("i_search_total", 4, False),
)
GITLAB_COM_INSTANCE = "ea8bf810-1d6f-4a6a-b4fd-93e8cbed0cb7"
LATE_RATE = 0.05
DUPLICATE_RATE = 0.03
ANONYMOUS_RATE = 0.08


@dataclass
class EventSample:
    batches: list[list[dict[str, Any]]]  # arrival order, duplicates included
    namespace_ids: list[int]  # top-level SaaS namespaces
    subscriptions: dict[int, str] = field(default_factory=dict)  # namespace -> subscription ('' = none)
    accounts: dict[str, str] = field(default_factory=dict)  # subscription -> CRM account

    def rows(self) -> list[dict[str, Any]]:
        return [row for batch in self.batches for row in batch]


def user_hash(seed: int, user: str) -> int:
    """A stable non-zero 64-bit hash, spread over the whole range like the real keyed hash."""
    value = int.from_bytes(hashlib.blake2b(f"{seed}:{user}".encode(), digest_size=8).digest(), "big")
    return value or 1


def _row(rng: random.Random, day: date, event_type: str, category: str, action: str, user: int,
         scope: dict[str, Any]) -> dict[str, Any]:
    moment = timedelta(seconds=rng.randrange(86400), milliseconds=rng.randrange(1000))
    derived = datetime.combine(day, time(), UTC) + moment
    late_days = rng.randint(1, 40) if rng.random() < LATE_RATE else 0
    collected = derived + timedelta(days=late_days, seconds=rng.randint(1, 30))
    return {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "app_id": "gitlab" if scope["realm"] != "self-managed" else "gitlab_sm",
        "platform": "srv" if scope["instance_id"] else "web",
        "event_type": event_type, "event_category": category, "event_action": action,
        "event_label": "", "event_property": "", "event_value": None, "event_schema": "", "event_data": "{}",
        "collector_tstamp": collected, "dvce_created_tstamp": derived, "dvce_sent_tstamp": collected,
        "derived_tstamp": derived, "behavior_date": derived.date(), "user_hash": user,
        "namespace_id": scope["namespace_id"], "ultimate_parent_namespace_id": scope["ultimate_parent_namespace_id"],
        "project_id": scope["project_id"], "plan": scope["plan"], "environment": "production",
        "source": "gitlab-rails" if scope["instance_id"] else "gitlab-javascript", "realm": scope["realm"],
        "deployment_type": scope["deployment_type"], "instance_id": scope["instance_id"], "host_name": scope["host"],
        "instance_version": "18.2.0", "context_extra": "{}", "geo_country": "DE", "geo_region": "", "geo_city": "",
        "ua_family": "Firefox", "ingested_at": collected + timedelta(seconds=1),
    }


def _saas_scope(rng: random.Random, top: int, with_namespace: bool) -> dict[str, Any]:
    if not with_namespace:
        namespace, parent = 0, 0
    elif rng.random() < 0.3:
        namespace, parent = top, 0  # only namespace_id set: the top-level namespace itself
    else:
        namespace, parent = top * 1000 + rng.randint(1, 3), top  # a subgroup
    realm, deployment = rng.choice((("saas", ".com"), ("saas", ""), ("", ".com")))
    return {"namespace_id": namespace, "ultimate_parent_namespace_id": parent, "project_id": rng.randint(1, 50),
            "plan": "premium" if top % 2 else "free", "realm": realm, "deployment_type": deployment,
            "instance_id": GITLAB_COM_INSTANCE if rng.random() < 0.5 else "", "host": "gitlab.com"}


def _sm_scope(rng: random.Random, instance_id: str, local_namespaces: list[int]) -> dict[str, Any]:
    # Namespace ids of a self-managed instance are its own: they collide with gitlab.com ids on purpose.
    top = rng.choice(local_namespaces)
    return {"namespace_id": top, "ultimate_parent_namespace_id": top, "project_id": rng.randint(1, 20),
            "plan": "free", "realm": "self-managed", "deployment_type": "self-managed",
            "instance_id": instance_id, "host": f"git.{instance_id[:8]}.example"}


def _actions(rng: random.Random) -> list[tuple[str, bool]]:
    names = [(name, ns) for name, _, ns in _EVENTS]
    weights = [weight for _, weight, _ in _EVENTS]
    return rng.choices(names, weights=weights, k=rng.randint(1, 4))


def _day_events(rng: random.Random, seed: int, day: date, namespaces: list[int], members: dict[int, list[str]],
                instances: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for top in namespaces:
        activity = 0.25 + 0.5 * (top % 3) / 2
        for member in members[top]:
            if rng.random() >= activity:
                continue
            for action, with_namespace in _actions(rng):
                anonymous = rng.random() < ANONYMOUS_RATE
                user = 0 if anonymous else user_hash(seed, member)
                rows.append(_row(rng, day, "struct", INTERNAL, action, user, _saas_scope(rng, top, with_namespace)))
            if rng.random() < 0.3:
                rows.append(_row(rng, day, "page_view", "", "", user_hash(seed, member), _saas_scope(rng, top, True)))
            if rng.random() < 0.2:
                rows.append(_row(rng, day, "struct", "projects:merge_requests:show", "click_button",
                                 user_hash(seed, member), _saas_scope(rng, top, True)))
    for index, instance in enumerate(instances):
        for member in range(6 + 3 * index):
            if rng.random() >= 0.45:
                continue
            for action, _ in _actions(rng):
                user = 0 if rng.random() < ANONYMOUS_RATE else user_hash(seed, f"sm{index}-{member}")
                rows.append(_row(rng, day, "struct", INTERNAL, action, user, _sm_scope(rng, instance, namespaces[:3])))
    return rows


def _repeated(rng: random.Random, rows: list[dict[str, Any]], repeat: int) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        out.append(row)
        for _ in range(repeat - 1):
            copy = dict(row, event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)))
            out.append(copy)
    return out


def generate_event_sample(seed: int = 11, start: date = date(2025, 1, 6), days: int = 70, namespaces: int = 6,
                          instances: int = 2, users: int = 40, repeat: int = 1) -> EventSample:
    """Events over ``days`` UTC days from ``start``, in arrival batches (one per collector day)."""
    rng = random.Random(seed)  # what happened
    noise = random.Random(seed + 1)  # repeats and duplicates: the same events whatever ``repeat`` is
    tops = [1000 + 17 * i for i in range(namespaces)]
    pool = [f"u{i}" for i in range(users)]
    members = {top: rng.sample(pool, k=max(3, users // 3)) for top in tops}  # overlapping memberships
    instance_ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(instances)]
    by_arrival: dict[date, list[dict[str, Any]]] = {}
    for offset in range(days):
        day = start + timedelta(days=offset)
        for row in _repeated(noise, _day_events(rng, seed, day, tops, members, instance_ids), repeat):
            by_arrival.setdefault(row["collector_tstamp"].date(), []).append(row)
            if noise.random() < DUPLICATE_RATE:  # redelivered later, or twice in the same batch
                resend = row["collector_tstamp"].date() + timedelta(days=noise.randint(0, 3))
                by_arrival.setdefault(resend, []).append(dict(row))
    subscriptions = {top: (f"sub-{i // 2}" if i < len(tops) - 1 else "") for i, top in enumerate(tops)}
    accounts = {sub: f"acct-{int(sub.split('-')[1]) // 2}" for sub in set(subscriptions.values()) if sub}
    batches = [by_arrival[day] for day in sorted(by_arrival)]
    return EventSample(batches, tops, subscriptions, accounts)
