"""Benchmark plumbing: results as ratios against a baseline measured in the same run."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from aiokafka import AIOKafkaConsumer

from streams.config import MAX_MESSAGE_BYTES

if TYPE_CHECKING:
    from streams.warehouse_service.process import WarehouseServiceProcess

SERVICE: WarehouseServiceProcess | None = None  # the suite's warehouse service (bench/__main__.py starts it)


def use_warehouse_service(service: WarehouseServiceProcess) -> None:
    """Point every Settings.from_env() of the suite, and every process it starts, at the warehouse service."""
    global SERVICE
    SERVICE = service
    os.environ["CLICKHOUSE_URL"] = service.url


@dataclass
class Result:
    name: str
    value: float
    unit: str
    baseline: float | None = None  # the raw floor measured in the same run, same unit
    target: str = ""  # what the issue asks for, e.g. ">= 50% of baseline"
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return self.value / self.baseline if self.baseline else None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ratio": self.ratio}


def best_rate(work: Callable[[], int], repeat: int = 5) -> float:
    """Items per second of the best of `repeat` runs (the least disturbed run on a noisy 2-core box)."""
    rates = []
    for _ in range(repeat):
        started = time.perf_counter()
        items = work()
        rates.append(items / (time.perf_counter() - started))
    return max(rates)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size (VmHWM) of a live process, in MiB."""
    return _status_mb(pid, "VmHWM")


def rss_mb(pid: int) -> float:
    """Current resident set size (VmRSS) of a live process, in MiB."""
    return _status_mb(pid, "VmRSS")


async def settled_rss_mb(pid: int, wait: float = 2.0, samples: int = 5) -> float:
    """RSS once the worker settled after a load: the least of a few samples taken after `wait` seconds (the
    worker hands freed memory back every second; right after a batch the RSS still holds its transient work)."""
    await asyncio.sleep(wait)
    values = []
    for _ in range(samples):
        values.append(rss_mb(pid))
        await asyncio.sleep(0.2)
    return min(values)


class PeakPrivateMemory:
    """Samples a process's private (anonymous) resident memory every 50 ms while running: unlike VmHWM it does
    not count code mapped from files, whose resident share varies with the page cache (fresh install or not)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_mb = pid, 0.0
        self._task: asyncio.Task | None = None

    async def _sample(self) -> None:
        while True:
            self.peak_mb = max(self.peak_mb, _status_mb(self.pid, "RssAnon"))
            await asyncio.sleep(0.05)

    def __enter__(self) -> PeakPrivateMemory:
        self._task = asyncio.get_running_loop().create_task(self._sample())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


def rss_file_mb(pid: int) -> float:
    """The file-backed part of the resident set (RssFile: code and data mapped from disk), in MiB."""
    return _status_mb(pid, "RssFile")


def items_in(document: Any) -> int:
    """What a record counts for in a rate: the events of a multi-event record (a JSON array), else 1."""
    return len(document) if type(document) is list else 1


async def consume_parse_rate(bootstrap: str, topic: str, expected: int) -> float:
    """The floor: aiokafka consume + orjson.loads of the same messages, no other work. Items/s (see items_in)
    until `expected` items were read."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None,
                                enable_auto_commit=False, max_partition_fetch_bytes=MAX_MESSAGE_BYTES)
    await consumer.start()
    seen = 0
    try:
        started = time.perf_counter()
        while seen < expected:
            for messages in (await consumer.getmany(timeout_ms=2000, max_records=5000)).values():
                for message in messages:
                    seen += items_in(orjson.loads(message.value))
        return seen / (time.perf_counter() - started)
    finally:
        await consumer.stop()
