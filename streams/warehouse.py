"""The warehouse every process uses: one small interface (execute, insert, query) over clickhouse-connect.

`ServerWarehouse` talks ClickHouse's HTTP interface: to the embedded engine's warehouse service (`denomas-usage
warehouse`, streams/warehouse_service/, the one process that owns the chdb data directory) or to a ClickHouse server
(`CLICKHOUSE_URL`); the same SQL files from `clickhouse/` (the migration runner below) and the same code for both.
Also here: how a failed write is classified (the rows' fault or the warehouse's).

User values always travel as bound parameters (`{name:Type}` placeholders), never spliced into SQL.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import pyarrow as pa

from streams.config import MIGRATIONS_DIR, Settings

DATABASE = "usage"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple]
    rows_read: int  # rows the engine read to answer: how analysts and benchmarks see query cost

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None


class Warehouse(Protocol):
    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None: ...

    def insert(self, table: str, rows: Sequence[Mapping[str, Any]]) -> int: ...

    def insert_columns(self, table: str, columns: Mapping[str, Sequence[Any]]) -> int: ...

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> QueryResult: ...

    def release_memory(self) -> None: ...

    def close(self) -> None: ...


def _check_identifier(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a plain table name: {name!r}")
    return name


def rows_to_columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    return {name: [row.get(name) for row in rows] for name in rows[0]}



class ServerWarehouse:
    """A ClickHouse server through clickhouse-connect (CLICKHOUSE_URL=http://user:pass@host:8123), or the embedded
    engine's warehouse service, which speaks the same protocol. `database` defaults to the project's."""

    def __init__(self, url: str, database: str = DATABASE, create_database: bool = True) -> None:
        import clickhouse_connect
        from clickhouse_connect import common

        # Send settings the server lists as fixed for this connection's profile (e.g. `readonly` for a reader) rather
        # than refusing them in the client: the server decides, as it does for every other client.
        common.set_setting("invalid_setting_action", "send")
        logging.getLogger("clickhouse_connect.driver.client").addFilter(_QUIET_SETTING_WARNINGS)

        parts = urlparse(url)
        # This process's warehouse user (README "Roles"): DENOMAS_WAREHOUSE_USER/_PASSWORD, else the URL's.
        connection = {"host": parts.hostname or "localhost", "port": parts.port or 8123,
                      "username": os.environ.get("DENOMAS_WAREHOUSE_USER") or parts.username or "default",
                      "password": os.environ.get("DENOMAS_WAREHOUSE_PASSWORD", parts.password or ""),
                      "secure": parts.scheme == "https"}
        admin = clickhouse_connect.get_client(**connection)
        if create_database and not admin.query("SELECT count() FROM system.databases WHERE name = {d:String}",
                                               parameters={"d": database}).result_rows[0][0]:  # readers may not
            admin.command(f"CREATE DATABASE IF NOT EXISTS {_check_identifier(database)}")
        admin.close()
        self._client = clickhouse_connect.get_client(**connection, database=database)
        self.database = database
        self._lock = threading.Lock()

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        with self._lock:
            self._client.command(sql, parameters=dict(params) if params else None)

    def query(self, sql: str, params: Mapping[str, Any] | None = None,
              settings: Mapping[str, Any] | None = None) -> QueryResult:
        """`settings` travel as settings of the request (e.g. readonly=1), never as text added to the SQL."""
        with self._lock:
            result = self._client.query(sql, parameters=dict(params) if params else None,
                                        settings=dict(settings) if settings else None)
        rows = [tuple(_jsonable(v) for v in row) for row in result.result_rows]
        return QueryResult(list(result.column_names), rows, int(result.summary.get("read_rows", 0)))

    def insert(self, table: str, rows: Sequence[Mapping[str, Any]]) -> int:
        return self.insert_columns(table, rows_to_columns(rows)) if rows else 0

    def insert_columns(self, table: str, columns: Mapping[str, Sequence[Any]]) -> int:
        count = len(next(iter(columns.values()), []))
        if not count:
            return 0
        with self._lock:
            self._client.insert(_check_identifier(table), [list(v) for v in columns.values()],
                                column_names=list(columns), column_oriented=True)
        return count

    def release_memory(self) -> None:
        """Nothing to do: a server manages its own memory."""

    def close(self) -> None:
        self._client.close()


def _quiet_setting_warnings(record: logging.LogRecord) -> bool:
    return "readonly setting" not in record.getMessage()


_QUIET_SETTING_WARNINGS = _quiet_setting_warnings


def _jsonable(value: Any) -> Any:
    """Make server results look like chdb's JSON results (dates as strings), so callers see one shape."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if value.tzinfo else str(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def open_warehouse(settings: Settings) -> ServerWarehouse:
    """The warehouse of every process but the warehouse service itself: clickhouse-connect to a ClickHouse server
    (CLICKHOUSE_URL) or to the embedded engine's service, the same code for both."""
    return ServerWarehouse(settings.warehouse_url, settings.warehouse_database)


# ---------------------------------------------------------------------------------------------------
# Migrations: numbered files in clickhouse/, applied once each, in order, recorded in schema_migrations.
#
# The history below 150 was folded on 2026-12-06, while no warehouse was deployed: the 47 files that had grown by
# ALTERs, replaced views and dropped materialized views became one file per object, named after it, that creates the
# object once in its final form; each rule that several views repeated is one view they read (prep_license_match,
# prep_metric_xmau_type, prep_behavior_event_scope). tests/test_migration_files.py checks that the folded files build
# the same tables, views, columns, types, engines, keys and comments as the old ones
# (tests/data/schema_before_fold.json).
# A warehouse migrated before the fold is refused, not silently mixed: its applied checksums differ ("changed after
# it was applied"). A deployed system must never be folded this way. It needs forward-only migrations (new numbers
# that ALTER, or CREATE OR REPLACE a view), or, to fold anyway, a baseline step per deployment: back up, check that the
# live schema equals what the folded files build (the comparison of the test), then replace the old schema_migrations
# rows by the folded files' versions and checksums without running them.

_MIGRATION_FILE = re.compile(r"^(\d{3,})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def server_only(self) -> bool:
        """Roles and grants (first line `-- server-only`): only where the warehouse can store access entities."""
        return self.sql.startswith("-- server-only")

    def statements(self) -> list[str]:
        # Statements end with ';' at the end of a line; comment lines are dropped first.
        text = "\n".join(line for line in self.sql.splitlines() if not line.lstrip().startswith("--"))
        return [stmt.strip() for stmt in re.split(r";\s*$", text, flags=re.MULTILINE) if stmt.strip()]


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_FILE.match(path.name)
        if not match:
            raise ValueError(f"migration file name must look like 001_raw_things.sql: {path.name}")
        migrations.append(Migration(int(match.group(1)), path.stem, path.read_text()))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration numbers in {directory}")
    return migrations


def migrate(warehouse: Warehouse, directory: Path = MIGRATIONS_DIR,
            progress: Callable[[int, int], object] | None = None) -> list[str]:
    """Apply the migrations not applied yet; return their names. A changed applied file is an error.
    `progress(done, total)` is called after each one applied (see streams/progress.py)."""
    warehouse.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String, checksum String, "
        "applied_at DateTime64(3, 'UTC')) ENGINE = MergeTree ORDER BY version"
    )
    applied = {row[0]: row[2] for row in warehouse.query("SELECT version, name, checksum FROM schema_migrations").rows}
    pending = []
    for migration in load_migrations(directory):
        if migration.server_only and not has_access_storage(warehouse):
            continue  # the embedded engine: its warehouse service enforces the roles itself (README "Roles")
        if migration.version not in applied:
            pending.append(migration)
        elif applied[migration.version] != migration.checksum:
            raise RuntimeError(f"migration {migration.name} changed after it was applied; add a new file instead")
    done = []
    for migration in pending:
        for statement in migration.statements():
            warehouse.execute(statement)
        warehouse.insert("schema_migrations", [{
            "version": migration.version, "name": migration.name, "checksum": migration.checksum,
            "applied_at": datetime.now(UTC),
        }])
        done.append(migration.name)
        if progress is not None:
            progress(len(done), len(pending))
    return done


def has_access_storage(warehouse: Warehouse) -> bool:
    """A ClickHouse server with SQL-driven access control; the embedded engine only has the read-only users_xml."""
    return bool(warehouse.query("SELECT count() FROM system.user_directories WHERE type != 'users_xml'").scalar())


def count_rows(warehouse: Warehouse, table: str, final: bool = True) -> int:
    """Row count as queries see it: FINAL collapses not-yet-merged duplicates of Replacing tables."""
    suffix = " FINAL" if final else ""
    return int(warehouse.query(f"SELECT count() FROM {_check_identifier(table)}{suffix}").scalar())


# ---------------------------------------------------------------------------------------------------
# Failed writes: the rows' fault or the warehouse's?
#
# A batch is dead-lettered only when the engine says the rows themselves are unusable; every other failure (a full
# or read-only disk, an unreachable server, memory, too many parts, anything unknown) is the warehouse's and is
# retried until it passes, so nothing valid is lost. The price: a deterministic failure that is not a data error
# holds its partition, visible in the worker's log and /health, rather than losing data silently.

# ClickHouse error codes that mean "these rows cannot be stored as they are".
DATA_ERROR_CODES = frozenset({
    6,    # CANNOT_PARSE_TEXT
    26,   # CANNOT_PARSE_QUOTED_STRING
    27,   # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    38,   # CANNOT_PARSE_DATE
    41,   # CANNOT_PARSE_DATETIME
    53,   # TYPE_MISMATCH
    69,   # ARGUMENT_OUT_OF_BOUND
    70,   # CANNOT_CONVERT_TYPE
    72,   # CANNOT_PARSE_NUMBER
    117,  # INCORRECT_DATA
    131,  # TOO_LARGE_STRING_SIZE
    321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
    469,  # VIOLATED_CONSTRAINT
})
_ERROR_CODE = re.compile(r"Code: (\d+)")


class RowsRefused(ValueError):
    """Raised by a writer for rows it cannot store as they are (e.g. a ping's last part whose earlier parts are
    missing): a data error, so the records are isolated and dead-lettered instead of retried."""


def error_code(exc: BaseException) -> int | None:
    """The ClickHouse error code in an engine or server exception, if any."""
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    match = _ERROR_CODE.search(str(exc))
    return int(match.group(1)) if match else None


def is_data_error(exc: BaseException) -> bool:
    """True when retrying cannot help because the rows are wrong: the engine refused them with a data error, or
    they could not even be built or converted to the table's column types on our side (Python errors: a warehouse
    fault never raises those)."""
    if isinstance(exc, RowsRefused | pa.ArrowInvalid | pa.ArrowTypeError | pa.ArrowNotImplementedError | OverflowError
                  | TypeError | KeyError | IndexError | AttributeError):
        return True
    return error_code(exc) in DATA_ERROR_CODES
