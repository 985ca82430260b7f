"""Alert signals on the real engine (chdb): the SQL series equal plain-Python computations over the rows
inserted, roll-ups carry values forward, Seat Link and event windows read through the reference mapping."""

from __future__ import annotations

from datetime import timedelta

import pytest

from streams.alerts.evaluate import Point
from streams.alerts.rules import parse_config
from streams.alerts.signals import SignalReader
from streams.config import Settings
from streams.warehouse import migrate, open_warehouse
from tests.support.alert_samples import (
    EVENT_DAYS,
    EVENT_START,
    INSTALLS,
    MONDAY,
    RULES,
    SEAT_DAYS,
    SEATS,
    TODAY,
    UMAU_VALUES,
    event_users,
    insert_events,
    insert_seat_links,
    metric_rows,
    ping_rows,
    reference,
)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    wh = open_warehouse(Settings.from_env())
    migrate(wh)
    pings = ping_rows()
    wh.insert("fct_ping_instance", pings)
    wh.insert("fct_ping_instance_metric", metric_rows(pings))
    reference(wh)
    insert_seat_links(wh)
    insert_events(wh)
    yield wh
    wh.close()


@pytest.fixture(scope="module")
def config():
    return parse_config(RULES, "test")


def _weekly(values: list) -> list[Point]:
    return [Point(MONDAY + timedelta(weeks=w), float(v)) for w, v in enumerate(values) if v is not None and v >= 0]


def test_instance_series_are_the_latest_value_per_week(warehouse, config):
    reader = SignalReader(warehouse)
    got = reader.series(config.rule("inst_users"), None)
    assert got == {inst: _weekly(users) for inst, (_, _, users) in INSTALLS.items()}
    umau = reader.series(config.rule("inst_umau"), ["inst-a", "inst-c"])
    assert umau == {inst: _weekly(values) for inst, values in UMAU_VALUES.items()}  # the -1 week is absent


def _carry_sum(members: dict[str, list], carry_weeks: int) -> list[Point]:
    """Independent roll-up: per week, each member's latest reported value from the last `carry_weeks`."""
    points = []
    for week in range(8):
        if all(values[week] is None for values in members.values()):
            continue
        total = 0.0
        for values in members.values():
            for back in range(carry_weeks):
                if week - back >= 0 and values[week - back] is not None:
                    total += values[week - back]
                    break
        points.append(Point(MONDAY + timedelta(weeks=week), total))
    return points


def test_subscription_and_account_rollups_carry_missing_weeks_forward(warehouse, config):
    reader = SignalReader(warehouse)
    users = {inst: u for inst, (_, _, u) in INSTALLS.items()}
    sub = reader.series(config.rule("sub_users"), ["sub-1", "sub-2"])
    assert sub["sub-1"] == _carry_sum({k: users[k] for k in ("inst-a", "inst-b")}, 2)
    assert sub["sub-2"] == _carry_sum({"inst-c": users["inst-c"]}, 2)
    # inst-b misses week 1: sub-1 in week 1 still counts its week-0 value (60), not a drop of 60
    assert sub["sub-1"][1] == Point(MONDAY + timedelta(weeks=1), 102 + 60)
    account = reader.series(config.rule("acct_users"), ["acct-1"])
    assert account == {"acct-1": _carry_sum(users, 2)}


def test_affected_scopes_follow_the_reference_mapping(warehouse, config):
    reader = SignalReader(warehouse)
    assert reader.affected(config.rule("sub_users"), "instance", ["inst-b"]) == {"sub-1"}
    assert reader.affected(config.rule("acct_users"), "instance", ["inst-c"]) == {"acct-1"}
    assert reader.affected(config.rule("inst_users"), "instance", ["inst-c"]) == {"inst-c"}
    assert reader.affected(config.rule("seat_sub"), "instance", ["inst-c"]) == {"sub-2"}
    assert reader.affected(config.rule("sub_events"), "namespace", ["8"]) == {"sub-9"}


def test_seat_link_series_per_day_and_subscription(warehouse, config):
    reader = SignalReader(warehouse)
    days = [MONDAY + timedelta(days=i) for i in range(SEAT_DAYS)]
    assert reader.series(config.rule("seat_inst"), None) == {
        inst: [Point(d, float(v)) for d, v in zip(days, counts, strict=True)] for inst, counts in SEATS.items()}
    # sub-1 through md5-a, sub-2 through the sha256 of its license
    assert reader.series(config.rule("seat_sub"), None) == {
        "sub-1": [Point(d, float(v)) for d, v in zip(days, SEATS["inst-a"], strict=True)],
        "sub-2": [Point(d, float(v)) for d, v in zip(days, SEATS["inst-c"], strict=True)]}


def _distinct_users(namespaces: tuple[int, ...], end_index: int, window: int) -> int:
    users = set()
    for day_index in range(max(0, end_index - window + 1), end_index + 1):
        for namespace in namespaces:
            users |= set(event_users(namespace, day_index))
    return len(users)


def test_event_windows_are_exact_distinct_users(warehouse, config):
    reader = SignalReader(warehouse)
    got = reader.series(config.rule("ns_week"), None, today=TODAY)
    # namespace 7 has events today: its windows end yesterday; namespace 8's newest events are yesterday's, so
    # yesterday may still be growing and its series ends the day before
    expected = {str(ns): [Point(EVENT_START + timedelta(days=i), float(_distinct_users((ns,), i, 7)))
                          for i in range(EVENT_DAYS[ns] - 1)] for ns in (7, 8)}
    assert got == expected
    union = reader.series(config.rule("sub_events"), ["sub-9"], today=TODAY)
    assert union == {"sub-9": [Point(EVENT_START + timedelta(days=i), float(_distinct_users((7, 8), i, 7)))
                               for i in range(21)]}  # distinct over both namespaces, not a sum
