"""The migration runner: numbered files in clickhouse/, applied once each, in order, recorded in schema_migrations.

Each file is checksummed when applied; a changed applied file is an error (add a new file instead).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from streams.config import MIGRATIONS_DIR
from streams.warehouse import Warehouse, has_access_storage

# The history below 150 was folded on 2026-12-06, while no warehouse was deployed: the 47 files that had grown by
# ALTERs, replaced views and dropped materialized views became one file per object, named after it, that creates the
# object once in its final form; each rule that several views repeated is one view they read (prep_license_match,
# prep_metric_xmau_type, prep_behavior_event_scope). tests/integration/test_migration_files.py checks that the
# folded files build the same tables, views, columns, types, engines, keys and comments as the old ones
# (tests/support/data/schema_before_fold.json).
# A warehouse migrated before the fold is refused, not silently mixed: its applied checksums differ ("changed after
# it was applied"). A deployed system must never be folded this way. It needs forward-only migrations (new numbers
# that ALTER, or CREATE OR REPLACE a view), or, to fold anyway, a baseline step per deployment: back up, check that the
# live schema equals what the folded files build (the comparison of the test), then replace the old schema_migrations
# rows by the folded files' versions and checksums without running them.

_MIGRATION_FILE = re.compile(r"^(\d{3,})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def server_only(self) -> bool:
        """Roles and grants (first line `-- server-only`): only where the warehouse can store access entities."""
        return self.sql.startswith("-- server-only")

    def statements(self) -> list[str]:
        # Statements end with ';' at the end of a line; comment lines are dropped first.
        text = "\n".join(line for line in self.sql.splitlines() if not line.lstrip().startswith("--"))
        return [stmt.strip() for stmt in re.split(r";\s*$", text, flags=re.MULTILINE) if stmt.strip()]


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_FILE.match(path.name)
        if not match:
            raise ValueError(f"migration file name must look like 001_raw_things.sql: {path.name}")
        migrations.append(Migration(int(match.group(1)), path.stem, path.read_text()))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration numbers in {directory}")
    return migrations


def migrate(warehouse: Warehouse, directory: Path = MIGRATIONS_DIR,
            progress: Callable[[int, int], object] | None = None) -> list[str]:
    """Apply the migrations not applied yet; return their names. A changed applied file is an error.
    `progress(done, total)` is called after each one applied (see streams/progress.py)."""
    warehouse.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String, checksum String, "
        "applied_at DateTime64(3, 'UTC')) ENGINE = MergeTree ORDER BY version"
    )
    applied = {row[0]: row[2] for row in warehouse.query("SELECT version, name, checksum FROM schema_migrations").rows}
    pending = []
    for migration in load_migrations(directory):
        if migration.server_only and not has_access_storage(warehouse):
            continue  # the embedded engine: its warehouse service enforces the roles itself (README "Roles")
        if migration.version not in applied:
            pending.append(migration)
        elif applied[migration.version] != migration.checksum:
            raise RuntimeError(f"migration {migration.name} changed after it was applied; add a new file instead")
    done = []
    for migration in pending:
        for statement in migration.statements():
            warehouse.execute(statement)
        warehouse.insert("schema_migrations", [{
            "version": migration.version, "name": migration.name, "checksum": migration.checksum,
            "applied_at": datetime.now(UTC),
        }])
        done.append(migration.name)
        if progress is not None:
            progress(len(done), len(pending))
    return done
