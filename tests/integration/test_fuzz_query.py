"""`denomas-usage query` is read-only unless --write is given, whatever the SQL text: comments that would swallow
appended text, several statements, SETTINGS clauses that try to lower readonly. The CLI as a subprocess on the
session's warehouse service, and generated wrappings (hypothesis, derandomized) of write statements through the
same client call the CLI makes (readonly travels as a setting of the request)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.warehouse import ServerWarehouse

pytestmark = pytest.mark.integration

WRITES = [
    "DROP TABLE {t}",
    "INSERT INTO {t} VALUES (99)",
    "TRUNCATE TABLE {t}",
    "ALTER TABLE {t} DELETE WHERE 1",
    "CREATE TABLE {t}_new (n UInt8) ENGINE = Memory",
    "RENAME TABLE {t} TO {t}_moved",
]
HOSTILE_SQL = [  # through the CLI (a process each: a few); the generated test below tries many more
    "DROP TABLE {t} --",
    "/* SELECT 1 */ DROP TABLE {t} /*",
    "SELECT 1; DROP TABLE {t}",
    "INSERT INTO {t} SELECT 5 SETTINGS readonly = 0",
    "SET readonly = 0; DROP TABLE {t}",
]


@pytest.fixture
def target(warehouse: ServerWarehouse) -> tuple[ServerWarehouse, str]:
    warehouse.execute("CREATE TABLE fuzz_target (n UInt64) ENGINE = MergeTree ORDER BY n")
    warehouse.execute("INSERT INTO fuzz_target VALUES (1), (2), (3)")
    return warehouse, f"{warehouse.database}.fuzz_target"


def _cli(warehouse: ServerWarehouse, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"DENOMAS_WAREHOUSE_DATABASE": warehouse.database}
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def _untouched(warehouse: ServerWarehouse) -> bool:
    return warehouse.query("SELECT groupArray(n) FROM (SELECT n FROM fuzz_target ORDER BY n)").rows == [([1, 2, 3],)]


@pytest.mark.parametrize("template", HOSTILE_SQL)
def test_query_cli_never_writes_without_write(target: tuple[ServerWarehouse, str], template: str):
    warehouse, table = target
    done = _cli(warehouse, "query", template.format(t=table))
    assert done.returncode != 0, done.stdout
    assert _untouched(warehouse)
    assert warehouse.query("EXISTS TABLE fuzz_target").rows == [(1,)]


def test_query_cli_writes_with_write(target: tuple[ServerWarehouse, str]):
    warehouse, table = target
    done = _cli(warehouse, "query", "--write", f"INSERT INTO {table} VALUES (4)")
    assert done.returncode == 0, done.stderr
    assert warehouse.query("SELECT count() FROM fuzz_target").rows == [(4,)]


PREFIXES = st.sampled_from(["", "/* x */ ", "-- c\n", "SELECT 1; ", "WITH 1 AS x ", "(", "\n\t", "EXPLAIN ",
                           "SET readonly = 0; "])
SUFFIXES = st.sampled_from(["", " --", " /*", " #", ";", "; SELECT 1", " SETTINGS readonly = 0",
                            " SETTINGS readonly = 0 --", ")", "\n-- SETTINGS readonly = 1", " FORMAT Null"])


def test_generated_wrappings_of_writes_never_write(target: tuple[ServerWarehouse, str]):
    warehouse, table = target
    tried: list[str] = []

    @settings(max_examples=40, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), phases=("generate",))
    @given(PREFIXES, st.sampled_from(WRITES), SUFFIXES)
    def attempt(prefix: str, write: str, suffix: str) -> None:
        sql = prefix + write.format(t=table) + suffix
        tried.append(sql)
        with contextlib.suppress(Exception):  # refused, or not SQL at all: both fine, the table is what matters
            warehouse.query(sql, settings={"readonly": 1})  # what `query` does without --write
        assert _untouched(warehouse), sql
        assert warehouse.query("EXISTS TABLE fuzz_target").rows == [(1,)], sql

    attempt()
    assert len(set(tried)) > 20
