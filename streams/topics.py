"""Our Kafka topics, created with their sizes and retention before anything publishes to them."""

from __future__ import annotations

from collections.abc import Sequence

from streams.config import (
    TOPIC_DLQ,
    TOPIC_NORMALIZED_SERVICE_PING,
    TOPIC_RAW_SERVICE_PING,
    Settings,
    topic_config,
)
from streams.kafka import create_topics

PIPELINE_TOPICS = [TOPIC_RAW_SERVICE_PING, TOPIC_NORMALIZED_SERVICE_PING, TOPIC_DLQ]


async def ensure_topics(bootstrap: str, settings: Settings, topics: Sequence[str] = PIPELINE_TOPICS) -> None:
    for topic in topics:
        await create_topics(bootstrap, [settings.topic(topic)], settings.topic_partitions, topic_config(topic))
