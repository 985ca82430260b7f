"""Event metric definitions: ``schemas/event_metrics/**/*.yml``, computed from Snowplow events in the warehouse.

The format follows the product's metric dictionary (key_path, description, product_* fields, tier,
performance_indicator_type, status, a time_frame string or list) plus what an event metric needs:

- ``events``: the events it counts, each ``{name: <event_action>, category: <event_category>}``; the category
  defaults to ``InternalEventTracking``, the category the product's internal events are sent with.
- ``value_type``: ``user`` (distinct users), ``event`` (number of events) or ``boolean`` (indicator: 1 when any
  of the events happened in the window).
- ``operator``: ``OR`` (default: any of the events) or ``AND`` (power users: users who did every event in the
  window; ``value_type: user`` only), as in the product's aggregated metrics.
- ``time_frame``: ``7d`` (window D-6..D), ``28d`` (D-27..D) or ``all`` (every day up to D; event or boolean only).
  A list yields one metric per window, with the product's suffixes (``_weekly``, ``_monthly``, none for all).

They live apart from ``schemas/metrics`` on purpose: their key_paths repeat Service Ping names (that is the point:
the SaaS numbers line up with the instance numbers), which the Service Ping dictionary would reject as duplicates,
and ``value_type: user`` is not a Service Ping value type.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from streams import schema_check
from streams.config import SCHEMAS_DIR

EVENT_METRICS_DIR = SCHEMAS_DIR / "event_metrics"
DEFAULT_CATEGORY = "InternalEventTracking"
WINDOW_DAYS = {"7d": 7, "28d": 28, "all": 0}
VALUE_TYPES = ("user", "event", "boolean")
OPERATORS = ("OR", "AND")
_SUFFIX = {"7d": "_weekly", "28d": "_monthly", "all": ""}


class EventMetricError(ValueError):
    """A definition that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class EventRef:
    category: str
    action: str

    def label(self) -> str:
        return f"{self.category}:{self.action}"


@dataclass(frozen=True)
class EventMetric:
    key_path: str
    description: str
    time_frame: str
    value_type: str
    operator: str
    events: tuple[EventRef, ...]
    product_section: str
    product_stage: str
    product_group: str
    tier: tuple[str, ...]
    performance_indicator_type: tuple[str, ...]
    status: str

    @property
    def window_days(self) -> int:
        """7 or 28 for a rolling window, 0 for all time."""
        return WINDOW_DAYS[self.time_frame]

    @property
    def is_power_user(self) -> bool:
        return self.operator == "AND"

    def has_indicator(self, name: str) -> bool:
        return name in self.performance_indicator_type

    @property
    def is_xmau(self) -> bool:
        return any(self.has_indicator(name) for name in ("umau", "smau", "gmau", "paid_gmau"))


def _fail(source: Path | str, field: str, problem: str) -> EventMetricError:
    return EventMetricError(f"{source}: field '{field}': {problem}")


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _names(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [] if value is None else [value]
    return tuple(dict.fromkeys(_text(item).lower() for item in items if _text(item)))


def _events(raw: list[Any]) -> tuple[EventRef, ...]:
    """The events (checked by the schema): a name, or {name, category}; the same event twice is one event."""
    entries = [{"name": item} if isinstance(item, str) else item for item in raw]
    refs = [EventRef(_text(entry.get("category")) or DEFAULT_CATEGORY, _text(entry["name"])) for entry in entries]
    return tuple(dict.fromkeys(refs))


def parse_event_metrics(raw: Any, source: Path | str = "<memory>") -> list[EventMetric]:
    """Validate one YAML document (schemas/event_metric.schema.json, then what needs two fields); return its
    metrics (one per time frame). The first problem is raised, naming the file and the field."""
    problems = schema_check.check(raw, "event_metric")
    if problems:
        field = problems[0].field.split(".", 1)[0] or "key_path"
        raise _fail(source, field, problems[0].message)
    value_type = _text(raw["value_type"]).lower()
    operator = _text(raw.get("operator") or "OR").upper()
    if operator == "AND" and value_type != "user":
        raise _fail(source, "operator", "AND (power users) needs value_type user")
    frames = [_text(item) for item in raw["time_frame"]] if isinstance(raw["time_frame"], list) else [
        _text(raw["time_frame"])]
    if "all" in frames and value_type == "user":
        raise _fail(source, "time_frame", "all-time distinct users are not kept; use 7d or 28d")
    base = {
        "description": _text(raw.get("description")),
        "value_type": value_type,
        "operator": operator,
        "events": _events(raw["events"]),
        "product_section": _text(raw.get("product_section")),
        "product_stage": _text(raw.get("product_stage")),
        "product_group": _text(raw.get("product_group")),
        "tier": _names(raw.get("tier", raw.get("tiers"))),
        "performance_indicator_type": _names(raw.get("performance_indicator_type")),
        "status": _text(raw["status"]).lower(),
    }
    key_path = _text(raw["key_path"])
    if not isinstance(raw["time_frame"], list):
        return [EventMetric(key_path=key_path, time_frame=frames[0], **base)]
    return [EventMetric(key_path=key_path + _SUFFIX[frame], time_frame=frame, **base) for frame in frames]


def load_event_metrics(path: Path = EVENT_METRICS_DIR, include_removed: bool = False) -> list[EventMetric]:
    """Every definition under ``path`` (sub-folders included), ordered by key_path; duplicates are an error."""
    seen: dict[str, Path] = {}
    metrics: list[EventMetric] = []
    for file in sorted(list(path.rglob("*.yml")) + list(path.rglob("*.yaml"))):
        try:
            raw = yaml.safe_load(file.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise EventMetricError(f"{file}: not valid YAML: {exc}") from exc
        for metric in parse_event_metrics(raw, file):
            if metric.key_path in seen:
                other = seen[metric.key_path]
                raise _fail(file, "key_path", f"duplicate key_path {metric.key_path!r}, also in {other}")
            seen[metric.key_path] = file
            if include_removed or metric.status != "removed":
                metrics.append(metric)
    return sorted(metrics, key=lambda m: m.key_path)


def by_key(metrics: Iterable[EventMetric]) -> dict[str, EventMetric]:
    return {metric.key_path: metric for metric in metrics}
