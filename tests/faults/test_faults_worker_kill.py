"""Fault: the worker SIGKILLed repeatedly while it writes (issue 10), on the real broker, collector and engine.

Snowplow events (official tracker payloads from the sample fleet) and Service Pings go through the collector in
portions; while the worker stores each portion it is SIGKILLed (once the moment the engine writes a part of
fct_behavior_structured_event, once inside a Service Ping insert, the others at random moments after it started
writing) and restarted. After the lag drained: every acknowledged event and ping is stored exactly once, and every
derived table equals a recomputation in plain Python from the facts (tests/support/faults.py) and from the
generator's own rows.
"""

from __future__ import annotations

import asyncio

import pytest

from fleet.pings import generate_fleet
from fleet.snowplow_events import generate_snowplow
from tests.support.faults import Outcome, run_worker_kills

pytestmark = pytest.mark.integration

SEED = 23
# Where each kill lands: a table = the moment the engine writes a part of it; None = a random moment (0-2 s) after
# the restarted worker started writing again. A materialized view's target is written after the fact part it comes
# from: a kill there falls between the two.
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
    assert len(killed.kills) == len(KILL_TARGETS)
    for target, busy in killed.kills:
        assert busy, "the worker never wrote after its restart"
        if target:
            assert target in busy


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
