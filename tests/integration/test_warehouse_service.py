"""The warehouse service against unmodified clients: clickhouse-connect, the project's ServerWarehouse and curl,
all talking to the real embedded engine in a child process."""

from __future__ import annotations

import base64
import datetime as dt
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import clickhouse_connect
import orjson
import pyarrow as pa
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from streams.config import MIGRATIONS_DIR, Settings
from streams.warehouse import ServerWarehouse, load_migrations
from streams.warehouse_service import WarehouseServiceProcess
from streams.warehouse_service.users import hash_password

pytestmark = pytest.mark.integration

USERS = {
    "default": {},
    "ingest": {"password_sha256_hex": hash_password("ingest-secret")},
    "analyst": {"password_sha256_hex": hash_password("analyst-secret"), "readonly": 1, "roles": ["analyst"]},
}
ANALYST_KEY = "analyst-secret"
# Every column type the migrations in clickhouse/ use, in one table.
ALL_TYPES = """CREATE TABLE default.all_types (
    id UInt64, raw String, ts DateTime64(3, 'UTC'), maybe Nullable(Int64), tags Array(String),
    kind LowCardinality(String), day Date, score Float64, flag UInt8, CONSTRAINT small_flag CHECK flag < 100
) ENGINE = MergeTree ORDER BY id"""


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WarehouseServiceProcess]:
    data_dir = tmp_path_factory.mktemp("warehouse")
    users = data_dir / "users.yml"
    users.write_bytes(orjson.dumps({"users": USERS}))  # JSON is YAML
    with WarehouseServiceProcess(Settings.from_env(data_dir=data_dir), users_path=users) as proc:
        yield proc


def client(service: WarehouseServiceProcess, **kwargs: object) -> clickhouse_connect.driver.Client:
    return clickhouse_connect.get_client(host="127.0.0.1", port=service.port, **kwargs)


def http(service: WarehouseServiceProcess, query: str | None = None, body: bytes | None = None,
         headers: dict[str, str] | None = None, **params: str) -> tuple[int, dict[str, str], bytes]:
    """One request with urllib: status, headers, body (errors included)."""
    args = ({"query": query} if query is not None else {}) | params
    request = urllib.request.Request(f"{service.url}/?{urllib.parse.urlencode(args)}", data=body,
                                     headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def curl(service: WarehouseServiceProcess, *args: str) -> tuple[int, str]:
    """curl with -g (no URL globbing: `{x:Type}` placeholders): status and body without its final newline."""
    out = subprocess.run(["curl", "-sS", "-g", "-w", "\n%{http_code}", *args], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    body, _, status = out.rpartition("\n")
    return int(status), body.removesuffix("\n")


def test_ping_and_identity(service: WarehouseServiceProcess) -> None:
    status, headers, body = http(service, "SELECT version(), timezone()")
    assert status == 200 and body.decode().split("\t")[0].startswith("26.")
    assert headers["X-ClickHouse-Timezone"] == body.decode().strip().split("\t")[1]
    assert headers["X-ClickHouse-Format"] == "TabSeparated"
    assert orjson.loads(headers["X-ClickHouse-Summary"])["read_rows"] == "1"
    assert curl(service, f"{service.url}/ping") == (200, "Ok.")


def test_clickhouse_connect_native_insert_every_type(service: WarehouseServiceProcess) -> None:
    ch = client(service)
    ch.command(ALL_TYPES)
    ts = dt.datetime(2026, 3, 4, 5, 6, 7, 891000, tzinfo=dt.UTC)
    rows = [
        [2**64 - 1, b"\xff\x00\x01bytes", ts, None, ["a", "b"], "k1", dt.date(2026, 3, 4), 1.5, 7],
        [2**63 + 5, b"plain", ts + dt.timedelta(days=1), -42, [], "k2", dt.date(1970, 1, 1), -0.25, 0],
    ]
    summary = ch.insert("all_types", rows, column_names=["id", "raw", "ts", "maybe", "tags", "kind", "day", "score",
                                                         "flag"])
    assert summary.written_rows == 2
    got = ch.query("SELECT toString(id), hex(raw), toString(ts), maybe, tags, kind, toString(day), score, flag "
                   "FROM all_types ORDER BY id").result_rows
    assert got == [
        (str(2**63 + 5), b"plain".hex().upper(), "2026-03-05 05:06:07.891", -42, [], "k2", "1970-01-01", -0.25, 0),
        (str(2**64 - 1), b"\xff\x00\x01bytes".hex().upper(), "2026-03-04 05:06:07.891", None, ["a", "b"], "k1",
         "2026-03-04", 1.5, 7),
    ]
    param = ch.query("SELECT count() FROM all_types WHERE id > {low:UInt64} AND kind = {k:String}",
                     parameters={"low": 2**63, "k": "k1"})
    assert param.result_rows == [(1,)]


def test_clickhouse_connect_arrow_and_frames(service: WarehouseServiceProcess) -> None:
    ch = client(service)
    ch.command("CREATE TABLE default.arrow_in (id UInt64, name String, day Date) ENGINE = MergeTree ORDER BY id")
    table = pa.table({"id": pa.array([3, 1, 2], pa.uint64()), "name": pa.array(["c", "a", "b"]),
                      "day": pa.array([dt.date(2026, 1, d) for d in (3, 1, 2)], pa.date32())})
    assert ch.insert_arrow("arrow_in", table).written_rows == 3
    frame = ch.query_df("SELECT id, name FROM arrow_in ORDER BY id")
    assert frame["name"].tolist() == ["a", "b", "c"] and frame["id"].tolist() == [1, 2, 3]
    arrow = ch.query_arrow("SELECT sum(id) AS total FROM arrow_in")
    assert arrow.column("total").to_pylist() == [6]


@pytest.mark.parametrize("compression", ["lz4", "zstd", "gzip"])
def test_compressed_inserts(service: WarehouseServiceProcess, compression: str) -> None:
    ch = client(service, compress=compression)
    table = f"compressed_{compression}"
    ch.command(f"CREATE TABLE default.{table} (n UInt64, s String) ENGINE = MergeTree ORDER BY n")
    values = list(range(5000))
    ch.insert(table, [[n, f"row-{n}"] for n in values], column_names=["n", "s"])
    assert ch.query(f"SELECT count(), sum(n), max(s) FROM {table}").result_rows == [(5000, sum(values), "row-999")]


def test_server_warehouse_migrates_and_round_trips(service: WarehouseServiceProcess) -> None:
    warehouse = ServerWarehouse(service.url)
    try:
        from streams.warehouse import migrate

        assert migrate(warehouse) == []  # the service migrated at start; a second run finds nothing to do
        names = [row[0] for row in warehouse.query("SELECT name FROM schema_migrations ORDER BY version").rows]
        assert names == [m.name for m in load_migrations(MIGRATIONS_DIR) if not m.server_only]  # roles: servers
        warehouse.execute("CREATE TABLE IF NOT EXISTS sw_round_trip (id UInt64, v String) ENGINE = MergeTree "
                          "ORDER BY id")
        assert warehouse.insert("sw_round_trip", [{"id": i, "v": f"v{i}"} for i in range(10)]) == 10
        result = warehouse.query("SELECT count(), sum(id) FROM sw_round_trip WHERE id >= {low:UInt64}", {"low": 3})
        assert result.rows == [(7, sum(range(3, 10)))]
    finally:
        warehouse.close()


def test_the_service_counts_its_requests_for_prometheus(service: WarehouseServiceProcess) -> None:
    before = curl(service, f"{service.url}/metrics")[1]
    assert curl(service, f"{service.url}/?query=SELEC%201")[0] == 400
    assert curl(service, f"{service.url}/?query=SELECT%201")[0] == 200
    after = curl(service, f"{service.url}/metrics")[1]

    def count(page: str, status: str) -> float:
        line = f'denomas_http_requests_total{{endpoint="/",status="{status}"}} '
        return next((float(x[len(line):]) for x in page.splitlines() if x.startswith(line)), 0.0)

    assert (count(after, "400") - count(before, "400"), count(after, "200") - count(before, "200")) == (1, 1)


def test_an_empty_result_still_names_its_columns(service: WarehouseServiceProcess) -> None:
    """A ClickHouse server sends a header block for an empty Native result; clients read column names from it."""
    ch = client(service)
    result = ch.query("SELECT 1 AS x, toString({s:String}) AS y WHERE 0", parameters={"s": "a"})
    assert (result.column_names, result.result_rows) == (("x", "y"), [])
    ch.close()


def test_parameters_too_long_for_a_url_travel_as_a_form(service: WarehouseServiceProcess) -> None:
    """clickhouse-connect moves the query and long `param_*` values into a form body; ClickHouse accepts both."""
    ids = [f"id-{n:05d}" for n in range(3000)]
    ch = client(service)
    for form in (False, True):
        rows = client(service, form_encode_query_params=form).query(
            "SELECT count() FROM (SELECT arrayJoin(splitByChar(',', {ids:String})) AS id) WHERE id != {skip:String}",
            parameters={"ids": ",".join(ids), "skip": ids[0]}).result_rows
        assert rows == [(len(ids) - 1,)]
    ch.close()


def test_curl_formats_params_and_auth(service: WarehouseServiceProcess) -> None:
    status, body = curl(service, f"{service.url}/?query=SELECT%2040%2B2%20AS%20x&default_format=JSONEachRow")
    assert (status, orjson.loads(body)) == (200, {"x": 42})
    status, body = curl(service, "--data-binary", "SELECT {n:UInt8} * 2 AS y, {s:String} AS s FORMAT JSON",
                        f"{service.url}/?param_n=21&param_s=a%5Ctb")
    assert status == 200 and orjson.loads(body)["data"] == [{"y": 42, "s": "a\tb"}]
    basic = base64.b64encode(b"analyst:analyst-secret").decode()
    assert curl(service, "-H", f"Authorization: Basic {basic}", f"{service.url}/?query=SELECT%201") == (200, "1")
    assert curl(service, "-u", "ingest:ingest-secret", f"{service.url}/?query=SELECT%202") == (200, "2")
    assert curl(service, "-H", "X-ClickHouse-User: analyst", "-H", "X-ClickHouse-Key: analyst-secret",
                f"{service.url}/?query=SELECT%203") == (200, "3")
    assert curl(service, f"{service.url}/?user=ingest&password=ingest-secret&query=SELECT%204") == (200, "4")
    for args in (["-u", "analyst:wrong"], ["-u", "nobody:x"], ["-H", "X-ClickHouse-User: ingest"]):
        status, body = curl(service, *args, f"{service.url}/?query=SELECT%201")
        assert status == 403 and body.startswith("Code: 516.") and "(AUTHENTICATION_FAILED)" in body


def test_errors_as_clickhouse_sends_them(service: WarehouseServiceProcess) -> None:
    cases = {
        "SELEC 1": (400, 62, "SYNTAX_ERROR"),
        "SELECT * FROM default.no_such_table": (404, 60, "UNKNOWN_TABLE"),
        "SELECT no_such_function(1)": (404, 46, "UNKNOWN_FUNCTION"),
        "SELECT 1; SELECT 2": (400, 62, "SYNTAX_ERROR"),
        "SELECT * FROM file('/etc/hostname', 'LineAsString')": (403, 497, "ACCESS_DENIED"),
        "SELECT 1 INTO OUTFILE '/tmp/never-written'": (403, 497, "ACCESS_DENIED"),
        "SET max_threads = 1": (501, 48, "NOT_IMPLEMENTED"),
    }
    for sql, (status, code, name) in cases.items():
        got_status, headers, body = http(service, body=sql.encode())
        assert (got_status, headers["X-ClickHouse-Exception-Code"]) == (status, str(code)), (sql, body)
        assert body.decode().startswith(f"Code: {code}. DB::Exception: ") and f"({name})" in body.decode(), body
    assert not Path("/tmp/never-written").exists()
    status, headers, body = http(service, "SELECT 1", no_such_setting="1")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (404, "115")
    status, headers, body = http(service, "SELECT number FROM numbers(10)", max_result_rows="3")
    assert headers["X-ClickHouse-Exception-Code"] == "396" and status == 500


def test_check_violation_stores_nothing(service: WarehouseServiceProcess) -> None:
    ch = client(service)
    ch.command("CREATE TABLE default.checked (n UInt64, CONSTRAINT small CHECK n < 100) ENGINE = MergeTree ORDER BY n")
    with pytest.raises(DatabaseError, match="VIOLATED_CONSTRAINT"):
        ch.insert("checked", [[1], [2], [500]], column_names=["n"])
    status, body = curl(service, "--data-binary", "3\n4\n700\n",
                        f"{service.url}/?query=INSERT%20INTO%20default.checked%20FORMAT%20TSV")
    assert status == 500 and body.startswith("Code: 469.") and "(VIOLATED_CONSTRAINT)" in body
    assert ch.query("SELECT count() FROM checked").result_rows == [(0,)]


def test_text_inserts_and_data_never_runs_as_sql(service: WarehouseServiceProcess) -> None:
    ch = client(service)
    ch.command("CREATE TABLE default.texts (n UInt64, s String) ENGINE = MergeTree ORDER BY n")
    ch.command("CREATE TABLE default.victim (n UInt64) ENGINE = MergeTree ORDER BY n")
    url = f"{service.url}/?query=" + urllib.parse.quote("INSERT INTO default.texts FORMAT ")
    assert curl(service, "--data-binary", "1\tone\n2\ttwo\n", url + "TSV")[0] == 200
    assert curl(service, "--data-binary", '3,"three"\n', url + "CSV")[0] == 200
    assert curl(service, "--data-binary", '{"n": 4, "s": "four"}\n', url + "JSONEachRow")[0] == 200
    status, _, _ = http(service, body=b"INSERT INTO default.texts VALUES (5, 'five'); DROP TABLE default.victim")
    assert status in (200, 400, 500)  # either way the DROP is data to the Values parser, never a statement
    status, _, _ = http(service, body=b"INSERT INTO default.texts FORMAT TSV\n6\tsix\n; DROP TABLE default.victim")
    assert ch.query("EXISTS TABLE default.victim").result_rows == [(1,)]
    got = ch.query("SELECT n, s FROM texts WHERE n <= 4 ORDER BY n").result_rows
    assert got == [(1, "one"), (2, "two"), (3, "three"), (4, "four")]


@pytest.mark.parametrize("sql", [
    "INSERT INTO default.ro_target VALUES (1)",
    "/* just a comment */ DROP TABLE default.ro_target -- and another",
    "CREATE TABLE default.ro_new (n UInt8) ENGINE = Memory",
    "ALTER TABLE default.ro_target DELETE WHERE 1",
    "TRUNCATE TABLE default.ro_target",
    "INSERT INTO default.ro_target SELECT 2 SETTINGS readonly = 0",
    "SELECT 1; DROP TABLE default.ro_target",
    "SELECT count() FROM default.ro_target; INSERT INTO default.ro_target VALUES (3)",
])
def test_readonly_refuses_writes(service: WarehouseServiceProcess, sql: str) -> None:
    ch = client(service)
    ch.command("CREATE TABLE IF NOT EXISTS default.ro_target (n UInt64) ENGINE = MergeTree ORDER BY n")
    before = ch.query("SELECT count() FROM ro_target").result_rows
    attempts = [
        http(service, body=sql.encode(), headers={"X-ClickHouse-User": "analyst", "X-ClickHouse-Key": ANALYST_KEY}),
        http(service, body=sql.encode(), readonly="1"),
        http(service, body=sql.encode(), readonly="2"),
        http(service, sql),  # GET is readonly
    ]
    for status, headers, body in attempts:
        assert status in (400, 403), body
        assert headers["X-ClickHouse-Exception-Code"] in ("164", "62"), body
    assert ch.query("SELECT count() FROM ro_target").result_rows == before
    assert ch.query("EXISTS TABLE default.ro_target").result_rows == [(1,)]
    assert ch.query("EXISTS TABLE default.ro_new").result_rows == [(0,)]


def test_readonly_user_reads_and_cannot_lower_readonly(service: WarehouseServiceProcess) -> None:
    analyst = client(service, username="analyst", password="analyst-secret")
    assert analyst.query("SELECT {n:UInt8} + 1", parameters={"n": 1}).result_rows == [(2,)]
    assert analyst.query("SELECT count() FROM system.tables WHERE database = 'usage'").result_rows[0][0] > 0
    status, headers, _ = http(service, "SELECT 1", user="analyst", password="analyst-secret", readonly="0")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (403, "164")
    status, headers, _ = http(service, "SELECT 1", user="analyst", password="analyst-secret", max_threads="1")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (403, "164")  # readonly=1: no settings changes
    with pytest.raises(DatabaseError, match="READONLY"):
        analyst.command("CREATE TABLE default.analyst_table (n UInt8) ENGINE = Memory")


def test_insert_runs_while_a_long_query_runs(service: WarehouseServiceProcess) -> None:
    ch = client(service)
    ch.command("CREATE TABLE default.during (n UInt64) ENGINE = MergeTree ORDER BY n")
    long_query: dict[str, object] = {}

    def analyst_query() -> None:  # ~2.4 s of sleeping in the engine, one 0.4 s block at a time
        slow = client(service, send_receive_timeout=60)  # SETTINGS in the query: not for the readonly=1 analyst
        long_query["rows"] = slow.query("SELECT sum(sleepEachRow(0.4)) + count() FROM numbers(6) "
                                        "SETTINGS max_block_size = 1").result_rows

    thread = threading.Thread(target=analyst_query)
    thread.start()
    try:
        for batch in range(3):
            ch.insert("during", [[batch * 10 + i] for i in range(10)], column_names=["n"])
        inserted_while_running = thread.is_alive()
        visible = ch.query("SELECT count(), sum(n) FROM during").result_rows
    finally:
        thread.join()
    assert inserted_while_running, "the inserts waited for the analyst's query"
    assert visible == [(30, sum(range(30)))]
    assert long_query["rows"] == [(6,)]


def test_one_process_per_directory_and_clean_restart(tmp_path: Path) -> None:
    settings = Settings.from_env(data_dir=tmp_path)
    first = WarehouseServiceProcess(settings, log_path=tmp_path / "first.log")
    first.start()
    try:
        ch = clickhouse_connect.get_client(host="127.0.0.1", port=first.port)
        ch.command("CREATE TABLE default.kept (n UInt64) ENGINE = MergeTree ORDER BY n")
        ch.insert("kept", [[1], [2], [3]], column_names=["n"])
        second = WarehouseServiceProcess(settings, log_path=tmp_path / "second.log")
        with pytest.raises(RuntimeError, match="in use by another process"):
            second.start()
        assert second.returncode == 3
    finally:
        assert first.stop() == 0  # SIGTERM: clean exit
    with WarehouseServiceProcess(settings, log_path=tmp_path / "third.log") as third:
        ch = clickhouse_connect.get_client(host="127.0.0.1", port=third.port)
        assert ch.query("SELECT count(), sum(n) FROM kept").result_rows == [(3, 6)]
