"""`check`: the trusted-data checks (clickhouse/checks/*.yml)."""

from __future__ import annotations

from typing import Annotated

import typer

from streams.config import Settings

app = typer.Typer()

SELECTOR_HELP = "check names (globs), tables, kinds (kind:freshness) or sources (source:seat_link)"


@app.command()
def check(
    selectors: Annotated[list[str] | None, typer.Argument(metavar="SELECTOR", help=SELECTOR_HELP,
                                                          show_default=False)] = None,
    select: Annotated[list[str] | None, typer.Option(metavar="SELECTOR", help=f"{SELECTOR_HELP}; several may "
                                                     "follow one --select", show_default=False)] = None,
    no_store: Annotated[bool, typer.Option("--no-store", help="do not write the results to check_results")] = False,
) -> None:
    """Run the trusted-data checks, print them and store them; exit 1 when one fails at error level."""
    from streams.checks.cli import cmd_check

    raise typer.Exit(cmd_check(Settings.from_env(), [*(select or ()), *(selectors or ())], store=not no_store))
