"""Fault: the worker SIGKILLed repeatedly while it writes (issue 10), on the real broker, collector and engine.

Snowplow events (official tracker payloads from the sample fleet) and Service Pings go through the collector in
portions; while the worker stores each portion it is SIGKILLed (inside an insert into agg_behavior_active_daily, the
recompute the Snowplow sink runs before it acks; inside a Service Ping insert; inside a fact insert of
fct_behavior_structured_event; then at a random moment after it started writing) and restarted. "Inside": the engine
began a part of that table and was frozen with it unfinished while the worker was killed (InsertWatch). After the
lag drained: every acknowledged event and ping is stored exactly once, and every derived table equals a
recomputation in plain Python from the facts (tests/support/faults.py) and from the generator's own rows.
"""

from __future__ import annotations

import asyncio

import pytest

from fleet.pings import generate_fleet
from fleet.snowplow_events import generate_snowplow
from tests.support.faults import Outcome, run_worker_kills

pytestmark = pytest.mark.integration

SEED = 23
# Where each kill lands: a table = inside an insert into it; None = a random moment (0-2 s) after the restarted worker
# started writing again. dim_installation is a view (no parts): that kill lands inside a fct_ping_instance insert.
KILL_TARGETS: tuple[str | None, ...] = ("agg_behavior_active_daily", "dim_installation",
                                        "fct_behavior_structured_event", None)


@pytest.fixture(scope="module")
def killed(kafka_bootstrap, tmp_path_factory) -> Outcome:
    fleet, pings = generate_snowplow(40, 12, seed=SEED), generate_fleet(40, 8, seed=SEED)
    return asyncio.run(run_worker_kills(kafka_bootstrap, tmp_path_factory.mktemp("kill"), fleet, pings, KILL_TARGETS,
                                        seed=SEED))


def test_every_request_was_acknowledged(killed):
    assert killed.acks.failures == []
    assert len(killed.acks.events) > 4_000 and len(killed.acks.pings) > 250


def test_the_worker_was_killed_inside_inserts(killed):
    # A kill aimed at a table: the engine had begun a part of it (kernel-notified) for this portion. Mostly it was
    # frozen with that part unfinished while the worker was SIGKILLed and reaped (in_flight: the worker died with the
    # insert in flight); when every part of the table was finished before the engine could be frozen, the kill came
    # FINISHED_PART_GRACE s after the last one (in_flight False, said in the outcome). The others came after the
    # restarted worker began writing again.
    assert len(killed.kills) == len(KILL_TARGETS), killed.notes
    for (target, busy), part in zip(killed.kills, killed.kill_parts, strict=True):
        assert busy or (part is not None and not part.in_flight), f"the worker never wrote: {part} {killed.notes}"
        if target:
            assert part is not None and part.table == target, f"{part} {killed.notes}"
            assert target in busy or not part.in_flight
    assert any(part.in_flight for part in killed.kill_parts if part), killed.kill_parts


def test_every_acknowledged_event_and_ping_is_stored_exactly_once(killed):
    check = killed.check
    assert (len(check.lost_events), len(check.lost_pings)) == (0, 0), check.summary()
    assert (check.doubled_events, check.doubled_pings) == (0, 0), check.summary()
    assert check.unexpected_events == set(), check.summary()
    assert check.metric_rows == [], check.summary()


def test_dead_letters_are_exactly_the_invalid_records(killed):
    # more than expected: valid data dead-lettered; fewer: dead letters lost
    assert killed.check.dead_letters == [], killed.check.summary()


@pytest.mark.parametrize("table", ["agg_behavior_event_daily", "agg_behavior_active_daily", "agg_event_metric_daily",
                                   "dim_installation"])
def test_derived_table_equals_the_recomputation_from_the_facts(killed, table):
    assert killed.check.expected_cells[table] > 0  # the comparison covers real cells
    cells = killed.check.diffs[table]
    assert cells == [], f"{len(cells)} cells differ (key, stored, expected): {cells[:10]}"


@pytest.mark.parametrize("table", ["agg_behavior_event_daily", "agg_behavior_active_daily"])
def test_facts_aggregate_to_the_generators_counts(killed, table):
    cells = killed.check.generator_diffs[table]
    assert cells == [], f"{len(cells)} cells differ (key, from facts, from generator): {cells[:10]}"
