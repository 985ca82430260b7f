"""The warehouse behind one small interface: execute, insert, query.

Two backends run the same SQL files from `clickhouse/`:
- `ChdbWarehouse`: ClickHouse's engine in-process (the default). One process owns a data directory.
- `ServerWarehouse`: a ClickHouse server through clickhouse-connect, when `CLICKHOUSE_URL` is set.

User values always travel as bound parameters (`{name:Type}` placeholders), never spliced into SQL.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import orjson
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


# ---------------------------------------------------------------------------------------------------
# ClickHouse type -> Arrow type, so inserts carry exact types (bytes stay bytes, UInt64 stays exact).

_SIMPLE_ARROW_TYPES: dict[str, pa.DataType] = {
    "String": pa.binary(),
    "UUID": pa.string(),
    "Bool": pa.bool_(),
    "Int8": pa.int8(), "Int16": pa.int16(), "Int32": pa.int32(), "Int64": pa.int64(),
    "UInt8": pa.uint8(), "UInt16": pa.uint16(), "UInt32": pa.uint32(), "UInt64": pa.uint64(),
    "Float32": pa.float32(), "Float64": pa.float64(),
    "Date": pa.date32(), "Date32": pa.date32(),
    "DateTime": pa.timestamp("s", tz="UTC"),
}


def arrow_type(ch_type: str) -> pa.DataType:
    """Arrow type for a ClickHouse column type (the subset our migrations use)."""
    for wrapper in ("Nullable(", "LowCardinality("):
        if ch_type.startswith(wrapper):
            inner = arrow_type(ch_type[len(wrapper):-1])
            return pa.string() if inner == pa.binary() and wrapper == "LowCardinality(" else inner
    if ch_type.startswith("DateTime64"):
        return pa.timestamp("ms", tz="UTC")
    if ch_type.startswith("DateTime"):
        return pa.timestamp("s", tz="UTC")
    if ch_type.startswith("Array("):
        return pa.list_(arrow_type(ch_type[len("Array("):-1]))
    if ch_type.startswith("FixedString"):
        return pa.binary()
    if ch_type in _SIMPLE_ARROW_TYPES:
        return _SIMPLE_ARROW_TYPES[ch_type]
    raise ValueError(f"no Arrow mapping for ClickHouse type {ch_type}")


def rows_to_columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    return {name: [row.get(name) for row in rows] for name in rows[0]}


def columns_to_arrow(columns: Mapping[str, Sequence[Any]], column_types: Mapping[str, str]) -> pa.Table:
    arrays = [pa.array(values, type=arrow_type(column_types[name])) for name, values in columns.items()]
    return pa.Table.from_arrays(arrays, names=list(columns))


# ---------------------------------------------------------------------------------------------------


# The embedded engine shares a process with the worker: its caches get sizes for that, not a server's defaults
# (5 GiB each for marks and primary indexes), so its memory stays bounded as the stored data grows.
ENGINE_CONFIG = """<clickhouse>
    <mark_cache_size>67108864</mark_cache_size>
    <primary_index_cache_size>67108864</primary_index_cache_size>
    <index_mark_cache_size>16777216</index_mark_cache_size>
    <index_uncompressed_cache_size>0</index_uncompressed_cache_size>
    <uncompressed_cache_size>0</uncompressed_cache_size>
    <query_condition_cache_size>16777216</query_condition_cache_size>
    <compiled_expression_cache_size>16777216</compiled_expression_cache_size>
</clickhouse>
"""


class ChdbWarehouse:
    """Embedded ClickHouse (chdb). Calls are serialized: chdb sessions are not shared across threads."""

    def __init__(self, path: Path) -> None:
        from chdb import session as chdb_session

        path.mkdir(parents=True, exist_ok=True)
        config = path.with_name(path.name + "-config.xml")
        config.write_text(ENGINE_CONFIG)
        self._session = chdb_session.Session(f"file:{path}?config-file={config}")
        self._lock = threading.Lock()
        self._column_types: dict[str, dict[str, str]] = {}
        self.execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
        self.execute(f"USE {DATABASE}")

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        with self._lock:
            self._session.query(sql, "Null", params=dict(params) if params else None)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> QueryResult:
        with self._lock:
            result = self._session.query(sql, "JSONCompact", params=dict(params) if params else None)
        raw = result.bytes()
        if not raw:
            return QueryResult([], [], result.rows_read())
        doc = orjson.loads(raw)
        columns = [col["name"] for col in doc["meta"]]
        rows = [tuple(row) for row in doc["data"]]
        return QueryResult(columns, rows, int(doc.get("statistics", {}).get("rows_read", result.rows_read())))

    def insert(self, table: str, rows: Sequence[Mapping[str, Any]]) -> int:
        return self.insert_columns(table, rows_to_columns(rows)) if rows else 0

    def insert_columns(self, table: str, columns: Mapping[str, Sequence[Any]]) -> int:
        count = len(next(iter(columns.values()), []))
        if not count:
            return 0
        return self.insert_arrow(table, columns_to_arrow(columns, self._types(_check_identifier(table))))

    def insert_arrow(self, table: str, tbl: pa.Table) -> int:
        """Insert through SQL (`INSERT ... SELECT * FROM Python(table)`), which raises when the engine cannot
        write. chdb's streaming insert (send_insert ... finish) reported rows as written and raised nothing on a
        full disk or a CHECK violation (issue 10), so it is not used."""
        arrow_rows = tbl  # noqa: F841 -- the engine's Python() table function reads this local by name
        columns = ", ".join(tbl.column_names)
        with self._lock:
            self._session.query(f"INSERT INTO {_check_identifier(table)} ({columns}) SELECT * FROM Python(arrow_rows)",
                                "Null")
        return tbl.num_rows

    def _types(self, table: str) -> dict[str, str]:
        if table not in self._column_types:
            result = self.query(
                "SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String}",
                {"db": DATABASE, "t": table},
            )
            if not result.rows:
                raise ValueError(f"unknown table {table}")
            self._column_types[table] = dict(result.rows)
        return self._column_types[table]

    def release_memory(self) -> None:
        """Hand the engine's freed memory back to the OS. Its allocator (jemalloc) keeps freed pages for reuse;
        in a 2,000-metric-ping load this process grew 230 -> 420 MiB over 600 pings with the engine tracking
        ~30 MiB in use, and stayed at ~250-280 MiB when purged after each batch."""
        self.execute("SYSTEM JEMALLOC PURGE")

    def close(self) -> None:
        with self._lock:
            self._session.close()


class ServerWarehouse:
    """A ClickHouse server through clickhouse-connect (CLICKHOUSE_URL=http://user:pass@host:8123), or the embedded
    engine's warehouse service, which speaks the same protocol. `database` defaults to the project's."""

    def __init__(self, url: str, database: str = DATABASE) -> None:
        import clickhouse_connect

        parts = urlparse(url)
        connection = {"host": parts.hostname or "localhost", "port": parts.port or 8123,
                      "username": parts.username or "default", "password": parts.password or "",
                      "secure": parts.scheme == "https"}
        admin = clickhouse_connect.get_client(**connection)
        admin.command(f"CREATE DATABASE IF NOT EXISTS {_check_identifier(database)}")
        admin.close()
        self._client = clickhouse_connect.get_client(**connection, database=database)
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


def _jsonable(value: Any) -> Any:
    """Make server results look like chdb's JSON results (dates as strings), so callers see one shape."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if value.tzinfo else str(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def open_warehouse(settings: Settings) -> Warehouse:
    if settings.clickhouse_url:
        return ServerWarehouse(settings.clickhouse_url)
    return ChdbWarehouse(settings.chdb_path)


# ---------------------------------------------------------------------------------------------------
# Migrations: numbered files in clickhouse/, applied once each, in order, recorded in schema_migrations.

_MIGRATION_FILE = re.compile(r"^(\d{3,})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

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


def migrate(warehouse: Warehouse, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply the migrations not applied yet; return their names. A changed applied file is an error."""
    warehouse.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String, checksum String, "
        "applied_at DateTime64(3, 'UTC')) ENGINE = MergeTree ORDER BY version"
    )
    applied = {row[0]: row[2] for row in warehouse.query("SELECT version, name, checksum FROM schema_migrations").rows}
    done = []
    for migration in load_migrations(directory):
        if migration.version in applied:
            if applied[migration.version] != migration.checksum:
                raise RuntimeError(f"migration {migration.name} changed after it was applied; add a new file instead")
            continue
        for statement in migration.statements():
            warehouse.execute(statement)
        warehouse.insert("schema_migrations", [{
            "version": migration.version, "name": migration.name, "checksum": migration.checksum,
            "applied_at": datetime.now(UTC),
        }])
        done.append(migration.name)
    return done


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
