"""Fault scenarios: the warehouse unable to write for 30 s (issue 10), at full size.

20,000 Snowplow events and ~670 Service Pings; the second half arrives while the engine's data directory is full (a
small tmpfs filled to the last block) or its table directories are immutable (chattr +i); then the fault is undone.
tests/faults/test_faults_warehouse.py is the same at a smaller size. Needs root (mount, chattr).
"""

from __future__ import annotations

import asyncio

from bench.faults import FaultEnv, FaultResult, Scenario
from bench.faults.outcome import fault_result
from fleet.pings import generate_fleet
from fleet.snowplow_events import generate_snowplow
from tests.support.faults import run_warehouse_fault

SEED = 7
FAULT_SECONDS = 30


def _run(env: FaultEnv, kind: str) -> FaultResult:
    fleet = generate_snowplow(*((24, 8) if env.quick else (80, 22)), seed=SEED)
    pings = generate_fleet(*((24, 6) if env.quick else (50, 14)), seed=SEED)
    env.progress(f"  {len(fleet.events):,} events, {len(pings):,} pings, {kind} for {FAULT_SECONDS} s")
    outcome = asyncio.run(run_warehouse_fault(env.bootstrap, env.workdir, kind, fleet, pings, FAULT_SECONDS,
                                              tmpfs_mb=512))
    env.progress(outcome.check.summary())
    return fault_result(f"warehouse {kind} {FAULT_SECONDS} s", outcome, "recover = fault over -> lag drained")


def warehouse_full(env: FaultEnv) -> FaultResult:
    return _run(env, "full")


def warehouse_immutable(env: FaultEnv) -> FaultResult:
    return _run(env, "immutable")


SCENARIOS: dict[str, Scenario] = {"warehouse_full": warehouse_full, "warehouse_immutable": warehouse_immutable}
