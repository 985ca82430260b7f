"""Generated hostile requests (hypothesis, derandomized: the same requests on every run) to every collector endpoint,
with the collector and the worker as child processes on the real broker and the real warehouse: no answer is 5xx
(the broker is up), every 4xx says why, every accepted request that holds no valid event becomes exactly one dead
letter or bad row per event, both processes stay up with bounded memory, and a valid record of each source sent
afterwards lands. bench/fuzz.py runs the same with a larger budget and random seeds."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from streams.config import Settings
from tests.support.fuzz import ENDPOINTS, Tally, free_port, run_fuzz

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("DENOMAS_FUZZ_EXAMPLES", "40"))  # per endpoint; ~1 minute for the file
COLLECTOR_RSS_BOUND_MIB = 300  # measured ~100 MiB; a request that buffered 20,000 sends took it to 300+ before


@pytest.fixture(scope="module")
def fuzzed(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    name = tmp_path_factory.mktemp("fuzz").name
    settings = replace(Settings.from_env(data_dir=tmp_path_factory.mktemp("data"), topic_prefix=f"fz-{name}.",
                                         app_id=f"test-{name}", topic_partitions=1), worker_web_port=free_port())
    result = run_fuzz(settings, kafka_bootstrap, EXAMPLES)
    tally = result["tally"]
    print(f"\nfuzzed {tally.requests} requests: {dict(sorted(tally.statuses.items()))}\n"
          f"accepted {dict(tally.accepted)}, Snowplow bad rows expected {tally.bad_rows}; RSS MiB {result['rss']}")
    return result


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
