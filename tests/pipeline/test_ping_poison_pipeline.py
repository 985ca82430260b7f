"""Service Ping shapes that used to stop a partition, on real parts (HTTP collector -> Kafka -> worker -> chdb):
a 7.5 MB ping (normalized ~2x, above the topic's record limit), a value of -1e30, and leaves a column cannot
hold. Each is followed by a good ping of the same instance (same key, so the same partition) that must land.
"""

from __future__ import annotations

import asyncio
import copy

import aiohttp
import orjson
import pytest

from fleet.pings import generate_fleet
from streams.config import MAX_BODY_BYTES, Settings
from streams.warehouse import open_warehouse
from tests.support.pipeline import pipeline_settings, running_pipeline

pytestmark = pytest.mark.integration

UUID = "poison-0000-4000-8000-000000000001"
COUNTERS = 100_000
LITERALS = {"odd_a": "1152921504606846979", "odd_b": "9223372036854775809",
            "odd_c": "123456789012345678901234567890", "odd_d": "-4294967296"}


def _body(base: dict, day: int, **extra: object) -> bytes:
    payload = copy.deepcopy(base)
    payload.update(uuid=UUID, recorded_at=f"2026-06-{day:02d}T10:00:00.000Z")
    payload["counts"].update(extra)
    return orjson.dumps(payload)


@pytest.fixture(scope="module")
def sent(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    generated = [p for p in generate_fleet(2, 2, seed=3) if p.valid][0]
    base = copy.deepcopy(generated.payload)
    big = copy.deepcopy(base)
    big["licensee"] = {"Name": 'say "hi" \\ ' * 320_000}  # escaped again in the normalized record
    big_body = _body(big, 1, **{f"big_counter_{n:06d}": n for n in range(COUNTERS)})
    assert 7_000_000 < len(big_body) < MAX_BODY_BYTES
    odd_body = _body(base, 5, odd_placeholder=0).replace(
        b'"odd_placeholder":0', b",".join(f'"{k}":{v}'.encode() for k, v in LITERALS.items()))
    bodies = {"big": big_body, "good_1": _body(base, 2), "minus_1e30": _body(base, 3, minus=-1e30),
              "good_2": _body(base, 4), "odd": odd_body, "good_3": _body(base, 6)}
    settings = pipeline_settings(tmp_path_factory, "poison", topic_partitions=2)
    statuses = asyncio.run(_run(settings, kafka_bootstrap, list(bodies.values())))
    return {"bodies": bodies, "statuses": statuses, "settings": settings,
            "base_metrics": len(generated.expected_metrics)}


async def _run(settings: Settings, bootstrap: str, bodies: list[bytes]) -> list[int]:
    async with running_pipeline(settings, bootstrap) as pipeline:
        statuses = []
        async with aiohttp.ClientSession() as session:
            for body in bodies:  # in order: each bad ping has a good one right behind it
                async with session.post(f"{pipeline.url}/usage_data", data=body,
                                        headers={"Content-Type": "application/json"}) as response:
                    statuses.append(response.status)
        await pipeline.landed()
        return statuses


def _query(sent: dict, sql: str) -> list[tuple]:
    warehouse = open_warehouse(sent["settings"])
    try:
        return warehouse.query(sql).rows
    finally:
        warehouse.close()


def test_every_ping_lands_and_nothing_is_dead_lettered(sent):
    assert sent["statuses"] == [200] * len(sent["bodies"])
    pings = _query(sent, "SELECT toString(toDate(recorded_at)), metric_count, flagged_metric_count "
                         "FROM fct_ping_instance FINAL ORDER BY recorded_at")
    base = sent["base_metrics"]
    assert pings == [("2026-06-01", base + COUNTERS, 0), ("2026-06-02", base, 0), ("2026-06-03", base + 1, 1),
                     ("2026-06-04", base, 0), ("2026-06-05", base + len(LITERALS), len(LITERALS)),
                     ("2026-06-06", base, 0)]
    assert _query(sent, "SELECT count() FROM raw_dead_letter FINAL") == [(0,)]


def test_the_big_ping_is_stored_whole(sent):
    rows = _query(sent, "SELECT count(), sum(metric_value) FROM fct_ping_instance_metric FINAL "
                        "WHERE startsWith(metrics_path, 'counts.big_counter_')")
    assert rows == [(COUNTERS, sum(range(COUNTERS)))]
    raw = _query(sent, "SELECT payload FROM raw_service_ping FINAL WHERE toDate(recorded_at) = '2026-06-01'")
    assert raw == [(sent["bodies"]["big"].decode(),)]
    parts = _query(sent, "SELECT count(), any(parts) FROM raw_service_ping_part FINAL")
    assert parts[0][0] == parts[0][1] > 1


def test_values_a_column_cannot_hold_are_flagged_rows(sent):
    rows = _query(sent, "SELECT metrics_path, metric_value, value_kind, value_text FROM fct_ping_instance_metric "
                        "FINAL WHERE metrics_path IN ('counts.minus', 'counts.odd_a', 'counts.odd_b', 'counts.odd_c', "
                        "'counts.odd_d') ORDER BY metrics_path")
    assert rows == [("counts.minus", None, "negative", "-1e+30"),
                    ("counts.odd_a", None, "too_large", LITERALS["odd_a"]),
                    ("counts.odd_b", None, "too_large", LITERALS["odd_b"]),
                    ("counts.odd_c", None, "too_large", LITERALS["odd_c"]),
                    ("counts.odd_d", None, "negative", LITERALS["odd_d"])]
