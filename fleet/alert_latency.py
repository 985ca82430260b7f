"""How long from the last input record to the alert on the topic (for the benchmark suite).

`measure_alert_latency` needs a running collector and worker whose rules include a relative drop of active
users per instance (the default `instance_active_users_drop` does). It posts two pings of a new instance over
HTTP (a baseline week, then a week with far fewer users), takes the moment the collector acknowledged the
second one as the start, and stops the clock when the alert for that instance is read from usage.alerts.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import time
import uuid as uuidlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.config import TOPIC_ALERTS, Settings
from streams.enrich.service_ping import installation_id_for
from streams.kafka.admin import end_offsets


@dataclass(frozen=True)
class AlertLatency:
    seconds: float  # collector acknowledged the last ping -> the alert event was read from usage.alerts
    detection_seconds: float  # collector acknowledged -> the evaluator's detected_at (same machine clock)
    installation_id: str
    alert_id: str


def craft_ping(template: dict[str, Any], uuid: str, hostname: str, recorded_at: datetime, users: int,
               subscription_id: str | None = None) -> dict[str, Any]:
    """A valid ping payload (copied from `template`) for another instance, week and number of active users.

    The license hashes are the instance's own (they match no license), and the subscription it reports is
    `subscription_id`, so the crafted instance joins no real customer's roll-up by accident.
    """
    payload = copy.deepcopy(template)
    payload.update(uuid=uuid, hostname=hostname, active_user_count=users,
                   recorded_at=recorded_at.astimezone(UTC).isoformat(timespec="milliseconds"),
                   license_md5=hashlib.md5(uuid.encode()).hexdigest(),
                   license_sha256=hashlib.sha256(uuid.encode()).hexdigest(), license_subscription_id=subscription_id)
    return payload


def latency_pings(template: dict[str, Any], users: tuple[int, int], now: datetime) -> list[dict[str, Any]]:
    """Two weekly pings of a fresh instance: `users[0]` two weeks ago, then `users[1]` one week ago."""
    uuid = str(uuidlib.uuid4())
    hostname = f"latency-{uuid[:8]}.example.com"
    return [craft_ping(template, uuid, hostname, now - timedelta(days=14 - 7 * week), count)
            for week, count in enumerate(users)]


async def _alerts_consumer(bootstrap: str, topic: str) -> AIOKafkaConsumer:
    """Reads only what is published from now on."""
    ends = await end_offsets(bootstrap, [topic])
    if not ends:
        raise RuntimeError(f"topic {topic} does not exist yet; start the worker first")
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    tps = [TopicPartition(tp.topic, tp.partition) for tp in ends]
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, ends[tp])
    return consumer


def default_template() -> dict[str, Any]:
    """A valid ping of a steady instance of the sample fleet."""
    from fleet.pings import generate_fleet

    return next(p.payload for p in generate_fleet(6, 1, seed=1) if p.valid)


async def measure_alert_latency(collector_url: str, bootstrap: str, settings: Settings,
                                template: dict[str, Any] | None = None, users: tuple[int, int] = (400, 100),
                                timeout: float = 120.0) -> AlertLatency:
    pings = latency_pings(template or default_template(), users, datetime.now(UTC))
    installation = installation_id_for(pings[0]["uuid"], pings[0]["hostname"])
    consumer = await _alerts_consumer(bootstrap, settings.topic(TOPIC_ALERTS))
    try:
        async with aiohttp.ClientSession() as session:
            for payload in pings:
                async with session.post(f"{collector_url}/usage_data", data=orjson.dumps(payload),
                                        headers={"Content-Type": "application/json"}) as response:
                    if response.status != 200:
                        raise RuntimeError(f"collector answered {response.status}: {await response.text()}")
            acknowledged = time.time()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    event = orjson.loads(record.value)
                    if event["scope"]["id"] == installation and event["state"] == "open":
                        seen = time.time()
                        detected = datetime.fromisoformat(event["detected_at"]).timestamp()
                        return AlertLatency(seen - acknowledged, detected - acknowledged, installation,
                                            event["alert_id"])
        raise TimeoutError(f"no alert for installation {installation} within {timeout:.0f} s")
    finally:
        await consumer.stop()


def measure_alert_latency_sync(*args: Any, **kwargs: Any) -> AlertLatency:
    return asyncio.run(measure_alert_latency(*args, **kwargs))
