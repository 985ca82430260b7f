"""CLI commands for reference data, the license match-rate report and the customer-success mart export:

  denomas-usage reference load --kind licenses FILE.csv [--publish]
  denomas-usage reference columns [--kind KIND]
  denomas-usage reference sample --out DIR [--instances N --weeks N --seed N]
  denomas-usage report match-rate
  denomas-usage export cs-mart --format csv|parquet --out FILE
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streams.config import Settings

if TYPE_CHECKING:
    from streams.enrich.reference import RefKind


def cmd_reference_load(args: argparse.Namespace, settings: Settings) -> int:
    """Validate the whole file, then write it to the dim_ table (or publish it to the kind's compacted topic)."""
    from streams.enrich.reference import kind_named
    from streams.reference import CsvValidationError, read_csv, with_version, write_reference
    from streams.warehouse import migrate, open_warehouse

    try:
        kind = kind_named(args.kind)
        rows = read_csv(kind, Path(args.file))
    except (CsvValidationError, ValueError, OSError) as exc:
        print(f"reference load: {exc}", file=sys.stderr)
        return 1
    if args.publish:
        if not settings.kafka_bootstrap_servers:
            print("reference load --publish: set KAFKA_BOOTSTRAP_SERVERS", file=sys.stderr)
            return 2
        sent = asyncio.run(_publish(settings, settings.kafka_bootstrap_servers, kind, rows))
        print(f"published {sent} {kind.name} records to {settings.topic(kind.topic)}")
        return 0
    from datetime import UTC, datetime

    warehouse = open_warehouse(settings)
    try:
        migrate(warehouse)
        written = write_reference(warehouse, kind, with_version(rows, datetime.now(UTC)))
    finally:
        warehouse.close()
    print(f"loaded {written} {kind.name} rows into {kind.table}")
    return 0


async def _publish(settings: Settings, bootstrap: str, kind: RefKind, rows: list[dict[str, Any]]) -> int:
    from streams.reference import publish
    from streams.topics import ensure_topics

    await ensure_topics(bootstrap, settings)  # the compacted topic must not be auto-created with broker defaults
    return await publish(settings, bootstrap, kind, rows)


def cmd_reference_columns(args: argparse.Namespace, settings: Settings) -> int:
    from streams.enrich.reference import KINDS, kind_named

    kinds = [kind_named(args.kind)] if args.kind else list(KINDS.values())
    for kind in kinds:
        print(f"{kind.name} -> {kind.table} (key {kind.key}; topic {kind.topic}; class {kind.data_class})")
        for column in kind.columns:
            need = "required" if column.required else "optional"
            print(f"  {column.name:<24} {column.kind:<8} {need:<8} {column.doc}")
        print(f"  {'updated_at':<24} {'datetime':<8} {'optional':<8} version; default: the load time")
    return 0


def cmd_reference_sample(args: argparse.Namespace, settings: Settings) -> int:
    from streams.fleet_reference import fleet_reference

    paths = fleet_reference(args.instances, args.weeks, args.seed).write_csvs(Path(args.out))
    for name, path in paths.items():
        print(f"{name:<18} {path}")
    return 0


def cmd_report_match_rate(args: argparse.Namespace, settings: Settings) -> int:
    from streams.reference import match_rate
    from streams.tables import format_table
    from streams.warehouse import open_warehouse

    warehouse = open_warehouse(settings)
    try:
        result = match_rate(warehouse)
    finally:
        warehouse.close()
    print(format_table(result.columns, result.rows))
    return 0


def cmd_export_cs_mart(args: argparse.Namespace, settings: Settings) -> int:
    from streams.cs_mart import MART, ExportRefused, export
    from streams.warehouse import error_code, open_warehouse

    warehouse = open_warehouse(settings)
    try:
        rows = export(warehouse, args.format, Path(args.out), args.role)
    except ExportRefused as error:
        print(f"export refused: {error}", file=sys.stderr)
        return 3
    except Exception as error:
        if error_code(error) != 497:
            raise
        print(f"export refused by the warehouse (ACCESS_DENIED): the warehouse user lacks role {args.role}'s grants",
              file=sys.stderr)
        return 3
    finally:
        warehouse.close()
    print(f"exported {rows} rows of {MART} to {args.out} ({args.format})")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    reference = sub.add_parser("reference", help="reference data: licenses, subscriptions, accounts, mappings")
    actions = reference.add_subparsers(dest="action", required=True)
    load = actions.add_parser("load", help="validate a CSV file and load it (or --publish it to its topic)")
    load.add_argument("--kind", required=True, help="licenses, subscriptions, accounts, billing_accounts, "
                                                     "namespaces or account_mappings")
    load.add_argument("file")
    load.add_argument("--publish", action="store_true", help="send to the compacted usage.ref.* topic instead")
    load.set_defaults(func=cmd_reference_load)
    columns = actions.add_parser("columns", help="the CSV columns of each kind")
    columns.add_argument("--kind")
    columns.set_defaults(func=cmd_reference_columns)
    sample = actions.add_parser("sample", help="write reference CSVs for the sample fleet")
    sample.add_argument("--out", required=True)
    sample.add_argument("--instances", type=int, default=40)
    sample.add_argument("--weeks", type=int, default=12)
    sample.add_argument("--seed", type=int, default=42)
    sample.set_defaults(func=cmd_reference_sample)

    report = sub.add_parser("report", help="reports")
    reports = report.add_subparsers(dest="report", required=True)
    reports.add_parser("match-rate", help="pings and Seat Link reports matched to subscription and account, "
                                          "per month").set_defaults(func=cmd_report_match_rate)

    export = sub.add_parser("export", help="exports")
    exports = export.add_subparsers(dest="export", required=True)
    cs_mart = exports.add_parser("cs-mart", help="the customer-success mart (subscription x installation x month)")
    cs_mart.add_argument("--format", choices=["csv", "parquet"], required=True)
    cs_mart.add_argument("--out", required=True)
    cs_mart.add_argument("--role", required=True, choices=["analyst", "customer_success", "finance", "admin"],
                         help="the columns this role may read; connect as a warehouse user with that role "
                              "(DENOMAS_WAREHOUSE_USER/_PASSWORD); the data class goes to OUT.class.json")
    cs_mart.set_defaults(func=cmd_export_cs_mart)
