"""`denomas-usage check [--select ...]`: run the trusted-data checks, print them, store them, fail on errors."""

from __future__ import annotations

import argparse
import sys

from streams.config import Settings


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    from streams.checks.runner import format_run, run_checks
    from streams.checks.spec import SpecError
    from streams.warehouse import migrate, open_warehouse

    warehouse = open_warehouse(settings)
    try:
        migrate(warehouse)
        run = run_checks(warehouse, settings, args.select or (), bootstrap=settings.kafka_bootstrap_servers,
                         store=not args.no_store)
    except (SpecError, LookupError) as exc:
        print(f"check: {exc}", file=sys.stderr)
        return 2
    finally:
        warehouse.close()
    print(format_run(run))
    return 1 if run.failed else 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    check = sub.add_parser("check", help="run the trusted-data checks (clickhouse/checks/*.yml); exit 1 on errors")
    check.add_argument("--select", nargs="+", metavar="SELECTOR",
                       help="check names (globs), tables, kinds (kind:freshness) or sources (source:seat_link)")
    check.add_argument("--no-store", action="store_true", help="do not write the results to check_results")
    check.set_defaults(func=cmd_check)
