"""The shape of a migrated warehouse, to compare two migration histories (tests/integration/test_migration_files.py).

Tables are compared by their whole `create_table_query` (columns, types, defaults, codecs, indexes, engine, keys,
TTL, comment); views by their comment and columns (name, position, type, comment), not by their query text: the
folded history reads shared views where the old one repeated a rule."""

from __future__ import annotations

import re
from typing import Any

from streams.warehouse import Warehouse

Schema = dict[str, dict[str, Any]]


def warehouse_schema(warehouse: Warehouse) -> Schema:
    objects: Schema = {}
    for name, engine, sorting_key, partition_key, comment, query in warehouse.query(
            "SELECT name, engine, sorting_key, partition_key, comment, create_table_query FROM system.tables "
            "WHERE database = currentDatabase() ORDER BY name").rows:
        entry: dict[str, Any] = {"engine": engine, "sorting_key": sorting_key, "partition_key": partition_key,
                                 "comment": comment, "columns": []}
        if engine != "View":
            entry["create"] = re.sub(r"CREATE TABLE \w+\.", "CREATE TABLE ", query)
        objects[name] = entry
    for table, name, position, ch_type, default_kind, default, comment, codec in warehouse.query(
            "SELECT table, name, position, type, default_kind, default_expression, comment, compression_codec "
            "FROM system.columns WHERE database = currentDatabase() ORDER BY table, position").rows:
        objects[table]["columns"].append([name, position, ch_type, default_kind, default, comment, codec])
    return objects


def schema_differences(before: Schema, after: Schema) -> list[str]:
    """What differs, object by object, in words (empty: the same warehouse)."""
    found = [f"only before: {n}" for n in sorted(before.keys() - after.keys())]
    found += [f"only after: {n}" for n in sorted(after.keys() - before.keys())]
    for name in sorted(before.keys() & after.keys()):
        for key in sorted(before[name].keys() | after[name].keys()):
            if before[name].get(key) != after[name].get(key):
                found.append(f"{name}.{key}: {before[name].get(key)!r} != {after[name].get(key)!r}")
    return found
