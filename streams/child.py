"""A project process started as a child (the worker, the warehouse service), logging to a file: for the demo, the
tests and the benchmarks."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path


class ChildProcess:
    """What every child process of ours shares: alive, pid, the tail of its log, SIGTERM-then-SIGKILL stop, SIGKILL."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self._proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (a clean shutdown: Faust commits, the engine closes), then SIGKILL if it hangs."""
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        code = self._proc.returncode
        self._proc = None
        return code

    def kill(self) -> None:
        """SIGKILL: no shutdown, no commit, whatever the process was doing (fault tests)."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None
