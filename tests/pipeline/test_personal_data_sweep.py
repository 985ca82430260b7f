"""Personal data at rest, end to end: a stream carrying known user ids and IPs (good and bad requests through the
real collector, hostile records published straight to the raw topics and the DLQ) runs through the real broker,
worker process and warehouse; then every record of every topic the pipeline uses, every column of every table of
its database and every process log are swept. None holds a known id, IP, the license key or the hash key; the
keyed hashes are where they belong (so the sweep is shown to read what it sweeps)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import random
import re
import uuid
from collections.abc import Iterator
from logging.handlers import BufferingHandler
from pathlib import Path
from urllib.parse import unquote_to_bytes

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from fleet.demo import wait_until_landed
from fleet.seat_link import generate_seat_links
from streams.config import (
    TOPIC_DLQ,
    TOPIC_NORMALIZED_SNOWPLOW,
    TOPIC_RAW_SEAT_LINK,
    TOPIC_RAW_SERVICE_PING,
    TOPIC_RAW_SNOWPLOW,
    Settings,
)
from streams.enrich import pseudonym as pseudonym_module
from streams.enrich.pseudonym import HASH_KEY_ENV, pseudonym, user_hash
from streams.kafka.topics import PIPELINE_TOPICS
from streams.warehouse import open_warehouse
from streams.worker import WorkerProcess
from tests.support.hostile import consume_all, thread_collector

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]
_rng = random.Random(RUN)
HASH_KEY = f"pii-sweep-hash-key-{RUN}"
# Every known id and IP is unique to this run, so any copy found anywhere is ours.
IDS = {name: f"pii-{name}-{RUN}" for name in (
    "uid", "duid", "ctx", "global", "ga", "ue", "pixel", "bad-json", "bad-array", "bad-ctx", "bad-event",
    "bad-pixel", "raw-uid", "raw-ctx", "raw-bad", "raw-broken", "raw-request", "dlq")}
IPS = {name: f"198.{_rng.randint(18, 19)}.{_rng.randint(0, 255)}.{_rng.randint(1, 254)}" for name in (
    "param", "xff", "pixel", "bad-json", "bad-array", "bad-pixel", "raw", "raw-escaped", "raw-broken", "raw-request",
    "reason", "ping", "dlq")}
IPS["v6"] = f"2001:db8:{_rng.randint(1, 0xffff):x}::{_rng.randint(1, 0xffff):x}"
LICENSE_KEY = f"PII-SWEEP-LICENSE-{RUN}-0123456789abcdef"
MARKER = f"marker-{RUN}"  # not personal: must be found wherever the records go (the sweep reads them)

STANDARD = "iglu:com.denomas/denomas_standard/jsonschema/1-0-0"
GITLAB = "iglu:com.gitlab/gitlab_standard/jsonschema/1-1-8"
CONTEXTS = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0"
UNSTRUCT = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0"
PAYLOAD_DATA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"


def b64(document: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(document)).decode().rstrip("=")


def standard(user: str, **extra: object) -> str:
    data = {"environment": "production", "realm": "saas", "namespace_id": 7, "user_id": user} | extra
    return b64({"schema": CONTEXTS, "data": [{"schema": STANDARD, "data": data}]})


def event(n: int, **params: str) -> dict:
    return {"e": "se", "p": "web", "tv": "js-3.0", "se_ca": "pii", "se_ac": f"action-{n}", "se_la": MARKER,
            "eid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{RUN}/{n}")), "dtm": "1780000000000"} | params


GOOD_POST = {"schema": PAYLOAD_DATA, "data": [
    event(1, uid=IDS["uid"], duid=IDS["duid"], ip=IPS["param"], cx=standard(IDS["ctx"], extra={"note": MARKER})),
    event(2, e="ue", uid=IDS["uid"], co=orjson.dumps({"schema": CONTEXTS, "data": [{"schema": GITLAB, "data": {
        "environment": "production", "global_user_id": IDS["global"], "google_analytics_id": IDS["ga"]}}]}).decode(),
        ue_pr=orjson.dumps({"schema": UNSTRUCT, "data": {"schema": "iglu:com.acme/signup/jsonschema/1-0-0",
                                                          "data": {"user_id": IDS["ue"], "plan": "free"}}}).decode()),
]}
BAD_REQUESTS = [  # (method, path, body, headers, expected status)
    ("POST", "/com.snowplowanalytics.snowplow/tp2",
     ('{"schema": "' + PAYLOAD_DATA + '", "data": [{"e": "se", "uid": "' + IDS["bad-json"] + '", "\\u0069p": "'
      + IPS["bad-json"] + '", "se_la": "').encode(), {}, 400),
    ("POST", "/com.snowplowanalytics.snowplow/tp2", orjson.dumps([event(3, uid=IDS["bad-array"], ip=IPS["bad-array"],
                                                                       cx=standard(IDS["bad-ctx"]))]), {}, 422),
    ("POST", "/com.snowplowanalytics.snowplow/tp2", orjson.dumps({"schema": PAYLOAD_DATA, "data": [
        {k: v for k, v in event(4, uid=IDS["bad-event"], cx=standard(IDS["bad-event"])).items() if k != "e"}]}),
     {"X-Forwarded-For": f"{IPS['xff']}, 10.0.0.1"}, 200),
    ("GET", f"/i?e=se&se_ca=%FF&uid={IDS['bad-pixel']}&ip={IPS['bad-pixel']}".encode(), b"", {}, 400),
]


def raw_records(settings: Settings) -> list[tuple[str, bytes, list[tuple[str, bytes]]]]:
    """Hostile records another producer publishes straight to the raw topics and the DLQ."""
    escaped = orjson.dumps(event(6, uid=IDS["raw-bad"], se_va="x", ip="IP")).replace(
        b'"ip":"IP"', b'"\\u0069p":"' + IPS["raw-escaped"].encode() + b'"')
    key = LICENSE_KEY.encode()
    return [
        (TOPIC_RAW_SNOWPLOW, orjson.dumps([event(5, uid=IDS["raw-uid"], ip=IPS["raw"], cx=standard(IDS["raw-ctx"]))]),
         [("kind", b"events")]),
        (TOPIC_RAW_SNOWPLOW, escaped, [("kind", b"event")]),
        (TOPIC_RAW_SNOWPLOW, b'[{"uid": "' + IDS["raw-broken"].encode() + b'", "ip": "' + IPS["raw-broken"].encode()
         + b'", "e": "se"', [("kind", b"events")]),
        (TOPIC_RAW_SNOWPLOW, f"e=se&uid={IDS['raw-request']}&ip={IPS['raw-request']}".encode(),
         [("kind", b"bad_request"), ("reason", f"client {IPS['reason']} sent garbage".encode())]),
        (TOPIC_RAW_SERVICE_PING, b'{"uuid": "pii", "hostname": "' + IPS["ping"].encode() + b'", "ip": "'
         + IPS["v6"].encode() + b'", "cut', []),
        (TOPIC_RAW_SEAT_LINK, b'{"license_key": "' + key + b'", "date": "2026-', []),
        (TOPIC_RAW_SEAT_LINK, b'[{"license_key": "' + key + b'"}]', []),
        (TOPIC_RAW_SEAT_LINK, b'{"report": {"license_key": "' + key + b'"}}', []),
        (TOPIC_DLQ, b'{"uid": "' + IDS["dlq"].encode() + b'", "ip": "' + IPS["dlq"].encode() + b'"}',
         [("source", b"other"), ("stage", b"x"), ("reason", f"from {IPS['dlq']}".encode())]),
    ]


def secrets() -> dict[str, bytes]:
    return {**{f"id {k}": v.encode() for k, v in IDS.items()}, **{f"ip {k}": v.encode() for k, v in IPS.items()},
            "license key": LICENSE_KEY.encode(), "hash key": HASH_KEY.encode()}


_BASE64 = re.compile(rb"[A-Za-z0-9+/_-]{16,}={0,2}")


def readable(data: bytes) -> bytes:
    """The bytes, plus their percent-decoded form and every base64 token decoded (ids hide in `cx`)."""
    out = [data, unquote_to_bytes(data)]
    for token in _BASE64.findall(data):
        text = token.replace(b"-", b"+").replace(b"_", b"/").rstrip(b"=")
        try:
            out.append(base64.b64decode(text + b"=" * (-len(text) % 4)))
        except (binascii.Error, ValueError):
            continue
    return b"\n".join(out)


def found(haystacks: dict[str, bytes]) -> dict[str, list[str]]:
    """For each secret, where it was found."""
    return {name: where for name, secret in secrets().items()
            if (where := [place for place, data in haystacks.items() if secret in data])}


@pytest.fixture(scope="module")
def swept(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, warehouse_service) -> Iterator[dict]:
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv(HASH_KEY_ENV, HASH_KEY)  # the collector (this process) and the worker hash alike
    pseudonym_module.hash_key.cache_clear()
    captured, root = BufferingHandler(10**9), logging.getLogger()  # every log line of this process, kept
    saved_level = root.level
    root.addHandler(captured)
    root.setLevel(logging.DEBUG)
    try:
        yield _run(kafka_bootstrap, tmp_path_factory, warehouse_service, captured)
    finally:
        root.removeHandler(captured)
        root.setLevel(saved_level)
        monkeypatch.undo()
        pseudonym_module.hash_key.cache_clear()


def _run(bootstrap: str, factory: pytest.TempPathFactory, warehouse_service, captured: BufferingHandler) -> dict:
    name = factory.mktemp("pii").name
    settings = Settings.from_env(data_dir=factory.mktemp("pii-data"), topic_prefix=f"pii-{name}.",
                                 app_id=f"pii-{name}", topic_partitions=2)
    seat = [r for r in generate_seat_links(3, 2, seed=5) if r.status == 200 and r.expected][0]
    seat_body = orjson.dumps(orjson.loads(seat.body) | {"license_key": LICENSE_KEY})
    with thread_collector(bootstrap, settings) as collector:
        direct = asyncio.run(_publish(bootstrap, settings))
        captured.buffer.clear()  # aiokafka logs what this test's producer (the other producer) sends, at DEBUG
        worker = WorkerProcess(settings, bootstrap)
        worker.start()
        try:
            statuses = [collector.request("POST", "/com.snowplowanalytics.snowplow/tp2", orjson.dumps(GOOD_POST),
                                          {"X-Forwarded-For": f"{IPS['xff']}, 10.0.0.1"}).status,
                        collector.request("GET", "/i?" + "&".join(f"{k}={v}" for k, v in event(
                            7, uid=IDS["pixel"], ip=IPS["pixel"]).items())).status,
                        collector.request("POST", "/api/v1/seat_links", seat_body).status]
            statuses += [collector.request(method, path, body, headers).status
                         for method, path, body, headers, _ in BAD_REQUESTS]
            asyncio.run(wait_until_landed(settings, bootstrap, timeout=240))
            alive = worker.alive()
        finally:
            assert worker.stop() is not None
    topics, records = asyncio.run(_every_record(bootstrap, settings))
    collector_log = "\n".join(map(captured.format, captured.buffer))
    return {"settings": settings, "statuses": statuses, "alive": alive, "worker_log": worker.log_path,
            "topics": topics, "records": records, "direct": direct, "collector_log": collector_log,
            "tables": _every_table(settings),
            "logs": _every_log(factory, worker.log_path, warehouse_service.log_path)}


async def _publish(bootstrap: str, settings: Settings) -> set[tuple[str, int, int]]:
    """Publish the hostile records; returns their positions (another producer's records are theirs: we cannot
    rewrite them, only clean what we publish and store from them)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    direct = set()
    try:
        for topic, value, headers in raw_records(settings):
            sent = await producer.send_and_wait(settings.topic(topic), value=value, headers=headers)
            direct.add((sent.topic, sent.partition, sent.offset))
    finally:
        await producer.stop()
    return direct


async def _every_record(bootstrap: str, settings: Settings) -> tuple[list[str], list]:
    """Every record of every topic of this pipeline: our prefixed topics and Faust's own (named after the app)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = sorted(t for t in await admin.list_topics()
                       if t.startswith(settings.topic_prefix) or t.startswith(settings.app_id))
    finally:
        await admin.close()
    return names, await consume_all(bootstrap, names, idle_seconds=3.0)


def _every_table(settings: Settings) -> dict[str, bytes]:
    """Every column (as text) of every row of every table of the pipeline's database."""
    warehouse = open_warehouse(settings)
    try:
        tables = [row[0] for row in warehouse.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase() AND engine NOT LIKE '%View'").rows]
        out = {}
        for table in tables:
            columns = [row[0] for row in warehouse.query(
                "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {t:String}",
                {"t": table}).rows]
            # identifiers from system.columns, quoted; hex so that bytes that are not UTF-8 come back intact
            cells = ", ".join(f"hex(toString(`{c}`))" for c in columns)
            rows = warehouse.query(f"SELECT arrayStringConcat([{cells}], ',') FROM `{table}`").rows
            out[table] = b"\n".join(bytes.fromhex(cell) for row in rows for cell in row[0].split(","))
        return out
    finally:
        warehouse.close()


def _every_log(factory: pytest.TempPathFactory, *paths: Path) -> dict[str, bytes]:
    """The worker's and warehouse service's logs and every other log file of the session (the broker's); not the
    broker's segment files (`<topic>-<partition>/*.log`: the topics, swept as records)."""
    segments = re.compile(r"-\d+$")
    files = set(paths) | {p for p in factory.getbasetemp().glob("**/*.log") if not segments.search(p.parent.name)}
    return {str(path): path.read_bytes() for path in files if path.is_file()}


def _topic_haystacks(swept: dict) -> dict[str, bytes]:
    out: dict[str, list[bytes]] = {}
    for record in swept["records"]:
        if (record.topic, record.partition, record.offset) in swept["direct"]:
            continue
        parts = [record.key or b"", record.value or b""] + [k.encode() + b"=" + v for k, v in record.headers]
        out.setdefault(record.topic, []).append(readable(b"\n".join(parts)))
    return {topic: b"\n".join(parts) for topic, parts in out.items()}


def test_the_stream_went_through(swept: dict):
    assert swept["alive"], swept["worker_log"].read_text(errors="replace")[-3000:]
    assert swept["statuses"] == [200, 200, 200] + [status for *_, status in BAD_REQUESTS]
    settings = swept["settings"]
    missing = {settings.topic(t) for t in PIPELINE_TOPICS} - set(swept["topics"])
    assert not missing  # the sweep covers every topic of the pipeline (and Faust's own)


def test_no_topic_holds_a_known_id_ip_or_key(swept: dict):
    haystacks = _topic_haystacks(swept)
    assert found(haystacks) == {}
    settings = swept["settings"]
    raw = haystacks[settings.topic(TOPIC_RAW_SNOWPLOW)]
    normalized = haystacks[settings.topic(TOPIC_NORMALIZED_SNOWPLOW)]
    dlq = haystacks[settings.topic(TOPIC_DLQ)]
    collected = ("uid", "duid", "ctx", "global", "ga", "ue", "pixel")
    for where, names in ((raw, collected), (normalized, (*collected, "raw-uid", "raw-ctx"))):
        assert MARKER.encode() in where  # what the sweep looks for is visible to it: markers, and the keyed hashes
        for name in names:
            assert pseudonym(IDS[name]).encode() in where, name
    for name in ("bad-json", "bad-array", "bad-ctx", "bad-event", "bad-pixel", "raw-bad", "raw-broken", "raw-request"):
        assert pseudonym(IDS[name]).encode() in dlq, name


def test_no_table_holds_a_known_id_ip_or_key(swept: dict):
    tables = swept["tables"]
    assert found(tables) == {}
    hashes = {user_hash(IDS[n]) for n in ("ctx", "uid", "pixel", "raw-ctx")}
    events = tables["fct_behavior_structured_event"]
    # the label of the two posted events, the pixel and the raw record, and the note in one context's extra
    assert events.count(MARKER.encode()) == 5
    assert all(str(h).encode() in events for h in hashes)  # user_hash column: the keyed hash of each user
    for name in ("global", "ga", "ue"):
        assert pseudonym(IDS[name]).encode() in events, name  # contexts and event_data columns
    letters = tables["raw_dead_letter"]
    for name in ("bad-json", "bad-array", "bad-event", "bad-pixel", "raw-bad", "raw-broken", "raw-request", "dlq"):
        assert pseudonym(IDS[name]).encode() in readable(letters), name
    assert b"[ip]" in letters  # IP literals in bytes that are not JSON were replaced
    assert "fct_seat_link" in tables and tables["fct_seat_link"]


def test_no_log_holds_a_known_id_ip_or_key(swept: dict):
    logs = dict(swept["logs"], collector=swept["collector_log"].encode())
    assert str(swept["worker_log"]) in logs and logs["collector"]  # the sweep read the processes' logs
    assert found(logs) == {}
