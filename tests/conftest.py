"""Shared fixtures. Integration tests get a real Kafka broker: KAFKA_BOOTSTRAP_SERVERS or a local one."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest

from streams.config import Settings
from streams.kafka import BrokerUnavailable, kafka_cluster
from streams.warehouse import ServerWarehouse, migrate
from streams.warehouse_service.process import WarehouseServiceProcess


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


@pytest.fixture(scope="session")
def warehouse_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WarehouseServiceProcess]:
    """One embedded warehouse service (ClickHouse's HTTP interface over the engine) for the whole session: every
    test reaches the warehouse through clickhouse-connect, as every process does, in a database of its own."""
    settings = Settings.from_env(data_dir=tmp_path_factory.mktemp("warehouse"))
    with WarehouseServiceProcess(settings) as service:
        yield service


class WarehouseFactory:
    """Fresh databases on the session's warehouse service; closes the clients it opened."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._opened: list[ServerWarehouse] = []

    def __call__(self, migrated: bool = True, database: str | None = None) -> ServerWarehouse:
        warehouse = ServerWarehouse(self.url, database or new_database())
        if migrated:
            migrate(warehouse)
        self._opened.append(warehouse)
        return warehouse

    def settings(self, **overrides: object) -> Settings:
        """Settings for processes started by a test (worker, CLI): this service, a database of their own."""
        values: dict[str, object] = {"clickhouse_url": self.url, "warehouse_database": new_database()}
        return Settings.from_env(**(values | overrides))

    def close(self) -> None:
        for warehouse in self._opened:
            warehouse.close()


def new_database() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def warehouses(warehouse_service: WarehouseServiceProcess) -> Iterator[WarehouseFactory]:
    factory = WarehouseFactory(warehouse_service.url)
    yield factory
    factory.close()


@pytest.fixture
def warehouse(warehouses: WarehouseFactory) -> ServerWarehouse:
    """A fresh, migrated database for one test."""
    return warehouses()
