"""The processes started one by one, as the README says: each makes sure the topics have the project's settings.

`denomas-usage broker start --port P`, then `denomas-usage collector` (port from DENOMAS_COLLECTOR_PORT), then
`denomas-usage worker`, then `denomas-usage reference load --publish`; before each, some topics are given
wrong settings (as a client's auto-creation or an older release would leave them) or deleted, and after each
the broker's topic configs are compared with streams.config.topic_config.
"""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from streams.config import (
    TOPIC_ALERTS,
    TOPIC_RAW_SNOWPLOW,
    TOPIC_REF_ACCOUNTS,
    TOPIC_REF_LICENSES,
    TOPIC_REF_NAMESPACES,
    Settings,
    topic_config,
)
from streams.kafka.admin import create_topics
from streams.kafka.topics import PIPELINE_TOPICS

START_BOUND_SECONDS = 180  # a liveness bound for a JVM or a worker start on a busy machine, not a speed target


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    """A `denomas-usage` command as a child process; its output lines are read on a thread."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen([sys.executable, "-m", "streams.cli", *argv], env=os.environ | env,
                                     stdout=subprocess.PIPE, stderr=log.open("ab"), text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def wait_line(self, prefix: str) -> str:
        deadline = time.monotonic() + START_BOUND_SECONDS
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                assert self.proc.poll() is None, f"exited {self.proc.returncode}: {self.log.read_text()[-2000:]}"
                continue
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no line starting {prefix!r}: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def _configs(admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, dict[str, str] | None]:
    """Each topic's config (only the keys we set), None for a topic that does not exist."""
    [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in topics])
    return {topic: None if code else {e[0]: e[1] for e in entries if e[0] in topic_config(topic)}
            for code, _message, _type, topic, entries in response.resources}


async def _wrong_settings(admin: AIOKafkaAdminClient, bootstrap: str, *, compact_off: str, delete: str) -> None:
    # AlterConfigs replaces every config the topic has: only cleanup.policy=delete is left on it.
    await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, compact_off, {"cleanup.policy": "delete"})])
    await admin.delete_topics([delete])


async def _wait_project_settings(admin: AIOKafkaAdminClient, process: Process | None = None) -> None:
    wanted = {topic: topic_config(topic) for topic in PIPELINE_TOPICS}
    deadline = time.monotonic() + START_BOUND_SECONDS
    while (found := await _configs(admin, PIPELINE_TOPICS)) != wanted:
        differ = {topic: found[topic] for topic in wanted if found[topic] != wanted[topic]}
        assert time.monotonic() < deadline, f"topics without the project's settings: {differ}"
        assert process is None or process.proc.poll() is None, f"{process.log.read_text()[-2000:]}"
        await asyncio.sleep(0.5)


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in reversed(started):
        process.stop()


@pytest.mark.integration
async def test_processes_started_one_by_one_give_topics_the_project_settings(tmp_path, processes) -> None:
    port, collector_port = _free_port(), _free_port()
    env = {"DENOMAS_DATA_DIR": str(tmp_path / "run"), "DENOMAS_CACHE_DIR": str(Settings.from_env().cache_dir),
           "DENOMAS_TOPIC_PREFIX": "", "DENOMAS_APP_ID": "denomas-usage"}
    broker = Process(["broker", "start", "--port", str(port)], env, tmp_path / "broker.log")
    processes.append(broker)
    bootstrap = broker.wait_line("127.0.0.1:")
    assert bootstrap == f"127.0.0.1:{port}"  # `broker start --port` is honoured
    env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap

    # Before anything of ours ran: topics made by someone else with the broker's defaults / other settings.
    await create_topics(bootstrap, [TOPIC_RAW_SNOWPLOW], 1, {"retention.ms": str(7 * 24 * 3600 * 1000)})
    await create_topics(bootstrap, [TOPIC_REF_ACCOUNTS], 1, {"cleanup.policy": "delete"})
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        while None in (found := await _configs(admin, [TOPIC_RAW_SNOWPLOW, TOPIC_REF_ACCOUNTS])).values():
            await asyncio.sleep(0.2)  # a topic just created shows in the broker's metadata a moment later
        assert found[TOPIC_RAW_SNOWPLOW]["retention.ms"] != "-1"
        assert found[TOPIC_REF_ACCOUNTS]["cleanup.policy"] == "delete"

        collector = Process(["collector"], env | {"DENOMAS_COLLECTOR_PORT": str(collector_port)},
                            tmp_path / "collector.log")
        processes.append(collector)
        listening = collector.wait_line("collector listening on")
        assert listening == f"collector listening on http://127.0.0.1:{collector_port}"  # DENOMAS_COLLECTOR_PORT
        await _wait_project_settings(admin)

        await _wrong_settings(admin, bootstrap, compact_off=TOPIC_REF_NAMESPACES, delete=TOPIC_ALERTS)
        worker = Process(["worker"], env, tmp_path / "worker.log")
        processes.append(worker)
        await _wait_project_settings(admin, worker)
        worker.stop()  # from here on only the next command may correct the topics

        await _wrong_settings(admin, bootstrap, compact_off=TOPIC_REF_LICENSES, delete=TOPIC_RAW_SNOWPLOW)
        sample = subprocess.run([sys.executable, "-m", "streams.cli", "reference", "sample", "--out",
                                 str(tmp_path / "ref"), "--instances", "3", "--weeks", "2"],
                                env=os.environ | env, capture_output=True, text=True, check=True)
        assert "licenses" in sample.stdout
        load = subprocess.run([sys.executable, "-m", "streams.cli", "reference", "load", "--kind", "licenses",
                               str(tmp_path / "ref" / "licenses.csv"), "--publish"],
                              env=os.environ | env, capture_output=True, text=True)
        assert load.returncode == 0, load.stderr
        assert "published" in load.stdout
        await _wait_project_settings(admin)
    finally:
        await admin.close()
