"""The main job on the embedded default: broker + collector + worker, the sample fleet over HTTP,
then what landed next to what the generator sent.

Also the building blocks the integration tests use (send pings over HTTP, count what landed).
"""

from __future__ import annotations

import asyncio
import gzip
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp

from streams.agents import CONSUMED_TOPICS
from streams.collector import RunningCollector
from streams.config import Settings
from streams.fleet import GeneratedPing, generate_fleet
from streams.kafka import kafka_cluster, wait_for_zero_lag
from streams.tables import format_table
from streams.topics import ensure_topics
from streams.warehouse import Warehouse, count_rows, open_warehouse
from streams.worker import WorkerProcess


@dataclass
class SendReport:
    sent: int = 0
    accepted: int = 0
    rejected_by_collector: int = 0
    ping_ids: dict[str, int] = field(default_factory=dict)  # uuid|recorded_at -> id the collector answered
    failures: list[str] = field(default_factory=list)


def _progress(done: int, total: int, started: float) -> None:
    """One updating line on a terminal; a line per 10 % when the output goes to a file."""
    tty = sys.stdout.isatty()
    step = max(1, total // 10)
    if tty or done == total or done % step == 0:
        rate = done / max(time.monotonic() - started, 1e-9)
        text = f"  sent {done:,}/{total:,} ({rate:,.0f}/s)"
        print(f"\r{text}" if tty else text, end="\n" if (done == total or not tty) else "", flush=True)


async def send_pings(url: str, pings: Sequence[GeneratedPing], concurrency: int = 8,
                     progress: bool = True) -> SendReport:
    """POST each ping to /usage_data as an instance would (every other one gzip-encoded)."""
    report = SendReport()
    queue: asyncio.Queue[tuple[int, GeneratedPing]] = asyncio.Queue()
    for item in enumerate(pings):
        queue.put_nowait(item)
    started = time.monotonic()

    async def post(session: aiohttp.ClientSession, index: int, ping: GeneratedPing) -> None:
        body = ping.body()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if index % 2:
            body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
        async with session.post(f"{url}/usage_data", data=body, headers=headers) as response:
            answer = await response.json(content_type=None)
            report.sent += 1
            if response.status == 200:
                report.accepted += 1
                report.ping_ids[f"{ping.uuid}|{ping.recorded_at}"] = answer["conv_index"]["usage_data_id"]
            else:
                report.rejected_by_collector += 1
                report.failures.append(f"{response.status}: {answer}")

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            index, ping = queue.get_nowait()
            await post(session, index, ping)
            if progress:
                _progress(report.sent, len(pings), started)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return report


def landed(warehouse: Warehouse) -> dict[str, int]:
    """What the warehouse holds, counted as queries see it (FINAL: exact before merges)."""
    return {
        "pings": count_rows(warehouse, "fct_ping_instance"),
        "raw_pings": count_rows(warehouse, "raw_service_ping"),
        "metric_rows": count_rows(warehouse, "fct_ping_instance_metric"),
        "error_marker_rows": int(warehouse.query(
            "SELECT count() FROM fct_ping_instance_metric FINAL WHERE error_value != 0").scalar()),
        "rejects": int(warehouse.query(
            "SELECT count() FROM raw_dead_letter FINAL WHERE source = 'service_ping'").scalar()),
        "installations": int(warehouse.query("SELECT uniqExact(installation_id) FROM dim_installation").scalar()),
    }


async def wait_until_landed(settings: Settings, bootstrap: str, timeout: float = 300) -> None:
    """Everything published so far has been processed: the worker's group has no lag on any topic."""
    topics = [settings.topic(t) for t in CONSUMED_TOPICS]
    await wait_for_zero_lag(bootstrap, settings.app_id, topics, timeout=timeout)


async def _run_pipeline(settings: Settings, bootstrap: str, pings: Sequence[GeneratedPing]) -> SendReport:
    await ensure_topics(bootstrap, settings)
    worker = WorkerProcess(settings, bootstrap)
    collector = RunningCollector(bootstrap, settings)
    worker.start()
    try:
        url = await collector.start()
        print(f"collector on {url}; worker log {worker.log_path}")
        report = await send_pings(url, pings)
        print("  waiting for the agents to land everything ...", flush=True)
        await wait_until_landed(settings, bootstrap)
        if not worker.alive():
            raise RuntimeError(f"worker exited early:\n{worker.log_tail()}")
        return report
    finally:
        await collector.stop()
        worker.stop()


def run_demo(settings: Settings, instances: int = 40, weeks: int = 12, seed: int = 42) -> int:
    """The README's run command. Returns 0 when what landed equals what the generator sent."""
    started = time.monotonic()
    pings = generate_fleet(instances, weeks, seed=seed)
    valid = [p for p in pings if p.valid]
    expected_rows = sum(len(p.expected_metrics) for p in valid)
    expected_errors = sum(1 for p in valid for v in p.expected_metrics.values() if v < 0)
    print(f"sample fleet: {instances} instances x {weeks} weeks, seed {seed}: {len(pings):,} pings "
          f"({len(pings) - len(valid)} deliberately invalid)")
    with kafka_cluster(settings) as bootstrap:
        print(f"kafka at {bootstrap}")
        report = asyncio.run(_run_pipeline(settings, bootstrap, pings))
    warehouse = open_warehouse(settings)
    try:
        got = landed(warehouse)
    finally:
        warehouse.close()
    rows = [
        ("pings sent over HTTP", len(pings), report.sent),
        ("pings accepted by the collector (200)", len(pings), report.accepted),
        ("pings landed (fct_ping_instance)", len(valid), got["pings"]),
        ("raw payloads landed (raw_service_ping)", len(valid), got["raw_pings"]),
        ("metric rows landed (fct_ping_instance_metric)", expected_rows, got["metric_rows"]),
        ("  of which error markers (-1/-2/-1000)", expected_errors, got["error_marker_rows"]),
        ("rejects (usage.dlq -> raw_dead_letter)", len(pings) - len(valid), got["rejects"]),
        ("installations (dim_installation)", len({(p.uuid, p.hostname) for p in valid}), got["installations"]),
    ]
    ok = all(expected == actual for _, expected, actual in rows)
    table = [(name, expected, actual, "yes" if expected == actual else "NO") for name, expected, actual in rows]
    print()
    print(format_table(["", "generator", "warehouse", "agree"], table, title="Service Ping, end to end"))
    print(f"\n{'all numbers agree' if ok else 'MISMATCH'} ({time.monotonic() - started:.1f} s); "
          f"warehouse in {settings.chdb_path if not settings.clickhouse_url else settings.clickhouse_url}")
    return 0 if ok else 1
