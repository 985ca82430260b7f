"""Generated hostile records (hypothesis, derandomized) published straight to every raw topic, every reference topic
and the dead-letter topic, as another producer may: random bytes, wrong shapes, deep nesting, huge values, broken
encodings, gzip bombs, header values that are not UTF-8 or make no sense. The worker (a child process on the real
broker and warehouse) stays up with bounded memory, every hostile record becomes a dead letter (none is lost and
none stops a partition), the DLQ's own hostile letters are stored, and a valid record of each source sent after them
lands."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from aiokafka import AIOKafkaProducer

from streams import config
from streams.config import REFERENCE_TOPICS, TOPIC_DLQ, Settings
from streams.demo import wait_until_landed
from streams.warehouse import open_warehouse
from streams.worker import WorkerProcess
from tests.fuzz_support import (
    RawRecord,
    counts,
    free_port,
    generate,
    letter_identity,
    raw_records,
    rss_mib,
    send_valid,
)
from tests.hostile_support import thread_collector

pytestmark = pytest.mark.integration

EXAMPLES = 20  # per topic (11 topics)
WORKER_RSS_BOUND_MIB = 1024  # measured ~200 MiB here; the README's heaviest loads peak at 640-860 MiB
RAW_TOPICS = [config.TOPIC_RAW_SERVICE_PING, config.TOPIC_RAW_SEAT_LINK, config.TOPIC_RAW_VERSION_CHECK,
              config.TOPIC_RAW_SNOWPLOW, *REFERENCE_TOPICS]


async def publish(bootstrap: str, settings: Settings, records: dict[str, list[RawRecord]]) -> dict[str, list[int]]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=10 * 2**20)
    await producer.start()
    offsets: dict[str, list[int]] = {}
    try:
        for topic, hostile in records.items():
            for record in hostile:
                sent = await producer.send_and_wait(settings.topic(topic), value=record.value, key=record.key,
                                                    headers=list(record.headers))
                offsets.setdefault(topic, []).append(sent.offset)
    finally:
        await producer.stop()
    return offsets


@pytest.fixture(scope="module")
def landed(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    name = tmp_path_factory.mktemp("fuzz-raw").name
    settings = replace(Settings.from_env(data_dir=tmp_path_factory.mktemp("data"), topic_prefix=f"fr-{name}.",
                                         app_id=f"test-{name}", topic_partitions=1), worker_web_port=free_port())
    records = {topic: generate(raw_records(compacted=topic in REFERENCE_TOPICS), EXAMPLES)
               for topic in [*RAW_TOPICS, TOPIC_DLQ]}
    with thread_collector(kafka_bootstrap, settings) as collector:  # creates the topics
        offsets = asyncio.run(publish(kafka_bootstrap, settings, records))
        worker = WorkerProcess(settings, kafka_bootstrap)
        worker.start()
        try:
            valid = send_valid(collector)
            asyncio.run(wait_until_landed(settings, kafka_bootstrap, timeout=300))
            alive, peak, log = worker.alive(), rss_mib(worker.pid, "VmHWM"), worker.log_tail()
        finally:
            worker.stop()
    warehouse = open_warehouse(settings)
    try:
        lettered = dict(warehouse.query("SELECT kafka_topic, groupUniqArray(kafka_offset) FROM raw_dead_letter FINAL "
                                        "GROUP BY kafka_topic").rows)
        ours = sorted(settings.topic(t) for t in RAW_TOPICS)  # the rest came from the letters put on the DLQ
        dlq_rows = warehouse.query("SELECT count() FROM raw_dead_letter FINAL WHERE kafka_topic NOT IN "
                                   "{ours:Array(String)}", {"ours": ours}).rows[0][0]
    finally:
        warehouse.close()
    print(f"\npublished {sum(map(len, records.values()))} hostile records to {len(records)} topics; "
          f"worker peak RSS {peak:.0f} MiB")
    return {"settings": settings, "records": records, "offsets": offsets, "valid": valid, "alive": alive,
            "peak": peak, "log": log, "lettered": lettered, "dlq_rows": dlq_rows,
            "counts": counts(settings)}


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
