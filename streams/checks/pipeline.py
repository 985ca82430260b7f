"""Checks no dbt test can do on one table: freshness per source, dead-letter rate, xMAU month over month."""

from __future__ import annotations

from datetime import datetime

from streams.checks.model import Catalog
from streams.checks.spec import FAIL, PASS, WARN, Check, Result, outcome
from streams.enrich.service_ping import parse_timestamp
from streams.metrics import reason_class
from streams.warehouse import Warehouse


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


def xmau_change(warehouse: Warehouse, catalog: Catalog, check: Check, now: datetime) -> list[Result]:
    """Each xMAU series (delivery x xmau_type x metric) moves at most max_change between consecutive complete
    months (the seed's data team alerts beyond +/-10 %)."""
    rows = warehouse.query(f"""
        SELECT delivery, xmau_type, metrics_path, month, total_users_with_estimate,
               lagInFrame(toNullable(total_users_with_estimate)) OVER w AS previous,
               lagInFrame(toNullable(month)) OVER w AS previous_month
        FROM {catalog.source(check.table)} WHERE is_complete_month = 1
        WINDOW w AS (PARTITION BY delivery, xmau_type, metrics_path ORDER BY month
                     ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
        ORDER BY delivery, xmau_type, metrics_path, month""").rows
    limit = float(check.params["max_change"])
    results = []
    for delivery, xmau_type, path, month, users, previous, previous_month in rows:
        if previous is None:
            continue
        change = (users - previous) / previous if previous else (0.0 if users == 0 else float("inf"))
        scope = f"{delivery}/{xmau_type}/{path}/{month}"
        results.append(outcome(check, abs(change) > limit, round(change, 6), f"|change| <= {limit:.0%}",
                               f"{xmau_type} {delivery} {previous:,} ({previous_month}) -> {users:,} ({month}): "
                               f"{change:+.1%}", scope=scope))
    if not results:
        return [Result(check, PASS, None, f"|change| <= {limit:.0%}", "no two complete months yet", "all")]
    return results
