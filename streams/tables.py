"""Tables for the terminal (the CLI, the demo and the benchmarks print these), laid out by ``rich``.

The text is plain (no colours, no vertical rules): it reads the same in a terminal, a log file or a pipe, and a
row splits into its cells on whitespace. Numbers are right-aligned with thousands separators.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

_WIDE = 100_000  # never wrap or cut a cell: the table is as wide as its content
# rich's SIMPLE_HEAD in ASCII: a dashed rule under the header, nothing else (logs and pipes stay 7-bit).
_RULE_UNDER_HEADER = box.Box("    \n    \n -  \n    \n    \n    \n    \n    \n", ascii=True)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) >= 1000 else f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _numeric(rows: Sequence[Sequence[Any]], column: int) -> bool:
    return bool(rows) and all(isinstance(row[column], int | float) or row[column] is None for row in rows)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> str:
    table = Table(box=_RULE_UNDER_HEADER, show_edge=False, pad_edge=False, padding=(0, 1), collapse_padding=True)
    for i, header in enumerate(headers):
        table.add_column(header, justify="right" if _numeric(rows, i) else "left", no_wrap=True,
                         header_style="", style="")
    for row in rows:
        table.add_row(*(_cell(value) for value in row))
    out = io.StringIO()
    console = Console(file=out, width=_WIDE, color_system=None, force_terminal=False, highlight=False,
                      emoji=False, markup=False)
    console.print(table)
    lines = [line.rstrip() for line in out.getvalue().splitlines()]
    return "\n".join(([title] if title else []) + lines)
