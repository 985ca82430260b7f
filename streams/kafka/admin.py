"""Kafka at run time, over aiokafka clients: topics and their configs, log-end and committed offsets, consumer lag,
and the filter that keeps aiokafka's logs readable while a broker is away. (The local development broker is
streams/kafka/broker.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code
from aiokafka.structs import OffsetAndMetadata

from streams.config import MAX_MESSAGE_BYTES


@contextlib.asynccontextmanager
async def _admin(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def create_topics(
    bootstrap: str,
    names: list[str],
    partitions: int,
    configs: dict[str, str] | None = None,
    *,
    replication_factor: int = 1,
) -> None:
    """Create topics, ignoring those that already exist. max.message.bytes defaults to MAX_MESSAGE_BYTES."""
    topic_configs = {"max.message.bytes": str(MAX_MESSAGE_BYTES), **(configs or {})}
    async with _admin(bootstrap) as admin:
        await _create_missing(admin, dict.fromkeys(names, topic_configs), partitions, replication_factor)


async def _create_missing(admin: AIOKafkaAdminClient, wanted: dict[str, dict[str, str]], partitions: int,
                          replication_factor: int) -> None:
    new = [NewTopic(name, partitions, replication_factor, topic_configs=configs) for name, configs in wanted.items()]
    response = await admin.create_topics(new)
    for topic, code, *rest in response.topic_errors:
        error = for_code(code)
        if code and error is not TopicAlreadyExistsError:
            raise error(f"creating topic {topic!r}: {rest[0] if rest else ''}")


DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs config_source: set on the topic itself (not a broker default)


async def _topic_configs(admin: AIOKafkaAdminClient, topics: list[str], timeout: float = 30) -> dict[str, list]:
    """Config entries (name, value, read_only, source, ...) per topic; waits for topics just created to show."""
    deadline = time.monotonic() + timeout
    while True:
        [described] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in topics])
        errors = [(for_code(code), topic, message) for code, message, _t, topic, _e in described.resources if code]
        if not errors:
            return {topic: entries for _c, _m, _t, topic, entries in described.resources}
        error, topic, message = errors[0]
        if not error.retriable or time.monotonic() > deadline:
            raise error(f"describing topic {topic!r}: {message}")
        await asyncio.sleep(0.2)


async def ensure_topic_configs(bootstrap: str, wanted: dict[str, dict[str, str]], partitions: int,
                               *, replication_factor: int = 1) -> list[str]:
    """Create the missing topics and set the configs of existing ones that differ; returns the names changed.

    Kafka's AlterConfigs (the only form aiokafka sends) replaces every config set on a topic, so the topic's
    other own settings are sent along unchanged.
    """
    async with _admin(bootstrap) as admin:
        await _create_missing(admin, wanted, partitions, replication_factor)
        changes = []
        for topic, entries in (await _topic_configs(admin, list(wanted))).items():
            current = {entry[0]: entry[1] for entry in entries}
            if any(current.get(key) != value for key, value in wanted[topic].items()):
                own = {entry[0]: entry[1] for entry in entries if entry[3] == DYNAMIC_TOPIC_CONFIG}
                changes.append(ConfigResource(ConfigResourceType.TOPIC, topic, own | wanted[topic]))
        if changes:
            [altered] = await admin.alter_configs(changes)
            for code, message, _type, topic in altered.resources:
                if code:
                    raise for_code(code)(f"altering the config of topic {topic!r}: {message}")
    return [change.name for change in changes]


class OffsetProbe:
    """Reads partitions, log-end and committed offsets over clients kept open between calls.

    Opening an admin client and a consumer per question costs ~0.2 s; a probe polled every few hundred
    milliseconds (waiting for a pipeline to drain) must not spend its interval on reconnecting.
    """

    def __init__(self, bootstrap: str) -> None:
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)

    async def __aenter__(self) -> OffsetProbe:
        await self._admin.start()
        try:
            await self._consumer.start()
        except BaseException:
            await self._admin.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self._consumer.stop()
        finally:
            await self._admin.close()

    async def partitions(self, topics: list[str]) -> list[TopicPartition]:
        wanted = set(topics)
        # All-topics metadata: asking for a missing topic by name would auto-create it on our broker.
        described = await self._admin.describe_topics()
        return [
            TopicPartition(t["topic"], p["partition"])
            for t in described
            if t["topic"] in wanted and not t["error_code"]
            for p in t["partitions"]
        ]

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return await self._consumer.end_offsets(partitions) if partitions else {}

    async def committed(self, group_id: str, partitions: list[TopicPartition],
                        timeout: float = 30) -> dict[TopicPartition, OffsetAndMetadata]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return await self._admin.list_consumer_group_offsets(group_id, partitions=partitions)
            except KafkaError as exc:
                # The first group lookup makes the broker create __consumer_offsets and answer
                # COORDINATOR_NOT_AVAILABLE meanwhile; such errors are retriable.
                if not exc.retriable or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    async def partition_lag(self, group_id: str, topics: list[str]) -> dict[TopicPartition, int]:
        """(end offset - committed offset) per partition of the topics that has any; no commit counts as 0.

        Committed offsets are read BEFORE end offsets: an agent that commits its input only after its
        output was delivered then can never make a chain of topics look drained while output is in flight.
        """
        partitions = await self.partitions(topics)
        if not partitions:
            return {}
        committed = await self.committed(group_id, partitions)
        ends = await self.end_offsets(partitions)
        lags = {}
        for tp, end in ends.items():
            meta = committed.get(tp)
            offset = meta.offset if meta is not None and meta.offset >= 0 else 0
            if end > offset:
                lags[tp] = end - offset
        return lags

    async def group_lag(self, group_id: str, topics: list[str]) -> int:
        """The group's lag summed over the topics' partitions (see partition_lag)."""
        return sum((await self.partition_lag(group_id, topics)).values())


async def end_offsets(bootstrap: str, topics: list[str]) -> dict[TopicPartition, int]:
    """Log-end offset per partition; topics that do not exist are left out."""
    async with OffsetProbe(bootstrap) as probe:
        return await probe.end_offsets(await probe.partitions(topics))


async def consumer_group_lag(bootstrap: str, group_id: str, topics: list[str]) -> int:
    """The group's lag on the topics (see OffsetProbe.group_lag)."""
    async with OffsetProbe(bootstrap) as probe:
        return await probe.group_lag(group_id, topics)


async def wait_for_zero_lag(
    bootstrap: str, group_id: str, topics: list[str], timeout: float, poll: float = 0.2,
    progress: Callable[[int, int], object] | None = None,
) -> None:
    """Until the group has consumed everything on `topics`; `progress(done, total)`: records consumed of the
    largest lag seen."""
    deadline = time.monotonic() + timeout
    worst = 0
    async with OffsetProbe(bootstrap) as probe:
        while lags := await probe.partition_lag(group_id, topics):
            lag = sum(lags.values())
            worst = max(worst, lag)
            if progress is not None:
                progress(worst - lag, worst)
            if time.monotonic() > deadline:
                where = ", ".join(f"{tp.topic}[{tp.partition}]: {n}" for tp, n in sorted(lags.items()))
                raise TimeoutError(f"consumer group {group_id!r} still has lag {lag} after {timeout:.0f} s ({where})")
            await asyncio.sleep(poll)
    if progress is not None and worst:
        progress(worst, worst)


# --------------------------------------------------------------------------------------------- client logs


class RepeatFilter(logging.Filter):
    """Lets one record per logger, level and message template through per `window` seconds.

    With the broker away, aiokafka logs each failed connection and metadata attempt (thousands a second);
    the first of a kind is shown at once, the rest are counted and the count is added to the next one shown.
    """

    def __init__(self, window: float = 10.0) -> None:
        super().__init__()
        self.window = window
        self._shown: dict[tuple[str, int, str], float] = {}
        self._suppressed: dict[tuple[str, int, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))
        now = time.monotonic()
        if now - self._shown.get(key, -self.window) < self.window:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        self._shown[key] = now
        if suppressed := self._suppressed.pop(key, 0):
            record.msg = f"{record.msg} ({suppressed} more like it not shown)"
        return True


_REPEAT_FILTER = RepeatFilter()


def limit_repeated_logs(*names: str) -> None:
    """Install the shared RepeatFilter on aiokafka's loggers and on `names` (a filter is per logger)."""
    import aiokafka.consumer  # noqa: F401  (imports create the loggers the filter must sit on)
    import aiokafka.producer  # noqa: F401

    known = [name for name in logging.Logger.manager.loggerDict if name == "aiokafka" or name.startswith("aiokafka.")]
    for name in [*known, *names]:
        logger = logging.getLogger(name)
        if _REPEAT_FILTER not in logger.filters:
            logger.addFilter(_REPEAT_FILTER)
