"""The embedded engine behind the service: a few chdb connections to one data directory, and the engine's own
analysis of each statement (its canonical form and its AST) so that access decisions never match strings.

Two connections to one directory in one process are two ClickHouse sessions (own settings, own current database)
that run queries in parallel; one connection runs its queries one at a time. So the engine keeps one writer
connection (ingestion and DDL) and a few readers (SELECTs, with readonly=2 fixed on the connection): an analyst's
long query never holds the connection an insert needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.warehouse_service.embedded import ENGINE_CONFIG
from streams.warehouse_service.errors import ClickHouseError, bad_arguments

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SETTING_VALUE = re.compile(r"^[A-Za-z0-9_.:+\-]*$")
_TRAILING_FORMAT = re.compile(r"\sFORMAT\s+`?([A-Za-z0-9_]+)`?$")

# Statement kinds (the AST's root node) that only read.
READ_KINDS = frozenset({
    "SelectWithUnionQuery", "SelectIntersectExceptQuery", "ShowTables", "ShowCreateTableQuery", "ShowColumns",
    "DescribeQuery", "ExistsTableQuery", "ExistsDatabaseQuery", "Explain", "ShowProcesslistQuery",
})
# Statements that change a session's state: over HTTP without sessions they would leak into the pooled connection.
SESSION_KINDS = frozenset({"Set", "UseQuery"})
# Functions and engines that reach files, networks or programs outside the data directory. clickhouse-local (and so
# chdb) does not confine them to user_files_path as a server does, so the service refuses them to every user.
OUTSIDE_FUNCTIONS = frozenset({
    "file", "fileCluster", "url", "urlCluster", "s3", "s3Cluster", "gcs", "azureBlobStorage", "azureBlobStorageCluster",
    "hdfs", "hdfsCluster", "remote", "remoteSecure", "cluster", "clusterAllReplicas", "mysql", "postgresql", "sqlite",
    "mongodb", "redis", "jdbc", "odbc", "executable", "python", "Python", "iceberg", "icebergS3", "deltaLake", "hudi",
    "File", "URL", "S3", "HDFS", "Executable", "ExecutablePool", "MySQL", "PostgreSQL", "SQLite", "MongoDB", "Redis",
    "JDBC", "ODBC", "Kafka", "RabbitMQ", "NATS", "FileLog", "Iceberg", "DeltaLake", "Hudi", "AzureBlobStorage",
})


def escape_param(value: str) -> str:
    """Query parameter values are parsed in ClickHouse's escaped (TSV) form, as over HTTP."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


def quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def plain_identifier(name: str, what: str) -> str:
    if not _IDENTIFIER.match(name):
        raise bad_arguments(f"{what} must be a plain identifier: {name!r}")
    return name


@dataclass(frozen=True)
class Statement:
    """One statement as the engine parsed it. `text` is what runs (minus inline insert data)."""

    text: str
    formatted: str  # the engine's canonical one-line form (formatQuerySingleLine)
    ast: tuple[tuple[int, str], ...]  # EXPLAIN AST lines: (depth, node)
    params: Mapping[str, str]

    @property
    def kind(self) -> str:
        return self.ast[0][1].split(" ", 1)[0] if self.ast else ""

    @property
    def reads_only(self) -> bool:
        return self.kind in READ_KINDS and not self.into_outfile

    def _top(self, node: str) -> list[str]:
        return [line for depth, line in self.ast if depth == 1 and line.split(" ", 1)[0] == node]

    @property
    def into_outfile(self) -> bool:
        # SELECT ... INTO OUTFILE 'x': the file name is a literal directly under the root.
        return self.kind == "SelectWithUnionQuery" and bool(self._top("Literal"))

    @property
    def output_format(self) -> str | None:
        if self.kind not in READ_KINDS:
            return None
        names = self._top("Identifier")
        return names[-1].split(" ", 1)[1] if names else None

    @property
    def functions(self) -> set[str]:
        """Every function, table function and table engine named anywhere in the statement."""
        return {line.split(" ")[1] for _, line in self.ast if line.startswith("Function ")}

    @property
    def inserts_data(self) -> bool:
        """INSERT ... FORMAT x / VALUES (data follows), not INSERT ... SELECT."""
        return self.kind == "InsertQuery" and not self._top("SelectWithUnionQuery") and not self._top("Function")

    @property
    def insert_target(self) -> tuple[str | None, str, list[str] | None]:
        names = [line.split(" ", 1)[1] for line in self._top("Identifier")]
        columns: list[str] | None = None
        for index, (depth, line) in enumerate(self.ast):
            if depth == 1 and line.startswith("ExpressionList"):
                columns = [col.split(" ", 1)[1] for d, col in self.ast[index + 1:] if d == 2]
                columns = columns[: int(line.split("children ")[1].rstrip(")"))]
                break
        return (names[0] if len(names) > 1 else None), names[-1], columns

    @property
    def insert_format(self) -> str:
        match = _TRAILING_FORMAT.search(self.formatted)
        if not match:
            raise ClickHouseError(73, "UNKNOWN_FORMAT", "INSERT without FORMAT or VALUES: cannot read the data")
        return match.group(1)


def parse_ast(text: str) -> tuple[tuple[int, str], ...]:
    return tuple((len(line) - len(line.lstrip(" ")), line.strip()) for line in text.splitlines() if line.strip())


@dataclass
class Result:
    body: bytes
    rows_read: int = 0
    bytes_read: int = 0
    rows_written: int = 0
    bytes_written: int = 0
    elapsed: float = 0.0


def temp_dir() -> Path:
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())


class Connection:
    """One chdb connection (one engine session). Used by one request at a time."""

    def __init__(self, url: str, readonly: bool) -> None:
        from chdb.state.sqlitelike import Connection as ChdbConnection

        self._conn = ChdbConnection(url)
        self.readonly = readonly
        if readonly:
            self._conn.query("SET readonly = 2")

    def run(self, sql: str, fmt: str = "TabSeparated", params: Mapping[str, Any] | None = None) -> Result:
        try:
            raw = self._conn.query(sql, fmt, params=dict(params) if params else None)
        except Exception as error:  # chdb raises ChdbError/RuntimeError with ClickHouse's text
            raise ClickHouseError.from_engine(error) from None
        return Result(raw.bytes() or b"", raw.rows_read(), raw.bytes_read(), raw.rows_written(), raw.bytes_written(),
                      raw.elapsed())

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[list[Any]]:
        import orjson

        body = self.run(sql, "JSONCompact", params).body
        return orjson.loads(body)["data"] if body else []

    @contextlib.contextmanager
    def context(self, database: str, settings: Mapping[str, str]) -> Iterator[Connection]:
        """Current database and settings for one request, put back afterwards (connections are pooled)."""
        self.run(f"USE {quote_identifier(database)}")
        applied: list[str] = []
        try:
            for name, value in settings.items():
                plain_identifier(name, "setting name")
                if not _SETTING_VALUE.match(value):
                    raise bad_arguments(f"unsupported characters in the value of setting {name}")
                self.run(f"SET {name} = '{value}'")
                applied.append(name)
            yield self
        finally:
            for name in applied:
                self.run(f"SET {name} = DEFAULT")

    def analyze(self, text: str, params: Mapping[str, str]) -> Statement:
        """The engine parses the text: one statement only (it refuses several), then its AST."""
        try:
            formatted = self.run("SELECT formatQuerySingleLine({q:String})", "TabSeparatedRaw",
                                 {"q": escape_param(text)}).body.decode().rstrip("\n")
        except ClickHouseError as error:  # the parser's message, without the wrapping query
            cut = error.text.find(" In scope SELECT formatQuerySingleLine(")
            if cut < 0:
                raise
            message = error.text[:cut].rstrip(" :.").split("DB::Exception: ", 1)[-1]
            raise ClickHouseError(error.code, error.name, message) from None
        ast = self.run(f"EXPLAIN AST {formatted}", "TabSeparatedRaw", params).body.decode()
        return Statement(text, formatted, parse_ast(ast), dict(params))

    def insert_file(self, statement: Statement, database: str, path: Path) -> Result:
        """INSERT ... SELECT FROM file(): unlike chdb's streaming insert, this path raises every engine error
        (a CHECK constraint, a full disk) and stores nothing when it does."""
        db, table, columns = statement.insert_target
        db = db or database
        fmt = statement.insert_format
        known = self.rows("SELECT name FROM system.formats WHERE name = {f:String} AND is_input", {"f": fmt})
        if not known:
            raise ClickHouseError(73, "UNKNOWN_FORMAT", f"Unknown input format {fmt}")
        types = dict(self.rows(
            "SELECT name, type FROM system.columns WHERE database = {d:String} AND table = {t:String} "
            "AND default_kind NOT IN ('MATERIALIZED', 'ALIAS', 'EPHEMERAL') ORDER BY position",
            {"d": db, "t": table}))
        if not types:
            raise ClickHouseError(60, "UNKNOWN_TABLE", f"Table {db}.{table} does not exist")
        for column in columns or []:
            if column not in types:
                raise ClickHouseError(16, "NO_SUCH_COLUMN_IN_TABLE", f"No such column {column} in table {db}.{table}")
        names = columns or list(types)
        structure = ", ".join(f"{quote_identifier(name)} {types[name]}" for name in names)
        target = f"{quote_identifier(db)}.{quote_identifier(table)} ({', '.join(map(quote_identifier, names))})"
        return self.run(f"INSERT INTO {target} SELECT * FROM file({{p:String}}, {{f:String}}, {{s:String}})",
                        "TabSeparated", {"p": escape_param(str(path)), "f": fmt, "s": escape_param(structure)})

    def close(self) -> None:
        self._conn.close()


class Engine:
    """The data directory's connections: one writer, `readers` readers, each used by one request at a time."""

    def __init__(self, path: Path, readers: int = 2) -> None:
        path.mkdir(parents=True, exist_ok=True)
        config = path.with_name(path.name + "-config.xml")
        config.write_text(ENGINE_CONFIG)
        self.url = f"file:{path}?config-file={config}"
        self.writer = Connection(self.url, readonly=False)  # fails if another process holds the directory
        self._readers = [Connection(self.url, readonly=True) for _ in range(readers)]
        self._free: asyncio.Queue[Connection] | None = None
        self._write_lock: asyncio.Lock | None = None
        self.timezone, self.version = self.writer.rows("SELECT timezone(), version()")[0]

    def open_connection(self, readonly: bool = False) -> Connection:
        return Connection(self.url, readonly)

    @contextlib.asynccontextmanager
    async def reader(self) -> Any:
        if self._free is None:
            self._free = asyncio.Queue()
            for conn in self._readers:
                self._free.put_nowait(conn)
        conn = await self._free.get()
        try:
            yield conn
        finally:
            self._free.put_nowait(conn)

    @contextlib.asynccontextmanager
    async def writer_connection(self) -> Any:
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        async with self._write_lock:
            yield self.writer

    def close(self) -> None:
        for conn in [*self._readers, self.writer]:
            with contextlib.suppress(Exception):
                conn.close()


def new_temp_path(suffix: str) -> Path:
    return temp_dir() / f"denomas-warehouse-{os.getpid()}-{uuid.uuid4().hex}.{suffix}"
