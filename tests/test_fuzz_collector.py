"""Generated hostile requests (hypothesis, derandomized: the same requests on every run) to every collector endpoint,
with the collector and the worker as child processes on the real broker and the real warehouse: no answer is 5xx
(the broker is up), every 4xx says why, every accepted request that holds no valid event becomes exactly one dead
letter or bad row per event, both processes stay up with bounded memory, and a valid record of each source sent
afterwards lands. bench/fuzz.py runs the same with a larger budget and random seeds."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import uuid
from dataclasses import replace

import orjson
import pytest

from streams.config import Settings
from streams.demo import wait_until_landed
from streams.fleet import generate_fleet
from streams.fleet_seat_link import generate_seat_links
from streams.warehouse import open_warehouse
from streams.worker import WorkerProcess
from tests.fuzz_support import ENDPOINTS, PAYLOAD_SCHEMA, TP2, CollectorProcess, Tally, fuzz, rss_mib
from tests.hostile_support import ThreadCollector

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("DENOMAS_FUZZ_EXAMPLES", "40"))  # per endpoint; ~1 minute for the file
COLLECTOR_RSS_BOUND_MIB = 300  # measured ~100 MiB; a request that buffered 20,000 sends took it to 300+ before
VALID_EVENT = {"e": "se", "p": "web", "tv": "py-1.1.0", "se_ca": "fuzz", "se_ac": "valid-after",
               "eid": str(uuid.UUID(int=18)), "dtm": "1780000000000"}
VALID_HOST = "valid-after.example"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def send_valid(collector: ThreadCollector) -> dict[str, int]:
    """One valid record of each source, after the hostile ones: the status each got."""
    ping = next(p for p in generate_fleet(2, 2, seed=3) if p.valid)
    seat = next(r for r in generate_seat_links(3, 2, seed=5) if r.status == 200 and r.expected)
    gitlab_info = base64.urlsafe_b64encode(orjson.dumps({"version": "17.3.1"})).decode()
    return {
        "service_ping": collector.request("POST", "/usage_data", orjson.dumps(ping.payload)).status,
        "seat_link": collector.request("POST", "/api/v1/seat_links", seat.body).status,
        "version_check": collector.request("GET", f"/check.json?gitlab_info={gitlab_info}",
                                           headers={"Referer": f"https://{VALID_HOST}/admin"}).status,
        "snowplow": collector.request("POST", TP2, orjson.dumps({"schema": PAYLOAD_SCHEMA, "data": [VALID_EVENT]}),
                                      {"Content-Type": "application/json"}).status,
    }


def counts(settings: Settings) -> dict[str, object]:
    warehouse = open_warehouse(settings)
    try:
        def one(sql: str) -> object:
            return warehouse.query(sql).rows[0][0]

        return {
            "pings": one("SELECT count() FROM fct_ping_instance FINAL"),
            "ping_reports": one("SELECT (SELECT count() FROM fct_ping_error FINAL) + "
                                "(SELECT count() FROM fct_ping_metric_timing FINAL)"),
            "seat_links": one("SELECT count() FROM fct_seat_link FINAL"),
            "version_checks": one("SELECT count() FROM fct_version_check FINAL"),
            "valid_version_checks": one(f"SELECT count() FROM fct_version_check FINAL WHERE host = '{VALID_HOST}'"),
            "events": warehouse.query("SELECT event_category, event_action FROM fct_behavior_structured_event").rows,
            "bad_rows": one("SELECT count() FROM raw_snowplow_bad_row"),
            "dead_letters": dict(warehouse.query("SELECT source, count() FROM raw_dead_letter FINAL "
                                                 "GROUP BY source").rows),
        }
    finally:
        warehouse.close()


@pytest.fixture(scope="module")
def fuzzed(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    name = tmp_path_factory.mktemp("fuzz").name
    settings = replace(Settings.from_env(data_dir=tmp_path_factory.mktemp("data"), topic_prefix=f"fz-{name}.",
                                         app_id=f"test-{name}", topic_partitions=1), worker_web_port=free_port())
    collector_process = CollectorProcess(settings, kafka_bootstrap)
    collector = collector_process.start()
    worker = WorkerProcess(settings, kafka_bootstrap)
    tally = Tally()
    try:
        worker.start()
        for endpoint in ENDPOINTS:
            fuzz(collector, tally, endpoint, EXAMPLES)
        alive = {"collector": collector_process.alive(), "worker": worker.alive()}
        rss = {"collector": rss_mib(collector_process.pid), "collector_peak": rss_mib(collector_process.pid, "VmHWM"),
               "worker_peak": rss_mib(worker.pid, "VmHWM")}
        valid = send_valid(collector)
        asyncio.run(wait_until_landed(settings, kafka_bootstrap, timeout=240))
        alive_after = worker.alive()
        logs = {"collector": collector_process.log_tail(), "worker": worker.log_tail()}
    finally:
        worker.stop()
        collector_process.stop()
    print(f"\nfuzzed {tally.requests} requests: {dict(sorted(tally.statuses.items()))}\n"
          f"accepted {dict(tally.accepted)}, Snowplow bad rows expected {tally.bad_rows}; RSS MiB {rss}")
    return {"settings": settings, "tally": tally, "alive": alive, "alive_after": alive_after, "rss": rss,
            "valid": valid, "logs": logs, "counts": counts(settings)}


def test_every_endpoint_was_fuzzed(fuzzed: dict):
    endpoints = {endpoint for endpoint, _ in fuzzed["tally"].statuses}
    assert endpoints == set(ENDPOINTS)
    assert fuzzed["tally"].requests >= len(ENDPOINTS) * EXAMPLES * 0.9  # hypothesis may stop early on tiny spaces


def test_no_answer_is_5xx_and_every_refusal_says_why(fuzzed: dict):
    tally: Tally = fuzzed["tally"]
    assert not tally.server_errors, [(r.endpoint, r.path[:200], r.headers, a.status, a.body[:300])
                                     for r, a in tally.server_errors[:5]]
    assert not tally.no_reason, [(r.endpoint, r.path[:200], a.status, a.body[:300]) for r, a in tally.no_reason[:5]]


def test_both_processes_stay_up_with_bounded_memory(fuzzed: dict):
    assert fuzzed["alive"] == {"collector": True, "worker": True}, fuzzed["logs"]
    assert fuzzed["alive_after"], fuzzed["logs"]["worker"]
    assert fuzzed["rss"]["collector_peak"] < COLLECTOR_RSS_BOUND_MIB, fuzzed["rss"]


def test_a_valid_record_of_each_source_lands_after_the_hostile_ones(fuzzed: dict):
    assert fuzzed["valid"] == {"service_ping": 200, "seat_link": 200, "version_check": 200, "snowplow": 200}
    got = fuzzed["counts"]
    assert got["pings"] == 1  # no hostile ping can be valid (none has a version)
    assert got["valid_version_checks"] == 1
    assert got["events"] == [("fuzz", "valid-after")]  # every hostile event carries a key the protocol forbids


def test_every_accepted_invalid_request_is_a_dead_letter_or_bad_row(fuzzed: dict):
    tally: Tally = fuzzed["tally"]
    got = fuzzed["counts"]
    letters = got["dead_letters"]
    # Service Ping: every accepted hostile ping, error or metadata report lacks a required field.
    assert got["ping_reports"] == 0
    assert letters.get("service_ping", 0) == tally.accepted["service_ping"]
    # Seat Link and Version Check: each accepted request (hostile ones + the valid one) landed or is a dead letter.
    assert got["seat_links"] + letters.get("seat_link", 0) == tally.accepted["seat_link"] + 1
    assert got["version_checks"] + letters.get("version_check", 0) == tally.accepted["version_check"] + 1
    # Snowplow: one bad row per event of an accepted request, and one per refused request.
    assert got["bad_rows"] == tally.bad_rows
    assert tally.accepted["service_ping"] and tally.accepted["snowplow"]  # the budget reached the agents
