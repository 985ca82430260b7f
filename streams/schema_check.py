"""Configuration files checked against the JSON Schemas in ``schemas/`` (``*.schema.json``), with messages a person
can act on: each problem names the field (a dotted path) and says what is wrong in the project's words.

A schema node may carry ``x-message`` (used for any failure at that node; ``{got}`` is the value found) and
``x-required-message`` (for its missing required fields). Problems come in the order of the document's fields.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jsonschema

from streams.config import SCHEMAS_DIR

_TYPE_WORDS = {"object": "a mapping", "array": "a list", "string": "text", "number": "a number",
               "integer": "a whole number", "boolean": "true or false", "null": "empty"}


@dataclass(frozen=True)
class Problem:
    path: tuple[str | int, ...]  # where in the document (keys and list indexes)
    field: str  # dotted field name inside its section, e.g. signal.source
    message: str


@lru_cache(maxsize=16)
def validator(name: str) -> jsonschema.protocols.Validator:
    """The validator of schemas/<name>.schema.json (the schema itself checked once)."""
    schema = json.loads((SCHEMAS_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _bounds(schema: dict[str, Any], value: Any, keyword: str) -> str:
    if keyword == "exclusiveMinimum":
        return f"must be above {schema['exclusiveMinimum']:g}"
    low, high = schema.get("minimum", schema.get("exclusiveMinimum")), schema.get("maximum")
    if low is not None and high is not None:
        return f"must be between {low:g} and {high:g}, got {value!r}"
    return f"must be >= {low:g}, got {value!r}" if low is not None else f"must be <= {high:g}, got {value!r}"


def _message(error: jsonschema.ValidationError) -> str:
    schema, value = error.schema if isinstance(error.schema, dict) else {}, error.instance
    if "x-message" in schema and error.validator not in ("required", "additionalProperties"):
        return str(schema["x-message"]).replace("{got}", repr(value))
    if error.validator == "enum":
        return f"must be one of {', '.join(map(str, error.validator_value))}, got {value!r}"
    if error.validator == "type":
        kinds = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        return f"must be {' or '.join(_TYPE_WORDS.get(k, k) for k in kinds)}, got {value!r}"
    if error.validator in ("minimum", "maximum", "exclusiveMinimum"):
        return _bounds(schema, value, str(error.validator))
    return error.message


def _problems_of(error: jsonschema.ValidationError) -> list[Problem]:
    path = tuple(error.absolute_path)
    if error.validator == "required":
        missing = [name for name in error.validator_value if name not in error.instance]
        text = error.schema.get("x-required-message", "is required")
        return [Problem(path + (name,), "", text) for name in missing]
    if error.validator == "additionalProperties":
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return [Problem(path + (name,), "", f"unknown field (allowed: {allowed})") for name in extra]
    return [Problem(path, "", _message(error))]


def _leaves(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    """allOf/if-then failures stand for the errors inside them; anyOf/oneOf without x-message: the best match."""
    if error.validator in ("allOf", "then") or (error.validator in ("anyOf", "oneOf")
                                                and "x-message" not in error.schema and error.context):
        if error.validator in ("anyOf", "oneOf"):
            return _leaves(jsonschema.exceptions.best_match(error.context))
        return [leaf for sub in error.context for leaf in _leaves(sub)]
    return [error]


def check(instance: Any, name: str, section_depth: int = 0) -> list[Problem]:
    """Every problem of `instance` against schemas/<name>.schema.json, in document order.

    `section_depth`: how many leading path items name the section (e.g. 2 for ``rules, 0``); the field is the
    dotted rest of the path.
    """
    # dict.fromkeys: a 'required' error comes once per missing field, each listing them all.
    found = dict.fromkeys(p for error in validator(name).iter_errors(instance) for leaf in _leaves(error)
                          for p in _problems_of(leaf))
    out = []
    for problem in found:
        field = ".".join(str(part) for part in problem.path[section_depth:])
        out.append(Problem(problem.path, field, problem.message))
    return sorted(out, key=lambda p: _order_key(instance, p.path))


def _order_key(instance: Any, path: tuple[str | int, ...]) -> tuple[int, ...]:
    """Position of each path step within its container: problems come in the order a reader meets the fields."""
    key, node = [], instance
    for step in path:
        if isinstance(step, int):
            key.append(step)
            node = node[step] if isinstance(node, list) and step < len(node) else None
        elif isinstance(node, dict):
            keys = list(node)
            key.append(keys.index(step) if step in keys else len(keys))
            node = node.get(step)
        else:
            key.append(0)
            node = None
    return tuple(key)
