"""dbt-like tests in SQL: unique grain, not_null, accepted_values, relationships, row_count, golden records.

Table and column names come from the declarations (validated identifiers, checked against system.columns); values
travel as bound parameters. ReplacingMergeTree / AggregatingMergeTree tables are read with FINAL, as readers see
them: a copy that merges would collapse is not a duplicate, a row with the same grain and another sort key is.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from streams.checks.spec import Check, Result, outcome
from streams.warehouse import Warehouse


class Catalog:
    """Engines and column types of the warehouse's tables (one lookup per run)."""

    def __init__(self, warehouse: Warehouse) -> None:
        rows = warehouse.query("SELECT name, engine FROM system.tables WHERE database = currentDatabase()").rows
        self.engines = dict(rows)
        self.types: dict[tuple[str, str], str] = {
            (t, c): ty for t, c, ty in warehouse.query(
                "SELECT table, name, type FROM system.columns WHERE database = currentDatabase()").rows}

    def source(self, table: str) -> str:
        """`table` or `table FINAL`, as readers must query it; an unknown table is an error."""
        engine = self.engines.get(table)
        if engine is None:
            raise LookupError(f"no table or view {table}")
        final = engine.startswith(("Replacing", "Aggregating", "Collapsing", "VersionedCollapsing"))
        return f"{table} FINAL" if final else table

    def column(self, table: str, column: str) -> str:
        if (table, column) not in self.types:
            raise LookupError(f"no column {column} in {table}")
        return column

    def empty_test(self, table: str, column: str) -> str:
        """SQL true for a NULL or empty key: '' for text, 0 for numeric ids, [] for arrays."""
        kind = self.types[(table, self.column(table, column))]
        bare = kind.removeprefix("Nullable(").removeprefix("LowCardinality(").removeprefix("Nullable(")
        if bare.startswith(("String", "FixedString", "Array", "Map")):
            return f"isNull({column}) OR empty({column})"
        if bare.startswith(("UInt", "Int")):
            return f"isNull({column}) OR {column} = 0"
        return f"isNull({column})"


def _count(warehouse: Warehouse, sql: str, params: dict | None = None) -> int:
    return int(warehouse.query(sql, params).scalar() or 0)


def unique(warehouse: Warehouse, catalog: Catalog, check: Check) -> Result:
    columns = ", ".join(catalog.column(check.table, c) for c in check.params["columns"])
    duplicated = _count(warehouse, f"SELECT count() FROM (SELECT {columns} FROM {catalog.source(check.table)} "
                                   f"GROUP BY {columns} HAVING count() > 1)")
    return outcome(check, duplicated > 0, duplicated, "0 duplicated grain keys",
                   f"{duplicated} values of ({columns}) occur more than once")


def not_null(warehouse: Warehouse, catalog: Catalog, check: Check) -> Result:
    column = check.params["column"]
    where = f" AND ({check.params['where']})" if check.params.get("where") else ""
    bad = _count(warehouse, f"SELECT count() FROM {catalog.source(check.table)} "
                            f"WHERE ({catalog.empty_test(check.table, column)}){where}")
    return outcome(check, bad > 0, bad, "0 NULL or empty", f"{bad} rows with {column} NULL or empty")


def accepted_values(warehouse: Warehouse, catalog: Catalog, check: Check) -> Result:
    column = catalog.column(check.table, check.params["column"])
    values = [str(v) for v in check.params["values"]]
    result = warehouse.query(
        f"SELECT count(), groupUniqArray(10)(toString({column})) FROM {catalog.source(check.table)} "
        f"WHERE toString({column}) NOT IN JSONExtract({{values:String}}, 'Array(String)')",
        {"values": orjson.dumps(values).decode()}).rows[0]
    bad = int(result[0])
    return outcome(check, bad > 0, bad, f"in {values}", f"{bad} rows with other values, e.g. {result[1]}")


# A path and its dotted or indexed ancestors ('topology.nodes[0].node_cpus' -> ..., 'topology.nodes', 'topology'):
# the dictionary defines object metrics once, for every leaf under them.
_ANCESTORS = ("arrayPushFront(arrayMap(i -> substring(child_key, 1, i - 1), "
              "arrayFilter(i -> substring(child_key, i, 1) IN ('.', '['), range(1, length(child_key) + 1))), "
              "child_key)")


def relationships(warehouse: Warehouse, catalog: Catalog, check: Check) -> Result:
    """Every child value (where the declaration's condition holds) exists in the parent. `match: ancestor` also
    accepts a parent value that is a dotted ancestor of the child's (object metrics of the dictionary)."""
    column = catalog.column(check.table, check.params["column"])
    parent, field = check.params["to"], catalog.column(check.params["to"], check.params["field"])
    where = f"WHERE {check.params['where']}" if check.params.get("where") else ""
    children = f"SELECT {column} AS child_key FROM {catalog.source(check.table)} {where}"
    parents = f"SELECT DISTINCT {field} FROM {catalog.source(parent)}"
    if check.params.get("match") == "ancestor":
        sql = f"""SELECT count() FROM ({children}) WHERE child_key NOT IN (
                      SELECT child_key FROM (SELECT DISTINCT child_key FROM ({children}))
                      ARRAY JOIN {_ANCESTORS} AS candidate WHERE candidate IN ({parents}))"""
    else:
        sql = f"""SELECT count() FROM ({children}) AS c
                  LEFT ANTI JOIN ({parents}) AS p ON c.child_key = p.{field}"""
    orphans = _count(warehouse, sql)
    share = check.params.get("max_share")
    if share is None:
        return outcome(check, orphans > 0, orphans, f"every {column} in {parent}.{field}",
                       f"{orphans} rows whose {column} is not in {parent}.{field}")
    rows = _count(warehouse, f"SELECT count() FROM ({children})")  # a declared tolerance: a share of the rows
    return outcome(check, orphans > rows * share, orphans, f"<= {share:.0%} of {rows} rows not in {parent}.{field}",
                   f"{orphans} of {rows} rows whose {column} is not in {parent}.{field}")


def row_count(warehouse: Warehouse, catalog: Catalog, check: Check) -> Result:
    rows = _count(warehouse, f"SELECT count() FROM {catalog.source(check.table)}")
    low, high = check.params.get("min", 0), check.params.get("max", math.inf)
    return outcome(check, not low <= rows <= high, rows, f"{low}..{high}", f"{rows} rows, expected {low}..{high}")


def _same(expected: Any, actual: str | None) -> bool:
    if expected is None or actual is None:
        return expected is None and actual is None
    if isinstance(expected, int | float):
        try:
            return float(actual) == float(expected)
        except ValueError:
            return False
    return str(expected) == actual


def golden(warehouse: Warehouse, catalog: Catalog, check: Check) -> Result:
    """The declared row exists once and holds the recorded values (compared as text, numbers as numbers)."""
    key, expect = check.params["key"], check.params["expect"]
    where = " AND ".join(f"toString({catalog.column(check.table, k)}) = {{k{i}:String}}" for i, k in enumerate(key))
    columns = ", ".join(f"toString({catalog.column(check.table, c)})" for c in expect)
    rows = warehouse.query(f"SELECT {columns} FROM {catalog.source(check.table)} WHERE {where}",
                           {f"k{i}": str(v) for i, v in enumerate(key.values())}).rows
    if len(rows) != 1:
        return outcome(check, True, len(rows), "exactly 1 row", f"{len(rows)} rows for key {key}")
    differ = [f"{c}: expected {e!r}, found {a!r}" for (c, e), a in zip(expect.items(), rows[0], strict=True)
              if not _same(e, a)]
    return outcome(check, bool(differ), len(differ), "0 changed values", "; ".join(differ))


MODEL_CHECKS = {"unique": unique, "not_null": not_null, "accepted_values": accepted_values,
                "relationships": relationships, "row_count": row_count, "golden": golden}
