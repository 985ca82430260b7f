"""The alert tables (clickhouse/090-092): evaluator state, alerts, webhook deliveries."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson

from streams.alerts.evaluate import RESOLVED, OpenAlert, Scope, ScopeState, Transition
from streams.alerts.params import id_list, json_ids
from streams.alerts.rules import Rule
from streams.warehouse import Warehouse

IDS = id_list("ids")


@dataclass(frozen=True)
class StoredState:
    state: ScopeState
    opened_at: datetime | None = None  # wall clock of the open alert's detection


def _d(value: Any) -> date | None:
    return date.fromisoformat(str(value)[:10]) if value not in (None, "") else None


def _ts(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace(" ", "T")).replace(tzinfo=UTC)


def load_states(warehouse: Warehouse, rule: Rule, scope_ids: Iterable[str]) -> dict[str, StoredState]:
    """The stored state of `rule` for these scopes (absent: never evaluated)."""
    ids = sorted(set(scope_ids))
    if not ids:
        return {}
    result = warehouse.query(
        f"""SELECT scope_id, evaluated_through, last_change, last_resolved, open_alert_id, open_period, open_value,
                   open_baseline, open_threshold, open_opened_at
            FROM alert_scope_state FINAL
            WHERE rule = {{rule:String}} AND scope_type = {{scope:String}} AND scope_id IN {IDS}""",
        {"rule": rule.name, "scope": rule.scope, "ids": json_ids(ids)},
    )
    states = {}
    for sid, through, change, resolved, alert_id, period, value, baseline, threshold, opened_at in result.rows:
        open_alert = None
        if alert_id:
            open_alert = OpenAlert(alert_id, _d(period), float(value), float(baseline), float(threshold))
        states[sid] = StoredState(ScopeState(_d(through), _d(change), _d(resolved), open_alert), _ts(opened_at))
    return states


def state_row(rule: Rule, scope: Scope, stored: StoredState, updated_at: datetime) -> dict:
    state, alert = stored.state, stored.state.open
    return {
        "rule": rule.name, "scope_type": scope.type, "scope_id": scope.id,
        "evaluated_through": state.evaluated_through or date(1970, 1, 1),
        "last_change": state.last_change, "last_resolved": state.last_resolved,
        "open_alert_id": alert.alert_id if alert else "", "open_period": alert.opened_period if alert else None,
        "open_value": alert.value if alert else None, "open_baseline": alert.baseline if alert else None,
        "open_threshold": alert.threshold if alert else None,
        "open_opened_at": stored.opened_at if alert else None, "updated_at": updated_at,
    }


def alert_row(rule: Rule, transition: Transition, event: dict, opened_at: datetime, detected_at: datetime) -> dict:
    t = transition
    resolved = t.state == RESOLVED
    return {
        "alert_id": t.alert_id, "rule": rule.name, "scope_type": t.scope.type, "scope_id": t.scope.id,
        "signal_source": rule.signal.source, "signal": rule.signal.describe(),
        "condition_type": rule.condition.type, "state": t.state, "state_rank": 2 if resolved else 1,
        "opened_period": t.opened_period, "opened_value": t.opened_value, "baseline": t.baseline,
        "threshold": t.threshold,
        "resolved_period": t.period if resolved else None, "resolved_value": t.value if resolved else None,
        "opened_at": opened_at, "resolved_at": detected_at if resolved else None,
        "event": orjson.dumps(event),
    }


def write_evaluation(warehouse: Warehouse, alert_rows: Sequence[dict], state_rows: Sequence[dict]) -> None:
    """Alerts first, state last: a crash in between re-evaluates (same ids) instead of forgetting an alert."""
    warehouse.insert("alerts", list(alert_rows))
    warehouse.insert("alert_scope_state", list(state_rows))


def list_alerts(warehouse: Warehouse, open_only: bool = False, since: date | None = None) -> list[dict]:
    result = warehouse.query(
        """SELECT alert_id, rule, scope_type, scope_id, state, opened_period, opened_value, baseline, threshold,
                  resolved_period, resolved_value, opened_at, resolved_at, signal
           FROM alerts FINAL
           WHERE ({open_only:UInt8} = 0 OR state = 'open') AND opened_period >= {since:Date}
           ORDER BY opened_period, rule, scope_type, scope_id""",
        {"open_only": int(open_only), "since": (since or date(1970, 1, 1)).isoformat()},
    )
    return result.dicts()


# ---------------------------------------------------------------------------------------------------
# Webhook deliveries


@dataclass(frozen=True)
class Delivery:
    """One event for one destination, with where it sits on usage.alerts."""

    destination: str
    event: dict
    attempts: int = 0  # made so far
    partition: int = 0
    offset: int = 0


def delivery_row(delivery: Delivery, status: str, attempts: int, http_status: int, error: str,
                 next_attempt_at: datetime, now: datetime) -> dict:
    final = status in ("delivered", "dead")
    event = delivery.event
    return {
        "destination": delivery.destination, "event_id": event["event_id"], "alert_id": event["alert_id"],
        "status": status, "attempts": attempts, "http_status": http_status, "last_error": error[:2000],
        "next_attempt_at": next_attempt_at, "event": orjson.dumps(event), "kafka_partition": delivery.partition,
        "kafka_offset": delivery.offset, "updated_at": now, "version": 2 * attempts + (1 if final else 0),
    }


def finished_deliveries(warehouse: Warehouse, destination: str, event_ids: Sequence[str]) -> set[str]:
    """Events already delivered (or given up on) for this destination: a redelivered record is not resent."""
    if not event_ids:
        return set()
    result = warehouse.query(
        f"""SELECT event_id FROM alert_delivery FINAL
            WHERE destination = {{d:String}} AND event_id IN {IDS} AND status IN ('delivered', 'dead')""",
        {"d": destination, "ids": json_ids(event_ids)},
    )
    return {row[0] for row in result.rows}


def pending_deliveries(warehouse: Warehouse, limit: int = 500) -> list[tuple[Delivery, datetime]]:
    """Parked deliveries with the time of their next attempt, soonest first."""
    result = warehouse.query(
        """SELECT destination, event, attempts, kafka_partition, kafka_offset, next_attempt_at
           FROM alert_delivery FINAL WHERE status = 'pending'
           ORDER BY next_attempt_at, event_id LIMIT {limit:UInt32}""",
        {"limit": limit},
    )
    return [(Delivery(d, orjson.loads(e), int(a), int(p), int(o)), _ts(at) or datetime.now(UTC))
            for d, e, a, p, o, at in result.rows]


def pending_alert_ids(warehouse: Warehouse, destination: str, alert_ids: Sequence[str]) -> set[str]:
    """Alerts with an event still parked for this destination: their later events wait behind it."""
    if not alert_ids:
        return set()
    result = warehouse.query(
        f"""SELECT DISTINCT alert_id FROM alert_delivery FINAL
            WHERE destination = {{d:String}} AND alert_id IN {IDS} AND status = 'pending'""",
        {"d": destination, "ids": json_ids(alert_ids)},
    )
    return {row[0] for row in result.rows}


def write_deliveries(warehouse: Warehouse, rows: Sequence[dict]) -> int:
    return warehouse.insert("alert_delivery", list(rows))
