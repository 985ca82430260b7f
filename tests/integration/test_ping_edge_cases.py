"""Service Ping edge cases (docs/ping_marts.md, "Service Ping edge cases"): one test per rule, each landing real
pings through the sink functions into the real engine (chdb) and reading the rows back.

Expected values are written out from the payloads built here, not computed by the code under test.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import pytest

from fleet.pings import generate_fleet
from streams.agents.service_ping import ServicePingNormalizer
from streams.enrich.metric_dictionary import MetricDictionary
from streams.enrich.service_ping import flatten_columns
from streams.warehouse import Warehouse
from streams.warehouse.writers import write_pings
from tests.support.ping_model import open_warehouse

ALL_TIME = "counts.kubernetes_agents"  # a dictionary metric with time_frame all
RECEIVED = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def dictionary() -> MetricDictionary:
    return MetricDictionary.from_dir()


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory, dictionary: MetricDictionary) -> Iterator[Warehouse]:
    engine = open_warehouse(tmp_path_factory.mktemp("edge") / "chdb", dictionary)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def base() -> dict:
    return [p for p in generate_fleet(2, 2, seed=3) if p.valid][0].payload


def _ping(base: dict, uuid: str, recorded_at: str, **counts: object) -> dict:
    payload = copy.deepcopy(base)
    payload.update(uuid=uuid, recorded_at=recorded_at)
    payload["counts"].update(counts)
    return payload


def _land(warehouse: Warehouse, dictionary: MetricDictionary, body: bytes, offset: int = 0) -> int:
    """Normalize the raw bytes as the agent does and write the record as the sink does; the ping id."""
    record = ServicePingNormalizer(dictionary)(body, {"kind": "ping", "received_at": RECEIVED.isoformat()}, 0, offset)
    record = orjson.loads(orjson.dumps(record))  # what travels over the normalized topic
    write_pings(warehouse, [record])
    return record["ping"]["ping_id"]


def _rows(warehouse: Warehouse, ping_id: int, prefix: str) -> dict[str, tuple]:
    rows = warehouse.query(
        "SELECT metrics_path, metric_value, error_value, value_kind, value_text FROM fct_ping_instance_metric FINAL "
        "WHERE ping_id = {id:UInt64} AND startsWith(metrics_path, {prefix:String})", {"id": ping_id, "prefix": prefix})
    return {path: rest for path, *rest in ((r[0], *r[1:]) for r in rows.rows)}


def test_dotted_keys_and_nested_keys_are_distinct_rows(warehouse, dictionary, base):
    counts = {"a.b": 1, "a": {"b": 2, "c.d": {"e": 3}, "": 4, "it's]": 5, "l": [6, {"x.y": 7}]}, "a[0]": 8}
    body = orjson.dumps(_ping(base, "edge-dots", "2026-06-03T10:00:00Z", edge=counts))
    ping_id = _land(warehouse, dictionary, body)
    values = {path: value for path, (value, *_) in _rows(warehouse, ping_id, "counts.edge").items()}
    assert values == {
        "counts.edge['a.b']": 1, "counts.edge.a.b": 2, "counts.edge.a['c.d'].e": 3, "counts.edge.a['']": 4,
        "counts.edge.a['it\\'s]']": 5, "counts.edge.a.l[0]": 6, "counts.edge.a.l[1]['x.y']": 7,
        "counts.edge['a[0]']": 8,
    }


def test_only_the_exact_markers_are_error_markers_and_no_negative_is_dropped(warehouse, dictionary, base):
    sent = {"m_a": -1.5, "m_b": -0.5, "m_c": -1, "m_d": -1.0, "m_e": -2, "m_f": -1000, "m_g": -3, "m_h": -0.0}
    ping_id = _land(warehouse, dictionary, orjson.dumps(_ping(base, "edge-neg", "2026-06-03T10:00:00Z", **sent)))
    assert _rows(warehouse, ping_id, "counts.m_") == {
        "counts.m_a": [None, 0, "negative", "-1.5"],
        "counts.m_b": [None, 0, "negative", "-0.5"],
        "counts.m_c": [None, -1, "error_marker", ""],
        "counts.m_d": [None, -1, "error_marker", ""],
        "counts.m_e": [None, -2, "error_marker", ""],
        "counts.m_f": [None, -1000, "error_marker", ""],
        "counts.m_g": [None, 0, "negative", "-3"],
        "counts.m_h": [0, 0, "number", ""],
    }


def test_values_a_column_cannot_hold_are_flagged_rows_and_the_rest_of_the_ping_lands(warehouse, dictionary, base):
    literals = {"big_a": "1152921504606846979", "big_b": "9223372036854775809", "big_c": "18446744073709551616",
                "big_d": "123456789012345678901234567890", "big_e": "-4294967296", "big_f": "-1e30",
                "big_g": "9007199254740992"}
    payload = _ping(base, "edge-big", "2026-06-03T10:00:00Z", big_placeholder=0)
    body = orjson.dumps(payload).replace(
        b'"big_placeholder":0', b",".join(f'"{k}":{v}'.encode() for k, v in literals.items()))
    ping_id = _land(warehouse, dictionary, body)
    assert _rows(warehouse, ping_id, "counts.big_") == {
        "counts.big_a": [None, 0, "too_large", "1152921504606846979"],
        "counts.big_b": [None, 0, "too_large", "9223372036854775809"],
        "counts.big_c": [None, 0, "too_large", "18446744073709551616"],
        "counts.big_d": [None, 0, "too_large", "123456789012345678901234567890"],
        "counts.big_e": [None, 0, "negative", "-4294967296"],
        "counts.big_f": [None, 0, "negative", "-1e+30"],
        "counts.big_g": [9007199254740992, 0, "number", ""],
    }
    # every other metric of the ping landed, with the values the payload holds
    paths, values, _ = flatten_columns(payload)
    others = {p: v for p, v in zip(paths, values, strict=True) if p != "counts.big_placeholder"}
    stored = warehouse.query(
        "SELECT metrics_path, ifNull(metric_value, error_value) FROM fct_ping_instance_metric FINAL "
        "WHERE ping_id = {id:UInt64} AND NOT startsWith(metrics_path, 'counts.big_')", {"id": ping_id}).rows
    assert dict(stored) == others and len(others) > 100
    counts = warehouse.query("SELECT metric_count, flagged_metric_count FROM fct_ping_instance FINAL "
                             "WHERE ping_id = {id:UInt64}", {"id": ping_id}).rows
    assert counts == [(len(others) + len(literals), 6)]


def test_booleans_and_list_items_never_make_monthly_values(warehouse, dictionary, base):
    assert dictionary.get(ALL_TIME).time_frame == "all"
    key = ALL_TIME.split(".", 1)[1]
    months = [("2026-07-20T10:00:00Z", {key: 5}), ("2026-08-20T10:00:00Z", {key: True}),
              ("2026-09-20T10:00:00Z", {key: [7, 8]}), ("2026-10-20T10:00:00Z", {key: 12})]
    for offset, (recorded_at, counts) in enumerate(months):
        _land(warehouse, dictionary, orjson.dumps(_ping(base, "edge-bool", recorded_at, **counts)), offset)
    rows = warehouse.query(
        "SELECT toString(ping_created_date_month), metric_value, previous_metric_value, monthly_metric_value "
        "FROM fct_ping_instance_metric_monthly WHERE metrics_path = {path:String} AND installation_id IN "
        "(SELECT installation_id FROM fct_ping_instance FINAL WHERE instance_uuid = 'edge-bool') ORDER BY 1",
        {"path": ALL_TIME}).rows
    # August (a boolean) and September (a list: rows counts.kubernetes_agents[0], [1]) have no value; October's
    # delta is taken from July's 5
    assert rows == [("2026-07-01", 5, None, 5), ("2026-10-01", 12, 5, 7)]
    kinds = warehouse.query(
        "SELECT metrics_path, value_kind, metric_value, is_defined FROM fct_ping_instance_metric FINAL "
        "WHERE (metrics_path = {path:String} OR startsWith(metrics_path, {path:String} || '[')) AND installation_id IN "
        "(SELECT installation_id FROM fct_ping_instance FINAL WHERE instance_uuid = 'edge-bool') "
        "ORDER BY recorded_at, metrics_path", {"path": ALL_TIME}).rows
    assert kinds == [(ALL_TIME, "number", 5, 1), (ALL_TIME, "boolean", 1, 1), (ALL_TIME + "[0]", "number", 7, 0),
                     (ALL_TIME + "[1]", "number", 8, 0), (ALL_TIME, "number", 12, 1)]


def test_metrics_are_defined_by_the_exact_dictionary_path_only(warehouse, dictionary, base):
    provider = "usage_activity_by_stage_monthly.manage.user_auth_by_provider"
    assert dictionary.get("topology").value_type == "object"
    assert dictionary.get(provider).value_type == "object"
    payload = copy.deepcopy(base)
    payload.update(uuid="edge-defined", recorded_at="2026-06-03T10:00:00Z")
    payload["topology"] = {"nodes": [{"node_cpus": 8}]}
    payload["usage_activity_by_stage_monthly"].setdefault("manage", {})["user_auth_by_provider"] = {"ldapmain": 3}
    ping_id = _land(warehouse, dictionary, orjson.dumps(payload))
    rows = dict(warehouse.query(
        "SELECT metrics_path, is_defined FROM fct_ping_instance_metric FINAL WHERE ping_id = {id:UInt64} AND "
        "metrics_path IN ('topology.nodes[0].node_cpus', {provider:String}, {all:String})",
        {"id": ping_id, "provider": provider + ".ldapmain", "all": ALL_TIME}).rows)
    assert rows == {"topology.nodes[0].node_cpus": 0, provider + ".ldapmain": 0, ALL_TIME: 1}
