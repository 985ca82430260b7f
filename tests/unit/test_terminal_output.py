"""Tables (rich, plain text) and progress (a bar on a terminal, plain lines otherwise): unit tests."""

from __future__ import annotations

import io

from streams.progress import ItemProgress
from streams.tables import format_table


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_tables_align_numbers_right_text_left_and_split_on_whitespace():
    text = format_table(["name", "count", "rate", "note"],
                        [["a", 1234567, 0.5, None], ["longer name", 3, 12345.678, "x y"]], title="Title")
    assert text.splitlines() == [
        "Title",
        "name             count       rate  note",
        "------------ ---------- ---------- ----",
        "a            1,234,567        0.5",
        "longer name          3  12,345.68  x y",
    ]
    assert format_table(["month", "source", "records"], []).split()[:3] == ["month", "source", "records"]


def test_tables_never_wrap_and_print_markup_as_text():
    wide = "w" * 500
    text = format_table(["a", "b"], [[wide, "[bold]x[/bold]"]])
    assert text.splitlines()[2].split() == [wide, "[bold]x[/bold]"]
    assert all(ord(c) < 128 for c in text)  # 7-bit: log files and pipes


def test_progress_off_a_terminal_is_a_plain_line_per_tenth_and_the_last():
    out = io.StringIO()
    with ItemProgress("sent", 25, stream=out) as progress:
        for _ in range(25):
            progress.advance()
    lines = out.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == [f"  sent {n}/25" for n in (2, 4, 6, 8, 10, 12, 14, 16, 18,
                                                                                    20, 22, 24, 25)]
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_progress_on_a_terminal_is_a_bar():
    out = _Terminal()
    with ItemProgress("sent", 10, stream=out) as progress:
        for _ in range(10):
            progress.advance()
    text = out.getvalue()
    assert "10/10" in text and "100%" in text and "\x1b" in text  # drawn and redrawn in place
    assert "  sent 10/10 (" not in text  # no plain lines on a terminal
