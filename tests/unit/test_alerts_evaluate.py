"""Pure alert logic: each condition with hand-computed numbers, the state machine (one open alert per scope
and rule, cooldown, recovery), incremental evaluation equal to a full replay, roll-ups and window filling."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

from streams.alerts.evaluate import (
    Point,
    Scope,
    ScopeState,
    alert_event,
    alert_id_for,
    backtest,
    check,
    comparable_history,
    evaluate_scope,
    mad,
    median,
)
from streams.alerts.rules import Condition, parse_config
from streams.alerts.series import fill_days, rollup

MONDAY = date(2026, 6, 1)
SCOPE = Scope("instance", "inst-1")


def weeks(*values: float | None) -> list[Point]:
    return [Point(MONDAY + timedelta(weeks=i), float(v)) for i, v in enumerate(values) if v is not None]


def history(*values: float) -> list[Point]:
    """Comparable earlier points, newest first (periods do not matter to `check`)."""
    return [Point(MONDAY - timedelta(weeks=i + 1), float(v)) for i, v in enumerate(values)]


def rule(condition: dict, **extra):
    doc = {"name": "r", "scope": "instance", "signal": {"source": "service_ping"}, "condition": condition} | extra
    return parse_config({"rules": [doc]}, env={}).rule("r")


# ---------------------------------------------------------------------------------------------------
# Conditions


def test_relative_drop_fires_at_and_beyond_the_percentage():
    cond = Condition("relative_drop", min_drop_pct=33)
    # 200 -> 134 is exactly -33 %: fires (the comparison is done without rounding: 66 * 100 >= 33 * 200)
    result = check(cond, 134, history(200))
    assert (result.fired, result.baseline, result.threshold) == (True, 200, 134)
    assert check(cond, 134.01, history(200)).fired is False
    assert check(cond, 0, history(200)).fired is True
    assert check(cond, 150, history(100, 500)).fired is False  # only the previous period counts
    assert check(cond, 0, history(0)).fired is False  # nothing to drop from
    assert check(cond, 10, []).note == "no earlier period to compare with"


def test_absolute_drop():
    cond = Condition("absolute_drop", min_drop=50)
    assert (check(cond, 450, history(500)).fired, check(cond, 451, history(500)).fired) == (True, False)
    assert check(cond, 450, history(500)).threshold == 450


def test_median_and_mad_by_hand():
    assert median([4, 1, 3, 2]) == 2.5
    # 96 98 100 102 104: median 100; deviations 4 2 0 2 4 -> sorted 0 2 2 4 4 -> MAD 2
    assert (median([100, 104, 96, 102, 98]), mad([100, 104, 96, 102, 98])) == (100, 2)


def test_below_band_uses_median_minus_k_mad():
    cond = Condition("below_band", points=5, min_points=4, k=3)
    hist = history(100, 104, 96, 102, 98, 10)  # the sixth point is outside the 5 used
    result = check(cond, 93.9, hist)
    assert (result.fired, result.baseline, result.threshold) == (True, 100, 94)  # 100 - 3 * 2
    assert check(cond, 94, hist).fired is False  # strictly below the band
    wide = Condition("below_band", points=5, min_points=4, k=3, min_width_pct=10)
    assert check(wide, 91, hist).threshold == 90  # max(3 * 2, 10 % of 100) = 10
    assert check(wide, 91, hist).fired is False
    flat = Condition("below_band", points=4, min_points=4, k=3)
    assert check(flat, 49.9, history(50, 50, 50, 50)).threshold == 50  # MAD 0: any value below the median
    too_short = check(cond, 1, history(100, 100, 100))
    assert (too_short.fired, too_short.note) == (False, "band needs 4 earlier points, has 3")


def test_min_population_ignores_small_scopes():
    cond = Condition("relative_drop", min_drop_pct=50)
    small = check(cond, 1, history(9), min_population=10)
    assert (small.fired, small.note) == (False, "baseline 9 below min_population 10")
    assert check(cond, 1, history(10), min_population=10).fired is True
    band = Condition("below_band", points=3, min_points=3, k=1)
    assert check(band, 0, history(8, 9, 10), min_population=10).fired is False  # median 9 < 10


def test_comparable_history_steps_over_gaps_and_whole_windows():
    points = weeks(1, 2, None, 4, 5)  # week 2 missing
    assert [p.value for p in comparable_history(points[:-1], points[-1].period, 7, 3)] == [4, 2, 1]
    daily = [Point(MONDAY + timedelta(days=i), float(i)) for i in range(30)]
    # a 7-day window ending on day 29 is compared with the windows ending on days 22, 15, 8
    assert [p.value for p in comparable_history(daily[:29], daily[29].period, 7, 3)] == [22, 15, 8]


# ---------------------------------------------------------------------------------------------------
# The state machine


DROP = {"type": "relative_drop", "min_drop_pct": 30}


def summary(transitions):
    return [(t.state, (t.period - MONDAY).days // 7, t.value, t.baseline) for t in transitions]


def test_one_alert_while_low_resolved_when_recovered():
    r = rule(DROP, resolve={"recovery_pct": 90})
    transitions, state = evaluate_scope(r, SCOPE, weeks(100, 100, 60, 40, 30, 85, 95, 96))
    # opens at 60 (-40 %); 40 and 30 stay in the same alert; 85 < 90 % of 100; 95 resolves
    assert summary(transitions) == [("open", 2, 60, 100), ("resolved", 6, 95, 100)]
    assert transitions[0].alert_id == transitions[1].alert_id == alert_id_for("r", SCOPE, MONDAY + timedelta(weeks=2))
    assert (transitions[0].threshold, transitions[0].recovery) == (70, 90)
    assert state == ScopeState(MONDAY + timedelta(weeks=7), MONDAY + timedelta(weeks=6),
                               MONDAY + timedelta(weeks=6), None)


def test_cooldown_keeps_a_recovered_scope_quiet():
    r = rule(DROP, cooldown="14d")
    values = (100, 50, 100, 50, 100, 100, 50)
    # resolved in week 2; week 3's drop is 7 days later (< 14): quiet; week 6's drop (28 days) opens
    assert summary(evaluate_scope(r, SCOPE, weeks(*values))[0]) == [
        ("open", 1, 50, 100), ("resolved", 2, 100, 100), ("open", 6, 50, 100)]
    no_cooldown = rule(DROP, cooldown=0)
    assert summary(evaluate_scope(no_cooldown, SCOPE, weeks(*values))[0]) == [
        ("open", 1, 50, 100), ("resolved", 2, 100, 100), ("open", 3, 50, 100), ("resolved", 4, 100, 100),
        ("open", 6, 50, 100)]


def test_below_band_alert_resolves_against_the_band_median():
    r = rule({"type": "below_band", "points": 4, "min_points": 4, "k": 3}, resolve={"recovery_pct": 95})
    # history 100 102 98 100 -> median 100, MAD 1 -> band 97; 96 opens; 95 of 100 resolves at 95
    transitions, _ = evaluate_scope(r, SCOPE, weeks(100, 102, 98, 100, 96, 90, 95))
    assert summary(transitions) == [("open", 4, 96, 100), ("resolved", 6, 95, 100)]
    assert transitions[0].threshold == 97


def test_incremental_evaluation_equals_a_full_replay():
    """Points arriving in chunks (with the state carried) give exactly the transitions of one replay."""
    rng = random.Random(5)
    r = rule(DROP, cooldown="7d")
    total = 0
    for _ in range(50):
        values = [rng.choice((100, 100, 95, 60, 40, 105)) for _ in range(20)]
        points = weeks(*values)
        full, full_state = evaluate_scope(r, SCOPE, points)
        state, pieces = None, []
        for end in sorted(rng.sample(range(1, 20), 4)) + [20]:
            got, state = evaluate_scope(r, SCOPE, points[:end], state)  # everything so far is in the warehouse
            pieces += got
            assert evaluate_scope(r, SCOPE, points[:end], state) == ([], state)  # a redelivered landing
        assert pieces == full and state == full_state
        total += len(full)
    assert total > 100  # the series do drop and recover


def test_the_newest_period_is_looked_at_again_when_it_grows():
    """A roll-up's week can grow as more installations report: first partial (no drop), then complete."""
    r = rule(DROP)
    _, state = evaluate_scope(r, SCOPE, weeks(100, 100))
    opened, state = evaluate_scope(r, SCOPE, weeks(100, 100, 90), state)  # partial week 2
    assert opened == []
    opened, state = evaluate_scope(r, SCOPE, weeks(100, 100, 50), state)  # the same week, complete
    assert summary(opened) == [("open", 2, 50, 100)]
    assert evaluate_scope(r, SCOPE, weeks(100, 100, 100), state)[0] == []  # never two changes in one period


def test_backtest_over_several_scopes_and_a_date_range():
    r = rule(DROP)
    series = {Scope("instance", "b"): weeks(100, 50, 100), Scope("instance", "a"): weeks(10, 10, 5, 5)}
    everything = backtest(r, series)
    assert [(t.scope.id, t.state, (t.period - MONDAY).days // 7) for t in everything] == [
        ("b", "open", 1), ("a", "open", 2), ("b", "resolved", 2)]
    assert len(backtest(r, series, start=MONDAY + timedelta(weeks=2))) == 2
    assert len(backtest(r, series, end=MONDAY + timedelta(weeks=1))) == 1


def test_alert_event_json():
    r = rule(DROP, description="users fell")
    transitions, _ = evaluate_scope(r, SCOPE, weeks(200, 120, 190))
    detected = datetime(2026, 7, 1, 12, tzinfo=UTC)
    opened = alert_event(r, transitions[0], detected, landed_at="2026-07-01T11:59:59+00:00")
    assert opened == {
        "event_id": f"{transitions[0].alert_id}:open", "alert_id": transitions[0].alert_id, "state": "open",
        "rule": "r", "description": "users fell", "scope": {"type": "instance", "id": "inst-1"},
        "signal": {"source": "service_ping", "measure": "active_user_count", "period": "week"},
        "condition": {"type": "relative_drop", "min_drop_pct": 30},
        "period": "2026-06-08", "opened_period": "2026-06-08", "value": 120, "baseline": 200, "threshold": 140,
        "recovery_level": 180, "opened_value": 120, "change_pct": -40.0,
        "detected_at": "2026-07-01T12:00:00+00:00", "opened_at": "2026-07-01T12:00:00+00:00", "resolved_at": None,
        "landed_at": "2026-07-01T11:59:59+00:00",
    }
    resolved = alert_event(r, transitions[1], detected + timedelta(days=7), opened_at=detected)
    assert (resolved["state"], resolved["value"], resolved["change_pct"], resolved["opened_at"],
            resolved["resolved_at"]) == ("resolved", 190, -5.0, detected.isoformat(),
                                         (detected + timedelta(days=7)).isoformat())


# ---------------------------------------------------------------------------------------------------
# Series helpers


def test_rollup_carries_a_members_value_forward_within_the_window():
    w = [MONDAY + timedelta(weeks=i) for i in range(5)]
    rows = [("s", "a", w[0], 10), ("s", "b", w[0], 5), ("s", "a", w[1], 12),  # b misses week 1
            ("s", "a", w[2], 11), ("s", "b", w[2], 6), ("s", "a", w[4], 9)]  # b stops; a misses week 3
    assert rollup(rows, carry_days=14) == {"s": [
        Point(w[0], 15), Point(w[1], 12 + 5), Point(w[2], 17),
        Point(w[4], 9)]}  # week 4: b's week-2 value is 14 days old: no longer counted; no row in week 3
    assert rollup(rows, carry_days=21)["s"][-1] == Point(w[4], 9 + 6)


def test_fill_days_counts_silent_days_as_zero():
    day = [MONDAY + timedelta(days=i) for i in range(5)]
    assert fill_days({"n": [Point(day[1], 3), Point(day[3], 2)], "m": [Point(day[2], 1)]},
                     {"n": day[4], "m": day[1]}) == {
        "n": [Point(day[1], 3), Point(day[2], 0), Point(day[3], 2), Point(day[4], 0)]}  # m ends before it starts
