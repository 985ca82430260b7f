"""Reference data: CSV validation, the compacted-topic load through the real broker and a worker process, and
the license -> subscription -> account match rate against an independent computation.

The expected match outcome of every ping and Seat Link report is derived from the generator's *case* for its
license (what the sample deliberately breaks, see fleet/reference.py), not from the matching rule, so the
check does not share logic with the SQL (prep_license_match); the per-ping check restates the rule over the
generator's reference rows (`_expected_match`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from fleet.demo import wait_until_landed
from fleet.pings import generate_fleet
from fleet.reference import fleet_reference
from streams.config import REFERENCE_TOPICS, TOPIC_REF_ACCOUNTS, TOPIC_REF_LICENSES, Settings
from streams.kafka.admin import end_offsets
from streams.kafka.topics import ensure_topics
from streams.reference.kinds import KINDS, kind_named
from streams.reference.load import CsvValidationError, load_csv, match_rate, publish, read_csv
from streams.warehouse import Warehouse, open_warehouse
from streams.worker import WorkerProcess
from tests.support.fresh import fresh_warehouse
from tests.support.usage_samples import land_pings, land_seat_links, load_reference, seat_links

INSTANCES, WEEKS, SEED = 16, 10, 11
LICENSES = KINDS["licenses"]
MD5 = "0123456789abcdef0123456789abcdef"
NEWER = datetime(2099, 1, 1, tzinfo=UTC)  # a source version later than any record timestamp of the test
SHA = "ab" * 32


@contextlib.contextmanager
def migrated_warehouse() -> Iterator[Warehouse]:
    warehouse = fresh_warehouse()
    try:
        yield warehouse
    finally:
        warehouse.close()


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "input.csv"
    path.write_text(text)
    return path


# --------------------------------------------------------------------------------------------- CSV validation


def test_csv_header_problems_name_the_column_and_refuse_license_keys(tmp_path):
    path = _csv(tmp_path, "license_key,seats,license_plan\nabc,1,premium\n")
    with pytest.raises(CsvValidationError) as error:
        read_csv(LICENSES, path)
    assert error.value.errors == [
        "line 1 (header), column license_key: license keys must never be loaded: give license_md5/license_sha256",
        "line 1 (header), column seats: unknown column for licenses; allowed: dim_license_id, dim_subscription_id, "
        "expires_at, is_trial, license_md5, license_plan, license_sha256, license_user_count, starts_at, updated_at",
        "line 1 (header), column dim_license_id: required column is missing",
        "line 1 (header), column license_md5: licenses need a license_md5 or a license_sha256 column",
    ]
    assert "nothing loaded" in str(error.value)


def test_csv_value_problems_name_line_and_column_and_nothing_is_loaded(tmp_path):
    path = _csv(tmp_path, (
        "dim_license_id,license_md5,license_sha256,license_user_count,starts_at,is_trial\n"
        f"L1,{MD5},,10,2026-01-01,false\n"
        "L2,XYZ,,-5,2026-13-01,maybe\n"
        f"L3,,{SHA[:-1]},1,,\n"
        "L4,,,1,,\n"
        f"L1,{MD5},,3,,\n"
        "L5,too,few\n"
        f",{MD5},,1,,\n"
    ))
    with pytest.raises(CsvValidationError) as error:
        read_csv(LICENSES, path)
    assert error.value.errors == [
        "line 3, column license_md5: not a 32-character hex md5: 'xyz'",
        "line 3, column license_user_count: not a whole number >= 0: '-5'",
        "line 3, column is_trial: not a boolean (use true/false or 1/0): 'maybe'",
        "line 3, column starts_at: not a date (YYYY-MM-DD): '2026-13-01'",
        f"line 4, column license_sha256: not a 64-character hex sha256: '{SHA[:-1]}'",
        "line 5, column license_md5: a license needs license_md5 or license_sha256",
        "line 6, column dim_license_id: duplicate 'L1' (first on line 2)",
        "line 7: 3 fields, the header has 6",
        "line 8, column dim_license_id: required value is empty",
    ]
    with migrated_warehouse() as warehouse:
        with pytest.raises(CsvValidationError):
            load_csv(warehouse, LICENSES, path)
        assert warehouse.query("SELECT count() FROM dim_license").scalar() == 0


def test_unknown_kind_and_other_kinds_validate_their_own_columns(tmp_path):
    with pytest.raises(ValueError, match="unknown reference kind 'seats'"):
        kind_named("seats")
    path = _csv(tmp_path, "license_hash,dim_subscription_id\nnot-a-hash,S1\n" + MD5 + ",\n")
    with pytest.raises(CsvValidationError) as error:
        read_csv(kind_named("account-mappings"), path)
    assert error.value.errors == [
        "line 2, column license_hash: not a license md5 (32 hex) or sha256 (64 hex): 'not-a-hash'",
        "line 3, column dim_subscription_id: required value is empty",
    ]
    namespaces = _csv(tmp_path, "namespace_id,namespace_name,created_at\n12,acme,2026-01-02T03:04:05Z\nx,b,\n")
    with pytest.raises(CsvValidationError) as error:
        read_csv(kind_named("namespaces"), namespaces)
    assert error.value.errors == ["line 3, column namespace_id: not a whole number >= 0: 'x'"]


def test_loading_the_same_file_twice_changes_nothing_and_a_later_load_wins(tmp_path):
    first = _csv(tmp_path, f"dim_license_id,license_md5,license_user_count\nL1,{MD5},10\nL2,{MD5[::-1]},20\n")
    with migrated_warehouse() as warehouse:
        load_csv(warehouse, LICENSES, first, datetime(2026, 1, 1, tzinfo=UTC))
        load_csv(warehouse, LICENSES, first, datetime(2026, 1, 1, tzinfo=UTC))
        sql = "SELECT dim_license_id, license_user_count FROM dim_license FINAL ORDER BY 1"
        assert warehouse.query(sql).rows == [("L1", 10), ("L2", 20)]
        second = _csv(tmp_path, f"dim_license_id,license_md5,license_user_count\nL1,{MD5},15\n")
        load_csv(warehouse, LICENSES, second, datetime(2026, 2, 1, tzinfo=UTC))
        assert warehouse.query(sql).rows == [("L1", 15), ("L2", 20)]


def test_sample_reference_csvs_round_trip_and_cover_every_case(tmp_path):
    ref = fleet_reference(INSTANCES, WEEKS, SEED)
    for name, path in ref.write_csvs(tmp_path).items():
        assert read_csv(KINDS[name], path) == ref.rows[name], name
    assert set(ref.cases.values()) == {"matched", "trial", "not_in_customersdot", "no_account", "stale_subscription"}
    text = "\n".join(path.read_text() for path in tmp_path.glob("*.csv"))
    assert "denomas-license:" not in text  # only hashes of license keys, never the keys


# --------------------------------------------------------------------------------------------- match rates


def expected_outcome(case: str | None, imported: bool) -> tuple[int, int, int, int, int]:
    """(has_license, license_found, mapped_to_subscription, subscription_found, account_found) by the generator's
    case of the license: what fleet_reference deliberately breaks, and what the account-mapping import fixes."""
    if case is None:
        return (0, 0, 0, 0, 0)
    return {
        "matched": (1, 1, 1, 1, 1),
        "trial": (1, 1, 0, 0, 0),
        "not_in_customersdot": (1, 0, int(imported), int(imported), int(imported)),
        "no_account": (1, 1, 1, 1, int(imported)),
        "stale_subscription": (1, 1, 1, 0, 0),
    }[case]


def expected_report(records: list[tuple[str, str, str | None]], cases: dict[str, str], imported: bool) -> list:
    """Rows of rpt_license_match_rate from (month, source, license md5) of every landed record, in plain Python."""
    totals: dict[tuple[str, str], list[int]] = {}
    for month, source, md5 in records:
        counts = totals.setdefault((month, source), [0] * 6)
        counts[0] += 1
        for i, flag in enumerate(expected_outcome(cases.get(md5) if md5 else None, imported)):
            counts[i + 1] += flag
    rows = []
    for (month, source), (records_, with_license, lic, mapped, sub, acc) in sorted(totals.items()):
        rates = (sub / with_license, acc / with_license) if with_license else (0, 0)
        rows.append((month, source, records_, with_license, lic, mapped, sub, acc, *rates))
    return rows


def _landed_records(pings, links) -> list[tuple[str, str, str | None]]:
    records = [(p.recorded_at[:7] + "-01", "service_ping", p.payload.get("license_md5"))
               for p in pings if p.valid]
    records += [(row["report_date"].isoformat()[:7] + "-01", "seat_link", row["license_md5"]) for row in links]
    return records


def _first(*values: str) -> str:
    return next((v for v in values if v), "")


def _expected_match(ref, with_mappings: bool, md5: str, sha: str, reported: str) -> tuple:
    """The reference model's rule over the generator's rows: the license by md5, else sha256; its subscription, else
    the mapping's (either hash), else the reported one; the subscription's account, else its billing account's, else
    the mapping's."""
    rows = ref.rows
    licenses = {r["dim_license_id"]: r for r in rows["licenses"]}
    by_hash = {h: r["dim_license_id"] for r in rows["licenses"] for h in (r["license_md5"], r["license_sha256"]) if h}
    mappings = {r["license_hash"]: r for r in rows["account_mappings"]} if with_mappings else {}
    subscriptions = {r["dim_subscription_id"]: r for r in rows["subscriptions"]}
    billing = {r["dim_billing_account_id"]: r for r in rows["billing_accounts"]}
    found = [licenses.get(by_hash.get(h, ""), {}) for h in (md5, sha) if h]
    mapped = [mappings.get(h, {}) for h in (md5, sha) if h]
    license_sub = _first(*(r.get("dim_subscription_id", "") for r in found))
    mapping_sub = _first(*(r.get("dim_subscription_id", "") for r in mapped))
    subscription_id, source = next(((s, name) for s, name in ((license_sub, "license"), (mapping_sub, "mapping"),
                                                              (reported, "reported")) if s), ("", ""))
    subscription = subscriptions.get(subscription_id) if subscription_id else None
    account = ""
    if subscription:
        paying = billing.get(subscription.get("dim_billing_account_id") or "") or {}
        account = _first(subscription.get("dim_crm_account_id", ""), paying.get("dim_crm_account_id", ""))
    account = _first(account, *(r.get("dim_crm_account_id", "") for r in mapped))
    is_account_found = bool(account) and account in {r["dim_crm_account_id"] for r in rows["accounts"]}
    return (_first(*(r.get("dim_license_id", "") for r in found)), subscription_id, source,
            int(bool(license_sub or mapping_sub)), int(subscription is not None), account, int(is_account_found))


def _check_match_per_ping(warehouse, ref, pings, imported: bool) -> None:
    """prep_ping_subscription gives every ping the license, subscription and account the rule gives."""
    stored = {int(r[0]): r[1:] for r in warehouse.query(
        "SELECT p.ping_id, s.dim_license_id, s.dim_subscription_id, s.subscription_source, "
        "s.is_license_mapped_to_subscription, s.is_subscription_found, s.dim_crm_account_id, s.is_account_found "
        "FROM prep_ping_subscription AS s INNER JOIN (SELECT ping_id FROM fct_ping_instance FINAL) AS p "
        "USING ping_id").rows}
    from streams.records import ping_id_for

    for ping in (p for p in pings if p.valid):
        payload = ping.payload
        expected = _expected_match(ref, imported, payload.get("license_md5") or "",
                                   payload.get("license_sha256") or "", payload.get("license_subscription_id") or "")
        assert stored[ping_id_for(payload, ping.body())] == expected, ping.uuid


def test_match_rate_report_equals_plain_python_before_and_after_the_account_mapping_import(tmp_path):
    pings = generate_fleet(INSTANCES, WEEKS, seed=SEED)
    links = seat_links(INSTANCES, WEEKS, SEED)
    ref = fleet_reference(INSTANCES, WEEKS, SEED)
    records = _landed_records(pings, links)
    # The sample exercises the OR: licenses that CustomersDot knows only by md5 and only by sha256 are pinged.
    known = {r["license_md5"] or r["license_sha256"]: r for r in ref.rows["licenses"]}
    only = Counter("md5" if not r["license_sha256"] else "sha256" if not r["license_md5"] else "both"
                   for r in known.values())
    assert only["md5"] and only["sha256"] and only["both"]
    with migrated_warehouse() as warehouse:
        land_pings(warehouse, pings)
        land_seat_links(warehouse, links)
        load_reference(warehouse, ref, tmp_path, ref.base_kinds())
        before = match_rate(warehouse).rows
        assert before == expected_report(records, ref.cases, imported=False)
        _check_match_per_ping(warehouse, ref, pings, imported=False)

        load_reference(warehouse, ref, tmp_path, ["account_mappings"])
        after = match_rate(warehouse).rows
        assert after == expected_report(records, ref.cases, imported=True)
        _check_match_per_ping(warehouse, ref, pings, imported=True)

    total = {name: (sum(r[6] for r in rows), sum(r[7] for r in rows), sum(r[3] for r in rows))
             for name, rows in (("before", before), ("after", after))}
    assert total["after"][0] > total["before"][0] and total["after"][1] > total["before"][1]
    assert total["after"][0] < total["after"][2]  # trials and stale subscriptions stay unmatched
    assert {r[1] for r in before} == {"service_ping", "seat_link"} and len({r[0] for r in before}) == 3


# --------------------------------------------------------------------------------------------- compacted topics


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def _topic_configs(bootstrap: str, topics: list[str]) -> dict[str, dict[str, str]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        answers = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in topics])
    finally:
        await admin.close()
    configs = {}
    for answer in answers:
        for _code, _msg, _type, name, entries in answer.resources:
            configs[name] = {entry[0]: entry[1] for entry in entries}
    return configs


async def _latest_per_key(bootstrap: str, topic: str) -> dict[str, object]:
    """Last value per key of a topic (what compaction keeps), decoded from JSON; None for tombstones."""
    ends = await end_offsets(bootstrap, [topic])
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    latest: dict[str, object] = {}
    try:
        consumer.assign(list(ends))
        await consumer.seek_to_beginning(*ends)
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    latest[orjson.loads(record.key)] = None if record.value is None else orjson.loads(record.value)
    finally:
        await consumer.stop()
    return latest


async def _run_worker(settings: Settings, bootstrap: str) -> None:
    worker = WorkerProcess(settings, bootstrap)
    worker.start()
    try:
        await wait_until_landed(settings, bootstrap, timeout=240)
        assert worker.alive(), worker.log_tail()
    finally:
        assert worker.stop() is not None


def _license(license_id: str, md5: str, sha256: str, subscription: str, seats: int, **extra) -> dict:
    return {"dim_license_id": license_id, "license_md5": md5, "license_sha256": sha256,
            "dim_subscription_id": subscription, "license_user_count": seats, "license_plan": "premium",
            "is_trial": 0, "starts_at": None, "expires_at": None, "updated_at": None} | extra


@pytest.mark.integration
def test_compacted_topics_load_updates_and_tombstones_into_faust_tables_and_dims(kafka_bootstrap, tmp_path):
    settings = Settings.from_env(data_dir=tmp_path / "data", topic_prefix=f"t-ref-{tmp_path.name}.",
                                 app_id=f"test-ref-{tmp_path.name}", topic_partitions=2)
    md5s = [f"{i:032x}" for i in (1, 2, 3)]
    shas = [f"{i:064x}" for i in (1, 2, 3)]
    accounts = kind_named("accounts")

    async def scenario() -> dict[str, dict[str, object]]:
        await ensure_topics(kafka_bootstrap, settings)
        configs = await _topic_configs(kafka_bootstrap, [settings.topic(t) for t in REFERENCE_TOPICS])
        assert {name: c["cleanup.policy"] for name, c in configs.items()} == {
            settings.topic(t): "compact" for t in REFERENCE_TOPICS}
        await publish(settings, kafka_bootstrap, LICENSES, [
            _license("L1", md5s[0], shas[0], "S1", 10),
            _license("L2", md5s[1], "", "S2", 20),
            _license("L3", "", shas[2], "", 5, is_trial=1),
        ])
        await publish(settings, kafka_bootstrap, accounts, [
            {"dim_crm_account_id": "A1", "account_name": "Acme"},
            {"dim_crm_account_id": "A2", "account_name": "Globex"},
        ])
        # An update of L1 (new subscription and seats, its own version), a tombstone for L2 and for A2, and an
        # update of L3 older than the version already held (out of order: ignored).
        await publish(settings, kafka_bootstrap, LICENSES,
                      [_license("L1", md5s[0], "", "S9", 12, updated_at=NEWER),
                       _license("L3", "", shas[2], "S3", 99, updated_at=_t("2020-01-01T00:00:00"))], deletes=["L2"])
        await publish(settings, kafka_bootstrap, accounts, [], deletes=["A2"])
        # Records that cannot be used: not JSON, a bad hash, a key that disagrees with the id in the value.
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            topic = settings.topic(TOPIC_REF_LICENSES)
            await producer.send_and_wait(topic, b"{not json", key=b"L7")
            await producer.send_and_wait(topic, b'{"license_md5": "nothex"}', key=b"L8")
            await producer.send_and_wait(settings.topic(TOPIC_REF_ACCOUNTS),
                                         b'{"dim_crm_account_id": "A5", "account_name": "x"}', key=b"A6")
        finally:
            await producer.stop()
        await _run_worker(settings, kafka_bootstrap)
        changelog = {name: await _latest_per_key(kafka_bootstrap, f"{settings.app_id}-ref_{name}-changelog")
                     for name in ("licenses", "license_by_hash", "accounts")}
        return changelog

    changelog = asyncio.run(scenario())
    # Faust tables (their changelogs hold the tables' state): the update applied, the tombstones deleted.
    licenses = changelog["licenses"]
    assert set(licenses) == {"L1", "L2", "L3"} and licenses["L2"] is None
    assert licenses["L1"]["dim_subscription_id"] == "S9" and licenses["L1"]["license_user_count"] == 12
    assert licenses["L1"]["updated_at"] == "2099-01-01T00:00:00+00:00"
    assert licenses["L3"]["is_trial"] == 1 and licenses["L3"]["license_user_count"] == 5
    by_hash = changelog["license_by_hash"]
    assert {k: v for k, v in by_hash.items() if v is not None} == {md5s[0]: "L1", shas[2]: "L3"}
    assert by_hash[md5s[1]] is None and by_hash[shas[0]] is None  # L2 deleted; L1's update dropped its sha256
    assert changelog["accounts"]["A2"] is None and changelog["accounts"]["A1"]["account_name"] == "Acme"

    warehouse = open_warehouse(settings)
    try:
        rows = warehouse.query("SELECT dim_license_id, license_md5, license_sha256, dim_subscription_id, "
                               "license_user_count, is_trial FROM dim_license FINAL ORDER BY 1").rows
        l1_version = warehouse.query("SELECT toString(updated_at) FROM dim_license FINAL "
                                     "WHERE dim_license_id = 'L1'").scalar()
        deleted = warehouse.query("SELECT dim_license_id FROM dim_license WHERE is_deleted = 1").rows
        account_rows = warehouse.query("SELECT dim_crm_account_id, account_name FROM dim_crm_account FINAL").rows
        letters = warehouse.query("SELECT source, stage, reason, original FROM raw_dead_letter FINAL "
                                  "WHERE source LIKE 'reference.%' ORDER BY original").rows
        by_hash_sql = warehouse.query("SELECT license_hash, dim_license_id FROM prep_license_by_hash "
                                      "ORDER BY 2").rows
    finally:
        warehouse.close()
    assert rows == [("L1", md5s[0], "", "S9", 12, 0), ("L3", "", shas[2], "", 5, 1)]
    assert l1_version == "2099-01-01 00:00:00.000"
    assert set(deleted) == {("L2",)}  # the tombstone is stored as a deletion row; FINAL hides L2
    assert account_rows == [("A1", "Acme")]
    assert by_hash_sql == [(md5s[0], "L1"), (shas[2], "L3")]
    by_original = {original: (source, stage, reason) for source, stage, reason, original in letters}
    assert len(letters) == 3 and set(by_original) == {
        '{"dim_crm_account_id": "A5", "account_name": "x"}', "{not json", '{"license_md5": "nothex"}'}
    source, stage, reason = by_original['{"dim_crm_account_id": "A5", "account_name": "x"}']
    assert (source, stage) == ("reference.accounts", "validate")
    assert reason == "accounts: key 'A6' and dim_crm_account_id 'A5' disagree"
    source, stage, reason = by_original["{not json"]
    assert (source, stage) == ("reference.licenses", "validate") and reason.startswith("licenses: value is not JSON")
    source, stage, reason = by_original['{"license_md5": "nothex"}']
    assert (source, stage) == ("reference.licenses", "validate")
    assert reason == "licenses L8: column license_md5: not a 32-character hex md5: 'nothex'"

    # A restarted worker recovers its tables from their changelogs: a tombstone for L1 (whose own version is in
    # 2099) must take that version to win, which only the recovered table knows.
    async def after_restart() -> dict[str, object]:
        await publish(settings, kafka_bootstrap, LICENSES, [_license("L4", md5s[2], "", "S4", 7)], deletes=["L1"])
        await _run_worker(settings, kafka_bootstrap)
        return await _latest_per_key(kafka_bootstrap, f"{settings.app_id}-ref_license_by_hash-changelog")

    by_hash = asyncio.run(after_restart())
    assert {k: v for k, v in by_hash.items() if v is not None} == {md5s[2]: "L4", shas[2]: "L3"}
    warehouse = open_warehouse(settings)
    try:
        left = warehouse.query("SELECT dim_license_id FROM dim_license FINAL ORDER BY 1").rows
        deletion = warehouse.query("SELECT toString(updated_at) FROM dim_license WHERE dim_license_id = 'L1' "
                                   "AND is_deleted = 1").rows
    finally:
        warehouse.close()
    assert left == [("L3",), ("L4",)]
    # The deletion carries L1's own version (a redelivered tombstone may add an older, harmless deletion row).
    assert max(deletion) == ("2099-01-01 00:00:00.000",)


# --------------------------------------------------------------------------------------------- CLI


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"DENOMAS_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_cli_loads_valid_files_refuses_bad_ones_and_prints_the_match_rate(tmp_path):
    data = tmp_path / "data"
    bad = _csv(tmp_path, f"dim_license_id,license_md5\nL1,{MD5}\nL2,nothex\n")
    result = _cli(data, "reference", "load", "--kind", "licenses", str(bad))
    assert result.returncode == 1
    assert "line 3, column license_md5: not a 32-character hex md5: 'nothex'" in result.stderr
    assert "nothing loaded" in result.stderr
    ref = fleet_reference(4, 3, SEED)
    paths = ref.write_csvs(tmp_path / "sample")
    for name in ("licenses", "subscriptions", "accounts"):
        result = _cli(data, "reference", "load", "--kind", name, str(paths[name]))
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"loaded {len(ref.rows[name])} {name} rows into {KINDS[name].table}"
    report = _cli(data, "report", "match-rate")
    assert report.returncode == 0, report.stderr
    assert report.stdout.split()[:3] == ["month", "source", "records"]  # no pings landed yet: the header only
    warehouse = open_warehouse(Settings.from_env())
    try:
        assert warehouse.query("SELECT count() FROM dim_license FINAL").scalar() == len(ref.rows["licenses"])
    finally:
        warehouse.close()
