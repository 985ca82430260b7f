"""Snowplow benchmarks: events end to end through the collector, and agents -> warehouse alone, against the
consume + parse floor measured on the same records in the same run."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

import aiohttp
import orjson
from aiokafka import AIOKafkaProducer

from bench.common import Result, best_rate, consume_parse_rate
from bench.faust_floor import faust_consume_parse_rate
from bench.legacy_useragent import legacy_parse
from fleet.demo import wait_until_landed
from fleet.snowplow import PAYLOAD_DATA
from fleet.snowplow_events import generate_snowplow
from streams.agents import snowplow as snowplow_agents
from streams.agents.snowplow import NORMALIZE_BATCH, SnowplowNormalizer, normalize_batch
from streams.collector import RunningCollector
from streams.config import TOPIC_RAW_SNOWPLOW, Settings
from streams.enrich import snowplow as snowplow_enrich
from streams.enrich.iglu import Registry
from streams.enrich.pseudonym import hash_key
from streams.enrich.snowplow_requests import partition_key, request_records
from streams.kafka.topics import ensure_topics
from streams.records import KIND_EVENTS
from streams.warehouse import open_warehouse
from streams.worker import WorkerProcess

BATCH = 10  # events per tracker request (the trackers' default buffer)


def events(count: int, tag: str) -> list[dict]:
    """Valid tracker events from the sample fleet, each with a fresh event id (every one is new work), in
    runs of BATCH events of one user: a tracker's request comes from one browser or one server process."""
    by_user: dict[str | None, list[dict]] = {}
    for generated in generate_snowplow(20, 12, seed=3).events:
        if generated.expected is not None:
            by_user.setdefault(partition_key(generated.payload), []).append(generated.payload)
    users = list(by_user.values())
    out = []
    for i in range(count):
        user = users[(i // BATCH) % len(users)]
        event = dict(user[i % len(user)])
        event["eid"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tag}-{i}"))
        event.pop("ip", None)  # one client per request: its connection's address locates every event
        out.append(event)
    return out


async def _post_all(url: str, payloads: list[dict], concurrency: int = 8) -> None:
    bodies = [orjson.dumps({"schema": PAYLOAD_DATA, "data": payloads[i:i + BATCH]})
              for i in range(0, len(payloads), BATCH)]
    queue = list(reversed(bodies))
    endpoint = f"{url}/com.snowplowanalytics.snowplow/tp2"

    async def worker(http: aiohttp.ClientSession) -> None:
        while queue:
            body = queue.pop()
            async with http.post(endpoint, data=body, headers={"Content-Type": "application/json"}) as response:
                response.raise_for_status()

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))


async def _publish_raw(bootstrap: str, topic: str, payloads: list[dict]) -> None:
    """Records exactly as the collector publishes them (one per request and user, receipt metadata in
    headers), for requests of BATCH events."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20)
    await producer.start()
    try:
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        futures = []
        for start in range(0, len(payloads), BATCH):
            request = [dict(event) for event in payloads[start:start + BATCH]]
            for key, _, indexes, members in request_records(request, lambda event: None):  # no IPs here
                headers = [("received_at", now.encode()), ("source", b"snowplow"), ("kind", KIND_EVENTS.encode()),
                           ("request_id", f"bench-{start // BATCH}".encode()),
                           ("event_index", ",".join(map(str, indexes)).encode()), ("useragent", b"bench")]
                futures.append(await producer.send(topic, orjson.dumps(members), key=key.encode() if key else None,
                                                   headers=headers))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


@dataclass
class Run:
    workers: int  # worker processes in one consumer group
    agents_only: float  # events/s
    end_to_end: float  # events/s
    http_only: float  # events/s
    stored: int
    floor: float = 0.0  # consume + parse, events/s (measured on the first run's records)
    faust_floor: float = 0.0


async def _run(bootstrap: str, workdir: Path, count: int, workers: int, floors: bool, progress) -> Run:
    stamp = int(time.time())
    settings = Settings.from_env(data_dir=workdir / f"snowplow-{workers}", topic_prefix=f"benchsp{stamp}.",
                                 app_id=f"benchsp-{stamp}", topic_partitions=2, worker_web_port=0,
                                 warehouse_database=f"benchsp{stamp}")
    await ensure_topics(bootstrap, settings)
    running = [WorkerProcess(settings, bootstrap, log_path=settings.data_dir / f"worker-{n}.log")
               for n in range(workers)]
    collector = RunningCollector(bootstrap, settings)
    for worker in running:
        worker.start()
    try:
        url = await collector.start()
        progress(f"  {workers} worker process(es) in one consumer group: warming up")
        await _post_all(url, events(200, "warm"))
        await wait_until_landed(settings, bootstrap, timeout=300)

        progress(f"  collector -> warehouse: {count:,} events over HTTP in batches of {BATCH}")
        started = time.perf_counter()
        await _post_all(url, events(count, "http"))
        http_done = time.perf_counter() - started
        await wait_until_landed(settings, bootstrap, timeout=900, topics=snowplow_agents.CONSUMED_TOPICS)
        end_to_end = count / (time.perf_counter() - started)

        progress(f"  agents -> warehouse: {count:,} new events published straight to the raw topic")
        started = time.perf_counter()
        await _publish_raw(bootstrap, settings.topic(TOPIC_RAW_SNOWPLOW), events(count, "raw"))
        await wait_until_landed(settings, bootstrap, timeout=900, topics=snowplow_agents.CONSUMED_TOPICS)
        agents_only = count / (time.perf_counter() - started)
        await wait_until_landed(settings, bootstrap, timeout=900)  # alerts and metrics too, before stopping
        run = Run(workers, agents_only, end_to_end, count / http_done, 0)
        if floors:
            raw_topic = settings.topic(TOPIC_RAW_SNOWPLOW)
            progress("  floors: aiokafka consume + parse, and a do-nothing Faust agent, over the same records")
            run.floor = await consume_parse_rate(bootstrap, raw_topic, 2 * count + 200)
            run.faust_floor = await faust_consume_parse_rate(bootstrap, raw_topic, 2 * count + 200, NORMALIZE_BATCH)
    finally:
        await collector.stop()
        for worker in running:
            worker.stop()
    warehouse = open_warehouse(settings)
    try:
        run.stored = int(warehouse.query("SELECT count() FROM fct_behavior_structured_event FINAL").scalar())
    finally:
        warehouse.close()
    return run


def bench_normalize(count: int) -> list[Result]:
    """The normalize step alone (validate, decode contexts, enrich, cut normalized records) on the raw records
    the collector would publish, against `orjson.loads` of the same records."""
    normalizer = SnowplowNormalizer(Registry.from_dir(), hash_key())
    received = datetime.now(UTC).isoformat(timespec="milliseconds")
    payloads = events(count, "normalize")
    items = []
    for start in range(0, count, BATCH):
        for _, _, indexes, members in request_records(payloads[start:start + BATCH], lambda event: None):
            headers = {"kind": KIND_EVENTS, "received_at": received, "request_id": f"r{start}",
                       "event_index": ",".join(map(str, indexes)), "useragent": "bench"}
            items.append((orjson.dumps(members), headers, {"topic": "raw", "partition": 0, "offset": start}))
    checked = normalize_batch(normalizer, items)  # every event comes out once, none as a bad row (not timed)
    assert not checked.bad and sum(len(orjson.loads(chunk)) for _, chunk in checked.chunks) == count

    def normalize() -> int:
        normalize_batch(normalizer, items)
        return count

    floor = best_rate(lambda: sum(len(orjson.loads(value)) for value, _, _ in items), repeat=3)
    # After (uap-core) and before (the hand regexes swapped in), interleaved so both see the same load; best of 5.
    after_runs, before_runs = [], []
    for _ in range(5):
        after_runs.append(best_rate(normalize, repeat=1))
        with mock.patch.object(snowplow_enrich, "parse_user_agent", legacy_parse):
            before_runs.append(best_rate(normalize, repeat=1))
    rate, before = max(after_runs), max(before_runs)
    return [Result("snowplow normalize step alone (1 process)", rate, "events/s", floor, "",
                   "validate, decode contexts, enrich, cut normalized records; baseline orjson.loads"),
            Result("snowplow normalize, uap-core user agents vs the old hand regexes", rate, "events/s", before,
                   ">= 50% of before", f"before (hand regexes, family only) {before:,.0f}/s: {rate / before:.0%}")]


def run(bootstrap: str, workdir: Path, quick: bool, progress) -> list[Result]:
    count = 5_000 if quick else 50_000
    progress("snowplow: the normalize step alone")
    normalize_results = bench_normalize(count // 5)
    runs = [asyncio.run(_run(bootstrap, workdir, count, workers, workers == 1, progress)) for workers in (1, 2)]
    floor, faust_floor = runs[0].floor, runs[0].faust_floor
    results = [*normalize_results,
               Result("faust consume + parse, no work (framework floor)", faust_floor, "events/s", floor, "",
                      "a Faust agent with the worker's settings that only orjson.loads each record")]
    for r in runs:
        processes = f"{r.workers} worker" + ("s" if r.workers > 1 else "")
        results += [
            Result(f"snowplow agents -> warehouse ({processes})", r.agents_only, "events/s", floor,
                   ">= 50% of consume + parse", f"{r.agents_only / faust_floor:.0%} of the Faust floor"),
            Result(f"snowplow collector -> warehouse ({processes})", r.end_to_end, "events/s", floor, "",
                   f"{r.stored:,} events stored; HTTP part alone {r.http_only:,.0f}/s"),
        ]
    return results
