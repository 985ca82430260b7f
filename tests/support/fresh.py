"""A fresh database on the session's warehouse service (tests/conftest.py starts it and sets CLICKHOUSE_URL)."""

from __future__ import annotations

import os
import uuid

from streams.warehouse import ServerWarehouse, migrate


def new_database() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


def fresh_warehouse(migrated: bool = True) -> ServerWarehouse:
    warehouse = ServerWarehouse(os.environ["CLICKHOUSE_URL"], new_database())
    if migrated:
        migrate(warehouse)
    return warehouse
