"""Snowplow end to end on real parts: the official Python tracker and the sample fleet -> HTTP collector ->
Kafka -> Faust worker -> ClickHouse (chdb).

What is compared: every event the tracker or the generator sent against the row the warehouse holds, column
by column (expected values come from what the senders chose, not from the pipeline's parsing); dead letters
against the malformed inputs; counts before and after republishing the raw topic; and every stored string
against the client addresses.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from snowplow_tracker import Emitter, PageView, SelfDescribing, SelfDescribingJson, StructuredEvent, Subject, Tracker

from fleet.snowplow import LINK_CLICK, STANDARD, send_snowplow
from fleet.snowplow_events import generate_snowplow
from streams.collector import RunningCollector
from streams.collector.snowplow import CORS_ORIGINS_ENV, PIXEL
from streams.config import MAX_BODY_BYTES, TOPIC_DLQ, TOPIC_NORMALIZED_SNOWPLOW, TOPIC_RAW_SNOWPLOW, Settings
from streams.enrich.geo import encode_location, locate
from streams.enrich.personal import pseudonymize_event
from streams.enrich.pseudonym import hash_key
from streams.kafka.topics import ensure_topics
from streams.warehouse import open_warehouse
from tests.support.pipeline import running_pipeline

pytestmark = pytest.mark.integration

HASH_KEY = "snowplow-test-hash-key"
TRACKER_IP = "192.0.2.10"  # set on one tracker's Subject: a documentation range standing for San Francisco
LOOPBACK = "127.0.0.1"  # every request's peer address
FOREIGN = "iglu:com.acme/device/jsonschema/1-0-0"  # another vendor's entity: kept unvalidated in `contexts`
NO_RETRY = {400, 401, 403, 410, 422}  # snowplow-tracker's Emitter._should_retry: never retried


def expected_hash(user_id: str) -> int:
    """The keyed hash, computed here from its definition (blake2b MAC, 8 bytes, big-endian, 0 -> 1)."""
    digest = hashlib.blake2b(user_id.encode(), key=HASH_KEY.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") or 1


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    name = tmp_path_factory.mktemp("snowplow").name
    # One normalizer process beside the worker: the whole pipeline's numbers are checked through it (the other
    # pipeline tests and the demo normalize in the worker itself).
    return Settings.from_env(data_dir=tmp_path_factory.mktemp("data"), topic_prefix=f"t-{name}.",
                             app_id=f"test-{name}", topic_partitions=3, sink_batch_size=50)


@pytest.fixture(scope="module")
def hash_key_env():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DENOMAS_HASH_KEY", HASH_KEY)  # the worker child process inherits it
        hash_key.cache_clear()  # the collector runs in this process
        yield
    hash_key.cache_clear()


@pytest.fixture(scope="module")
def fleet():
    sample = generate_snowplow(8, 4, seed=11)
    assert sample.summary()["malformed_events"] >= 6 and sample.summary()["conflicts"] >= 1
    return sample


# --- senders ------------------------------------------------------------------------------------------------


@dataclass
class TrackedEvent:
    """What the official tracker was asked to send, and the row that must come of it."""

    method: str
    encode_base64: bool
    event_id: str
    event_type: str
    category: str = ""
    action: str = ""
    label: str = ""
    prop: str = ""
    value: float | None = None
    schema: str = ""
    data: dict | None = None
    page_url: str = ""
    foreign_context: bool = False
    ip: str = LOOPBACK


@dataclass
class Sent:
    tracked: list[TrackedEvent] = field(default_factory=list)
    tracker_failures: list = field(default_factory=list)
    tracker_successes: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    mixed_good: list[str] = field(default_factory=list)
    fleet_report: object = None


def standard_context(method: str, b64: bool) -> dict:
    return {"environment": "production", "source": "denomas-python", "namespace_id": 101,
            "ultimate_parent_namespace_id": 100, "project_id": 7, "plan": "ultimate", "realm": "saas",
            "deployment_type": ".com", "host_name": "denomas.example", "instance_version": "18.2.0",
            "user_id": 4242, "extra": {"sent_with": f"{method}-{b64}"}}


def send_with_official_tracker(url: str, sent: Sent) -> None:
    """snowplow-tracker 1.1.0 in POST and GET mode, base64 and plain JSON, pointed at our collector."""
    host, port = url.removeprefix("http://").split(":")
    lock = threading.Lock()

    def on_success(events: list) -> None:
        with lock:
            sent.tracker_successes += len(events)

    def on_failure(count: int, events: list) -> None:
        with lock:
            sent.tracker_failures.extend(events)

    for method in ("post", "get"):
        for b64 in (True, False):
            emitter = Emitter(host, protocol="http", port=int(port), method=method, batch_size=2 if method == "post"
                              else None, on_success=on_success, on_failure=on_failure, request_timeout=10)
            subject = Subject().set_user_id(f"tracker-user-{method}")
            ip = LOOPBACK
            if method == "post" and b64:
                subject.set_ip_address(TRACKER_IP)
                ip = TRACKER_IP
            tracker = Tracker("gl", emitter, subject=subject, app_id="denomas-tracker-test", encode_base64=b64)
            standard = SelfDescribingJson(STANDARD, standard_context(method, b64))
            foreign = SelfDescribingJson(FOREIGN, {"model": "laptop"})
            common = {"method": method, "encode_base64": b64, "ip": ip}
            eid = tracker.track(StructuredEvent("InternalEventTracking", "i_search_total", label="global_search",
                                                property_="navbar", value=2, context=[standard, foreign]))
            sent.tracked.append(TrackedEvent(event_id=eid, event_type="struct", category="InternalEventTracking",
                                             action="i_search_total", label="global_search", prop="navbar",
                                             value=2.0, foreign_context=True, **common))
            click = {"targetUrl": f"https://denomas.example/{method}/{b64}", "elementId": "nav"}
            eid = tracker.track(SelfDescribing(SelfDescribingJson(LINK_CLICK, click), context=[standard]))
            sent.tracked.append(TrackedEvent(event_id=eid, event_type="unstruct", schema=LINK_CLICK, data=click,
                                             **common))
            page = f"https://denomas.example/group/project/{method}-{b64}"
            eid = tracker.track(PageView(page, "Project", context=[standard]))
            sent.tracked.append(TrackedEvent(event_id=eid, event_type="page_view", page_url=page, **common))
            tracker.flush()


def raw_event(**params: str) -> dict:
    import uuid

    return {"e": "se", "eid": str(uuid.uuid4()), "tv": "py-1.1.0", "p": "srv", "se_ca": "c", "se_ac": "a",
            "dtm": "1780000000000", "co": orjson.dumps({
                "schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1",
                "data": [{"schema": STANDARD, "data": {"environment": "production"}}]}).decode()} | params


MIXED_BAD = {"missing_e": 1, "bad_base64_context": 2, "context_schema_violation": 3, "not_an_object": 5}


async def send_raw_requests(url: str, sent: Sent) -> None:
    """Malformed requests and a batch mixing good and malformed events, as a buggy client sends them."""
    tp2 = f"{url}/com.snowplowanalytics.snowplow/tp2"
    payload = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
    good1, good2 = raw_event(se_ac="mixed_good_1"), raw_event(se_ac="mixed_good_2")
    missing_e = raw_event()
    del missing_e["e"]
    bad_b64 = raw_event(cx="eyJzY2hlbWEi%%%")
    del bad_b64["co"]
    contexts = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1"
    wrong_context = raw_event(co=orjson.dumps({"schema": contexts,
                                               "data": [{"schema": STANDARD, "data": {"plan": "free"}}]}).decode())
    mixed = [good1, missing_e, bad_b64, wrong_context, good2, "not an object"]
    sent.mixed_good = [good1["eid"], good2["eid"]]
    requests = {
        "not_json": b'{"schema": "' + payload.encode() + b'", "data": [{"e": "se"',
        "wrong_schema": orjson.dumps({"schema": "iglu:com.acme/batch/jsonschema/1-0-0", "data": [good1]}),
        "empty_data": orjson.dumps({"schema": payload, "data": []}),
        "mixed": orjson.dumps({"schema": payload, "data": mixed}),
    }
    async with aiohttp.ClientSession() as session:
        for name, body in requests.items():
            async with session.post(tp2, data=body, headers={"Content-Type": "application/json"}) as response:
                sent.statuses[name] = response.status
        async with session.post(tp2, data=b"\x1f\x8b garbage", headers={"Content-Encoding": "gzip"}) as response:
            sent.statuses["bad_gzip"] = response.status
        os.environ[CORS_ORIGINS_ENV] = "https://app.example"  # only configured origins get credentials
        async with session.options(tp2, headers={"Origin": "https://app.example",
                                                 "Access-Control-Request-Method": "POST"}) as response:
            sent.statuses["options"] = response.status
            assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
            assert response.headers["Access-Control-Allow-Credentials"] == "true"
            assert "SP-Anonymous" in response.headers["Access-Control-Allow-Headers"]
        del os.environ[CORS_ORIGINS_ENV]
        pixel = {"e": "pv", "url": "https://denomas.example/pixel", "tv": "js-3", "p": "web",
                 "eid": "7b0b0f6e-8a8b-4c7a-9d35-2f7d7bcd5a11"}
        async with session.get(f"{url}/i", params=pixel) as response:
            sent.statuses["pixel"] = response.status
            assert response.headers["Content-Type"] == "image/gif"
            assert await response.read() == PIXEL
        async with session.get(f"{url}/i?e=se&tv=x&p=web&se_ca=%FF%FE&se_ac=a") as response:  # not UTF-8
            sent.statuses["pixel_not_utf8"] = response.status


async def run_pipeline(settings: Settings, bootstrap: str, send) -> None:
    async with running_pipeline(settings, bootstrap) as pipeline:
        await send(pipeline.url)
        await pipeline.landed(timeout=300)


@pytest.fixture(scope="module")
def first_run(kafka_bootstrap, settings, fleet, hash_key_env) -> Sent:
    sent = Sent()

    async def send(url: str) -> None:
        await asyncio.to_thread(send_with_official_tracker, url, sent)
        await send_raw_requests(url, sent)
        sent.fleet_report = await send_snowplow(url, fleet.events, fleet.bad_requests)

    asyncio.run(run_pipeline(settings, kafka_bootstrap, send))
    return sent


# --- reading back -------------------------------------------------------------------------------------------


def query(settings: Settings, sql: str, params=None) -> list[dict]:
    warehouse = open_warehouse(settings)
    try:
        return warehouse.query(sql, params).dicts()
    finally:
        warehouse.close()


def rows_by_id(settings: Settings) -> dict[str, dict]:
    rows = query(settings, "SELECT * FROM fct_behavior_structured_event FINAL")
    by_id = {row["event_id"]: row for row in rows}
    assert len(by_id) == len(rows)
    return by_id


def ts(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).replace(tzinfo=UTC)


async def consume_all(bootstrap: str, topic: str) -> list:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        records = []
        while True:
            batch = await consumer.getmany(timeout_ms=2000)
            if not batch:
                return records
            for partition_records in batch.values():
                records.extend(partition_records)
    finally:
        await consumer.stop()


# --- the collector ------------------------------------------------------------------------------------------


def test_the_official_tracker_is_answered_as_success_and_bad_requests_are_never_retried(first_run, fleet):
    assert first_run.tracker_failures == []
    assert first_run.tracker_successes == len(first_run.tracked) == 12
    statuses = first_run.statuses
    assert statuses["options"] == 200 and statuses["pixel"] == 200 and statuses["mixed"] == 200
    for name in ("not_json", "wrong_schema", "empty_data", "bad_gzip", "pixel_not_utf8"):
        assert statuses[name] in NO_RETRY, name
        assert not Emitter("localhost")._should_retry(statuses[name])  # the tracker's own rule
    assert Emitter("localhost")._should_retry(503)  # broker down: the tracker must retry
    report = first_run.fleet_report
    assert report.statuses[200] == report.requests - len(fleet.bad_requests)
    assert report.events_accepted == len(fleet.events)
    assert Counter(s for s in report.statuses.elements() if s != 200) == Counter(r.status for r in fleet.bad_requests)


def test_the_raw_topic_holds_one_keyed_record_per_request_and_user_and_no_ip_in_any_body(
        first_run, kafka_bootstrap, settings, fleet):
    records = asyncio.run(consume_all(kafka_bootstrap, settings.topic(TOPIC_RAW_SNOWPLOW)))
    batches = [r for r in records if dict(r.headers)["kind"] == b"events"]
    by_eid, positions, keys_per_request = {}, {}, {}
    for record in batches:
        events = orjson.loads(record.value)
        headers = dict(record.headers)
        assert headers["received_at"] and headers["request_id"]
        indexes = [int(i) for i in headers["event_index"].decode().split(",")]
        assert isinstance(events, list) and len(indexes) == len(events)  # each event's position in its request
        positions.setdefault(headers["request_id"], []).extend(indexes)
        assert record.key not in keys_per_request.setdefault(headers["request_id"], set())  # one record per user
        keys_per_request[headers["request_id"]].add(record.key)
        for event in events:
            if isinstance(event, dict):
                assert "ip" not in event  # resolved to a coarse location by the collector, then dropped
                if "eid" in event:
                    by_eid.setdefault(event["eid"], []).append((record.key, headers))
    assert all(sorted(p) == list(range(len(p))) for p in positions.values())  # every event of a request, once
    [(_, mixed_headers)] = by_eid[first_run.mixed_good[0]]
    # every item of the mixed batch, the malformed ones too
    assert len(positions[mixed_headers["request_id"]]) == 6
    for tracked in first_run.tracked:
        [(key, headers)] = by_eid[tracked.event_id]
        assert key == f"u:{expected_hash('4242'):016x}".encode()  # keyed by the (hashed) user of the context
        assert "client_ip" not in headers  # no IP is ever written to Kafka
        assert headers["client_geo"].decode() == encode_location(locate(tracked.ip))
    bad = [r for r in records if dict(r.headers)["kind"] == b"bad_request"]
    assert len(bad) == 5 + len(fleet.bad_requests)
    assert {r.value for r in bad} >= {request.body for request in fleet.bad_requests}  # original bytes
    assert all(TRACKER_IP.encode() not in r.value + b"".join(v for _, v in r.headers) for r in records)


def test_collector_edge_cases_forwarded_for_anonymous_oversized_and_gzip(kafka_bootstrap, tmp_path, unique_name):
    settings = Settings.from_env(data_dir=tmp_path, topic_prefix=f"t-sp-edge-{unique_name}.", topic_partitions=1)
    payload = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
    forwarded, anonymous, zipped = raw_event(), raw_event(ip="192.0.2.77"), raw_event()

    async def run() -> tuple[list[int], list]:
        await ensure_topics(kafka_bootstrap, settings, [TOPIC_RAW_SNOWPLOW])
        collector = RunningCollector(kafka_bootstrap, settings)
        url = await collector.start()
        tp2 = f"{url}/com.snowplowanalytics.snowplow/tp2"
        statuses = []
        try:
            async with aiohttp.ClientSession() as session:
                for body, headers in (
                    (orjson.dumps({"schema": payload, "data": [forwarded]}),
                     {"X-Forwarded-For": "203.0.113.7, 10.0.0.1"}),
                    (orjson.dumps({"schema": payload, "data": [anonymous]}), {"SP-Anonymous": "*"}),
                    (b"x" * (MAX_BODY_BYTES + 10), {}),
                    (gzip.compress(orjson.dumps({"schema": payload, "data": [zipped]})), {"Content-Encoding": "gzip"}),
                ):
                    async with session.post(tp2, data=body, headers=headers) as response:
                        statuses.append(response.status)
        finally:
            await collector.stop()
        return statuses, await consume_all(kafka_bootstrap, settings.topic(TOPIC_RAW_SNOWPLOW))

    statuses, records = asyncio.run(run())
    assert statuses == [200, 200, 400, 200]  # an oversized body is a bad row, never a retried 413
    by_eid = {event["eid"]: dict(r.headers) for r in records if dict(r.headers)["kind"] == b"events"
              for event in orjson.loads(r.value)}
    # X-Forwarded-For 203.0.113.7 is located (a documentation range standing in for Tokyo); the IP itself never
    # reaches Kafka. SP-Anonymous: no location at all, not even from the tracker's own ip parameter.
    assert by_eid[forwarded["eid"]]["client_geo"] == b"JP|Tokyo|Tokyo"
    assert "client_ip" not in by_eid[forwarded["eid"]]
    assert "client_geo" not in by_eid[anonymous["eid"]] and "client_ip" not in by_eid[anonymous["eid"]]
    assert zipped["eid"] in by_eid
    [oversized] = [r for r in records if dict(r.headers)["kind"] == b"bad_request"]
    assert dict(oversized.headers)["bad_row_type"].decode().endswith("/size_violation/jsonschema/1-0-0")
    assert oversized.value == b"x" * 2**20  # the first MiB is kept for the bad row
    assert all(b"192.0.2.77" not in r.value for r in records)


# --- the warehouse ------------------------------------------------------------------------------------------


def test_every_tracker_event_lands_once_with_its_context_columns(first_run, settings):
    rows = rows_by_id(settings)
    for tracked in first_run.tracked:
        row = rows[tracked.event_id]
        context = standard_context(tracked.method, tracked.encode_base64)
        assert (row["event_type"], row["event_category"], row["event_action"], row["event_label"],
                row["event_property"], row["event_value"]) == (
            tracked.event_type, tracked.category, tracked.action, tracked.label, tracked.prop, tracked.value)
        assert row["event_schema"] == tracked.schema
        assert (orjson.loads(row["event_data"]) if row["event_data"] else None) == tracked.data
        assert row["page_url"] == tracked.page_url
        assert (row["app_id"], row["platform"], row["tracker_version"], row["name_tracker"]) == (
            "denomas-tracker-test", "pc", "py-1.1.0", "gl")
        for name in ("namespace_id", "ultimate_parent_namespace_id", "project_id", "plan", "environment", "source",
                     "realm", "deployment_type", "host_name", "instance_version"):
            assert row[name] == context[name], name
        assert row["instance_id"] == ""
        assert orjson.loads(row["context_extra"]) == context["extra"]
        assert int(row["user_hash"]) == expected_hash("4242")  # the context's user id wins over uid
        foreign = [{"schema": FOREIGN, "data": {"model": "laptop"}}]
        assert (orjson.loads(row["contexts"]) if row["contexts"] else []) == (foreign if tracked.foreign_context
                                                                               else [])
        assert (row["geo_country"], row["geo_region"], row["geo_city"]) == (
            ("US", "California", "San Francisco") if tracked.ip == TRACKER_IP else ("ZZ", "", ""))
        assert row["ua_family"] == "python-requests"


def test_every_fleet_event_lands_once_equal_to_what_the_generator_recorded(first_run, settings, fleet):
    rows = rows_by_id(settings)
    expected = fleet.expected_rows()
    fleet_rows = {eid: row for eid, row in rows.items() if row["app_id"] in ("denomas", "denomas_sm")}
    assert set(fleet_rows) == set(expected)
    for event_id, want in expected.items():
        row = fleet_rows[event_id]
        got = {
            "event_type": row["event_type"], "platform": row["platform"], "app_id": row["app_id"],
            "category": row["event_category"], "action": row["event_action"], "label": row["event_label"],
            "property": row["event_property"], "value": row["event_value"], "schema": row["event_schema"],
            "data": orjson.loads(row["event_data"]) if row["event_data"] else None,
            "extra": orjson.loads(row["context_extra"]) if row["context_extra"] else None,
            "user_hash": int(row["user_hash"]), "namespace_id": int(row["namespace_id"]),
            "ultimate_parent_namespace_id": int(row["ultimate_parent_namespace_id"]),
            "project_id": int(row["project_id"]),
            "context": tuple(row[n] for n in ("plan", "environment", "source", "realm", "deployment_type",
                                              "instance_id", "host_name", "instance_version")),
            "geo": (row["geo_country"], row["geo_region"], row["geo_city"]), "ua_family": row["ua_family"],
            "page_url": row["page_url"], "behavior_date": row["behavior_date"],
        }
        assert got == {
            "event_type": want.event_type, "platform": want.platform, "app_id": want.app_id,
            "category": want.event_category, "action": want.event_action, "label": want.event_label,
            "property": want.event_property, "value": want.event_value, "schema": want.event_schema,
            "data": want.event_data, "extra": want.context_extra, "user_hash": expected_hash(want.user_id),
            "namespace_id": want.namespace_id, "ultimate_parent_namespace_id": want.ultimate_parent_namespace_id,
            "project_id": want.project_id,
            "context": (want.plan, want.environment, want.source, want.realm, want.deployment_type,
                        want.instance_id, want.host_name, want.instance_version),
            "geo": (want.geo_country, want.geo_region, want.geo_city), "ua_family": want.ua_family,
            "page_url": want.page_url, "behavior_date": want.behavior_date.isoformat(),
        }, event_id


def test_derived_timestamps_undo_device_clock_skew_and_late_sending(first_run, settings, fleet):
    rows = rows_by_id(settings)
    events = {e.expected.event_id: e for e in fleet.events if e.expected is not None}
    skewed = late = 0
    for event_id, event in events.items():
        row = rows[event_id]
        collector, created, sent = ts(row["collector_tstamp"]), ts(row["dvce_created_tstamp"]), ts(
            row["dvce_sent_tstamp"])
        derived = ts(row["derived_tstamp"])
        assert created == event.created_at + timedelta(milliseconds=event.skew_ms)  # dtm as the device sent it
        assert derived == collector - (sent - created)  # Snowplow's formula, recomputed from the stored inputs
        transit = derived - event.created_at  # what is left: network and queueing time of this run
        assert timedelta(0) <= transit < timedelta(minutes=10), (event_id, transit)
        skewed += event.skew_ms != 0
        late += event.late
    assert skewed > 0 and late > 0


def test_malformed_input_reaches_the_dead_letter_table_with_reasons_while_good_events_land(first_run, settings,
                                                                                             fleet):
    rows = rows_by_id(settings)
    assert all(eid in rows for eid in first_run.mixed_good)
    letters = query(settings, "SELECT stage, reason, original FROM raw_dead_letter FINAL WHERE source = 'snowplow'")
    stages = Counter(letter["stage"] for letter in letters)
    want = fleet.expected_dead_letters()
    want["validate"] += len(MIXED_BAD)
    want["collector"] += 5  # not_json, wrong_schema, empty_data, bad_gzip, pixel_not_utf8
    assert stages == want
    for letter in letters:
        bad_row = orjson.loads(letter["reason"])
        assert bad_row["schema"].startswith(("iglu:com.snowplowanalytics.snowplow.badrows/",
                                             "iglu:com.denomas.badrows/"))
        assert bad_row["data"]["processor"]["artifact"] == "denomas-usage-snowplow"
        assert bad_row["data"]["failure"]["messages"]
    originals = {letter["original"] for letter in letters}
    for request in fleet.bad_requests:
        assert request.body.decode(errors="replace") in originals  # the original bytes
    by_type = Counter(orjson.loads(letter["reason"])["schema"].split("/")[1] for letter in letters)
    assert by_type["tracker_protocol_violations"] >= 2 and by_type["schema_violations"] >= 3
    assert by_type["collector_payload_format_violation"] >= 3 and by_type["adapter_failures"] >= 3
    assert by_type["event_id_conflict"] == fleet.expected_dead_letters()["dedup"]
    # Each malformed fleet event is dead-lettered with its own bytes (minus ip, user ids pseudonymized, plus the stm
    # of its request).
    stored = []
    for original in originals:
        try:
            document = orjson.loads(original)
        except orjson.JSONDecodeError:
            continue  # a body that was not JSON
        if isinstance(document, dict):
            stored.append({k: v for k, v in document.items() if k != "stm"})
    for event in fleet.events:
        if event.defect:
            assert pseudonymize_event({k: v for k, v in event.payload.items() if k != "ip"}) in stored, event.defect
    messages = " ".join(letter["reason"] for letter in letters)
    for needle in ("'e' is a required property", "not valid base64", "'environment' is a required property",
                   "schema not found in the registry", "is not one of", "does not match"):
        assert needle in messages, needle


def test_same_id_other_content_keeps_the_first_copy_and_dead_letters_the_other(first_run, settings, fleet):
    rows = rows_by_id(settings)
    conflicts = [e for e in fleet.events if e.conflict]
    letters = query(settings, "SELECT original, reason FROM raw_dead_letter FINAL WHERE stage = 'dedup'")
    assert len(letters) == len(conflicts)
    for event in conflicts:
        assert rows[event.event_id]["event_label"] != "conflicting-copy"
        [letter] = [x for x in letters if orjson.loads(x["original"])["eid"] == event.event_id]
        assert orjson.loads(letter["original"])["se_la"] == "conflicting-copy"
        assert "already stored with different content" in letter["reason"]


def test_bad_row_view_has_one_row_per_bad_event(first_run, settings):
    view = query(settings, "SELECT count() AS n, uniqExact(request_id, event_index, stage) AS u, "
                           "countIf(length(failure_messages) = 0) AS empty FROM raw_snowplow_bad_row")[0]
    letters = query(settings, "SELECT count() AS n FROM raw_dead_letter FINAL WHERE source = 'snowplow'")[0]
    assert int(view["n"]) == int(view["u"]) == int(letters["n"])
    assert int(view["empty"]) == 0


# --- redelivery and privacy ---------------------------------------------------------------------------------

COUNTS = {
    "rows": "SELECT count() FROM fct_behavior_structured_event FINAL",
    "rows_plain": "SELECT count() FROM fct_behavior_structured_event",
    # decimal: a Float64 sum moves in its last digits with the summation order that merges bring
    "value_sum": ("SELECT toString(sum(toDecimal128(ifNull(event_value, 0), 9))) "
                  "FROM fct_behavior_structured_event FINAL"),
    "users": "SELECT uniqExact(user_hash) FROM fct_behavior_structured_event FINAL",
    "bad_rows": "SELECT count() FROM raw_snowplow_bad_row",
}


def snapshot(settings: Settings) -> dict:
    warehouse = open_warehouse(settings)
    try:
        values = {name: warehouse.query(sql).scalar() for name, sql in COUNTS.items()}
        aggregates = [row[0] for row in warehouse.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase() AND startsWith(name, 'agg_behavior') "
            "AND engine LIKE '%MergeTree'").rows]
        for table in aggregates:  # tables fed by materialized views on ours must not move either
            values[table] = warehouse.query(f"SELECT count() FROM {table} FINAL").scalar()
        return values
    finally:
        warehouse.close()


def test_republishing_the_raw_topic_changes_no_row_count(first_run, kafka_bootstrap, settings):
    before = snapshot(settings)
    raw_topic = settings.topic(TOPIC_RAW_SNOWPLOW)
    records = asyncio.run(consume_all(kafka_bootstrap, raw_topic))
    bad_records = sum(1 for r in records if dict(r.headers)["kind"] == b"bad_request")
    letters_before = query(settings, "SELECT count() AS n FROM raw_dead_letter FINAL WHERE source = 'snowplow'")[0]

    async def republish(url: str) -> None:  # a replay: same bytes, same receipt headers, new offsets
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            for record in records:
                await producer.send(raw_topic, record.value, key=record.key, headers=list(record.headers))
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(run_pipeline(settings, kafka_bootstrap, republish))
    assert snapshot(settings) == before
    # raw_dead_letter is per Kafka record: the replayed bad records are new records there (and only those).
    letters_after = query(settings, "SELECT count() AS n FROM raw_dead_letter FINAL WHERE source = 'snowplow'")[0]
    assert int(letters_after["n"]) - int(letters_before["n"]) == int(before["bad_rows"])
    assert int(before["bad_rows"]) > bad_records > 0

    warehouse = open_warehouse(settings)
    try:
        warehouse.execute("OPTIMIZE TABLE fct_behavior_structured_event FINAL")
        assert warehouse.query(COUNTS["rows_plain"]).scalar() == before["rows"]
    finally:
        warehouse.close()


def test_no_ip_address_is_stored_anywhere_in_the_warehouse(first_run, settings, fleet):
    addresses = {TRACKER_IP, LOOPBACK} | {e.payload["ip"] for e in fleet.events if "ip" in e.payload}
    warehouse = open_warehouse(settings)
    try:
        tables = warehouse.query("SELECT name FROM system.tables WHERE database = currentDatabase() "
                                 "AND engine NOT IN ('View', 'MaterializedView')").rows
        checked = 0
        for (table,) in tables:
            columns = [name for name, in warehouse.query(
                "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {t:String} "
                "AND position(type, 'String') > 0", {"t": table}).rows]
            if not columns:
                continue
            text = "concat('', " + ", '|', ".join(f"toString(`{c}`)" for c in columns) + ")"
            for address in addresses:
                hits = warehouse.query(f"SELECT count() FROM `{table}` WHERE position({text}, {{ip:String}}) > 0",
                                       {"ip": address}).scalar()
                assert int(hits) == 0, (table, address)
            checked += warehouse.query(f"SELECT count() FROM `{table}`").scalar()
        assert checked > 0
    finally:
        warehouse.close()


def test_no_ip_address_leaves_the_raw_topic(first_run, kafka_bootstrap, settings, fleet):
    addresses = {TRACKER_IP.encode(), LOOPBACK.encode()} | {e.payload["ip"].encode() for e in fleet.events
                                                            if "ip" in e.payload}
    # The raw topic too (kept forever for replays): the collector resolves the location at the edge.
    for topic in (TOPIC_RAW_SNOWPLOW, TOPIC_NORMALIZED_SNOWPLOW, TOPIC_DLQ):
        records = asyncio.run(consume_all(kafka_bootstrap, settings.topic(topic)))
        assert records
        for record in records:
            blob = record.value + b"".join(v for _, v in record.headers)
            assert not any(address in blob for address in addresses), topic
