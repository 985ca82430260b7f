"""Kafka-side faults: the broker restarted under a posting client, the worker killed, the first worker on a
fresh broker.

Broker scenarios run a broker of their own and `denomas-usage collector` as a process; a client keeps posting
numbered pings and sends each again until accepted. Acknowledged = numbers answered 200; stored = of those,
in the raw topic exactly once; doubled = in it more than once (only a record the client had to send again may
be). Worker scenarios: the seconds from the worker's start until a ping posted then is processed (the
worker's consumer group has no lag left on the topics it consumes).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import aiohttp

from bench.faults import FaultEnv, FaultResult, Scenario
from fleet.pings import generate_fleet
from streams.agents import CONSUMED_TOPICS
from streams.collector import RunningCollector
from streams.collector.client import PostingClient, stored_numbers
from streams.config import TOPIC_RAW_SERVICE_PING, Settings
from streams.kafka.admin import OffsetProbe
from streams.kafka.broker import LocalBroker
from streams.worker import WorkerProcess

BOUND_SECONDS = 300  # give up waiting for a recovery after this long (the result then says so)


# --------------------------------------------------------------------------------------------- broker restarts


class CollectorProcess:
    """`denomas-usage collector --port 0` as a child process; stderr (its log) goes to a file."""

    def __init__(self, bootstrap: str, workdir: Path) -> None:
        self.log_path = workdir / "collector.log"
        env = os.environ | {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "DENOMAS_DATA_DIR": str(workdir)}
        self.proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "collector", "--port", "0"], env=env,
                                     stdout=subprocess.PIPE, stderr=self.log_path.open("wb"), text=True)

    def url(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()  # "collector listening on http://127.0.0.1:PORT"
        if not line.startswith("collector listening on "):
            raise RuntimeError(f"collector did not start: {line!r} {self.log_path.read_text()[-2000:]}")
        return line.rsplit(" ", 1)[1]

    def log_lines(self) -> int:
        return len(self.log_path.read_text(errors="replace").splitlines())

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def _broker_restart(env: FaultEnv, name: str, stop: Callable[[LocalBroker], None]) -> FaultResult:
    away_seconds, run_seconds = (8.0, 2.0) if env.quick else (20.0, 5.0)
    broker = LocalBroker(env.workdir / "broker", Settings.from_env().cache_dir)
    await asyncio.to_thread(broker.start)
    collector = CollectorProcess(broker.bootstrap_servers, env.workdir)
    try:
        url = await asyncio.to_thread(collector.url)
        async with PostingClient(url, senders=4) as client:
            await asyncio.sleep(run_seconds)
            env.progress(f"{name}: stopping the broker ({len(client.acknowledged)} acknowledged so far)")
            await asyncio.to_thread(stop, broker)
            gone, lines_before = time.monotonic(), collector.log_lines()
            await asyncio.sleep(away_seconds)
            lines_away = collector.log_lines() - lines_before
            answers_away = client.statuses_since(gone + 1.0)
            await asyncio.to_thread(broker.start)
            back = time.monotonic()
            try:
                recover: float | None = await client.wait_for(200, back, BOUND_SECONDS)
            except TimeoutError:
                recover = None
            env.progress(f"{name}: broker back; collector accepting after {recover} s")
            await asyncio.sleep(run_seconds)
        collector.stop()
        stored = await stored_numbers(broker.bootstrap_servers, TOPIC_RAW_SERVICE_PING)
    finally:
        collector.stop()
        broker.stop()
    acknowledged = client.acknowledged
    doubled = {number for number in acknowledged if stored[number] > 1}
    away = ", ".join(f"{status}: {count}" for status, count in sorted(answers_away.items()))
    return FaultResult(
        name, len(acknowledged), sum(1 for number in acknowledged if stored[number] == 1),
        len(acknowledged - set(stored)), len(doubled), None, recover,
        f"away {away_seconds:.0f} s: answers {{{away}}}, {lines_away} log lines; "
        f"{len(client.resent)} sent again, doubled among them: {doubled <= client.resent}; stored = in the raw topic",
    )


def broker_sigterm_restart(env: FaultEnv) -> FaultResult:
    return asyncio.run(_broker_restart(env, "broker SIGTERM restart", LocalBroker.stop))


def broker_sigkill_restart(env: FaultEnv) -> FaultResult:
    return asyncio.run(_broker_restart(env, "broker SIGKILL restart", LocalBroker.kill))


# --------------------------------------------------------------------------------------------- worker recovery


def _worker_settings(workdir: Path) -> Settings:
    tag = uuid.uuid4().hex[:8]
    return Settings.from_env(data_dir=workdir / "worker", topic_prefix=f"faults.{tag}.", app_id=f"faults-{tag}")


async def _seconds_until_processed(settings: Settings, bootstrap: str, url: str, since: float) -> float | None:
    """Post one ping; seconds from `since` until the worker's group has no lag left (None: not within bound)."""
    ping = generate_fleet(1, 1, seed=int(time.time()))[0]
    async with aiohttp.ClientSession() as http, http.post(f"{url}/usage_data", data=ping.body()) as response:
        if response.status != 200:
            raise RuntimeError(f"collector answered {response.status}: {await response.text()}")
    topics = [settings.topic(topic) for topic in CONSUMED_TOPICS]
    async with OffsetProbe(bootstrap) as probe:
        while await probe.group_lag(settings.app_id, topics) > 0:
            if time.monotonic() - since > BOUND_SECONDS:
                return None
            await asyncio.sleep(0.2)
    return time.monotonic() - since


async def _worker_kill(env: FaultEnv) -> FaultResult:
    settings = _worker_settings(env.workdir)
    collector = RunningCollector(env.bootstrap, settings)
    worker = WorkerProcess(settings, env.bootstrap, env.workdir / "worker.log")
    url = await collector.start()
    try:
        started = time.monotonic()
        worker.start()
        first = await _seconds_until_processed(settings, env.bootstrap, url, started)
        env.progress(f"worker SIGKILL: first ping processed {first} s after the start; killing it")
        worker.kill()  # as a crash would end it
        restarted = time.monotonic()
        worker.start()
        recover = await _seconds_until_processed(settings, env.bootstrap, url, restarted)
    finally:
        worker.stop()
        await collector.stop()
    first_note = "not processed" if first is None else f"{first:.1f} s"
    return FaultResult("worker SIGKILL + restart", 0, 0, 0, 0, None, recover,
                       f"from the restart (incl. process start) to a ping posted then processed; first start "
                       f"(migrations on an empty warehouse): {first_note}")


async def _worker_fresh_broker(env: FaultEnv) -> FaultResult:
    settings = _worker_settings(env.workdir)
    broker = LocalBroker(env.workdir / "broker", settings.cache_dir)
    await asyncio.to_thread(broker.start)
    worker = WorkerProcess(settings, broker.bootstrap_servers, env.workdir / "worker.log")
    collector = RunningCollector(broker.bootstrap_servers, settings)
    try:
        started = time.monotonic()
        worker.start()  # before any topic exists: the worker creates them itself, then subscribes
        raw = settings.topic(TOPIC_RAW_SERVICE_PING)
        async with OffsetProbe(broker.bootstrap_servers) as probe:
            while not await probe.partitions([raw]):
                await asyncio.sleep(0.2)
        up = time.monotonic()  # the worker creates the topics once its warehouse is migrated, then subscribes
        url = await collector.start()  # only now: the collector would otherwise create the topics first
        recover = await _seconds_until_processed(settings, broker.bootstrap_servers, url, up)
    finally:
        worker.stop()
        await collector.stop()
        broker.stop()
    return FaultResult("first worker on a fresh broker", 0, 0, 0, 0, None, recover,
                       f"from the topics the worker created to a ping posted then processed; before that "
                       f"{up - started:.1f} s from its start (migrations on an empty warehouse)")


def worker_sigkill_restart(env: FaultEnv) -> FaultResult:
    return asyncio.run(_worker_kill(env))


def worker_fresh_broker(env: FaultEnv) -> FaultResult:
    return asyncio.run(_worker_fresh_broker(env))


SCENARIOS: dict[str, Scenario] = {
    "broker-sigterm-restart": broker_sigterm_restart,
    "broker-sigkill-restart": broker_sigkill_restart,
    "worker-sigkill-restart": worker_sigkill_restart,
    "worker-fresh-broker": worker_fresh_broker,
}
