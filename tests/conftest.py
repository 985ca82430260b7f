"""Shared fixtures. Integration tests get a real Kafka broker: KAFKA_BOOTSTRAP_SERVERS or a local one.

Tests are arranged by level: unit/ (pure logic: no broker, no engine; its conftest turns the warehouse fixtures
off), integration/ (the real broker and/or the warehouse engine), pipeline/ (collector + worker processes), faults/
(processes, broker or disk failing), browser/ (the dashboard in chromium). Every test outside unit/ is marked
`integration`; helpers live in tests/support/.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.config import Settings
from streams.kafka.broker import BrokerUnavailable, kafka_cluster
from streams.warehouse import ServerWarehouse, migrate
from streams.warehouse_service.process import WarehouseServiceProcess
from tests.support.fresh import new_database

UNIT_DIR = Path(__file__).parent / "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if UNIT_DIR not in item.path.parents:
            item.add_marker(pytest.mark.integration)


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


@pytest.fixture(scope="session", autouse=True)
def warehouse_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WarehouseServiceProcess]:
    """One embedded warehouse service (ClickHouse's HTTP interface over the engine) for the whole session. Every
    test and every process a test starts reaches it through clickhouse-connect (CLICKHOUSE_URL), as in production;
    each module and each test gets a database of its own (DENOMAS_WAREHOUSE_DATABASE, below)."""
    settings = Settings.from_env(data_dir=tmp_path_factory.mktemp("warehouse"), clickhouse_url=None)
    with WarehouseServiceProcess(settings) as service, _env("CLICKHOUSE_URL", service.url):
        yield service


@pytest.fixture(scope="module", autouse=True)
def module_database(warehouse_service: WarehouseServiceProcess) -> Iterator[str]:
    """A database for the module's shared fixtures (they are set up before any test's own database)."""
    with _env("DENOMAS_WAREHOUSE_DATABASE", new_database()) as name:
        yield name


@pytest.fixture(autouse=True)
def test_database(module_database: str) -> Iterator[str]:
    """A database for what one test sets up itself (Settings.from_env() inside the test)."""
    with _env("DENOMAS_WAREHOUSE_DATABASE", new_database()) as name:
        yield name


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[str]:
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield value
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


@pytest.fixture
def warehouse(warehouse_service: WarehouseServiceProcess) -> Iterator[ServerWarehouse]:
    """A fresh, migrated database of the session's warehouse service, for one test."""
    opened = ServerWarehouse(warehouse_service.url, new_database())
    migrate(opened)
    yield opened
    opened.close()
