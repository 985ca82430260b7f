"""`denomas-usage`: one entry point for running, demoing, querying and operating the pipeline."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shutil
import sys
from dataclasses import replace

from streams import marts_cli, reference_cli
from streams.alerts import commands as alerts_cli
from streams.checks import cli as checks_cli
from streams.config import Settings
from streams.kafka import add_broker_arguments


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from streams.demo import run_demo

    settings = replace(settings, data_dir=settings.data_dir / "demo")
    if not args.keep and settings.data_dir.exists():
        shutil.rmtree(settings.data_dir)  # the demo starts from an empty broker and warehouse
    return run_demo(settings, instances=args.instances, weeks=args.weeks, seed=args.seed)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from streams.worker import run_worker

    if not settings.kafka_bootstrap_servers:
        print("worker: set KAFKA_BOOTSTRAP_SERVERS (or start one with `denomas-usage broker start`)",
              file=sys.stderr)
        return 2
    if args.workers > 1:
        from streams.worker import run_workers

        return run_workers(settings, args.workers, args.loglevel)
    run_worker(settings, settings.kafka_bootstrap_servers, loglevel=args.loglevel)
    return 0


def cmd_collector(args: argparse.Namespace, settings: Settings) -> int:
    from streams.collector import serve

    if not settings.kafka_bootstrap_servers:
        print("collector: set KAFKA_BOOTSTRAP_SERVERS", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(collector_settings(args, settings), settings.kafka_bootstrap_servers))
    return 0


def collector_settings(args: argparse.Namespace, settings: Settings) -> Settings:
    """Options given on the command line win over DENOMAS_COLLECTOR_PORT and the defaults."""
    host = settings.collector_host if args.host is None else args.host
    port = settings.collector_port if args.port is None else args.port
    return replace(settings, collector_host=host, collector_port=port)


def cmd_broker(args: argparse.Namespace, settings: Settings) -> int:
    from streams.kafka import run_broker

    return run_broker(args.port, args.heap, args.timeout)


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from streams.warehouse import migrate, open_warehouse

    warehouse = open_warehouse(settings)
    try:
        applied = migrate(warehouse)
    finally:
        warehouse.close()
    print("applied: " + (", ".join(applied) if applied else "nothing new"))
    return 0


def cmd_warehouse(args: argparse.Namespace, settings: Settings) -> int:
    """The process that owns the embedded engine's data directory and serves ClickHouse's HTTP interface."""
    from streams.warehouse_service.__main__ import main as warehouse_main

    argv = ["--host", args.host, "--port", str(args.port or settings.warehouse_port), "--readers", str(args.readers),
            "--data-dir", str(settings.data_dir), "--loglevel", args.loglevel]
    return warehouse_main(argv + (["--users", str(args.users)] if args.users else []))


def cmd_dashboard(args: argparse.Namespace, settings: Settings) -> int:
    from streams.dashboard import dashboard

    return dashboard(settings, args.host, args.port)


def cmd_query(args: argparse.Namespace, settings: Settings) -> int:
    """Run an analyst's SQL and print a table: read-only unless --write, enforced by the warehouse (the readonly
    setting travels as a setting of the request, whatever the SQL text holds)."""
    from streams.tables import format_table
    from streams.warehouse import open_warehouse

    warehouse = open_warehouse(settings)
    try:
        result = warehouse.query(args.sql, settings={"readonly": 1} if args.readonly else None)
    finally:
        warehouse.close()
    print(format_table(result.columns, result.rows))
    print(f"({len(result.rows)} rows, {result.rows_read:,} rows read)")
    return 0


def cmd_releases(args: argparse.Namespace, settings: Settings) -> int:
    """Load a releases CSV into dim_app_release and the collector's live copy (Version Check answers)."""
    from pathlib import Path

    from streams.releases import load_releases_file, releases_path
    from streams.warehouse import migrate, open_warehouse

    live_copy = settings.releases_csv or settings.data_dir / "releases.csv"
    warehouse = open_warehouse(settings)
    try:
        migrate(warehouse)
        loaded, known = load_releases_file(warehouse, Path(args.file), live_copy)
    except (OSError, ValueError) as exc:
        print(f"releases load: {exc}; nothing loaded", file=sys.stderr)
        return 1
    finally:
        warehouse.close()
    print(f"loaded {loaded} releases from {args.file}; {known} known; collector reads {releases_path(settings)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="denomas-usage", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="broker + collector + worker; sample fleet over HTTP; print what landed")
    demo.add_argument("--instances", type=int, default=40)
    demo.add_argument("--weeks", type=int, default=12)
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--keep", action="store_true", help="keep the previous demo's broker and warehouse data")
    demo.set_defaults(func=cmd_demo)

    warehouse = sub.add_parser("warehouse", help="serve the embedded warehouse over ClickHouse's HTTP interface")
    warehouse.add_argument("--host", default="127.0.0.1")
    warehouse.add_argument("--port", type=int, help="default DENOMAS_WAREHOUSE_PORT or 8123")
    warehouse.add_argument("--users", help="users file (YAML or TOML, sha256 passwords); default: `default` only")
    warehouse.add_argument("--readers", type=int, default=2, help="engine connections for queries")
    warehouse.add_argument("--loglevel", default="INFO")
    warehouse.set_defaults(func=cmd_warehouse)

    worker = sub.add_parser("worker", help="run the Faust agents (the warehouse through clickhouse-connect)")
    worker.add_argument("--loglevel", default="WARNING")
    worker.add_argument("--workers", type=int, default=1, help="worker processes sharing the partitions (default 1)")
    worker.set_defaults(func=cmd_worker)

    collector = sub.add_parser("collector", help="run the HTTP collector")
    collector.add_argument("--host", help="default 127.0.0.1")
    collector.add_argument("--port", type=int, help="default $DENOMAS_COLLECTOR_PORT, else 8080 (0: a free port)")
    collector.set_defaults(func=cmd_collector)

    broker = sub.add_parser("broker", help="run a local single-node Kafka (KRaft) broker")
    broker.add_argument("action", choices=["start"])
    add_broker_arguments(broker)
    broker.set_defaults(func=cmd_broker)

    sub.add_parser("migrate", help="apply the clickhouse/ migrations").set_defaults(func=cmd_migrate)

    board = sub.add_parser("dashboard", help="serve the dashboard (xMAU, accounts, version lag, ..., pipeline health)")
    board.add_argument("--host", default="127.0.0.1")
    board.add_argument("--port", type=int, help="default DENOMAS_DASHBOARD_PORT or 8050")
    board.set_defaults(func=cmd_dashboard)

    query = sub.add_parser("query", help="run SQL against the warehouse and print a table")
    query.add_argument("sql")
    query.add_argument("--write", dest="readonly", action="store_false", help="allow statements that write")
    query.set_defaults(func=cmd_query)

    releases = sub.add_parser("releases", help="load Denomas releases (Version Check answers from them)")
    releases.add_argument("action", choices=["load"])
    releases.add_argument("file", help="CSV: version,release_date,is_security (major,minor,patch optional)")
    releases.set_defaults(func=cmd_releases)

    reference_cli.add_commands(sub)  # reference load/columns/sample, report match-rate, export cs-mart
    alerts_cli.add_commands(sub)  # alerts list/backtest/validate
    marts_cli.add_commands(sub)  # catalog, show <mart-or-report>
    checks_cli.add_commands(sub)  # check [--select ...]
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return args.func(args, Settings.from_env())


if __name__ == "__main__":
    sys.exit(main())
