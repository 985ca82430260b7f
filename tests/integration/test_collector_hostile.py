"""Hostile and broken clients against the collector on the real broker: nothing they send is answered 5xx
(only a broker outage is), each refusal says why, and no client can tie the collector up."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import gzip
import socket
import threading
import time

import orjson
import pytest

from streams.collector import common as collector_common
from streams.collector import snowplow as snowplow_collector
from streams.config import TOPIC_RAW_SNOWPLOW
from streams.enrich.pseudonym import pseudonym
from tests.support.hostile import ThreadCollector, consume_all, own_settings, thread_collector

pytestmark = pytest.mark.integration

TP2 = "/com.snowplowanalytics.snowplow/tp2"
PAYLOAD_SCHEMA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
DEEP = b"[" * 300 + b"]" * 300
EVENT = {"e": "se", "p": "web", "tv": "py-1.1.0", "se_ca": "c", "se_ac": "a", "dtm": "1780000000000"}


@pytest.fixture(scope="module")
def collector(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory):
    with thread_collector(kafka_bootstrap, own_settings(tmp_path_factory, "hostile")) as running:
        yield running


def _payload(events: list) -> bytes:
    return orjson.dumps({"schema": PAYLOAD_SCHEMA, "data": events})


def _json_headers(**extra: str) -> dict[str, str]:
    return {"Content-Type": "application/json", **extra}


@pytest.mark.parametrize(("path", "body", "encoding"), [
    ("/usage_data", b'{"uuid": "x", "counts": ' + DEEP + b"}", ""),
    ("/api/v1/seat_links", b'{"license_key": "k", "date": "2026-01-01", "x": ' + DEEP + b"}", ""),
    (TP2, _payload([EVENT]).replace(b'"se_ca":"c"', b'"se_ca":' + DEEP), ""),
    (TP2, gzip.compress(_payload([EVENT]).replace(b'"se_ca":"c"', b'"se_ca":' + DEEP)), "gzip"),
    ("/usage_data", gzip.compress(b'{"a": ' + DEEP + b"}"), "gzip"),
])
def test_deeply_nested_json_is_refused_with_a_reason(collector: ThreadCollector, path, body, encoding):
    headers = _json_headers(**({"Content-Encoding": encoding} if encoding else {}))
    answer = collector.request("POST", path, body, headers)
    assert answer.status == 400, answer
    assert b"nested deeper than" in answer.body


def _info(version: str, **extra: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"version": version, **extra})).decode()


@pytest.mark.parametrize("query", [
    "gitlab_info=" + _info("\u0661\u0667.\u0663.\u0661"),  # Arabic-Indic digits
    "gitlab_info=" + _info("17.3.1\u00b2"),
    "gitlab_info=" + _info("17.3.1", edition="\U0001f600\u202e\u0000"),
    "gitlab_info=%F0%9F%98%80%E2%80%AE",
    "gitlab_info=%FF%FE",
    "gitlab_info=" + _info("17.3.1") + "&x=%FF&%F0%9F=%E2%80%AE&y=" + "z" * 5000,
])
@pytest.mark.parametrize("suffix", ["json", "svg", "png"])
def test_version_check_odd_unicode_is_never_5xx(collector: ThreadCollector, query: str, suffix: str):
    answer = collector.request("GET", f"/check.{suffix}?{query}")
    assert answer.status < 500, answer
    if answer.status >= 400:
        assert orjson.loads(answer.body)["error"]


@pytest.mark.parametrize("header", ["User-Agent", "X-Forwarded-For", "Referer"])
def test_headers_that_are_not_utf8_are_accepted(collector: ThreadCollector, header: str):
    odd = {header: b"\xff\xfe caf\xe9 \xc3"}
    posted = collector.request("POST", TP2, _payload([EVENT]), _json_headers(**odd))
    pixel = collector.request("GET", "/i?e=pv&p=web&tv=js-3", headers=odd)
    check = collector.request("GET", "/check.json?gitlab_info=" + _info("17.3.1"), headers=odd)
    assert (posted.status, pixel.status) == (200, 200), (posted, pixel)
    assert check.status in (200, 503) and (check.status == 200 or b"release" in check.body), check


@pytest.mark.parametrize("query", [
    "&".join(f"p{n}={n}" for n in range(2000)),
    "e=pv&p=web&tv=js&eid=%FF%FE&aid=%00",
    "e=pv&p=web&tv=js&aid=\xe9\xff",  # raw bytes that are not UTF-8 in the request line
    "e=pv&e=se&=&&&===&%%%",
    "e=pv&p=web&tv=js&co=" + "%7B" * 5000,
])
def test_pixel_with_many_or_odd_params_is_never_5xx(collector: ThreadCollector, query: str):
    answer = collector.request("GET", b"/i?" + query.encode("latin-1"))
    assert answer.status < 500, answer


def test_cors_never_echoes_an_unknown_origin_with_credentials(collector: ThreadCollector, monkeypatch):
    evil = collector.request("OPTIONS", TP2, headers={"Origin": "https://evil.example"})
    assert evil.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in evil.headers
    monkeypatch.setenv(snowplow_collector.CORS_ORIGINS_ENV, "https://app.example, https://b.example")
    allowed = collector.request("POST", TP2, _payload([EVENT]), _json_headers(Origin="https://app.example"))
    assert allowed.status == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert allowed.headers["access-control-allow-credentials"] == "true"


def test_too_many_events_are_refused_with_bounded_work(collector: ThreadCollector, kafka_bootstrap: str):
    events = [EVENT | {"uid": f"user-{n}", "eid": f"00000000-0000-4000-8000-{n:012d}"} for n in range(20_000)]
    body = _payload(events)
    assert len(body) > 2_500_000
    answer = collector.request("POST", TP2, body, _json_headers())
    assert answer.status == 400, answer
    assert f"send at most {snowplow_collector.MAX_EVENTS_PER_REQUEST}" in orjson.loads(answer.body)["error"]
    records = asyncio.run(consume_all(kafka_bootstrap, collector.settings.topic(TOPIC_RAW_SNOWPLOW)))
    last_user = pseudonym("user-19999").encode()  # user ids are published as their pseudonyms
    assert not [r for r in records if dict(r.headers).get("kind") == b"events" and last_user in r.value]
    bad = [r for r in records if dict(r.headers).get("kind") == b"bad_request" and last_user in r.value]
    assert len(bad) == 1  # the refused request is a bad row, not silence


def test_pixel_without_event_parameters_leaves_a_bad_row(collector: ThreadCollector, kafka_bootstrap: str):
    marker = f"probe-{time.time_ns()}"
    for path in ("/ice.png", "/i?", "/i"):
        answer = collector.request("GET", path, headers={"User-Agent": marker})
        assert answer.status == 200 and answer.body.startswith(b"GIF89a")
    records = asyncio.run(consume_all(kafka_bootstrap, collector.settings.topic(TOPIC_RAW_SNOWPLOW)))
    mine = [dict(r.headers) for r in records if dict(r.headers).get("useragent") == marker.encode()]
    assert len(mine) == 3
    assert {h["kind"] for h in mine} == {b"bad_request"}
    assert {h["reason"] for h in mine} == {b"pixel request without event parameters"}


def _slow_client(port: int, request_head: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(request_head)
    return sock


def _dribble(socks: list[socket.socket], stop: threading.Event) -> None:
    """One more header byte to every dribbling client each half second, for as long as its connection is open."""
    while not stop.wait(0.5):
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.send(b"x")


def _closed_or_answer(sock: socket.socket) -> bytes:
    sock.settimeout(15)
    try:
        return sock.recv(200).split(b"\r\n")[0]
    except ConnectionResetError:
        return b""


def _health_latencies(collector: ThreadCollector, count: int = 5) -> list[float]:
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        health = collector.request("GET", "/health", timeout=30)
        latencies.append(time.perf_counter() - started)
        assert health.status == 200 and orjson.loads(health.body) == {"status": "ok"}
    return latencies


def test_slow_clients_and_an_oversized_request_leave_health_fast(kafka_bootstrap: str, monkeypatch,
                                                                 tmp_path_factory: pytest.TempPathFactory):
    monkeypatch.setattr(collector_common, "BODY_READ_SECONDS", 1.0)
    monkeypatch.setattr(collector_common, "HEADER_READ_SECONDS", 2.0)
    settings = own_settings(tmp_path_factory, "slow")
    head = (f"POST {TP2} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 100000\r\n\r\n{").encode()
    ping_head = b"POST /usage_data HTTP/1.1\r\nHost: x\r\nContent-Length: 50000\r\n\r\n{"
    stop = threading.Event()
    with thread_collector(kafka_bootstrap, settings) as collector:
        bodies = [_slow_client(collector.port, head) for _ in range(60)]
        bodies += [_slow_client(collector.port, ping_head) for _ in range(60)]
        headers = [_slow_client(collector.port, b"GET /i?e=pv HTTP/1.1\r\nHost: x\r\nX-Slow: ") for _ in range(150)]
        dribbler = threading.Thread(target=_dribble, args=(headers, stop), daemon=True)
        dribbler.start()
        try:
            big = _payload([EVENT | {"uid": f"u{n}"} for n in range(20_000)])
            with concurrent.futures.ThreadPoolExecutor(1) as pool:  # /health is asked while it is being handled
                oversized_answer = pool.submit(collector.request, "POST", TP2, big, _json_headers())
                latencies = _health_latencies(collector)
                oversized = oversized_answer.result()
            print(f"/health during {len(bodies) + len(headers)} slow clients and an oversized request: "
                  f"{', '.join(f'{s * 1000:.0f} ms' for s in latencies)}")
            assert oversized.status == 400
            # the dribbled bodies were answered 408 once the body read timeout passed
            assert {_closed_or_answer(sock) for sock in bodies} == {b"HTTP/1.1 408 Request Timeout"}
            # the dribbled heads were closed once the header read timeout passed, whatever they kept sending
            assert {_closed_or_answer(sock) for sock in headers} == {b""}
        finally:
            stop.set()
            dribbler.join(5)
            for sock in bodies + headers:
                sock.close()
