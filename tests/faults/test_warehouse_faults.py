"""A failed write is never reported as stored, and only the rows' own faults are dead-lettered.

On the real embedded engine: a data directory on a small tmpfs that is full, part directories made immutable
(`chattr +i`; root ignores file modes), a CHECK constraint. Then the retry policy of the sinks (write_with_retry):
warehouse faults are retried with backoff until they pass, data errors raise PoisonBatch at once.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pyarrow as pa
import pytest

from streams.agents.common import WAREHOUSE_HEALTH, PoisonBatch, write_with_retry
from streams.warehouse import RowsRefused, is_data_error
from streams.warehouse_service.embedded import ChdbWarehouse
from tests.support.faults import small_tmpfs

pytestmark = pytest.mark.integration

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs and chattr need root")


def fill(path: Path) -> Path:
    filler = path / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M", "count=1000"], capture_output=True, check=False)
    return filler


def events_table(warehouse: ChdbWarehouse) -> None:
    warehouse.execute("CREATE TABLE IF NOT EXISTS t (id UInt64, payload String) ENGINE = MergeTree ORDER BY id")


def rows(first: int, count: int) -> dict[str, list]:
    return {"id": list(range(first, first + count)), "payload": [os.urandom(32).hex().encode()] * count}


def stored(warehouse: ChdbWarehouse) -> int:
    return int(warehouse.query("SELECT count() FROM t").scalar())


@ROOT_ONLY
def test_a_full_disk_raises_and_stores_nothing_then_the_same_write_lands(tmp_path):
    with small_tmpfs(tmp_path / "disk", 48) as disk:
        warehouse = ChdbWarehouse(disk / "chdb")
        try:
            events_table(warehouse)
            warehouse.insert_columns("t", rows(0, 1000))
            filler = fill(disk)
            with pytest.raises(RuntimeError, match="NOT_ENOUGH_SPACE|No space left") as failure:
                warehouse.insert_columns("t", rows(1000, 50_000))
            assert not is_data_error(failure.value)  # the warehouse's fault: retried, never dead-lettered
            assert stored(warehouse) == 1000
            filler.unlink()
            assert warehouse.insert_columns("t", rows(1000, 50_000)) == 50_000
            assert stored(warehouse) == 51_000
        finally:
            warehouse.close()


@ROOT_ONLY
def test_immutable_part_directories_raise_and_store_nothing(tmp_path):
    warehouse = ChdbWarehouse(tmp_path / "chdb")
    frozen: list[str] = []
    try:
        events_table(warehouse)
        warehouse.insert_columns("t", rows(0, 10))
        table_dir = warehouse.query("SELECT data_paths[1] FROM system.tables WHERE name = 't'").scalar()
        frozen = [table_dir]
        subprocess.run(["chattr", "+i", table_dir], check=True)
        with pytest.raises(RuntimeError, match="Operation not permitted") as failure:
            warehouse.insert_columns("t", rows(10, 100))
        assert not is_data_error(failure.value)
        subprocess.run(["chattr", "-i", table_dir], check=True)
        frozen = []
        assert stored(warehouse) == 10
        warehouse.insert_columns("t", rows(10, 100))
        assert stored(warehouse) == 110
    finally:
        for path in frozen:
            subprocess.run(["chattr", "-i", path], check=False)
        warehouse.close()


def test_a_check_constraint_violation_raises_a_data_error(tmp_path):
    warehouse = ChdbWarehouse(tmp_path / "chdb")
    try:
        warehouse.execute("CREATE TABLE c (v Int64, CONSTRAINT small CHECK v < 100) ENGINE = MergeTree ORDER BY v")
        with pytest.raises(RuntimeError, match="VIOLATED_CONSTRAINT") as failure:
            warehouse.insert_columns("c", {"v": [1, 2, 500]})
        assert is_data_error(failure.value)
        assert warehouse.query("SELECT count() FROM c").scalar() == 0
    finally:
        warehouse.close()


def test_rows_that_cannot_be_converted_are_data_errors():
    for bad in ([2**64], ["not a number"]):
        with pytest.raises(Exception) as failure:
            pa.array(bad, pa.uint64())
        assert is_data_error(failure.value)
    assert not is_data_error(RuntimeError("Code: 243. DB::Exception: Cannot reserve 1.00 MiB (NOT_ENOUGH_SPACE)"))
    assert not is_data_error(OSError("Connection refused"))
    assert is_data_error(RuntimeError("Code: 53. DB::Exception: Type mismatch (TYPE_MISMATCH)"))
    assert is_data_error(RowsRefused("ping 7: 1 of its 3 parts are stored"))  # a writer's own refusal


def test_warehouse_faults_are_retried_until_the_write_passes_and_health_says_so(monkeypatch):
    monkeypatch.setattr("streams.agents.common.retry_delay", lambda attempt: 0.01)
    attempts: list[bool] = []
    seen_failing: list[bool] = []

    def write() -> str:
        attempts.append(True)
        seen_failing.append(WAREHOUSE_HEALTH.ok)
        if len(attempts) < 4:
            raise RuntimeError("Code: 243. DB::Exception: Cannot reserve 5.34 MiB (NOT_ENOUGH_SPACE)")
        return "stored"

    assert asyncio.run(write_with_retry(write, "test rows", None)) == "stored"  # type: ignore[arg-type]
    assert len(attempts) == 4
    assert seen_failing == [True, False, False, False]  # unhealthy from the first failure until the write passed
    assert WAREHOUSE_HEALTH.ok


def test_data_errors_are_not_retried_but_isolated(monkeypatch):
    monkeypatch.setattr("streams.agents.common.retry_delay", lambda attempt: 0.01)
    attempts: list[bool] = []

    def write() -> None:
        attempts.append(True)
        raise RuntimeError("Code: 469. DB::Exception: Constraint `small` is violated (VIOLATED_CONSTRAINT)")

    with pytest.raises(PoisonBatch, match="VIOLATED_CONSTRAINT"):
        asyncio.run(write_with_retry(write, "test rows", None))  # type: ignore[arg-type]
    assert len(attempts) == 1
