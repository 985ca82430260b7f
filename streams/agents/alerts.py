"""Alert agents: evaluation as data lands, delivery to webhooks on its own offsets.

  sinks --announce_landed--> usage.landed --alert_evaluator--> usage.alerts + alerts table
                                                                   |
                                            alert_webhooks (own offsets) --> webhooks, Slack
                                                 | destination down: parked in alert_delivery
                                            retry_parked_alerts (leader, every second) --> webhooks
                                                 | refused or out of attempts: usage.dlq

The evaluator re-evaluates only the scopes data landed for (and their subscription/account). It publishes
the events, then stores alerts and state, then the landing records are acked: a crash in between
re-evaluates with the same stable alert ids. The webhook agent acks a batch only after every event in it was
delivered, parked in alert_delivery, or sent to the dead-letter topic, so a destination that is down delays
no other agent (Faust pauses only this topic's partitions) and loses no alert.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import orjson

from streams.agents.common import AgentContext, PoisonBatch, warehouse_is_up, write_with_retry
from streams.alerts import store
from streams.alerts.delivery import Outcome, backoff, deliver
from streams.alerts.engine import Engine, Evaluation
from streams.alerts.landed import Landed
from streams.alerts.rules import AlertConfig, Destination, load_rules, metric_time_frames
from streams.alerts.store import Delivery
from streams.config import TOPIC_ALERTS, TOPIC_LANDED
from streams.erase.subjects import landed_subjects, without_erased
from streams.records import Position, as_bytes, dead_letter

log = logging.getLogger(__name__)

CONSUMED_TOPICS = [TOPIC_LANDED, TOPIC_ALERTS]
RETRY_INTERVAL_SECONDS = 1.0


def load_config(ctx: AgentContext) -> AlertConfig:
    """The rule file of this worker; an invalid file stops the worker with every problem listed."""
    metrics = metric_time_frames(ctx.dictionary) if len(ctx.dictionary) else None
    return load_rules(ctx.settings.alert_rules, metrics=metrics)


def register(ctx: AgentContext) -> None:
    config = load_config(ctx)
    engine = Engine(ctx.warehouse, config)
    landed_topic = ctx.topic(TOPIC_LANDED)
    alerts_topic = ctx.topic(TOPIC_ALERTS)
    warehouse = ctx.warehouse
    log.info("alerts: %d rules, %d destinations from %s", len(config.active()), len(config.destinations),
             config.source)

    def unerased(landed: list[Landed]) -> list[Landed]:
        """Erased scopes are never evaluated again (README "Erasure")."""
        try:
            return without_erased(warehouse, landed, landed_subjects)
        except Exception:  # the warehouse is down: the engine's reads fail too, and the loop below retries
            return landed

    async def evaluate(landed: list[Landed]) -> Evaluation:
        """Run the engine; while the warehouse is down, wait and run it again (nothing was written)."""
        delay = 0.5
        while True:
            evaluation = await asyncio.to_thread(engine.evaluate, await asyncio.to_thread(unerased, landed))
            if not evaluation.errors:
                return evaluation
            if await asyncio.to_thread(warehouse_is_up, warehouse):
                for rule, error in evaluation.errors.items():  # a bug or a schema mismatch: skip, keep going
                    log.error("alert rule %s failed and was skipped for this batch: %s", rule, error)
                return evaluation
            log.error("alert evaluation failed, warehouse down; retrying in %.1f s", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    @ctx.app.agent(landed_topic, name="alert_evaluator")
    async def alert_evaluator(stream: Any) -> None:
        async for events in stream.take_events(500, within=0.5):
            landed, letters = [], []
            for event in events:
                try:
                    landed.append(Landed.from_json(orjson.loads(as_bytes(event.value))))
                except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
                    letters.append(await ctx.send_dead_letter(event, "alerts", "validate", str(exc)))
            await asyncio.gather(*letters)
            if not landed:
                continue
            evaluation = await evaluate(landed)
            sent = [await alerts_topic.send(key=f"{rule.name}|{e['scope']['type']}:{e['scope']['id']}".encode(),
                                            value=orjson.dumps(e)) for rule, e in evaluation.events]
            await asyncio.gather(*sent)  # on the topic before the state says "open"
            try:
                if evaluation.state_rows:
                    await write_with_retry(
                        lambda ev=evaluation: store.write_evaluation(warehouse, ev.alert_rows, ev.state_rows),
                        "alerts", warehouse)
            except PoisonBatch as exc:  # the warehouse refuses the rows: keep the landings for a replay
                log.error("storing alerts failed: %s", exc)
                await asyncio.gather(*[await ctx.send_dead_letter(e, "alerts", "sink", str(exc)) for e in events])
            ctx.stats.add(alert_events=len(evaluation.events), alert_scopes_evaluated=evaluation.scopes_evaluated)

    @ctx.app.agent(alerts_topic, name="alert_webhooks")
    async def alert_webhooks(stream: Any) -> None:
        async with aiohttp.ClientSession() as session:
            async for events in stream.take_events(100, within=0.5):
                batch, letters = [], []
                for event in events:
                    try:
                        document = orjson.loads(as_bytes(event.value))
                        if not isinstance(document, dict) or not all(
                                isinstance(document.get(k), str) for k in ("event_id", "alert_id", "rule", "state")):
                            raise ValueError("an alert event is a JSON object with event_id, alert_id, rule, state")
                    except ValueError as exc:
                        letters.append(await ctx.send_dead_letter(event, "alerts", "webhook", str(exc)))
                        continue
                    batch.append((document, event.message.partition, event.message.offset))
                await asyncio.gather(*letters)
                await asyncio.gather(*(_deliver_batch(ctx, session, d, batch) for d in config.destinations))

    @ctx.app.timer(interval=RETRY_INTERVAL_SECONDS, on_leader=True)
    async def retry_parked_alerts() -> None:
        if config.destinations:
            await _retry_parked(ctx, config)


# ---------------------------------------------------------------------------------------------------
# Delivery bookkeeping


def _now() -> datetime:
    return datetime.now(UTC)


async def _finish(ctx: AgentContext, rows: list[dict], dead: list[tuple[Delivery, str]]) -> None:
    """Store the delivery rows, and put refused or exhausted events on the dead-letter topic."""
    letters = []
    for delivery, reason in dead:
        position: Position = {"topic": ctx.settings.topic(TOPIC_ALERTS), "partition": delivery.partition,
                              "offset": delivery.offset}
        headers = dead_letter("alerts", f"webhook:{delivery.destination}", reason[:2000], position, failed_at=_now())
        letters.append(await ctx.dlq.send(key=b"alerts", value=orjson.dumps(delivery.event), headers=headers))
    await asyncio.gather(*letters)
    if rows:
        try:
            await write_with_retry(lambda: store.write_deliveries(ctx.warehouse, rows), "alert deliveries",
                                   ctx.warehouse)
        except PoisonBatch as exc:  # cannot park: the dead-letter topic keeps what is not delivered yet
            log.error("storing alert deliveries failed: %s", exc)
            parked = [Delivery(r["destination"], orjson.loads(r["event"]), r["attempts"], r["kafka_partition"],
                               r["kafka_offset"]) for r in rows if r["status"] == "pending"]
            await _finish(ctx, [], [(d, f"could not park: {exc}") for d in parked])
    ctx.stats.add(webhook_delivered=sum(1 for r in rows if r["status"] == "delivered"),
                  webhook_parked=sum(1 for r in rows if r["status"] == "pending"), webhook_dead=len(dead))


def _record(delivery: Delivery, outcome: Outcome, destination: Destination, rows: list[dict],
            dead: list[tuple[Delivery, str]]) -> bool:
    """Turn one outcome into a delivery row; True when the destination looks down (retry later)."""
    attempts = delivery.attempts + outcome.attempts
    now = _now()
    if outcome.delivered:
        rows.append(store.delivery_row(delivery, "delivered", attempts, outcome.http_status, "", now, now))
        return False
    if not outcome.retryable or attempts >= destination.max_parked_attempts:
        reason = outcome.error if not outcome.retryable else f"gave up after {attempts} attempts: {outcome.error}"
        rows.append(store.delivery_row(delivery, "dead", attempts, outcome.http_status, reason, now, now))
        dead.append((delivery, reason))
        return False
    wait = backoff(max(attempts, 1), destination.backoff_seconds, destination.max_backoff_seconds)
    rows.append(store.delivery_row(delivery, "pending", attempts, outcome.http_status, outcome.error,
                                   now + timedelta(seconds=wait), now))
    return True


async def _deliver_batch(ctx: AgentContext, session: aiohttp.ClientSession, destination: Destination,
                         batch: Sequence[tuple[dict, int, int]]) -> None:
    """Deliver a batch of events in order; once the destination fails, park the rest without trying."""
    wanted = [Delivery(destination.name, e, 0, p, o) for e, p, o in batch if destination.wants(e["rule"])]
    if not wanted:
        return
    event_ids = [d.event["event_id"] for d in wanted]
    alert_ids = sorted({d.event["alert_id"] for d in wanted})
    done = await asyncio.to_thread(store.finished_deliveries, ctx.warehouse, destination.name, event_ids)
    waiting = await asyncio.to_thread(store.pending_alert_ids, ctx.warehouse, destination.name, alert_ids)
    rows: list[dict] = []
    dead: list[tuple[Delivery, str]] = []
    down = False
    for delivery in wanted:
        if delivery.event["event_id"] in done:
            continue  # a redelivered record: this destination has it already
        alert_id = delivery.event["alert_id"]
        if down or alert_id in waiting:  # keep an alert's events in order behind its parked one
            down |= _record(delivery, Outcome(False, True, 0, 0, "parked behind an earlier failure"),
                            destination, rows, dead)
            waiting.add(alert_id)
            continue
        outcome = await deliver(session, destination, delivery.event)
        if _record(delivery, outcome, destination, rows, dead):
            log.warning("webhook %s failed (%s); parked %s", destination.name, outcome.error,
                        delivery.event["event_id"])
            down = True
            waiting.add(alert_id)
    await _finish(ctx, rows, dead)


async def _retry_parked(ctx: AgentContext, config: AlertConfig) -> None:
    """One pass over parked deliveries: an alert's events in order, one try each, stop a destination at its
    first failure."""
    pending = await asyncio.to_thread(store.pending_deliveries, ctx.warehouse)
    now = _now()
    if not pending or all(at > now for _, at in pending):
        return
    destinations = {d.name: d for d in config.destinations}
    groups: dict[tuple[str, str], list[tuple[Delivery, datetime]]] = defaultdict(list)
    for delivery, at in pending:
        groups[(delivery.destination, delivery.event["alert_id"])].append((delivery, at))
    rows: list[dict] = []
    dead: list[tuple[Delivery, str]] = []
    down: set[str] = set()
    async with aiohttp.ClientSession() as session:
        for (name, _), items in sorted(groups.items(), key=lambda g: min(at for _, at in g[1])):
            destination = destinations.get(name)
            if destination is None or name in down:
                continue  # a destination removed from the rule file keeps its parked rows for a later config
            for delivery, at in sorted(items, key=lambda i: i[0].event["state"] != "open"):
                if at > now:
                    break
                outcome = await deliver(session, destination, delivery.event, attempts=1, already=delivery.attempts)
                if _record(delivery, outcome, destination, rows, dead):
                    down.add(name)
                if not outcome.delivered:
                    break
    await _finish(ctx, rows, dead)
