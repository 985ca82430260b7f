"""The warehouse interface on the real embedded engine: migrations, typed inserts, bound parameters."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streams.warehouse import count_rows, load_migrations, migrate
from streams.warehouse_service.embedded import ChdbWarehouse


@pytest.fixture
def warehouse(tmp_path):
    wh = ChdbWarehouse(tmp_path / "chdb")
    yield wh
    wh.close()


def test_migrations_apply_once_in_order_and_are_recorded(warehouse):
    names = [m.name for m in load_migrations() if not m.server_only]  # roles and grants: servers only
    assert names == sorted(names)
    assert migrate(warehouse) == names
    assert migrate(warehouse) == []
    recorded = warehouse.query("SELECT name FROM schema_migrations ORDER BY version").rows
    assert [r[0] for r in recorded] == names


def test_a_changed_applied_migration_is_refused(warehouse, tmp_path):
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "001_raw_x.sql").write_text("CREATE TABLE x (a UInt8) ENGINE = MergeTree ORDER BY a;\n")
    assert migrate(warehouse, folder) == ["001_raw_x"]
    (folder / "001_raw_x.sql").write_text("CREATE TABLE x (a UInt16) ENGINE = MergeTree ORDER BY a;\n")
    with pytest.raises(RuntimeError, match="changed after it was applied"):
        migrate(warehouse, folder)


def test_badly_named_migration_is_refused(tmp_path):
    (tmp_path / "create_things.sql").write_text("SELECT 1;")
    with pytest.raises(ValueError, match="001_raw_things.sql"):
        load_migrations(tmp_path)


def test_insert_keeps_bytes_and_big_integers_exact(warehouse):
    migrate(warehouse)
    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    letter = {"dead_letter_id": 2**63 + 11, "source": "service_ping", "stage": "validate", "reason": "why",
              "original": b"\xff\x00not utf-8", "received_at": now, "failed_at": now, "kafka_topic": "t",
              "kafka_partition": 3, "kafka_offset": 2**40}
    assert warehouse.insert("raw_dead_letter", [letter]) == 1
    row = warehouse.query("SELECT dead_letter_id, hex(original), kafka_offset, received_at FROM raw_dead_letter").rows
    assert row == [(2**63 + 11, "FF006E6F74207574662D38", 2**40, "2026-06-01 12:00:00.000")]


def test_replacing_tables_collapse_a_redelivered_row_with_final(warehouse):
    migrate(warehouse)
    now = datetime(2026, 6, 1, tzinfo=UTC)
    letter = {"dead_letter_id": 7, "source": "s", "stage": "validate", "reason": "r", "original": b"x",
              "received_at": now, "failed_at": now, "kafka_topic": "t", "kafka_partition": 0, "kafka_offset": 1}
    warehouse.insert("raw_dead_letter", [letter])
    warehouse.insert("raw_dead_letter", [letter])
    assert count_rows(warehouse, "raw_dead_letter", final=False) == 2  # two parts, not merged yet
    assert count_rows(warehouse, "raw_dead_letter") == 1


def test_parameters_are_bound_not_spliced(warehouse):
    hostile = "x'); DROP TABLE schema_migrations; --"
    migrate(warehouse)
    assert warehouse.query("SELECT {v:String} AS v", {"v": hostile}).rows == [(hostile,)]
    assert count_rows(warehouse, "schema_migrations", final=False) > 0
    with pytest.raises(ValueError):
        count_rows(warehouse, "schema_migrations; DROP TABLE x")


def test_query_reports_rows_read(warehouse):
    result = warehouse.query("SELECT sum(number) FROM numbers(1000)")
    assert result.scalar() == 499500
    assert result.rows_read == 1000


def test_release_memory_purges_the_engine_allocator_and_keeps_the_data(warehouse):
    warehouse.execute("CREATE TABLE t_purge (n UInt64) ENGINE = MergeTree ORDER BY n")
    warehouse.insert_columns("t_purge", {"n": list(range(100_000))})
    warehouse.release_memory()  # SYSTEM JEMALLOC PURGE: refused if the engine had no jemalloc
    assert warehouse.query("SELECT count(), sum(n) FROM t_purge").rows == [(100_000, 4_999_950_000)]


def test_the_worker_heap_settings_are_accepted_on_glibc():
    import platform

    from streams import heap

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt/malloc_trim are glibc's")
    assert heap.limit_retention() is True  # every mallopt call returned 1
    heap.release_free_memory()


def test_the_embedded_engine_runs_with_caches_sized_for_a_worker(warehouse):
    sizes = dict(warehouse.query("SELECT name, value FROM system.server_settings WHERE name IN "
                                 "('mark_cache_size', 'primary_index_cache_size', 'query_condition_cache_size')").rows)
    assert sizes == {"mark_cache_size": "67108864", "primary_index_cache_size": "67108864",
                     "query_condition_cache_size": "16777216"}  # not the server defaults of 5 GiB / 100 MiB
