"""A warehouse service with one user per role, a little data, and the queries both role tests ask."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import clickhouse_connect
import orjson
from clickhouse_connect.driver.exceptions import DatabaseError

from streams.config import Settings
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


def client(service: WarehouseServiceProcess, role: str) -> clickhouse_connect.driver.Client:
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


def outcome(service: WarehouseServiceProcess, role: str, sql: str) -> tuple[int, object]:
    """(0, rows) or (ClickHouse error code, message) of one query as one role."""
    conn = client(service, role)
    try:
        return 0, conn.query(sql).result_rows
    except DatabaseError as error:
        code = int(str(error).split("Code: ", 1)[1].split(".", 1)[0]) if "Code: " in str(error) else -1
        return code, str(error)
    finally:
        conn.close()


def services(tmp: Path) -> Iterator[WarehouseServiceProcess]:
    service = start_service(tmp)
    try:
        load_sample(service)
        yield service
    finally:
        service.stop()
