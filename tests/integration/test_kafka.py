from __future__ import annotations

import os
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import MessageSizeTooLargeError

from streams.agents import FETCH_BYTES_PER_PARTITION
from streams.config import MAX_MESSAGE_BYTES
from streams.kafka.admin import consumer_group_lag, create_topics, end_offsets, wait_for_zero_lag
from streams.kafka.broker import BrokerUnavailable
from streams.kafka.jars import check_prerequisites

integration = pytest.mark.integration


def _producer(bootstrap: str) -> AIOKafkaProducer:
    # The producer's own request limit must be above the broker's, or it rejects big records locally.
    return AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=2 * MAX_MESSAGE_BYTES, acks="all")


def test_missing_java_and_maven_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(BrokerUnavailable) as info:
        check_prerequisites()
    message = str(info.value)
    for expected in ("`java` (17 or newer)", "`mvn`", "KAFKA_BOOTSTRAP_SERVERS", "docker compose up"):
        assert expected in message


@integration
async def test_large_message_round_trip(kafka_bootstrap: str, unique_name: str) -> None:
    topic = f"test.large.{unique_name}"
    await create_topics(kafka_bootstrap, [topic], partitions=1)
    payload = os.urandom(5 * 1024 * 1024)  # incompressible, well above Kafka's 1 MiB defaults

    producer = _producer(kafka_bootstrap)
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic, payload, key=b"k")
        with pytest.raises(MessageSizeTooLargeError):  # the broker enforces MAX_MESSAGE_BYTES
            await producer.send_and_wait(topic, b"x" * (MAX_MESSAGE_BYTES + 1))
    finally:
        await producer.stop()

    # The worker's fetch size is a soft limit (KIP-74): a record five times bigger still arrives whole.
    assert len(payload) > FETCH_BYTES_PER_PARTITION
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=FETCH_BYTES_PER_PARTITION,
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, meta.offset)
        record = await consumer.getone()
    finally:
        await consumer.stop()
    assert record.key == b"k"
    assert record.value == payload


@integration
async def test_create_topics_is_idempotent(kafka_bootstrap: str, unique_name: str) -> None:
    topic = f"test.idem.{unique_name}"
    await create_topics(kafka_bootstrap, [topic], partitions=3)
    await create_topics(kafka_bootstrap, [topic], partitions=5, configs={"retention.ms": "60000"})

    ends = await end_offsets(kafka_bootstrap, [topic])
    assert sorted(tp.partition for tp in ends) == [0, 1, 2]  # second call did not change the topic
    assert set(ends.values()) == {0}

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    configs = {entry[0]: entry[1] for entry in response.resources[0][4]}
    assert configs["max.message.bytes"] == str(MAX_MESSAGE_BYTES)
    assert configs["retention.ms"] != "60000"


@integration
async def test_consumer_group_lag(kafka_bootstrap: str, unique_name: str) -> None:
    topic, group = f"test.lag.{unique_name}", f"test-group-{unique_name}"
    missing = f"test.missing.{unique_name}"
    await create_topics(kafka_bootstrap, [topic], partitions=2)
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)

    producer = _producer(kafka_bootstrap)
    await producer.start()
    try:
        for i in range(3):
            await producer.send_and_wait(topic, b"a%d" % i, partition=0)
        for i in range(2):
            await producer.send_and_wait(topic, b"b%d" % i, partition=1)
    finally:
        await producer.stop()

    assert await end_offsets(kafka_bootstrap, [topic, missing]) == {p0: 3, p1: 2}
    assert await consumer_group_lag(kafka_bootstrap, group, [topic, missing]) == 5  # nothing committed

    # Manual assignment: commits go straight to the group without a rebalance.
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([p0, p1])
        await consumer.commit({p0: 2})
        assert await consumer_group_lag(kafka_bootstrap, group, [topic]) == 3
        # The timeout names each lagging partition: p0 at 2 of 3 is behind by 1, p1 by 2.
        with pytest.raises(TimeoutError, match=rf"lag 3 .*\({topic}\[0\]: 1, {topic}\[1\]: 2\)"):
            await wait_for_zero_lag(kafka_bootstrap, group, [topic], timeout=1, poll=0.2)
        await consumer.commit({p0: 3, p1: 2})
    finally:
        await consumer.stop()

    assert await consumer_group_lag(kafka_bootstrap, group, [topic]) == 0
    await wait_for_zero_lag(kafka_bootstrap, group, [topic], timeout=10)
    assert await consumer_group_lag(kafka_bootstrap, group, [missing]) == 0
