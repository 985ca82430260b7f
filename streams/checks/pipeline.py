"""Checks no dbt test can do on one table: freshness per source, dead-letter rate, xMAU month over month."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from streams.checks.model import Catalog
from streams.checks.spec import FAIL, PASS, WARN, Check, Result, outcome
from streams.metrics import reason_class
from streams.records import parse_timestamp
from streams.warehouse import Warehouse

_XMAU_BY = ("delivery", "xmau_type", "metrics_path")  # every series, when a declaration names no `by`


def freshness(warehouse: Warehouse, catalog: Catalog, check: Check, now: datetime) -> Result:
    """Age of the newest arrival (received_at / collector_tstamp) against the warn and error thresholds. A worker
    that stopped, a collector that publishes nowhere, a source that went quiet: all make the age grow."""
    column = catalog.column(check.table, check.params["time_column"])
    newest = warehouse.query(f"SELECT max({column}), count() FROM {catalog.source(check.table)}").rows[0]
    warn_s, error_s = check.params["warn_after_minutes"] * 60, check.params["error_after_minutes"] * 60
    threshold = f"warn > {warn_s:.0f} s, error > {error_s:.0f} s"
    if not int(newest[1]):
        return Result(check, FAIL, None, threshold, f"{check.table} holds no {check.params['source']} records")
    age = (now - parse_timestamp(str(newest[0]))).total_seconds()
    status = FAIL if age > error_s else WARN if age > warn_s else PASS
    message = "" if status == PASS else f"newest {column} {newest[0]} is {age:,.0f} s old"
    return Result(check, status, round(age, 3), threshold, message)


def dead_letter_rate(warehouse: Warehouse, catalog: Catalog, check: Check, now: datetime) -> list[Result]:
    """Dead letters of the source per stage and reason class, over landed + dead-lettered records of the window."""
    hours = float(check.params.get("window_hours", 24))
    column = catalog.column(check.table, check.params["time_column"])
    params = {"now": now.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], "hours": hours, "source": check.params["source"]}
    since = "{now:DateTime64(3, 'UTC')} - toIntervalSecond(toInt64({hours:Float64} * 3600))"
    landed = int(warehouse.query(f"SELECT count() FROM {catalog.source(check.table)} WHERE {column} > {since}",
                                 params).scalar() or 0)
    letters = warehouse.query(f"""
        SELECT stage, reason, count() FROM raw_dead_letter FINAL
        WHERE source = {{source:String}} AND received_at > {since} GROUP BY stage, reason""", params).rows
    counts: dict[str, int] = {}
    for stage, reason, n in letters:
        key = f"{stage}/{reason_class(reason)}"
        counts[key] = counts.get(key, 0) + int(n)
    total = landed + sum(counts.values())
    limit, minimum = float(check.params["max_rate"]), int(check.params.get("min_records", 0))
    threshold = f"<= {limit:.2%} of {total} records in {hours:g} h"
    if not counts:
        return [outcome(check, False, 0.0, threshold, scope="all")]
    return [outcome(check, total >= minimum and n / total > limit, round(n / total, 6), threshold,
                    f"{n} of {total} records dead-lettered ({n / total:.2%})", scope=key)
            for key, n in sorted(counts.items())]


def _xmau_series(warehouse: Warehouse, catalog: Catalog, check: Check) -> dict[tuple, list[tuple[Any, int]]]:
    """(by...) -> [(month, users)] over complete months: total_users_with_estimate summed over the series' rows."""
    by = [catalog.column(check.table, c) for c in check.params.get("by", _XMAU_BY)]
    types = check.params.get("xmau_types")
    where = " AND xmau_type IN JSONExtract({types:String}, 'Array(String)')" if types else ""
    keys = ", ".join(by)
    rows = warehouse.query(f"""
        SELECT {keys}, month, sum(total_users_with_estimate) FROM {catalog.source(check.table)}
        WHERE is_complete_month = 1{where} GROUP BY {keys}, month ORDER BY {keys}, month""",
                           {"types": orjson.dumps(types or []).decode()}).rows
    series: dict[tuple, list[tuple[Any, int]]] = {}
    for *key, month, users in rows:
        series.setdefault(tuple(key), []).append((month, int(users)))
    return series


def xmau_change(warehouse: Warehouse, catalog: Catalog, check: Check, now: datetime) -> list[Result]:
    """Each xMAU series moves at most max_change between consecutive complete months, as the seed's data team's
    alerts on estimated xMAU: UMAU per delivery; SMAU per stage and GMAU per group, leaving out series whose
    previous month is below min_users (newly instrumented, volatile). A series is `by` (columns of the table) over
    the `xmau_types` rows, its users total_users_with_estimate summed over its metrics."""
    limit, minimum = float(check.params["max_change"]), int(check.params.get("min_users", 0))
    threshold = f"|change| <= {limit:.0%}" + (f" (from >= {minimum:,} users)" if minimum else "")
    results = []
    for key, points in _xmau_series(warehouse, catalog, check).items():
        for (previous_month, previous), (month, users) in zip(points, points[1:], strict=False):
            if previous < minimum:
                continue  # the seed's exclusion: too small to judge
            change = (users - previous) / previous if previous else (0.0 if users == 0 else float("inf"))
            label = "/".join(str(k) for k in key)
            results.append(outcome(check, abs(change) > limit, round(change, 6), threshold,
                                   f"{label} {previous:,} ({previous_month}) -> {users:,} ({month}): {change:+.1%}",
                                   scope=f"{label}/{month}"))
    if not results:
        return [Result(check, PASS, None, threshold, "no series with two complete months to compare", "all")]
    return results
