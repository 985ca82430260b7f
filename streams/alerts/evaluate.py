"""Rule evaluation, pure: conditions, the per-scope state machine, and replay over history.

A scope's signal is a series of points (period, value), oldest first. For each point not yet evaluated the
state machine either opens an alert (the condition holds, the scope is big enough, it is not cooling down),
resolves the open one (the value is back to `recovery_pct` % of the baseline it dropped from), or does
nothing. At most one alert per scope and rule is open; ids are stable (rule + scope + opening period), so
evaluating the same data twice produces the same alerts. Replaying a whole series from an empty state is the
backtest.

"Comparable" earlier points are one `step_days` apart: the previous week of a weekly series, or the previous
whole window of a rolling 7/28-day window series (so windows that share days are never compared).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from streams.alerts.rules import Condition, Rule
from streams.records import stable_id

OPEN, RESOLVED = "open", "resolved"


@dataclass(frozen=True, order=True)
class Point:
    period: date  # the week's Monday, or the day (the last day of a rolling window)
    value: float


@dataclass(frozen=True, order=True)
class Scope:
    type: str  # instance, subscription, account, namespace
    id: str


@dataclass(frozen=True)
class OpenAlert:
    alert_id: str
    opened_period: date
    value: float
    baseline: float
    threshold: float


@dataclass(frozen=True)
class ScopeState:
    """What the evaluator remembers per rule and scope (stored in alert_scope_state)."""

    evaluated_through: date | None = None  # newest period already evaluated
    last_change: date | None = None  # period of the last open/resolve: never two transitions at one period
    last_resolved: date | None = None  # start of the cooldown
    open: OpenAlert | None = None


@dataclass(frozen=True)
class Check:
    """The condition on one point: did it fire, against which baseline, below which threshold."""

    fired: bool
    baseline: float | None = None  # previous comparable value, or the band's median
    threshold: float | None = None  # the condition holds below (relative/absolute: at or below) this value
    note: str = ""  # why it could not fire, when it could not


@dataclass(frozen=True)
class Transition:
    rule: str
    scope: Scope
    state: str  # open | resolved
    alert_id: str
    period: date  # the period whose value opened or resolved the alert
    value: float
    baseline: float  # what the value dropped from (kept from the opening)
    threshold: float  # the level the condition fired at
    recovery: float  # the level the value must reach again to resolve the alert
    opened_period: date
    opened_value: float

    @property
    def event_id(self) -> str:
        return f"{self.alert_id}:{self.state}"


# ---------------------------------------------------------------------------------------------------
# Conditions


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def mad(values: Sequence[float]) -> float:
    """Median absolute deviation from the median (unscaled)."""
    center = median(values)
    return median([abs(v - center) for v in values])


def comparable_history(earlier: Sequence[Point], period: date, step_days: int, limit: int) -> list[Point]:
    """Up to `limit` earlier points, newest first, each at least `step_days` before the one after it.

    `earlier` is sorted oldest first and holds only points before `period`. A gap (a missed week) is
    skipped over: the newest point at least one step back is used.
    """
    chosen: list[Point] = []
    cutoff = period - timedelta(days=step_days)
    for point in reversed(earlier):
        if len(chosen) >= limit:
            break
        if point.period <= cutoff:
            chosen.append(point)
            cutoff = point.period - timedelta(days=step_days)
    return chosen


def check(condition: Condition, value: float, history: Sequence[Point], min_population: float = 0.0) -> Check:
    """Does `value` meet the condition, given the comparable history (newest first)?"""
    if condition.type == "below_band":
        values = [p.value for p in history[: condition.points]]
        if len(values) < condition.min_points:
            return Check(False, note=f"band needs {condition.min_points} earlier points, has {len(values)}")
        center = median(values)
        width = max(condition.k * mad(values), center * condition.min_width_pct / 100.0)
        baseline, threshold = center, center - width
        fired = value < threshold
    else:
        if not history:
            return Check(False, note="no earlier period to compare with")
        baseline = history[0].value
        if condition.type == "relative_drop":
            threshold = baseline * (1.0 - condition.min_drop_pct / 100.0)
            fired = baseline > 0 and (baseline - value) * 100.0 >= condition.min_drop_pct * baseline
        else:
            threshold = baseline - condition.min_drop
            fired = baseline - value >= condition.min_drop
    if baseline < min_population:
        return Check(False, baseline, threshold, note=f"baseline {baseline:g} below min_population {min_population:g}")
    return Check(fired, baseline, threshold)


# ---------------------------------------------------------------------------------------------------
# The state machine


def alert_id_for(rule: str, scope: Scope, opened_period: date) -> str:
    """Stable per rule + scope + opening: re-evaluating the same data opens the same alert."""
    return f"{stable_id(rule, scope.type, scope.id, opened_period.isoformat()):016x}"


def recovery_level(rule: Rule, baseline: float) -> float:
    return baseline * rule.recovery_pct / 100.0


def step(rule: Rule, scope: Scope, state: ScopeState, point: Point,
         history: Sequence[Point]) -> tuple[ScopeState, Transition | None]:
    """Evaluate one new point. `history` = comparable earlier points, newest first."""
    state = replace(state, evaluated_through=max(point.period, state.evaluated_through or point.period))
    if state.open is not None:
        alert = state.open
        recovery = recovery_level(rule, alert.baseline)
        if point.value < recovery or point.period <= alert.opened_period:
            return state, None
        done = Transition(rule.name, scope, RESOLVED, alert.alert_id, point.period, point.value, alert.baseline,
                          alert.threshold, recovery, alert.opened_period, alert.value)
        return replace(state, open=None, last_change=point.period, last_resolved=point.period), done
    if state.last_resolved is not None and (point.period - state.last_resolved).days < rule.cooldown_days:
        return state, None
    result = check(rule.condition, point.value, history, rule.min_population)
    if not result.fired or result.baseline is None or result.threshold is None:
        return state, None
    alert_id = alert_id_for(rule.name, scope, point.period)
    opened = OpenAlert(alert_id, point.period, point.value, result.baseline, result.threshold)
    event = Transition(rule.name, scope, OPEN, alert_id, point.period, point.value, result.baseline,
                       result.threshold, recovery_level(rule, result.baseline), point.period, point.value)
    return replace(state, open=opened, last_change=point.period), event


def history_limit(rule: Rule) -> int:
    return rule.condition.points if rule.condition.type == "below_band" else 1


def due(state: ScopeState, period: date) -> bool:
    """Is this point new for the state? The newest evaluated period is looked at again (a roll-up's week
    can grow as more installations report) unless it already caused a transition."""
    if state.evaluated_through is None or period > state.evaluated_through:
        return True
    return period == state.evaluated_through and state.last_change != period


def evaluate_scope(rule: Rule, scope: Scope, points: Sequence[Point],
                   state: ScopeState | None = None) -> tuple[list[Transition], ScopeState]:
    """Walk the points the state has not seen yet, oldest first; return the transitions and the new state."""
    state = state or ScopeState()
    ordered = sorted(points)
    transitions: list[Transition] = []
    for index, point in enumerate(ordered):
        if not due(state, point.period):
            continue
        history = comparable_history(ordered[:index], point.period, rule.signal.step_days, history_limit(rule))
        state, transition = step(rule, scope, state, point, history)
        if transition is not None:
            transitions.append(transition)
    return transitions, state


def backtest(rule: Rule, series: dict[Scope, list[Point]], start: date | None = None,
             end: date | None = None, progress: Callable[[int, int], object] | None = None) -> list[Transition]:
    """What the rule would have fired over this history (all of it is used as baseline), within [start, end];
    `progress(done, total)` after each scope."""
    fired = []
    for done, scope in enumerate(sorted(series), 1):
        transitions, _ = evaluate_scope(rule, scope, series[scope])
        fired += [t for t in transitions if (start is None or t.period >= start) and (end is None or t.period <= end)]
        if progress is not None:
            progress(done, len(series))
    return sorted(fired, key=lambda t: (t.period, t.scope, t.state))


# ---------------------------------------------------------------------------------------------------
# The event published on usage.alerts and sent to webhooks


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def alert_event(rule: Rule, transition: Transition, detected_at: datetime, opened_at: datetime | None = None,
                landed_at: str | None = None) -> dict[str, Any]:
    """The JSON event for one transition. `landed_at`: when the data that triggered it was stored."""
    t = transition
    change = (t.value - t.baseline) / t.baseline * 100.0 if t.baseline else None
    condition: dict[str, Any] = {"type": rule.condition.type}
    if rule.condition.type == "relative_drop":
        condition["min_drop_pct"] = _number(rule.condition.min_drop_pct)
    elif rule.condition.type == "absolute_drop":
        condition["min_drop"] = _number(rule.condition.min_drop)
    else:
        condition |= {"points": rule.condition.points, "k": _number(rule.condition.k),
                      "min_width_pct": _number(rule.condition.min_width_pct)}
    signal = {"source": rule.signal.source, "measure": rule.signal.measure, "period": rule.signal.period}
    if rule.signal.metric:
        signal["metric"] = rule.signal.metric
    if rule.signal.source == "events":
        signal["window_days"] = rule.signal.window_days
    return {
        "event_id": t.event_id,
        "alert_id": t.alert_id,
        "state": t.state,
        "rule": rule.name,
        "description": rule.description,
        "scope": {"type": t.scope.type, "id": t.scope.id},
        "signal": signal,
        "condition": condition,
        "period": t.period.isoformat(),
        "opened_period": t.opened_period.isoformat(),
        "value": _number(t.value),
        "baseline": _number(t.baseline),
        "threshold": _number(t.threshold),
        "recovery_level": _number(t.recovery),
        "opened_value": _number(t.opened_value),
        "change_pct": change,
        "detected_at": detected_at.isoformat(),
        "opened_at": (opened_at or detected_at).isoformat(),
        "resolved_at": detected_at.isoformat() if t.state == RESOLVED else None,
        "landed_at": landed_at,
    }
