"""A warehouse service with one user per role, a little data, and the queries both role tests ask."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import clickhouse_connect
import orjson
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from streams.config import Settings
from streams.warehouse import load_migrations
from streams.warehouse_service.access import QueryReads, ast_tables, parse_query_tree
from streams.warehouse_service.engine import OUTSIDE_FUNCTIONS, Statement, parse_ast
from streams.warehouse_service.process import WarehouseServiceProcess
from streams.warehouse_service.users import hash_password

ROLE_NAMES = ("analyst", "customer_success", "finance", "admin", "writer")
MART = "mart_product_usage_paid_user_metrics_monthly"


def password(role: str) -> str:
    return f"{role}-secret"


def users_file(path: Path) -> Path:
    users = {role: {"password_sha256_hex": hash_password(password(role)), "roles": [role]} for role in ROLE_NAMES}
    users["analyst_finance"] = {"password_sha256_hex": hash_password(password("analyst_finance")),
                                "roles": ["analyst", "finance"]}
    path.write_bytes(orjson.dumps({"users": users}))  # JSON is YAML
    return path


def start_service(data_dir: Path) -> WarehouseServiceProcess:
    service = WarehouseServiceProcess(Settings.from_env(data_dir=data_dir, clickhouse_url=None),
                                      users_path=users_file(data_dir / "users.yml"))
    service.start()
    return service


def client(service: WarehouseServiceProcess, role: str) -> Client:
    return clickhouse_connect.get_client(host="127.0.0.1", port=service.port, username=role,
                                         password=password(role), database="usage")


def load_sample(service: WarehouseServiceProcess) -> None:
    """A few reference rows, written by the writer user (the workers' user)."""
    writer = client(service, "writer")
    writer.insert("dim_crm_account", [["acc-1", "Acme Corp", "", "Customer", "DE", "2026-01-01 00:00:00", 0],
                                      ["acc-2", "Globex", "", "Customer", "FR", "2026-01-01 00:00:00", 0]],
                  column_names=["dim_crm_account_id", "account_name", "dim_parent_crm_account_id", "crm_account_type",
                                "billing_country", "updated_at", "is_deleted"])
    writer.command("INSERT INTO dim_subscription (dim_subscription_id, subscription_name, dim_crm_account_id, seats, "
                   "updated_at) VALUES ('sub-1', 'A-S0001', 'acc-1', 25, now64(3)), ('sub-2', 'A-S0002', 'acc-2', 5, "
                   "now64(3)), ('sub-3', 'A-S0003', '', 7, now64(3))")
    writer.command("INSERT INTO dim_ping_metric (metrics_path, time_frame) VALUES ('counts.issues', 'all'), "
                   "('acc-1', 'none')")
    writer.close()


@dataclass(frozen=True)
class Case:
    name: str
    sql: str
    allowed: frozenset[str]  # roles that pass the access check (admin and writer: all but outside functions)
    fails: bool = False  # the engine itself refuses it (after the access check) for the allowed roles


ALL = frozenset(ROLE_NAMES)
UNRESTRICTED = frozenset({"admin", "writer"})
CS = UNRESTRICTED | {"customer_success"}
FIN = UNRESTRICTED | {"finance"}

CASES = (
    Case("public table", "SELECT count() FROM dim_ping_metric FINAL", ALL),
    Case("system table", "SELECT count() FROM system.one", ALL),
    Case("orange table", "SELECT account_name FROM dim_crm_account FINAL ORDER BY 1", CS),
    Case("orange table, no column named", "SELECT count() FROM dim_crm_account", CS),
    Case("yellow table", "SELECT sum(seats) FROM dim_subscription FINAL", FIN),
    Case("public view over orange and yellow tables", "SELECT count() FROM rpt_license_match_rate", ALL),
    Case("yellow view", "SELECT count() FROM rpt_xmau_monthly", FIN),
    Case("orange view", "SELECT count() FROM dim_installation", CS),
    Case("join public x orange", "SELECT count() FROM dim_ping_metric AS m FINAL "
         "JOIN dim_crm_account AS a FINAL ON m.metrics_path = a.dim_crm_account_id", CS),
    Case("IN subquery on yellow", "SELECT count() FROM dim_ping_metric WHERE metrics_path IN "
         "(SELECT dim_subscription_id FROM dim_subscription)", FIN),
    Case("scalar subquery on orange", "SELECT (SELECT max(account_name) FROM dim_crm_account)", CS),
    Case("failing scalar subquery on orange", "SELECT toInt32(assumeNotNull((SELECT max(account_name) "
         "FROM dim_crm_account)))", CS, fails=True),
    Case("CTE over orange", "WITH a AS (SELECT * FROM dim_crm_account FINAL) SELECT count() FROM a", CS),
    Case("UNION with yellow", "SELECT count() FROM (SELECT metrics_path FROM dim_ping_metric "
         "UNION ALL SELECT dim_subscription_id FROM dim_subscription)", FIN),
    Case("derived table over yellow", "SELECT sum(s) FROM (SELECT seats AS s FROM dim_subscription FINAL)", FIN),
    Case("mart, non-yellow columns", f"SELECT count(), uniqExact(dim_crm_account_id), sum(active_user_count) "
         f"FROM {MART}", CS),
    Case("mart, a yellow column", f"SELECT sum(license_user_count) FROM {MART}", UNRESTRICTED),
    Case("mart, yellow column only in WHERE", f"SELECT count() FROM {MART} WHERE license_utilization > 0.5",
         UNRESTRICTED),
    Case("mart, every column", f"SELECT * FROM {MART}", UNRESTRICTED),
    Case("table function numbers", "SELECT sum(number) FROM numbers(10)", UNRESTRICTED),
    Case("table function merge over orange", "SELECT count() FROM merge('usage', '^dim_crm_account$')",
         UNRESTRICTED),
    Case("table function in a subquery", "SELECT count() FROM dim_ping_metric WHERE metrics_path IN "
         "(SELECT toString(number) FROM numbers(3))", UNRESTRICTED),
    Case("table function url", "SELECT * FROM url('http://127.0.0.1:9/x.csv', CSV, 'a String')", frozenset()),
    Case("describe an orange table", "DESCRIBE TABLE dim_crm_account", CS),
    Case("show create of a yellow table", "SHOW CREATE TABLE usage.dim_subscription", FIN),
    Case("exists of an orange table", "EXISTS TABLE dim_crm_account", CS),
)


def outcome(conn: Client, sql: str) -> tuple[int, object]:
    """(0, rows) or (ClickHouse error code, message) of one query on one user's connection."""
    try:
        return 0, conn.query(sql).result_rows
    except DatabaseError as error:
        code = re.search(r"Code: (\d+)\.", str(error))
        return (int(code.group(1)) if code else -1), str(error)


def outcomes(service: WarehouseServiceProcess) -> dict[tuple[str, str], tuple[int, object]]:
    """Every case as every role: (case name, role) -> outcome."""
    found = {}
    for role in ROLE_NAMES:
        conn = client(service, role)
        try:
            found.update({(case.name, role): outcome(conn, case.sql) for case in CASES})
        finally:
            conn.close()
    return found


# The server's side, statically: the GRANT statements of the server-only migrations (no server runs here).

ALL_COLUMNS = None  # a grant on the whole object (or on every object of the database)
_GRANT = re.compile(r"^GRANT\s+(.+?)\s+ON\s+(\S+)\s+TO\s+(.+)$", re.S)


@dataclass
class Grants:
    """What one role or user was granted: objects (or `*`) -> columns (None: all), and global privileges."""

    objects: dict[str, frozenset[str] | None] = field(default_factory=dict)
    global_privileges: set[str] = field(default_factory=set)


def _privileges(text: str) -> list[tuple[str, frozenset[str] | None]]:
    """`SELECT(a, b), INSERT` -> [(SELECT, {a, b}), (INSERT, None)]."""
    found = []
    for match in re.finditer(r"([A-Z][A-Z ]*?)\s*(?:\(([^)]*)\))?\s*(?:,|$)", " ".join(text.split())):
        if match.group(1).strip():
            columns = frozenset(c.strip() for c in match.group(2).split(",")) if match.group(2) else None
            found.append((match.group(1).strip(), columns))
    return found


def server_grants() -> dict[str, Grants]:
    grants: dict[str, Grants] = {}
    for migration in load_migrations():
        if not migration.server_only:
            continue
        for statement in migration.statements():
            match = _GRANT.match(statement)
            if not match:
                continue
            target = match.group(2)
            for grantee in (g.strip() for g in match.group(3).split(",")):
                entry = grants.setdefault(grantee, Grants())
                for privilege, columns in _privileges(match.group(1)):
                    if target == "*.*":
                        entry.global_privileges.add(privilege)
                    elif privilege in ("SELECT", "ALL"):
                        entry.objects[target] = columns
    return grants


def server_allows(grants: Grants, found: QueryReads) -> bool:
    """A server's decision for one role from its grants: every object read (views are objects: SQL SECURITY
    DEFINER) needs SELECT on the columns read (on one column at least when none is named); table functions need
    CREATE TEMPORARY TABLE, and those reaching outside a source grant nobody has."""
    if found.table_functions and ("CREATE TEMPORARY TABLE" not in grants.global_privileges
                                  or set(found.table_functions) & OUTSIDE_FUNCTIONS):
        return False
    for read in found.reads.values():
        if read.database in ("system", "information_schema"):
            continue  # readable by everyone (a server's default: select_from_system_db_requires_grant off)
        columns = grants.objects["*"] if "*" in grants.objects else grants.objects.get(read.table, frozenset())
        if columns is ALL_COLUMNS:
            continue
        if not columns or not read.columns <= columns:
            return False
    return True


def reads_of(admin: Client, sql: str) -> QueryReads:
    """What a query reads, from the engine's analysis (asked as admin): the query tree of a SELECT, else (not a
    SELECT, or an analysis that fails) the names in its AST."""
    def explain(kind: str) -> str:
        return admin.raw_query(f"EXPLAIN {kind} {sql}", fmt="TabSeparatedRaw").decode()

    try:
        statement = Statement(sql, sql, parse_ast(explain("AST")), {})
    except DatabaseError as error:  # the service refuses even to parse what names an outside function
        outside = re.search(r"grant READ ON (\w+)", str(error))
        assert outside, error
        return QueryReads(table_functions=[outside.group(1).lower()])
    if statement.kind.startswith("Select"):
        try:
            return parse_query_tree(explain("QUERY TREE"), "usage")
        except DatabaseError:
            pass
    return ast_tables(statement, "usage")


def services(tmp: Path) -> Iterator[WarehouseServiceProcess]:
    service = start_service(tmp)
    try:
        load_sample(service)
        yield service
    finally:
        service.stop()
