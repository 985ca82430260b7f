"""The collector across broker restarts (SIGTERM and SIGKILL), on a broker of this test's own.

While the broker is away the collector answers 503 and logs a bounded number of lines; once it is back the
collector accepts again without being restarted; every acknowledged record is in the topic, and a record is
there twice only if the client had to send it again. The long version is `python -m bench --faults`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import pytest

from streams.collector import RunningCollector
from streams.collector.client import PostingClient, stored_numbers
from streams.config import TOPIC_RAW_SERVICE_PING, Settings
from streams.kafka.broker import LocalBroker

AWAY_SECONDS = 7.0  # longer than the collector's publish timeout (5 s): every request then ends in an answer
RECOVERY_BOUND_SECONDS = 60.0  # a liveness bound, not a speed target: before the fix it never recovered
MAX_LINES_AWAY = 30  # each kind of message at most once per 10 s; thousands before


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
        async with PostingClient(url) as client:
            stops: dict[str, Callable[[], None]] = {"SIGTERM": broker.stop, "SIGKILL": broker.kill}
            for name, stop in stops.items():
                await client.wait_for(200, time.monotonic(), RECOVERY_BOUND_SECONDS)
                await asyncio.sleep(1.0)  # records in flight when the broker goes
                lines_before = len(caplog.records)
                await asyncio.to_thread(stop)
                gone = time.monotonic()
                await asyncio.sleep(AWAY_SECONDS)
                seen[name] = set(client.statuses_since(gone + 1.0)), len(caplog.records) - lines_before
                await asyncio.to_thread(broker.start)
                await client.wait_for(200, time.monotonic(), RECOVERY_BOUND_SECONDS)
        await collector.stop()
        stored = await stored_numbers(broker.bootstrap_servers, TOPIC_RAW_SERVICE_PING)
    finally:
        await collector.stop()
        broker.stop()

    for name, (statuses, lines) in seen.items():
        assert statuses == {503}, name  # away: nothing accepted, every request answered 503
        assert lines <= MAX_LINES_AWAY, (name, lines)
    assert client.resent, "the broker restarts were not seen by the client"
    assert len(client.acknowledged) > 10
    assert not client.acknowledged - set(stored), "acknowledged records lost"
    assert {number for number, count in stored.items() if count > 1} <= client.resent
