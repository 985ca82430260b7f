"""Check declarations: every dim_/fct_/mart_/rpt_ model has its grain declared, files are validated, selectors."""

from __future__ import annotations

import pytest

from streams.checks.spec import Check, SpecError, load_checks
from streams.warehouse import migrate
from tests.support.fresh import fresh_warehouse


def test_every_dimensional_model_has_a_unique_grain_check(tmp_path):
    warehouse = fresh_warehouse(migrated=False)
    try:
        migrate(warehouse)
        models = {name for (name,) in warehouse.query(
            "SELECT name FROM system.tables WHERE database = 'usage' AND match(name, '^(dim|fct|mart|rpt)_') "
            "AND engine != 'MaterializedView'").rows}
        columns = set(warehouse.query("SELECT table, name FROM system.columns WHERE database = 'usage'").rows)
    finally:
        warehouse.close()
    unique = [c for c in load_checks() if c.kind == "unique"]
    assert len(models) > 30
    assert models - {c.table for c in unique} == set()
    assert [(c.table, col) for c in unique for col in c.params["columns"] if (c.table, col) not in columns] == []


def test_invalid_declarations_list_every_problem(tmp_path):
    (tmp_path / "a.yml").write_text("version: 1\nmodels:\n  - name: fct_x\n    grain: []\n")
    (tmp_path / "b.yml").write_text("version: 1\nsources:\n  - name: s\n    table: 'x; DROP TABLE y'\n"
                                    "    time_column: t\n")
    with pytest.raises(SpecError) as error:
        load_checks(tmp_path)
    assert "a.yml: models/0/grain" in str(error.value) and "b.yml: sources/0/table" in str(error.value)


def test_selectors_pick_by_name_table_kind_and_source():
    checks = load_checks()
    assert {c.kind for c in checks if c.selected_by(["kind:freshness"])} == {"freshness"}
    assert {c.table for c in checks if c.selected_by(["fct_seat_link"])} == {"fct_seat_link"}
    assert {c.name for c in checks if c.selected_by(["source:seat_link"])} == {
        "freshness_seat_link", "completeness_seat_link", "dead_letter_rate_seat_link"}
    assert all(c.name.startswith("golden_") for c in checks if c.selected_by(["golden_*"]))
    assert Check("x", "unique", "t").selected_by([])
