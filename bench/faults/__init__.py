"""`python -m bench --faults`: Jepsen-style fault scenarios on real processes (broker, collector, worker, engine).

Each scenario module in this package exposes `SCENARIOS: dict[str, Scenario]`; a scenario gets a FaultEnv and
returns one FaultResult. The runner prints one table: scenario, acknowledged, stored, lost, doubled, aggregates
exact, time to recover. Nothing is asserted here (the tests assert); the table is the measurement.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Scenario modules, in the order the table lists them. Add yours here.
SCENARIO_MODULES: list[str] = ["broker", "worker", "warehouse"]


@dataclass(frozen=True)
class FaultEnv:
    bootstrap: str  # a running broker (the suite's own); a scenario may also start brokers of its own
    workdir: Path  # a fresh directory for this scenario
    quick: bool  # smaller inputs
    progress: Callable[[str], None]


@dataclass
class FaultResult:
    scenario: str
    acknowledged: int  # records the clients were told were accepted (HTTP 2xx / broker acks)
    stored: int  # of those, stored exactly once in the facts tables
    lost: int  # acknowledged but not stored
    doubled: int  # stored more than once (or counted twice in a derived table)
    aggregates_exact: bool | None  # every derived table equals a recomputation from the facts (None: not checked)
    recover_seconds: float | None  # from the fault's end until the system accepted/processed again
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Scenario = Callable[[FaultEnv], FaultResult]


def scenarios() -> dict[str, Scenario]:
    found: dict[str, Scenario] = {}
    for name in SCENARIO_MODULES:
        found.update(importlib.import_module(f"bench.faults.{name}").SCENARIOS)
    return found


COLUMNS = ["scenario", "acknowledged", "stored", "lost", "doubled", "aggregates exact", "recover s", "note"]


def table_rows(results: list[FaultResult]) -> list[tuple]:
    def exact(value: bool | None) -> str:
        return "-" if value is None else ("yes" if value else "NO")

    return [(r.scenario, r.acknowledged, r.stored, r.lost, r.doubled, exact(r.aggregates_exact),
             "-" if r.recover_seconds is None else f"{r.recover_seconds:.1f}", r.note) for r in results]
