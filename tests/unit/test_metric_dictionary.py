"""The metric dictionary: the shipped definitions, the loader's validation and the lookup rules."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from streams.config import SCHEMAS_DIR
from streams.enrich.metric_dictionary import (
    MetricDefinitionError,
    MetricDictionary,
    time_frame_from_path,
)

DEVOPS_STAGES = {"manage", "plan", "create", "verify", "package", "secure", "deploy", "configure", "monitor", "govern"}


@pytest.fixture(scope="module")
def dictionary() -> MetricDictionary:
    return MetricDictionary.from_dir()


def _write(folder: Path, name: str, **fields: object) -> Path:
    base: dict[str, object] = {
        "key_path": "counts.widgets",
        "description": "Total widgets",
        "product_group": "source_code",
        "value_type": "number",
        "status": "active",
        "time_frame": "all",
        "data_source": "database",
        "data_category": "optional",
        "tier": ["free"],
        "milestone": "18.0",
    }
    base.update(fields)
    document = {key: value for key, value in base.items() if value is not None}
    path = folder / name
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def test_shipped_definitions_cover_all_stages(dictionary: MetricDictionary) -> None:
    stages = Counter(definition.product_stage for definition in dictionary.definitions)
    assert len(dictionary.definitions) >= 100
    assert len(stages) >= 10
    assert set(stages) >= DEVOPS_STAGES
    assert {"systems", "growth", "analytics"} <= set(stages)


def test_shipped_definitions_cover_time_frames_and_value_types(dictionary: MetricDictionary) -> None:
    frames = Counter(definition.time_frame for definition in dictionary.definitions)
    assert all(frames[frame] >= 10 for frame in ("7d", "28d", "all", "none"))
    assert dictionary.get("topology").value_type == "object"
    assert dictionary.get("database.pg_system_id").value_type == "number"
    assert sum(definition.value_type == "boolean" for definition in dictionary.definitions) >= 10
    statuses = {definition.status for definition in dictionary.definitions}
    assert {"active", "removed", "deprecated"} <= statuses
    for container in ("counts.", "counts_monthly.", "counts_weekly.", "usage_activity_by_stage_monthly.",
                      "redis_hll_counters.", "counts_monthly.aggregated_metrics.", "counts_weekly.aggregated_metrics.",
                      "settings."):  # fmt: skip
        assert any(definition.key_path.startswith(container) for definition in dictionary.definitions), container


def test_file_names_follow_the_timestamp_convention() -> None:
    files = sorted((SCHEMAS_DIR / "metrics").rglob("*.yml"))
    assert len(files) >= 120
    for file in files:
        key_path = yaml.safe_load(file.read_text(encoding="utf-8"))["key_path"]
        assert re.fullmatch(r"\d{14}_" + re.escape(key_path.rsplit(".", 1)[-1]) + r"\.yml", file.name), file


def test_xmau_flags(dictionary: MetricDictionary) -> None:
    smau = [definition for definition in dictionary.definitions if definition.is_smau]
    smau_stages = Counter(definition.product_stage for definition in smau)
    assert set(smau_stages) >= DEVOPS_STAGES
    assert all(count == 1 for count in smau_stages.values()), "one SMAU metric per stage"
    assert all(definition.time_frame == "28d" for definition in smau)
    umau = [definition.key_path for definition in dictionary.definitions if definition.is_umau]
    assert umau == ["usage_activity_by_stage_monthly.manage.events"]
    gmau_groups = Counter(definition.product_group for definition in dictionary.definitions if definition.is_gmau)
    assert len(gmau_groups) >= 10
    assert all(count == 1 for count in gmau_groups.values()), "one GMAU metric per group"
    paid = [definition for definition in dictionary.definitions if definition.is_paid_gmau]
    assert len(paid) >= 3
    assert all("free" not in definition.tier for definition in paid)


def test_list_time_frame_expands_to_three_definitions(dictionary: MetricDictionary) -> None:
    base = "counts.count_total_user_logins"
    assert dictionary.get(base).time_frame == "all"
    assert dictionary.get(base + "_weekly").time_frame == "7d"
    assert dictionary.get(base + "_monthly").time_frame == "28d"


def test_lookup_rules(dictionary: MetricDictionary) -> None:
    assert dictionary.lookup("counts.ci_runners").key_path == "counts.ci_runners"
    assert dictionary.lookup("topology.nodes[0].node_cpus").key_path == "topology"
    assert dictionary.lookup("topology.nodes[3].node_services[2].process_count").key_path == "topology"
    assert dictionary.lookup("git.version.major").key_path == "git.version"
    provider = "usage_activity_by_stage_monthly.manage.user_auth_by_provider.saml"
    assert dictionary.lookup(provider).time_frame == "28d"
    assert dictionary.lookup("counts.no_such_metric") is None
    # Only object metrics swallow deeper paths; a number metric does not.
    assert dictionary.lookup("counts.ci_runners.extra") is None


def test_lookup_strips_list_indices(tmp_path: Path) -> None:
    key_path = "usage_activity_by_stage.manage.omniauth_providers"
    _write(tmp_path, "20260101000000_omniauth_providers.yml", key_path=key_path)
    dictionary = MetricDictionary.from_dir(tmp_path)
    assert dictionary.lookup(key_path + "[1]").key_path == key_path


def test_loader_normalises_legacy_quirks(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "20260101000000_widgets.yml",
        data_category="Optional",
        tier=["free ", "free", "premium"],
        performance_indicator_type=None,
        milestone="18.0",
    )
    (definition,) = MetricDictionary.from_dir(tmp_path).definitions
    assert definition.data_category == "optional"
    assert definition.tier == ("free", "premium")
    assert definition.performance_indicator_type == ()
    assert not (definition.is_gmau or definition.is_smau or definition.is_umau or definition.is_paid_gmau)


@pytest.mark.parametrize("missing", ["key_path", "time_frame", "value_type", "status"])
def test_missing_required_field_names_file_and_field(tmp_path: Path, missing: str) -> None:
    path = _write(tmp_path, "20260101000000_widgets.yml", **{missing: None})
    with pytest.raises(MetricDefinitionError) as error:
        MetricDictionary.from_dir(tmp_path)
    assert str(path) in str(error.value)
    assert f"'{missing}'" in str(error.value)


@pytest.mark.parametrize("time_frame", ["30d", "monthly", ["7d", "none"]])
def test_bad_time_frame_is_rejected(tmp_path: Path, time_frame: object) -> None:
    _write(tmp_path, "20260101000000_widgets.yml", time_frame=time_frame)
    with pytest.raises(MetricDefinitionError, match="20260101000000_widgets.yml: field 'time_frame'"):
        MetricDictionary.from_dir(tmp_path)


def test_duplicate_key_path_across_files(tmp_path: Path) -> None:
    _write(tmp_path, "20260101000000_widgets.yml")
    (tmp_path / "other").mkdir()
    _write(tmp_path / "other", "20260102000000_widgets.yml")
    with pytest.raises(MetricDefinitionError, match="duplicate key_path 'counts.widgets'") as error:
        MetricDictionary.from_dir(tmp_path)
    assert "field 'key_path'" in str(error.value)


def test_duplicate_created_by_list_expansion(tmp_path: Path) -> None:
    _write(tmp_path, "20260101000000_widgets.yml", time_frame=["7d", "28d", "all"])
    _write(tmp_path, "20260102000000_widgets_weekly.yml", key_path="counts.widgets_weekly", time_frame="7d")
    with pytest.raises(MetricDefinitionError, match="duplicate key_path 'counts.widgets_weekly'"):
        MetricDictionary.from_dir(tmp_path)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("counts_weekly.deployments", "7d"),
        ("counts_weekly.aggregated_metrics.code_review_group_monthly_active_users", "7d"),
        ("redis_hll_counters.search.i_search_total_weekly", "7d"),
        ("counts.count_total_anything_weekly", "7d"),
        ("counts_monthly.deployments", "28d"),
        ("usage_activity_by_stage_monthly.verify.ci_pipelines", "28d"),
        ("redis_hll_counters.search.i_search_total_monthly", "28d"),
        ("counts.ci_builds", "all"),
        ("usage_activity_by_stage.plan.issues", "all"),
        ("topology.nodes[0].node_cpus", "none"),
        ("active_user_count", "none"),
    ],
)
def test_time_frame_from_path(path: str, expected: str) -> None:
    assert time_frame_from_path(path) == expected


def test_time_frame_prefers_the_definition(dictionary: MetricDictionary) -> None:
    assert dictionary.time_frame("topology.nodes[0].node_cpus") == "none"
    assert dictionary.time_frame("counts.undefined_thing") == "all"
