"""What the command modules share."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from streams.config import Settings
from streams.progress import ItemProgress

if TYPE_CHECKING:
    from streams.warehouse import Warehouse


@contextlib.contextmanager
def connected(settings: Settings | None = None, migrated: bool = False) -> Iterator[Warehouse]:
    """The warehouse of `settings` (default: from the environment), closed afterwards; `migrated` applies the
    migrations first (commands that write or that may be the first to touch a fresh warehouse)."""
    from streams.warehouse import open_warehouse

    warehouse = open_warehouse(settings or Settings.from_env())
    try:
        if migrated:
            apply_migrations(warehouse)
        yield warehouse
    finally:
        warehouse.close()


def apply_migrations(warehouse: Warehouse) -> list[str]:
    """The migrations not applied yet, with a progress bar (a fresh warehouse takes a while)."""
    from streams.warehouse import migrate

    with progress_to_stderr("migrations") as progress:
        return migrate(warehouse, progress=progress)


def progress_to_stderr(label: str, total: int = 0) -> ItemProgress:
    """Progress of a command goes to stderr: its stdout is the result (tables, counts) and may be piped."""
    return ItemProgress(label, total, stream=sys.stderr)
