"""Turns a fault scenario's Outcome (tests/support/faults.py, shared with the tests) into a FaultResult row."""

from __future__ import annotations

from bench.faults import FaultResult
from tests.support.faults import Outcome


def fault_result(scenario: str, outcome: Outcome, note: str = "") -> FaultResult:
    check = outcome.check
    differing = {table: len(cells) for table, cells in check.diffs.items() if cells}
    parts = [note] if note else []
    parts += [f"{table} {n} cells off" for table, n in differing.items()]
    off = {table: len(cells) for table, cells in check.generator_diffs.items() if cells}
    parts += [f"{table} {n} cells off the generator" for table, n in off.items()]
    if check.unexpected_events:
        parts.append(f"{len(check.unexpected_events)} events stored that the generator did not expect")
    if check.dead_letters:
        parts.append(f"dead letters off: {check.dead_letters}")
    if outcome.worker_exits:
        parts.append(f"worker died {outcome.worker_exits}x")
    if outcome.restart_to_write:
        parts.append("restart->write " + "/".join(f"{s:.0f}" for s in outcome.restart_to_write) + " s")
    return FaultResult(scenario=scenario, acknowledged=check.acknowledged_events + check.acknowledged_pings,
                       stored=check.stored, lost=check.lost, doubled=check.doubled,
                       aggregates_exact=check.aggregates_exact, recover_seconds=outcome.recover_seconds,
                       note="; ".join(parts))
