"""The Faust worker process. It reaches the warehouse through clickhouse-connect (the embedded engine's warehouse
service, or a ClickHouse server), so any number of workers can run: they share the partitions as one consumer group.

`run_worker` is what `denomas-usage worker` runs; `run_workers` is `worker --workers N` (N such processes).
`WorkerProcess` starts one as a child process for the demo and the integration tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from streams.child import ChildProcess
from streams.config import Settings


def run_worker(settings: Settings, bootstrap_servers: str, loglevel: str = "WARNING") -> None:
    import faust

    from streams.agents import build_app
    from streams.enrich.metric_dictionary import MetricDictionary
    from streams.heap import limit_retention
    from streams.warehouse import migrate, open_warehouse

    limit_retention()
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # Faust keeps its datadir under it
    warehouse = open_warehouse(settings)
    try:
        migrate(warehouse)
        app = build_app(settings, bootstrap_servers, warehouse, MetricDictionary.from_dir())
        worker = faust.Worker(app, loglevel=loglevel, quiet=True)
        if not sys.stdout.isatty():  # the start-up spinner draws with cursor escape codes: plain lines in a file
            worker.spinner = None
        worker.execute_from_commandline()
    finally:
        warehouse.close()


def run_workers(settings: Settings, count: int, loglevel: str) -> int:
    """`count` worker processes in one consumer group (Faust's own scale-out); stop them all on SIGTERM/SIGINT.
    Each gets its own health port (DENOMAS_WORKER_PORT + i) when the port is set."""
    children = []
    for index in range(count):
        env = os.environ | {"DENOMAS_WORKER_PORT": str(settings.worker_web_port + index if settings.worker_web_port
                                                        else 0)}
        children.append(subprocess.Popen([sys.executable, "-m", "streams.cli", "worker", "--loglevel", loglevel],
                                         env=env))

    def forward(signum: int, frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [child.wait() for child in children]
    return max(codes, key=abs)


class WorkerProcess(ChildProcess):
    """`denomas-usage worker` as a child process, logging to a file."""

    def __init__(self, settings: Settings, bootstrap_servers: str, log_path: Path | None = None,
                 loglevel: str = "WARNING") -> None:
        super().__init__(log_path or settings.data_dir / "worker.log")
        self.settings = settings
        self.bootstrap_servers = bootstrap_servers
        self.loglevel = loglevel

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = os.environ | {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "DENOMAS_DATA_DIR": str(self.settings.data_dir),
            "DENOMAS_TOPIC_PARTITIONS": str(self.settings.topic_partitions),
            "DENOMAS_TOPIC_PREFIX": self.settings.topic_prefix,
            "DENOMAS_APP_ID": self.settings.app_id,
            "DENOMAS_WORKER_PORT": str(self.settings.worker_web_port),
        }
        env["CLICKHOUSE_URL"] = self.settings.warehouse_url  # the warehouse service, or a ClickHouse server
        env["DENOMAS_WAREHOUSE_DATABASE"] = self.settings.warehouse_database
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker", "--loglevel", self.loglevel],
                                          env=env, stdout=log, stderr=subprocess.STDOUT)

    def __enter__(self) -> WorkerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
