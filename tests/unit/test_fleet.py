"""The sample fleet: determinism, realism, and agreement with the dictionary and the payload schema."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from fleet.ping_catalog import DEFECTS
from fleet.ping_metrics import CUMULATIVE_COUNT_PATHS, ERROR_MARKERS, STAGE_MONTHLY_USER_PATHS, WINDOW_PAIRS
from fleet.pings import GeneratedPing, fleet_summary, generate_fleet
from streams.config import SCHEMAS_DIR
from streams.enrich.metric_dictionary import MetricDictionary


@pytest.fixture(scope="module")
def fleet() -> list[GeneratedPing]:
    return generate_fleet(50, 12)


@pytest.fixture(scope="module")
def by_instance(fleet: list[GeneratedPing]) -> dict[str, list[GeneratedPing]]:
    grouped: dict[str, list[GeneratedPing]] = defaultdict(list)
    for ping in fleet:
        grouped[ping.uuid].append(ping)
    return grouped


def _leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten a payload the way the warehouse does: dotted keys, list items as [i]."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_leaves(value, f"{prefix}.{key}" if prefix else key))
        return out
    if isinstance(node, list):
        out = {}
        for i, value in enumerate(node):
            out.update(_leaves(value, f"{prefix}[{i}]"))
        return out
    return {prefix: node}


def test_same_seed_same_bodies_different_seed_different() -> None:
    first = [ping.body() for ping in generate_fleet(8, 4, seed=7)]
    again = [ping.body() for ping in generate_fleet(8, 4, seed=7)]
    other = [ping.body() for ping in generate_fleet(8, 4, seed=8)]
    assert first == again
    assert first != other


def test_ordered_by_recorded_at(fleet: list[GeneratedPing]) -> None:
    stamps = [ping.recorded_at for ping in fleet]
    assert stamps == sorted(stamps)
    assert all(stamp.endswith("+00:00") and stamp[10] == "T" for stamp in stamps)


def test_generation_is_fast() -> None:
    started = time.perf_counter()
    generate_fleet(50, 12)
    assert time.perf_counter() - started < 4.0  # typically ~0.4 s; headroom for slow CI machines


def test_every_expected_path_is_defined(fleet: list[GeneratedPing]) -> None:
    dictionary = MetricDictionary.from_dir()
    undefined = {path for ping in fleet for path in ping.expected_metrics if dictionary.lookup(path) is None}
    assert not undefined
    leaves = {path for ping in fleet if ping.valid for path in _leaves(ping.payload)}
    assert not {path for path in leaves if dictionary.lookup(path) is None}
    used = {dictionary.lookup(path).status for path in leaves}
    assert used == {"active"}, "removed and deprecated metrics are not sent"


def test_expected_metrics_match_the_numeric_leaves(fleet: list[GeneratedPing]) -> None:
    for ping in fleet:
        if not ping.valid:
            continue
        numeric = {
            path: int(value) if isinstance(value, bool) else value
            for path, value in _leaves(ping.payload).items()
            if isinstance(value, int | float) and path not in ("database.pg_system_id", "license_id")
        }
        assert numeric == ping.expected_metrics
        assert all(isinstance(value, int | float) for value in ping.expected_metrics.values())


def test_schema_validity_matches_valid_flag(fleet: list[GeneratedPing]) -> None:
    schema = json.loads((SCHEMAS_DIR / "service_ping.schema.json").read_text(encoding="utf-8"))
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    for ping in fleet:
        errors = list(validator.iter_errors(orjson.loads(ping.body())))
        assert (not errors) == ping.valid, (ping.defect, [error.message for error in errors])


def test_defects(fleet: list[GeneratedPing]) -> None:
    invalid = [ping for ping in fleet if not ping.valid]
    assert 0.02 <= len(invalid) / len(fleet) <= 0.04
    assert {ping.defect for ping in invalid} == set(DEFECTS)
    assert all(ping.defect is None for ping in fleet if ping.valid)
    assert all(ping.expected_metrics for ping in invalid)


def test_all_time_counts_never_decrease(by_instance: dict[str, list[GeneratedPing]]) -> None:
    for pings in by_instance.values():
        if pings[0].scenario == "reset":
            continue
        for path in CUMULATIVE_COUNT_PATHS:
            values = [p.expected_metrics[path] for p in pings if p.expected_metrics.get(path, -1) >= 0]
            assert values == sorted(values), path


def test_reset_instance_drops_its_all_time_counts(by_instance: dict[str, list[GeneratedPing]]) -> None:
    (pings,) = [pings for pings in by_instance.values() if pings[0].scenario == "reset"]
    notes = [p.expected_metrics["counts.notes"] for p in pings if p.expected_metrics["counts.notes"] >= 0]
    assert notes != sorted(notes)


def test_windows_and_users_are_consistent(fleet: list[GeneratedPing]) -> None:
    for ping in fleet:
        metrics = ping.expected_metrics
        for weekly, monthly in WINDOW_PAIRS:
            if weekly in metrics and metrics[weekly] >= 0 and metrics[monthly] >= 0:
                assert metrics[weekly] <= metrics[monthly], (weekly, monthly)
        for path in STAGE_MONTHLY_USER_PATHS:
            assert metrics.get(path, 0) <= metrics["active_user_count"], path
        runners = [metrics.get(f"counts.ci_runners_{kind}_type_active", 0) for kind in ("instance", "group", "project")]
        if metrics["counts.ci_runners"] >= 0 and min(runners) >= 0:
            assert sum(runners) <= metrics["counts.ci_runners"]


def test_drop_and_churn_scenarios(by_instance: dict[str, list[GeneratedPing]]) -> None:
    scenarios = {pings[0].scenario for pings in by_instance.values()}
    assert {"steady", "growth", "drop", "churn", "reset"} <= scenarios
    for pings in by_instance.values():
        users = [p.expected_metrics["active_user_count"] for p in pings]
        fell = [i for i in range(1, len(users)) if users[i] < 0.6 * users[i - 1]]
        if pings[0].scenario == "drop":
            assert fell, users
            assert users[-1] > 0.9 * users[fell[0] - 1], "drop recovers"
        elif pings[0].scenario == "churn":
            assert len(pings) < 12
        else:
            assert not fell


def test_error_markers_present(fleet: list[GeneratedPing]) -> None:
    values = [value for ping in fleet for value in ping.expected_metrics.values()]
    markers = [value for value in values if value in ERROR_MARKERS]
    assert {-1, -2, -1000} <= set(markers)
    assert 0.001 < len(markers) / len(values) < 0.02


def test_identifiers_and_large_ints(fleet: list[GeneratedPing]) -> None:
    for ping in fleet:
        system_id = ping.payload["database"]["pg_system_id"]
        assert system_id > 2**53
        assert orjson.loads(ping.body())["database"]["pg_system_id"] == system_id
        assert "database.pg_system_id" not in ping.expected_metrics
        assert "license_id" not in ping.expected_metrics


def test_licenses_only_on_licensed_ee(fleet: list[GeneratedPing]) -> None:
    for ping in fleet:
        payload = ping.payload
        if payload["edition"] in ("CE", "EE Free"):
            assert "license_md5" not in payload
            continue
        assert len(payload["license_md5"]) == 32 and len(payload["license_sha256"]) == 64
        assert payload["license_trial"] or payload["license_subscription_id"].startswith("2c92a0ff")
    assert any(ping.payload.get("license_trial") for ping in fleet)


def test_topology_versions_and_types(by_instance: dict[str, list[GeneratedPing]]) -> None:
    pings = [ping for group in by_instance.values() for ping in group]
    assert any(len(p.payload["topology"]["nodes"]) > 1 for p in pings)
    assert any(len({len(p.payload["topology"]["nodes"]) for p in group}) > 1 for group in by_instance.values())
    assert any("topology.nodes[0].node_services[2].process_count" in p.expected_metrics for p in pings)
    assert any(len({p.payload["git"]["version"]["minor"] for p in group}) > 1 for group in by_instance.values())
    versions = {p.payload["version"] for p in pings if p.valid}
    assert any(v.startswith("17.") for v in versions) and any(v.startswith("18.") for v in versions)
    assert any(v.endswith("-pre") for v in versions) or any(v.endswith("-ee") for v in versions)
    assert {p.payload["installation_type"] for p in pings} >= {"omnibus-gitlab", "gitlab-helm-chart", "docker"}
    assert {p.payload["edition"] for p in pings} >= {"CE", "EE Free", "EEP", "EEU"}
    assert all(isinstance(p.payload["gitaly"]["version"], str) for p in pings)
    assert all(p.expected_metrics["settings.ldap_encrypted_secrets_enabled"] in (0, 1) for p in pings)


def test_weekly_schedule_is_stable_per_instance(by_instance: dict[str, list[GeneratedPing]]) -> None:
    for pings in by_instance.values():
        assert len({p.recorded_at[11:16] for p in pings}) == 1
        assert len({p.hostname for p in pings}) == 1


def test_fleet_summary(fleet: list[GeneratedPing]) -> None:
    summary = fleet_summary(fleet)
    assert summary["instances"] == 50
    assert summary["pings"] == len(fleet) == summary["valid"] + summary["invalid"]
    assert summary["metric_rows"] == sum(len(p.expected_metrics) for p in fleet if p.valid)
    assert summary["metric_rows"] > 100 * summary["valid"]
