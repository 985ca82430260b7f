"""Unit level: pure logic. The warehouse fixtures the root conftest uses for every test are turned off here, so a
unit test that reaches for the engine fails instead of passing on a service it should not need."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def warehouse_service() -> None:
    return None


@pytest.fixture(scope="module", autouse=True)
def module_database() -> None:
    return None


@pytest.fixture(autouse=True)
def test_database() -> None:
    return None
