"""Webhook delivery against a real local HTTP server: signatures, idempotency header, retries with exponential
backoff, no retry for answers that will not change, Slack's text form."""

from __future__ import annotations

import socket

import aiohttp
import orjson
import pytest

from streams.alerts.delivery import (
    EVENT_ID_HEADER,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    backoff,
    deliver,
    request_for,
    signature,
    slack_text,
    verify_signature,
)
from streams.alerts.rules import Destination
from tests.support.alert_receiver import Receiver

EVENT = {
    "event_id": "00ab:open", "alert_id": "00ab", "state": "open", "rule": "instance_active_users_drop",
    "scope": {"type": "instance", "id": "inst-1"}, "signal": {"source": "service_ping", "measure": "active_user_count"},
    "period": "2026-06-08", "opened_period": "2026-06-08", "value": 120, "baseline": 200, "threshold": 134,
    "recovery_level": 180, "opened_value": 120, "change_pct": -40.0,
}


def test_signature_is_hmac_sha256_of_the_exact_body():
    # RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?"
    expected = "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    assert signature("Jefe", b"what do ya want for nothing?") == expected
    assert verify_signature("Jefe", b"what do ya want for nothing?", expected)
    assert not verify_signature("Jefe", b"what do ya want for nothing!", expected)
    assert not verify_signature("Jefe", b"what do ya want for nothing?", None)


def test_backoff_doubles_up_to_the_cap():
    assert [backoff(n, 0.5, 3.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_requests_carry_the_event_id_and_a_signature_only_with_a_secret():
    body, headers = request_for(Destination("cs", "http://x/h", secret="k"), EVENT)
    assert orjson.loads(body) == EVENT
    assert headers[IDEMPOTENCY_HEADER] == headers[EVENT_ID_HEADER] == "00ab:open"
    assert headers[SIGNATURE_HEADER] == signature("k", body)
    body, headers = request_for(Destination("slack", "https://hooks.slack.com/x", format="slack"), EVENT)
    assert orjson.loads(body) == {"text": slack_text(EVENT)}
    assert SIGNATURE_HEADER not in headers
    assert slack_text(EVENT) == (
        ":warning: Active users dropped: instance inst-1, active_user_count = 120 in period 2026-06-08, was 200 "
        "(-40.0 %). Rule instance_active_users_drop; resolves at 180. Alert 00ab.")


async def test_failed_attempts_are_retried_with_backoff_until_accepted():
    receiver = Receiver("s3cret", failures=lambda event_id: 2)
    url = await receiver.start()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    try:
        destination = Destination("cs", url, secret="s3cret", attempts=4, backoff_seconds=0.25)
        async with aiohttp.ClientSession() as session:
            outcome = await deliver(session, destination, EVENT, sleep=sleep)
    finally:
        await receiver.stop()
    assert (outcome.delivered, outcome.attempts, outcome.http_status) == (True, 3, 200)
    assert slept == [0.25, 0.5]
    assert receiver.attempts == {"00ab:open": 3}
    assert receiver.accepted == {"00ab:open": [EVENT]}
    assert receiver.bad_signatures == 0


async def test_a_parked_event_continues_its_backoff():
    receiver = Receiver("k", failures=lambda event_id: 10)
    url = await receiver.start()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    try:
        destination = Destination("cs", url, secret="k", attempts=3, backoff_seconds=1.0, max_backoff_seconds=60)
        async with aiohttp.ClientSession() as session:
            outcome = await deliver(session, destination, EVENT, already=4, sleep=sleep)
    finally:
        await receiver.stop()
    assert (outcome.delivered, outcome.retryable, outcome.attempts, outcome.http_status) == (False, True, 3, 503)
    assert slept == [16.0, 32.0]  # attempts 5 and 6 failed
    assert outcome.error.startswith("HTTP 503")


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422])
async def test_answers_that_will_not_change_are_not_retried(status):
    receiver = Receiver("k", failures=lambda event_id: 1, status=status)
    url = await receiver.start()
    try:
        async with aiohttp.ClientSession() as session:
            outcome = await deliver(session, Destination("cs", url, secret="k", backoff_seconds=0), EVENT)
    finally:
        await receiver.stop()
    assert (outcome.delivered, outcome.retryable, outcome.attempts, outcome.http_status) == (False, False, 1, status)


@pytest.mark.parametrize("status", [408, 429, 500, 502])
async def test_temporary_answers_are_retried(status):
    receiver = Receiver("k", failures=lambda event_id: 1, status=status)
    url = await receiver.start()
    try:
        async with aiohttp.ClientSession() as session:
            outcome = await deliver(session, Destination("cs", url, secret="k", backoff_seconds=0), EVENT)
    finally:
        await receiver.stop()
    assert (outcome.delivered, outcome.attempts) == (True, 2)


async def test_a_destination_that_is_down_is_retryable():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with aiohttp.ClientSession() as session:
        outcome = await deliver(session, Destination("cs", f"http://127.0.0.1:{port}/h", secret="k", attempts=2,
                                                     backoff_seconds=0), EVENT)
    assert (outcome.delivered, outcome.retryable, outcome.attempts, outcome.http_status) == (False, True, 2, 0)
    assert outcome.error
