"""The collector across broker restarts (SIGTERM and SIGKILL), on a broker of this test's own.

While the broker is away the collector answers 503 and logs a bounded number of lines; once it is back the
collector accepts again without being restarted; every acknowledged record is in the topic, and a record is
there twice only if the client had to send it again. The long version is `python -m bench --faults`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from streams.collector import RunningCollector
from streams.config import TOPIC_RAW_SERVICE_PING, Settings
from streams.kafka import LocalBroker

SENDERS = 3
AWAY_SECONDS = 7.0  # longer than the collector's publish timeout (5 s): every request then ends in an answer
RECOVERY_BOUND_SECONDS = 60.0  # a liveness bound, not a speed target: before the fix it never recovered
MAX_LINES_AWAY = 30  # each kind of message at most once per 10 s; thousands before


class Client:
    """Senders that post numbered pings and send each again until it is accepted, as instances do."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url = http, url
        self.answers: list[tuple[float, int]] = []
        self.acknowledged: set[int] = set()
        self.resent: set[int] = set()
        self._ids = itertools.count()
        self._tasks = [asyncio.create_task(self._send()) for _ in range(SENDERS)]

    async def _send(self) -> None:
        while True:
            number = next(self._ids)
            body = orjson.dumps({"uuid": f"instance-{number % 5}", "number": number})
            while True:
                async with self.http.post(f"{self.url}/usage_data", data=body) as response:
                    self.answers.append((time.monotonic(), response.status))
                if response.status == 200:
                    self.acknowledged.add(number)
                    break
                self.resent.add(number)
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.02)

    def statuses_since(self, since: float) -> set[int]:
        return {status for at, status in self.answers if at >= since}

    async def wait_for(self, status: int, since: float, bound: float = RECOVERY_BOUND_SECONDS) -> None:
        deadline = time.monotonic() + bound
        while status not in self.statuses_since(since):
            assert time.monotonic() < deadline, f"no {status} within {bound:.0f} s"
            await asyncio.sleep(0.1)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _stored_numbers(bootstrap: str, topic: str, expected: int) -> Counter[int]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    numbers: Counter[int] = Counter()
    try:
        while batch := await consumer.getmany(timeout_ms=3000):
            numbers.update(orjson.loads(r.value)["number"] for records in batch.values() for r in records)
    finally:
        await consumer.stop()
    assert sum(numbers.values()) >= expected
    return numbers


@pytest.mark.integration
async def test_collector_recovers_from_broker_restarts(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    settings = Settings.from_env(data_dir=tmp_path, topic_partitions=2)
    broker = LocalBroker(tmp_path / "broker", settings.cache_dir, partitions=2)
    await asyncio.to_thread(broker.start)
    collector = RunningCollector(broker.bootstrap_servers, settings)
    seen: dict[str, tuple[set[int], int]] = {}
    try:
        url = await collector.start()
        async with aiohttp.ClientSession() as http:
            client = Client(http, url)
            try:
                stops: dict[str, Callable[[], None]] = {"SIGTERM": broker.stop, "SIGKILL": broker.kill}
                for name, stop in stops.items():
                    await client.wait_for(200, time.monotonic())
                    lines_before = len(caplog.records)
                    await asyncio.to_thread(stop)
                    gone = time.monotonic()
                    await asyncio.sleep(AWAY_SECONDS)
                    seen[name] = client.statuses_since(gone + 1.0), len(caplog.records) - lines_before
                    await asyncio.to_thread(broker.start)
                    await client.wait_for(200, time.monotonic())
            finally:
                await client.close()
        await collector.stop()
        stored = await _stored_numbers(broker.bootstrap_servers, TOPIC_RAW_SERVICE_PING, len(client.acknowledged))
    finally:
        await collector.stop()
        broker.stop()

    for name, (statuses, lines) in seen.items():
        assert statuses == {503}, name  # away: nothing accepted, every request answered 503
        assert lines <= MAX_LINES_AWAY, (name, lines)
    assert client.resent, "the broker restarts were not seen by the client"
    assert not client.acknowledged - set(stored), "acknowledged records lost"
    assert {number for number, count in stored.items() if count > 1} <= client.resent
