"""README "Extending": each extension point, done the way the README says, and the namespace-scope rule.

Files the README says to add to schemas/ are written to a copy of that folder (the tests never change the
project's own schemas); everything else runs the project's real code on a real chdb warehouse.
"""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import yaml

from streams import cli
from streams.agents.event_metrics import start_event_metrics
from streams.agents.snowplow import store_behavior_events
from streams.alerts.rules import RuleError, load_rules, metric_time_frames
from streams.config import PROJECT_ROOT, SCHEMAS_DIR
from streams.enrich.iglu import Registry
from streams.enrich.metric_dictionary import MetricDictionary
from streams.enrich.snowplow import BadEvent, Receipt, normalize_event
from streams.event_metrics.definitions import load_event_metrics
from streams.warehouse import Warehouse
from tests.support.fresh import fresh_warehouse

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
KEY = b"extending-test-key"
STANDARD = "iglu:com.denomas/denomas_standard/jsonschema/1-0-0"
CONTEXTS = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1"
UNSTRUCT = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0"
CHECKOUT = "iglu:com.denomas/cart_checkout/jsonschema/1-0-0"
DAY = datetime(2026, 6, 30, 12, tzinfo=UTC)  # a month's last day: the monthly marts show it


def _section(title: str) -> str:
    start = README.index("## Extending")
    block = README[start:README.index("\n## ", start + 1)]
    assert f"**{title}**" in block, f"README Extending has no step {title!r}"
    return block


def _event(user: str, action: str = "", schema: str | None = None, data: dict | None = None, **context) -> dict:
    """A tracker event: structured (`action`) or self-describing (`schema`, `data`), with the standard context."""
    event = {"e": "se", "eid": _eid(user, action, context), "tv": "py-1.1.0", "p": "srv", "uid": user,
             "dtm": str(int(DAY.timestamp() * 1000)), "se_ca": "InternalEventTracking", "se_ac": action,
             "co": orjson.dumps({"schema": CONTEXTS, "data": [
                 {"schema": STANDARD, "data": {"environment": "production"} | context}]}).decode()}
    if schema:
        event = {k: v for k, v in event.items() if not k.startswith("se_")} | {
            "e": "ue", "ue_pr": orjson.dumps({"schema": UNSTRUCT, "data": {"schema": schema, "data": data}}).decode()}
    return event


def _eid(*parts: object) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, repr(parts)))


def _normalize(event: dict, registry: Registry) -> dict:
    return normalize_event(event, Receipt(DAY, "req", 0, "collector-1", "python-requests"), registry, KEY)


def _warehouse(tmp_path: Path) -> Warehouse:
    return fresh_warehouse()


def _store(warehouse: Warehouse, events: list[dict], registry: Registry) -> None:
    store_behavior_events(warehouse, [{"row": _normalize(e, registry)} for e in events])


# ---------------------------------------------------------------------------------------------------


def test_namespace_scope_rule(tmp_path):
    _section("Which events count for a namespace.")
    events = [
        _event("u1", "i_search_total", realm="saas", namespace_id=30001, ultimate_parent_namespace_id=20001),
        _event("u2", "i_search_total", realm="saas", namespace_id=20001, ultimate_parent_namespace_id=20001),
        _event("u3", "i_search_total", deployment_type=".com", namespace_id=20002),  # .com alone is SaaS
        _event("u4", "i_search_total", realm="self-managed", deployment_type="self-managed", namespace_id=20001,
               ultimate_parent_namespace_id=20001, instance_id="0b7e8a52-5bc1-4b8a-9a57-5f1fb1f4a3a1"),
    ]
    warehouse = _warehouse(tmp_path)
    try:
        _store(warehouse, events, Registry.from_dir())
        rows = warehouse.query("SELECT scope, scope_id, groupBitmapMerge(users) FROM agg_behavior_active_daily "
                               "GROUP BY scope, scope_id ORDER BY scope, scope_id").rows
    finally:
        warehouse.close()
    got = {(scope, scope_id): int(users) for scope, scope_id, users in rows}
    assert got == {
        ("namespace", "20001"): 2,  # u1 (a subgroup, counted under its parent) and u2; not the self-managed u4
        ("namespace", "20002"): 1,  # u3
        ("saas", "all"): 3,  # every SaaS user once
        ("instance", "0b7e8a52-5bc1-4b8a-9a57-5f1fb1f4a3a1"): 1,  # u4 counts for its instance only
    }


def test_adding_a_snowplow_schema(tmp_path):
    _section("A Snowplow (Iglu) schema.")
    folder = tmp_path / "snowplow"
    shutil.copytree(SCHEMAS_DIR / "snowplow", folder)
    (folder / "com.denomas.cart_checkout_1-0-0.json").write_text(orjson.dumps({
        "$schema": "http://iglu.snowplowanalytics.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#",
        "self": {"vendor": "com.denomas", "name": "cart_checkout", "format": "jsonschema", "version": "1-0-0"},
        "type": "object", "required": ["seats"], "additionalProperties": False,
        "properties": {"seats": {"type": "integer", "minimum": 1}},
    }).decode())
    before, after = Registry.from_dir(), Registry.from_dir(folder)  # what the worker loads at start
    good = _event("u1", schema=CHECKOUT, data={"seats": 5}, realm="saas")
    row = _normalize(good, after)
    assert (row["event_type"], row["event_schema"], orjson.loads(row["event_data"])) == (
        "unstruct", CHECKOUT, {"seats": 5})
    with pytest.raises(BadEvent, match="seats"):
        _normalize(_event("u1", schema=CHECKOUT, data={"seats": 0}, realm="saas"), after)
    with pytest.raises(BadEvent, match="schema not found in the registry"):
        _normalize(good, before)  # before the file was added


def test_adding_an_event_metric(tmp_path):
    _section("An event metric.")
    folder = tmp_path / "event_metrics"
    shutil.copytree(SCHEMAS_DIR / "event_metrics", folder)
    (folder / "systems").mkdir(exist_ok=True)
    (folder / "systems" / "search_power_users.yml").write_text(yaml.safe_dump({
        "key_path": "counts_monthly.aggregated_metrics.search_power_users",
        "description": "Users who searched and used paid search in the last 28 days",
        "product_section": "core_platform", "product_stage": "systems", "product_group": "global_search",
        "value_type": "user", "operator": "AND", "status": "active", "time_frame": "28d",
        "events": [{"name": "i_search_total"}, {"name": "i_search_paid"}],
        "tier": ["premium", "ultimate"], "performance_indicator_type": ["gmau"],
    }))
    events = [_event("u1", "i_search_total", realm="saas", namespace_id=20001),
              _event("u1", "i_search_paid", realm="saas", namespace_id=20001),
              _event("u2", "i_search_total", realm="saas", namespace_id=20001)]
    warehouse = _warehouse(tmp_path)
    try:
        _store(warehouse, events, Registry.from_dir())
        start_event_metrics(warehouse, load_event_metrics())  # a worker started before the file existed
        written, recomputed = start_event_metrics(warehouse, load_event_metrics(folder))  # restarted after
        mart = warehouse.query(
            "SELECT month, namespace_id, time_frame, value_type, product_stage, metric_value "
            "FROM mart_saas_usage_namespace_monthly WHERE metrics_path = {p:String}",
            {"p": "counts_monthly.aggregated_metrics.search_power_users"}).rows
        xmau = warehouse.query("SELECT xmau_type, recorded_users FROM rpt_xmau_monthly WHERE delivery = 'SaaS' "
                               "AND metrics_path = 'counts_monthly.aggregated_metrics.search_power_users'").rows
        again = start_event_metrics(warehouse, load_event_metrics(folder))
    finally:
        warehouse.close()
    assert (written, recomputed) == (len(load_event_metrics()) + 1, 1)  # only the new definition is recomputed
    assert [tuple(map(str, row)) for row in mart] == [("2026-06-01", "20001", "28d", "user", "systems", "1")]
    assert [(kind, int(users)) for kind, users in xmau] == [("GMAU", 1)]  # u1 did both, u2 only one
    assert again[1] == 0


def test_adding_a_service_ping_metric(tmp_path):
    _section("A Service Ping metric.")
    folder = tmp_path / "metrics"
    shutil.copytree(SCHEMAS_DIR / "metrics", folder)
    key = "counts_monthly.cart_checkouts"
    (folder / "growth" / "20260610000000_cart_checkouts.yml").write_text(yaml.safe_dump({
        "key_path": key, "description": "Checkouts in the last 28 days", "product_section": "growth",
        "product_stage": "growth", "product_group": "acquisition", "value_type": "number", "status": "active",
        "time_frame": "28d", "data_source": "database", "data_category": "optional", "distribution": ["ce", "ee"],
        "tier": ["free", "premium", "ultimate"], "performance_indicator_type": [], "milestone": "18.2",
    }))
    assert MetricDictionary.from_dir().get(key) is None
    dictionary = MetricDictionary.from_dir(folder)  # what the worker loads at start
    definition = dictionary.lookup(key)
    assert definition is not None and definition.key_path == key
    assert (dictionary.time_frame(key), definition.product_stage) == ("28d", "growth")


def test_adding_an_alert_rule(tmp_path):
    _section("An alert rule.")
    rules = yaml.safe_load((SCHEMAS_DIR / "alert_rules.yml").read_text())
    metric = "counts_monthly.merge_requests"
    rules["rules"].append({
        "name": "instance_merge_requests_drop", "description": "Merge requests of the last 28 days fell by half",
        "scope": "instance", "signal": {"source": "service_ping", "metric": metric},
        "condition": {"type": "relative_drop", "min_drop_pct": 50}, "min_population": 10, "cooldown": "14d",
        "resolve": {"recovery_pct": 90},
    })
    path = tmp_path / "alert_rules.yml"
    path.write_text(yaml.safe_dump(rules))
    assert cli.main(["alerts", "validate", "--rules", str(path)]) == 0
    frames = metric_time_frames(MetricDictionary.from_dir())
    assert frames[metric] == "28d"
    assert "instance_merge_requests_drop" in {rule.name for rule in load_rules(path, frames).rules}
    rules["rules"][-1]["signal"]["metric"] = "counts.no_such_metric"
    path.write_text(yaml.safe_dump(rules))
    with pytest.raises(RuleError, match="no_such_metric"):
        load_rules(path, frames)
    assert cli.main(["alerts", "validate", "--rules", str(path)]) != 0


def test_the_readme_names_every_extension_point():
    for title in ("Which events count for a namespace.", "A Snowplow (Iglu) schema.", "An event metric.",
                  "A Service Ping metric.", "An alert rule."):
        assert _section(title)
