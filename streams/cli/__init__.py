"""`denomas-usage`: one entry point for running, demoing, querying and operating the pipeline (typer).

One module per command group; each holds a `typer.Typer()` named `app` whose commands are mounted at the top:

  pipeline.py   demo, warehouse, dashboard, worker, collector, broker start, migrate, query, releases load
  reference.py  reference load | columns | sample, report match-rate, export cs-mart
  marts.py      catalog, show
  alerts.py     alerts list | backtest | validate
  checks.py     check
  privacy.py    erase

Adding a command:
1. Put the work in a plain typed function in its own module (e.g. `streams/erase/run.py`:
   `def erase(settings: Settings, user_id: str | None) -> int`); it prints its result and returns the exit status.
2. Add a thin command to the group's module (or a new module `streams/cli/<group>.py` with `app = typer.Typer()`,
   listed in GROUPS below). Its docstring is the command's help; every parameter is
   `Annotated[type, typer.Option(help=...)]` (or `typer.Argument`); the body builds `Settings.from_env()`, calls
   the function and ends with `raise typer.Exit(code)`. A sub-group (`denomas-usage export cs-mart`) is a
   `typer.Typer(help=...)` added with `app.add_typer(group, name="export")`.
   Long work shows progress with `streams.progress.ItemProgress` (a bar on a terminal, plain lines otherwise).
3. tests/unit/test_cli_help.py checks that every command and option has help; list the command in the README.

`main(argv)` returns the exit status instead of exiting, for tests; `python -m streams.cli` and
`python -m streams` run the same app (child processes use `[sys.executable, "-m", "streams.cli", ...]`).
"""

from __future__ import annotations

import logging
import sys

import typer

from streams.cli import alerts, checks, marts, pipeline, privacy, reference

GROUPS = (pipeline, reference, marts, alerts, checks, privacy)

app = typer.Typer(
    name="denomas-usage", help="Denomas product usage data: run, demo, query and operate the pipeline.",
    no_args_is_help=True, add_completion=False,
    rich_markup_mode="rich" if sys.stdout.isatty() else None,  # panels on a terminal, plain 7-bit text in logs
    pretty_exceptions_enable=False,  # plain tracebacks: no locals (settings hold passwords) in logs
    context_settings={"help_option_names": ["-h", "--help"], "terminal_width": 120, "max_content_width": 120},
)
for group in GROUPS:
    app.add_typer(group.app)


@app.callback()
def _root() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for usage errors, as before)."""
    try:
        app(args=argv, prog_name="denomas-usage")
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    return 0
