"""Stored rows -> one series per scope (pure).

Service Ping and Seat Link report per installation; a subscription's (or account's) value for a period is
the sum over its installations of each one's latest value, a value carrying forward for `carry_days` when
an installation has not reported in that period yet (its ping may simply not have arrived). So a period
where only some installations reported does not look like a drop. An installation that stopped reporting
stops counting after `carry_days`.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, timedelta

from streams.alerts.evaluate import Point

Row = tuple[str, date, float]  # scope id, period, value
MemberRow = tuple[str, str, date, float]  # group id, member id, period, value


def by_scope(rows: Iterable[Row]) -> dict[str, list[Point]]:
    """One point per (scope, period); rows must already be one per period (the SQL takes the latest)."""
    series: dict[str, list[Point]] = defaultdict(list)
    for scope_id, period, value in rows:
        series[scope_id].append(Point(period, float(value)))
    return {scope_id: sorted(points) for scope_id, points in series.items()}


def rollup(rows: Iterable[MemberRow], carry_days: int) -> dict[str, list[Point]]:
    """Sum members per group and period, carrying each member's latest value forward up to `carry_days`.

    A group has a point for every period at least one member reported in. For period P a member counts
    with its value at the newest period p <= P with (P - p) < carry_days (p == P always counts).
    """
    members: dict[str, dict[str, dict[date, float]]] = defaultdict(lambda: defaultdict(dict))
    for group, member, period, value in rows:
        members[group][member][period] = float(value)
    result: dict[str, list[Point]] = {}
    for group, by_member in members.items():
        periods = sorted({p for values in by_member.values() for p in values})
        sorted_members = {m: sorted(values) for m, values in by_member.items()}
        points = []
        for period in periods:
            total = 0.0
            for member, member_periods in sorted_members.items():
                at = bisect.bisect_right(member_periods, period) - 1
                if at >= 0 and (period - member_periods[at]).days < max(carry_days, 1):
                    total += by_member[member][member_periods[at]]
            points.append(Point(period, total))
        result[group] = points
    return result


def fill_days(series: dict[str, list[Point]], ends: dict[str, date]) -> dict[str, list[Point]]:
    """Daily window series: a day without a row had no active user in its window, so its value is 0.

    Days are filled from a scope's first point up to its end (`ends[scope]`).
    """
    filled = {}
    for scope_id, points in series.items():
        if not points:
            continue
        known = {p.period: p.value for p in points}
        day, out = points[0].period, []
        while day <= ends[scope_id]:
            out.append(Point(day, known.get(day, 0.0)))
            day += timedelta(days=1)
        if out:
            filled[scope_id] = out
    return filled
