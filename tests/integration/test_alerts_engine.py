"""The alert engine on the real engine (chdb): weeks land one at a time, the stored state carries between
landings, every alert opens and resolves once with a stable id, and a redelivered landing changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from streams.alerts import store
from streams.alerts.engine import Engine
from streams.alerts.landed import Landed
from streams.alerts.rules import parse_config
from streams.config import Settings
from streams.warehouse import migrate, open_warehouse
from tests.support.alert_samples import (
    MONDAY,
    RULES,
    SEATS,
    TODAY,
    insert_events,
    insert_seat_links,
    metric_rows,
    ping_rows,
    reference,
)


def test_engine_opens_and_resolves_once_incrementally(tmp_path):
    """Weeks land one at a time; the state lives in the warehouse (a new engine each week, as after a worker
    restart), ids are stable, and a redelivered landing changes nothing."""
    config = parse_config(RULES, "test")
    wh = open_warehouse(Settings.from_env())
    try:
        migrate(wh)
        reference(wh)
        events = []
        pings = ping_rows()
        for week in range(8):
            engine = Engine(wh, config, clock=lambda: datetime(2026, 11, 30, 12, tzinfo=UTC))
            landed = [p for p in pings if (p["recorded_at"].date() - MONDAY).days // 7 == week]
            wh.insert("fct_ping_instance", landed)
            wh.insert("fct_ping_instance_metric", metric_rows(landed))
            evaluation = engine.evaluate([Landed("service_ping", "instance", p["installation_id"]) for p in landed])
            assert evaluation.errors == {}
            store.write_evaluation(wh, evaluation.alert_rows, evaluation.state_rows)
            events += [e for _, e in evaluation.events]
            again = engine.evaluate([Landed("service_ping", "instance", p["installation_id"]) for p in landed])
            assert again.events == []  # a redelivered landing changes nothing
        got = sorted((e["rule"], e["scope"]["id"], e["state"], e["period"], e["value"]) for e in events)
        w = [(MONDAY + timedelta(weeks=i)).isoformat() for i in range(8)]
        assert got == sorted([
            ("inst_users", "inst-a", "open", w[3], 50), ("inst_users", "inst-a", "resolved", w[5], 99),
            # UMAU: week 2 is an error marker, so week 3 (45) compares with week 1 (91): -50.5 %
            ("inst_umau", "inst-a", "open", w[3], 45), ("inst_umau", "inst-a", "resolved", w[5], 88),
            ("inst_umau", "inst-c", "open", w[4], 100), ("inst_umau", "inst-c", "resolved", w[5], 252),
            # sub-1: 101+62=163 -> 50+61=111 (-52); recovers at 99+60=159 >= 0.9*163=146.7. In week 7 neither
            # installation reported: no point, no alert.
            ("sub_users", "sub-1", "open", w[3], 111), ("sub_users", "sub-1", "resolved", w[5], 159),
            # account = all three: week 3 = 50+61+300 = 411 vs 101+62+305 = 468 (-12.2 %); back at 99+60+301.
            ("acct_users", "acct-1", "open", w[3], 411), ("acct_users", "acct-1", "resolved", w[5], 460),
            # week 7: inst-c reports 302, inst-a's week-6 100 is carried, inst-b (last seen week 5) no longer
            # counts: 402 vs 100+60+303 = 463 (-13.2 %), past the 7-day cooldown: a new alert
            ("acct_users", "acct-1", "open", w[7], 402),
        ])
        opened = {e["alert_id"] for e in events if e["state"] == "open"}
        resolved = {e["alert_id"] for e in events if e["state"] == "resolved"}
        assert len(opened) == 6 and resolved < opened
        listed = {a["alert_id"]: a["state"] for a in store.list_alerts(wh)}
        assert listed == {i: "resolved" if i in resolved else "open" for i in opened}
        assert [a["scope_id"] for a in store.list_alerts(wh, open_only=True)] == ["acct-1"]
    finally:
        wh.close()


def test_engine_on_seat_link_and_event_landings(tmp_path):
    """Seat Link per installation and subscription; event windows per namespace and per subscription."""
    config = parse_config(RULES, "test")
    wh = open_warehouse(Settings.from_env())
    try:
        migrate(wh)
        reference(wh)
        insert_seat_links(wh)
        insert_events(wh)
        engine = Engine(wh, config, clock=lambda: datetime(TODAY.year, TODAY.month, TODAY.day, 9, tzinfo=UTC))
        evaluation = engine.evaluate([Landed("seat_link", "instance", i) for i in SEATS]
                                     + [Landed("events", "namespace", n) for n in ("7", "8")])
        assert evaluation.errors == {}
        got = sorted((e["rule"], e["scope"]["id"], e["state"], e["period"], e["value"], e["baseline"])
                     for _, e in evaluation.events)
        day = [(MONDAY + timedelta(days=i)).isoformat() for i in range(6)]
        yesterday = (TODAY - timedelta(days=1)).isoformat()
        assert got == sorted([
            # inst-a 100, 100, 70 (-30 >= 20), 72, 95 (>= 90 % of 100), 96; inst-c moves by 10 at most
            ("seat_inst", "inst-a", "open", day[2], 70, 100), ("seat_inst", "inst-a", "resolved", day[4], 95, 100),
            ("seat_sub", "sub-1", "open", day[2], 70, 100), ("seat_sub", "sub-1", "resolved", day[4], 95, 100),
            # namespace 7: 10 users a day for 14 days, then 3: the 7-day window ending yesterday has 3 users
            # against 10 in the window before it (-70 %); namespace 8 has the same 5 users in every window
            ("ns_week", "7", "open", yesterday, 3, 10),
            # sub-9 = namespaces 7 and 8, distinct users of both: 3 + 5 = 8 against 10 + 5 = 15 (-46.7 %)
            ("sub_events", "sub-9", "open", yesterday, 8, 15),
        ])
    finally:
        wh.close()
