"""What the command modules share."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from streams.config import Settings

if TYPE_CHECKING:
    from streams.warehouse import Warehouse


@contextlib.contextmanager
def connected(settings: Settings | None = None, migrated: bool = False) -> Iterator[Warehouse]:
    """The warehouse of `settings` (default: from the environment), closed afterwards; `migrated` applies the
    migrations first (commands that write or that may be the first to touch a fresh warehouse)."""
    from streams.warehouse import migrate, open_warehouse

    warehouse = open_warehouse(settings or Settings.from_env())
    try:
        if migrated:
            migrate(warehouse)
        yield warehouse
    finally:
        warehouse.close()
