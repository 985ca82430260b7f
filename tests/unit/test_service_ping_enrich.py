"""Pure Service Ping logic: ids, versions, tiers, flattening."""

from datetime import UTC, date, datetime

import pytest

from streams.enrich.service_ping import (
    flatten_columns,
    installation_id_for,
    parse_version,
    product_tier,
    validation_errors,
)
from streams.records import parse_timestamp, ping_id_for, stable_id


def test_ping_id_is_positive_stable_and_keyed_by_uuid_and_recorded_at():
    ping = {"uuid": "u-1", "recorded_at": "2026-06-04T10:44:00.000+00:00"}
    first = ping_id_for(ping, b"ignored")
    assert first > 0
    assert first < 2**63
    assert ping_id_for(dict(ping, hostname="other"), b"x") == first
    assert ping_id_for(dict(ping, recorded_at="2026-06-11T10:44:00.000+00:00"), b"x") != first


def test_ping_id_without_identity_falls_back_to_body_hash():
    assert ping_id_for({"version": "1"}, b"a") == ping_id_for({}, b"a")
    assert ping_id_for({}, b"a") != ping_id_for({}, b"b")
    assert stable_id("a", "b") != stable_id("ab")


def test_installation_is_uuid_plus_hostname():
    assert installation_id_for("u", "a.example") != installation_id_for("u", "b.example")
    assert len(installation_id_for("u", None)) == 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("17.3.1", (17, 3, 1, "", "")),
        ("12.10.0-pre", (12, 10, 0, "pre", "")),
        ("16.11.2-ee", (16, 11, 2, "", "ee")),
        ("18.0.0-rc42.ee", (18, 0, 0, "rc42", "ee")),
    ],
)
def test_parse_version(text, expected):
    v = parse_version(text)
    assert (v.major, v.minor, v.patch, v.prerelease, v.edition_suffix) == expected
    assert v.is_prerelease == bool(expected[3])


@pytest.mark.parametrize("text", ["VERSION", "17.x", "", "17.1"])
def test_parse_version_rejects_garbage(text):
    with pytest.raises(ValueError):
        parse_version(text)


def test_parse_timestamp_normalizes_to_utc():
    assert parse_timestamp("2026-06-04T12:44:00.162+02:00") == datetime(2026, 6, 4, 10, 44, 0, 162000, tzinfo=UTC)
    assert parse_timestamp("2026-06-04 10:44:00").tzinfo == UTC
    assert parse_timestamp("2026-06-04T10:44:00Z").hour == 10


def test_product_tier_follows_the_reference_rule():
    at = datetime(2026, 6, 1, tzinfo=UTC)
    assert product_tier("CE", None, at) == "Free"
    assert product_tier("EE Free", None, at) == "Free"
    assert product_tier("EEU", date(2027, 1, 1), at) == "Ultimate"
    assert product_tier("EEP", date(2026, 5, 31), at) == "Free"  # expired license
    assert product_tier("EES", None, at) == "Starter"


def test_flatten_keeps_numbers_and_booleans_with_dotted_and_indexed_paths():
    payload = {
        "uuid": "u", "version": "17.0.0", "active_user_count": 12,
        "counts": {"ci_builds": 5, "issues": -1, "nested": {"x": 1.5}},
        "gravatar_enabled": True, "ldap_enabled": False,
        "database": {"pg_system_id": 2**62 + 7, "version": "14.9"},
        "license_id": 99,
        "topology": {"nodes": [{"node_cpus": 8, "node_services": [{"name": "web", "process_count": 16}]}]},
        "gitaly": {"filesystems": ["EXT4"]}, "licensee": None,
    }
    paths, values, booleans = flatten_columns(payload)
    assert [paths[i] for i in booleans] == ["gravatar_enabled", "ldap_enabled"]
    assert list(zip(paths, values, strict=True)) == [
        ("active_user_count", 12),
        ("counts.ci_builds", 5),
        ("counts.issues", -1),
        ("counts.nested.x", 1.5),
        ("gravatar_enabled", 1),
        ("ldap_enabled", 0),
        ("topology.nodes[0].node_cpus", 8),
        ("topology.nodes[0].node_services[0].process_count", 16),
    ]


def test_schema_names_the_failing_field():
    assert validation_errors({"uuid": "u", "recorded_at": "2026-06-04T10:44:00Z", "version": "17.0.0"}) == []
    errors = validation_errors({"recorded_at": "2026-06-04T10:44:00Z", "version": "17.x"})
    assert any("uuid" in e for e in errors)
    assert any(e.startswith("version:") for e in errors)
    assert validation_errors({"uuid": "u", "recorded_at": "yesterday", "version": "1.2.3"})[0].startswith("recorded_at")
    assert validation_errors([1, 2]) != []
