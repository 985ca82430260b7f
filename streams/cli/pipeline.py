"""Running the pipeline: demo, warehouse, worker, collector, broker start, migrate, query, releases load."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from streams.cli.common import apply_migrations, connected
from streams.config import Settings
from streams.kafka.broker import DEFAULT_BROKER_PORT

app = typer.Typer()
broker = typer.Typer(help="A local single-node Kafka (KRaft) broker.", no_args_is_help=True)
releases = typer.Typer(help="Denomas releases: Version Check answers from them.", no_args_is_help=True)
app.add_typer(broker, name="broker")
app.add_typer(releases, name="releases")


@app.command()
def demo(
    instances: Annotated[int, typer.Option(help="instances in the sample fleet")] = 40,
    weeks: Annotated[int, typer.Option(help="weeks of history each instance reports")] = 12,
    seed: Annotated[int, typer.Option(help="seed of the sample fleet (same seed, same data)")] = 42,
    keep: Annotated[bool, typer.Option("--keep", help="keep the previous demo's broker and warehouse data")] = False,
) -> None:
    """Broker + collector + worker; the sample fleet over HTTP; print what landed next to what was sent."""
    from fleet.demo import run_demo

    settings = Settings.from_env()
    settings = replace(settings, data_dir=settings.data_dir / "demo")
    if not keep and settings.data_dir.exists():
        shutil.rmtree(settings.data_dir)  # the demo starts from an empty broker and warehouse
    raise typer.Exit(run_demo(settings, instances=instances, weeks=weeks, seed=seed))


@app.command()
def warehouse(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="default: DENOMAS_WAREHOUSE_PORT, else 8123",
                                             show_default=False)] = None,
    users: Annotated[Path | None, typer.Option(help="users file (YAML or TOML, sha256 passwords); default: the "
                                                    "`default` user only", show_default=False)] = None,
    readers: Annotated[int, typer.Option(help="engine connections for queries")] = 2,
    loglevel: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR")] = "INFO",
) -> None:
    """Serve the embedded warehouse over ClickHouse's HTTP interface (the process that owns its data directory)."""
    from streams.warehouse_service.__main__ import run_service

    settings = Settings.from_env()
    settings = replace(settings, data_dir=settings.data_dir.resolve())
    raise typer.Exit(run_service(settings, host, port or settings.warehouse_port, users, readers, loglevel))


@app.command()
def dashboard(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="default: DENOMAS_DASHBOARD_PORT, else 8050",
                                             show_default=False)] = None,
) -> None:
    """Serve the dashboard (xMAU, accounts, version lag, ..., pipeline health); it reads through the warehouse as
    DENOMAS_WAREHOUSE_USER (README "Dashboard")."""
    from streams.dashboard import dashboard as serve_dashboard

    raise typer.Exit(serve_dashboard(Settings.from_env(), host, port))


@app.command()
def worker(
    loglevel: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR")] = "WARNING",
    workers: Annotated[int, typer.Option(help="worker processes sharing the partitions")] = 1,
) -> None:
    """Run the Faust agents (they reach the warehouse through clickhouse-connect)."""
    from streams.worker import run_worker, run_workers

    settings = Settings.from_env()
    if not settings.kafka_bootstrap_servers:
        print("worker: set KAFKA_BOOTSTRAP_SERVERS (or start one with `denomas-usage broker start`)",
              file=sys.stderr)
        raise typer.Exit(2)
    if workers > 1:
        raise typer.Exit(run_workers(settings, workers, loglevel))
    run_worker(settings, settings.kafka_bootstrap_servers, loglevel=loglevel)


@app.command()
def collector(
    host: Annotated[str | None, typer.Option(help="default 127.0.0.1", show_default=False)] = None,
    port: Annotated[int | None, typer.Option(help="default: DENOMAS_COLLECTOR_PORT, else 8080 (0: a free port)",
                                             show_default=False)] = None,
) -> None:
    """Run the HTTP collector (Service Ping, Seat Link, Version Check, Snowplow)."""
    from streams.collector import serve

    settings = Settings.from_env()
    if not settings.kafka_bootstrap_servers:
        print("collector: set KAFKA_BOOTSTRAP_SERVERS", file=sys.stderr)
        raise typer.Exit(2)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(collector_settings(settings, host, port), settings.kafka_bootstrap_servers))


def collector_settings(settings: Settings, host: str | None, port: int | None) -> Settings:
    """Options given on the command line win over DENOMAS_COLLECTOR_PORT and the defaults."""
    return replace(settings, collector_host=settings.collector_host if host is None else host,
                   collector_port=settings.collector_port if port is None else port)


@broker.command("start")
def broker_start(
    port: Annotated[int, typer.Option(help="PLAINTEXT port (0: pick a free one)")] = DEFAULT_BROKER_PORT,
    heap: Annotated[str, typer.Option(help="JVM heap")] = "512m",
    timeout: Annotated[float, typer.Option(help="seconds to wait for the broker to be ready")] = 90,
) -> None:
    """Run the broker in the foreground until Ctrl-C; prints its bootstrap address."""
    from streams.kafka.broker import run_broker

    raise typer.Exit(run_broker(port, heap, timeout))


@app.command()
def migrate() -> None:
    """Apply the clickhouse/ migrations that are not applied yet."""
    with connected() as store:
        applied = apply_migrations(store)
    print("applied: " + (", ".join(applied) if applied else "nothing new"))


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="the SQL, e.g. \"SELECT count() FROM fct_ping_instance\"")],
    write: Annotated[bool, typer.Option("--write", help="allow statements that write (default: read-only)")] = False,
) -> None:
    """Run SQL against the warehouse and print a table; read-only unless --write.

    The warehouse enforces it: the readonly setting travels with the request, whatever the SQL text holds."""
    from clickhouse_connect.driver.exceptions import DatabaseError

    from streams.tables import format_table

    try:
        with connected() as store:
            result = store.query(sql, settings=None if write else {"readonly": 1})
    except DatabaseError as exc:  # the warehouse's own reason (a refused write, a syntax error), no traceback
        print(f"query: {exc}", file=sys.stderr)
        raise typer.Exit(1) from exc
    print(format_table(result.columns, result.rows))
    print(f"({len(result.rows)} rows, {result.rows_read:,} rows read)")


@releases.command("load")
def releases_load(
    file: Annotated[Path, typer.Argument(help="CSV: version,release_date,is_security (major,minor,patch optional)")],
) -> None:
    """Load a releases CSV into dim_app_release and the collector's live copy (Version Check answers)."""
    from streams.releases import load_releases_file, releases_path

    settings = Settings.from_env()
    live_copy = settings.releases_csv or settings.data_dir / "releases.csv"
    try:
        with connected(settings, migrated=True) as store:
            loaded, known = load_releases_file(store, file, live_copy)
    except (OSError, ValueError) as exc:
        print(f"releases load: {exc}; nothing loaded", file=sys.stderr)
        raise typer.Exit(1) from exc
    print(f"loaded {loaded} releases from {file}; {known} known; collector reads {releases_path(settings)}")
