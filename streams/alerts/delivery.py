"""Webhook delivery: the request (JSON event or Slack text), its signature, and the retry schedule.

Every request carries
  Idempotency-Key / X-Denomas-Event-Id   the alert event id (alert_id:state): receivers drop repeats by it
  X-Denomas-Signature-256                "sha256=" + hex HMAC-SHA256 of the exact body, keyed with the
                                         destination's secret (read from the env variable `secret_env`)
A destination that answers 2xx has the event. 408, 425, 429, 5xx, timeouts and connection errors are retried
with exponential backoff (`backoff_seconds` doubling up to `max_backoff_seconds`); other answers (400, 401,
403, 404, 410, 422, redirects) will not get better by retrying and end the delivery as refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import orjson

from streams.alerts.rules import Destination

SIGNATURE_HEADER = "X-Denomas-Signature-256"
EVENT_ID_HEADER = "X-Denomas-Event-Id"
IDEMPOTENCY_HEADER = "Idempotency-Key"
RETRYABLE_STATUS = frozenset({408, 425, 429})


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """What a receiver does: recompute and compare in constant time."""
    return header is not None and hmac.compare_digest(signature(secret, body), header)


def _fmt(value: float | int | None) -> str:
    if value is None:
        return "?"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def slack_text(event: dict) -> str:
    scope = f"{event['scope']['type']} {event['scope']['id']}"
    change = event.get("change_pct")
    change_text = f" ({change:+.1f} %)" if isinstance(change, int | float) else ""
    signal = event["signal"].get("metric") or event["signal"]["measure"]
    if event["state"] == "open":
        return (f":warning: Active users dropped: {scope}, {signal} = {_fmt(event['value'])} in period "
                f"{event['period']}, was {_fmt(event['baseline'])}{change_text}. Rule {event['rule']}; "
                f"resolves at {_fmt(event['recovery_level'])}. Alert {event['alert_id']}.")
    return (f":white_check_mark: Recovered: {scope}, {signal} = {_fmt(event['value'])} in period {event['period']} "
            f"(dropped to {_fmt(event['opened_value'])} in {event['opened_period']}, baseline "
            f"{_fmt(event['baseline'])}). Rule {event['rule']}. Alert {event['alert_id']}.")


def request_for(destination: Destination, event: dict) -> tuple[bytes, dict[str, str]]:
    """The exact body and headers sent for one event."""
    payload = {"text": slack_text(event)} if destination.format == "slack" else event
    body = orjson.dumps(payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "denomas-usage-alerts/1",
        EVENT_ID_HEADER: event["event_id"],
        IDEMPOTENCY_HEADER: event["event_id"],
    }
    if destination.secret:
        headers[SIGNATURE_HEADER] = signature(destination.secret, body)
    return body, headers


def backoff(attempt: int, base: float, cap: float) -> float:
    """Wait after failed attempt number `attempt` (1-based): base, 2 base, 4 base, ... at most cap."""
    return min(cap, base * 2 ** (attempt - 1))


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    retryable: bool  # False: the destination refused the event; retrying will not help
    attempts: int  # attempts made in this call
    http_status: int = 0
    error: str = ""


async def post_once(session: aiohttp.ClientSession, destination: Destination, body: bytes,
                    headers: dict[str, str]) -> Outcome:
    try:
        timeout = aiohttp.ClientTimeout(total=destination.timeout_seconds)
        async with session.post(destination.url, data=body, headers=headers, timeout=timeout,
                                allow_redirects=False) as response:
            status = response.status
            if 200 <= status < 300:
                return Outcome(True, False, 1, status)
            text = (await response.text(errors="replace"))[:300]
            retryable = status >= 500 or status in RETRYABLE_STATUS
            return Outcome(False, retryable, 1, status, f"HTTP {status}: {text}")
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return Outcome(False, True, 1, 0, f"{type(exc).__name__}: {exc}"[:300])


async def deliver(session: aiohttp.ClientSession, destination: Destination, event: dict, attempts: int | None = None,
                  already: int = 0, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> Outcome:
    """Up to `attempts` tries (default: the destination's) with exponential backoff between them.

    `already`: attempts made earlier (a parked event), so the backoff continues where it left off.
    """
    body, headers = request_for(destination, event)
    tries = attempts or destination.attempts
    outcome = Outcome(False, True, 0)
    for n in range(1, tries + 1):
        outcome = await post_once(session, destination, body, headers)
        if outcome.delivered or not outcome.retryable:
            return Outcome(outcome.delivered, outcome.retryable, n, outcome.http_status, outcome.error)
        if n < tries:
            await sleep(backoff(already + n, destination.backoff_seconds, destination.max_backoff_seconds))
    return Outcome(False, True, tries, outcome.http_status, outcome.error)
