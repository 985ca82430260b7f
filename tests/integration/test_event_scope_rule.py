"""The event scope rule has one definition, the view prep_behavior_event_scope (clickhouse/070); the Snowplow
sink's copy for usage.landed (streams/alerts/landed.py event_scopes, which runs on a batch in memory) must give the
same instance and namespace scopes for every kind of event."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from streams.alerts.landed import event_scopes
from streams.warehouse import ServerWarehouse

pytestmark = pytest.mark.integration

# (instance_id, realm, deployment_type, namespace_id, ultimate_parent_namespace_id): every branch of the rule
CASES = [
    ("uuid-sm", "self-managed", "self-managed", 0, 0),  # a self-managed backend event: its instance
    ("uuid-sm", "self-managed", "self-managed", 7, 3),  # self-managed namespace ids are local: instance only
    ("", "saas", "", 12, 4),  # SaaS: the top-level namespace
    ("", "", ".com", 12, 0),  # SaaS by deployment type, no parent: the namespace itself
    ("uuid-com", "saas", ".com", 0, 9),  # gitlab.com's own backend event: instance and namespace
    ("", "saas", "", 0, 0),  # SaaS outside any namespace: only the 'saas' scope, no alert scope
    ("", "", "", 5, 5),  # neither: no scope at all
]


def test_the_sink_copy_gives_the_view_s_instance_and_namespace_scopes(warehouse: ServerWarehouse) -> None:
    now = datetime(2026, 11, 2, 10, tzinfo=UTC)
    rows = [{"event_id": f"e{i}", "event_type": "struct", "event_category": "c", "event_action": "a",
             "collector_tstamp": now, "derived_tstamp": now, "behavior_date": date(2026, 11, 2), "user_hash": i + 1,
             "instance_id": instance, "realm": realm, "deployment_type": deployment,
             "namespace_id": namespace, "ultimate_parent_namespace_id": parent, "ingested_at": now}
            for i, (instance, realm, deployment, namespace, parent) in enumerate(CASES)]
    warehouse.insert("fct_behavior_structured_event", rows)
    stored = warehouse.query("SELECT user_hash, scope, scope_id FROM prep_behavior_event_scope").rows
    view = {(int(user), scope, scope_id) for user, scope, scope_id in stored if scope != "saas"}
    sink = {(row["user_hash"], scope, scope_id) for row in rows for scope, scope_id in event_scopes([row])}
    assert sink == view
    assert {scope for _, scope, _ in view} == {"instance", "namespace"}
    assert {user for user, scope, _ in stored if scope == "saas"} == {3, 4, 5, 6}  # the view's own SaaS scope
