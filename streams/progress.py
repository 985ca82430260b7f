"""Progress of a long command: a ``rich`` progress bar on a terminal, plain lines otherwise (a log file or a
pipe gets one line per 10 % and the last one, never control characters).

Code that does the long work takes an optional `progress: ProgressCallback | None` and calls it with (done, total)
as it goes; the command passes an `ItemProgress`, tests and library callers pass nothing."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

ProgressCallback = Callable[[int, int], object]  # (items done so far, items in all)


class ItemProgress:
    """`done` of `total` items; use as a context manager and call `advance()` per item, or pass it as a
    `progress(done, total)` callback (the total may be learnt then)."""

    def __init__(self, label: str, total: int = 0, stream: TextIO | None = None) -> None:
        self.label, self.total, self.done = label, total, 0
        self.stream = stream or sys.stdout
        self.started = time.monotonic()
        self._next_line = self._step()
        self._bar: Progress | None = None
        if self.stream.isatty():
            self._bar = Progress(TextColumn(f"  {label}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                                 TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                                 console=Console(file=self.stream))
            self._task = self._bar.add_task(label, total=total or None, rate="")

    def _step(self) -> int:
        return max(1, self.total // 10)

    def rate(self) -> float:
        return self.done / max(time.monotonic() - self.started, 1e-9)

    def advance(self, count: int = 1) -> None:
        self.done += count
        if self._bar is not None:
            self._bar.start()  # on the first item: a command with nothing to do draws no empty bar
            self._bar.update(self._task, completed=self.done, rate=f"{self.rate():,.0f}/s")
        elif count > 0 and (self.done == self.total or self.done >= self._next_line):
            self._next_line = (self.done // self._step() + 1) * self._step()
            print(f"  {self.label} {self.done:,}/{self.total:,} ({self.rate():,.0f}/s)", file=self.stream, flush=True)

    def __call__(self, done: int, total: int) -> None:
        if total != self.total:
            self.total = total
            self._next_line = max(self._step(), self.done + 1)
            if self._bar is not None:
                self._bar.update(self._task, total=total)
        self.advance(done - self.done)

    def __enter__(self) -> ItemProgress:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()
