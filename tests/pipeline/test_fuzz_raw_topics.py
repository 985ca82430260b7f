"""Generated hostile records (hypothesis, derandomized) published straight to every raw topic, every reference topic
and the dead-letter topic, as another producer may: random bytes, wrong shapes, deep nesting, huge values, broken
encodings, gzip bombs, header values that are not UTF-8 or make no sense. The worker (a child process on the real
broker and warehouse) stays up with bounded memory, every hostile record becomes a dead letter (none is lost and
none stops a partition), the DLQ's own hostile letters are stored, and a valid record of each source sent after them
lands."""

from __future__ import annotations

from dataclasses import replace

import pytest

from streams.config import TOPIC_DLQ, Settings
from tests.support.fuzz import RAW_TOPICS, free_port, letter_identity, run_raw_fuzz

pytestmark = pytest.mark.integration

EXAMPLES = 20  # per topic (11 topics)
WORKER_RSS_BOUND_MIB = 1024  # measured ~200 MiB here; the README's heaviest loads peak at 640-860 MiB


@pytest.fixture(scope="module")
def landed(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    name = tmp_path_factory.mktemp("fuzz-raw").name
    settings = replace(Settings.from_env(data_dir=tmp_path_factory.mktemp("data"), topic_prefix=f"fr-{name}.",
                                         app_id=f"test-{name}", topic_partitions=1), worker_web_port=free_port())
    result = run_raw_fuzz(settings, kafka_bootstrap, EXAMPLES)
    print(f"\npublished {sum(map(len, result['records'].values()))} hostile records to {len(result['records'])} "
          f"topics; worker peak RSS {result['peak']:.0f} MiB")
    return result


def test_the_worker_stays_up_with_bounded_memory(landed: dict):
    assert landed["alive"], landed["log"]
    assert landed["peak"] < WORKER_RSS_BOUND_MIB


def test_a_valid_record_of_each_source_lands_after_the_hostile_ones(landed: dict):
    assert landed["valid"] == {"service_ping": 200, "seat_link": 200, "version_check": 200, "snowplow": 200}
    got = landed["counts"]
    assert (got["pings"], got["seat_links"], got["valid_version_checks"]) == (1, 1, 1)
    assert got["events"] == [("fuzz", "valid-after")]


@pytest.mark.parametrize("topic", RAW_TOPICS)
def test_every_hostile_record_is_a_dead_letter(landed: dict, topic: str):
    published = sorted(landed["offsets"][topic])
    assert len(published) == EXAMPLES
    assert sorted(landed["lettered"].get(landed["settings"].topic(topic), [])) == published


def test_every_hostile_letter_on_the_dlq_is_stored(landed: dict):
    distinct = {letter_identity(r.headers) for r in landed["records"][TOPIC_DLQ]}  # equal claims are one letter
    assert landed["dlq_rows"] == len(distinct) > 1
