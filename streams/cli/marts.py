"""For analysts: `catalog` (docs/catalog.md from the warehouse's comments) and `show` (a mart or report as a table).
Both read the warehouse through its service (CLICKHOUSE_URL or `denomas-usage warehouse`)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from streams.cli.common import connected
from streams.config import PROJECT_ROOT

app = typer.Typer()


@app.command()
def catalog(
    output: Annotated[Path, typer.Option(help="file to write")] = PROJECT_ROOT / "docs" / "catalog.md",
) -> None:
    """Write the data catalog from the warehouse's own comments, with the metric dictionary."""
    from streams.catalog import write_catalog
    from streams.enrich.metric_dictionary import MetricDictionary
    from streams.event_metrics.refresh import sync_event_metric_definitions
    from streams.warehouse.writers import load_metric_dictionary

    with connected(migrated=True) as warehouse:
        # the definitions the worker loads at start, so a fresh warehouse gives the same catalog
        if int(warehouse.query("SELECT count() FROM dim_ping_metric").scalar()) == 0:
            load_metric_dictionary(warehouse, MetricDictionary.from_dir(), datetime.now(UTC))
        if int(warehouse.query("SELECT count() FROM dim_event_metric").scalar()) == 0:
            sync_event_metric_definitions(warehouse)
        objects = write_catalog(warehouse, output)
    print(f"wrote {output}: {objects} tables and views, with the metric dictionary")


@app.command()
def show(
    name: Annotated[str | None, typer.Argument(help="e.g. rpt_xmau_monthly, rpt_version_lag_monthly; none: list "
                                                    "them", show_default=False)] = None,
    scope: Annotated[str | None, typer.Option(help="VALUE (installation, account, stage, xMAU type, ...) or "
                                                   "COLUMN=VALUE", show_default=False)] = None,
    month_from: Annotated[str | None, typer.Option("--from", metavar="YYYY-MM", help="first month (inclusive)",
                                                   show_default=False)] = None,
    month_to: Annotated[str | None, typer.Option("--to", metavar="YYYY-MM", help="last month (inclusive)",
                                                 show_default=False)] = None,
    limit: Annotated[int, typer.Option(help="at most this many rows")] = 200,
) -> None:
    """Print a mart or report as a table (without a name: list the marts and reports)."""
    from streams.marts import ShowError, parse_month, show_text, showable_objects

    try:
        with connected() as warehouse:
            if not name:
                names = showable_objects(warehouse)
                print("marts and reports: " + ", ".join(n for n in names if n.startswith(("mart_", "rpt_"))))
                print("also: " + ", ".join(n for n in names if not n.startswith(("mart_", "rpt_"))))
                return
            first = parse_month(month_from) if month_from else None
            last = parse_month(month_to) if month_to else None
            print(show_text(warehouse, name, scope, first, last, limit))
    except ShowError as exc:
        print(f"show: {exc}", file=sys.stderr)
        raise typer.Exit(2) from exc
