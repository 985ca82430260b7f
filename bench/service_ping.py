"""Service Ping benchmarks: flatten/enrich vs a bare parse+flatten, and the pipeline end to end on the real
broker and engine against the consume+parse floor and the warehouse's own insert rate."""

from __future__ import annotations

import asyncio
import copy
import gzip
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import orjson
from aiokafka import AIOKafkaProducer

from bench import common
from bench.common import (
    PeakPrivateMemory,
    Result,
    best_rate,
    consume_parse_rate,
    peak_rss_mb,
    percentile,
    rss_file_mb,
    settled_rss_mb,
)
from bench.faust_floor import faust_consume_parse_rate
from bench.warehouse_service import HEAVY_QUERY
from fleet.alert_latency import measure_alert_latency
from fleet.demo import wait_until_landed
from fleet.pings import generate_fleet
from streams.agents import service_ping as service_ping_agents
from streams.agents.service_ping import ServicePingNormalizer
from streams.config import MAX_MESSAGE_BYTES, TOPIC_RAW_SERVICE_PING, Settings
from streams.enrich.metric_dictionary import MetricDictionary
from streams.kafka.topics import ensure_topics
from streams.warehouse import migrate, open_warehouse
from streams.warehouse.writers import metric_columns
from streams.warehouse_service.embedded import ChdbWarehouse, columns_to_arrow
from streams.worker import WorkerProcess

METRICS_PER_PING = 2000
SOAK_ROUNDS = 8  # equal loads in a row; the worker's RSS after each shows whether memory stays bounded


def big_pings(count: int, seed: int = 5, tag: str = "bench") -> list[bytes]:
    """Realistic pings from the sample fleet, padded with extra counters to ~2,000 numeric metrics each."""
    base = [p for p in generate_fleet(20, 12, seed=seed) if p.valid]
    bodies = []
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(count):
        payload = copy.deepcopy(base[i % len(base)].payload)
        payload["uuid"] = f"{tag}-{i:06d}"  # unique ping ids, so every ping is new work
        payload["recorded_at"] = (start + timedelta(minutes=i)).isoformat(timespec="milliseconds")
        extra = METRICS_PER_PING - len(base[i % len(base)].expected_metrics)
        payload["counts"].update({f"bench_counter_{n:04d}": (i * 31 + n) % 10_000 for n in range(max(0, extra))})
        bodies.append(orjson.dumps(payload))
    return bodies


def flatten_stack(obj: dict) -> list[tuple[str, int | float]]:
    """The bare flattener of stack-notes section C: numeric leaves only, no names resolved."""
    out: list[tuple[str, int | float]] = []
    stack: list[tuple[str, object]] = [("", obj)]
    while stack:
        path, value = stack.pop()
        kind = type(value)
        if kind is dict:
            for key, child in value.items():  # type: ignore[attr-defined]
                stack.append((f"{path}.{key}" if path else key, child))
        elif kind is list:
            for index, child in enumerate(value):  # type: ignore[arg-type]
                stack.append((f"{path}[{index}]", child))
        elif kind is int or kind is float:
            out.append((path, value))  # type: ignore[arg-type]
    return out


def bench_flatten(bodies: list[bytes]) -> list[Result]:
    """The normalize step (parse, validate, flatten, dictionary, serialize) vs parse + bare flatten."""
    normalize = ServicePingNormalizer(MetricDictionary.from_dir())
    headers = {"kind": "ping", "received_at": datetime.now(UTC).isoformat()}

    def baseline() -> int:
        return sum(len(flatten_stack(orjson.loads(body))) for body in bodies)

    def pipeline() -> int:
        rows = 0
        for offset, body in enumerate(bodies):
            record = normalize(body, headers, 0, offset)
            orjson.dumps(record)  # what the agent sends on to the normalized topic
            rows += len(record["metrics"]["metrics_path"])
        return rows

    floor = best_rate(baseline, repeat=3)
    rate = best_rate(pipeline, repeat=3)
    return [Result("service ping flatten/enrich (normalize step)", rate, "metric rows/s", floor,
                   ">= 50% of parse + bare flatten", f"{len(bodies)} pings x ~{METRICS_PER_PING} metrics")]


def bench_warehouse_insert(bodies: list[bytes], workdir: Path) -> float:
    """The engine's own rate for the same metric rows, inserted in its fastest form (Arrow, one batch)."""
    normalize = ServicePingNormalizer(MetricDictionary.from_dir())
    records = [normalize(body, {"kind": "ping"}, 0, offset) for offset, body in enumerate(bodies)]
    columns = metric_columns(records)
    warehouse = ChdbWarehouse(workdir / "insert-floor")
    try:
        migrate(warehouse)
        arrow = columns_to_arrow(columns, warehouse._types("fct_ping_instance_metric"))
        started = time.perf_counter()  # already columnar Arrow: only the engine's own work is timed
        warehouse.insert_arrow("fct_ping_instance_metric", arrow)
        return arrow.num_rows / (time.perf_counter() - started)
    finally:
        warehouse.close()


async def publish(bootstrap: str, topic: str, bodies: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=MAX_MESSAGE_BYTES, linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, body, key=orjson.loads(body)["uuid"].encode()) for body in bodies]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def _start_collector(settings: Settings, bootstrap: str, port: int) -> subprocess.Popen:
    env = os.environ | {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "DENOMAS_TOPIC_PREFIX": settings.topic_prefix}
    return subprocess.Popen([sys.executable, "-m", "streams.cli", "collector", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _post_paced(url: str, bodies: list[bytes], per_second: float) -> None:
    """One post every 1/per_second seconds (a steady trickle, so latency is not queueing under a burst)."""
    started = time.perf_counter()
    async with aiohttp.ClientSession() as http:
        for i, body in enumerate(bodies):
            await asyncio.sleep(max(0.0, started + i / per_second - time.perf_counter()))
            async with http.post(f"{url}/usage_data", data=gzip.compress(body),
                                 headers={"Content-Encoding": "gzip"}) as response:
                response.raise_for_status()


async def _wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(f"{url}/health") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.2)


async def bench_end_to_end(bootstrap: str, workdir: Path, pings: int, progress) -> list[Result]:
    settings = Settings.from_env(data_dir=workdir / "e2e", topic_prefix=f"bench{int(time.time())}.",
                                 app_id=f"bench-{int(time.time())}", topic_partitions=2, worker_web_port=0,
                                 warehouse_database=f"bench{int(time.time())}")
    await ensure_topics(bootstrap, settings)
    raw_topic = settings.topic(TOPIC_RAW_SERVICE_PING)
    bodies = big_pings(pings, tag="e2e")
    worker = WorkerProcess(settings, bootstrap)
    worker.start()
    results: list[Result] = []
    try:
        private = PeakPrivateMemory(worker.pid)  # type: ignore[arg-type]
        progress("  warming up the worker")
        await publish(bootstrap, raw_topic, big_pings(5, tag="warm"))
        await wait_until_landed(settings, bootstrap, timeout=300)
        rss_warm = await settled_rss_mb(worker.pid)  # type: ignore[arg-type]

        progress(f"  agents -> warehouse: {pings} pings of ~{METRICS_PER_PING} metrics published straight to the topic")
        with private:
            started = time.perf_counter()
            await publish(bootstrap, raw_topic, bodies)
            await wait_until_landed(settings, bootstrap, timeout=900, topics=service_ping_agents.CONSUMED_TOPICS)
            elapsed = time.perf_counter() - started
            await wait_until_landed(settings, bootstrap, timeout=900)
            rss_after = [await settled_rss_mb(worker._proc.pid)]  # type: ignore[union-attr]
            for soak in range(1, SOAK_ROUNDS):
                progress(f"  memory soak {soak}/{SOAK_ROUNDS - 1}: {pings} more pings (does the worker keep growing?)")
                await publish(bootstrap, raw_topic, big_pings(pings, tag=f"soak{soak}"))
                await wait_until_landed(settings, bootstrap, timeout=900)
                rss_after.append(await settled_rss_mb(worker._proc.pid))  # type: ignore[union-attr]
        published = SOAK_ROUNDS * pings + 5
        floor = await consume_parse_rate(bootstrap, raw_topic, published)
        faust_floor = await faust_consume_parse_rate(bootstrap, raw_topic, published, settings.ping_batch_size)
        results.append(Result("service ping: faust consume + parse, no work", faust_floor, "pings/s", floor, "",
                              "the framework floor on the same records"))
        results.append(Result("service ping agents -> warehouse", pings / elapsed, "pings/s", floor,
                              ">= 50% of consume + parse", f"{pings / elapsed / faust_floor:.0%} of the Faust floor"))
        results.append(Result("service ping agents -> warehouse, metric rows", pings * METRICS_PER_PING / elapsed,
                              "metric rows/s", None, "", "floor in 'warehouse insert' row"))

        progress("  collector -> warehouse latency: paced HTTP posts")
        port = 18000 + os.getpid() % 1000
        collector = _start_collector(settings, bootstrap, port)
        try:
            url = f"http://127.0.0.1:{port}"
            await _wait_http(url)
            await _post_paced(url, big_pings(100, tag="lat"), per_second=10)
            await wait_until_landed(settings, bootstrap, timeout=300)
            progress("  the same while an analyst's heavy query runs on the warehouse service, again and again")
            with HeavyAnalyst(settings):
                await _post_paced(url, big_pings(50, tag="heavy"), per_second=10)
                await wait_until_landed(settings, bootstrap, timeout=300)
            progress("  last input -> alert on usage.alerts: a new instance whose active users drop")
            alert_seconds = [(await measure_alert_latency(url, bootstrap, settings)).seconds for _ in range(5)]
            collector_rss = peak_rss_mb(collector.pid)
        finally:
            collector.terminate()
            collector.wait()
        worker_rss = peak_rss_mb(worker.pid)  # type: ignore[arg-type]
        file_mb = rss_file_mb(worker.pid)  # type: ignore[arg-type]
        service_rss = peak_rss_mb(common.SERVICE.pid) if common.SERVICE and common.SERVICE.pid else 0.0
    finally:
        worker.stop()

    warehouse = open_warehouse(settings)
    try:
        lags, heavy_lags = ([float(row[0]) for row in warehouse.query(
            "SELECT dateDiff('millisecond', received_at, ingested_at) FROM fct_ping_instance FINAL "
            "WHERE startsWith(instance_uuid, {tag:String})", {"tag": tag}).rows] for tag in ("lat-", "heavy-"))
    finally:
        warehouse.close()
    results.append(Result("latency collector answer -> queryable, p50", percentile(lags, 50), "ms", None,
                          "", f"{len(lags)} pings at 10/s"))
    results.append(Result("latency collector answer -> queryable, p99", percentile(lags, 99), "ms"))
    results.append(Result("latency collector -> queryable during a heavy analyst query, p50",
                          percentile(heavy_lags, 50), "ms", percentile(lags, 50), "",
                          f"{len(heavy_lags)} pings at 10/s; query: {HEAVY_QUERY}"))
    results.append(Result("latency collector -> queryable during a heavy analyst query, p99",
                          percentile(heavy_lags, 99), "ms", percentile(lags, 99)))
    results.append(Result("latency last input -> alert on topic, p50", percentile(alert_seconds, 50) * 1000, "ms",
                          None, "", f"{len(alert_seconds)} drops, max {max(alert_seconds) * 1000:,.0f} ms"))
    results.append(Result("peak RSS worker", worker_rss, "MiB", None, "< 250 MiB (no engine in the worker)",
                          f"{file_mb:,.0f} MiB of it mapped from files; RSS {rss_warm:,.0f} warm, "
                          f"settled after each {pings} big pings: " + " / ".join(f"{r:,.0f}" for r in rss_after)))
    results.append(Result("peak private memory worker (RssAnon, sampled)", private.peak_mb, "MiB", None, "",
                          f"during the {SOAK_ROUNDS} loads; RSS minus code and data mapped from files"))
    results.append(Result("peak RSS collector", collector_rss, "MiB"))
    results.append(Result("peak RSS warehouse service (the engine)", service_rss, "MiB", None, "",
                          "the one process that owns the embedded engine; whole suite so far"))
    return results


class HeavyAnalyst:
    """An analyst's heavy query on the warehouse service, run again and again in a thread while the block lasts."""

    def __init__(self, settings: Settings) -> None:
        self.settings, self.stop, self.queries = settings, threading.Event(), 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        warehouse = open_warehouse(self.settings)
        try:
            while not self.stop.is_set():
                warehouse.query(HEAVY_QUERY, settings={"readonly": 1})
                self.queries += 1
        finally:
            warehouse.close()

    def __enter__(self) -> HeavyAnalyst:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


async def bench_workers(bootstrap: str, workdir: Path, pings: int, workers: int, progress) -> float:
    """Pings/s agents -> warehouse with `workers` worker processes in one consumer group."""
    stamp = f"{workers}w{int(time.time())}"
    settings = Settings.from_env(data_dir=workdir / f"workers-{stamp}", topic_prefix=f"bench{stamp}.",
                                 app_id=f"bench-{stamp}", topic_partitions=4, worker_web_port=0,
                                 warehouse_database=f"bench{stamp}")
    await ensure_topics(bootstrap, settings)
    running = [WorkerProcess(settings, bootstrap, log_path=settings.data_dir / f"worker-{n}.log")
               for n in range(workers)]
    for worker in running:
        worker.start()
    try:
        progress(f"  {workers} worker(s): warming up, then {pings} pings")
        await publish(bootstrap, settings.topic(TOPIC_RAW_SERVICE_PING), big_pings(8, tag=f"warm{stamp}"))
        await wait_until_landed(settings, bootstrap, timeout=300)
        started = time.perf_counter()
        await publish(bootstrap, settings.topic(TOPIC_RAW_SERVICE_PING), big_pings(pings, tag=f"w{stamp}"))
        await wait_until_landed(settings, bootstrap, timeout=900, topics=service_ping_agents.CONSUMED_TOPICS)
        return pings / (time.perf_counter() - started)
    finally:
        for worker in running:
            worker.stop()


def run(bootstrap: str, workdir: Path, quick: bool, progress) -> list[Result]:
    bodies = big_pings(50 if quick else 200, tag="micro")
    progress("service ping: flatten/enrich vs parse + bare flatten")
    results = bench_flatten(bodies)
    progress("service ping: warehouse insert floor")
    insert_rate = bench_warehouse_insert(bodies, workdir)
    results.append(Result("warehouse insert floor (Arrow, one batch)", insert_rate, "metric rows/s"))
    results += asyncio.run(bench_end_to_end(bootstrap, workdir, 100 if quick else 300, progress))
    progress("service ping: agents -> warehouse with 1 and 2 workers (one consumer group, same run)")
    count = 60 if quick else 200
    one, two = (asyncio.run(bench_workers(bootstrap, workdir, count, n, progress)) for n in (1, 2))
    results.append(Result("service ping agents -> warehouse, 2 workers", two, "pings/s", one, "",
                          f"baseline: 1 worker, same {count} pings, 4 partitions"))
    for result in results:
        if result.unit == "metric rows/s" and result.baseline is None and "agents" in result.name:
            result.baseline = insert_rate
            result.target = "(floor: warehouse insert)"
    return [replace(r) for r in results]
