"""`WarehouseServiceProcess`: the warehouse service as a child process on a free port, for tests and the demo."""

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WarehouseServiceProcess(ChildProcess):
    """Start, wait until /ping answers, stop with SIGTERM (the engine closes cleanly)."""

    def __init__(self, settings: Settings, port: int | None = None, users_path: Path | None = None,
                 log_path: Path | None = None, readers: int = 2) -> None:
        super().__init__(log_path or settings.data_dir / "warehouse.log")
        self.settings = settings
        self.port = port or free_port()
        self.users_path = users_path
        self.readers = readers

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "streams.warehouse_service", "--host", "127.0.0.1", "--port", str(self.port),
                   "--data-dir", str(self.settings.data_dir), "--readers", str(self.readers)]
        if self.users_path:
            command += ["--users", str(self.users_path)]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(command, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT)
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise RuntimeError(f"warehouse service exited ({self.returncode}):\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/ping", timeout=1) as response:
                    if response.read() == b"Ok.\n":
                        return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"warehouse service did not answer /ping within {timeout} s:\n{self.log_tail()}")

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc else None

    def __enter__(self) -> WarehouseServiceProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
