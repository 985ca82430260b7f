"""A collector on the real broker run in a background thread, and raw HTTP requests to it (any bytes in any
header, which HTTP client libraries refuse to send). Shared by the hostile-input and fuzz tests."""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer

from streams.collector import RunningCollector
from streams.config import Settings
from streams.kafka.topics import ensure_topics


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class ThreadCollector:
    host: str
    port: int
    settings: Settings

    def request(self, method: str, path: bytes | str, body: bytes = b"",
                headers: dict[str, str | bytes] | None = None, timeout: float = 60) -> Answer:
        """Any bytes in the request line and headers (http.client refuses what is not ASCII)."""
        target = path if isinstance(path, bytes) else path.encode()
        lines = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: collector", b"Connection: close"]
        for name, value in (headers or {}).items():
            lines.append(name.encode() + b": " + (value if isinstance(value, bytes) else value.encode()))
        if body or method == "POST":
            lines.append(b"Content-Length: " + str(len(body)).encode())
        with socket.create_connection((self.host, self.port), timeout=timeout) as sock:
            sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
            response = http.client.HTTPResponse(sock, method=method)
            response.begin()
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())


def own_settings(tmp_path_factory: Any, prefix: str) -> Settings:
    """Settings of a test's own (data dir, topic prefix, app id), so its records meet no other test's."""
    name = tmp_path_factory.mktemp(prefix).name
    return Settings.from_env(data_dir=tmp_path_factory.mktemp("data"), topic_prefix=f"{prefix}-{name}.",
                             app_id=f"test-{name}")


@contextmanager
def thread_collector(bootstrap: str, settings: Settings) -> Iterator[ThreadCollector]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def run(coroutine):  # noqa: ANN001, ANN202
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(120)

    run(ensure_topics(bootstrap, settings))
    running = RunningCollector(bootstrap, settings)
    run(running.start())
    try:
        yield ThreadCollector(running.host, running.port, settings)
    finally:
        run(running.stop())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


async def consume_all(bootstrap: str, topic: str | list[str], idle_seconds: float = 2.0) -> list:
    """Every record of `topic` (or of every topic of a list) so far (stops after `idle_seconds` without a new one)."""
    topics = [topic] if isinstance(topic, str) else topic
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None, max_partition_fetch_bytes=16 * 2**20)
    await consumer.start()
    records = []
    try:
        while batch := await consumer.getmany(timeout_ms=int(idle_seconds * 1000)):
            records += [r for part in batch.values() for r in part]
    finally:
        await consumer.stop()
    return records
