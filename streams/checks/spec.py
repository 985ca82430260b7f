"""Check declarations: clickhouse/checks/*.yml, next to the models they test (dbt's schema.yml).

A file declares models (grain, row counts, column tests), golden records, sources (freshness, completeness, dead-letter
rate) and xMAU change checks. Loading validates every file against schemas/checks.schema.json and lists every problem.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import yaml

from streams.config import MIGRATIONS_DIR, SCHEMAS_DIR

CHECKS_DIR = MIGRATIONS_DIR / "checks"
SCHEMA_FILE = SCHEMAS_DIR / "checks.schema.json"


@dataclass(frozen=True)
class Check:
    name: str
    kind: str
    table: str
    severity: str = "error"
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def selected_by(self, selectors: Sequence[str]) -> bool:
        """A selector is a check name (glob), a table, a kind, or `kind:<kind>` / `source:<name>`."""
        if not selectors:
            return True
        keys = {self.name, self.table, self.kind, f"kind:{self.kind}", f"source:{self.params.get('source', '')}"}
        return any(s in keys or fnmatch.fnmatchcase(self.name, s) for s in selectors)


class SpecError(ValueError):
    """A check file that does not follow schemas/checks.schema.json (every problem listed)."""


def _severity(options: dict, default: str = "error") -> str:
    return str(options.get("severity", default))


def _column_checks(model: str, column: str, tests: Iterable[Any]) -> list[Check]:
    checks = []
    for test in tests:
        kind, options = (test, {}) if isinstance(test, str) else next(iter(test.items()))
        name = f"{kind}_{model}_{column}"
        if kind == "relationships":
            name = f"relationships_{model}_{column}__{options['to']}_{options['field']}"
        checks.append(Check(name, kind, model, _severity(options), {"column": column} | dict(options)))
    return checks


def checks_of(document: dict) -> list[Check]:
    """The checks one (validated) file declares."""
    checks: list[Check] = []
    for model in document.get("models", []):
        name = model["name"]
        checks.append(Check(f"unique_{name}__{'__'.join(model['grain'])}", "unique", name, "error",
                            {"columns": list(model["grain"])}))
        if "row_count" in model:
            checks.append(Check(f"row_count_{name}", "row_count", name, _severity(model["row_count"]),
                                dict(model["row_count"])))
        for column in model.get("columns", []):
            checks += _column_checks(name, column["name"], column["tests"])
    for golden in document.get("golden", []):
        checks.append(Check(golden["name"], "golden", golden["table"], _severity(golden),
                            {"key": golden["key"], "expect": golden["expect"]}))
    for source in document.get("sources", []):
        base = {"source": source["name"], "time_column": source["time_column"]}
        if "freshness" in source:
            checks.append(Check(f"freshness_{source['name']}", "freshness", source["table"], "error",
                                base | source["freshness"]))
        if "completeness" in source:
            checks.append(Check(f"completeness_{source['name']}", "completeness", source["completeness"]["topic"],
                                _severity(source["completeness"]), base | {"landed_table": source["table"]}))
        if "dead_letters" in source:
            checks.append(Check(f"dead_letter_rate_{source['name']}", "dead_letter_rate", source["table"],
                                _severity(source["dead_letters"]), base | source["dead_letters"]))
    for xmau in document.get("xmau", []):
        checks.append(Check(xmau["name"], "xmau_change", xmau["table"], _severity(xmau, "warn"),
                            {k: v for k, v in xmau.items() if k in ("max_change", "by", "xmau_types", "min_users")}))
    return checks


def load_checks(directory: Path = CHECKS_DIR) -> list[Check]:
    """Every check declared in the directory's *.yml files; SpecError lists every invalid place."""
    validator = jsonschema.Draft202012Validator(orjson.loads(SCHEMA_FILE.read_bytes()))
    problems: list[str] = []
    checks: list[Check] = []
    for path in sorted(directory.glob("*.yml")):
        document = yaml.safe_load(path.read_text()) or {}
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
        problems += [f"{path.name}: {'/'.join(map(str, e.absolute_path)) or '<top>'}: {e.message}" for e in errors]
        if not errors:
            checks += checks_of(document)
    names = [c.name for c in checks]
    problems += [f"check {n} declared more than once" for n in sorted({n for n in names if names.count(n) > 1})]
    if problems:
        raise SpecError("invalid check declarations:\n  " + "\n  ".join(problems))
    return checks


PASS, WARN, FAIL, ERROR = "pass", "warn", "fail", "error"


@dataclass(frozen=True)
class Result:
    check: Check
    status: str  # pass, warn, fail, or error (the check could not run)
    observed: float | None
    threshold: str
    message: str = ""
    scope: str = ""

    @property
    def failed(self) -> bool:
        """Fails the run: an error-level check that failed or could not run."""
        return self.check.severity == "error" and self.status in (FAIL, ERROR)


def outcome(check: Check, bad: bool, observed: float | None, threshold: str, message: str = "",
            scope: str = "") -> Result:
    """A pass, or a failure at the check's severity (warn-level checks report `warn`)."""
    status = PASS if not bad else (FAIL if check.severity == "error" else WARN)
    return Result(check, status, observed, threshold, message if bad else "", scope)
