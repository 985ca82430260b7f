"""Trusted data on the sample fleet, end to end on real parts (HTTP collector -> Kafka -> worker -> chdb).

The seed-42 fleet goes through the demo's pipeline while /metrics is scraped; then every declared check passes,
`denomas-usage check` exits 0, and breaking the pipeline on purpose (offsets skipped past, a stopped worker) makes
completeness and freshness fail.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from fleet.demo import DemoFleet, feed
from streams.checks.runner import format_run, run_checks
from streams.checks.spec import FAIL, PASS, WARN, load_checks
from streams.config import TOPIC_RAW_SERVICE_PING, TOPIC_RAW_SNOWPLOW, Settings
from streams.reference.kinds import KINDS as REFERENCE_KINDS
from streams.reference.load import publish as publish_reference
from streams.warehouse import open_warehouse
from tests.support.pipeline import running_pipeline

pytestmark = pytest.mark.integration

INSTANCES, WEEKS, SEED = 6, 4, 42  # seed 42 as `make run`; the golden records are in this fleet too


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def total(metrics: dict, name: str, **labels: str) -> float:
    return sum(v for (n, lab), v in metrics.items() if n == name and labels.items() <= dict(lab).items())


async def scrape(where: int | str, timeout: float = 60) -> dict:
    """A plain HTTP GET of a process's /metrics (a port on loopback or a base URL), parsed into samples."""
    url = f"http://127.0.0.1:{where}" if isinstance(where, int) else where.rstrip("/")
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(f"{url}/metrics") as response:
                    assert response.status == 200
                    return samples(await response.text())
            except aiohttp.ClientConnectionError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    name = uuid.uuid4().hex[:8]
    return Settings.from_env(data_dir=tmp_path_factory.mktemp("checks"), topic_prefix=f"t-{name}.",
                             app_id=f"test-checks-{name}", topic_partitions=2, worker_web_port=_free_port())


@pytest.fixture(scope="module")
def fleet():
    return DemoFleet.build(INSTANCES, WEEKS, SEED)


@dataclass
class Scrapes:
    """/metrics of each process before, during and after the stream: the worker (DENOMAS_WORKER_PORT), the
    collector and the warehouse service, each read with a plain HTTP GET as Prometheus (or curl) would."""

    worker: list[dict] = field(default_factory=list)
    collector: list[dict] = field(default_factory=list)
    warehouse: list[dict] = field(default_factory=list)
    pings_accepted: int = 0

    async def take(self, settings: Settings, collector_url: str) -> None:
        self.worker.append(await scrape(settings.worker_web_port))
        self.collector.append(await scrape(collector_url))
        self.warehouse.append(await scrape(settings.warehouse_url))


async def _stream(settings: Settings, bootstrap: str, fleet: DemoFleet) -> tuple[dict, dict, list[dict], Scrapes]:
    scrapes = Scrapes()
    async with running_pipeline(settings, bootstrap) as pipeline:
        url = pipeline.url
        before = await scrape(settings.worker_web_port)
        await scrapes.take(settings, url)
        for kind in fleet.reference.base_kinds():
            await publish_reference(settings, bootstrap, REFERENCE_KINDS[kind], fleet.reference.rows[kind])
        during = []
        sending = asyncio.create_task(feed(url, fleet))
        while not sending.done():
            during.append(await scrape(settings.worker_web_port))
            await scrapes.take(settings, url)
            await asyncio.sleep(0.5)
        scrapes.pings_accepted = (await sending).pings.accepted
        await pipeline.landed()
        after = await scrape(settings.worker_web_port)
        deadline = time.monotonic() + 240  # the leader's scheduled check run reports on /metrics too (busy: slow)
        while not total(after, "denomas_check_results_total") and time.monotonic() < deadline:
            await asyncio.sleep(1)
            after = await scrape(settings.worker_web_port)
        await scrapes.take(settings, url)
        assert pipeline.worker.alive(), pipeline.worker.log_tail()
        return before, after, during, scrapes


@pytest.fixture(scope="module")
def streamed(kafka_bootstrap, settings, fleet):
    os.environ["DENOMAS_CHECK_INTERVAL"] = "10"  # the worker process inherits it
    try:
        return asyncio.run(_stream(settings, kafka_bootstrap, fleet))
    finally:
        del os.environ["DENOMAS_CHECK_INTERVAL"]


def test_metrics_move_during_the_stream_and_lag_drops_to_zero(streamed, fleet, settings):
    before, after, during, _ = streamed
    valid = sum(1 for p in fleet.pings if p.valid)
    assert total(before, "denomas_records_landed_total", source="service_ping") == 0
    assert total(after, "denomas_records_landed_total", source="service_ping") == valid
    assert total(after, "denomas_records_dead_lettered_total", source="service_ping") == len(fleet.pings) - valid
    assert total(after, "denomas_records_landed_total", source="snowplow") == fleet.snowplow.expected_counts()[
        "events"]
    assert total(after, "denomas_batch_insert_seconds_count") > total(before, "denomas_batch_insert_seconds_count")
    assert total(after, "denomas_received_to_stored_seconds_count", source="service_ping") == valid
    lag = {dict(labels)["topic"]: v for (name, labels), v in after.items() if name == "denomas_consumer_lag"}
    assert settings.topic(TOPIC_RAW_SERVICE_PING) in lag and set(lag.values()) == {0}
    assert max(total(s, "denomas_consumer_lag") for s in during) > 0  # records waited while the fleet was sent
    assert total(after, "denomas_check_results_total") > 0  # the worker's scheduled checks ran
    assert any(n.startswith("faust_") for n, _ in after)  # Faust's Prometheus sensor


def test_the_collector_and_the_warehouse_service_count_the_stream_on_their_metrics_pages(streamed, fleet):
    *_, scrapes = streamed
    collector, warehouse = scrapes.collector, scrapes.warehouse
    accepted = [total(s, "denomas_records_accepted_total", source="service_ping") for s in collector]
    assert scrapes.pings_accepted == len(fleet.pings)  # every ping answered 200; bad ones are the agents' to reject
    assert accepted[-1] - accepted[0] == len(fleet.pings)  # one record per ping, after the broker's ack
    ok = [total(s, "denomas_http_requests_total", endpoint="/usage_data", status="200") for s in collector]
    assert ok[-1] - ok[0] == len(fleet.pings)
    everything = [total(s, "denomas_records_accepted_total") for s in collector]  # every source, in sending order
    assert any(everything[0] < seen < everything[-1] for seen in everything[1:-1])  # it moved while the fleet was sent
    assert total(collector[-1], "denomas_records_accepted_total", source="snowplow") > total(
        collector[0], "denomas_records_accepted_total", source="snowplow")
    served = [total(s, "denomas_http_requests_total", endpoint="/", status="200") for s in warehouse]
    assert served == sorted(served) and served[-1] > served[0]  # the sinks' inserts and the checks' queries


def read(settings: Settings, sql: str, params: dict | None = None):
    warehouse = open_warehouse(settings)
    try:
        return warehouse.query(sql, params).rows
    finally:
        warehouse.close()


def test_every_check_passes_on_the_sample_fleet(streamed, settings, kafka_bootstrap):
    warehouse = open_warehouse(settings)
    try:
        run = run_checks(warehouse, settings, bootstrap=kafka_bootstrap)
    finally:
        warehouse.close()
    print(format_run(run))
    assert [(r.check.name, r.scope, r.status, r.message) for r in run.results if r.status != PASS] == []
    assert {r.check.name for r in run.results} == {c.name for c in load_checks()}
    complete = [r for r in run.results if r.check.kind == "completeness"]
    assert sum(r.observed + 1 for r in complete if r.check.table == TOPIC_RAW_SERVICE_PING) == 21  # every ping
    *_, scrapes = streamed  # every raw Snowplow record the collector published (one per request and user)
    published = total(scrapes.collector[-1], "denomas_records_accepted_total", source="snowplow") - total(
        scrapes.collector[0], "denomas_records_accepted_total", source="snowplow")
    assert sum(r.observed + 1 for r in complete if r.check.table == TOPIC_RAW_SNOWPLOW) == published > 0
    assert read(settings, "SELECT uniqExact(run_id) > 1 FROM check_results")[0][0] == 1  # worker's runs + this


def test_the_check_command_prints_stores_and_exits_zero(streamed, settings, kafka_bootstrap):
    env = os.environ | {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "DENOMAS_DATA_DIR": str(settings.data_dir),
                        "DENOMAS_TOPIC_PREFIX": settings.topic_prefix, "DENOMAS_APP_ID": settings.app_id,
                        "DENOMAS_WAREHOUSE_DATABASE": settings.warehouse_database}
    done = subprocess.run([sys.executable, "-m", "streams.cli", "check", "--select", "source:service_ping",
                           "golden_*"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "completeness_service_ping" in done.stdout and "complete through offset" in done.stdout
    assert "0 fail, 0 error" in done.stdout


async def _skip_offsets(settings: Settings, bootstrap: str, topic: str,
                        records: list[tuple[bytes, list[tuple[str, bytes]]]]) -> dict[int, list[int]]:
    """Publish records while the worker is stopped, then move its group's committed offsets past them: records the
    broker acknowledged and the pipeline will never process."""
    topic = settings.topic(topic)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    skipped: dict[int, list[int]] = {}
    try:
        for i, (value, headers) in enumerate(records):
            meta = await producer.send_and_wait(topic, value, key=str(i).encode(), headers=headers)
            skipped.setdefault(meta.partition, []).append(meta.offset)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=settings.app_id, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in skipped]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.commit(dict(ends.items()))
    finally:
        await consumer.stop()
    return skipped


def _received() -> tuple[str, bytes]:
    return "received_at", datetime.now(UTC).isoformat().encode()


def _assert_gaps_fail(run, check_name: str, skipped: dict[int, list[int]]) -> None:
    """Each partition with skipped offsets fails, complete through the offset before the first one; the others pass."""
    by_partition = {r.scope: r for r in run.results if r.check.name == check_name}
    assert by_partition
    for partition, offsets in skipped.items():
        result = by_partition[f"partition {partition}"]
        assert result.status == FAIL and result.observed == offsets[0] - 1
        assert f"complete through offset {offsets[0] - 1} (time " in result.message
        assert f"{len(offsets)} offsets neither landed nor dead-lettered, first {offsets}" in result.message
    assert all(r.status == PASS for s, r in by_partition.items() if int(s.split()[1]) not in skipped)


def test_skipped_offsets_fail_completeness_and_a_stopped_worker_fails_freshness(streamed, settings,
                                                                                 kafka_bootstrap, fleet):
    body = orjson.loads(next(p for p in fleet.pings if p.valid).body())
    pings = [(orjson.dumps(body | {"uuid": str(uuid.uuid4()), "recorded_at": f"2026-07-0{i + 1}T00:00:00Z"}),
              [("kind", b"ping"), _received()]) for i in range(3)]
    skipped = asyncio.run(_skip_offsets(settings, kafka_bootstrap, TOPIC_RAW_SERVICE_PING, pings))
    checks = [c for c in load_checks() if c.name in ("completeness_service_ping", "freshness_service_ping")]
    freshness = next(c for c in checks if c.kind == "freshness")
    strict = replace(freshness, params=freshness.params | {"warn_after_minutes": 0.01, "error_after_minutes": 0.02})
    time.sleep(1.5)  # the worker stopped: nothing has landed since, the newest arrival ages past 1.2 s
    warehouse = open_warehouse(settings)
    try:
        run = run_checks(warehouse, settings, bootstrap=kafka_bootstrap, checks=checks + [strict])
    finally:
        warehouse.close()
    _assert_gaps_fail(run, "completeness_service_ping", skipped)
    statuses = {(r.check.name, r.check.params["error_after_minutes"]): r.status for r in run.results
                if r.check.kind == "freshness"}
    assert statuses == {("freshness_service_ping", 10080): PASS, ("freshness_service_ping", 0.02): FAIL}
    assert run.failed and WARN not in {r.status for r in run.results}


def test_skipped_snowplow_requests_fail_completeness(streamed, settings, kafka_bootstrap, fleet):
    """Raw Snowplow records (one request's events each) that the pipeline never processed: neither an event, nor a
    bad row, nor a dead letter names their offsets, so the partitions they are on are complete only up to them."""
    event = next(e for e in fleet.snowplow.events if e.expected is not None).payload
    requests = [(orjson.dumps([event | {"eid": str(uuid.uuid4())}, event | {"eid": str(uuid.uuid4())}]),
                 [("kind", b"events"), ("event_index", b"0,1"), ("request_id", uuid.uuid4().hex.encode()),
                  _received()]) for _ in range(4)]
    skipped = asyncio.run(_skip_offsets(settings, kafka_bootstrap, TOPIC_RAW_SNOWPLOW, requests))
    warehouse = open_warehouse(settings)
    try:
        run = run_checks(warehouse, settings, ["completeness_snowplow"], bootstrap=kafka_bootstrap)
    finally:
        warehouse.close()
    _assert_gaps_fail(run, "completeness_snowplow", skipped)
    assert run.failed

