"""Progress of long commands: `ItemProgress` as the (done, total) callback the long functions take, and the
commands' progress lines on stderr when it is not a terminal (stdout stays the result)."""

from __future__ import annotations

import io

from streams.cli import main
from streams.config import MIGRATIONS_DIR
from streams.progress import ItemProgress
from streams.warehouse import load_migrations
from tests.support.fresh import new_database


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_callback_form_learns_the_total_and_prints_tenths_and_the_last():
    out = io.StringIO()
    with ItemProgress("checks", stream=out) as progress:
        for done in range(1, 21):
            progress(done, 20)
        progress(20, 20)  # a repeated report adds no line
    assert [line.split(" (")[0] for line in out.getvalue().splitlines()] == [
        f"  checks {n}/20" for n in range(2, 21, 2)]


def test_the_callback_form_with_jumps_prints_once_per_tenth_crossed_and_never_goes_silent():
    out = io.StringIO()
    with ItemProgress("sent", stream=out) as progress:
        for done in (7, 13, 26, 99, 100):
            progress(done, 100)
    assert [line.split(" (")[0] for line in out.getvalue().splitlines()] == [
        f"  sent {n}/100" for n in (13, 26, 99, 100)]  # 7 crossed no tenth; 99 crossed several: one line


def test_a_growing_total_and_a_step_back_are_shown_without_error():
    out = io.StringIO()
    with ItemProgress("records processed", stream=out) as progress:
        progress(0, 50)
        progress(40, 50)
        progress(30, 80)  # more arrived than were processed: the lag grew
        progress(80, 80)
    lines = [line.split(" (")[0] for line in out.getvalue().splitlines()]
    assert lines == ["  records processed 40/50", "  records processed 80/80"]


def test_on_a_terminal_nothing_is_drawn_until_the_first_item():
    quiet, busy = _Terminal(), _Terminal()
    with ItemProgress("migrations", stream=quiet):
        pass
    with ItemProgress("migrations", stream=busy) as progress:
        progress(3, 3)
    assert quiet.getvalue() == ""
    assert "3/3" in busy.getvalue() and "\x1b" in busy.getvalue()


def test_migrate_on_a_fresh_database_shows_its_progress_on_stderr(monkeypatch, capsys):
    monkeypatch.setenv("DENOMAS_WAREHOUSE_DATABASE", new_database())
    assert main(["migrate"]) == 0
    out = capsys.readouterr()
    total = len([m for m in load_migrations(MIGRATIONS_DIR) if not m.server_only])  # server-only: skipped here
    applied = out.out.removeprefix("applied: ").strip().split(", ")
    assert len(applied) == total
    progress = [line.split(" (")[0] for line in out.err.splitlines() if line.startswith("  migrations ")]
    assert progress[-1] == f"  migrations {total}/{total}" and 9 <= len(progress) < total  # tenths, not each
    assert main(["migrate"]) == 0  # nothing new: no progress at all
    again = capsys.readouterr()
    assert again.out.strip() == "applied: nothing new" and "migrations" not in again.err
