"""Analysts query the live warehouse while two workers ingest (issue 12), on real parts: broker, collector, two
Faust workers in one consumer group, the embedded engine's warehouse service.

While the sample fleet's Snowplow events stream in, `denomas-usage query`, `denomas-usage show`, clickhouse-connect
and curl read the warehouse through its ClickHouse HTTP interface; one worker is SIGKILLed mid-stream and restarted
(a rebalance). Then: every event the generator expects is stored once, the daily aggregates equal a recomputation in
plain Python from the generator's rows, and the analysts' answers along the way only grew towards the final count.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field

import clickhouse_connect
import pytest

from fleet.demo import wait_until_landed
from fleet.snowplow import ExpectedRow, SnowplowFleet, send_snowplow
from fleet.snowplow_events import generate_snowplow
from streams.collector import RunningCollector
from streams.config import Settings
from streams.kafka.topics import ensure_topics
from streams.warehouse import migrate, open_warehouse
from streams.worker import WorkerProcess

pytestmark = pytest.mark.integration

COUNT = "SELECT count() FROM fct_behavior_structured_event FINAL"


@dataclass
class Observed:
    """What each analyst tool answered while the pipeline ran."""

    counts: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    failures: list[str] = field(default_factory=list)


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"DENOMAS_WAREHOUSE_DATABASE": settings.warehouse_database,
                        "CLICKHOUSE_URL": settings.warehouse_url}
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def _curl(settings: Settings, sql: str) -> str:
    done = subprocess.run(["curl", "-sS", "--data-binary", sql,
                           f"{settings.warehouse_url}/?database={settings.warehouse_database}"],
                          capture_output=True, text=True, timeout=30)
    return done.stdout.strip()


def _ask_everyone(settings: Settings, observed: Observed) -> None:
    """One round of analyst questions through every tool (blocking; run in a thread)."""
    query = _cli(settings, "query", COUNT)
    if query.returncode != 0:
        observed.failures.append(f"query: {query.stderr[-300:]}")
    else:
        observed.counts["cli"].append(int(query.stdout.splitlines()[2].replace(",", "")))  # header, rule, count
    show = _cli(settings, "show", "rpt_xmau_monthly", "--limit", "5")
    if show.returncode != 0:
        observed.failures.append(f"show: {show.stderr[-300:]}")
    port = int(settings.warehouse_url.rsplit(":", 1)[1])
    client = clickhouse_connect.get_client(host="127.0.0.1", port=port, database=settings.warehouse_database)
    observed.counts["clickhouse-connect"].append(int(client.query(COUNT).result_rows[0][0]))
    client.close()
    answer = _curl(settings, COUNT)
    if answer.isdigit():
        observed.counts["curl"].append(int(answer))
    else:
        observed.failures.append(f"curl: {answer[:300]}")


def _count(settings: Settings) -> int:
    port = int(settings.warehouse_url.rsplit(":", 1)[1])
    client = clickhouse_connect.get_client(host="127.0.0.1", port=port, database=settings.warehouse_database)
    try:
        return int(client.query(COUNT).result_rows[0][0])
    finally:
        client.close()


async def _until_more_than(settings: Settings, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while await asyncio.to_thread(_count, settings) <= count:
        assert time.monotonic() < deadline, "nothing new landed"
        await asyncio.sleep(0.2)


async def _stream(settings: Settings, bootstrap: str, fleet: SnowplowFleet, observed: Observed) -> int:
    """The fleet in four portions; after each of the first three has started landing, the analysts ask; after the
    first, one of the two workers is SIGKILLed and restarted (a rebalance in the middle of the stream)."""
    workers = [WorkerProcess(settings, bootstrap, log_path=settings.data_dir / f"worker-{n}.log") for n in range(2)]
    collector = RunningCollector(bootstrap, settings)
    for worker in workers:
        worker.start()
    try:
        url = await collector.start()
        accepted = 0
        parts = 4
        for n in range(parts):
            events = fleet.events[n::parts]
            sending = asyncio.create_task(send_snowplow(url, events, fleet.bad_requests if n == 0 else [],
                                                        concurrency=2))
            if n < parts - 1:
                await _until_more_than(settings, await asyncio.to_thread(_count, settings))
                await asyncio.to_thread(_ask_everyone, settings, observed)
            accepted += (await sending).events_accepted  # failures: the fleet's deliberately bad requests (4xx)
            if n == 0:
                workers[0].kill()
                workers[0].start()
        await wait_until_landed(settings, bootstrap, timeout=240)
        await asyncio.to_thread(_ask_everyone, settings, observed)
        return accepted
    finally:
        await collector.stop()
        for worker in workers:
            worker.stop()


def _scopes(row: ExpectedRow) -> list[tuple[str, str]]:
    """The namespace-scope rule of the README ("Extending"), written out again here."""
    saas = row.realm == "saas" or row.deployment_type == ".com"
    namespace = row.ultimate_parent_namespace_id or row.namespace_id
    scopes = [("instance", row.instance_id)] if row.instance_id else []
    if saas and namespace:
        scopes.append(("namespace", str(namespace)))
    if saas:
        scopes.append(("saas", "all"))
    return scopes


def _expected_daily(fleet: SnowplowFleet) -> dict[tuple, tuple[int, int]]:
    users: dict[tuple, set[str]] = defaultdict(set)
    events: dict[tuple, int] = defaultdict(int)
    for row in fleet.expected_rows().values():
        for scope, scope_id in _scopes(row):
            key = (row.behavior_date.isoformat(), scope, scope_id)
            events[key] += 1
            if row.user_id:
                users[key].add(row.user_id)
    return {key: (len(users[key]), count) for key, count in events.items()}


@pytest.fixture(scope="module")
def streamed(kafka_bootstrap, tmp_path_factory, unique_module_name):
    settings = Settings.from_env(data_dir=tmp_path_factory.mktemp("service-pipeline"), topic_partitions=4,
                                 topic_prefix=f"t-{unique_module_name}.", app_id=f"svc-{unique_module_name}",
                                 worker_web_port=0)
    asyncio.run(ensure_topics(kafka_bootstrap, settings))
    warehouse = open_warehouse(settings)
    migrate(warehouse)  # before the analysts ask (the workers would also apply it: whoever starts first)
    warehouse.close()
    fleet = generate_snowplow(16, 8, seed=31)
    observed = Observed()
    started = time.monotonic()
    accepted = asyncio.run(_stream(settings, kafka_bootstrap, fleet, observed))
    return settings, fleet, observed, accepted, time.monotonic() - started


@pytest.fixture(scope="module")
def unique_module_name() -> str:
    import uuid

    return uuid.uuid4().hex[:8]


def test_every_expected_event_is_stored_once_after_a_worker_was_killed(streamed):
    settings, fleet, _, accepted, _ = streamed
    warehouse = open_warehouse(settings)
    try:
        total, distinct = warehouse.query("SELECT count(), uniqExact(event_id) FROM fct_behavior_structured_event "
                                          "FINAL").rows[0]
    finally:
        warehouse.close()
    assert accepted > 0
    assert (int(total), int(distinct)) == (fleet.expected_counts()["events"],) * 2


def test_daily_aggregates_equal_a_recomputation_from_the_generator(streamed):
    settings, fleet, _, _, _ = streamed
    warehouse = open_warehouse(settings)
    try:
        rows = warehouse.query("SELECT toString(behavior_date), scope, scope_id, groupBitmapMerge(users), sum(events) "
                               "FROM agg_behavior_active_daily FINAL GROUP BY behavior_date, scope, scope_id").rows
    finally:
        warehouse.close()
    got = {(day, scope, scope_id): (int(users), int(events)) for day, scope, scope_id, users, events in rows}
    want = _expected_daily(fleet)
    assert len(want) > 50
    assert got == want


def test_analysts_queried_the_live_warehouse_through_every_tool(streamed):
    _, fleet, observed, _, _ = streamed
    assert observed.failures == []
    final = fleet.expected_counts()["events"]
    for tool in ("cli", "clickhouse-connect", "curl"):
        answers = observed.counts[tool]
        assert len(answers) == 4, (tool, answers)  # three times during the stream, once after
        assert answers == sorted(answers) and answers[-1] == final, (tool, answers)  # only ever grew, to the end
        assert 0 < answers[0] < final, (tool, answers)  # the first answer came while events were still landing
