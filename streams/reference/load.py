"""Reference data in and out: CSV files -> dim_ tables (or the compacted topics), and the match-rate report.

`read_csv` validates a whole file before anything is written: every problem is reported with its line and
column, and a file with any problem loads nothing. The writers are idempotent (ReplacingMergeTree on the
natural id with updated_at as the version), so loading the same file twice changes no query result.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from streams.config import Settings
from streams.reference.kinds import (
    RefKind,
    check_columns,
    parse_record,
    to_json,
)
from streams.warehouse import QueryResult, Warehouse
from streams.warehouse.writers import write_reference

MAX_REPORTED_ERRORS = 50


class CsvValidationError(ValueError):
    """A CSV file that cannot be loaded; `errors` name the line and column of every problem."""

    def __init__(self, path: Path, errors: list[str]) -> None:
        shown = errors[:MAX_REPORTED_ERRORS]
        more = f"\n  ... and {len(errors) - len(shown)} more" if len(errors) > len(shown) else ""
        super().__init__(f"{path}: {len(errors)} problem(s), nothing loaded:\n  " + "\n  ".join(shown) + more)
        self.path = path
        self.errors = errors


def read_csv(kind: RefKind, path: Path) -> list[dict[str, Any]]:
    """Validated, typed rows of a CSV file with a header line (columns: see `denomas-usage reference columns`)."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader, [])]
        if not header:
            raise CsvValidationError(path, ["line 1: empty file, expected a header line"])
        errors = [f"line 1 (header), {exc}" for exc in check_columns(kind, header)]
        if len(set(header)) != len(header):
            errors.append("line 1 (header): a column name appears twice")
        if errors:
            raise CsvValidationError(path, errors)
        rows: list[dict[str, Any]] = []
        first_line: dict[str, int] = {}
        for fields in reader:
            line = reader.line_num
            if not any(field.strip() for field in fields):
                continue  # blank line
            if len(fields) != len(header):
                errors.append(f"line {line}: {len(fields)} fields, the header has {len(header)}")
                continue
            row, problems = parse_record(kind, dict(zip(header, fields, strict=True)))
            errors.extend(f"line {line}, {exc}" for exc in problems)
            if problems:
                continue
            key = kind.key_of(row)
            if key in first_line:
                errors.append(f"line {line}, column {kind.key}: duplicate {key!r} (first on line {first_line[key]})")
                continue
            first_line[key] = line
            rows.append(row)
    if errors:
        raise CsvValidationError(path, errors)
    return rows


def with_version(rows: Iterable[dict[str, Any]], loaded_at: datetime) -> list[dict[str, Any]]:
    """Rows without their own updated_at take the load time (a later load of the same id wins)."""
    return [row | {"updated_at": row["updated_at"] or loaded_at} for row in rows]


def load_csv(warehouse: Warehouse, kind: RefKind, path: Path, loaded_at: datetime | None = None) -> int:
    rows = with_version(read_csv(kind, path), loaded_at or datetime.now(UTC))
    return write_reference(warehouse, kind, rows)


def write_csv(kind: RefKind, rows: Iterable[dict[str, Any]], path: Path) -> Path:
    """A CSV file `read_csv` accepts (used by the sample generator and as a template)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(kind.column_names)
        for row in rows:
            writer.writerow(["" if row.get(name) is None else _csv_text(row[name]) for name in kind.column_names])
    return path


def _csv_text(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


# ---------------------------------------------------------------------------------------------------
# Compacted topics: key = natural id, value = JSON row, null value = delete the key.


def topic_record(kind: RefKind, row: dict[str, Any]) -> tuple[bytes, bytes]:
    value = {k: v for k, v in to_json(row).items() if k != "is_deleted" and not (k == "updated_at" and v is None)}
    return kind.key_of(row).encode(), orjson.dumps(value)


async def publish(settings: Settings, bootstrap: str, kind: RefKind, rows: Sequence[dict[str, Any]],
                  deletes: Sequence[str] = (), progress: Callable[[int, int], object] | None = None) -> int:
    """Send rows (and tombstones for `deletes`) to the kind's compacted topic; returns records sent.
    `progress(done, total)` after each record."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        topic = settings.topic(kind.topic)
        records = [topic_record(kind, row) for row in rows] + [(key.encode(), None) for key in deletes]
        for done, (key, value) in enumerate(records, 1):
            await producer.send_and_wait(topic, value, key=key)
            if progress is not None:
                progress(done, len(records))
    finally:
        await producer.stop()
    return len(rows) + len(deletes)


# ---------------------------------------------------------------------------------------------------
# Reports


def match_rate(warehouse: Warehouse) -> QueryResult:
    """Per month and source: how many pings / Seat Link reports found their license, subscription, account."""
    return warehouse.query("SELECT * FROM rpt_license_match_rate ORDER BY month, source")
