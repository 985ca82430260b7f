"""Alert rule files: the default file is valid; every kind of mistake is reported with file, rule and field."""

from __future__ import annotations

import pytest

from streams.alerts.rules import (
    DEFAULT_RULES_FILE,
    SOURCE_SCOPES,
    RuleError,
    load_rules,
    metric_time_frames,
    parse_config,
    parse_days,
)
from streams.enrich.metric_dictionary import MetricDictionary

UMAU = "usage_activity_by_stage_monthly.manage.events"


@pytest.fixture(scope="module")
def metrics():
    return metric_time_frames(MetricDictionary.from_dir())


def _rule(**overrides):
    rule = {"name": "r", "scope": "instance", "signal": {"source": "service_ping"},
            "condition": {"type": "relative_drop", "min_drop_pct": 30}}
    rule.update(overrides)
    return rule


def _problems(doc, metrics=None, env=None) -> list[str]:
    with pytest.raises(RuleError) as info:
        parse_config(doc, "rules.yml", metrics, env or {})
    assert str(info.value).startswith("invalid alert rules:")
    return info.value.problems


def test_the_default_rule_file_is_valid_and_covers_every_source(metrics):
    config = load_rules(DEFAULT_RULES_FILE, metrics=metrics, env={})
    assert config.source == str(DEFAULT_RULES_FILE)
    assert {r.signal.source for r in config.rules} == set(SOURCE_SCOPES)
    assert {r.scope for r in config.rules} == {"instance", "subscription", "account", "namespace"}
    assert {r.condition.type for r in config.rules} == {"relative_drop", "absolute_drop", "below_band"}
    assert config.destinations == ()


def test_a_valid_rule_gets_its_defaults():
    config = parse_config({"rules": [_rule()]}, "rules.yml", env={})
    rule = config.rule("r")
    assert (rule.min_population, rule.cooldown_days, rule.recovery_pct, rule.carry_forward_days) == (0.0, 7, 90.0, 28)
    assert (rule.signal.measure, rule.signal.period, rule.signal.step_days) == ("active_user_count", "week", 7)
    assert rule.lookback_days == 7 * 2 + 28
    events = parse_config({"rules": [_rule(scope="namespace", signal={"source": "events", "window": "7d"})]},
                          env={}).rule("r")
    assert (events.signal.window_days, events.signal.period, events.signal.step_days) == (7, "day", 7)
    assert events.carry_forward_days == 7


def test_durations():
    assert [parse_days(v) for v in ("14d", "2w", "0d", 3, " 1W ")] == [14, 14, 0, 3, 7]
    for bad in ("fortnight", "-1d", True, -2, "1.5d"):
        with pytest.raises(ValueError):
            parse_days(bad)


@pytest.mark.parametrize(("overrides", "field", "words"), [
    ({"scope": "galaxy"}, "scope", "must be one of instance"),
    ({"scope": "namespace"}, "scope", "service_ping can be read per instance, subscription, account"),
    ({"condition": {"type": "spike"}}, "condition.type", "must be one of relative_drop"),
    ({"condition": {"type": "relative_drop"}}, "condition.min_drop_pct", "required"),
    ({"condition": {"type": "relative_drop", "min_drop_pct": 130}}, "condition.min_drop_pct", "between 0"),
    ({"condition": {"type": "relative_drop", "min_drop_pct": "30%"}}, "condition.min_drop_pct", "a number"),
    ({"condition": {"type": "absolute_drop", "min_drop": 0}}, "condition.min_drop", "above 0"),
    ({"condition": {"type": "below_band", "points": 3, "min_points": 5}}, "condition.min_points", "not exceed"),
    ({"condition": {"type": "below_band", "points": 2.5}}, "condition.points", "whole number"),
    ({"condition": {"type": "relative_drop", "min_drop_pct": 30, "k": 3}}, "condition.k", "unknown field"),
    ({"resolve": {"recovery_pct": 70}}, "resolve.recovery_pct", "must be above 70"),
    ({"cooldown": "soon"}, "cooldown", "a duration like 14d"),
    ({"min_population": -5}, "min_population", ">= 0"),
    ({"enabled": "yes"}, "enabled", "true or false"),
    ({"include_ongoing": True}, "include_ongoing", "only events signals"),
    ({"severity": "high"}, "severity", "unknown field"),
    ({"name": "Bad Name"}, "name", "lower_snake_case"),
    ({"signal": {"source": "carrier_pigeon"}}, "signal.source", "must be one of service_ping"),
    ({"signal": {"source": "service_ping", "measure": "metric"}}, "signal.metric", "metrics_path is required"),
    ({"signal": {"source": "service_ping", "window": "7d"}}, "signal.window", "only events signals"),
    ({"signal": {"source": "events", "window": "30d"}, "scope": "namespace"}, "signal.window", "7d or 28d"),
    ({"signal": {"source": "events", "period": "week"}, "scope": "namespace"}, "signal.period", "one of day"),
    ({"signal": {"source": "seat_link", "metric": UMAU}}, "signal.measure", "active_user_count only"),
])
def test_each_mistake_names_file_rule_and_field(overrides, field, words):
    problems = _problems({"rules": [_rule(**overrides)]})
    assert len(problems) == 1, problems
    where = "rule #1" if field == "name" else "rule 'r'"
    assert problems[0].startswith(f"rules.yml: {where}: {field}: "), problems[0]
    assert words in problems[0]


def test_metrics_are_checked_against_the_dictionary(metrics):
    unknown = _problems({"rules": [_rule(signal={"source": "service_ping", "metric": "counts.no_such_thing"})]},
                        metrics)
    assert unknown == ["rules.yml: rule 'r': signal.metric: 'counts.no_such_thing' is not in the metric "
                       "dictionary (schemas/metrics)"]
    all_time = _problems({"rules": [_rule(signal={"source": "service_ping",
                                                  "metric": "usage_activity_by_stage.manage.events"})]}, metrics)
    assert "has time_frame all; active users need a 7d or 28d metric" in all_time[0]
    ok = parse_config({"rules": [_rule(signal={"source": "service_ping", "metric": UMAU})]}, metrics=metrics, env={})
    assert ok.rule("r").signal.metric == UMAU


def test_all_problems_are_reported_at_once():
    problems = _problems({"rules": [_rule(scope="galaxy", cooldown="x"), _rule(name="r2", condition=None),
                                    _rule(name="r2")], "extra": 1})
    assert problems == [
        "rules.yml: top level: extra: unknown field (allowed: destinations, rules)",
        "rules.yml: rule 'r': scope: must be one of instance, subscription, account, namespace, got 'galaxy'",
        "rules.yml: rule 'r': cooldown: expected a duration like 14d or 2w, got 'x'",
        "rules.yml: rule 'r2': condition: must be a mapping with a 'type'",
        "rules.yml: rule 'r2': name: used by more than one rule",
    ]


def test_duplicate_rule_names():
    problems = _problems({"rules": [_rule(), _rule()]})
    assert problems == ["rules.yml: rule 'r': name: used by more than one rule"]


def test_destinations_are_validated():
    env = {"HOOK_SECRET": "s3cret", "SLACK_URL": "https://hooks.slack.com/services/T/B/X"}
    config = parse_config({"rules": [_rule()], "destinations": [
        {"name": "cs", "url": "http://127.0.0.1:9/hook", "secret_env": "HOOK_SECRET", "rules": ["r"], "attempts": 2},
        {"name": "slack", "url_env": "SLACK_URL"},
    ]}, env=env)
    cs, slack = config.destinations
    assert (cs.format, cs.secret, cs.rules, cs.attempts, cs.wants("r"), cs.wants("other")) == (
        "json", "s3cret", ("r",), 2, True, False)
    assert (slack.format, slack.secret, slack.url, slack.wants("anything")) == (
        "slack", None, env["SLACK_URL"], True)
    assert "s3cret" not in repr(cs)  # secrets stay out of logs
    problems = _problems({"rules": [_rule()], "destinations": [
        {"name": "a", "url": "ftp://x", "secret_env": "MISSING"},
        {"name": "b", "url": "https://x.example/h", "rules": ["nope"], "secret_env": "HOOK_SECRET"},
        {"name": "c", "url": "https://x.example/h"},
    ]}, env=env)
    assert problems == [
        "rules.yml: destination 'a': url: must be an http(s) URL",
        "rules.yml: destination 'a': secret_env: environment variable MISSING is not set",
        "rules.yml: destination 'b': rules: no rule named 'nope'",
        "rules.yml: destination 'c': secret_env: required for json webhooks: receivers verify the HMAC signature",
    ]


def test_file_errors(tmp_path):
    with pytest.raises(RuleError, match="cannot read"):
        load_rules(tmp_path / "absent.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("rules: [\n")
    with pytest.raises(RuleError, match="bad.yml: not valid YAML"):
        load_rules(bad)
    empty = tmp_path / "empty.yml"
    empty.write_text("just text\n")
    with pytest.raises(RuleError, match="empty.yml: top level: rules: must be a mapping with a 'rules:' list"):
        load_rules(empty)
