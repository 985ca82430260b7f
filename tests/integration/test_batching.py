"""A batch is committed only after the agent finished it (faust's own take_events acks failed batches)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from streams.kafka.admin import consumer_group_lag, create_topics

pytestmark = pytest.mark.integration
PROBE = Path(__file__).parents[1] / "support" / "faust_batch_probe.py"


async def _lag_after_a_failing_batch(bootstrap: str, name: str, kind: str, workdir: Path) -> tuple[str, int]:
    """Run a worker whose agent raises on its first batch; return its output and the group's lag after it."""
    topic, group = f"batching-{name}", f"batching-{name}"
    await create_topics(bootstrap, [topic], 1)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    for i in range(5):
        await producer.send_and_wait(topic, f"m{i}".encode())
    await producer.stop()
    proc = await asyncio.create_subprocess_exec(sys.executable, str(PROBE), bootstrap, topic, group, kind,
                                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=workdir)
    output, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    return output.decode(errors="replace"), await consumer_group_lag(bootstrap, group, [topic])


async def test_failed_batch_is_not_committed(kafka_bootstrap, unique_name, tmp_path):
    output, lag = await _lag_after_a_failing_batch(kafka_bootstrap, f"safe-{unique_name}", "safe", tmp_path)
    assert "seen 5" in output, output[-2000:]
    assert lag == 5  # nothing committed: a restart redelivers all five


async def test_faust_default_take_events_would_lose_the_batch(kafka_bootstrap, unique_name, tmp_path):
    """Why AckAfterStream exists: with faust's own Stream the failed batch counts as consumed."""
    output, lag = await _lag_after_a_failing_batch(kafka_bootstrap, f"default-{unique_name}", "default",
                                                   tmp_path)
    assert "seen 5" in output, output[-2000:]
    assert lag == 0
