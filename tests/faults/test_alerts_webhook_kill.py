"""Webhooks are delivered at least once across worker kills, and repeats are recognisable by Idempotency-Key.

A slow receiver, alert events on usage.alerts, the worker SIGKILLed twice while it delivers and restarted: every
event arrives, a repeated delivery carries the same key and the same body, and different events never share a key,
so a receiver that drops repeated keys sees each event exactly once (README, "Delivery guarantees")."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
import yaml
from aiohttp import web
from aiokafka import AIOKafkaProducer

from fleet.demo import wait_until_landed
from streams.config import TOPIC_ALERTS, Settings
from streams.kafka.topics import ensure_topics
from streams.worker import WorkerProcess
from tests.support.alert_receiver import Receiver

pytestmark = pytest.mark.integration

EVENTS = 30
SECRET_ENV = "DENOMAS_TEST_KILL_HOOK_SECRET"


class SlowReceiver(Receiver):
    """Takes a while to answer, so a kill lands while deliveries are in flight."""

    async def handle(self, request: web.Request) -> web.Response:
        await asyncio.sleep(0.15)
        return await super().handle(request)


def alert_event(number: int) -> dict:
    alert_id = f"instance_active_users_drop|instance:inst-{number:03d}|2026-W{number % 50 + 1:02d}"
    return {"event_id": f"{alert_id}:open", "alert_id": alert_id, "rule": "instance_active_users_drop",
            "state": "open", "scope": {"type": "instance", "id": f"inst-{number:03d}"}, "value": number}


async def wait_for(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_every_event_arrives_and_repeats_share_the_key(kafka_bootstrap, tmp_path, unique_name, monkeypatch):
    receiver = SlowReceiver(secret="s3cret")
    url = await receiver.start()
    rules = yaml.safe_load(open("schemas/alert_rules.yml"))  # noqa: SIM115 -- the project's own rules, unchanged
    rules["destinations"] = [{"name": "cs_hook", "url": url, "secret_env": SECRET_ENV, "attempts": 5,
                              "backoff_seconds": 0.1, "max_backoff_seconds": 0.5}]
    rules_path = tmp_path / "rules.yml"
    rules_path.write_text(yaml.safe_dump(rules))
    monkeypatch.setenv("DENOMAS_ALERT_RULES", str(rules_path))
    monkeypatch.setenv(SECRET_ENV, "s3cret")
    settings = Settings.from_env(data_dir=tmp_path / "data", topic_prefix=f"t-{unique_name}.",
                                 app_id=f"kill-{unique_name}", topic_partitions=1, worker_web_port=0)
    await ensure_topics(kafka_bootstrap, settings)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    events = [alert_event(n) for n in range(EVENTS)]
    try:
        for event in events:
            await producer.send_and_wait(settings.topic(TOPIC_ALERTS), orjson.dumps(event),
                                         key=event["alert_id"].encode())
    finally:
        await producer.stop()

    worker = WorkerProcess(settings, kafka_bootstrap)
    try:
        for kills in range(2):  # kill while deliveries are in flight, twice
            worker.start()
            await wait_for(lambda k=kills: len(receiver.accepted) >= 5 * (k + 1), timeout=90)
            worker.kill()
        worker.start()
        await wait_until_landed(settings, kafka_bootstrap, timeout=120, topics=[TOPIC_ALERTS])
        await wait_for(lambda: len(receiver.accepted) == EVENTS, timeout=60)
    finally:
        worker.stop()
        await receiver.stop()

    sent = {e["event_id"]: e for e in events}
    assert set(receiver.accepted) == set(sent)  # every event arrived: nothing lost across two kills
    for key, deliveries in receiver.accepted.items():
        assert all(d == deliveries[0] for d in deliveries)  # a repeat is the same event under the same key
        assert deliveries[0]["event_id"] == key and deliveries[0]["value"] == sent[key]["value"]
    deduplicated = {key: deliveries[0] for key, deliveries in receiver.accepted.items()}
    assert len(deduplicated) == EVENTS  # what a receiver honouring Idempotency-Key sees: each event once
    repeats = sum(len(d) for d in receiver.accepted.values()) - EVENTS
    print(f"\n{EVENTS} alert events, 2 worker kills during delivery: {repeats} repeated deliveries, 0 lost")
