"""The HTTP collector: what real instances send, what bad clients send, and what reaches Kafka."""

from __future__ import annotations

import gzip
import zlib

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from streams.collector import BadRequest, RunningCollector, decode_body, parse_json_object
from streams.config import MAX_BODY_BYTES, TOPIC_RAW_SERVICE_PING, Settings
from streams.kafka.topics import ensure_topics
from streams.records import ping_id_for

PING = {"uuid": "0f3b-instance", "hostname": "git.example.com", "version": "17.3.1",
        "recorded_at": "2026-06-04T10:44:00.162+00:00", "counts": {"ci_builds": 5}}


# --- pure decoding -------------------------------------------------------------------------------

def test_decode_plain_gzip_and_deflate():
    body = orjson.dumps(PING)
    assert decode_body(body, "") == body
    assert decode_body(gzip.compress(body), "gzip") == body
    assert decode_body(zlib.compress(body), "deflate") == body


@pytest.mark.parametrize(
    ("raw", "encoding", "status"),
    [
        (b"not gzip", "gzip", 400),
        (gzip.compress(b"{}")[:-6], "gzip", 400),
        (b"{}", "br", 415),
        (gzip.compress(b" " * (MAX_BODY_BYTES + 10)), "gzip", 413),  # a gzip bomb is refused while inflating
    ],
)
def test_decode_refuses_bad_encodings(raw, encoding, status):
    with pytest.raises(BadRequest) as info:
        decode_body(raw, encoding)
    assert info.value.status == status


@pytest.mark.parametrize(("body", "status"), [(b"", 400), (b"{nope", 400), (b"[1, 2]", 422), (b"12", 422)])
def test_parse_json_object_refuses_non_objects(body, status):
    with pytest.raises(BadRequest) as info:
        parse_json_object(body)
    assert info.value.status == status
    assert info.value.reason


# --- against the real broker ---------------------------------------------------------------------

async def _consume_all(bootstrap: str, topic: str, expected: int) -> list:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None, max_partition_fetch_bytes=16 * 2**20)
    await consumer.start()
    records = []
    try:
        while len(records) < expected:
            batch = await consumer.getmany(timeout_ms=5000)
            if not batch:
                break
            for messages in batch.values():
                records.extend(messages)
    finally:
        await consumer.stop()
    return records


@pytest.mark.integration
async def test_collector_publishes_original_bytes_with_receipt_headers(kafka_bootstrap, tmp_path):
    await ensure_topics(kafka_bootstrap, Settings.from_env(data_dir=tmp_path, topic_partitions=2))
    collector = RunningCollector(kafka_bootstrap)
    url = await collector.start()
    body = orjson.dumps(PING)
    statuses = {}
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{url}/usage_data", data=body, headers={"Content-Type": "application/json"}) as r:
                answer = await r.json()
                statuses["plain"] = r.status
            async with http.post(f"{url}/usage_data", data=gzip.compress(body),
                                 headers={"Content-Encoding": "gzip"}) as r:
                statuses["gzip"] = r.status
                assert (await r.json())["conv_index"]["usage_data_id"] == answer["conv_index"]["usage_data_id"]
            for name, data, headers in [
                ("not_json", b"{oops", {}),
                ("array", b"[]", {}),
                ("bad_gzip", b"xx", {"Content-Encoding": "gzip"}),
                ("too_big", b"x" * (MAX_BODY_BYTES + 1), {}),
            ]:
                async with http.post(f"{url}/usage_data", data=data, headers=headers) as r:
                    statuses[name] = r.status
                    assert (await r.json())["error"], name
            error_report = {"error": {"uuid": PING["uuid"], "hostname": "h", "version": "17.3.1",
                                      "message": "boom at x.rb:1", "elapsed": 1.5, "time": PING["recorded_at"]}}
            async with http.post(f"{url}/usage_ping_errors", json=error_report) as r:
                statuses["error_report"] = r.status
            metadata = {"metadata": {"uuid": PING["uuid"], "metrics": [{"name": "counts.ci_builds",
                                                                       "time_elapsed": 0.2}]}}
            async with http.post(f"{url}/usage_ping_metadata", json=metadata) as r:
                statuses["metadata"] = r.status
            async with http.get(f"{url}/health") as r:
                statuses["health"] = r.status
    finally:
        await collector.stop()

    assert statuses == {"plain": 200, "gzip": 200, "not_json": 400, "array": 422, "bad_gzip": 400,
                        "too_big": 413, "error_report": 201, "metadata": 201, "health": 200}
    assert answer["conv_index"]["usage_data_id"] == ping_id_for(PING, body) > 0

    records = await _consume_all(kafka_bootstrap, TOPIC_RAW_SERVICE_PING, 4)
    assert len(records) == 4  # two pings, one error report, one metadata report; nothing from bad requests
    pings = [r for r in records if dict(r.headers)["kind"] == b"ping"]
    assert [r.value for r in pings] == [body, body]  # original bytes, gzip undone
    assert {r.key for r in records} == {PING["uuid"].encode()}  # keyed by instance uuid: one partition, in order
    headers = dict(pings[0].headers)
    assert headers["source"] == b"service_ping"
    assert int(headers["ping_id"]) == answer["conv_index"]["usage_data_id"]
    assert headers["received_at"].startswith(b"20")
    assert sorted(dict(r.headers)["kind"] for r in records) == [b"error", b"metadata", b"ping", b"ping"]


class _DownPublisher:
    async def publish(self, topic, key, value, headers):
        raise ConnectionError("broker unreachable")


async def test_collector_answers_503_and_accepts_nothing_when_publishing_fails():
    from aiohttp.test_utils import TestClient, TestServer

    from streams.collector import Collector, build_app

    async with TestClient(TestServer(build_app(Collector(_DownPublisher())))) as client:
        response = await client.post("/usage_data", data=orjson.dumps(PING))
        assert response.status == 503
        assert "retry" in (await response.json())["error"]
