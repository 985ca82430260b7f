"""Hostile records published straight to the raw topics and the dead-letter topic (other producers may write
there): none of them stops an agent; the valid records sent behind them land; the ones that cannot be used
become dead letters that keep no license key in clear. Real broker, real worker process, real warehouse."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from fleet.demo import wait_until_landed
from fleet.pings import generate_fleet
from fleet.seat_link import generate_seat_links
from streams.config import (
    TOPIC_DLQ,
    TOPIC_RAW_SEAT_LINK,
    TOPIC_RAW_SERVICE_PING,
    TOPIC_RAW_SNOWPLOW,
    TOPIC_RAW_VERSION_CHECK,
    Settings,
)
from streams.warehouse import open_warehouse
from streams.worker import WorkerProcess
from tests.support.hostile import thread_collector

pytestmark = pytest.mark.integration

SECRET = "HOSTILE-LICENSE-KEY-0123456789"
DEEP = b"[" * 300 + b"]" * 300
NOT_UTF8 = [("received_at", b"\xff\xfe2026"), ("kind", b"ev\xe9nts"), ("\xff", b"\xc3")]
EVENT = {"e": "se", "p": "web", "tv": "py-1.1.0", "se_ca": "hostile", "se_ac": "valid-after",
         "eid": "6a0c1f2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b", "dtm": "1780000000000"}

HOSTILE: dict[str, list[tuple[bytes, list[tuple[str, bytes]]]]] = {
    TOPIC_RAW_SERVICE_PING: [(b'{"uuid": "h"}', NOT_UTF8), (b'{"uuid": "h", "x": ' + DEEP + b"}", []),
                             (b"\xff not json", [])],
    TOPIC_RAW_SEAT_LINK: [(b'{"license_key": "' + SECRET.encode() + b'", "date": "2026-', []),
                          (b'[{"license_key": "' + SECRET.encode() + b'"}]', []),
                          (b'{"report": {"license_key": "' + SECRET.encode() + b'"}}', []),
                          (b'{"\\u006cicense_key": "' + SECRET.encode() + b'", "date": "x"}', []),
                          (b'{"license_key": "' + SECRET.encode() + b'", "x": ' + DEEP + b"}", NOT_UTF8)],
    TOPIC_RAW_VERSION_CHECK: [(b'{"gitlab_info": "x"}', NOT_UTF8), (b'{"a": ' + DEEP + b"}", [])],
    TOPIC_RAW_SNOWPLOW: [(b"[" + DEEP + b"]", [("kind", b"events")]),
                         (orjson.dumps([EVENT | {"se_la": "x"}]).replace(b'"se_la":"x"', b'"se_la":' + DEEP),
                          [("kind", b"events")]),
                         (orjson.dumps(EVENT | {"ip": "1.2.3.4", "se_la": "x"}).replace(b'"se_la":"x"',
                                                                                     b'"se_la":' + DEEP),
                          [("kind", b"event")]),
                         (orjson.dumps([EVENT]), [("kind", b"events"), ("event_index", b"\xff,x")] + NOT_UTF8)],
    TOPIC_DLQ: [(b"x", [("received_at", b"not a time"), ("kafka_partition", b"-1x"), ("kafka_offset", b"\xff")]),
                (b"y", [("source", b"\xff\xfe"), ("failed_at", b"99999-99-99")])],
}


@pytest.fixture(scope="module")
def landed(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    name = tmp_path_factory.mktemp("hostile-agents").name
    settings = Settings.from_env(data_dir=tmp_path_factory.mktemp("data"), topic_prefix=f"ha-{name}.",
                                 app_id=f"test-{name}", topic_partitions=1)
    ping = [p for p in generate_fleet(2, 2, seed=3) if p.valid][0]
    seat = [r for r in generate_seat_links(3, 2, seed=5) if r.status == 200 and r.expected][0]
    with thread_collector(kafka_bootstrap, settings) as collector:
        asyncio.run(_publish_hostile(kafka_bootstrap, settings))
        worker = WorkerProcess(settings, kafka_bootstrap)
        worker.start()
        try:
            statuses = {
                "ping": collector.request("POST", "/usage_data", orjson.dumps(ping.payload)).status,
                "seat": collector.request("POST", "/api/v1/seat_links", seat.body).status,
                "snowplow": collector.request("GET", "/i?" + "&".join(f"{k}={v}" for k, v in EVENT.items())).status,
            }
            asyncio.run(wait_until_landed(settings, kafka_bootstrap, timeout=240))
            alive = worker.alive()
            log_tail = worker.log_tail()
        finally:
            assert worker.stop() is not None
    return {"settings": settings, "statuses": statuses, "alive": alive, "log": log_tail, "ping": ping, "seat": seat}


async def _publish_hostile(bootstrap: str, settings: Settings) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=10 * 2**20)
    await producer.start()
    try:
        for topic, records in HOSTILE.items():
            for value, headers in records:
                await producer.send_and_wait(settings.topic(topic), value=value, headers=headers)
    finally:
        await producer.stop()


def _query(landed: dict, sql: str) -> list[tuple]:
    warehouse = open_warehouse(landed["settings"])
    try:
        return warehouse.query(sql).rows
    finally:
        warehouse.close()


def test_no_hostile_record_stops_an_agent_and_valid_records_land(landed: dict):
    assert landed["alive"], landed["log"]
    assert landed["statuses"] == {"ping": 200, "seat": 200, "snowplow": 200}
    assert _query(landed, "SELECT count() FROM fct_ping_instance FINAL")[0][0] == 1
    assert _query(landed, "SELECT count() FROM fct_seat_link FINAL")[0][0] == 1
    events = _query(landed, "SELECT event_category, event_action FROM fct_behavior_structured_event")
    assert events == [("hostile", "valid-after")]


def test_every_hostile_record_is_a_dead_letter(landed: dict):
    rows = _query(landed, "SELECT source, stage, reason, kafka_topic FROM raw_dead_letter FINAL")
    by_topic: dict[str, int] = {}
    for _, _, _, topic in rows:
        by_topic[topic] = by_topic.get(topic, 0) + 1
    settings = landed["settings"]
    expected = {settings.topic(t): len(r) for t, r in HOSTILE.items() if t != TOPIC_DLQ}
    assert {t: by_topic.get(t, 0) for t in expected} == expected
    # the two records put straight on the DLQ were stored with their unusable fields in the reason
    direct = [r for r in rows if r[3] not in expected]
    assert len(direct) == 2 and all("unusable dead-letter headers" in r[2] for r in direct), rows
    deep = [r for r in rows if "nested deeper than" in r[2]]
    assert len(deep) >= 3, rows


def test_no_dead_letter_keeps_the_license_key(landed: dict):
    originals = _query(landed, "SELECT original FROM raw_dead_letter FINAL")
    assert originals
    assert not [o for o in originals if SECRET in str(o[0])]
    assert SECRET not in landed["log"]
