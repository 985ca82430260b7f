"""Our Kafka topics, created with their sizes and retention before anything publishes to them."""

from __future__ import annotations

from collections.abc import Sequence

from streams.config import (
    REFERENCE_TOPICS,
    TOPIC_ALERTS,
    TOPIC_DLQ,
    TOPIC_LANDED,
    TOPIC_NORMALIZED_SEAT_LINK,
    TOPIC_NORMALIZED_SERVICE_PING,
    TOPIC_NORMALIZED_SNOWPLOW,
    TOPIC_NORMALIZED_VERSION_CHECK,
    TOPIC_RAW_SEAT_LINK,
    TOPIC_RAW_SERVICE_PING,
    TOPIC_RAW_SNOWPLOW,
    TOPIC_RAW_VERSION_CHECK,
    Settings,
    topic_config,
)
from streams.kafka import create_topics

PIPELINE_TOPICS = [TOPIC_RAW_SERVICE_PING, TOPIC_NORMALIZED_SERVICE_PING, TOPIC_DLQ]
PIPELINE_TOPICS += REFERENCE_TOPICS  # compacted reference data (see topic_config)
PIPELINE_TOPICS += [TOPIC_RAW_SEAT_LINK, TOPIC_NORMALIZED_SEAT_LINK, TOPIC_RAW_VERSION_CHECK,
                    TOPIC_NORMALIZED_VERSION_CHECK]
PIPELINE_TOPICS += [TOPIC_RAW_SNOWPLOW, TOPIC_NORMALIZED_SNOWPLOW]
PIPELINE_TOPICS += [TOPIC_LANDED, TOPIC_ALERTS]  # sinks -> alert evaluator -> webhooks


async def ensure_topics(bootstrap: str, settings: Settings, topics: Sequence[str] = PIPELINE_TOPICS) -> None:
    for topic in topics:
        await create_topics(bootstrap, [settings.topic(topic)], settings.topic_partitions, topic_config(topic))
