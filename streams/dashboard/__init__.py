"""`denomas-usage dashboard`: pages for the people who use the numbers (xMAU, accounts, version lag, installation
types, runners and topology, stage adoption, customer success, pipeline health), read from the warehouse's
ClickHouse interface. What a page is and its filters: page_model.py; the report pages and their SQL: pages.py;
the pages of one account, instance or namespace: entity_pages.py; the web server: server.py; the browser side:
static/.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from streams.child import ChildProcess
from streams.config import Settings

DEFAULT_PORT = 8050  # DENOMAS_DASHBOARD_PORT


def dashboard_port(port: int | None = None) -> int:
    return port if port is not None else int(os.environ.get("DENOMAS_DASHBOARD_PORT", str(DEFAULT_PORT)))


def port_if_free(port: int) -> int:
    """`port` when nothing listens on it, else a free one (a second demo, tests running side by side)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return port
        except OSError:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]


def dashboard(settings: Settings, host: str = "127.0.0.1", port: int | None = None) -> int:
    """Serve the dashboard until interrupted; 0 on a clean stop."""
    from streams.dashboard.server import serve

    serve(settings, host, dashboard_port(port))
    return 0


class DashboardProcess(ChildProcess):
    """The dashboard as a child process (the demo, tests, benchmarks): start, wait until it answers, stop."""

    def __init__(self, settings: Settings, port: int, log_path: Path | None = None) -> None:
        super().__init__(log_path or settings.data_dir / "dashboard.log")
        self.settings = settings
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, CLICKHOUSE_URL=self.settings.warehouse_url,
                   DENOMAS_WAREHOUSE_DATABASE=self.settings.warehouse_database)
        command = [sys.executable, "-m", "streams.cli", "dashboard", "--port", str(self.port)]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"dashboard exited:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"dashboard did not answer within {timeout} s:\n{self.log_tail()}")

    def __enter__(self) -> DashboardProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
