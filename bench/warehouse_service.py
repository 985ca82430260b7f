"""The warehouse service's HTTP insert path (clickhouse-connect Native, through streams.warehouse.ServerWarehouse)
against the in-process insert of the same rows (ChdbWarehouse), same run; and how long an insert waits while an
analyst's heavy query runs on the service.

    python -m bench.warehouse_service [--events 100000] [--batch 5000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import clickhouse_connect

from bench.common import Result, percentile
from streams.config import Settings
from streams.warehouse import ServerWarehouse, Warehouse, count_rows, migrate
from streams.warehouse_service import WarehouseServiceProcess
from streams.warehouse_service.embedded import ChdbWarehouse

TABLE = "fct_behavior_structured_event"
HEAVY_QUERY = "SELECT uniqExact(cityHash64(number) % 20000000) FROM numbers(40000000)"


def event_columns(count: int, offset: int = 0) -> dict[str, list[Any]]:
    """Structured events as a sink holds them: columns, one list each."""
    start = datetime(2026, 4, 1, tzinfo=UTC)
    ts = [start + timedelta(seconds=(i * 37) % 86400 * 30) for i in range(offset, offset + count)]
    ns = [20001 + i % 50 for i in range(offset, offset + count)]
    return {
        "event_id": [str(uuid.UUID(int=i + 1)) for i in range(offset, offset + count)],
        "app_id": ["denomas"] * count, "platform": ["srv"] * count, "event_type": ["struct"] * count,
        "event_category": [("projects", "issues", "pipelines")[i % 3] for i in range(count)],
        "event_action": [("view", "create")[i % 2] for i in range(count)],
        "collector_tstamp": ts, "derived_tstamp": ts, "behavior_date": [t.date() for t in ts],
        "user_hash": [(i * 2654435761) % 2**64 for i in range(offset, offset + count)],
        "namespace_id": ns, "ultimate_parent_namespace_id": ns, "plan": ["ultimate"] * count,
        "environment": ["production"] * count, "realm": ["saas"] * count, "deployment_type": [".com"] * count,
        "ingested_at": ts,
    }


def insert_rate(warehouse: Warehouse, batches: list[dict[str, list[Any]]]) -> float:
    started = time.perf_counter()
    rows = sum(warehouse.insert_columns(TABLE, batch) for batch in batches)
    return rows / (time.perf_counter() - started)


def insert_latencies(warehouse: Warehouse, batch: dict[str, list[Any]], until: threading.Event | None,
                     count: int) -> list[float]:
    """Seconds per insert of `batch`, `count` times (or while `until` is not set), 0.1 s apart."""
    waits: list[float] = []
    while (until is None and len(waits) < count) or (until is not None and not until.is_set()):
        started = time.perf_counter()
        warehouse.insert_columns(TABLE, batch)
        waits.append(time.perf_counter() - started)
        time.sleep(0.1)
    return waits


def measure(events: int, batch_size: int, root: Path) -> list[Result]:
    batches = [event_columns(batch_size, offset) for offset in range(0, events, batch_size)]
    local = ChdbWarehouse(root / "local" / "chdb")
    migrate(local)
    service = WarehouseServiceProcess(Settings.from_env(data_dir=root / "service", clickhouse_url=None))
    service.start()
    try:
        remote = ServerWarehouse(service.url)
        local_rate = insert_rate(local, batches)
        http_rate = insert_rate(remote, batches)
        assert count_rows(local, TABLE) == count_rows(remote, TABLE) == events
        local.close()

        probe = event_columns(1000, 10**9)
        quiet = insert_latencies(remote, probe, None, 20)
        heavy_done = threading.Event()
        heavy_seconds: list[float] = []

        def analyst() -> None:
            ch = clickhouse_connect.get_client(host="127.0.0.1", port=service.port, send_receive_timeout=600)
            started = time.perf_counter()
            ch.query(HEAVY_QUERY)
            heavy_seconds.append(time.perf_counter() - started)
            heavy_done.set()

        thread = threading.Thread(target=analyst)
        thread.start()
        busy = insert_latencies(remote, probe, heavy_done, 0)
        thread.join()
        remote.close()
    finally:
        service.stop()
    return [
        Result("warehouse service HTTP insert (clickhouse-connect Native)", http_rate, "rows/s", baseline=local_rate,
               note=f"{events} events in batches of {batch_size}; baseline: ChdbWarehouse in-process, same rows"),
        Result("insert wait, 1000 rows, quiet: median", statistics.median(quiet) * 1000, "ms"),
        Result("insert wait, 1000 rows, quiet: max", max(quiet) * 1000, "ms"),
        Result("insert wait during a heavy analyst query: median", statistics.median(busy) * 1000, "ms",
               baseline=statistics.median(quiet) * 1000, note=f"{len(busy)} inserts while the query ran"),
        Result("insert wait during a heavy analyst query: p95", percentile(busy, 95) * 1000, "ms"),
        Result("insert wait during a heavy analyst query: max", max(busy) * 1000, "ms",
               note=f"query: {HEAVY_QUERY} ({heavy_seconds[0]:.2f} s)"),
    ]


def run(bootstrap: str, workdir: Path, quick: bool, progress) -> list[Result]:
    """The suite's entry (bench/__main__.py): a service of its own, so its numbers are not disturbed."""
    progress("warehouse service: HTTP insert vs in-process insert, insert wait during a heavy query")
    return measure(20_000 if quick else 100_000, 5000, workdir / "warehouse-service")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-warehouse-service-") as root:
        for result in measure(args.events, args.batch, Path(root)):
            ratio = f"  (ratio {result.ratio:.2f} of {result.baseline:,.1f})" if result.baseline else ""
            print(f"{result.name}: {result.value:,.1f} {result.unit}{ratio}  {result.note}")


if __name__ == "__main__":
    main()
