"""Shape limits every boundary checks before it re-encodes what another party sent.

orjson reads JSON nested up to 1024 levels but writes at most 254 ("Recursion limit reached"), so a record that
parses may still fail when it is written again: the collector, the normalizer and the dead-letter path check the
depth first and refuse deeper documents with a reason, instead of crashing on them.
"""

from __future__ import annotations

from typing import Any

MAX_JSON_DEPTH = 64  # our own payloads nest at most ~8 levels; orjson writes up to 254


def json_depth_exceeds(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether `value` (parsed JSON) nests containers more than `limit` levels deep (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def too_deep_reason(limit: int = MAX_JSON_DEPTH) -> str:
    return f"JSON nested deeper than {limit} levels"
