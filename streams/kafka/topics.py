"""Our Kafka topics, created with their sizes and retention before anything publishes to them.

Every process that uses them (collector, worker, CLI commands that publish) calls `ensure_topics` first: a
topic someone else created first (a client's auto-creation, an older release) gets the project's settings too.
"""

from __future__ import annotations

import logging
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
from streams.kafka.admin import ensure_topic_configs

log = logging.getLogger(__name__)

PIPELINE_TOPICS = [TOPIC_RAW_SERVICE_PING, TOPIC_NORMALIZED_SERVICE_PING, TOPIC_DLQ]
PIPELINE_TOPICS += REFERENCE_TOPICS  # compacted reference data (see topic_config)
PIPELINE_TOPICS += [TOPIC_RAW_SEAT_LINK, TOPIC_NORMALIZED_SEAT_LINK, TOPIC_RAW_VERSION_CHECK,
                    TOPIC_NORMALIZED_VERSION_CHECK]
PIPELINE_TOPICS += [TOPIC_RAW_SNOWPLOW, TOPIC_NORMALIZED_SNOWPLOW]
PIPELINE_TOPICS += [TOPIC_LANDED, TOPIC_ALERTS]  # sinks -> alert evaluator -> webhooks


async def ensure_topics(bootstrap: str, settings: Settings, topics: Sequence[str] = PIPELINE_TOPICS) -> None:
    """Create the missing topics and correct the settings (retention, compaction, size) of existing ones."""
    wanted = {settings.topic(topic): topic_config(topic) for topic in topics}
    changed = await ensure_topic_configs(bootstrap, wanted, settings.topic_partitions)
    if changed:
        log.warning("set the project's topic settings on %s", ", ".join(changed))
