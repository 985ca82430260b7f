"""Service Ping end to end on real parts: HTTP collector -> Kafka -> Faust worker -> ClickHouse (chdb).

Every number read back is compared with the generator's own record of what it sent (computed while
it built each payload, not by flattening afterwards), so the check is independent of the pipeline.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from aiokafka import AIOKafkaProducer

from fleet.demo import landed, send_pings
from fleet.pings import generate_fleet
from streams.config import TOPIC_RAW_SERVICE_PING, Settings
from streams.enrich.metric_dictionary import MetricDictionary
from streams.warehouse import open_warehouse
from tests.support.pipeline import pipeline_settings, running_pipeline

pytestmark = pytest.mark.integration

INSTANCES, WEEKS, SEED = 12, 6, 7


@pytest.fixture(scope="module")
def fleet():
    pings = generate_fleet(INSTANCES, WEEKS, seed=SEED)
    assert any(not p.valid for p in pings), "the sample must include invalid pings"
    return pings


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return pipeline_settings(tmp_path_factory, "pipeline", topic_partitions=3, sink_batch_size=50)


async def _run(settings: Settings, bootstrap: str, pings, before_stop=None):
    """Start worker + collector, send the pings over HTTP, wait until all landed, stop the worker."""
    async with running_pipeline(settings, bootstrap) as pipeline:
        report = await send_pings(pipeline.url, pings, progress=False)
        await pipeline.landed()
        if before_stop:
            await before_stop()
            await pipeline.landed()
        return report


def _read(settings: Settings, sql: str, params=None):
    warehouse = open_warehouse(settings)
    try:
        return warehouse.query(sql, params)
    finally:
        warehouse.close()


def _landed(settings: Settings) -> dict[str, int]:
    warehouse = open_warehouse(settings)
    try:
        return landed(warehouse)
    finally:
        warehouse.close()


@pytest.fixture(scope="module")
def first_run(kafka_bootstrap, settings, fleet):
    report = asyncio.run(_run(settings, kafka_bootstrap, fleet))
    return report


def test_every_ping_is_accepted_with_a_positive_id(first_run, fleet):
    assert first_run.sent == len(fleet)
    assert first_run.accepted == len(fleet)
    assert all(i > 0 for i in first_run.ping_ids.values())


def test_valid_pings_land_once_and_invalid_ones_are_rejected(first_run, settings, fleet):
    valid = [p for p in fleet if p.valid]
    got = _landed(settings)
    assert got["pings"] == len(valid)
    assert got["raw_pings"] == len(valid)
    assert got["rejects"] == len(fleet) - len(valid)
    assert got["installations"] == len({(p.uuid, p.hostname) for p in valid})


def test_every_metric_value_equals_what_the_generator_sent(first_run, settings, fleet):
    rows = _read(settings, """
        SELECT p.instance_uuid, p.recorded_at, m.metrics_path, m.metric_value, m.error_value
        FROM fct_ping_instance_metric AS m FINAL
        INNER JOIN (SELECT ping_id, instance_uuid, recorded_at FROM fct_ping_instance FINAL) AS p USING ping_id
    """).rows
    stored: dict[tuple[str, str], dict[str, float]] = {}
    for uuid, recorded_at, path, value, error in rows:
        stored.setdefault((uuid, recorded_at[:19]), {})[path] = error if error else value
    for ping in (p for p in fleet if p.valid):
        key = (ping.uuid, ping.recorded_at[:19].replace("T", " "))
        assert stored.pop(key) == {path: float(v) for path, v in ping.expected_metrics.items()}, key
    assert stored == {}


def test_error_markers_are_flags_never_counts(first_run, settings, fleet):
    expected = sum(1 for p in fleet if p.valid for v in p.expected_metrics.values() if v < 0)
    assert expected > 0
    result = _read(settings, """
        SELECT countIf(error_value != 0), countIf(error_value != 0 AND metric_value IS NOT NULL),
               countIf(metric_value < 0)
        FROM fct_ping_instance_metric FINAL""").rows[0]
    assert result == (expected, 0, 0)


def test_rejects_keep_the_original_bytes_and_a_reason(first_run, settings, fleet):
    invalid = {p.body(): p.defect for p in fleet if not p.valid}
    rows = _read(settings, "SELECT original, reason, stage FROM raw_dead_letter FINAL").rows
    assert len(rows) == len(invalid)
    for original, reason, stage in rows:
        assert original.encode() in invalid  # original bytes, unchanged
        assert stage == "validate"
        assert reason.startswith("schema:")


def test_versions_and_dictionary_attributes_are_attached(first_run, settings, fleet):
    rows = _read(settings, "SELECT instance_uuid, recorded_at, version, major_version, minor_version, "
                           "patch_version FROM fct_ping_instance FINAL").rows
    by_key = {(u, r[:19]): (v, ma, mi, pa) for u, r, v, ma, mi, pa in rows}
    for ping in (p for p in fleet if p.valid):
        version, major, minor, patch = by_key[(ping.uuid, ping.recorded_at[:19].replace("T", " "))]
        assert version == ping.payload["version"]
        assert version.startswith(f"{major}.{minor}.{patch}")
    # a row is defined when the dictionary has exactly its path (the reference's join): object leaves are not
    dictionary = MetricDictionary.from_dir()
    expected = sum(1 for p in fleet if p.valid for path in p.expected_metrics if dictionary.get(path) is None)
    undefined = _read(settings, "SELECT count() FROM fct_ping_instance_metric FINAL WHERE is_defined = 0").scalar()
    assert undefined == expected > 0
    stages = _read(settings, "SELECT uniqExact(product_stage) FROM fct_ping_instance_metric FINAL").scalar()
    assert stages >= 8
    dictionary_rows = _read(settings, "SELECT count() FROM dim_ping_metric FINAL").scalar()
    assert dictionary_rows >= 100


def test_redelivery_changes_no_query_result_before_or_after_merges(first_run, kafka_bootstrap, settings, fleet):
    before = _landed(settings)
    # Exact, order-independent aggregates (a Float64 sum changes in its last digits with the summation order
    # that merges bring): a decimal sum, a count and a fingerprint of every (ping, path, value) row.
    sums = ("SELECT toString(sum(toDecimal128(ifNull(metric_value, 0), 9))), count(), "
            "groupBitXor(cityHash64(ping_id, metrics_path, metric_value, error_value)) "
            "FROM fct_ping_instance_metric FINAL")
    sums_before = _read(settings, sums).rows

    async def republish_raw_topic() -> None:
        # Every valid ping again, straight onto the raw topic (as a replay or a retrying producer would).
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, max_request_size=10 * 2**20)
        await producer.start()
        try:
            for ping in fleet:
                await producer.send_and_wait(settings.topic(TOPIC_RAW_SERVICE_PING), ping.body(),
                                             key=ping.uuid.encode() if ping.uuid else None)
        finally:
            await producer.stop()

    # The same pings again over HTTP (an instance retrying) and again straight onto the topic.
    asyncio.run(_run(settings, kafka_bootstrap, fleet, before_stop=republish_raw_topic))
    after = _landed(settings)
    # Rejects are per Kafka record, so the resent invalid pings are new dead letters; nothing else changes.
    invalid = sum(1 for p in fleet if not p.valid)
    assert after == before | {"rejects": before["rejects"] + 2 * invalid}
    assert _read(settings, sums).rows == sums_before
    plain = "SELECT count() FROM fct_ping_instance"
    assert _read(settings, plain).scalar() == before["pings"]  # no duplicate rows even without FINAL

    warehouse = open_warehouse(settings)
    try:
        for table in ("fct_ping_instance", "fct_ping_instance_metric", "raw_service_ping"):
            warehouse.execute(f"OPTIMIZE TABLE {table} FINAL")
        assert landed(warehouse) == after
        assert warehouse.query(sums).rows == sums_before
    finally:
        warehouse.close()


def test_worker_restart_resumes_without_loss_or_duplicates(first_run, kafka_bootstrap, settings):
    """A second fleet after a restart: the committed offsets let the worker continue exactly there."""
    more = generate_fleet(3, 2, seed=SEED + 1)
    before = _landed(settings)
    asyncio.run(_run(replace(settings), kafka_bootstrap, more))
    after = _landed(settings)
    assert after["pings"] == before["pings"] + sum(1 for p in more if p.valid)
