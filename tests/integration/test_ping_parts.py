"""A normalized ping cut into parts (streams/agents/service_ping.py encoded_parts) and stored part by part by the
sink (streams/warehouse/writers.py write_pings) in the real engine: complete once, idempotent under redelivery and
crashes."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import pytest

from fleet.pings import generate_fleet
from streams.agents.common import Rejected
from streams.agents.service_ping import ServicePingNormalizer, encoded_parts
from streams.enrich.metric_dictionary import MetricDictionary
from streams.warehouse import Warehouse
from streams.warehouse.writers import write_pings
from tests.support.ping_model import open_warehouse

RECEIVED = datetime(2026, 12, 1, tzinfo=UTC)
LIMIT = 64 * 1024
COUNTERS = 3000


@pytest.fixture(scope="module")
def dictionary() -> MetricDictionary:
    return MetricDictionary.from_dir()


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory, dictionary: MetricDictionary) -> Iterator[Warehouse]:
    engine = open_warehouse(tmp_path_factory.mktemp("parts") / "chdb", dictionary)
    yield engine
    engine.close()


def _big_ping(uuid: str) -> tuple[bytes, int, int]:
    """A ping with COUNTERS extra counters and a quote-heavy string (escaped twice in the normalized record);
    returns the body, the generator's metric count and the sum of the extra counters."""
    generated = [p for p in generate_fleet(2, 2, seed=3) if p.valid][0]
    payload = copy.deepcopy(generated.payload)
    payload.update(uuid=uuid, licensee={"Name": 'say "hi" \\ ' * 3000})
    payload["counts"].update({f"parts_counter_{n:05d}": n * 7 for n in range(COUNTERS)})
    return orjson.dumps(payload), len(generated.expected_metrics) + COUNTERS, sum(n * 7 for n in range(COUNTERS))


def _parts(dictionary: MetricDictionary, body: bytes, offset: int) -> list[dict]:
    record = ServicePingNormalizer(dictionary)(body, {"kind": "ping", "received_at": RECEIVED.isoformat()}, 1, offset)
    values = encoded_parts(record, LIMIT)
    assert len(values) > 2 and all(len(v) <= LIMIT for v in values)
    return [orjson.loads(v) for v in values]


def _stored(warehouse: Warehouse, ping_id: int) -> tuple:
    """(ping rows as queries see them, ping rows without FINAL, extra counter rows, their sum)."""
    return warehouse.query(
        "SELECT (SELECT count() FROM fct_ping_instance FINAL WHERE ping_id = {id:UInt64}), "
        "(SELECT count() FROM fct_ping_instance WHERE ping_id = {id:UInt64}), "
        "(SELECT count() FROM fct_ping_instance_metric FINAL WHERE ping_id = {id:UInt64} "
        "   AND startsWith(metrics_path, 'counts.parts_counter_')), "
        "(SELECT sum(metric_value) FROM fct_ping_instance_metric FINAL WHERE ping_id = {id:UInt64} "
        "   AND startsWith(metrics_path, 'counts.parts_counter_'))", {"id": ping_id}).rows[0]


def test_a_ping_in_parts_lands_whole_once_and_redelivery_changes_nothing(warehouse, dictionary):
    body, metric_count, counter_sum = _big_ping("parts-a")
    parts = _parts(dictionary, body, offset=10)
    for part in parts[:-1]:  # one batch per part, as a slow sink would see them
        assert write_pings(warehouse, [part])["pings"] == 0
    ping_id = parts[0]["ping"]["ping_id"]
    assert _stored(warehouse, ping_id)[0] == 0  # not stored until its last part is
    assert write_pings(warehouse, [parts[-1]])["pings"] == 1
    raw = warehouse.query("SELECT payload FROM raw_service_ping FINAL WHERE ping_id = {id:UInt64}", {"id": ping_id})
    assert raw.rows == [(body.decode(),)]
    metrics = warehouse.query("SELECT count() FROM fct_ping_instance_metric FINAL WHERE ping_id = {id:UInt64}",
                              {"id": ping_id}).scalar()
    assert metrics == metric_count
    assert _stored(warehouse, ping_id) == (1, 1, COUNTERS, counter_sum)
    # redelivered after a crash (all of it, in one batch): nothing new
    assert write_pings(warehouse, parts) == {"pings": 0, "metric_rows": 0, "duplicates": len(parts)}
    assert _stored(warehouse, ping_id) == (1, 1, COUNTERS, counter_sum)


def test_a_crash_before_the_last_part_is_repaired_by_redelivery(warehouse, dictionary):
    body, metric_count, counter_sum = _big_ping("parts-b")
    parts = _parts(dictionary, body, offset=11)
    write_pings(warehouse, parts[:2])  # stored, then the worker died before acking the rest
    write_pings(warehouse, parts[1:])  # redelivery from the last committed offset: part 1 comes again
    ping_id = parts[0]["ping"]["ping_id"]
    assert _stored(warehouse, ping_id) == (1, 1, COUNTERS, counter_sum)
    assert warehouse.query("SELECT count() FROM fct_ping_instance_metric FINAL WHERE ping_id = {id:UInt64}",
                           {"id": ping_id}).scalar() == metric_count


def test_a_last_part_without_its_pieces_is_refused_with_a_reason(warehouse, dictionary):
    body, _, _ = _big_ping("parts-c")
    parts = _parts(dictionary, body, offset=12)
    with pytest.raises(ValueError, match=f"1 of its {len(parts)} parts are stored"):
        write_pings(warehouse, [parts[-1]])
    assert _stored(warehouse, parts[0]["ping"]["ping_id"])[0] == 0


def test_a_ping_that_cannot_be_cut_small_enough_is_rejected(dictionary):
    body, _, _ = _big_ping("parts-d")
    record = ServicePingNormalizer(dictionary)(body, {"kind": "ping"}, 0, 0)
    with pytest.raises(Rejected, match="cannot be cut"):
        encoded_parts(record, 200)  # smaller than the ping's own fields
