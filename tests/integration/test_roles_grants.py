"""The server's grants (the server-only migrations, clickhouse/121_roles.sql), read statically: no ClickHouse server
runs here. They must be what the data classes give (the same rule as the warehouse service) and give the same
allow/deny table as the service for the same queries (tests/integration/test_roles.py, which asks the service)."""

from __future__ import annotations

import re

import pytest

from streams.catalog import classes_of, migration_comments
from streams.warehouse import ServerWarehouse, load_migrations
from streams.warehouse_service.access import ROLES, role_grants
from tests.support.roles import ALL_COLUMNS, server_grants

pytestmark = pytest.mark.integration


def test_the_migration_grants_what_the_data_classes_give(warehouse: ServerWarehouse) -> None:
    grants = server_grants()
    columns: dict[str, list[str]] = {}
    for table, name in warehouse.query("SELECT table, name FROM system.columns WHERE database = currentDatabase() "
                                       "ORDER BY table, position").rows:
        columns.setdefault(table, []).append(name)
    comments = migration_comments()
    for name, role in ROLES.items():
        expected = role_grants(role, comments, columns)
        got = {obj: frozenset(columns[obj]) if cols is ALL_COLUMNS else cols
               for obj, cols in grants[name].objects.items()}
        assert got == expected, name
        assert not grants[name].global_privileges, name  # no table functions
    assert grants["admin"].objects == {"*": None} and "CREATE TEMPORARY TABLE" in grants["admin"].global_privileges
    assert grants["writer"].objects == {"*": None}
    assert grants["denomas_view_definer"].objects == {"*": None}


def test_every_object_has_one_class_and_every_view_runs_as_its_definer(warehouse: ServerWarehouse) -> None:
    stored = dict(warehouse.query("SELECT name, comment FROM system.tables WHERE database = currentDatabase()").rows)
    assert migration_comments() == stored  # the COMMENT, read from the SQL files and from the engine, agrees
    assert all(classes_of(comment) for comment in stored.values()), [n for n, c in stored.items() if not classes_of(c)]
    views = {name for (name,) in warehouse.query("SELECT name FROM system.tables WHERE database = currentDatabase() "
                                                 "AND engine = 'View'").rows}
    sql = "\n".join(m.sql for m in load_migrations() if m.server_only)
    definer = set(re.findall(r"ALTER TABLE (\w+) MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;", sql))
    assert definer == views


def test_the_runner_skips_server_only_migrations_on_the_embedded_engine(warehouse: ServerWarehouse) -> None:
    applied = {name for (name,) in warehouse.query("SELECT name FROM schema_migrations").rows}
    server_only = {m.name for m in load_migrations() if m.server_only}
    assert "121_roles" in server_only and not server_only & applied
    assert "001_schema_migrations" in applied
