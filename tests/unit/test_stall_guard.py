"""The stall guard's test (streams/agents/consumer.py) on a real, unstarted Faust consumer's own bookkeeping: a
partition counts as dropped only when the record its commits wait for reached Faust (the Kafka consumer's position
is beyond it) and is nowhere: not in flight (taken by a stream, not acked), not waiting in an agent's channel, not
acked, not a compaction gap. The guard seeks a partition back only when the same offset looked dropped on two
checks in a row."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from faust.types import TP, Message

from streams.agents import consumer as consumer_module
from streams.agents import faust_app
from streams.agents.consumer import StallGuard, dropped_positions
from streams.config import Settings

TOPIC = "guard.topic"
PARTITION = TP(TOPIC, 0)


@pytest.fixture
def app() -> Any:
    return faust_app("guard", Settings.from_env(), "127.0.0.1:9")  # nothing connects until the app starts


def message(offset: int) -> Message:
    return Message(TOPIC, 0, offset, 0.0, 0, None, b"k", b"v", None, tp=PARTITION)


def read_past(consumer: Any, committed: int | None, read: int) -> dict[TP, int]:
    """What the consumer looks like after Kafka handed it records up to `read` and Faust drained them, its commits
    waiting for `committed`; returns the Kafka consumer's position."""
    consumer._committed_offset[PARTITION] = committed
    consumer._read_offset[PARTITION] = read
    return {PARTITION: read + 1}


def test_a_record_read_past_and_found_nowhere_is_dropped(app) -> None:
    positions = read_past(app.consumer, committed=17, read=31)
    assert dropped_positions(app.consumer, positions) == {PARTITION: 17}


def test_a_record_handed_over_but_never_drained_is_dropped(app) -> None:
    read_past(app.consumer, committed=26, read=16)  # Faust's read offset is behind: it never drained 26-31
    assert dropped_positions(app.consumer, {PARTITION: 32}) == {PARTITION: 26}


def test_nothing_handed_over_since_the_seek_or_everything_committed_is_not_dropped(app) -> None:
    app.consumer._committed_offset[PARTITION] = 17
    assert dropped_positions(app.consumer, {PARTITION: None}) == {}  # position unknown: being reset
    assert dropped_positions(app.consumer, {PARTITION: 17}) == {}  # sought to 17: its records are coming
    assert dropped_positions(app.consumer, read_past(app.consumer, committed=17, read=16)) == {}


def test_a_record_taken_by_a_stream_and_not_acked_is_in_flight(app) -> None:
    positions = read_past(app.consumer, committed=17, read=31)
    held = message(17)
    app.consumer.track_message(held)  # what a stream does when it takes a record
    assert dropped_positions(app.consumer, positions) == {}
    app.consumer.ack(held)  # acked, its commit not made yet
    assert dropped_positions(app.consumer, positions) == {}


def test_a_record_waiting_in_an_agents_channel_is_in_flight(app) -> None:
    positions = read_past(app.consumer, committed=17, read=31)
    channel = app.channel()
    app.topics._tp_index[PARTITION].add(channel)
    channel.queue.put_nowait(channel._create_event(b"k", b"v", {}, message(17)))
    assert dropped_positions(app.consumer, positions) == {}


def test_a_partition_whose_channel_is_full_is_being_handed_over(app) -> None:
    positions = read_past(app.consumer, committed=17, read=31)
    channel = app.channel(maxsize=1)
    app.topics._tp_index[PARTITION].add(channel)
    channel.queue.put_nowait(channel._create_event(b"k", b"v", {}, message(9)))  # full: the fetch loop waits
    assert dropped_positions(app.consumer, positions) == {}


def test_an_offset_a_compacted_topic_no_longer_has_is_a_gap_not_a_drop(app) -> None:
    positions = read_past(app.consumer, committed=17, read=31)
    app.consumer._gap[PARTITION].addi(17, 20)
    assert dropped_positions(app.consumer, positions) == {}


def test_a_partition_never_committed_is_dropped_only_when_none_of_its_records_is_anywhere(app) -> None:
    positions = read_past(app.consumer, committed=None, read=8)
    assert dropped_positions(app.consumer, positions) == {PARTITION: None}
    held = message(3)  # the consumer keeps in-flight records weakly: the stream holds them
    app.consumer.track_message(held)
    assert dropped_positions(app.consumer, positions) == {}


def test_the_guard_seeks_back_only_what_looked_dropped_twice_at_the_same_offset(app, monkeypatch) -> None:
    sought: list[tuple[TP, int]] = []

    async def seek(tp: TP, offset: int) -> None:  # Faust's seek needs a running consumer thread
        sought.append((tp, offset))

    monkeypatch.setattr(app.consumer, "seek", seek)
    # aiokafka's positions need a running consumer: everything handed over up to offset 31
    monkeypatch.setattr(consumer_module, "_position", lambda consumer, tp: 32)
    unacked = TP("guard-ref_licenses-changelog", 0)  # Faust never acks nor commits a table's changelog
    monkeypatch.setattr(app.consumer, "assignment", lambda: {PARTITION, unacked})
    app.topics._acking_topics.add(TOPIC)
    guard = StallGuard(app.consumer)

    async def checks() -> list[dict]:
        read_past(app.consumer, committed=17, read=31)
        app.consumer._read_offset[unacked] = 5  # read, nothing committed: would look dropped if it were checked
        first = await guard.check()  # suspected
        read_past(app.consumer, committed=20, read=31)  # the commit moved on meanwhile: a new suspicion
        second = await guard.check()
        third = await guard.check()  # the same offset twice in a row
        return [first, second, third]

    assert asyncio.run(checks()) == [{}, {}, {PARTITION: 20}]
    assert sought == [(PARTITION, 20)]
