"""Rule and dictionary files checked by the JSON Schemas in schemas/: bad files on disk are refused with the file,
the rule (for alert rules) and the field named; the project's own files pass."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from streams import schema_check
from streams.alerts.rules import DEFAULT_RULES_FILE, RuleError, load_rules
from streams.enrich.metric_dictionary import MetricDefinitionError, MetricDictionary
from streams.event_metrics.definitions import EventMetricError, load_event_metrics

GOOD_RULE = {"name": "drop", "scope": "instance", "signal": {"source": "seat_link"},
             "condition": {"type": "absolute_drop", "min_drop": 5}}
GOOD_METRIC = {"key_path": "counts.widgets", "time_frame": "28d", "value_type": "number", "status": "active"}
GOOD_EVENT_METRIC = {"key_path": "counts.clicks", "time_frame": "7d", "value_type": "event", "status": "active",
                     "events": [{"name": "click"}]}


@pytest.mark.parametrize("name", ["alert_rules", "metric_definition", "event_metric"])
def test_the_schemas_are_valid_json_schemas(name):
    assert schema_check.validator(name).schema["$id"] == f"{name}.schema.json"  # check_schema ran on load


def test_the_projects_own_files_pass():
    assert load_rules(DEFAULT_RULES_FILE, env={}).rules
    assert len(MetricDictionary.from_dir()) > 200
    assert load_event_metrics()


def _write(path: Path, document: object) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False))  # problems come in the order of the file
    return path


def test_a_bad_rule_file_lists_every_problem_with_file_rule_and_field(tmp_path):
    bad = dict(GOOD_RULE, scope="galaxy", cooldown="soon", enabled="yes", colour="red",
               signal={"source": "seat_link", "period": "month"},
               condition={"type": "below_band", "points": 1, "k": "x"})
    path = _write(tmp_path / "rules.yml", {"rules": [GOOD_RULE, bad, {"scope": "instance"}],
                                           "destinations": [{"name": "Hook", "url": "ftp://x"}]})
    with pytest.raises(RuleError) as info:
        load_rules(path, env={})
    where = f"{path}: rule 'drop'"
    assert info.value.problems == [
        f"{where}: scope: must be one of instance, subscription, account, namespace, got 'galaxy'",
        f"{where}: signal.period: must be one of day, week, got 'month'",
        f"{where}: condition.points: must be between 2 and 365, got 1",
        f"{where}: condition.k: must be a number, got 'x'",
        f"{where}: cooldown: expected a duration like 14d or 2w, got 'soon'",
        f"{where}: enabled: must be true or false, got 'yes'",
        f"{where}: colour: unknown field (allowed: carry_forward, condition, cooldown, description, enabled, "
        "include_ongoing, min_population, name, resolve, scope, signal)",
        f"{path}: rule #3: name: is required",
        f"{path}: rule #3: signal: is required",
        f"{path}: rule #3: condition: is required",
        f"{path}: rule 'drop': name: used by more than one rule",
        f"{path}: destination #1: name: must be lower_snake_case (a-z, 0-9, _), got 'Hook'",
        f"{path}: destination #1: url: must be an http(s) URL",
        f"{path}: destination #1: secret_env: required for json webhooks: receivers verify the HMAC signature",
    ]


def test_a_rule_file_that_is_not_a_rule_list_is_refused(tmp_path):
    for document in (["a"], {"rules": "all"}, None):
        path = _write(tmp_path / "rules.yml", document)
        with pytest.raises(RuleError, match=f"{path}: top level: rules: must be a mapping with a 'rules:' list"):
            load_rules(path, env={})


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"key_path": None}, "key_path", "is missing or empty"),
    ({"status": "  "}, "status", "is missing or empty"),
    ({"value_type": "float"}, "value_type", "must be one of string, number, boolean, object; got 'float'"),
    ({"time_frame": "30d"}, "time_frame", "must be one of 7d, 28d, all, none"),
    ({"time_frame": []}, "time_frame", "a non-empty list"),
    ({"tier": {"free": 1}}, "tier", "must be a list or text or empty"),
])
def test_a_bad_metric_definition_names_file_and_field(tmp_path, change, field, words):
    path = _write(tmp_path / "20260101000000_widgets.yml", {**GOOD_METRIC, **change})
    with pytest.raises(MetricDefinitionError) as info:
        MetricDictionary.from_dir(tmp_path)
    assert str(info.value).startswith(f"{path}: field '{field}': "), str(info.value)
    assert words in str(info.value)


def test_a_metric_definition_missing_a_field_names_it(tmp_path):
    document = {k: v for k, v in GOOD_METRIC.items() if k != "status"}
    path = _write(tmp_path / "20260101000000_widgets.yml", document)
    with pytest.raises(MetricDefinitionError, match=f"{path}: field 'status': is missing or empty"):
        MetricDictionary.from_dir(tmp_path)


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"events": [{"category": "c"}]}, "events", "each event needs a name"),
    ({"events": [{"name": "a", "when": "now"}]}, "events", "no fields but name, category, unique"),
    ({"events": "click"}, "events", "must be a non-empty list"),
    ({"operator": "XOR"}, "operator", "must be OR or AND, got 'XOR'"),
    ({"time_frame": ["7d", "1d"]}, "time_frame", "must be among 7d, 28d, all"),
    ({"colour": "red"}, "colour", "unknown field"),
    ({"operator": "AND"}, "operator", "AND (power users) needs value_type user"),
])
def test_a_bad_event_metric_names_file_and_field(tmp_path, change, field, words):
    path = _write(tmp_path / "clicks.yml", {**GOOD_EVENT_METRIC, **change})
    with pytest.raises(EventMetricError) as info:
        load_event_metrics(tmp_path)
    assert str(info.value).startswith(f"{path}: field '{field}': "), str(info.value)
    assert words in str(info.value)


def test_good_variants_still_load(tmp_path):
    _write(tmp_path / "a.yml", {**GOOD_EVENT_METRIC, "value_type": " Event ", "operator": "or",
                                "events": ["click", {"name": "click"}, {"name": "view", "category": "ui"}]})
    (metric,) = load_event_metrics(tmp_path)
    assert (metric.value_type, metric.operator, [e.label() for e in metric.events]) == (
        "event", "OR", ["InternalEventTracking:click", "ui:view"])
