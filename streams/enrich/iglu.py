"""A tiny Iglu registry: self-describing JSON Schemas from schemas/snowplow, looked up by iglu URI.

A schema file is registered when it carries a "self" block (vendor, name, format, version). Lookups
are exact (`iglu:vendor/name/format/M-R-A`), as Iglu resolves them. Iglu schemas are JSON Schema draft 4.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from jsonschema import Draft4Validator

from streams.config import SCHEMAS_DIR
from streams.enrich.fastschema import CompiledValidator

SNOWPLOW_SCHEMAS_DIR = SCHEMAS_DIR / "snowplow"
# SchemaVer parts of at most 9 digits: `model` is an int, and Python refuses int() of more than 4,300 digits (a
# ValueError where callers expect None for "not an iglu URI").
_URI = re.compile(r"^iglu:([a-zA-Z0-9_.-]+)/([a-zA-Z0-9_-]+)/([a-zA-Z0-9_-]+)/([1-9][0-9]{0,8}-[0-9]{1,9}-[0-9]{1,9})$")


@dataclass(frozen=True)
class SchemaKey:
    vendor: str
    name: str
    format: str
    version: str

    @property
    def uri(self) -> str:
        return f"iglu:{self.vendor}/{self.name}/{self.format}/{self.version}"

    @property
    def model(self) -> int:
        return int(self.version.split("-")[0])


def parse_uri(uri: object) -> SchemaKey | None:
    """SchemaKey of an iglu URI, or None when it is not one."""
    return _parse_uri_text(uri) if isinstance(uri, str) else None


@lru_cache(maxsize=4096)  # events name a handful of schemas, several times each (contexts, lookups)
def _parse_uri_text(uri: str) -> SchemaKey | None:
    match = _URI.match(uri)
    return SchemaKey(*match.groups()) if match else None


@dataclass
class Registry:
    validators: dict[SchemaKey, CompiledValidator] = field(default_factory=dict)

    @classmethod
    def from_dir(cls, directory: Path = SNOWPLOW_SCHEMAS_DIR) -> Registry:
        registry = cls()
        for path in sorted(directory.glob("*.json")):
            schema = json.loads(path.read_text())
            self_block = schema.get("self")
            if not isinstance(self_block, dict):
                continue  # a plain JSON Schema (e.g. the tracker protocol), not an Iglu one
            key = SchemaKey(self_block["vendor"], self_block["name"], self_block["format"], self_block["version"])
            Draft4Validator.check_schema({k: v for k, v in schema.items() if k not in ("$schema", "self")})
            registry.validators[key] = CompiledValidator(
                Draft4Validator({k: v for k, v in schema.items() if k != "$schema"}), draft=4)
        return registry

    def validator(self, key: SchemaKey) -> CompiledValidator | None:
        return self.validators.get(key)
