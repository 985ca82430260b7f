"""Evaluate the rules for the scopes some data just landed for (synchronous; the agent runs it in a thread).

A landing names a source and scopes ("service_ping", instance <installation_id>). For every enabled rule on
that source, the affected scopes of the rule's own scope type are found (an installation's subscription and
account too), their stored state and recent history are read, the new points are evaluated, and the result
is returned as events to publish plus rows to store. Nothing is written here, so the caller decides the
order: publish the events, then store the rows, then acknowledge the landing records.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from streams.alerts import store
from streams.alerts.evaluate import OPEN, Scope, ScopeState, alert_event, evaluate_scope
from streams.alerts.landed import Landed
from streams.alerts.rules import AlertConfig, Rule
from streams.alerts.signals import SignalReader
from streams.warehouse import Warehouse

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    events: list[tuple[Rule, dict]] = field(default_factory=list)  # in order of detection
    alert_rows: list[dict] = field(default_factory=list)
    state_rows: list[dict] = field(default_factory=list)
    scopes_evaluated: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # rule -> why it was not evaluated
    errors: dict[str, str] = field(default_factory=dict)  # rule -> the exception its evaluation raised


class Engine:
    def __init__(self, warehouse: Warehouse, config: AlertConfig,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.warehouse = warehouse
        self.config = config
        self.reader = SignalReader(warehouse)
        self.clock = clock
        self._warned: set[str] = set()

    def evaluate(self, landed: Iterable[Landed]) -> Evaluation:
        by_source: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        landed_at: dict[str, str] = {}
        for item in landed:
            by_source[item.source][item.scope_type].add(item.scope_id)
            if item.landed_at:
                landed_at[item.source] = max(landed_at.get(item.source, ""), item.landed_at)
        result = Evaluation()
        now = self.clock()
        for rule in self.config.active():
            scopes = by_source.get(rule.signal.source)
            if not scopes:
                continue
            why = self.reader.missing(rule)
            if why:
                result.skipped[rule.name] = why
                if rule.name not in self._warned:
                    log.warning("alert rule %s not evaluated yet: %s", rule.name, why)
                    self._warned.add(rule.name)
                continue
            partial = Evaluation()
            try:
                ids: set[str] = set()
                for scope_type, scope_ids in scopes.items():
                    ids |= self.reader.affected(rule, scope_type, scope_ids)
                if ids:
                    self.evaluate_rule(rule, ids, now, landed_at.get(rule.signal.source), partial)
            except Exception as exc:  # the caller decides: warehouse down -> retry, else skip this rule
                result.errors[rule.name] = f"{type(exc).__name__}: {exc}"
                continue
            result.events += partial.events
            result.alert_rows += partial.alert_rows
            result.state_rows += partial.state_rows
            result.scopes_evaluated += partial.scopes_evaluated
        return result

    def evaluate_rule(self, rule: Rule, ids: set[str], now: datetime, landed_at: str | None,
                      result: Evaluation) -> None:
        states = store.load_states(self.warehouse, rule, ids)
        series = {}
        known = {i for i in ids if i in states}
        if known:
            series |= self.reader.series(rule, known, self._since(rule, known, states), now.date())
        if ids - known:  # scopes seen for the first time: their whole history
            series |= self.reader.series(rule, ids - known, None, now.date())
        for scope_id in sorted(ids):
            points = series.get(scope_id)
            if not points:
                continue
            result.scopes_evaluated += 1
            stored = states.get(scope_id, store.StoredState(ScopeState()))
            scope = Scope(rule.scope, scope_id)
            transitions, state = evaluate_scope(rule, scope, points, stored.state)
            if state == stored.state:
                continue
            opened_at = stored.opened_at
            for transition in transitions:
                if transition.state == OPEN:
                    opened_at = now
                event = alert_event(rule, transition, now, opened_at, landed_at)
                result.events.append((rule, event))
                result.alert_rows.append(store.alert_row(rule, transition, event, opened_at or now, now))
            kept = store.StoredState(state, opened_at if state.open else None)
            result.state_rows.append(store.state_row(rule, scope, kept, now))

    @staticmethod
    def _since(rule: Rule, ids: set[str], states: dict[str, store.StoredState]) -> date | None:
        """History to read: enough before the oldest point any of these scopes still has to evaluate."""
        marks = [states[i].state.evaluated_through for i in ids]
        if any(mark is None for mark in marks):
            return None
        return min(m for m in marks if m is not None) - timedelta(days=rule.lookback_days)
