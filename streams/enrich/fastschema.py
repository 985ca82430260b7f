"""JSON Schema validation with jsonschema's messages at fastjsonschema's speed.

Snowplow validates every event against the protocol and its contexts; jsonschema's interpreter spent ~80 % of
the normalize step. A schema is compiled once with fastjsonschema; a document it accepts is valid (nothing else
runs), and only a rejected one is validated again by jsonschema to produce the detailed, ordered messages the
bad rows carry. `format` stays an annotation, as it is for a jsonschema validator without a FormatChecker.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import fastjsonschema
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator


class CompiledValidator:
    def __init__(self, validator: Validator, draft: int) -> None:
        self.slow = validator
        schema = {k: v for k, v in validator.schema.items() if k != "$schema"} | {
            "$schema": f"http://json-schema.org/draft-{draft:02d}/schema#"}
        self._fast = fastjsonschema.compile(schema, use_formats=False)

    @property
    def schema(self) -> Any:
        return self.slow.schema

    def iter_errors(self, instance: Any) -> Iterator[ValidationError]:
        try:
            self._fast(instance)
        except fastjsonschema.JsonSchemaException:
            return self.slow.iter_errors(instance)
        return iter(())

    def is_valid(self, instance: Any) -> bool:
        try:
            self._fast(instance)
        except fastjsonschema.JsonSchemaException:
            return False
        return True
