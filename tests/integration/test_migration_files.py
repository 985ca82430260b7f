"""The migration files: each creates the one object its name says, once, in its final form (the history below 150
was folded on 2026-12-06, see streams/warehouse/migrations.py), and the folded history builds the warehouse the
old one did.

tests/support/data/schema_before_fold.json is the shape (system.tables and system.columns, tests/support/schema.py) of a
warehouse migrated by the 47 files before the fold, taken with the same code just before they were replaced."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from streams.config import MIGRATIONS_DIR
from streams.warehouse import Migration, load_migrations, migrate
from tests.support.fresh import fresh_warehouse
from tests.support.schema import schema_differences, warehouse_schema

pytestmark = pytest.mark.integration

FOLDED_BELOW = 150  # 150-169: report tables of issue 14, written after the fold
BEFORE_FOLD = Path(__file__).parents[1] / "support" / "data" / "schema_before_fold.json"
# What the fold adds on purpose: each shared rule as one view that the views repeating it now read.
SHARED_RULES = {"prep_license_match", "prep_metric_xmau_type"}

_NAMED = re.compile(r"^(?:CREATE\s+(?:OR\s+REPLACE\s+)?(?:TABLE|VIEW|MATERIALIZED\s+VIEW|DICTIONARY|FUNCTION)"
                    r"(?:\s+IF\s+NOT\s+EXISTS)?|ALTER\s+TABLE|DROP\s+(?:TABLE|VIEW|DICTIONARY)(?:\s+IF\s+EXISTS)?"
                    r"|INSERT\s+INTO|TRUNCATE\s+TABLE)\s+`?(\w+)", re.I)
_SERVER_ONLY = re.compile(r"^(?:CREATE\s+(?:ROLE|USER)|GRANT\s|ALTER\s+TABLE\s+\w+\s+MODIFY\s+SQL\s+SECURITY\s)", re.I)


def _folded() -> list[Migration]:
    return [m for m in load_migrations() if m.version < FOLDED_BELOW]


def _object_of(migration: Migration) -> str:
    return migration.name.split("_", 1)[1]


def test_each_file_creates_the_one_object_its_name_says() -> None:
    for migration in load_migrations():
        statements = migration.statements()
        if migration.server_only:  # roles and grants on a server: files named for what they hold
            assert _object_of(migration).split("_")[0] == "roles", migration.name
            assert all(_SERVER_ONLY.match(s) for s in statements), migration.name
            continue
        named = [(_NAMED.match(s) or re.match(r"(.{0,60})", s)).group(1) for s in statements]
        assert named == [_object_of(migration)], migration.name


def test_each_object_is_created_once_in_its_final_form() -> None:
    statements = [s for m in load_migrations() if not m.server_only for s in m.statements()]
    assert not [s[:80] for s in statements if re.match(r"(?:DROP|CREATE\s+OR\s+REPLACE|INSERT|ALTER\s+TABLE\s+\w+\s+"
                                                          r"(?:ADD|DROP|MODIFY\s+(?:COLUMN|QUERY)))\b", s, re.I)]
    assert all(re.match(r"CREATE\s+(?:TABLE|VIEW)\s+IF\s+NOT\s+EXISTS\s", s) for m in load_migrations()
               if not m.server_only and m.name != "001_schema_migrations" for s in m.statements())


def test_the_folded_history_builds_the_warehouse_the_old_one_did(tmp_path: Path) -> None:
    for migration in _folded():
        shutil.copy(MIGRATIONS_DIR / f"{migration.name}.sql", tmp_path)
    warehouse = fresh_warehouse(migrated=False)
    migrate(warehouse, tmp_path)
    after = warehouse_schema(warehouse)
    before = json.loads(BEFORE_FOLD.read_text())
    assert schema_differences(before, after) == [f"only after: {name}" for name in sorted(SHARED_RULES)]
    for name in SHARED_RULES:  # documented, and declaring the types their queries return (no silent cast)
        select = warehouse.query("SELECT as_select FROM system.tables WHERE database = currentDatabase() "
                                 "AND name = {t:String}", {"t": name}).scalar()
        returned = [tuple(row[:2]) for row in warehouse.query(f"DESCRIBE ({select})").rows]
        assert returned == [(c[0], c[2]) for c in after[name]["columns"]], name
        assert after[name]["comment"] and all(c[5] for c in after[name]["columns"]), name
