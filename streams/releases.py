"""The Denomas release list Version Check answers from: CSV files, the dim_app_release table, the live copy.

- `schemas/releases.csv` is the seed; the worker loads it into an empty dim_app_release.
- `denomas-usage releases load FILE.csv` adds or corrects releases in dim_app_release and rewrites the
  collector's copy (`releases_path(settings)`) with the whole table.
- The collector never opens the warehouse (chdb allows one process per data directory): `ReleaseBook`
  reads that CSV and reloads it when the file changes.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import threading
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

from streams.config import SCHEMAS_DIR, Settings
from streams.enrich.service_ping import parse_version
from streams.enrich.version_check import Release
from streams.warehouse import Warehouse

log = logging.getLogger(__name__)

SEED_CSV = SCHEMAS_DIR / "releases.csv"
COLUMNS = ("version", "major", "minor", "patch", "release_date", "is_security")
_TRUE, _FALSE = {"true", "1", "yes", "t", "y"}, {"false", "0", "no", "f", "n", ""}


def releases_path(settings: Settings) -> Path:
    """The CSV the collector answers from: configured, else the data dir's live copy, else the seed."""
    if settings.releases_csv:
        return settings.releases_csv
    live = settings.data_dir / "releases.csv"
    return live if live.exists() else SEED_CSV


def _row_release(row: dict[str, str], line: int) -> Release:
    text = (row.get("version") or "").strip()
    try:
        version = parse_version(text)
    except ValueError as exc:
        raise ValueError(f"line {line}: {exc}") from exc
    if version.is_prerelease or version.edition_suffix:
        raise ValueError(f"line {line}: {text!r} is not a plain release version (x.y.z)")
    for name, value in (("major", version.major), ("minor", version.minor), ("patch", version.patch)):
        given = (row.get(name) or "").strip()
        if given and given != str(value):
            raise ValueError(f"line {line}: {name} {given!r} disagrees with version {text!r}")
    try:
        released = date.fromisoformat((row.get("release_date") or "").strip())
    except ValueError as exc:
        raise ValueError(f"line {line}: release_date must be YYYY-MM-DD: {exc}") from exc
    flag = (row.get("is_security") or "").strip().lower()
    if flag not in _TRUE | _FALSE:
        raise ValueError(f"line {line}: is_security must be true or false, got {flag!r}")
    return Release(version.major, version.minor, version.patch, released, flag in _TRUE)


def parse_releases_csv(text: str) -> list[Release]:
    """Rows `version,release_date,is_security` (major/minor/patch optional, checked). Raises ValueError."""
    reader = csv.DictReader(io.StringIO(text))
    missing = {"version", "release_date", "is_security"} - set(reader.fieldnames or ())
    if missing:
        raise ValueError(f"releases CSV needs columns {sorted(missing)} (header: {reader.fieldnames})")
    releases: dict[tuple[int, int, int], Release] = {}
    for line, row in enumerate(reader, start=2):
        release = _row_release(row, line)
        if release.key[:3] in releases:
            raise ValueError(f"line {line}: version {release.version} listed twice")
        releases[release.key[:3]] = release
    return sorted(releases.values(), key=lambda r: r.key)


def read_releases_csv(path: Path) -> list[Release]:
    return parse_releases_csv(path.read_text(encoding="utf-8"))


def write_releases_csv(path: Path, releases: Sequence[Release]) -> None:
    """Atomically (write + rename), so a reading collector never sees half a file."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in sorted(releases, key=lambda r: r.key):
        writer.writerow([r.version, r.major, r.minor, r.patch, r.release_date.isoformat(),
                         "true" if r.is_security else "false"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(out.getvalue(), encoding="utf-8")
    tmp.replace(path)


# ---------------------------------------------------------------------------------------------------
# The warehouse table


def load_releases(warehouse: Warehouse, releases: Sequence[Release], loaded_at: datetime | None = None) -> int:
    """Upsert into dim_app_release (ReplacingMergeTree on the version; the newest load wins)."""
    stamp = loaded_at or datetime.now(UTC)
    return warehouse.insert("dim_app_release", [{
        "version": r.version, "major": r.major, "minor": r.minor, "patch": r.patch, "release_date": r.release_date,
        "is_security": int(r.is_security), "updated_at": stamp,
    } for r in releases])


def warehouse_releases(warehouse: Warehouse) -> list[Release]:
    rows = warehouse.query(
        "SELECT major, minor, patch, release_date, is_security FROM dim_app_release FINAL ORDER BY major, minor, patch"
    ).rows
    return [Release(int(ma), int(mi), int(pa), date.fromisoformat(str(day)), bool(sec))
            for ma, mi, pa, day, sec in rows]


def seed_if_empty(warehouse: Warehouse, path: Path = SEED_CSV) -> int:
    """Give a fresh warehouse the seed releases; an operator's loads are never overwritten."""
    if int(warehouse.query("SELECT count() FROM dim_app_release").scalar()) > 0:
        return 0
    return load_releases(warehouse, read_releases_csv(path), datetime(2000, 1, 1, tzinfo=UTC))


def load_releases_file(warehouse: Warehouse, source: Path, live_copy: Path) -> tuple[int, int]:
    """The `releases load` command: validate the whole file first, load it, rewrite the collector's copy.

    Returns (rows loaded, releases now known)."""
    releases = read_releases_csv(source)
    loaded = load_releases(warehouse, releases)
    everything = warehouse_releases(warehouse)
    write_releases_csv(live_copy, everything)
    return loaded, len(everything)


# ---------------------------------------------------------------------------------------------------
# The collector's view


class ReleaseBook:
    """The releases in a CSV file, reloaded when the file changes (checked at most every `poll` seconds).

    A broken new file is logged and ignored: the collector keeps answering from the last good list.
    """

    def __init__(self, path: Path, poll: float = 1.0) -> None:
        self.path = path
        self.poll = poll
        self._lock = threading.Lock()
        self._signature: tuple[int, int, int] | None = None
        self._checked = 0.0
        self._releases: list[Release] = []
        self.reloads = 0

    def _current_signature(self) -> tuple[int, int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    def releases(self) -> list[Release]:
        now = time.monotonic()
        with self._lock:
            if self._signature is not None and now - self._checked < self.poll:
                return self._releases
            self._checked = now
            signature = self._current_signature()
            if signature is not None and signature != self._signature:
                try:
                    self._releases = read_releases_csv(self.path)
                    self.reloads += 1
                except (OSError, ValueError) as exc:
                    log.error("releases file %s not loaded, keeping %d known releases: %s", self.path,
                              len(self._releases), exc)
                self._signature = signature
            return self._releases
