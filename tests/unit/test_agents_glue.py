"""The agents' glue on Faust's `agent.test_context()` (no broker, no engine): each raw-topic agent forwards what its
normalizer makes of a valid record to the normalized topic on the record's own key, parks a hostile record on the
dead-letter topic with its original bytes, the stage and reason and where it came from, and keeps going with the
next batch. What an agent publishes is recorded at `faust.Topic.send`, the boundary to Kafka; the normalizers
themselves are tested in their own modules."""

from __future__ import annotations

import asyncio
import base64
import copy
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import faust
import orjson
import pytest

from fleet.pings import generate_fleet
from streams import config
from streams.agents import faust_app, seat_link, service_ping, snowplow, version_check
from streams.agents.common import AgentContext, SinkStats
from streams.config import TOPIC_DLQ, Settings, topic_config
from streams.enrich.metric_dictionary import MetricDictionary
from streams.enrich.seat_link import hash_license_key

RECEIVED = "2026-06-01T10:00:00.000+00:00"
SENT_TIMEOUT_SECONDS = 20.0  # a batch is handed over after 0.5 s (take_events' `within`)


@dataclass
class Sent:
    topic: str
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]


@dataclass
class Case:
    """Three records for one raw-topic agent, in this order: bytes that are not JSON, JSON its normalizer refuses
    (`reason` names why), a valid record. The agent's dead letters name `module`'s last part as their source."""

    module: ModuleType
    agent: str
    raw_topic: str
    headers: dict[str, bytes]
    invalid: bytes
    reason: str
    valid: bytes
    kept: bytes | None = None  # what the dead letter keeps of `invalid` (default: its bytes unchanged)
    not_json: bytes = b"\xff not json"


@dataclass
class Raw:
    value: bytes
    key: bytes
    headers: dict[str, bytes]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[Sent]:
    """Every record an agent publishes, in order; each send is delivered at once."""
    records: list[Sent] = []

    async def send(topic: faust.Topic, key: Any = None, value: Any = None, headers: Any = None,
                   **options: Any) -> asyncio.Future:
        records.append(Sent(topic.get_topic_name(), key, value, dict(headers or {})))
        delivered = asyncio.get_running_loop().create_future()
        delivered.set_result(None)
        return delivered

    monkeypatch.setattr(faust.Topic, "send", send)
    return records


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env(data_dir=tmp_path, topic_prefix="glue.")


def _agent(settings: Settings, source: ModuleType, name: str) -> Any:
    """One source's agents on an app of their own (never started: no broker, no warehouse behind it)."""
    app = faust_app(f"glue-{name}", settings, "127.0.0.1:9")
    dlq = app.topic(settings.topic(TOPIC_DLQ), value_type=bytes, config=topic_config(TOPIC_DLQ))
    warehouse: Any = None  # the raw-topic agents never touch it; the sinks beside them are not fed here
    source.register(AgentContext(app, settings, warehouse, MetricDictionary.from_dir(), SinkStats(), dlq))
    return next(agent for agent in app.agents.values() if agent.name == name)


async def _feed(agent: Any, records: list[Raw], sent: list[Sent]) -> list[tuple[faust.EventT, list[Sent]]]:
    """Each record as a batch of its own: put, then wait for what the agent publishes for it."""
    out = []
    async with agent.test_context() as running:
        for record in records:
            before = len(sent)
            event = await running.put(record.value, key=record.key, headers=record.headers)
            deadline = asyncio.get_running_loop().time() + SENT_TIMEOUT_SECONDS
            while len(sent) == before:
                assert asyncio.get_running_loop().time() < deadline, f"nothing published for {record.value[:80]!r}"
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.1)  # a record may become several (a ping in parts): let the batch finish
            out.append((event, sent[before:]))
    return out


def _text(headers: dict[str, bytes]) -> dict[str, str]:
    return {name: value.decode() for name, value in headers.items()}


def _assert_dead_letter(settings: Settings, letter: Sent, event: faust.EventT, source: str, original: bytes,
                        words: str) -> None:
    headers = _text(letter.headers)
    assert letter.topic == settings.topic(TOPIC_DLQ) and letter.key == source.encode()
    assert letter.value == original
    assert (headers["source"], headers["stage"]) == (source, "validate")
    assert words in headers["reason"], headers["reason"]
    assert headers["received_at"] == RECEIVED
    assert (headers["kafka_topic"], headers["kafka_offset"]) == (event.message.topic, str(event.message.offset))


async def _run(settings: Settings, sent: list[Sent], case: Case) -> tuple[faust.EventT, Sent, Sent]:
    """Both hostile records dead-lettered at `validate` with their bytes, then the valid one published once:
    returns its event, what was published for it and the invalid one's letter."""
    name = case.module.__name__.rsplit(".", 1)[-1]
    records = [Raw(case.not_json, b"k-1", case.headers), Raw(case.invalid, b"k-2", case.headers),
               Raw(case.valid, b"k-3", case.headers)]
    fed = await _feed(_agent(settings, case.module, case.agent), records, sent)
    (bad, [letter]), (invalid, [refused]), (good, [forwarded]) = fed
    assert bad.message.topic == settings.topic(case.raw_topic)
    _assert_dead_letter(settings, letter, bad, name, case.not_json, "not valid JSON")
    _assert_dead_letter(settings, refused, invalid, name, case.kept or case.invalid, case.reason)
    return good, forwarded, refused


# --- Version Check -----------------------------------------------------------------------------------------


def _check(version: str) -> bytes:
    info = base64.urlsafe_b64encode(orjson.dumps({"version": version})).decode()
    return orjson.dumps({"gitlab_info": info, "referer": "https://git.a.example/", "format": "png",
                         "severity": "warning", "latest_version": "18.3.0"})


async def test_version_check_agent_forwards_a_check_and_dead_letters_a_hostile_one(settings, sent):
    headers = {"received_at": RECEIVED.encode(), "request_id": b"r-1"}
    case = Case(version_check, "normalize_version_check", config.TOPIC_RAW_VERSION_CHECK, headers,
                _check("not a version"), "is not major.minor.patch", _check("18.1.2-ee"))
    good, forwarded, _ = await _run(settings, sent, case)
    assert (forwarded.topic, forwarded.key) == (settings.topic(config.TOPIC_NORMALIZED_VERSION_CHECK), b"k-3")
    assert orjson.loads(forwarded.value) == version_check.normalize(case.valid, _text(headers), good.message)


# --- Seat Link ---------------------------------------------------------------------------------------------


async def test_seat_link_agent_forwards_a_report_and_dead_letters_without_the_license_key(settings, sent):
    headers = {"received_at": RECEIVED.encode()}
    report = hash_license_key({"date": "2026-05-31", "license_key": "k", "max_historical_user_count": 10,
                               "active_users": 6})  # as the collector publishes it: the key's hashes only
    clear = orjson.dumps({"date": "2026-05-31", "license_key": "in-clear-key", "active_users": "x"})
    # another producer's report with the key in clear: parked with the key hashed, never in clear
    case = Case(seat_link, "normalize_seat_link", config.TOPIC_RAW_SEAT_LINK, headers, clear, "active_users",
                orjson.dumps(report), kept=seat_link.redact(clear))
    good, forwarded, refused = await _run(settings, sent, case)
    assert b"in-clear-key" not in refused.value + b"".join(refused.headers.values())
    assert (forwarded.topic, forwarded.key) == (settings.topic(config.TOPIC_NORMALIZED_SEAT_LINK), b"k-3")
    assert orjson.loads(forwarded.value) == seat_link.normalize(case.valid, _text(headers))


# --- Service Ping ------------------------------------------------------------------------------------------


async def test_service_ping_agent_forwards_a_ping_and_dead_letters_a_hostile_one(settings, sent):
    headers = {"kind": b"ping", "received_at": RECEIVED.encode()}
    ping = next(p for p in generate_fleet(2, 2, seed=3) if p.valid)
    no_uuid = copy.deepcopy(ping.payload)
    del no_uuid["uuid"]
    case = Case(service_ping, "normalize_service_ping", config.TOPIC_RAW_SERVICE_PING, headers,
                orjson.dumps(no_uuid), "'uuid' is a required property", orjson.dumps(ping.payload))
    good, forwarded, _ = await _run(settings, sent, case)
    assert (forwarded.topic, forwarded.key) == (settings.topic(config.TOPIC_NORMALIZED_SERVICE_PING), b"k-3")
    normalize = service_ping.ServicePingNormalizer(MetricDictionary.from_dir())
    expected = normalize(case.valid, _text(headers), good.message.partition, good.message.offset)
    assert orjson.loads(forwarded.value) == orjson.loads(orjson.dumps(expected))


# --- Snowplow ----------------------------------------------------------------------------------------------


def _event(**params: str) -> bytes:
    return orjson.dumps({"e": "se", "eid": "1f0e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", "tv": "py-1.1.0", "p": "srv",
                         "se_ca": "c", "se_ac": "a", "dtm": "1780000000000", "stm": "1780000000500"} | params)


async def test_snowplow_agent_forwards_an_event_and_dead_letters_a_bad_row(settings, sent):
    headers = {"kind": b"event", "received_at": RECEIVED.encode(), "request_id": b"q-1", "event_index": b"1"}
    case = Case(snowplow, "normalize_snowplow", config.TOPIC_RAW_SNOWPLOW, headers, _event(e="zz"), "is not one of",
                _event())
    good, forwarded, _ = await _run(settings, sent, case)
    assert forwarded.topic == settings.topic(config.TOPIC_NORMALIZED_SNOWPLOW)
    assert forwarded.key == f"raw-partition-{good.message.partition}".encode()  # a raw partition's order is kept
    [record] = orjson.loads(forwarded.value)
    assert record["row"]["event_id"] == "1f0e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
    assert record["source"] == {"topic": good.message.topic, "partition": good.message.partition,
                                "offset": good.message.offset}
