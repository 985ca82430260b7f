"""InsertWatch (tests/support/faults.py), the fault tests' way to land a SIGKILL inside an insert, on plain
directories: it sees a part that is begun and finished at once (the kernel queues the creation; the 2 ms poll it
replaced missed such parts on a loaded CI machine, and the worker-kill test then waited 300 s for nothing), and it
acts while the engine is stopped, with the part still unfinished.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import tests.support.faults as faults_support
from tests.support.faults import InsertWatch


def state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


async def begin_parts(watch: InsertWatch, parts: list[Path], finish: bool, **wait: object):
    """Wait on `watch` while `parts` are begun (and finished at once, renamed to their final name, if `finish`)."""
    waiting = asyncio.create_task(watch.wait(10, **wait))
    await asyncio.sleep(0.1)  # the wait has begun
    for part in parts:
        part.mkdir()
        if finish:
            part.rename(part.with_name(part.name.removeprefix("tmp_insert_")))
    return await waiting


def test_a_part_begun_and_finished_at_once_is_seen(tmp_path):
    table = tmp_path / "t"
    table.mkdir()
    watch = InsertWatch({"t": table})
    try:
        seen = asyncio.run(begin_parts(watch, [table / "tmp_insert_1_1_1_0"], finish=True))
    finally:
        watch.close()
    assert seen is not None and (seen.table, seen.part) == ("t", "tmp_insert_1_1_1_0")
    assert [p.name for p in table.iterdir()] == ["1_1_1_0"]


def test_the_action_runs_while_the_engine_is_stopped_with_the_part_unfinished(tmp_path):
    table, other = tmp_path / "t", tmp_path / "u"
    table.mkdir()
    other.mkdir()
    engine = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    states: list[str] = []
    watch = InsertWatch({"t": table, "u": other}, engine_pid=engine.pid)
    try:
        # a part of another table first: passed over
        seen = asyncio.run(begin_parts(watch, [other / "tmp_insert_1_1_1_0", table / "tmp_insert_2_2_1_0"],
                                       finish=False, tables=["t"], then=lambda: states.append(state(engine.pid))))
        after = state(engine.pid)
    finally:
        watch.close()
        engine.kill()
        engine.wait()
    assert seen is not None and (seen.table, seen.part, seen.in_flight, sorted(seen.busy)) == (
        "t", "tmp_insert_2_2_1_0", True, ["t", "u"])
    assert states == ["T"]  # stopped while the action ran
    assert after in "SR"  # running again after it


def test_when_every_part_was_finished_before_the_freeze_the_action_comes_after_a_grace(tmp_path, monkeypatch):
    monkeypatch.setattr(faults_support, "FINISHED_PART_GRACE", 0.5)
    table = tmp_path / "t"
    table.mkdir()
    stop_for_real = faults_support.wait_stopped

    def stopped_after_the_part_was_finished(pid: int) -> None:
        # the watching thread may wake between the test's mkdir and rename: the freeze then takes effect only once
        # the part is finished, as when the engine finishes it first (no race with the test's own thread)
        deadline = time.monotonic() + 10
        while (table / "tmp_insert_1_1_1_0").exists() and time.monotonic() < deadline:
            time.sleep(0.001)
        stop_for_real(pid)

    monkeypatch.setattr(faults_support, "wait_stopped", stopped_after_the_part_was_finished)
    engine = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    acted: list[float] = []
    watch = InsertWatch({"t": table}, engine_pid=engine.pid)
    try:
        seen = asyncio.run(begin_parts(watch, [table / "tmp_insert_1_1_1_0"], finish=True, tables=["t"],
                                       then=lambda: acted.append(time.monotonic())))
    finally:
        watch.close()
        engine.kill()
        engine.wait()
    assert seen is not None and (seen.part, seen.in_flight, seen.finished_first) == ("tmp_insert_1_1_1_0", False, 1)
    assert len(acted) == 1
