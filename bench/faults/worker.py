"""Fault scenario: the worker SIGKILLed repeatedly while it writes (issue 10), at full size.

50,000 Snowplow events and ~2,000 Service Pings through the collector in six portions; while the worker stores
each of the first five it is SIGKILLed (inside an insert into agg_behavior_active_daily, the recompute the Snowplow
sink runs before it acks; inside a Service Ping insert; inside a fact insert; then at random moments after it started
writing) and restarted. "Inside": the engine was frozen with that part unfinished while the worker died (InsertWatch).
tests/faults/test_faults_worker_kill.py is the same at a smaller size.
"""

from __future__ import annotations

import asyncio

from bench.faults import FaultEnv, FaultResult, Scenario
from bench.faults.outcome import fault_result
from fleet.pings import generate_fleet
from fleet.snowplow_events import generate_snowplow
from tests.support.faults import run_worker_kills

SEED = 5
# The generator's weeks start on 2026-06-01: 26 weeks stay in the past (an event "from the future" is put on the
# day it was received, as Snowplow does, so the generator would not know its day).
TARGETS = ("agg_behavior_active_daily", "dim_installation", "fct_behavior_structured_event", None, None)


def worker_kill(env: FaultEnv) -> FaultResult:
    fleet = generate_snowplow(*((40, 12) if env.quick else (175, 26)), seed=SEED)
    pings = generate_fleet(*((40, 8) if env.quick else (100, 20)), seed=SEED)
    env.progress(f"  {len(fleet.events):,} events, {len(pings):,} pings, {len(TARGETS)} SIGKILLs")
    outcome = asyncio.run(run_worker_kills(env.bootstrap, env.workdir, fleet, pings, TARGETS, seed=SEED))
    env.progress(outcome.check.summary())
    return fault_result("worker SIGKILL x5", outcome, "recover = last restart -> lag drained")


SCENARIOS: dict[str, Scenario] = {"worker_kill": worker_kill}
