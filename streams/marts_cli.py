"""CLI commands for analysts:

  denomas-usage catalog [--output docs/catalog.md]
  denomas-usage show <mart-or-report> [--scope VALUE | COLUMN=VALUE] [--from YYYY-MM] [--to YYYY-MM] [--limit N]
  denomas-usage show            (lists the marts and reports)

Both read the warehouse, so the worker must not hold the embedded chdb directory (or use CLICKHOUSE_URL).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from streams.config import PROJECT_ROOT, Settings


def cmd_catalog(args: argparse.Namespace, settings: Settings) -> int:
    """Apply the migrations, make sure the metric dictionary is loaded, and write the catalog."""
    from streams.catalog import write_catalog
    from streams.enrich.metric_dictionary import MetricDictionary
    from streams.event_metrics import sync_event_metric_definitions
    from streams.sink import load_metric_dictionary
    from streams.warehouse import migrate, open_warehouse

    warehouse = open_warehouse(settings)
    try:
        migrate(warehouse)
        # the definitions the worker loads at start, so a fresh warehouse gives the same catalog
        if int(warehouse.query("SELECT count() FROM dim_ping_metric").scalar()) == 0:
            load_metric_dictionary(warehouse, MetricDictionary.from_dir(), datetime.now(UTC))
        if int(warehouse.query("SELECT count() FROM dim_event_metric").scalar()) == 0:
            sync_event_metric_definitions(warehouse)
        objects = write_catalog(warehouse, Path(args.output))
    finally:
        warehouse.close()
    print(f"wrote {args.output}: {objects} tables and views, with the metric dictionary")
    return 0


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    from streams.marts import ShowError, parse_month, show_text, showable_objects
    from streams.warehouse import open_warehouse

    warehouse = open_warehouse(settings)
    try:
        if not args.name:
            names = showable_objects(warehouse)
            print("marts and reports: " + ", ".join(n for n in names if n.startswith(("mart_", "rpt_"))))
            print("also: " + ", ".join(n for n in names if not n.startswith(("mart_", "rpt_"))))
            return 0
        month_from = parse_month(args.month_from) if args.month_from else None
        month_to = parse_month(args.month_to) if args.month_to else None
        print(show_text(warehouse, args.name, args.scope, month_from, month_to, args.limit))
    except ShowError as exc:
        print(f"show: {exc}", file=sys.stderr)
        return 2
    finally:
        warehouse.close()
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    catalog = sub.add_parser("catalog", help="write the data catalog (docs/catalog.md) from the warehouse's comments")
    catalog.add_argument("--output", default=str(PROJECT_ROOT / "docs" / "catalog.md"))
    catalog.set_defaults(func=cmd_catalog)

    show = sub.add_parser("show", help="print a mart or report as a table")
    show.add_argument("name", nargs="?", help="e.g. rpt_xmau_monthly, rpt_version_lag_monthly; none: list them")
    show.add_argument("--scope", help="VALUE (installation, account, stage, xMAU type, ...) or COLUMN=VALUE")
    show.add_argument("--from", dest="month_from", metavar="YYYY-MM", help="first month (inclusive)")
    show.add_argument("--to", dest="month_to", metavar="YYYY-MM", help="last month (inclusive)")
    show.add_argument("--limit", type=int, default=200)
    show.set_defaults(func=cmd_show)
