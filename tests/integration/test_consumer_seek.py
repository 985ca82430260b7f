"""The worker's consumer reads again what Faust dropped, also on partitions the group never committed
(streams/agents/consumer.py), on the real broker.

Faust drops fetched records it will not process now and seeks back to the committed offsets to read them again;
aiokafka's own seek leaves a partition without a commit (or committed at 0) where it was, past the dropped records.
"""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.agents import faust_app
from streams.agents.consumer import ConsumerThread, seek_to_committed
from streams.config import Settings
from streams.kafka.admin import create_topics

pytestmark = pytest.mark.integration


async def fetched(consumer: AIOKafkaConsumer) -> list[bytes]:
    batches = await consumer.getmany(timeout_ms=3000)
    return [record.value for records in batches.values() for record in records]


async def consumer_that_read_everything(bootstrap: str, topic: str, group: str) -> AIOKafkaConsumer:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in (b"a", b"b", b"c"):
            await producer.send_and_wait(topic, value, partition=0)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    consumer.assign([TopicPartition(topic, 0)])
    assert await fetched(consumer) == [b"a", b"b", b"c"]  # fetched, as Faust does before it drops them
    return consumer


async def test_a_partition_never_committed_is_read_again_from_its_beginning(kafka_bootstrap: str,
                                                                             unique_name: str) -> None:
    topic = f"test.seek.{unique_name}"
    await create_topics(kafka_bootstrap, [topic], partitions=1)
    consumer = await consumer_that_read_everything(kafka_bootstrap, topic, f"seek-{unique_name}")
    try:
        await consumer.seek_to_committed()  # aiokafka's own: nothing committed, so no seek
        assert await fetched(consumer) == []  # the defect: the dropped records are not read again
        committed = await seek_to_committed(consumer)
        assert list(committed.values()) == [None]
        assert await fetched(consumer) == [b"a", b"b", b"c"]
    finally:
        await consumer.stop()


async def test_a_partition_committed_at_zero_or_later_goes_back_to_that_offset(kafka_bootstrap: str,
                                                                                unique_name: str) -> None:
    topic = f"test.seek0.{unique_name}"
    await create_topics(kafka_bootstrap, [topic], partitions=1)
    consumer = await consumer_that_read_everything(kafka_bootstrap, topic, f"seek0-{unique_name}")
    tp = TopicPartition(topic, 0)
    try:
        await consumer.commit({tp: 0})
        await seek_to_committed(consumer)
        assert await fetched(consumer) == [b"a", b"b", b"c"]  # aiokafka would not seek an offset of 0 either
        await consumer.commit({tp: 2})
        await seek_to_committed(consumer)
        assert await fetched(consumer) == [b"c"]
    finally:
        await consumer.stop()


def test_the_worker_app_consumes_through_the_fixed_transport() -> None:
    app = faust_app("seek-glue", Settings.from_env(), "127.0.0.1:9")  # nothing connects until the app starts
    assert isinstance(app.consumer._thread, ConsumerThread)
