"""Sample rows for the alert tests: a few installations, subscriptions, Seat Link reports and events, with
their values written out so tests can compute expectations by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from streams.event_metrics.refresh import mark_touched, refresh_pending
from streams.records import stable_id
from streams.warehouse import Warehouse

UMAU = "usage_activity_by_stage_monthly.manage.events"
MONDAY = date(2026, 6, 1)  # a Monday
TODAY = date(2026, 11, 30)

# installation -> (reported subscription, license md5, users per week; None = no ping that week)
INSTALLS = {
    "inst-a": ("sub-1", "md5-a", [100, 102, 101, 50, 48, 99, 100, None]),
    "inst-b": ("sub-1", "md5-b", [60, None, 62, 61, 60, 60, None, None]),  # misses week 1; stops after week 5
    "inst-c": ("sub-2", "md5-c", [300, 310, 305, 300, 298, 301, 303, 302]),
}
# UMAU: an error marker (-1) in week 2 of inst-a: never a value, never a drop
UMAU_VALUES = {"inst-a": [90, 91, -1, 45, 44, 88, 90, None], "inst-c": [250, 255, 250, 248, 100, 252, 251, 250]}

RULES = {
    "rules": [
        {"name": "inst_users", "scope": "instance", "signal": {"source": "service_ping"},
         "condition": {"type": "relative_drop", "min_drop_pct": 33}, "min_population": 10, "cooldown": "14d"},
        {"name": "inst_umau", "scope": "instance", "signal": {"source": "service_ping", "metric": UMAU},
         "condition": {"type": "relative_drop", "min_drop_pct": 33}, "resolve": {"recovery_pct": 80}},
        {"name": "sub_users", "scope": "subscription", "signal": {"source": "service_ping"},
         "condition": {"type": "absolute_drop", "min_drop": 40}, "carry_forward": "14d"},
        {"name": "acct_users", "scope": "account", "signal": {"source": "service_ping"},
         "condition": {"type": "relative_drop", "min_drop_pct": 10}, "carry_forward": "14d",
         "resolve": {"recovery_pct": 95}},
        {"name": "seat_inst", "scope": "instance", "signal": {"source": "seat_link"},
         "condition": {"type": "absolute_drop", "min_drop": 20}},
        {"name": "seat_sub", "scope": "subscription", "signal": {"source": "seat_link"},
         "condition": {"type": "relative_drop", "min_drop_pct": 20}},
        {"name": "ns_week", "scope": "namespace", "signal": {"source": "events", "window": "7d"},
         "condition": {"type": "relative_drop", "min_drop_pct": 40}, "min_population": 3},
        {"name": "sub_events", "scope": "subscription", "signal": {"source": "events", "window": "7d"},
         "condition": {"type": "relative_drop", "min_drop_pct": 40}},
    ]
}


def ts(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def ping_rows() -> list[dict]:
    rows = []
    for inst, (sub, md5, users) in INSTALLS.items():
        for week, count in enumerate(users):
            if count is not None:
                day = MONDAY + timedelta(weeks=week, days=2)
                rows.append({"ping_id": stable_id(inst, str(week)), "installation_id": inst, "instance_uuid": inst,
                             "recorded_at": ts(day), "active_user_count": count, "license_md5": md5,
                             "license_subscription_id": sub})
    return rows


def metric_rows(pings: list[dict]) -> list[dict]:
    rows = []
    for ping in pings:
        values = UMAU_VALUES.get(ping["installation_id"])
        week = (ping["recorded_at"].date() - MONDAY).days // 7
        if values is None or values[week] is None:
            continue
        value = values[week]
        rows.append({"ping_id": ping["ping_id"], "installation_id": ping["installation_id"],
                     "recorded_at": ping["recorded_at"], "metrics_path": UMAU,
                     "metric_value": float(value) if value >= 0 else None, "error_value": min(value, 0)})
    return rows


# Seat Link: daily billable users for inst-a and inst-c (sub-1 via license md5-a, sub-2 via the sha256 sha-c)
SEAT_DAYS = 6
SEATS = {"inst-a": [100, 100, 70, 72, 95, 96], "inst-c": [300, 290, 300, 301, 299, 300]}

# Events: namespace 7 and 8 (SaaS), users per day from EVENT_START; namespace 7 loses users in the last week.
# Namespace 7 also has events today (day 21), so yesterday is complete for it; namespace 8's last day is yesterday,
# so its series ends the day before (a day counts once a later day has events).
EVENT_START = TODAY - timedelta(days=21)
EVENT_DAYS = {7: 22, 8: 21}


def event_users(namespace: int, day_index: int) -> list[int]:
    if namespace == 7:
        return list(range(1, 11)) if day_index < 14 else [1, 2, 3]
    return [100 + (day_index % 5)]  # one user a day, five distinct users per 5 days


def reference(wh: Warehouse) -> None:
    """Licenses a, b -> sub-1 (by md5), c -> sub-2 (by sha256 only); both subscriptions -> acct-1."""
    now = datetime(2026, 11, 1, tzinfo=UTC)
    wh.insert("dim_license", [
        {"dim_license_id": "lic-a", "license_md5": "md5-a", "license_sha256": "", "dim_subscription_id": "sub-1",
         "updated_at": now, "is_deleted": 0},
        {"dim_license_id": "lic-b", "license_md5": "md5-b", "license_sha256": "", "dim_subscription_id": "sub-1",
         "updated_at": now, "is_deleted": 0},
        {"dim_license_id": "lic-c", "license_md5": "", "license_sha256": "sha-c", "dim_subscription_id": "sub-2",
         "updated_at": now, "is_deleted": 0},
    ])
    wh.insert("dim_subscription", [
        {"dim_subscription_id": "sub-1", "dim_crm_account_id": "acct-1", "updated_at": now, "is_deleted": 0},
        {"dim_subscription_id": "sub-2", "dim_crm_account_id": "acct-1", "updated_at": now, "is_deleted": 0},
    ])


def insert_seat_links(wh: Warehouse) -> None:
    rows = []
    for inst, counts in SEATS.items():
        for day_index, count in enumerate(counts):
            day = MONDAY + timedelta(days=day_index)
            rows.append({"seat_link_id": stable_id("seat", inst, str(day_index)), "installation_id": inst,
                         "license_md5": "md5-a" if inst == "inst-a" else "",
                         "license_sha256": "sha-c" if inst == "inst-c" else "",
                         "report_timestamp": ts(day, 3), "report_date": day, "active_user_count": count})
    wh.insert("fct_seat_link", rows)


def insert_events(wh: Warehouse) -> None:
    """Structured SaaS events of namespaces 7 and 8 (stored as the Snowplow sink does: facts, touched days, then
    the daily bitmaps recomputed), and both namespaces belonging to subscription sub-9."""
    events = []
    for namespace, days in EVENT_DAYS.items():
        for day_index in range(days):
            day = EVENT_START + timedelta(days=day_index)
            for user in event_users(namespace, day_index):
                events.append({"event_id": f"{namespace}-{day_index}-{user}", "event_type": "struct",
                               "event_action": "view", "derived_tstamp": ts(day), "collector_tstamp": ts(day),
                               "behavior_date": day, "user_hash": user, "namespace_id": namespace,
                               "ultimate_parent_namespace_id": namespace, "realm": "saas"})
    wh.insert("fct_behavior_structured_event", events)
    mark_touched(wh, {e["behavior_date"] for e in events})
    refresh_pending(wh)
    now = datetime(2026, 11, 1, tzinfo=UTC)
    wh.insert("dim_namespace", [
        {"namespace_id": 7, "dim_subscription_id": "sub-9", "updated_at": now, "is_deleted": 0},
        {"namespace_id": 8, "dim_subscription_id": "sub-9", "updated_at": now, "is_deleted": 0},
    ])
