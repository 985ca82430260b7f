"""The pure parts of the Snowplow pipeline: protocol checks, decoding, enrichment, bad rows, sample data.

Tracker-made payloads come from the official snowplow-tracker with a capturing emitter (no network), so the
decoder is tested on exactly what the tracker puts on the wire.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from snowplow_tracker import PageView, SelfDescribing, SelfDescribingJson, StructuredEvent, Subject, Tracker

from fleet.snowplow import tracker_batches
from fleet.snowplow_events import generate_snowplow
from streams.agents.snowplow import SnowplowNormalizer
from streams.config import Settings
from streams.enrich import pseudonym
from streams.enrich.geo import LOCAL, UNKNOWN, Location, locate
from streams.enrich.iglu import Registry, parse_uri
from streams.enrich.personal import redact_bytes
from streams.enrich.pseudonym import user_hash
from streams.enrich.snowplow import (
    BAD_ADAPTER,
    BAD_FORMAT,
    BAD_PROTOCOL,
    BAD_SCHEMA,
    BadEvent,
    Receipt,
    b64decode_any,
    bad_row,
    decode_contexts,
    derived_tstamp_ms,
    fingerprint,
    normalize_event,
    protocol_errors,
    take_ip,
)
from streams.enrich.snowplow_requests import EnvelopeError, partition_key, query_event, split_payload
from streams.warehouse import migrate, open_warehouse
from streams.warehouse.writers import write_behavior_events

KEY = b"unit-test-key"
STANDARD = "iglu:com.denomas/denomas_standard/jsonschema/1-0-0"
CONTEXTS = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1"
PAYLOAD_DATA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
REGISTRY = Registry.from_dir()
T0 = datetime(2026, 6, 3, 12, 0, 0, tzinfo=UTC)


class CapturingEmitter:
    """Receives what the official tracker would send (the emitter interface the Tracker calls)."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    def input(self, payload: dict) -> None:
        self.events.append({k: str(v) for k, v in payload.items()})  # as the POST emitter stringifies

    def flush(self) -> None: ...

    def sync_flush(self) -> None: ...

    def async_flush(self) -> None: ...


def tracked(encode_base64: bool, *events) -> list[dict]:
    emitter = CapturingEmitter()
    subject = Subject().set_user_id("uid-9").set_ip_address("198.51.100.7").set_useragent(
        "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0")
    tracker = Tracker("gl", emitter, subject=subject, app_id="denomas", encode_base64=encode_base64)
    for event in events:
        tracker.track(event)
    return emitter.events


def context(**data) -> SelfDescribingJson:
    return SelfDescribingJson(STANDARD, {"environment": "production"} | data)


def receipt(ip: str | None = None, ua: str = "python-requests/2.32") -> Receipt:
    return Receipt(T0, "req-1", 0, "collector-1", ua, ip)


def normalize(event: dict, ip: str | None = None) -> dict:
    event = dict(event)
    ip = take_ip(event) or ip
    return normalize_event(event, receipt(ip), REGISTRY, KEY)


# --- collector-side parsing ------------------------------------------------------------------------------------


def test_split_payload_accepts_payload_data_and_refuses_the_rest_with_no_retry_statuses():
    assert split_payload(orjson.dumps({"schema": PAYLOAD_DATA, "data": [{"e": "pv"}, 3]})) == [{"e": "pv"}, 3]
    older = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-0"
    assert split_payload(orjson.dumps({"schema": older, "data": [{}]})) == [{}]
    cases = [
        (b'{"schema": "iglu:com', 400, BAD_FORMAT),
        (b"[1, 2]", 422, BAD_ADAPTER),
        (orjson.dumps({"schema": "iglu:com.acme/payload_data/jsonschema/1-0-4", "data": [{}]}), 422, BAD_ADAPTER),
        (orjson.dumps({"schema": PAYLOAD_DATA.replace("1-0-4", "2-0-0"), "data": [{}]}), 422, BAD_ADAPTER),
        (orjson.dumps({"schema": PAYLOAD_DATA, "data": []}), 422, BAD_ADAPTER),
        (orjson.dumps({"schema": PAYLOAD_DATA, "data": {"e": "pv"}}), 422, BAD_ADAPTER),
    ]
    for body, status, kind in cases:
        with pytest.raises(EnvelopeError) as info:
            split_payload(body)
        assert (info.value.status, info.value.bad_row_type) == (status, kind), body
        assert info.value.reason


def test_query_event_decodes_form_encoding_and_refuses_bytes_that_are_not_utf8():
    assert query_event("e=se&se_ca=a%20b&se_ac=c+d&se_la=&e=pv") == {"e": "se", "se_ca": "a b", "se_ac": "c d",
                                                                    "se_la": ""}
    assert query_event("") == {}
    with pytest.raises(EnvelopeError) as info:
        query_event("e=se&se_ca=%FF%FE")
    assert info.value.status == 400


def test_take_ip_removes_the_parameter():
    event = {"e": "pv", "ip": "192.0.2.1"}
    assert take_ip(event) == "192.0.2.1" and event == {"e": "pv"}
    assert take_ip({"e": "pv"}) is None and take_ip("junk") is None


def test_redact_ip_params_blanks_ip_values_in_json_and_query_strings():
    assert redact_bytes(b'{"e":"se","ip" : "192.0.2.1","x":1') == b'{"e":"se","ip":"","x":1'
    assert redact_bytes(b"e=se&ip=192.0.2.1&p=web") == b"e=se&ip=&p=web"
    assert redact_bytes(b"ip=10.0.0.1&e=se") == b"ip=&e=se"
    assert redact_bytes(b"zip=123") == b"zip=123"


def test_partition_key_prefers_the_user_then_the_namespace_then_the_event_id():
    [with_user] = tracked(True, StructuredEvent("c", "a", context=[context(user_id=5, namespace_id=9)]))
    assert partition_key(with_user, KEY) == f"u:{user_hash(5, KEY):016x}"
    [namespace_only] = tracked(False, StructuredEvent("c", "a", context=[context(namespace_id=9)]))
    namespace_only.pop("uid")
    assert partition_key(namespace_only, KEY) == "n:9"
    [anonymous] = tracked(True, StructuredEvent("c", "a"))
    anonymous.pop("uid")
    assert partition_key(anonymous, KEY) == f"e:{anonymous['eid']}"
    retry = dict(with_user, stm="123")  # a tracker retry carries a new stm: same key, same partition
    assert partition_key(retry, KEY) == partition_key(with_user, KEY)
    assert partition_key({"cx": "%%%"}, KEY) is None and partition_key(7, KEY) is None


# --- decoding -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
@pytest.mark.parametrize("strip_padding", [False, True])
def test_b64decode_accepts_both_alphabets_with_or_without_padding(encode, strip_padding):
    raw = orjson.dumps({"schema": "iglu:a/b/jsonschema/1-0-0", "data": {"x": "??>>~~"}})  # '+' '/' in standard
    text = encode(raw).decode()
    assert b64decode_any(text.rstrip("=") if strip_padding else text) == raw


def test_b64decode_refuses_garbage():
    for text in ("eyJzY2hlbWEi%%%", "a", "!!!!"):
        with pytest.raises(ValueError):
            b64decode_any(text)


@pytest.mark.parametrize("encode_base64", [True, False])
def test_tracker_contexts_and_self_describing_events_decode(encode_base64):
    click = SelfDescribingJson("iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1",
                               {"targetUrl": "https://d.example/x"})
    events = tracked(encode_base64,
                     StructuredEvent("InternalEventTracking", "i_search_total", label="l", property_="p", value=1.5,
                                     context=[context(namespace_id=12, plan="premium", user_id="77",
                                                      extra={"k": [1, 2]})]),
                     SelfDescribing(click, context=[context(), SelfDescribingJson("iglu:com.acme/x/jsonschema/1-0-0",
                                                                                  {"a": 1})]),
                     PageView("https://d.example/p", "P"))
    assert ("cx" in events[0]) == encode_base64 and ("ue_px" in events[1]) == encode_base64
    struct, unstruct, page = (normalize(e) for e in events)
    assert (struct["event_type"], struct["event_category"], struct["event_action"], struct["event_label"],
            struct["event_property"], struct["event_value"]) == ("struct", "InternalEventTracking", "i_search_total",
                                                                 "l", "p", 1.5)
    assert (struct["namespace_id"], struct["plan"], struct["environment"]) == (12, "premium", "production")
    assert struct["user_hash"] == user_hash("77", KEY)  # the context's user id wins over uid
    assert orjson.loads(struct["context_extra"]) == {"k": [1, 2]}
    assert struct["contexts"] == "" and struct["event_data"] == ""
    assert unstruct["event_type"] == "unstruct"
    assert unstruct["event_schema"] == "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1"
    assert orjson.loads(unstruct["event_data"]) == {"targetUrl": "https://d.example/x"}
    assert orjson.loads(unstruct["contexts"]) == [{"schema": "iglu:com.acme/x/jsonschema/1-0-0", "data": {"a": 1}}]
    assert unstruct["user_hash"] == user_hash("uid-9", KEY)  # no user in the context: uid
    assert (page["event_type"], page["page_url"], page["page_title"]) == ("page_view", "https://d.example/p", "P")
    assert page["environment"] == "" and page["namespace_id"] == 0 and page["context_extra"] == ""
    for row in (struct, unstruct, page):
        assert (row["geo_country"], row["geo_region"], row["geo_city"]) == ("DE", "Berlin", "Berlin")
        assert row["ua_family"] == "Firefox"  # the event's ua wins over the request's
        assert (row["ua_name"], row["ua_version"], row["os_family"], row["device_family"]) == (
            "Firefox", "127.0", "Linux", "Other")
        assert (row["platform"], row["app_id"], row["tracker_version"], row["name_tracker"]) == (
            "pc", "denomas", "py-1.1.0", "gl")
        assert "198.51.100.7" not in orjson.dumps(row).decode()


def test_contexts_must_be_wrapped_and_well_formed():
    def with_co(value) -> dict:
        return {"e": "pv", "tv": "t", "p": "web", "url": "u", "co": orjson.dumps(value).decode()}

    assert decode_contexts(with_co({"schema": CONTEXTS, "data": []})) == []
    for value in ({"schema": STANDARD, "data": [{"environment": "x"}]},  # not wrapped in contexts
                  {"schema": CONTEXTS, "data": {"schema": STANDARD, "data": {}}},  # data not a list
                  {"schema": CONTEXTS, "data": [{"environment": "x"}]},  # entity not self-describing
                  [1, 2]):
        with pytest.raises(BadEvent) as info:
            decode_contexts(with_co(value))
        assert info.value.bad_row_type == BAD_SCHEMA
    with pytest.raises(BadEvent, match="not valid JSON"):
        decode_contexts({"co": "{nope"})


# --- validation ------------------------------------------------------------------------------------------------


def good_event(**params) -> dict:
    return {"e": "se", "eid": "1f0e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", "tv": "py-1.1.0", "p": "srv", "se_ca": "c",
            "se_ac": "a", "dtm": "1780000000000", "stm": "1780000000500"} | params


@pytest.mark.parametrize(("change", "needle"), [
    ({"e": None}, "'e' is a required property"),
    ({"tv": None}, "'tv' is a required property"),
    ({"e": "zz"}, "is not one of"),
    ({"p": "desktop"}, "is not one of"),
    ({"eid": "not-a-uuid"}, "does not match"),
    ({"dtm": "yesterday"}, "does not match"),
    ({"se_va": "lots"}, "does not match"),
    ({"se_ac": None}, "'se_ac' is a required property"),
    ({"se_ca": ""}, "should be non-empty"),
    ({"surprise": "x"}, "Additional properties are not allowed"),
    ({"se_va": 3}, "is not of type 'string'"),
    ({"e": "ue"}, "is not valid under any of the given schemas"),
    ({"e": "pv"}, "'url' is a required property"),
])
def test_protocol_violations_are_named(change, needle):
    event = {k: v for k, v in (good_event() | change).items() if v is not None}
    errors = protocol_errors(event)
    assert any(needle in e for e in errors), errors
    with pytest.raises(BadEvent) as info:
        normalize_event(event, receipt(), REGISTRY, KEY)
    assert info.value.bad_row_type == BAD_PROTOCOL


def test_a_good_event_has_no_protocol_errors():
    assert protocol_errors(good_event()) == []
    assert protocol_errors("junk") == ["an event must be an object of string parameters, got str"]


@pytest.mark.parametrize(("data", "needle"), [
    ({"plan": "free"}, "'environment' is a required property"),
    ({"environment": "production", "namespace_id": -1}, "-1 is less than the minimum of 0"),
    ({"environment": "production", "namespace_id": "12"}, "is not of type 'integer', 'null'"),
    ({"environment": "production", "realm": "moon"}, "is not one of"),
    ({"environment": "production", "colour": "red"}, "Additional properties are not allowed"),
])
def test_standard_context_violations_are_schema_violations(data, needle):
    co = orjson.dumps({"schema": CONTEXTS, "data": [{"schema": STANDARD, "data": data}]}).decode()
    with pytest.raises(BadEvent) as info:
        normalize(good_event(co=co))
    assert info.value.bad_row_type == BAD_SCHEMA
    assert any(needle in m for m in info.value.messages), info.value.messages


def test_unknown_denomas_schemas_fail_and_other_vendors_pass_unvalidated():
    unknown = {"schema": "iglu:com.denomas/denomas_standard/jsonschema/9-0-0", "data": {}}
    other = {"schema": "iglu:com.acme/anything/jsonschema/1-0-0", "data": {"free": ["form"]}}
    with pytest.raises(BadEvent, match="schema not found in the registry"):
        normalize(good_event(co=orjson.dumps({"schema": CONTEXTS, "data": [unknown]}).decode()))
    row = normalize(good_event(co=orjson.dumps({"schema": CONTEXTS, "data": [other]}).decode()))
    assert orjson.loads(row["contexts"]) == [other]
    two = [{"schema": STANDARD, "data": {"environment": "a"}}, {"schema": STANDARD, "data": {"environment": "b"}}]
    with pytest.raises(BadEvent, match="at most one"):
        normalize(good_event(co=orjson.dumps({"schema": CONTEXTS, "data": two}).decode()))


def test_registry_resolves_exact_iglu_uris():
    key = parse_uri(STANDARD)
    assert key is not None and REGISTRY.validator(key) is not None
    assert parse_uri("iglu:com.denomas/denomas_standard/jsonschema/1-0") is None
    assert parse_uri("com.denomas/denomas_standard/jsonschema/1-0-0") is None
    assert REGISTRY.validator(parse_uri("iglu:com.denomas/denomas_standard/jsonschema/1-0-1")) is None


# --- timestamps, identity --------------------------------------------------------------------------------------


def test_derived_timestamp_follows_snowplow_and_never_passes_the_collector_time():
    collector = 1_780_000_100_000
    # device 1 h fast: created 09:00 device time, sent 09:00:05 device time -> 5 s before the collector saw it
    assert derived_tstamp_ms(collector, 1_780_003_600_000, 1_780_003_605_000, None) == collector - 5_000
    assert derived_tstamp_ms(collector, None, None, None) == collector
    assert derived_tstamp_ms(collector, 1_780_000_000_000, None, None) == collector  # no stm: no correction
    assert derived_tstamp_ms(collector, 1_780_000_200_000, 1_780_000_100_000, None) == collector  # created > sent
    assert derived_tstamp_ms(collector, 1, 2, 1_779_000_000_000) == 1_779_000_000_000  # true timestamp wins
    assert derived_tstamp_ms(collector, None, None, collector + 10**9) == collector  # future: clamped
    assert derived_tstamp_ms(1_000, 0, 10**12, None) == 0  # never before the epoch


def test_normalized_timestamps_and_behavior_date():
    created = T0 - timedelta(days=3, hours=2)  # offline for three days, device clock 10 minutes slow
    skew = -600_000
    dtm = int(created.timestamp() * 1000) + skew
    stm = int((T0 - timedelta(seconds=2)).timestamp() * 1000) + skew
    row = normalize(good_event(dtm=str(dtm), stm=str(stm)))
    assert datetime.fromisoformat(row["derived_tstamp"]) == created + timedelta(seconds=2)
    assert row["behavior_date"] == (created + timedelta(seconds=2)).date().isoformat()
    assert datetime.fromisoformat(row["collector_tstamp"]) == T0
    with pytest.raises(BadEvent, match="plausible"):
        normalize(good_event(dtm="9999999999999"))


def test_event_ids_are_canonical_and_derived_ids_are_stable():
    upper = good_event(eid="1F0E2D3C-4B5A-4978-8695-A4B3C2D1E0F9")
    assert normalize(upper)["event_id"] == "1f0e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
    no_id = {k: v for k, v in good_event().items() if k != "eid"}
    first, again = normalize(no_id)["event_id"], normalize(dict(no_id, stm="1"))["event_id"]
    assert first == again and len(first) == 36


def test_fingerprint_ignores_stm_but_not_content():
    event = good_event()
    assert fingerprint(event) == fingerprint(dict(event, stm="1"))
    assert fingerprint(event) != fingerprint(dict(event, se_la="other"))


def test_se_va_must_be_finite():
    with pytest.raises(BadEvent, match="finite"):
        normalize(good_event(se_va="1e999"))
    assert normalize(good_event(se_va=" 2.50 "))["event_value"] == 2.5


# --- enrichment lookups ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("ip", "location"), [
    ("192.0.2.10", Location("US", "California", "San Francisco")),
    ("192.0.2.200", Location("US", "New York", "New York")),
    ("198.51.100.1", Location("DE", "Berlin", "Berlin")),
    ("203.0.113.9", Location("JP", "Tokyo", "Tokyo")),
    ("2001:db8::1", Location("NL", "North Holland", "Amsterdam")),
    ("::ffff:203.0.113.9", Location("JP", "Tokyo", "Tokyo")),
    ("127.0.0.1", LOCAL), ("10.1.2.3", LOCAL), ("192.168.0.1", LOCAL), ("::1", LOCAL), ("fe80::1", LOCAL),
    ("8.8.8.8", Location("US", "", "")),  # a public address: country from the bundled data (test_geo.py)
    ("100.64.0.1", UNKNOWN), ("not an ip", UNKNOWN), ("", UNKNOWN), (None, UNKNOWN),
])
def test_geo_lookup(ip, location):
    assert locate(ip) == location


def test_user_hash_is_a_keyed_blake2b_and_zero_means_anonymous():
    expected = int.from_bytes(hashlib.blake2b(b"42", key=KEY, digest_size=8).digest(), "big")
    assert user_hash("42", KEY) == user_hash(42, KEY) == expected
    assert user_hash("42", b"other key") != expected
    assert user_hash(None, KEY) == user_hash("", KEY) == user_hash("  ", KEY) == user_hash(True, KEY) == 0


def test_hash_key_comes_from_the_environment_and_warns_without_it(monkeypatch, caplog):
    pseudonym.hash_key.cache_clear()
    try:
        monkeypatch.delenv("DENOMAS_HASH_KEY", raising=False)
        with caplog.at_level(logging.WARNING, logger="streams.enrich.pseudonym"):
            dev = pseudonym.hash_key()
        assert "DENOMAS_HASH_KEY is not set" in caplog.text
        pseudonym.hash_key.cache_clear()
        monkeypatch.setenv("DENOMAS_HASH_KEY", "s3cret")
        assert pseudonym.hash_key() == b"s3cret" != dev
        pseudonym.hash_key.cache_clear()
        monkeypatch.setenv("DENOMAS_HASH_KEY", "k" * 100)
        assert len(pseudonym.hash_key()) == 64  # blake2b keys are at most 64 bytes
    finally:
        pseudonym.hash_key.cache_clear()


# --- bad rows and the normalizer -------------------------------------------------------------------------------


def test_bad_rows_have_snowplows_shape_and_stay_under_the_dead_letter_reason_limit():
    messages = [f"message {n}: " + "x" * 1000 for n in range(40)]
    text = bad_row(BAD_SCHEMA, messages, receipt().public() | {"useragent": "u" * 200}, T0)
    assert len(text) < 2000
    document = orjson.loads(text)
    assert document["schema"] == BAD_SCHEMA
    assert document["data"]["processor"] == {"artifact": "denomas-usage-snowplow", "version": "0.1.0"}
    assert document["data"]["failure"]["timestamp"] == "2026-06-03T12:00:00.000+00:00"
    assert document["data"]["failure"]["messages"][-1] == "... and 35 more"
    assert document["data"]["payload"]["request_id"] == "req-1"
    assert "ip" not in document["data"]["payload"]


def test_normalizer_turns_records_into_rows_or_ip_free_bad_rows():
    normalizer = SnowplowNormalizer(REGISTRY, KEY)
    headers = {"kind": "event", "received_at": T0.isoformat(), "request_id": "r", "event_index": "2",
               "useragent": "curl/8"}
    source = {"topic": "raw", "partition": 1, "offset": 5}
    record = normalizer(orjson.dumps(good_event(ip="203.0.113.5")), headers, source)  # another producer's ip
    assert record["row"]["geo_country"] == "JP" and record["row"]["ua_family"] == "curl"
    assert record["receipt"]["event_index"] == 2 and record["source"] == source
    assert "203.0.113.5" not in orjson.dumps(record).decode()
    from streams.agents.snowplow import BadRow

    with pytest.raises(BadRow) as info:  # a producer that left an ip parameter in a bad event
        normalizer(orjson.dumps(good_event(e="zz", ip="192.0.2.99")), headers, source)
    assert info.value.stage == "validate" and b"192.0.2.99" not in info.value.original
    assert orjson.loads(info.value.reason)["schema"] == BAD_PROTOCOL
    with pytest.raises(BadRow) as info:
        normalizer(b"\xff not json", headers, source)
    assert info.value.original == b"\xff not json"
    with pytest.raises(BadRow) as info:
        normalizer(b"garbage", headers | {"kind": "bad_request", "bad_row_type": BAD_FORMAT, "reason": "nope"}, source)
    assert info.value.stage == "collector" and orjson.loads(info.value.reason)["data"]["failure"]["messages"] == [
        "nope"]


def test_a_record_of_one_requests_events_becomes_rows_and_bad_rows_with_their_positions():
    from streams.agents.common import letter_row
    from streams.agents.snowplow import BadRow

    normalizer = SnowplowNormalizer(REGISTRY, KEY)
    second = "2f0e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
    events = [good_event(e="zz"), good_event(), "not an object", good_event(eid=second)]
    headers = {"kind": "events", "received_at": T0.isoformat(), "request_id": "r", "event_index": "1,2,4,7"}
    source = {"topic": "raw", "partition": 0, "offset": 9}
    out = normalizer.records(orjson.dumps(events), headers, source)
    assert [type(o).__name__ for o in out] == ["BadRow", "dict", "BadRow", "dict"]
    bad = [o for o in out if isinstance(o, BadRow)]
    assert [b.part for b in bad] == [1, 4] and [orjson.loads(b.original) for b in bad] == [events[0], events[2]]
    assert [orjson.loads(b.reason)["data"]["payload"]["event_index"] for b in bad] == [1, 4]
    rows = [o for o in out if isinstance(o, dict)]
    assert [r["receipt"]["event_index"] for r in rows] == [2, 7] and [r["source"]["part"] for r in rows] == [2, 7]
    assert rows[1]["row"]["event_id"] == second
    letters = [{"kafka_topic": "raw", "kafka_partition": "0", "kafka_offset": "9", "stage": b.stage,
                "part": str(b.part)} for b in bad]
    assert len({letter_row(b.original, h)["dead_letter_id"] for b, h in zip(bad, letters, strict=True)}) == 2
    [broken] = normalizer.records(b"[not json", headers, source)  # the whole record is unusable: one bad row
    assert isinstance(broken, BadRow) and broken.original == b"[not json" and broken.part is None


def test_normalized_records_are_cut_by_count_and_by_bytes():
    from streams.agents.snowplow import json_array_chunks

    items = [{"n": i, "pad": "x" * (i % 7) * 100} for i in range(50)]
    by_count = list(json_array_chunks(items, 20, 10**9))
    assert [len(orjson.loads(c)) for c in by_count] == [20, 20, 10]
    by_bytes = list(json_array_chunks(items, 1000, 2000))
    assert all(len(c) < 2000 + 800 for c in by_bytes) and len(by_bytes) > 5  # cut once 2,000 bytes are reached
    assert [i for c in by_bytes for i in orjson.loads(c)] == items  # nothing lost, order kept
    assert list(json_array_chunks([], 10, 10)) == []


# --- the idempotent writer, on the real engine -----------------------------------------------------------------


def test_writer_keeps_one_copy_of_exact_duplicates_and_reports_conflicts(tmp_path):
    normalizer = SnowplowNormalizer(REGISTRY, KEY)
    headers = {"kind": "event", "received_at": T0.isoformat()}

    def record(offset: int, **params) -> dict:
        return normalizer(orjson.dumps(good_event(**params)), headers, {"topic": "raw", "partition": 0,
                                                                       "offset": offset})

    first = record(1)
    retry = record(2, stm="1780000099000")  # same event, new stm: exact duplicate
    other = record(3, se_la="changed")  # same eid, other content: conflict
    second = record(4, eid="2f0e2d3c-4b5a-4978-8695-a4b3c2d1e0f9")
    warehouse = open_warehouse(Settings.from_env())
    try:
        migrate(warehouse)
        result = write_behavior_events(warehouse, [first, retry, other])
        assert (result.stored, result.duplicates, [r["source"]["offset"] for r in result.conflicts]) == (1, 1, [3])
        result = write_behavior_events(warehouse, [retry, first, other, second])  # redelivered, plus a new one
        assert (result.stored, result.duplicates, len(result.conflicts)) == (1, 2, 1)
        rows = warehouse.query("SELECT event_id, event_label FROM fct_behavior_structured_event ORDER BY event_id")
        assert rows.rows == [("1f0e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", ""), ("2f0e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", "")]
    finally:
        warehouse.close()


# --- sample data -----------------------------------------------------------------------------------------------


def test_sample_fleet_is_deterministic_and_consistent():
    fleet = generate_snowplow(8, 4, seed=5)
    again = generate_snowplow(8, 4, seed=5)
    assert [e.payload for e in fleet.events] == [e.payload for e in again.events]
    summary = fleet.summary()
    assert summary["rows"] == summary["events"] - summary["duplicates"] - summary["conflicts"] - summary[
        "malformed_events"]
    assert summary["late"] > 0 and summary["duplicates"] > 0 and summary["malformed_events"] > 0
    rows = fleet.expected_rows()
    assert len(rows) == summary["rows"]
    # Every good event's payload says what its expected row says (the two are written side by side).
    for event in fleet.events:
        if event.expected is not None:
            assert event.payload["eid"] == event.expected.event_id
            assert event.payload["uid"] == event.expected.user_id
    actions = {row.event_action for row in rows.values()}
    assert "i_code_review_user_create_mr" in actions or "i_search_total" in actions
    assert {row.realm for row in rows.values()} == {"saas", "self-managed"}


def test_tracker_batches_keep_trackers_together_and_send_copies_after_their_originals():
    fleet = generate_snowplow(8, 4, seed=5)
    batches = tracker_batches(fleet.events)
    assert sum(len(b) for b in batches) == len(fleet.events)
    position = {}
    for n, batch in enumerate(batches):
        assert len(batch) <= 10 and len({e.tracker for e in batch}) == 1
        assert len({e.sent_at.date() for e in batch}) == 1
        for event in batch:
            position.setdefault(event.event_id, n)
    for n, batch in enumerate(batches):
        if batch[0].duplicate or batch[0].conflict:
            assert position[batch[0].event_id] < n
