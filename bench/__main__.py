"""`make bench`: the benchmark suite on the real broker and engine. Prints a table, writes bench/results/*.json.

Every throughput is shown next to a raw baseline measured in the same run (the ratio is what to compare
between runs: this 2-core machine is noisy). Nothing here is asserted; targets are printed beside results.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import common, dashboard, fuzz, queries, service_ping, snowplow, warehouse_service
from bench.common import Result
from streams.config import PROJECT_ROOT, Settings
from streams.kafka.broker import kafka_cluster
from streams.tables import format_table
from streams.warehouse_service.process import WarehouseServiceProcess

SUITES = {"service_ping": service_ping.run, "snowplow": snowplow.run, "queries": queries.run,
          "warehouse_service": warehouse_service.run}
# run only when named (`--only fuzz`, `--only dashboard`): the fuzz suite's longer run (bench/fuzz.py) and the
# dashboard at 100x the sample (bench/dashboard.py, ~20 min: it builds the 100x data first)
OPTIONAL = {"fuzz": fuzz.run, "dashboard": dashboard.run}


def progress(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller inputs (a smoke run)")
    parser.add_argument("--only", choices=sorted(SUITES | OPTIONAL), action="append")
    parser.add_argument("--faults", action="store_true", help="run the fault scenarios (bench/faults) instead")
    parser.add_argument("--scenario", action="append", help="with --faults: only these scenarios")
    parser.add_argument("--soak", type=int, default=service_ping.SOAK_ROUNDS, metavar="N",
                        help=f"equal Service Ping loads for the memory soak (default {service_ping.SOAK_ROUNDS})")
    args = parser.parse_args(argv)
    service_ping.SOAK_ROUNDS = max(1, args.soak)
    if args.faults:
        return run_faults(args.quick, args.scenario)
    started = time.monotonic()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="denomas-bench-") as tmp:
        workdir = Path(tmp)
        service = WarehouseServiceProcess(Settings.from_env(data_dir=workdir / "warehouse", clickhouse_url=None))
        with kafka_cluster(Settings.from_env(data_dir=workdir / "broker")) as bootstrap, service:
            common.use_warehouse_service(service)  # every process of the suite reaches the engine through it
            for name in args.only or list(SUITES):
                progress(f"suite {name}")
                results += (SUITES | OPTIONAL)[name](bootstrap, workdir, args.quick, progress)
    rows = [(r.name, r.value, r.unit, r.baseline, f"{r.ratio:.0%}" if r.ratio else "", r.target, r.note)
            for r in results]
    print()
    print(format_table(["benchmark", "value", "unit", "baseline", "ratio", "target", "note"], rows))
    out_dir = PROJECT_ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps({
        "when": datetime.now(UTC).isoformat(), "machine": platform.platform(), "python": sys.version.split()[0],
        "seconds": round(time.monotonic() - started, 1), "quick": args.quick,
        "results": [r.as_dict() for r in results],
    }, indent=2))
    print(f"\nwrote {out.relative_to(PROJECT_ROOT)} ({time.monotonic() - started:.0f} s)")
    return 0


def run_faults(quick: bool, only: list[str] | None) -> int:
    from bench import faults

    started = time.monotonic()
    chosen = {name: run for name, run in faults.scenarios().items() if not only or name in only}
    results: list[faults.FaultResult] = []
    with tempfile.TemporaryDirectory(prefix="denomas-faults-") as tmp:
        workdir = Path(tmp)
        # Scenarios that do not bring a warehouse of their own (broker, worker restarts) share this one.
        service = WarehouseServiceProcess(Settings.from_env(data_dir=workdir / "warehouse", clickhouse_url=None))
        with kafka_cluster(Settings.from_env(data_dir=workdir / "broker")) as bootstrap, service:
            common.use_warehouse_service(service)
            for name, run in chosen.items():
                progress(f"scenario {name}")
                scenario_dir = workdir / name
                scenario_dir.mkdir()
                results.append(run(faults.FaultEnv(bootstrap, scenario_dir, quick, progress)))
    print()
    print(format_table(faults.COLUMNS, faults.table_rows(results)))
    out_dir = PROJECT_ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"faults-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps({
        "when": datetime.now(UTC).isoformat(), "machine": platform.platform(), "quick": quick,
        "seconds": round(time.monotonic() - started, 1), "results": [r.as_dict() for r in results],
    }, indent=2))
    print(f"\nwrote {out.relative_to(PROJECT_ROOT)} ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
