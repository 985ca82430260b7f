"""Personal data, the pure parts: user ids pseudonymized (keyed hash) wherever a Snowplow event carries them, IPs
and ids taken out of the bytes dead letters keep, license keys never in clear in a Seat Link dead letter."""

from __future__ import annotations

import base64
import hashlib

import orjson
import pytest

from streams.agents.seat_link import redact as redact_seat_link
from streams.agents.snowplow import SnowplowNormalizer
from streams.enrich.iglu import Registry
from streams.enrich.personal import UNDECODABLE, pseudonymize_event, redact_bytes, redact_reason
from streams.enrich.pseudonym import hashed_user, parse_pseudonym, pseudonym, user_hash
from streams.enrich.snowplow_requests import partition_key

KEY = b"test-key"
STANDARD = "iglu:com.denomas/denomas_standard/jsonschema/1-0-0"
GITLAB = "iglu:com.gitlab/gitlab_standard/jsonschema/1-1-8"
CONTEXTS = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0"
UNSTRUCT = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0"
SECRET = "LICENSE-KEY-SECRET-0123456789abcdef"


def contexts(*entities: tuple[str, dict]) -> dict:
    return {"schema": CONTEXTS, "data": [{"schema": s, "data": d} for s, d in entities]}


def b64(document: dict) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(document)).decode().rstrip("=")


def unb64(text: str) -> dict:
    return orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


def event_text(raw: str) -> str:
    document = orjson.loads(raw)
    return raw + (orjson.dumps(unb64(document["cx"])).decode() if "cx" in document else "")


def event(**params: str) -> dict:
    return {"e": "se", "p": "web", "tv": "js-3.0", "se_ca": "c", "se_ac": "a",
            "eid": "0b4e7c8e-1f2a-4b3c-8d4e-5f6a7b8c9d0e", "dtm": "1780000000000"} | params


def test_pseudonym_carries_the_keyed_hash_and_is_never_hashed_again():
    token = pseudonym("alice", KEY)
    assert parse_pseudonym(token) == user_hash("alice", KEY) and token != "alice"
    assert pseudonym(token, KEY) == token  # idempotent
    assert hashed_user(token, KEY) == hashed_user("alice", KEY) == user_hash("alice", KEY)
    assert pseudonym(42, KEY) == pseudonym("42", KEY) and pseudonym("", KEY) == "" and pseudonym(None, KEY) == ""
    assert pseudonym("alice", b"other key") != token
    for almost in (token.upper(), token + "0", token[:-1] + "g", token.replace(":", ";")):
        assert parse_pseudonym(almost) is None


def test_every_user_id_of_an_event_is_pseudonymized_in_params_contexts_and_self_describing_events():
    standard = contexts((STANDARD, {"environment": "production", "user_id": "u-7", "namespace_id": 3}),
                        (GITLAB, {"environment": "production", "user_id": 99, "global_user_id": "g-7",
                                  "google_analytics_id": "GA1.2.3", "extra": {"userId": "u-8", "ip": "10.1.2.3"}}))
    unstruct = {"schema": UNSTRUCT, "data": {"schema": "iglu:com.acme/signup/jsonschema/1-0-0",
                                             "data": {"user_id": "u-9", "plan": "free"}}}
    raw = event(uid="u-1", duid="cookie-1", tnuid="net-1", nuid="net-2", cx=b64(standard), ue_pr=orjson.dumps(unstruct)
                .decode(), co=orjson.dumps(standard).decode())
    cleaned = pseudonymize_event(raw, KEY)
    for name, original in (("uid", "u-1"), ("duid", "cookie-1"), ("tnuid", "net-1"), ("nuid", "net-2")):
        assert cleaned[name] == pseudonym(original, KEY)
    for decoded in (unb64(cleaned["cx"]), orjson.loads(cleaned["co"])):
        first, second = (entity["data"] for entity in decoded["data"])
        assert first == {"environment": "production", "user_id": pseudonym("u-7", KEY), "namespace_id": 3}
        assert second["user_id"] == pseudonym(99, KEY) and second["global_user_id"] == pseudonym("g-7", KEY)
        assert second["google_analytics_id"] == pseudonym("GA1.2.3", KEY)
        assert second["extra"] == {"userId": pseudonym("u-8", KEY), "ip": ""}
    assert orjson.loads(cleaned["ue_pr"])["data"]["data"] == {"user_id": pseudonym("u-9", KEY), "plan": "free"}
    text = orjson.dumps(cleaned)
    assert not [s for s in (b"u-1", b"u-7", b"u-8", b"u-9", b"g-7", b"GA1.2.3", b"cookie-1", b"10.1.2.3") if s in text]
    assert pseudonymize_event(cleaned, KEY) is cleaned  # a second pass changes nothing
    assert raw["uid"] == "u-1"  # the caller's event is not modified
    plain = event(cx=b64(contexts((STANDARD, {"environment": "production"}))))
    assert pseudonymize_event(plain, KEY) is plain  # nothing to change: the tracker's encoding is kept


def test_a_context_that_cannot_be_decoded_is_removed_not_kept():
    cleaned = pseudonymize_event(event(uid="u-1", cx="eyJ1c2VyX2lkIjoi%%%", co='{"user_id": "u-2"'), KEY)
    assert cleaned["cx"] == UNDECODABLE and cleaned["co"] == UNDECODABLE


def test_keyed_hash_and_partition_key_are_the_same_before_and_after_pseudonymization():
    registry = Registry.from_dir()
    raw = event(uid="u-1")
    with_context = event(uid="u-1", cx=b64(contexts((STANDARD, {"environment": "production", "user_id": "u-2"}))))
    normalizer = SnowplowNormalizer(registry, KEY)
    for original, user in ((raw, "u-1"), (with_context, "u-2")):
        cleaned = pseudonymize_event(original, KEY)
        assert partition_key(cleaned, KEY) == partition_key(original, KEY) == f"u:{user_hash(user, KEY):016x}"
        for value in (orjson.dumps(original), orjson.dumps(cleaned)):
            record = normalizer(value, {"kind": "event"}, {"topic": "t", "partition": 0, "offset": 0})
            assert record["row"]["user_hash"] == user_hash(user, KEY)
            text = event_text(record["raw"])  # the normalized record's event text, contexts decoded
            assert user not in text and pseudonym(user, KEY) in text


def test_events_another_producer_published_are_pseudonymized_by_the_agent_also_in_bad_rows():
    normalizer = SnowplowNormalizer(Registry.from_dir(), KEY)
    bad = event(uid="u-3", ip="192.0.2.33", se_va="not a number")
    out = normalizer.records(orjson.dumps([bad, event(uid="u-4")]), {"kind": "events", "event_index": "0,1"},
                             {"topic": "t", "partition": 0, "offset": 7})
    letter, good = out
    assert letter.original and b"u-3" not in letter.original and b"192.0.2.33" not in letter.original
    assert pseudonym("u-3", KEY).encode() in letter.original
    assert good["row"]["user_hash"] == user_hash("u-4", KEY) and "u-4" not in good["raw"]


DEAD_LETTER_CASES = [
    # (original bytes, what must be gone, what must be there)
    (b'{"e":"se","ip":"203.0.113.9","uid":"u-5"}', [b"203.0.113.9", b"u-5"], [b'"ip":""']),
    (b'{"\\u0069p": "203.0.113.9", "\\u0075id": "u-5", "x": 1}', [b"203.0.113.9", b"u-5"], [b'"x":1']),
    (b'{"\\u0069p": "203.0.113.9", "uid": "u-5", "truncat', [b"203.0.113.9", b"u-5"], [b'"truncat']),
    (b'[{"uid": "u-5", "cx": "' + b64(contexts((STANDARD, {"environment": "p", "user_id": "u-6"}))).encode()[:30],
     [b"u-5", b64(contexts((STANDARD, {"environment": "p", "user_id": "u-6"}))).encode()[:30]], [UNDECODABLE.encode()]),
    (b"e=se&uid=u-5&ip=203.0.113.9&X-Forwarded-For=198.51.100.4", [b"u-5", b"203.0.113.9", b"198.51.100.4"],
     [b"e=se&uid=uh64:"]),
    (b"\xff\xfe not json at all 203.0.113.9, 2001:db8::5:9 %uid 12:30:45", [b"203.0.113.9", b"2001:db8::5:9"],
     [b"12:30:45", b"[ip]"]),
    (b'{"headers": {"X-Forwarded-For": "198.51.100.4, 10.0.0.1"}, "url": "https://h/p?ip=203.0.113.9&q=1"}',
     [b"198.51.100.4", b"10.0.0.1", b"203.0.113.9"], [b"q=1"]),
    (b'{"raw": "{\\"uid\\":\\"u-5\\",\\"ip\\":\\"203.0.113.9\\"}"}', [b"u-5", b"203.0.113.9"], []),
    (b'{"recorded_at": "2026-01-01T12:30:45Z", "version": "16.1.0"}', [], [b"12:30:45", b"16.1.0"]),
]


@pytest.mark.parametrize(("original", "gone", "kept"), DEAD_LETTER_CASES)
def test_dead_letter_bytes_keep_no_ip_and_no_user_id_in_clear(original: bytes, gone: list[bytes], kept: list[bytes]):
    redacted = redact_bytes(original, KEY)
    assert not [g for g in gone if g in redacted], redacted
    assert all(k in redacted for k in kept), redacted
    assert redact_bytes(redacted, KEY) == redacted  # idempotent: a dead letter of a dead letter is the same
    if b"u-5" in original:
        assert pseudonym("u-5", KEY).encode() in redacted  # the id is traceable by its keyed hash (erasure)


def test_bytes_with_nothing_personal_are_kept_byte_for_byte():
    for original in (b'{"uuid" : "x",  "n": 1.50}', b"\xff\x00 binary", b"", b'{"truncated": "ab'):
        assert redact_bytes(original, KEY) == original


def test_reasons_lose_ips_and_ids_too():
    assert redact_reason('schema: $.hostname: "203.0.113.9" is not valid; "uid": "u-5"', KEY) == (
        f'schema: $.hostname: "[ip]" is not valid; "uid":"{pseudonym("u-5", KEY)}"')


SEAT_LINK_CASES = [
    b'{"license_key": "' + SECRET.encode() + b'", "date": "2026-',
    b'[{"license_key": "' + SECRET.encode() + b'"}]',
    b'{"report": {"license_key": "' + SECRET.encode() + b'"}}',
    b'{"\\u006cicense_key": "' + SECRET.encode() + b'", "date": "x"}',
    b'{"license_key": "' + SECRET.encode() + b'\\nline2\\n", "x": ' + b"[" * 100 + b"]" * 100 + b"}",
    b'\xff{"license_key": "' + SECRET.encode(),
    SECRET.encode() + b" plain text blob",
    b'{"license_key": "' + SECRET[:10].encode() + b'\\u00',
]


@pytest.mark.parametrize("original", SEAT_LINK_CASES)
def test_a_seat_link_dead_letter_never_keeps_the_license_key(original: bytes):
    redacted = redact_bytes(redact_seat_link(original), KEY)
    assert SECRET[:10].encode() not in redacted, redacted
    digest = hashlib.sha256((SECRET + "\n").encode()).hexdigest()
    if original.startswith(b"[") or b'"report"' in original or b"\\u006c" in original:
        assert digest.encode() in redacted  # JSON: the key is replaced by its hash, where it was


def test_a_license_key_is_hashed_in_any_dead_letter_not_only_seat_links():
    redacted = redact_bytes(b'{"uuid": "x", "settings": [{"license_key": "' + SECRET.encode() + b'"}]}', KEY)
    digest = hashlib.sha256((SECRET + "\n").encode()).hexdigest()
    assert orjson.loads(redacted)["settings"][0]["license_key_sha256"] == digest
    assert SECRET.encode() not in redact_bytes(b'{"license_key": "' + SECRET.encode() + b'", "cut', KEY)


@pytest.mark.parametrize(("text", "expected"), [
    (b"::1", b"[ip]"), (b"fe80::1 x", b"[ip] x"), (b"[2001:db8::1]:8080", b"[[ip]]:8080"),
    (b"1.2.3.4:8080", b"[ip]:8080"), (b"ip:1.2.3.4", b"ip:[ip]"), (b"1.2.3.4.", b"[ip]."),
    (b"2001%3Adb8%3A%3A1", b"[ip]"),
    # not addresses: versions, times, MAC addresses, words
    (b"v1.2.3.4", b"v1.2.3.4"), (b"1.2.3.4.5", b"1.2.3.4.5"), (b"12:30:45", b"12:30:45"),
    (b"00:1a:2b:3c:4d:5e", b"00:1a:2b:3c:4d:5e"), (b"999.1.1.1", b"999.1.1.1"),
])
def test_ip_literals_in_bytes_that_are_not_json(text: bytes, expected: bytes):
    assert redact_bytes(text, KEY) == expected
