"""Roles on the embedded warehouse service: which objects and columns each role may read, derived from the data
class every table and view carries in its COMMENT (streams/catalog.py), enforced before a query runs from the
engine's own analysis of the query (EXPLAIN QUERY TREE: every table, view and table function it reads, and the
columns it reads of each). clickhouse/121_roles.sql gives a ClickHouse server the same grants.

As on a server with SQL SECURITY DEFINER views, a SELECT on a view needs the grant on the view only (the query tree
keeps a view as one table node; its own sources are the definer's business). Table functions need CREATE TEMPORARY
TABLE, which no restricted role has. The system database is readable by everyone, as on a server by default.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from streams.catalog import YELLOW_COLUMNS, classes_of
from streams.warehouse_service.engine import Connection, Statement, escape_param
from streams.warehouse_service.errors import ClickHouseError, access_denied
from streams.warehouse_service.users import User


@dataclass(frozen=True)
class Role:
    name: str
    classes: frozenset[str]  # an object is readable when every class it carries is one of these
    hidden_columns: Mapping[str, frozenset[str]] = field(default_factory=dict)  # objects readable without these


ROLES: dict[str, Role] = {
    # Aggregates, marts and definitions that name no customer and hold no financial data.
    "analyst": Role("analyst", frozenset({"Public"})),
    # Customer and account data; its mart (Orange/Yellow) without the Yellow columns.
    "customer_success": Role("customer_success", frozenset({"Public", "Orange"}), YELLOW_COLUMNS),
    # Financial data and its aggregates; nothing that also names customers' installations or people.
    "finance": Role("finance", frozenset({"Public", "Yellow"})),
}
# Not restricted by the service: `admin` (everything) and `writer` (the workers' user: ingestion and recomputes).
# Users without roles are unrestricted too, as ClickHouse's `default` user (the service without a users file).
UNRESTRICTED_ROLES = frozenset({"admin", "writer"})
KNOWN_ROLES = frozenset(ROLES) | UNRESTRICTED_ROLES
OPEN_DATABASES = frozenset({"system", "information_schema", "INFORMATION_SCHEMA"})
# System tables that show other sessions' query texts (which may quote values): not for restricted roles.
SESSION_TABLES = frozenset({"processes", "query_log", "query_thread_log", "query_views_log", "text_log",
                            "session_log", "processors_profile_log", "asynchronous_insert_log", "query_cache"})
# Functions that read a dictionary or a Join table named by their first (constant) argument.
READING_FUNCTIONS = re.compile(r"^(dictGet\w*|dictHas|dictIsIn|dictGetHierarchy|dictGetChildren|dictGetDescendants|"
                               r"joinGet\w*)$")
METADATA_KINDS = frozenset({"DescribeQuery", "ShowCreateTableQuery", "ExistsTableQuery", "ShowColumns"})
OPEN_KINDS = frozenset({"ShowTables", "ExistsDatabaseQuery"})
SELECT_KINDS = frozenset({"SelectWithUnionQuery", "SelectIntersectExceptQuery"})


def reads_whole(role: Role, classes: frozenset[str]) -> bool:
    return bool(classes) and classes <= role.classes


def reads_part(role: Role, name: str, classes: frozenset[str]) -> bool:
    """Some columns of the object: those of its classes the role has (Orange/Yellow without its Yellow columns)."""
    return reads_whole(role, classes) or (name in role.hidden_columns and bool(classes - {"Yellow"})
                                          and classes - {"Yellow"} <= role.classes)


def readable_columns(role: Role, name: str, classes: frozenset[str], columns: Iterable[str]) -> frozenset[str]:
    """The columns of one object (its `classes`, all its `columns`) this role may read."""
    if reads_whole(role, classes):
        return frozenset(columns)
    if reads_part(role, name, classes):
        return frozenset(columns) - role.hidden_columns[name]
    return frozenset()


@dataclass(frozen=True)
class Read:
    """One object a query reads: `columns` empty when it reads rows but names no column (count())."""

    database: str
    table: str
    columns: frozenset[str]
    privilege: str = "SELECT"  # dictGet for a dictionary

    @property
    def full_name(self) -> str:
        return f"{self.database}.{self.table}"


@dataclass
class QueryReads:
    reads: dict[str, Read] = field(default_factory=dict)
    table_functions: list[str] = field(default_factory=list)


_TRAILING_FORMAT = re.compile(r"\s+FORMAT\s+`?\w+`?\s*$")
_TABLE = re.compile(r"^TABLE id: (\d+),(?: alias: [^,]+,)? table_name: ([^,\s]+)")
_TABLE_FUNCTION = re.compile(r"^TABLE_FUNCTION id: \d+,.* table_function_name: ([^,\s]+)")
_COLUMN = re.compile(r"^COLUMN id: \d+,(?: alias: [^,]+,)? column_name: (.+?), result_type: .*, source_id: (\d+)$")
_FUNCTION = re.compile(r"^FUNCTION id: \d+, function_name: (\w+),")
_CONSTANT_STRING = re.compile(r"^CONSTANT id: \d+, constant_value: '((?:[^'\\]|\\.)*)'")


def _split_name(name: str, database: str) -> tuple[str, str]:
    db, dot, table = name.partition(".")
    return (db, table) if dot else (database, name)


def parse_query_tree(text: str, database: str) -> QueryReads:
    """Tables (views included, never expanded), their columns, table functions and dictionaries of a query tree."""
    lines = [line.strip() for line in text.splitlines()]
    tables: dict[str, tuple[str, str]] = {}
    columns: dict[str, set[str]] = {}
    found = QueryReads()
    for index, line in enumerate(lines):
        if table := _TABLE.match(line):
            tables[table.group(1)] = _split_name(table.group(2), database)
        elif column := _COLUMN.match(line):
            columns.setdefault(column.group(2), set()).add(column.group(1))
        elif function := _TABLE_FUNCTION.match(line):
            found.table_functions.append(function.group(1))
        elif (function := _FUNCTION.match(line)) and READING_FUNCTIONS.match(function.group(1)):
            constant = next((m for later in lines[index + 1:] if (m := _CONSTANT_STRING.match(later))), None)
            privilege = "SELECT" if function.group(1).startswith("joinGet") else "dictGet"
            if constant:
                db, table = _split_name(constant.group(1), database)
                found.reads.setdefault(f"{db}.{table}", Read(db, table, frozenset(), privilege))
    for node_id, (db, table) in tables.items():
        key = f"{db}.{table}"
        known = found.reads.get(key)
        found.reads[key] = Read(db, table, frozenset(columns.get(node_id, ())) | (known.columns if known else set()),
                                known.privilege if known else "SELECT")
    return found


def ast_tables(statement: Statement, database: str) -> QueryReads:
    """From the parser's AST only (nothing resolved, nothing run): the names in table positions."""
    found = QueryReads()
    ast = statement.ast
    named = [line for depth, line in ast if depth == 1 and line.startswith("Identifier ")]
    if statement.output_format and named:
        named.pop()  # `FORMAT x` is the last identifier under the root
    # SHOW CREATE TABLE / EXISTS name their object as [database] table identifiers under the root.
    names = [".".join(line.split(" ")[1] for line in named)] if named and statement.kind in METADATA_KINDS else []
    for index, (_, line) in enumerate(ast):
        kind, _, rest = line.partition(" ")
        if kind == "TableIdentifier":
            names.append(rest.split(" ", 1)[0])
        elif kind == "TableExpression" and index + 1 < len(ast) and ast[index + 1][1].startswith("Function "):
            found.table_functions.append(ast[index + 1][1].split(" ")[1])
    for name in names:
        db, table = _split_name(name, database)
        found.reads[f"{db}.{table}"] = Read(db, table, frozenset())
    return found


def denied(user: User, grant: str) -> ClickHouseError:
    """ClickHouse's ACCESS_DENIED, in its words."""
    return access_denied(f"{user.name}: Not enough privileges. To execute this query, it's necessary to have the "
                         f"grant {grant}")


class RoleAccess:
    """The service's AccessCheck: called with the request's user, statement and a reader connection (current
    database set to the request's) before the statement runs."""

    def __init__(self, users: Mapping[str, User] | None = None) -> None:
        for user in (users or {}).values():
            unknown = sorted(set(user.roles) - KNOWN_ROLES)
            if unknown:
                raise ValueError(f"user {user.name}: unknown role {unknown[0]} "
                                 f"(known: {', '.join(sorted(KNOWN_ROLES))})")

    def __call__(self, user: User, statement: Statement, conn: Connection, database: str) -> None:
        roles = [ROLES[name] for name in user.roles if name in ROLES]
        if not user.roles or UNRESTRICTED_ROLES & set(user.roles):
            return
        if statement.kind in OPEN_KINDS:
            return
        if statement.kind in SELECT_KINDS:
            self._check_select(user, roles, statement, conn, database)
        elif statement.kind in METADATA_KINDS:
            found = ast_tables(statement, database)
            if not found.reads or found.table_functions:
                raise denied(user, "CREATE TEMPORARY TABLE ON *.*" if found.table_functions
                              else f"SELECT ON {database}.*")
            self._check_reads(user, roles, found, conn, metadata=True)
        elif statement.kind == "InsertQuery":
            db, table, _ = statement.insert_target
            raise denied(user, f"INSERT ON {db or database}.{table}")
        else:
            raise denied(user, f"{statement.kind.removesuffix('Query').upper() or 'ALL'} ON {database}.*")

    def _check_select(self, user: User, roles: list[Role], statement: Statement, conn: Connection,
                      database: str) -> None:
        try:
            query = _TRAILING_FORMAT.sub("", statement.formatted)
            tree = conn.run(f"EXPLAIN QUERY TREE {query}", "TabSeparatedRaw", statement.params)
        except ClickHouseError:
            # The analysis failed. Its message may quote values read while analysing (scalar subqueries are
            # evaluated), so it is answered only when every object the statement names is wholly readable.
            self._check_reads(user, roles, ast_tables(statement, database), conn, whole=True)
            raise
        self._check_reads(user, roles, parse_query_tree(tree.body.decode(), database), conn)

    def _check_reads(self, user: User, roles: list[Role], found: QueryReads, conn: Connection,
                     metadata: bool = False, whole: bool = False) -> None:
        if found.table_functions:
            raise denied(user, "CREATE TEMPORARY TABLE ON *.*")
        for read in found.reads.values():
            if read.database == "system" and read.table in SESSION_TABLES:
                raise denied(user, f"SELECT ON {read.full_name}")
        reads = [read for read in found.reads.values() if read.database not in OPEN_DATABASES]
        for read, classes, all_columns in _described(conn, reads):
            allowed = frozenset().union(*(readable_columns(r, read.table, classes, all_columns) for r in roles))
            if whole:  # names that are no object (a CTE's) hide nothing
                if allowed != frozenset(all_columns):
                    raise denied(user, f"SELECT ON {read.full_name}")
                continue
            if metadata and not allowed:
                raise denied(user, f"SHOW COLUMNS ON {read.full_name}")
            missing = [c for c in sorted(read.columns) if c not in allowed]
            if missing:
                raise denied(user, f"SELECT({', '.join(missing)}) ON {read.full_name}")
            if not read.columns and not allowed:
                raise denied(user, f"dictGet ON {read.full_name}" if read.privilege != "SELECT"
                             else f"SELECT for at least one column on {read.full_name}")


def _described(conn: Connection, reads: list[Read]) -> list[tuple[Read, frozenset[str], list[str]]]:
    """Each read object with its classes (from its COMMENT) and all its columns."""
    if not reads:
        return []
    # Filters on database and table alone, which system.tables/columns apply before they read any metadata.
    params = {"dbs": _array_param({read.database for read in reads}),
              "tables": _array_param({read.table for read in reads})}
    where = "database IN {dbs:Array(String)} AND {name} IN {tables:Array(String)}"
    comments = {(db, name): comment for db, name, comment in conn.rows(
        "SELECT database, name, comment FROM system.tables WHERE " + where.replace("{name}", "name"), params)}
    columns: dict[tuple[str, str], list[str]] = {}
    for db, table, name in conn.rows("SELECT database, table, name FROM system.columns WHERE "
                                     + where.replace("{name}", "table") + " ORDER BY position", params):
        columns.setdefault((db, table), []).append(name)
    # An object the engine read but system.tables does not list (a temporary or external table) is unclassified:
    # only unrestricted users read it.
    return [(read, classes_of(comments.get((read.database, read.table), "")),
             columns.get((read.database, read.table), [])) for read in reads]


def _array_param(values: Iterable[str]) -> str:
    """An Array(String) query parameter in ClickHouse's text form."""
    quoted = ("'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'" for value in sorted(values))
    return escape_param("[" + ",".join(quoted) + "]")


def role_grants(role: Role, comments: Mapping[str, str], columns: Mapping[str, list[str]]) -> dict[str, frozenset[str]]:
    """What a server grants `role` (object -> readable columns; all of them: SELECT on the object), from each
    object's COMMENT and columns: the same rule the service applies (clickhouse/121_roles.sql is written from this)."""
    grants = {}
    for name, comment in comments.items():
        readable = readable_columns(role, name, classes_of(comment), columns.get(name, []))
        if readable:
            grants[name] = readable
    return grants
