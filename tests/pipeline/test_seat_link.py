"""Seat Link: key hashing at the edge, every payload generation, and the pipeline end to end on real parts
(HTTP collector -> Kafka -> Faust worker -> chdb), including the check that the license key is never kept.

Expected values are written down by hand or computed with hashlib from the generator's own license
records, never with the pipeline's code.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import UTC, date, datetime

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from fleet.pings import generate_fleet
from fleet.seat_link import (
    AGENT_DEFECTS,
    COLLECTOR_DEFECTS,
    GENERATIONS,
    generate_seat_links,
    landed_counts,
    seat_link_summary,
    send_seat_links,
)
from streams.agents import seat_link as seat_link_agent
from streams.agents.common import Rejected
from streams.collector.common import BadRequest
from streams.collector.seat_link import hashed_report
from streams.config import TOPIC_DLQ, TOPIC_NORMALIZED_SEAT_LINK, TOPIC_RAW_SEAT_LINK, Settings
from streams.enrich.seat_link import hash_license_key, license_hashes, normalize_seat_link, validation_errors
from streams.warehouse import open_warehouse
from tests.support.pipeline import pipeline_settings, running_pipeline


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


RECEIVED = datetime(2026, 6, 1, 3, 17, tzinfo=UTC)
UUID = "9367590b-82ad-48cb-9da7-938134c29088"
UNIQUE = "a98bab6e-73e3-5689-a487-1e7b89a56901"


# --- hashing at the edge ---------------------------------------------------------------------------


def test_license_hashes_are_those_of_the_products_normalized_data():
    key = "eyJkYXRhIjoiYlR2MFBPSEJPSnNO\nak1xTmtLZHU1YzJJUWJzZzVxT3FQ\n"
    expected = (md5(key), sha256(key))  # already ends with exactly one newline
    for variant in (key, key.rstrip("\n"), key + "\n\n", key.replace("\n", "\r\n")):
        assert license_hashes(variant) == expected
    assert license_hashes("XXX") == (md5("XXX\n"), sha256("XXX\n"))


def test_hashing_replaces_the_key_in_place_and_keeps_everything_else():
    report = {"date": "2020-01-29", "license_key": "secret-key", "max_historical_user_count": 10, "active_users": 6}
    hashed = hash_license_key(report)
    assert list(hashed) == ["date", "license_key_sha256", "license_key_md5", "max_historical_user_count",
                            "active_users"]
    assert hashed["license_key_sha256"] == sha256("secret-key\n")
    assert hashed["license_key_md5"] == md5("secret-key\n")
    assert "secret-key" not in orjson.dumps(hashed).decode()
    # a report may not smuggle its own "hashes" past the collector
    forged = hash_license_key({"license_key": "k", "license_key_sha256": "0" * 64, "date": "2020-01-29"})
    assert forged["license_key_sha256"] == sha256("k\n")
    assert hash_license_key({"license_key": 12345, "date": "2020-01-29"}) == {"date": "2020-01-29"}


@pytest.mark.parametrize(("document", "reason"), [
    ({"date": "2020-01-29", "max_historical_user_count": 1}, "license_key"),
    ({"license_key": "", "date": "2020-01-29"}, "license_key"),
    ({"license_key": ["k"], "date": "2020-01-29"}, "license_key"),
    ({"license_key": "k", "max_historical_user_count": 1}, "neither timestamp nor date"),
    ({"license_key": "k", "timestamp": None, "date": ""}, "neither timestamp nor date"),
])
def test_collector_refuses_unusable_reports(document, reason):
    with pytest.raises(BadRequest) as info:
        hashed_report(document)
    assert info.value.status == 422
    assert reason in info.value.reason


# --- every generation to one shape -----------------------------------------------------------------

KEY = "generation-test-key"
BASE = {"license_md5": md5(KEY + "\n"), "license_sha256": sha256(KEY + "\n"), "instance_uuid": "",
        "unique_instance_id": "", "hostname": "", "installation_id": "", "gitlab_version": "",
        "license_user_count": None, "add_on_metrics": "[]", "received_at": "2026-06-01T03:17:00.000+00:00"}
GENERATION_CASES = [
    ("12.9", {"date": "2026-05-31", "license_key": KEY, "max_historical_user_count": 10, "active_users": 6},
     {"report_timestamp": "2026-05-31T00:00:00.000+00:00", "report_date": "2026-05-31", "active_user_count": 6,
      "max_historical_user_count": 10, "payload_generation": "12.9"}),
    ("13.0", {"timestamp": "2026-05-31T12:00:09.000Z", "license_key": KEY, "max_historical_user_count": 75,
              "active_users": 70},
     {"report_timestamp": "2026-05-31T12:00:09.000+00:00", "report_date": "2026-05-31", "active_user_count": 70,
      "max_historical_user_count": 75, "payload_generation": "13.x"}),
    ("13.x", {"timestamp": "2026-05-31T14:00:09+02:00", "license_key": KEY, "max_historical_user_count": 75,
              "billable_users_count": 71},
     {"report_timestamp": "2026-05-31T12:00:09.000+00:00", "report_date": "2026-05-31", "active_user_count": 71,
      "max_historical_user_count": 75, "payload_generation": "13.x"}),
    ("ruby Time#to_s", {"timestamp": "2026-05-31 23:59:59 UTC", "license_key": KEY, "max_historical_user_count": 5,
                        "billable_users_count": 4},
     {"report_timestamp": "2026-05-31T23:59:59.000+00:00", "report_date": "2026-05-31", "active_user_count": 4,
      "max_historical_user_count": 5, "payload_generation": "13.x"}),
    ("14.x", {"gitlab_version": "14.1.0-pre", "timestamp": "2021-06-14T12:00:09Z", "date": "2021-06-14",
              "license_key": KEY, "max_historical_user_count": 75, "billable_users_count": 75,
              "hostname": "gitlab.example.com", "instance_id": UUID},
     {"report_timestamp": "2021-06-14T12:00:09.000+00:00", "report_date": "2021-06-14", "active_user_count": 75,
      "max_historical_user_count": 75, "payload_generation": "14.x", "gitlab_version": "14.1.0-pre",
      "hostname": "gitlab.example.com", "instance_uuid": UUID,
      "installation_id": md5(f"{UUID}|gitlab.example.com")}),
    ("14.x license_md5", {"gitlab_version": "14.3.2-ee", "timestamp": "2021-10-01T12:00:00Z", "license_key": KEY,
                          "license_md5": md5(KEY + "\n"), "max_historical_user_count": 3,
                          "billable_users_count": None, "hostname": "h.example", "instance_id": UUID},
     {"report_timestamp": "2021-10-01T12:00:00.000+00:00", "report_date": "2021-10-01", "active_user_count": None,
      "max_historical_user_count": 3, "payload_generation": "14.x", "gitlab_version": "14.3.2-ee",
      "hostname": "h.example", "instance_uuid": UUID, "installation_id": md5(f"{UUID}|h.example")}),
    ("add_on_metrics", {"gitlab_version": "17.9.1", "timestamp": "2026-05-31T12:00:00Z", "license_key": KEY,
                        "max_historical_user_count": 120, "billable_users_count": 110, "hostname": "git.a.example",
                        "instance_id": UUID, "license_user_count": 150,
                        "add_on_metrics": [{"purchased_seats": 100, "add_on_type": "duo_pro", "assigned_seats": 50}]},
     {"report_timestamp": "2026-05-31T12:00:00.000+00:00", "report_date": "2026-05-31", "active_user_count": 110,
      "max_historical_user_count": 120, "payload_generation": "add_on_metrics", "gitlab_version": "17.9.1",
      "hostname": "git.a.example", "instance_uuid": UUID, "installation_id": md5(f"{UUID}|git.a.example"),
      "license_user_count": 150,
      "add_on_metrics": '[{"add_on_type":"duo_pro","assigned_seats":50,"purchased_seats":100}]'}),
    ("18.1+ (the current doc example)", {
        "gitlab_version": "14.1.0-pre", "timestamp": "2021-06-14T12:00:09Z", "date": "2021-06-14",
        "license_key": KEY, "max_historical_user_count": 75, "billable_users_count": 75,
        "hostname": "gitlab.example.com", "instance_id": UUID, "unique_instance_id": UNIQUE,
        "add_on_metrics": [{"add_on_type": "duo_enterprise", "purchased_seats": 100, "assigned_seats": 50}]},
     {"report_timestamp": "2021-06-14T12:00:09.000+00:00", "report_date": "2021-06-14", "active_user_count": 75,
      "max_historical_user_count": 75, "payload_generation": "18.1+", "gitlab_version": "14.1.0-pre",
      "hostname": "gitlab.example.com", "instance_uuid": UUID, "unique_instance_id": UNIQUE,
      "installation_id": md5(f"{UUID}|gitlab.example.com"),
      "add_on_metrics": '[{"add_on_type":"duo_enterprise","assigned_seats":50,"purchased_seats":100}]'}),
]


@pytest.mark.parametrize(("name", "payload", "expected"), GENERATION_CASES, ids=[c[0] for c in GENERATION_CASES])
def test_every_generation_normalizes_to_one_shape(name, payload, expected):
    report = hash_license_key(payload)
    assert validation_errors(report) == []
    record = normalize_seat_link(report, RECEIVED)
    seat_link_id = record.pop("seat_link_id")
    assert 0 < seat_link_id < 2**63
    assert record == BASE | expected


def test_a_report_sent_twice_has_one_id_and_other_reports_differ():
    def id_of(payload: dict) -> int:
        return normalize_seat_link(hash_license_key(payload), RECEIVED)["seat_link_id"]

    report = {"timestamp": "2026-05-31T12:00:09Z", "license_key": KEY, "instance_id": UUID}
    assert id_of(report) == id_of(dict(report)) == id_of(report | {"timestamp": "2026-05-31T12:00:09.000Z"})
    assert id_of(report) == id_of(report | {"license_key": KEY + "\r\n", "billable_users_count": 5})
    others = [report | {"timestamp": "2026-06-01T12:00:09Z"}, report | {"license_key": KEY + "2"},
              report | {"instance_id": "another"}]
    assert len({id_of(report)} | {id_of(other) for other in others}) == 4


@pytest.mark.parametrize(("change", "field"), [
    ({"timestamp": "yesterday at noon"}, "timestamp"),
    ({"billable_users_count": "75"}, "billable_users_count"),
    ({"max_historical_user_count": -3}, "max_historical_user_count"),
    ({"billable_users_count": 2**70}, "billable_users_count"),
    ({"add_on_metrics": {"duo_pro": 5}}, "add_on_metrics"),
    ({"add_on_metrics": [{"purchased_seats": 5}]}, "add_on_metrics.0"),
    ({"gitlab_version": "fourteen"}, "gitlab_version"),
    ({"instance_id": "not a uuid!"}, "instance_id"),
])
def test_schema_names_what_is_wrong(change, field):
    report = hash_license_key({"timestamp": "2026-05-31T12:00:09Z", "license_key": KEY} | change)
    errors = validation_errors(report)
    assert errors and errors[0].startswith(field + ":"), errors


def test_agent_rejects_with_a_stage_and_never_echoes_the_key():
    headers = {"received_at": RECEIVED.isoformat()}
    cases = {
        b"{not json": "validate",
        b"[1, 2]": "validate",
        orjson.dumps({"license_key_sha256": "0" * 64, "license_key_md5": "0" * 32}): "validate",  # no date
        orjson.dumps({"date": "2026-02-30", "license_key": "k", "max_historical_user_count": 1}): "normalize",
    }
    for value, stage in cases.items():
        with pytest.raises(Rejected) as info:
            seat_link_agent.normalize(value, headers)
        assert info.value.stage == stage, value
    clear = orjson.dumps({"date": "2026-05-31", "license_key": "in-clear-key", "active_users": "x"})
    with pytest.raises(Rejected) as info:
        seat_link_agent.normalize(clear, headers)
    assert "in-clear-key" not in info.value.reason
    kept = seat_link_agent.redact(clear)
    assert b"in-clear-key" not in kept and orjson.loads(kept)["license_key_sha256"] == sha256("in-clear-key\n")
    assert seat_link_agent.redact(b"{broken") == b"{broken"


def test_agent_keeps_the_published_bytes_as_the_payload():
    published = orjson.dumps(hash_license_key(GENERATION_CASES[0][1]))
    record = seat_link_agent.normalize(published, {"received_at": RECEIVED.isoformat()})
    assert record["payload"] == published.decode()
    assert record["report_date"] == "2026-05-31"


# --- the sample fleet's reports --------------------------------------------------------------------


@pytest.fixture(scope="module")
def fleet_pings():
    return generate_fleet(16, 4, seed=5)


@pytest.fixture(scope="module")
def fleet_reports(fleet_pings):
    return generate_seat_links(16, 4, seed=5, pings=fleet_pings)


def test_fleet_reports_hash_to_the_license_hashes_in_the_pings(fleet_reports, fleet_pings):
    ping_hashes = {(p.uuid, p.payload["license_md5"], p.payload["license_sha256"]) for p in fleet_pings
                   if "license_md5" in p.payload}
    landed = [r for r in fleet_reports if r.expected]
    assert landed
    for report in landed:
        data = report.license_key.replace("\r\n", "\n").rstrip("\n") + "\n"  # License#normalized_data
        key_md5, key_sha256 = md5(data), sha256(data)
        expected = report.expected
        assert (expected["license_md5"], expected["license_sha256"]) == (key_md5, key_sha256)
        assert (report.instance_uuid, key_md5, key_sha256) in ping_hashes


def test_fleet_reports_cover_generations_defects_and_resends():
    reports = generate_seat_links(40, 6, seed=3)
    summary = seat_link_summary(reports)
    assert set(summary["generations"]) == set(GENERATIONS)
    assert {r.defect for r in reports} == set(COLLECTOR_DEFECTS + AGENT_DEFECTS) | {None}
    assert summary["resent"] > 0
    assert summary["sent"] == summary["accepted"] + summary["refused_by_collector"]
    assert summary["accepted"] == summary["landed"] + summary["dead_letters"] + sum(
        1 for r in reports if r.resend and not r.defect)
    assert all(r.status == 200 for r in reports if r.defect in AGENT_DEFECTS)
    assert all(r.status in (400, 422) for r in reports if r.defect in COLLECTOR_DEFECTS)
    assert [r.body for r in generate_seat_links(40, 6, seed=3)] == [r.body for r in reports]  # deterministic


# --- end to end ------------------------------------------------------------------------------------

K = [f"integration-license-{n}-0123456789abcdef" for n in range(12)]


def _payloads() -> list[tuple[dict | bytes, int, dict | None]]:
    """(payload, HTTP status, the fct_seat_link row it must become) for every generation and failure."""
    ts = "2026-05-31T12:00:09Z"
    rows: list[tuple[dict | bytes, int, dict | None]] = []
    for (name, payload, expected), key in zip(GENERATION_CASES, K, strict=False):
        payload = payload | {"license_key": key + ("\n" if name == "13.x" else "")}
        rows.append((payload, 200, BASE | expected | {"license_md5": md5(key + "\n"),
                                                      "license_sha256": sha256(key + "\n")}))
    bad_agent = [
        {"timestamp": "yesterday at noon", "license_key": K[8], "billable_users_count": 1},
        {"timestamp": ts, "license_key": K[9], "billable_users_count": "75"},
        {"timestamp": ts, "license_key": K[10], "add_on_metrics": {"duo_pro": 1}},
        {"timestamp": ts, "license_key": K[11], "gitlab_version": "fourteen"},
    ]
    rows += [(payload, 200, None) for payload in bad_agent]
    rows += [
        (b'{"timestamp": "' + ts.encode() + b'", "license_key": "' + K[0].encode() + b'"', 400, None),  # cut off
        (b"[]", 422, None),
        ({"timestamp": ts, "max_historical_user_count": 1}, 422, None),
        ({"timestamp": ts, "license_key": ""}, 422, None),
        ({"license_key": K[1], "billable_users_count": 3}, 422, None),
    ]
    return rows


class _Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return pipeline_settings(tmp_path_factory, "seat", topic_partitions=3, sink_batch_size=50)


@pytest.fixture(scope="module")
def pipeline_run(kafka_bootstrap, settings):
    """Worker + collector; every payload over HTTP, some twice in the same burst, some again after landing."""
    hand = _payloads()
    fleet = generate_seat_links(10, 2, seed=11)
    bodies = [p if isinstance(p, bytes) else orjson.dumps(p) for p, _, _ in hand]
    first = bodies + [bodies[2]] + [r.body for r in fleet]  # 13.x twice in one burst
    again = [bodies[6], bodies[7]] + [r.body for r in fleet if r.expected][:20]  # later, across batches
    captured = _Captured()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(captured)
    root.setLevel(logging.DEBUG)

    async def run():
        async with running_pipeline(settings, kafka_bootstrap) as pipeline:
            reports = [await send_seat_links(pipeline.url, first)]
            await pipeline.landed()
            reports.append(await send_seat_links(pipeline.url, again))
            await pipeline.landed()
            return reports

    try:
        reports = asyncio.run(run())
    finally:
        root.removeHandler(captured)
        root.setLevel(old_level)
    return {"hand": hand, "fleet": fleet, "first": first, "again": again, "reports": reports,
            "logs": captured.lines}


def _query(settings: Settings, sql: str, params=None):
    warehouse = open_warehouse(settings)
    try:
        return warehouse.query(sql, params).dicts()
    finally:
        warehouse.close()


def _comparable(row: dict) -> dict:
    """A warehouse row in the generator's terms (ints as ints, JSON parsed, times in ISO form)."""
    out = dict(row)
    for name in ("active_user_count", "max_historical_user_count", "license_user_count"):
        out[name] = None if out[name] is None else int(out[name])
    out["add_on_metrics"] = orjson.loads(out["add_on_metrics"])
    out["report_timestamp"] = datetime.fromisoformat(out["report_timestamp"]).replace(tzinfo=UTC)
    out["report_date"] = date.fromisoformat(out["report_date"])
    return out


COLUMNS = ("license_md5", "license_sha256", "instance_uuid", "unique_instance_id", "hostname", "installation_id",
           "gitlab_version", "report_timestamp", "report_date", "active_user_count", "max_historical_user_count",
           "license_user_count", "add_on_metrics", "payload_generation")


@pytest.mark.integration
def test_collector_answers_like_the_customers_portal(pipeline_run):
    hand, fleet = pipeline_run["hand"], pipeline_run["fleet"]
    first, again = pipeline_run["reports"]
    expected_first = [status for _, status, _ in hand] + [200] + [r.status for r in fleet]
    assert first.statuses == expected_first
    assert again.statuses == [200] * len(pipeline_run["again"])
    assert first.accepted == expected_first.count(200)
    assert all(f.split(":")[0] in ("400", "422") and len(f) > 6 for f in first.failures)


def _expected(row: dict) -> dict:
    """A generator/hand-written expectation in the same terms as `_comparable`."""
    out = {name: row[name] for name in COLUMNS}
    if isinstance(out["report_timestamp"], str):
        out["report_timestamp"] = datetime.fromisoformat(out["report_timestamp"])
        out["report_date"] = date.fromisoformat(out["report_date"])
        out["add_on_metrics"] = orjson.loads(out["add_on_metrics"])
    return out


@pytest.mark.integration
def test_every_valid_report_lands_once_with_exact_values(pipeline_run, settings):
    expected = [e for _, _, e in pipeline_run["hand"] if e] + [r.expected for r in pipeline_run["fleet"] if r.expected]

    def order(row: dict) -> tuple:
        return (row["license_sha256"], row["report_timestamp"], row["instance_uuid"])

    wanted = sorted((_expected(e) for e in expected), key=order)
    rows = _query(settings, f"SELECT {', '.join(COLUMNS)} FROM fct_seat_link FINAL")
    assert sorted((_comparable(r) for r in rows), key=order) == wanted
    plain = _query(settings, "SELECT count() AS n, uniqExact(seat_link_id) AS ids FROM fct_seat_link")[0]
    assert int(plain["n"]) == int(plain["ids"]) == len(expected)  # no duplicate row even without FINAL
    warehouse = open_warehouse(settings)
    try:
        counts = landed_counts(warehouse)
    finally:
        warehouse.close()
    fleet = seat_link_summary(pipeline_run["fleet"])
    assert counts["seat_links"] == len(expected) == fleet["landed"] + sum(1 for *_, e in pipeline_run["hand"] if e)
    assert counts["seat_link_rejects"] == fleet["dead_letters"] + 4


@pytest.mark.integration
def test_bad_reports_are_dead_lettered_with_hashed_bytes_and_a_reason(pipeline_run, settings):
    agent_bad = [p for p, status, e in pipeline_run["hand"] if status == 200 and e is None]
    fleet_bad = [r for r in pipeline_run["fleet"] if r.status == 200 and r.defect]
    rows = _query(settings, "SELECT original, stage, reason FROM raw_dead_letter FINAL WHERE source = 'seat_link'")
    assert len(rows) == len(agent_bad) + len(fleet_bad) == 4 + seat_link_summary(pipeline_run["fleet"])["dead_letters"]
    expected_hashes = sorted([sha256(p["license_key"] + "\n") for p in agent_bad]
                             + [sha256(r.license_key.replace("\r\n", "\n").rstrip("\n") + "\n") for r in fleet_bad])
    assert sorted(orjson.loads(r["original"])["license_key_sha256"] for r in rows) == expected_hashes
    for row in rows:
        assert "license_key" not in orjson.loads(row["original"])
        assert row["stage"] == "validate" and row["reason"].startswith("schema:")


@pytest.mark.integration
def test_the_license_key_is_never_published_stored_or_logged(pipeline_run, settings, kafka_bootstrap):
    keys = [p["license_key"] for p, _, _ in pipeline_run["hand"] if isinstance(p, dict) and p.get("license_key")]
    keys += [K[0]] + sorted({r.license_key for r in pipeline_run["fleet"]})
    needles = {k.strip().encode() for k in keys}
    assert len(needles) > 10

    async def topic_bytes() -> bytes:
        topics = [settings.topic(t) for t in (TOPIC_RAW_SEAT_LINK, TOPIC_NORMALIZED_SEAT_LINK, TOPIC_DLQ)]
        consumer = AIOKafkaConsumer(*topics, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                                    enable_auto_commit=False, group_id=None)
        await consumer.start()
        chunks: list[bytes] = []
        try:
            while batch := await consumer.getmany(timeout_ms=3000):
                for messages in batch.values():
                    for m in messages:
                        chunks += [m.key or b"", m.value or b""] + [k.encode() + v for k, v in m.headers]
        finally:
            await consumer.stop()
        return b"\n".join(chunks)

    published = asyncio.run(topic_bytes())
    accepted = sum(r.accepted for r in pipeline_run["reports"])
    assert published.count(b'"license_key_sha256"') >= accepted  # every accepted report is in there, hashed

    warehouse = open_warehouse(settings)
    try:
        tables = [r[0] for r in warehouse.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase() AND engine NOT LIKE '%View%'").rows]
        stored = "\n".join(str(warehouse.query(f"SELECT * FROM {t}").rows) for t in tables).encode()
    finally:
        warehouse.close()
    assert "fct_seat_link" in tables and "raw_dead_letter" in tables
    assert sha256(K[0] + "\n").encode() in stored  # the search does find what is there

    on_disk = b"".join(p.read_bytes() for p in settings.data_dir.rglob("*") if p.is_file())
    logs = "\n".join(pipeline_run["logs"]).encode()
    assert len(pipeline_run["logs"]) > 0
    for needle in needles:
        for where, haystack in (("topics", published), ("tables", stored), ("files", on_disk), ("logs", logs)):
            assert needle not in haystack, f"license key found in {where}"
