"""The metric dictionary: Denomas metric definitions loaded from ``schemas/metrics/**/*.yml``.

Each YAML file describes one Service Ping metric (its ``key_path`` is the dotted location in the payload)
in the same format as the product's own ``config/metrics`` dictionary. The warehouse uses it to attach
time_frame and xMAU flags to every flattened ``metrics_path``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from streams import schema_check
from streams.config import SCHEMAS_DIR

TIME_FRAMES = ("7d", "28d", "all", "none")
VALUE_TYPES = ("string", "number", "boolean", "object")
REQUIRED_FIELDS = ("key_path", "time_frame", "value_type", "status")
# A list time_frame ([7d, 28d, all]) yields one key path per window, suffixed as the product does.
_WINDOW_SUFFIX = {"all": "", "7d": "_weekly", "28d": "_monthly"}
_RESOLVED_CACHE_LIMIT = 200_000
_LIST_INDEX = re.compile(r"\[\d+\]")


class MetricDefinitionError(ValueError):
    """A definition file that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class MetricDefinition:
    key_path: str
    description: str
    time_frame: str
    data_source: str | None
    product_section: str | None
    product_stage: str | None
    product_group: str | None
    tier: tuple[str, ...]
    performance_indicator_type: tuple[str, ...]
    status: str
    value_type: str
    data_category: str | None
    milestone: str | None
    product_category: str | None = None

    @property
    def is_smau(self) -> bool:
        return "smau" in self.performance_indicator_type

    @property
    def is_gmau(self) -> bool:
        return "gmau" in self.performance_indicator_type

    @property
    def is_umau(self) -> bool:
        return "umau" in self.performance_indicator_type

    @property
    def is_paid_gmau(self) -> bool:
        return "paid_gmau" in self.performance_indicator_type


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _names(value: Any) -> tuple[str, ...]:
    """A YAML list as lower-case names; old files have trailing spaces and repeated entries."""
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    names = [str(item).strip().lower() for item in items if item is not None and str(item).strip()]
    return tuple(dict.fromkeys(names))


def _fail(source: Path | str, field: str, problem: str) -> MetricDefinitionError:
    return MetricDefinitionError(f"{source}: field '{field}': {problem}")


def _windows(raw: Any) -> list[str]:
    """The time frames a definition covers (already checked by the schema): one for a string, several for a list."""
    return [str(item).strip() for item in raw] if isinstance(raw, list) else [str(raw).strip()]


def parse_definitions(raw: Any, source: Path | str = "<memory>") -> list[MetricDefinition]:
    """Validate one parsed YAML document (schemas/metric_definition.schema.json) and return its definitions
    (several for a list time_frame). The first problem is raised, naming the file and the field."""
    problems = schema_check.check(raw, "metric_definition")
    if problems:
        raise _fail(source, problems[0].field or "key_path", problems[0].message)
    key_path = str(raw["key_path"]).strip()
    value_type = str(raw["value_type"]).strip().lower()
    frames = _windows(raw["time_frame"])
    data_category = _text(raw.get("data_category"))
    base = {
        "description": _text(raw.get("description")) or "",
        "data_source": _text(raw.get("data_source")),
        "product_section": _text(raw.get("product_section")),
        "product_stage": _text(raw.get("product_stage")),
        "product_group": _text(raw.get("product_group")),
        "product_category": _text(raw.get("product_category")),
        "tier": _names(raw.get("tier", raw.get("tiers"))),
        "performance_indicator_type": _names(raw.get("performance_indicator_type")),
        "status": str(raw["status"]).strip().lower(),
        "value_type": value_type,
        # Older files capitalise the category ("Optional"); the allowed values are lower case.
        "data_category": data_category.lower() if data_category else None,
        "milestone": _text(raw.get("milestone")),
    }
    if len(frames) == 1 and not isinstance(raw["time_frame"], list):
        return [MetricDefinition(key_path=key_path, time_frame=frames[0], **base)]
    return [MetricDefinition(key_path=key_path + _WINDOW_SUFFIX[frame], time_frame=frame, **base) for frame in frames]


def time_frame_from_path(metrics_path: str) -> str:
    """Best guess of a path's time frame from where it sits in the payload (for paths without a definition)."""
    path = _LIST_INDEX.sub("", metrics_path)
    root = path.split(".", 1)[0]
    leaf = path.rsplit(".", 1)[-1]
    # The container decides first: counts_weekly.aggregated_metrics.x_monthly_active_users is still 7d.
    if root == "counts_weekly":
        return "7d"
    if root in ("counts_monthly", "usage_activity_by_stage_monthly"):
        return "28d"
    if leaf.endswith("_weekly"):
        return "7d"
    if leaf.endswith("_monthly"):
        return "28d"
    if root in ("counts", "usage_activity_by_stage"):
        return "all"
    return "none"


class MetricDictionary:
    """All definitions, indexed by key_path, with the lookup rules the warehouse needs."""

    def __init__(self, definitions: Iterable[MetricDefinition]) -> None:
        self.definitions: list[MetricDefinition] = list(definitions)
        self._by_path: dict[str, MetricDefinition] = {}
        for definition in self.definitions:
            if definition.key_path in self._by_path:
                raise _fail("<dictionary>", "key_path", f"duplicate key_path {definition.key_path!r}")
            self._by_path[definition.key_path] = definition
        # Payloads repeat the same paths (every topology node, every ping); resolve each only once.
        self._resolved: dict[str, MetricDefinition | None] = {}
        self._attributes: dict[str, tuple[Any, ...]] = {}
        # Each distinct attribute tuple gets a small id, so a ping's metrics carry ids, not copies.
        self._attribute_id_of_path: dict[str, int] = {}
        self._attribute_id_of_tuple: dict[tuple[Any, ...], int] = {}
        self.attributes_by_id: list[tuple[Any, ...]] = []

    @classmethod
    def from_dir(cls, path: Path = SCHEMAS_DIR / "metrics") -> MetricDictionary:
        files = sorted(list(path.rglob("*.yml")) + list(path.rglob("*.yaml")))
        seen: dict[str, Path] = {}
        definitions: list[MetricDefinition] = []
        for file in files:
            try:
                raw = yaml.safe_load(file.read_text(encoding="utf-8"))
            except yaml.YAMLError as exc:
                raise MetricDefinitionError(f"{file}: not valid YAML: {exc}") from exc
            for definition in parse_definitions(raw, file):
                other = seen.get(definition.key_path)
                if other is not None:
                    raise _fail(file, "key_path", f"duplicate key_path {definition.key_path!r}, also in {other}")
                seen[definition.key_path] = file
                definitions.append(definition)
        return cls(definitions)

    def __len__(self) -> int:
        return len(self.definitions)

    def get(self, key_path: str) -> MetricDefinition | None:
        return self._by_path.get(key_path)

    def lookup(self, metrics_path: str) -> MetricDefinition | None:
        """The definition that documents a flattened payload path: exact, then without list indices, then the
        longest dotted prefix that is an object metric (``topology.nodes[0].node_cpus`` -> ``topology``).
        For documentation and fleet coverage only: metric rows are defined by the exact path (row_attributes)."""
        if metrics_path in self._resolved:
            return self._resolved[metrics_path]
        found = self._resolve(metrics_path)
        if len(self._resolved) >= _RESOLVED_CACHE_LIMIT:
            self._resolved.clear()  # payload paths are client-controlled: keep the memo bounded
        self._resolved[metrics_path] = found
        return found

    def _resolve(self, metrics_path: str) -> MetricDefinition | None:
        exact = self._by_path.get(metrics_path)
        if exact is not None:
            return exact
        path = _LIST_INDEX.sub("", metrics_path)
        exact = self._by_path.get(path)
        if exact is not None:
            return exact
        parts = path.split(".")
        for end in range(len(parts) - 1, 0, -1):
            candidate = self._by_path.get(".".join(parts[:end]))
            if candidate is not None and candidate.value_type == "object":
                return candidate
        return None

    def row_attributes(self, metrics_path: str) -> tuple[Any, ...]:
        """What a metric row carries from the definition of exactly its path (the hot path of flattening: memoized).

        (is_defined, time_frame, data_source, product_section, product_stage, product_group, tier,
        performance_indicator_type, status); for an undefined path, the time frame guessed from the path.
        """
        attributes = self._attributes.get(metrics_path)
        if attributes is None:
            if len(self._attributes) >= _RESOLVED_CACHE_LIMIT:
                self._attributes.clear()
            attributes = self._attributes[metrics_path] = self._compute_attributes(metrics_path)
        return attributes

    def attribute_ids(self, paths: list[str]) -> list[int]:
        """The attribute id of each path (see row_attributes); `attributes_by_id[i]` is the tuple."""
        try:  # usually every path is known: one pass at C speed
            return list(map(self._attribute_id_of_path.__getitem__, paths))
        except KeyError:  # paths seen for the first time
            pass
        ids = list(map(self._attribute_id_of_path.get, paths))
        return [i if i is not None else self._new_attribute_id(p) for p, i in zip(paths, ids, strict=True)]

    def _new_attribute_id(self, metrics_path: str) -> int:
        if len(self._attribute_id_of_path) >= _RESOLVED_CACHE_LIMIT:
            self._attribute_id_of_path.clear()  # ids stay valid: only the path memo is dropped
        attributes = tuple(self._compute_attributes(metrics_path))
        key = tuple(tuple(a) if isinstance(a, list) else a for a in attributes)
        attribute_id = self._attribute_id_of_tuple.get(key)
        if attribute_id is None:
            attribute_id = self._attribute_id_of_tuple[key] = len(self.attributes_by_id)
            self.attributes_by_id.append(attributes)
        self._attribute_id_of_path[metrics_path] = attribute_id
        return attribute_id

    def _compute_attributes(self, metrics_path: str) -> tuple[Any, ...]:
        # The reference joins flattened paths to the dictionary on the exact path (prep_ping_instance_flattened ->
        # dim_ping_metric): list items and the leaves inside an object metric are not defined metrics.
        d = self._by_path.get(metrics_path)
        if d is None:
            return (0, time_frame_from_path(metrics_path), "", "", "", "", [], [], "")
        return (1, d.time_frame, d.data_source, d.product_section, d.product_stage, d.product_group, list(d.tier),
                list(d.performance_indicator_type), d.status)

    def time_frame(self, metrics_path: str) -> str:
        """The time frame a metric row carries: its exact definition's, or the guess from the path."""
        found = self._by_path.get(metrics_path)
        return found.time_frame if found is not None else time_frame_from_path(metrics_path)
