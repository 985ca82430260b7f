"""Roles on the warehouse service, over clickhouse-connect and plain HTTP: each role gets the answers of what it may
read and ClickHouse's ACCESS_DENIED (497) for the rest, through views, joins, subqueries, CTEs and table functions;
exports ask for a role and stamp the data class of what they wrote."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import orjson
import pyarrow.parquet as pq
import pytest

from streams.catalog import YELLOW_COLUMNS
from streams.warehouse_service.access import RoleAccess
from streams.warehouse_service.process import WarehouseServiceProcess
from streams.warehouse_service.users import User
from tests.support.roles import (
    CASES,
    MART,
    ROLE_NAMES,
    Case,
    client,
    outcomes,
    password,
    reads_of,
    server_allows,
    server_grants,
    services,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WarehouseServiceProcess]:
    yield from services(tmp_path_factory.mktemp("roles"))


@pytest.fixture(scope="module")
def answers(service: WarehouseServiceProcess) -> dict[tuple[str, str], tuple[int, object]]:
    return outcomes(service)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_role_gets_the_answer_or_access_denied(answers: dict, case: Case) -> None:
    reference = answers[(case.name, "admin")] if case.allowed else None
    for role in ROLE_NAMES:
        code, answer = answers[(case.name, role)]
        if role not in case.allowed:
            assert code == 497, (role, answer)
            assert f"{role}: Not enough privileges. To execute this query, it's necessary to have the grant" in answer
            assert "(ACCESS_DENIED)" in str(answer)
        elif case.fails:
            assert reference is not None and code == reference[0] and code not in (0, 497), (role, answer)
        else:
            assert (code, answer) == reference, role


def test_answers_are_the_data(answers: dict) -> None:
    assert answers[("public table", "analyst")] == (0, [(2,)])
    assert answers[("orange table", "customer_success")] == (0, [("Acme Corp",), ("Globex",)])
    assert answers[("yellow table", "finance")] == (0, [(37,)])


def test_the_server_grants_give_the_same_allow_deny_table(service: WarehouseServiceProcess, answers: dict) -> None:
    """clickhouse/121_roles.sql's GRANTs, parsed (no server runs here), against the service's own answers."""
    grants = server_grants()
    admin = client(service, "admin")
    try:
        server = {(case.name, role): server_allows(grants[role], reads)
                  for case in CASES for reads in [reads_of(admin, case.sql)] for role in ROLE_NAMES}
    finally:
        admin.close()
    service_side = {key: code != 497 for key, (code, _) in answers.items()}
    assert server == service_side
    assert {key for key, allowed in server.items() if allowed} == {(c.name, r) for c in CASES for r in c.allowed}


def http(service: WarehouseServiceProcess, role: str, sql: str) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(f"{service.url}/?{urllib.parse.urlencode({'database': 'usage'})}",
                                     data=sql.encode(),
                                     headers={"X-ClickHouse-User": role, "X-ClickHouse-Key": password(role)})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def test_access_denied_is_clickhouses_error(service: WarehouseServiceProcess) -> None:
    status, headers, body = http(service, "analyst", "SELECT account_name, billing_country FROM dim_crm_account")
    assert status == 403 and headers["X-ClickHouse-Exception-Code"] == "497"
    assert body == ("Code: 497. DB::Exception: analyst: Not enough privileges. To execute this query, it's necessary "
                    "to have the grant SELECT(account_name, billing_country) ON usage.dim_crm_account. "
                    "(ACCESS_DENIED)\n")


def test_a_failing_analysis_never_quotes_what_the_role_may_not_read(service: WarehouseServiceProcess) -> None:
    sql = "SELECT toInt32(assumeNotNull((SELECT max(account_name) FROM dim_crm_account)))"
    _, _, admin = http(service, "admin", sql)
    assert "Globex" in admin  # the engine's own message quotes the value...
    for role in ("analyst", "finance"):
        status, _, body = http(service, role, sql)
        assert status == 403 and "Globex" not in body and "ACCESS_DENIED" in body  # ...never to these roles


def test_other_sessions_queries_are_for_unrestricted_users_only(service: WarehouseServiceProcess) -> None:
    """A service-only rule (README "Roles"): a query's text may quote values."""
    status, headers, body = http(service, "analyst", "SELECT query FROM system.processes")
    assert status == 403 and headers["X-ClickHouse-Exception-Code"] == "497"
    assert "grant SELECT ON system.processes" in body
    assert http(service, "admin", "SELECT count() FROM system.processes")[0] == 200


def test_a_dictionary_is_read_by_its_class(service: WarehouseServiceProcess) -> None:
    """dictGet names its dictionary in a string: the engine's analysis still finds it (a service-side test: the
    dictionary is made here, so no migration grants it)."""
    status, _, body = http(service, "admin", "CREATE DICTIONARY IF NOT EXISTS crm_names (dim_crm_account_id String, "
                           "account_name String) PRIMARY KEY dim_crm_account_id SOURCE(CLICKHOUSE(TABLE "
                           "'dim_crm_account' DB 'usage')) LAYOUT(COMPLEX_KEY_HASHED()) LIFETIME(0) "
                           "COMMENT 'Orange. Grain: one row per CRM account: its name.'")
    assert status == 200, body
    sql = "SELECT dictGet('usage.crm_names', 'account_name', 'acc-2')"
    assert http(service, "customer_success", sql)[::2] == (200, "Globex\n")
    for role in ("analyst", "finance"):
        status, _, body = http(service, role, sql)
        assert status == 403 and "grant dictGet ON usage.crm_names" in body and "Globex" not in body


def test_writes_need_the_writer_or_admin(service: WarehouseServiceProcess) -> None:
    sql = "INSERT INTO dim_ping_metric (metrics_path) VALUES ('x.y')"
    for role in ("analyst", "customer_success", "finance"):
        status, headers, body = http(service, role, sql)
        assert status == 403 and headers["X-ClickHouse-Exception-Code"] == "497", body
        assert "grant INSERT ON usage.dim_ping_metric" in body
    status, _, body = http(service, "writer", "INSERT INTO agg_event_metric_refresh SELECT * FROM "
                                              "agg_event_metric_refresh WHERE 0")
    assert status == 200, body


def test_a_user_with_two_roles_reads_what_either_may(service: WarehouseServiceProcess) -> None:
    conn = client(service, "analyst_finance")
    try:
        assert conn.query("SELECT sum(seats) FROM dim_subscription FINAL").result_rows == [(37,)]
        with pytest.raises(Exception, match="Code: 497"):
            conn.query("SELECT count() FROM dim_crm_account")
    finally:
        conn.close()


def test_an_unknown_role_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="unknown role analysts"):
        RoleAccess({"a": User("a", roles=("analysts",))})


def _export(service: WarehouseServiceProcess, user: str, role: str, out: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"CLICKHOUSE_URL": service.url, "DENOMAS_WAREHOUSE_DATABASE": "usage",
                        "DENOMAS_WAREHOUSE_USER": user, "DENOMAS_WAREHOUSE_PASSWORD": password(user)}
    return subprocess.run([sys.executable, "-m", "streams.cli", "export", "cs-mart", "--format", out.rsplit(".")[-1],
                           "--out", out, "--role", role], env=env, capture_output=True, text=True, timeout=120)


def test_export_as_customer_success_leaves_out_yellow_and_stamps_orange(service: WarehouseServiceProcess,
                                                                         tmp_path) -> None:
    for fmt in ("csv", "parquet"):
        out = tmp_path / f"cs.{fmt}"
        result = _export(service, "customer_success", "customer_success", str(out))
        assert result.returncode == 0, result.stderr
        stamp = orjson.loads((tmp_path / f"cs.{fmt}.class.json").read_bytes())
        assert stamp["data_class"] == "Orange" and stamp["role"] == "customer_success" and stamp["source"] == MART
        assert not set(stamp["columns"]) & YELLOW_COLUMNS[MART] and "dim_crm_account_id" in stamp["columns"]
    assert (tmp_path / "cs.csv").read_text().splitlines()[0].split(",") == stamp["columns"]
    parquet = pq.read_table(tmp_path / "cs.parquet")
    assert parquet.column_names == stamp["columns"]
    assert parquet.schema.metadata[b"denomas.data_class"] == b"Orange"


def test_export_as_admin_is_orange_and_yellow(service: WarehouseServiceProcess, tmp_path) -> None:
    result = _export(service, "admin", "admin", str(tmp_path / "all.csv"))
    assert result.returncode == 0, result.stderr
    stamp = orjson.loads((tmp_path / "all.csv.class.json").read_bytes())
    assert stamp["data_class"] == "Orange/Yellow" and YELLOW_COLUMNS[MART] <= set(stamp["columns"])


@pytest.mark.parametrize(("user", "role", "reason"), [
    ("analyst", "analyst", "role analyst may not read"),  # the role itself may not read the mart
    ("finance", "finance", "role finance may not read"),
    ("analyst", "customer_success", "ACCESS_DENIED"),  # the user does not have the role it asked for
])
def test_export_is_refused_when_the_role_may_not_read_it(service: WarehouseServiceProcess, tmp_path, user: str,
                                                         role: str, reason: str) -> None:
    out = tmp_path / "refused.csv"
    result = _export(service, user, role, str(out))
    assert result.returncode == 3 and reason in result.stderr, result.stderr
    assert not out.exists() and not (tmp_path / "refused.csv.class.json").exists()
