"""Query cost at 1x, 10x and 100x raw event volume: 28-day active users per namespace over a quarter (reads the
daily states) and the monthly xMAU table. Raw events are generated inside the engine (INSERT ... SELECT from
numbers()), at the engine's own speed; the daily states are then recomputed from them for every day, as the sink
does for the days it touched (timed: the cost of a full rebuild of the derived tables at that volume)."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

from bench.common import Result
from streams.event_metrics.read import active_users_28d
from streams.event_metrics.refresh import mark_all_touched, rebuild_event_metrics, refresh_pending
from streams.warehouse import migrate
from streams.warehouse_service.embedded import ChdbWarehouse

NAMESPACES = 20
USERS_PER_NAMESPACE = 30  # a fixed population: more raw events means users doing more, not more users
DAYS = 120  # the quarter queried plus the 28 days before it
FIRST_DAY = date(2026, 3, 1)
QUARTER = (date(2026, 4, 1), date(2026, 6, 29))
BASE_EVENTS = 100_000

# Synthetic SaaS events: namespace, user and day spread by hashes of the row number; user_hash is a full
# 64-bit value, as real keyed hashes are.
_INSERT = """
INSERT INTO fct_behavior_structured_event
    (event_id, app_id, platform, event_type, event_category, event_action, collector_tstamp, derived_tstamp,
     behavior_date, user_hash, namespace_id, ultimate_parent_namespace_id, plan, environment, realm,
     deployment_type, ingested_at)
SELECT toString(generateUUIDv4()), 'denomas', 'srv', 'struct',
       arrayElement(['projects', 'issues', 'merge_requests', 'pipelines'], 1 + (n % 4)),
       arrayElement(['view', 'create', 'update'], 1 + intDiv(n, 4) % 3),
       ts, ts, toDate(ts),
       sipHash64(concat('user-', toString(ns), '-', toString(cityHash64(n, 7) % {users:UInt64}))), ns, ns,
       'ultimate', 'production', 'saas', '.com', now64(3)
FROM (SELECT number + {offset:UInt64} AS n, 20001 + cityHash64(n, 3) % {namespaces:UInt64} AS ns,
             toDateTime64({first:Date}, 3, 'UTC') + toIntervalSecond(cityHash64(n, 11) % ({days:UInt64} * 86400)) AS ts
      FROM numbers({count:UInt64}))
"""


_RAW_ROLLING = """
SELECT end_day, ultimate_parent_namespace_id, uniqExact(user_hash)
FROM (SELECT behavior_date + arrayJoin(range(28)) AS end_day, ultimate_parent_namespace_id, user_hash
      FROM fct_behavior_structured_event FINAL
      WHERE behavior_date BETWEEN {lo:Date} - 27 AND {hi:Date} AND user_hash != 0)
WHERE end_day BETWEEN {lo:Date} AND {hi:Date}
GROUP BY end_day, ultimate_parent_namespace_id
"""


def _add_events(warehouse: ChdbWarehouse, offset: int, count: int) -> None:
    step = 1_000_000
    for start in range(0, count, step):
        warehouse.execute(_INSERT, {"users": USERS_PER_NAMESPACE, "namespaces": NAMESPACES, "offset": offset + start,
                                    "count": min(step, count - start), "first": FIRST_DAY.isoformat(),
                                    "days": DAYS})


def _wait_for_merges(warehouse: ChdbWarehouse, timeout: float = 120) -> None:
    """Let background merges of the freshly inserted parts finish: on 2 cores they would share the CPU with
    the timed query (a cost of the insert, not of the query)."""
    deadline = time.monotonic() + timeout
    while warehouse.query("SELECT count() FROM system.merges").scalar() and time.monotonic() < deadline:
        time.sleep(0.2)


def _time(work) -> tuple[float, int]:
    best, rows_read = float("inf"), 0
    for _ in range(3):
        started = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - started)
        rows_read = result.rows_read
    return best, rows_read


def run(bootstrap: str, workdir: Path, quick: bool, progress) -> list[Result]:
    scales = (1, 10) if quick else (1, 10, 100)
    warehouse = ChdbWarehouse(workdir / "queries")
    results: list[Result] = []
    try:
        migrate(warehouse)
        loaded = 0
        baseline_ms = None
        for scale in scales:
            target = BASE_EVENTS * scale
            progress(f"  {target:,} raw events ({scale}x): generating in the engine, recomputing the daily states")
            _add_events(warehouse, loaded, target - loaded)
            loaded = target
            started = time.perf_counter()
            mark_all_touched(warehouse)
            refresh_pending(warehouse, today=QUARTER[1])
            results.append(Result(f"recompute every day's states and metrics from the facts, {scale}x raw",
                                  time.perf_counter() - started, "s", None, "", f"{DAYS} days"))
            warehouse.execute("OPTIMIZE TABLE agg_behavior_active_daily FINAL")  # same state rows at every scale
            _wait_for_merges(warehouse)
            seconds, rows_read = _time(lambda: active_users_28d(warehouse, "namespace", *QUARTER))
            ms = seconds * 1000
            baseline_ms = baseline_ms or ms
            results.append(Result(f"28-day active users per namespace, a quarter, {scale}x raw", ms, "ms",
                                  baseline_ms, "flat from 1x to 100x",
                                  f"{target:,} events; {rows_read:,} rows read"))
            rebuild_event_metrics(warehouse, today=QUARTER[1])  # the SaaS part of xMAU (not timed)
            seconds, xmau_read = _time(lambda: warehouse.query("SELECT * FROM rpt_xmau_monthly"))
            results.append(Result(f"monthly xMAU table, {scale}x raw", seconds * 1000, "ms", None, "",
                                  f"{xmau_read:,} rows read"))
            if target <= 1_000_000:  # the same rolling series straight from raw events: 28 copies of every row
                raw_seconds, raw_read = _time(lambda: warehouse.query(_RAW_ROLLING, {
                    "lo": QUARTER[0].isoformat(), "hi": QUARTER[1].isoformat()}))
                results.append(Result(f"  same series from raw events, {scale}x", raw_seconds * 1000, "ms", None,
                                      "", f"{raw_read:,} rows read"))
    finally:
        warehouse.close()
    return results
