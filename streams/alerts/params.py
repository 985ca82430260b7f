"""Binding a list of ids: one JSON text parameter, expanded in SQL.

chdb's parameter binding does not quote the strings of a Python list (`[a,b]` is not a valid Array(String)),
while clickhouse-connect does; one JSON text parameter reads the same on both backends.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson


def id_list(name: str = "ids") -> str:
    """SQL for `column IN <this>`, bound by `{name: json_ids(...)}`."""
    return f"(SELECT arrayJoin(JSONExtract({{{name}:String}}, 'Array(String)')))"


def json_ids(ids: Iterable[str]) -> str:
    return orjson.dumps(sorted(set(ids))).decode()
