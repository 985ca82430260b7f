"""Alert rules: the YAML file (`schemas/alert_rules.yml`, or `--rules FILE`), loaded and validated.

A rule says which scope to watch (instance, subscription, account, namespace), which active-user signal
(Service Ping, Seat Link or product events), when it fires (a relative drop, an absolute drop, or a value
below a band learned from the scope's own history), whom it ignores (scopes below a minimum population),
how long it stays quiet after resolving (cooldown) and when it resolves (back above a recovery threshold).
Destinations (webhooks, Slack) are listed in the same file. Every problem is reported with the file, the
rule and the field, all at once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from streams import schema_check
from streams.config import SCHEMAS_DIR

DEFAULT_RULES_FILE = SCHEMAS_DIR / "alert_rules.yml"

SCOPES = ("instance", "subscription", "account", "namespace")
SOURCES = ("service_ping", "seat_link", "events")
# Which scopes each source can be read at (namespaces exist only in product events).
SOURCE_SCOPES = {
    "service_ping": ("instance", "subscription", "account"),
    "seat_link": ("instance", "subscription", "account"),
    "events": ("instance", "namespace", "subscription", "account"),
}
CONDITION_TYPES = ("relative_drop", "absolute_drop", "below_band")
PERIODS = {"day": 1, "week": 7}
FORMATS = ("json", "slack")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_DURATION = re.compile(r"^(\d+)\s*([dw])$")


class RuleError(ValueError):
    """The rule file cannot be used; `problems` lists every "file: rule 'x': field: problem"."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid alert rules:\n  " + "\n  ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Signal:
    source: str  # service_ping | seat_link | events
    measure: str  # service_ping: 'active_user_count' or 'metric'; seat_link: 'active_user_count'; events: 'users'
    metric: str | None = None  # service_ping metrics_path when measure == 'metric'
    window_days: int = 28  # events: distinct users over the 7 or 28 days ending on the period's day
    period: str = "week"  # one point per week (Service Ping) or per day (Seat Link, events)

    @property
    def step_days(self) -> int:
        """Distance between comparable points: one period, or one whole window for rolling event windows."""
        return self.window_days if self.source == "events" else PERIODS[self.period]

    def describe(self) -> str:
        if self.source == "events":
            return f"events: distinct users over {self.window_days}d"
        if self.measure == "metric":
            return f"{self.source}: {self.metric}"
        return f"{self.source}: {self.measure}"


@dataclass(frozen=True)
class Condition:
    type: str  # relative_drop | absolute_drop | below_band
    min_drop_pct: float = 0.0  # relative_drop: fire when (previous - value) / previous >= this %
    min_drop: float = 0.0  # absolute_drop: fire when previous - value >= this
    points: int = 8  # below_band: the band is learned from this many earlier comparable points
    min_points: int = 4  # below_band: no band (and no alert) with fewer points than this
    k: float = 3.0  # below_band: lower bound = median - k * MAD
    min_width_pct: float = 0.0  # below_band: the band is at least this % of the median wide (MAD can be 0)


@dataclass(frozen=True)
class Rule:
    name: str
    scope: str
    signal: Signal
    condition: Condition
    description: str = ""
    min_population: float = 0.0  # scopes whose baseline is below this many users never alert
    cooldown_days: int = 7  # after resolving, no new alert for this scope and rule for this long (data time)
    recovery_pct: float = 90.0  # resolved when the value is back to >= this % of the baseline it dropped from
    carry_forward_days: int = 28  # roll-ups: a member's last value counts for this long when it has no newer one
    include_ongoing: bool = False  # events: also evaluate today's (incomplete) window
    enabled: bool = True

    @property
    def lookback_days(self) -> int:
        """History a point needs: the comparable earlier points, plus the roll-up carry-forward."""
        points = self.condition.points if self.condition.type == "below_band" else 1
        return self.signal.step_days * (points + 1) + self.carry_forward_days


@dataclass(frozen=True)
class Destination:
    name: str
    url: str
    format: str = "json"  # json: the event, signed | slack: {"text": ...}
    secret: str | None = field(default=None, repr=False)  # HMAC key, read from the env variable secret_env
    rules: tuple[str, ...] = ()  # empty: every rule
    attempts: int = 4  # tries in line before the event is parked for later retries
    backoff_seconds: float = 0.5  # first wait; doubles after each failure
    max_backoff_seconds: float = 300.0
    timeout_seconds: float = 10.0
    max_parked_attempts: int = 50  # after this many tries in total the event goes to the dead-letter topic

    def wants(self, rule: str) -> bool:
        return not self.rules or rule in self.rules


@dataclass(frozen=True)
class AlertConfig:
    rules: tuple[Rule, ...]
    destinations: tuple[Destination, ...] = ()
    source: str = "<memory>"

    def rule(self, name: str) -> Rule:
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(f"no rule named {name!r} in {self.source}")

    def active(self) -> tuple[Rule, ...]:
        return tuple(rule for rule in self.rules if rule.enabled)


# ---------------------------------------------------------------------------------------------------


class _Problems:
    """Collects problems with their location instead of stopping at the first one."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[str] = []

    def add(self, where: str, field_name: str, problem: str) -> None:
        self.items.append(f"{self.source}: {where}: {field_name}: {problem}")


def parse_days(value: Any) -> int:
    """'14d', '2w', 0 or 3 (days) -> days."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 14d or 2w, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("must not be negative")
        return value
    match = _DURATION.match(str(value).strip().lower())
    if not match:
        raise ValueError(f"expected a duration like 14d or 2w, got {value!r}")
    return int(match.group(1)) * (7 if match.group(2) == "w" else 1)


def _get(raw: Mapping[str, Any], key: str, default: Any, kind: type | tuple[type, ...]) -> Any:
    """raw[key] when it has the right type, else the default (the schema has reported the wrong one)."""
    value = raw.get(key, default)
    if isinstance(value, bool) and kind is not bool:
        return default
    return value if isinstance(value, kind) else default


def _days(raw: Mapping[str, Any], key: str, default: int) -> int:
    try:
        return parse_days(raw.get(key, default))
    except ValueError:
        return default  # reported by the schema


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


# The JSON Schema (schemas/alert_rules.schema.json) checks each field's shape; the checks below need two fields,
# the metric dictionary or the environment.


def _signal(raw: Any, problems: _Problems, where: str, metrics: Mapping[str, str] | None) -> Signal | None:
    if not isinstance(raw, Mapping) or raw.get("source") not in SOURCES:
        return None
    source = raw["source"]
    default_period = "week" if source == "service_ping" else "day"
    period = raw.get("period", default_period)
    if source == "events" and period != "day":
        if period in PERIODS:
            problems.add(where, "signal.period", f"must be one of day, got {period!r}")
        period = default_period
    period = period if period in PERIODS else default_period
    if source == "events":
        window = str(raw.get("window", "28d"))
        for key in ("measure", "metric"):
            if key in raw:
                problems.add(where, f"signal.{key}", "not used by events (distinct users of the window)")
        return Signal("events", "users", None, int(window[:-1]) if window in ("7d", "28d") else 28, "day")
    if "window" in raw:
        problems.add(where, "signal.window", "only events signals have a window; pick a 7d or 28d metric instead")
    metric = raw.get("metric")
    measure = raw.get("measure", "metric" if metric is not None else "active_user_count")
    if source == "seat_link":
        if measure != "active_user_count" or metric is not None:
            problems.add(where, "signal.measure", "Seat Link offers active_user_count only")
        return Signal("seat_link", "active_user_count", None, 28, period)
    if measure not in ("active_user_count", "metric"):
        return None
    if measure == "metric":
        if "metric" not in raw:
            problems.add(where, "signal.metric", "a Service Ping metrics_path is required")
        if not isinstance(metric, str) or not metric.strip():
            return None
        time_frame = metrics.get(metric, "") if metrics is not None else "7d"
        if not time_frame:
            problems.add(where, "signal.metric", f"{metric!r} is not in the metric dictionary (schemas/metrics)")
        elif time_frame not in ("7d", "28d"):
            problems.add(where, "signal.metric",
                         f"{metric!r} has time_frame {time_frame}; active users need a 7d or 28d metric")
    elif metric is not None:
        problems.add(where, "signal.metric", "given, but measure is active_user_count")
    return Signal("service_ping", measure, metric if measure == "metric" else None, 28, period)


def _condition(raw: Any, problems: _Problems, where: str) -> Condition | None:
    if not isinstance(raw, Mapping) or raw.get("type") not in CONDITION_TYPES:
        return None
    kind = raw["type"]
    if kind == "relative_drop":
        return Condition("relative_drop", min_drop_pct=float(_get(raw, "min_drop_pct", 0.0, int | float)))
    if kind == "absolute_drop":
        return Condition("absolute_drop", min_drop=float(_get(raw, "min_drop", 0.0, int | float)))
    points = int(_get(raw, "points", 8, int))
    min_points = int(_get(raw, "min_points", min(4, points), int))
    if min_points > points:
        problems.add(where, "condition.min_points", f"must not exceed points ({points})")
        min_points = points
    return Condition("below_band", points=points, min_points=min_points, k=float(_get(raw, "k", 3.0, int | float)),
                     min_width_pct=float(_get(raw, "min_width_pct", 0.0, int | float)))


def _rule(raw: Any, where: str, problems: _Problems, metrics: Mapping[str, str] | None) -> Rule | None:
    raw = _mapping(raw)
    scope = raw.get("scope")
    signal = _signal(raw.get("signal"), problems, where, metrics)
    if scope in SCOPES and signal is not None and scope not in SOURCE_SCOPES[signal.source]:
        problems.add(where, "scope", f"{signal.source} can be read per {', '.join(SOURCE_SCOPES[signal.source])}, "
                                     f"not per {scope}")
    condition = _condition(raw.get("condition"), problems, where)
    recovery = float(_get(_mapping(raw.get("resolve")), "recovery_pct", 90.0, int | float))
    fires_at = 100 - condition.min_drop_pct if condition is not None else 100
    if condition is not None and condition.type == "relative_drop" and fires_at < 100 and recovery <= fires_at:
        problems.add(where, "resolve.recovery_pct", f"must be above {fires_at:g} (the level the alert fires "
                                                    "at), or a firing value would count as recovered")
    include_ongoing = _get(raw, "include_ongoing", False, bool)
    if include_ongoing and signal is not None and signal.source != "events":
        problems.add(where, "include_ongoing", "only events signals have an ongoing (incomplete) period")
    name = raw.get("name")
    if not isinstance(name, str) or signal is None or condition is None or scope not in SCOPES:
        return None
    return Rule(name=name, scope=scope, signal=signal, condition=condition,
                description=_get(raw, "description", "", str).strip(),
                min_population=float(_get(raw, "min_population", 0.0, int | float)),
                cooldown_days=_days(raw, "cooldown", 7), recovery_pct=recovery,
                carry_forward_days=_days(raw, "carry_forward", 28 if signal.period == "week" else 7),
                include_ongoing=include_ongoing, enabled=_get(raw, "enabled", True, bool))


def _destination(raw: Any, where: str, problems: _Problems, rule_names: set[str],
                 env: Mapping[str, str]) -> Destination | None:
    raw = _mapping(raw)
    url = raw.get("url")
    if "url_env" in raw:
        url = env.get(str(raw["url_env"]))
        if not url:
            problems.add(where, "url_env", f"environment variable {raw['url_env']} is not set")
        elif not urlparse(url).hostname or urlparse(url).scheme not in ("http", "https"):
            problems.add(where, "url_env", f"environment variable {raw['url_env']} is not an http(s) URL")
            url = None
    elif "url" not in raw:
        problems.add(where, "url", "must be an http(s) URL")
    parsed = urlparse(url) if isinstance(url, str) else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
        url = None
    is_slack = bool(parsed and parsed.hostname and parsed.hostname.endswith("hooks.slack.com"))
    fmt = raw.get("format", "slack" if is_slack else "json")
    secret = None
    if "secret_env" in raw:
        secret = env.get(str(raw["secret_env"]))
        if not secret:
            problems.add(where, "secret_env", f"environment variable {raw['secret_env']} is not set")
    elif fmt == "json":
        problems.add(where, "secret_env", "required for json webhooks: receivers verify the HMAC signature")
    rules = [r for r in _get(raw, "rules", [], list) if isinstance(r, str)]
    for rule in rules:
        if rule not in rule_names:
            problems.add(where, "rules", f"no rule named {rule!r}")
    name = raw.get("name")
    if not isinstance(name, str) or url is None or fmt not in FORMATS:
        return None
    return Destination(name=name, url=url, format=fmt, secret=secret, rules=tuple(rules),
                       attempts=int(_get(raw, "attempts", 4, int)),
                       backoff_seconds=float(_get(raw, "backoff_seconds", 0.5, int | float)),
                       max_backoff_seconds=float(_get(raw, "max_backoff_seconds", 300.0, int | float)),
                       timeout_seconds=float(_get(raw, "timeout_seconds", 10.0, int | float)),
                       max_parked_attempts=int(_get(raw, "max_parked_attempts", 50, int)))


def _where(kind: str, index: int, raw: Any) -> str:
    """'rule 'name'' when the item has a valid name, else its position ('rule #2')."""
    name = raw.get("name") if isinstance(raw, Mapping) else None
    return f"{kind} {name!r}" if isinstance(name, str) and _NAME.match(name) else f"{kind} #{index + 1}"


def _schema_problems(raw: Any) -> dict[tuple[str, int] | None, list[tuple[str, str]]]:
    """Schema problems by section: (rules|destinations, index) or None for the top level -> (field, message)."""
    out: dict[tuple[str, int] | None, list[tuple[str, str]]] = {}
    for problem in schema_check.check(raw, "alert_rules"):
        path = problem.path
        if len(path) >= 2 and path[0] in ("rules", "destinations") and isinstance(path[1], int):
            field_name = ".".join(str(p) for p in path[2:]) or "-"
            out.setdefault((str(path[0]), path[1]), []).append((field_name, problem.message))
        else:
            out.setdefault(None, []).append((str(path[0]) if path else "rules", problem.message))
    return out


def parse_config(raw: Any, source: str = "<memory>", metrics: Mapping[str, str] | None = None,
                 env: Mapping[str, str] | None = None) -> AlertConfig:
    """Validate a loaded YAML document against schemas/alert_rules.schema.json, then what needs several fields;
    `metrics` (metrics_path -> time_frame) checks Service Ping metrics. Every problem is reported at once."""
    problems = _Problems(source)
    env = os.environ if env is None else env
    if not isinstance(raw, Mapping) or not isinstance(raw.get("rules"), list):
        raise RuleError([f"{source}: top level: rules: must be a mapping with a 'rules:' list"])
    found = _schema_problems(raw)
    for field_name, message in found.get(None, []):
        problems.add("top level", field_name, message)
    rules = []
    for i, item in enumerate(raw["rules"]):
        where = _where("rule", i, item)
        for field_name, message in found.get(("rules", i), []):
            problems.add(where, field_name, message)
        rules.append(_rule(item, where, problems, metrics))
    names = [item["name"] for item in raw["rules"] if isinstance(item, Mapping) and isinstance(item.get("name"), str)
             and _NAME.match(item["name"])]
    for duplicate in sorted({n for n in names if names.count(n) > 1}):
        problems.add(f"rule {duplicate!r}", "name", "used by more than one rule")
    destinations = []
    for i, item in enumerate(raw.get("destinations") or [] if isinstance(raw.get("destinations"), list | None)
                             else []):
        where = _where("destination", i, item)
        for field_name, message in found.get(("destinations", i), []):
            problems.add(where, field_name, message)
        destinations.append(_destination(item, where, problems, set(names), env))
    dest_names = [d.name for d in destinations if d is not None]
    for duplicate in sorted({n for n in dest_names if dest_names.count(n) > 1}):
        problems.add(f"destination {duplicate!r}", "name", "used by more than one destination")
    if problems.items:
        raise RuleError(problems.items)
    return AlertConfig(tuple(r for r in rules if r is not None), tuple(d for d in destinations if d is not None),
                       source)


def load_rules(path: Path | None = None, metrics: Mapping[str, str] | None = None,
               env: Mapping[str, str] | None = None) -> AlertConfig:
    """Read and validate a rule file (default: schemas/alert_rules.yml)."""
    path = path or DEFAULT_RULES_FILE
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise RuleError([f"{path}: cannot read: {exc}"]) from exc
    except yaml.YAMLError as exc:
        raise RuleError([f"{path}: not valid YAML: {exc}"]) from exc
    return parse_config(raw, str(path), metrics, env)


def metric_time_frames(dictionary: Any) -> dict[str, str]:
    """metrics_path -> time_frame from a MetricDictionary, for `parse_config(metrics=...)`."""
    return {d.key_path: d.time_frame for d in dictionary.definitions}
