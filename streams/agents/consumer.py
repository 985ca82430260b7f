"""Faust's Kafka consumer, made to read again what it dropped.

1. Seeking back to the committed offsets also seeks partitions the group has never committed.

Faust drops records it has fetched but will not process now (flow stopped for a rebalance, a stale generation, a
buffer cleared on revocation) and counts on `perform_seek` -> aiokafka's `seek_to_committed` to read them again.
aiokafka seeks only partitions with a committed offset above 0: on a partition the group never committed (a new
topic, `usage.landed` in a fresh group, a partition that had no records yet), the fetch position stayed past the
dropped records, which were never processed and kept the group's lag up until the worker restarted (the 2-worker
Snowplow benchmark: `usage.landed[1]` kept lag 9 for 300 s, committed -1). Such partitions go back to their
beginning, which is what `auto_offset_reset="earliest"` means for them; what was already stored is delivered
again, and the idempotent writers absorb it (README "Delivery guarantees").

2. A guard finds partitions whose next record to commit reached Faust and was dropped, and seeks them back to it.
Faust's fetch loop drops records in more ways than that seek repairs: below the partition's read offset ("already
read") when a rebalance's seek races with records fetched just before it, or handed over by aiokafka and then
discarded (a stale generation) with no seek after. The record at the committed offset is then nowhere (not in
flight, not waiting in an agent's channel, not acked), so the partition's commits cannot move past it and the group
keeps that lag until a restart (tests/pipeline/test_reports.py, a worker restarted into its group:
raw.service_ping[0] offsets 17-31 dropped below the read offset, lag 22 for 240 s; in another run
raw.service_ping[1] at position 32, read offset 16, committed 26: offsets 26-31 handed over and never drained).
Seen twice in a row, the partition is sought back to that record. Reading again delivers some records twice,
which the writers absorb.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

log = logging.getLogger(__name__)

# A position must look dropped on two checks in a row: between taking acked offsets for a commit and recording it,
# the committed offset is briefly neither acked nor in flight.
STALL_CHECK_SECONDS = 5.0


async def seek_to_committed(consumer: AIOKafkaConsumer) -> Mapping[Any, int | None]:
    """Every assigned partition at its committed offset, or at its beginning when it has none (or 0)."""
    committed = await consumer.seek_to_committed()
    uncommitted = [tp for tp, offset in committed.items() if offset is None or offset <= 0]
    if uncommitted:
        await consumer.seek_to_beginning(*uncommitted)
    return committed


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    async def seek_to_committed(self) -> Mapping[TP, int]:
        return await self.call_thread(seek_to_committed, self._ensure_consumer())


class Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


def dropped_positions(consumer: Any, positions: Mapping[TP, int | None]) -> dict[TP, int | None]:
    """partition -> the offset its commits wait for (None: its beginning, never committed), for the partitions where
    that record reached Faust yet is nowhere: not in flight (taken by a stream, not acked), not waiting in an agent's
    channel, not acked, not a gap (an offset a compacted topic no longer has). Nothing would deliver it again.

    `positions`: the Kafka consumer's position per partition (the offset after the last record it handed to Faust);
    a partition whose records are being handed over right now (an agent's channel is full) is left out."""
    in_flight = {(message.tp, message.offset) for message in list(consumer._unacked_messages)}
    in_flight |= queued(consumer.app.topics, positions)
    dropped: dict[TP, int | None] = {}
    for tp, position in positions.items():
        committed = consumer._committed_offset.get(tp)
        acked = consumer._acked_index.get(tp, ())
        if committed is None:  # never committed: one of its records was read, and none is anywhere
            if consumer._read_offset.get(tp) is not None and not acked and not any(t == tp for t, _ in in_flight):
                dropped[tp] = None
        elif position is not None and position > committed and (tp, committed) not in in_flight \
                and committed not in acked and not _is_gap(consumer, tp, committed) \
                and not _delivering(consumer.app.topics, tp):
            dropped[tp] = committed
    return dropped


def queued(conductor: Any, partitions: Iterable[TP]) -> set[tuple[TP, int]]:
    """(partition, offset) of the records delivered to the agents' channels and not yet taken by their streams
    (a stream tracks a record as in flight only when it takes it)."""
    found = set()
    for tp in partitions:
        for channel in list(conductor._tp_index.get(tp, ())):
            for event in list(channel.queue._queue):
                message = getattr(event, "message", None)
                if message is not None:
                    found.add((message.tp, message.offset))
    return found


def _delivering(conductor: Any, tp: TP) -> bool:
    """A channel of the partition is full: Faust's fetch loop is waiting to put a record into it."""
    return any(channel.queue.full() for channel in list(conductor._tp_index.get(tp, ())))


def _position(consumer: Any, tp: TP) -> int | None:
    """The offset after the last record aiokafka handed to Faust (None: not known yet)."""
    subscription = consumer._thread._ensure_consumer()._subscription.subscription
    assignment = subscription.assignment if subscription is not None else None
    state = assignment.state_value(tp) if assignment is not None else None  # a Faust TP equals its aiokafka twin
    return state.position if state is not None and state.has_valid_position else None


def _is_gap(consumer: Any, tp: TP, offset: int) -> bool:
    return tp in consumer._gap and consumer._gap[tp].overlaps(offset)


@dataclass
class StallGuard:
    """Seeks a partition back to the offset its commits wait for once it looked dropped on two checks in a row."""

    consumer: Any
    suspects: dict[TP, int | None] = field(default_factory=dict)

    async def check(self) -> dict[TP, int | None]:
        """One check; returns the partitions it sought back."""
        acking = self.consumer.app.topics.acks_enabled_for  # Faust commits only those (not tables, not its leader)
        positions = {tp: _position(self.consumer, tp) for tp in self.consumer.assignment() if acking(tp.topic)}
        dropped = dropped_positions(self.consumer, positions)
        confirmed = {tp: offset for tp, offset in dropped.items() if self.suspects.get(tp, -1) == offset}
        self.suspects = {tp: offset for tp, offset in dropped.items() if tp not in confirmed}
        for tp, offset in confirmed.items():
            log.warning("%s[%d]: the record at offset %s reached the worker and was dropped unprocessed; "
                        "reading again from it",
                        tp.topic, tp.partition, "<beginning>" if offset is None else offset)
            if offset is None:
                kafka = self.consumer._thread._ensure_consumer()
                await self.consumer._thread.call_thread(kafka.seek_to_beginning, TopicPartition(tp.topic, tp.partition))
                self.consumer._read_offset.pop(tp, None)
            else:
                await self.consumer.seek(tp, offset)
        return confirmed
