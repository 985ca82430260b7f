"""Every way a request could end in a 5xx, provoked one at a time against the collector on the real broker (issue 18:
a long fuzz run under heavy load once saw 500s that a replay did not): a client that sends its body right at the
read deadline, one that leaves in the middle of its body, a broker too slow to acknowledge, and a bug in a handler.
Only the broker is answered 503; a client's fault is a 4xx with a reason; a bug is a 500 whose log line says which
request it was."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import logging
import socket
import time

import orjson
import pytest

from streams import metrics
from streams.collector import common as collector_common
from streams.collector import version_check as version_check_collector
from streams.config import TOPIC_RAW_SNOWPLOW
from tests.support.hostile import Answer, ThreadCollector, consume_all, own_settings, thread_collector

pytestmark = pytest.mark.integration

TP2 = "/com.snowplowanalytics.snowplow/tp2"
PAYLOAD = orjson.dumps({"schema": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4",
                        "data": [{"e": "se", "p": "web", "tv": "py-1.1.0", "se_ca": "c", "se_ac": "a"}]})
BODIES = {  # a valid body per endpoint that reads one
    "/usage_data": orjson.dumps({"uuid": "5xx-test", "recorded_at": "2026-12-01T00:00:00Z", "version": "17.3.1"}),
    "/api/v1/seat_links": orjson.dumps({"license_key": "5xx-test-key", "date": "2026-12-01", "active_users": 1}),
    TP2: PAYLOAD,
}
CHECK = "/check.json?gitlab_info=" + base64.urlsafe_b64encode(orjson.dumps({"version": "17.3.1"})).decode()
READ_DEADLINE = 0.5  # seconds (10 in production): the tests send right around it


@pytest.fixture(scope="module")
def collector(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory):
    with thread_collector(kafka_bootstrap, own_settings(tmp_path_factory, "fivexx")) as running:
        yield running


def _head(path: str, length: int) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def _send_last_byte_after(collector: ThreadCollector, path: str, delay: float) -> tuple[float, bytes]:
    """The request with its body's last byte `delay` seconds after the rest: the status line and the JSON reason."""
    body = BODIES[path]
    with socket.create_connection((collector.host, collector.port), timeout=30) as sock:
        sock.sendall(_head(path, len(body)) + body[:-1])
        time.sleep(delay)
        with contextlib.suppress(OSError):  # answered 408 and closed already
            sock.sendall(body[-1:])
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return delay, answer


def test_a_body_finished_right_at_the_read_deadline_is_2xx_or_408(collector: ThreadCollector, monkeypatch):
    monkeypatch.setattr(collector_common, "BODY_READ_SECONDS", READ_DEADLINE)
    delays = [READ_DEADLINE + step * 0.01 for step in range(-8, 9)]  # the deadline passes while these are sent
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda job: (job[0], *_send_last_byte_after(collector, *job)),
                                [(path, delay) for path in BODIES for delay in delays]))
    statuses: dict[str, set[int]] = {}
    for path, delay, answer in answers:
        status = int(answer.split(b" ", 2)[1])
        statuses.setdefault(path, set()).add(status)
        assert status in (200, 408), (path, delay, answer[:500])
        if status == 408:
            assert b"body not received within" in answer, answer
    print(f"statuses around the {READ_DEADLINE} s read deadline: {statuses}")


def _counted(endpoint: str, status: int) -> float:
    return metrics.REGISTRY.get_sample_value("denomas_http_requests_total",
                                             {"endpoint": endpoint, "status": str(status)}) or 0.0


@pytest.mark.parametrize("path", list(BODIES))
def test_a_client_that_leaves_mid_body_is_a_400_not_a_500(collector: ThreadCollector, path: str, caplog):
    """aiohttp ends the body read with ConnectionResetError("Connection lost"); unhandled, that was a 500 and a
    traceback in the log for every client that gave up (nobody sees the answer, but the log reads like a bug)."""
    before = _counted(path, 400)
    body = BODIES[path]
    with caplog.at_level(logging.ERROR):
        with socket.create_connection((collector.host, collector.port), timeout=10) as sock:
            sock.sendall(_head(path, len(body) + 1000) + body)  # 1000 bytes short: the handler waits for them
            time.sleep(0.3)  # the handler is reading the body
        deadline = time.monotonic() + 10
        while _counted(path, 400) == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _counted(path, 400) == before + 1  # answered 400 (the connection is gone: only counted)
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
    assert collector.request("GET", "/health").status == 200


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/usage_data", BODIES["/usage_data"]),
    ("POST", "/api/v1/seat_links", BODIES["/api/v1/seat_links"]),
    ("POST", TP2, PAYLOAD),
    ("GET", "/i?e=pv&p=web&tv=js-3", b""),
    ("GET", CHECK, b""),
])
def test_a_broker_too_slow_to_acknowledge_is_503_with_a_reason(collector: ThreadCollector, monkeypatch,
                                                               method: str, path: str, body: bytes):
    """What heavy load does to the broker's answer time: past PUBLISH_TIMEOUT_SECONDS the client is told to retry
    (503, the only 5xx the collector gives), never a 500."""
    monkeypatch.setattr(collector_common, "PUBLISH_TIMEOUT_SECONDS", 1e-6)
    answer = collector.request(method, path, body, {"Content-Type": "application/json"})
    assert answer.status == 503, answer
    assert orjson.loads(answer.body)["error"] == "temporarily unable to accept data; retry later"


def _check_failing(*_: object) -> None:
    raise RuntimeError("a bug in the version check")


def test_a_handler_bug_is_a_500_whose_log_line_names_the_request(collector: ThreadCollector, monkeypatch, caplog):
    monkeypatch.setattr(version_check_collector, "assess", _check_failing)
    with caplog.at_level(logging.ERROR, logger="streams.collector"):
        answer: Answer = collector.request("GET", CHECK + "&marker=bug-5xx")
    assert answer.status == 500, answer
    reason = orjson.loads(answer.body)["error"]
    assert reason.startswith("internal error; logged as incident ")
    incident = reason.rsplit(" ", 1)[1]
    [record] = [r for r in caplog.records if incident in r.getMessage()]
    assert "GET /check.json?gitlab_info=" in record.getMessage() and "marker=bug-5xx" in record.getMessage()
    assert record.exc_info and isinstance(record.exc_info[1], RuntimeError)


@pytest.mark.parametrize("odd", [{"cx": 5}, {"cx": None}, {"cx": ["e30"]}, {"cx": {"schema": "x"}}, {"ue_px": 1.5},
                                 {"co": 7, "cx": "e30"}])
def test_a_context_that_is_not_text_is_accepted_for_the_agent_to_refuse(collector: ThreadCollector,
                                                                        kafka_bootstrap: str, odd: dict):
    """JSON lets `cx` (base64 contexts) be a number, null, list or object: choosing the Kafka key (the user in the
    contexts) called .strip() on it, a 500 for the whole request. The event is accepted like any other the agent
    checks (its protocol schema wants a string: a bad row)."""
    marker = f"odd-context-{time.time_ns()}"
    event = {"e": "se", "p": "web", "tv": "py-1.1.0", "se_ca": marker, "se_ac": "a"} | odd
    body = orjson.dumps({"schema": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4",
                         "data": [event]})
    answer = collector.request("POST", TP2, body, {"Content-Type": "application/json"})
    assert answer.status == 200, answer
    records = asyncio.run(consume_all(kafka_bootstrap, collector.settings.topic(TOPIC_RAW_SNOWPLOW)))
    [published] = [r for r in records if marker.encode() in r.value]
    assert orjson.loads(published.value) == [event]


HUGE_MODEL = "1" * 5000  # Python refuses int() of more than 4,300 digits (ValueError)


def test_a_payload_schema_with_a_huge_model_number_is_422(collector: ThreadCollector):
    body = orjson.dumps({"schema": f"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/{HUGE_MODEL}-0-4",
                         "data": [{"e": "pv"}]})
    answer = collector.request("POST", TP2, body, {"Content-Type": "application/json"})
    assert answer.status == 422, answer
    assert orjson.loads(answer.body)["error"].startswith("schema must be iglu:")


def test_a_context_schema_with_a_huge_model_number_is_accepted(collector: ThreadCollector):
    contexts = {"schema": f"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/{HUGE_MODEL}-0-0", "data": []}
    event = {"e": "se", "p": "web", "tv": "py-1.1.0", "se_ca": "c", "se_ac": "a", "co": orjson.dumps(contexts).decode()}
    body = orjson.dumps({"schema": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4",
                         "data": [event]})
    answer = collector.request("POST", TP2, body, {"Content-Type": "application/json"})
    assert answer.status == 200, answer
