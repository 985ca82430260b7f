"""`serve`: the warehouse process. Opens the engine (refusing a directory another process holds), migrates,
serves ClickHouse's HTTP interface until SIGTERM/SIGINT, then closes the engine so the directory is consistent."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from streams.config import Settings
from streams.warehouse import DATABASE, QueryResult, migrate
from streams.warehouse_service.access import RoleAccess
from streams.warehouse_service.engine import Connection, Engine, new_temp_path
from streams.warehouse_service.http import AccessCheck, WarehouseHTTP
from streams.warehouse_service.users import load_users

log = logging.getLogger("denomas.warehouse")


class DirectoryInUse(RuntimeError):
    """Another process holds the engine's data directory."""


class _MigrationWarehouse:
    """What `streams.warehouse.migrate` needs, on its own engine connection; inserts go through the raising
    file path, never chdb's streaming insert."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        conn.run(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
        conn.run(f"USE {DATABASE}")

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._conn.run(sql, "Null", params)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> QueryResult:
        body = self._conn.run(sql, "JSONCompact", params).body
        doc = orjson.loads(body) if body else {"meta": [], "data": []}
        return QueryResult([c["name"] for c in doc["meta"]], [tuple(r) for r in doc["data"]], 0)

    def insert(self, table: str, rows: Sequence[Mapping[str, Any]]) -> int:
        statement = self._conn.analyze(f"INSERT INTO {table} FORMAT JSONEachRow", {})
        path = new_temp_path("json")
        try:
            path.write_bytes(b"\n".join(orjson.dumps(row) for row in rows))
            with self._conn.context(DATABASE, {"date_time_input_format": "best_effort"}):
                return self._conn.insert_file(statement, DATABASE, path).rows_written
        finally:
            path.unlink(missing_ok=True)


def held_by_another_process(path: Path) -> bool:
    """The engine flocks `<dir>/status` while it has the directory open."""
    status = path / "status"
    if not status.exists():
        return False
    with open(status, "rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def open_engine(path: Path, readers: int) -> Engine:
    if held_by_another_process(path):
        raise DirectoryInUse(f"{path} is in use by another process (only one process may open it)")
    return Engine(path, readers=readers)


def run_migrations(engine: Engine) -> list[str]:
    conn = engine.open_connection()
    try:
        return migrate(_MigrationWarehouse(conn))
    finally:
        conn.close()


async def _serve(engine: Engine, users_path: Path | None, host: str, port: int, access_check: AccessCheck | None,
                 ready: asyncio.Event | None) -> None:
    users = load_users(users_path)
    handler = WarehouseHTTP(engine, users, access_check or RoleAccess(users))
    # URLs as long as ClickHouse takes (http_max_uri_size, 1 MiB): clickhouse-connect puts a command's text and up to
    # 4 KiB of parameters in the URL; aiohttp's own limit is 8 KiB.
    runner = web.AppRunner(handler.app(), auto_decompress=False, access_log=None,
                           max_line_size=1 << 20, max_field_size=1 << 17)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("warehouse: ClickHouse HTTP interface on http://%s:%d (engine %s, timezone %s)", host, port,
             engine.version, engine.timezone)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
        log.info("warehouse: stopping")
    finally:
        await runner.cleanup()


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8123, users_path: Path | None = None,
          readers: int = 2, access_check: AccessCheck | None = None) -> None:
    """Run the warehouse service until SIGTERM/SIGINT. Raises DirectoryInUse if another process holds the data."""
    engine = open_engine(settings.chdb_path, readers)
    try:
        applied = run_migrations(engine)
        log.info("warehouse: %s, %d migrations applied", settings.chdb_path, len(applied))
        asyncio.run(_serve(engine, users_path, host, port, access_check, None))
    finally:
        with contextlib.suppress(Exception):
            engine.close()
        log.info("warehouse: engine closed")
