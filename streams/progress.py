"""Progress of a long command: a ``rich`` progress bar on a terminal, plain lines otherwise (a log file or a
pipe gets one line per 10 % and the last one, never control characters)."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn


class ItemProgress:
    """`done` of `total` items; use as a context manager and call `advance()` per item."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label, self.total, self.done = label, total, 0
        self.stream = stream or sys.stdout
        self.started = time.monotonic()
        self._step = max(1, total // 10)
        self._bar: Progress | None = None
        if self.stream.isatty():
            self._bar = Progress(TextColumn(f"  {label}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                                 TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                                 console=Console(file=self.stream))
            self._task = self._bar.add_task(label, total=total, rate="")

    def rate(self) -> float:
        return self.done / max(time.monotonic() - self.started, 1e-9)

    def advance(self, count: int = 1) -> None:
        self.done += count
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, rate=f"{self.rate():,.0f}/s")
        elif self.done == self.total or self.done % self._step == 0:
            print(f"  {self.label} {self.done:,}/{self.total:,} ({self.rate():,.0f}/s)", file=self.stream, flush=True)

    def __enter__(self) -> ItemProgress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()
