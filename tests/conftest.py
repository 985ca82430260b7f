"""Shared fixtures. Integration tests get a real Kafka broker: KAFKA_BOOTSTRAP_SERVERS or a local one."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest

from streams.config import Settings
from streams.kafka import BrokerUnavailable, kafka_cluster


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = Settings.from_env(data_dir=tmp_path_factory.mktemp("data"))
    with contextlib.ExitStack() as stack:
        try:
            bootstrap, error = stack.enter_context(kafka_cluster(settings)), ""
        except BrokerUnavailable as exc:
            error = str(exc)
        if error:  # fail, never skip: CI must not count a missing broker as a pass
            pytest.fail(error, pytrace=False)
        yield bootstrap


@pytest.fixture
def unique_name() -> str:
    """Short random suffix for per-test topics and consumer groups."""
    return uuid.uuid4().hex[:8]
