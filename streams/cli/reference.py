"""Reference data, the license match-rate report and the customer-success mart export:
`reference load|columns|sample`, `report match-rate`, `export cs-mart`."""

from __future__ import annotations

import asyncio
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from streams.cli.common import connected, progress_to_stderr
from streams.config import Settings

if TYPE_CHECKING:
    from streams.reference.kinds import RefKind

app = typer.Typer()
reference = typer.Typer(help="Reference data: licenses, subscriptions, accounts, mappings.", no_args_is_help=True)
report = typer.Typer(help="Reports.", no_args_is_help=True)
export = typer.Typer(help="Exports.", no_args_is_help=True)
app.add_typer(reference, name="reference")
app.add_typer(report, name="report")
app.add_typer(export, name="export")

KIND_HELP = "licenses, subscriptions, accounts, billing_accounts, namespaces or account_mappings"


@reference.command("load")
def reference_load(
    kind: Annotated[str, typer.Option(help=KIND_HELP)],
    file: Annotated[Path, typer.Argument(help="CSV file with a header line (see `reference columns`)")],
    publish: Annotated[bool, typer.Option("--publish", help="send to the compacted usage.ref.* topic instead")]
    = False,
) -> None:
    """Validate a whole CSV file, then write it to the kind's dim_ table (or publish it to its compacted topic)."""
    from datetime import UTC, datetime

    from streams.reference.kinds import kind_named
    from streams.reference.load import CsvValidationError, read_csv, with_version
    from streams.warehouse.writers import write_reference

    settings = Settings.from_env()
    try:
        ref_kind = kind_named(kind)
        rows = read_csv(ref_kind, file)
    except (CsvValidationError, ValueError, OSError) as exc:
        print(f"reference load: {exc}", file=sys.stderr)
        raise typer.Exit(1) from exc
    if publish:
        if not settings.kafka_bootstrap_servers:
            print("reference load --publish: set KAFKA_BOOTSTRAP_SERVERS", file=sys.stderr)
            raise typer.Exit(2)
        sent = asyncio.run(_publish(settings, settings.kafka_bootstrap_servers, ref_kind, rows))
        print(f"published {sent} {ref_kind.name} records to {settings.topic(ref_kind.topic)}")
        return
    with connected(settings, migrated=True) as warehouse:
        written = write_reference(warehouse, ref_kind, with_version(rows, datetime.now(UTC)))
    print(f"loaded {written} {ref_kind.name} rows into {ref_kind.table}")


async def _publish(settings: Settings, bootstrap: str, kind: RefKind, rows: list[dict[str, Any]]) -> int:
    from streams.kafka.topics import ensure_topics
    from streams.reference.load import publish

    await ensure_topics(bootstrap, settings)  # the compacted topic must not be auto-created with broker defaults
    with progress_to_stderr("published", len(rows)) as progress:
        return await publish(settings, bootstrap, kind, rows, progress=progress)


@reference.command("columns")
def reference_columns(
    kind: Annotated[str | None, typer.Option(help=f"one kind ({KIND_HELP}); default: all",
                                             show_default=False)] = None,
) -> None:
    """Print the CSV columns of each kind: type, required or not, meaning."""
    from streams.reference.kinds import KINDS, kind_named

    for ref_kind in [kind_named(kind)] if kind else list(KINDS.values()):
        print(f"{ref_kind.name} -> {ref_kind.table} (key {ref_kind.key}; topic {ref_kind.topic}; "
              f"class {ref_kind.data_class})")
        for column in ref_kind.columns:
            need = "required" if column.required else "optional"
            print(f"  {column.name:<24} {column.kind:<8} {need:<8} {column.doc}")
        print(f"  {'updated_at':<24} {'datetime':<8} {'optional':<8} version; default: the load time")


@reference.command("sample")
def reference_sample(
    out: Annotated[Path, typer.Option(help="directory to write the CSV files to")],
    instances: Annotated[int, typer.Option(help="instances in the sample fleet")] = 40,
    weeks: Annotated[int, typer.Option(help="weeks of history")] = 12,
    seed: Annotated[int, typer.Option(help="seed of the sample fleet")] = 42,
) -> None:
    """Write reference CSVs for the sample fleet (the same fleet as `demo` with the same options)."""
    from fleet.reference import fleet_reference

    for name, path in fleet_reference(instances, weeks, seed).write_csvs(out).items():
        print(f"{name:<18} {path}")


@report.command("match-rate")
def report_match_rate() -> None:
    """Pings and Seat Link reports matched to subscription and account, per month."""
    from streams.reference.load import match_rate
    from streams.tables import format_table

    with connected() as warehouse:
        result = match_rate(warehouse)
    print(format_table(result.columns, result.rows))


class ExportFormat(StrEnum):
    csv = "csv"
    parquet = "parquet"


class ExportRole(StrEnum):
    analyst = "analyst"
    customer_success = "customer_success"
    finance = "finance"
    admin = "admin"


@export.command("cs-mart")
def export_cs_mart(
    fmt: Annotated[ExportFormat, typer.Option("--format", help="file format")],
    out: Annotated[Path, typer.Option(help="file to write")],
    role: Annotated[ExportRole, typer.Option(
        help="the columns this role may read; connect as a warehouse user with that role "
             "(DENOMAS_WAREHOUSE_USER/_PASSWORD); the data class goes to OUT.class.json")],
) -> None:
    """Export the customer-success mart (subscription x installation x month) to a file, stamped with its data
    class; exit 3 when the role may not read it."""
    from streams.cs_mart import MART, ExportRefused
    from streams.cs_mart import export as export_mart
    from streams.warehouse import error_code

    with connected() as warehouse:
        try:
            rows = export_mart(warehouse, fmt.value, out, role.value)
        except ExportRefused as error:
            print(f"export refused: {error}", file=sys.stderr)
            raise typer.Exit(3) from None
        except Exception as error:
            if error_code(error) != 497:
                raise
            print(f"export refused by the warehouse (ACCESS_DENIED): the warehouse user lacks role {role.value}'s "
                  "grants", file=sys.stderr)
            raise typer.Exit(3) from None
    print(f"exported {rows} rows of {MART} to {out} ({fmt.value})")
