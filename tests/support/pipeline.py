"""The running pipeline the pipeline tests share: the project's topics on the real broker, a worker process and the
collector (in this process, on a free port), writing to the session's warehouse service.

    async with running_pipeline(settings, bootstrap) as pipeline:
        await send_pings(pipeline.url, pings)
        await pipeline.landed()
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from fleet.demo import wait_until_landed
from streams.collector import RunningCollector
from streams.config import Settings
from streams.kafka.topics import ensure_topics
from streams.worker import WorkerProcess

LANDED_POLL_SECONDS = 5.0


@dataclass
class Pipeline:
    settings: Settings
    bootstrap: str
    worker: WorkerProcess
    url: str  # the collector's

    async def landed(self, timeout: float = 240) -> None:
        """Everything published so far has been processed. Fails as soon as the worker is found dead (e.g. it
        refused a migration) instead of waiting out the timeout."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.worker.alive(), self.worker.log_tail()
            try:
                await wait_until_landed(self.settings, self.bootstrap, timeout=LANDED_POLL_SECONDS)
                break
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise
        assert self.worker.alive(), self.worker.log_tail()


@contextlib.asynccontextmanager
async def running_pipeline(settings: Settings, bootstrap: str, worker_env: dict[str, str] | None = None,
                           collector_settings: Settings | None = None) -> AsyncIterator[Pipeline]:
    """Topics, then the worker (a child process that inherits `worker_env` on top of this environment), then the
    collector; on exit the collector stops, then the worker (SIGTERM: a clean shutdown)."""
    await ensure_topics(bootstrap, settings)
    worker = WorkerProcess(settings, bootstrap)
    collector = RunningCollector(bootstrap, collector_settings or settings)
    with pytest.MonkeyPatch.context() as env:
        for name, value in (worker_env or {}).items():
            env.setenv(name, value)
        worker.start()  # the child copies the environment now
    try:
        yield Pipeline(settings, bootstrap, worker, await collector.start())
    finally:
        await collector.stop()
        assert worker.stop() is not None


def pipeline_settings(tmp_path_factory: pytest.TempPathFactory, label: str, **overrides: object) -> Settings:
    """Settings of one test module's pipeline: topics and consumer group of its own, a data directory of its own."""
    name = tmp_path_factory.mktemp(label).name
    return Settings.from_env(data_dir=tmp_path_factory.mktemp("data"), topic_prefix=f"t-{name}.",
                             app_id=f"test-{name}", **overrides)  # type: ignore[arg-type]
