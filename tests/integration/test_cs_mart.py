"""The customer-success mart against an independent computation in plain Python, and its CSV/Parquet exports.

Pings are written with the sink functions (normalize_ping + write_pings), Seat Link reports as fct_seat_link
rows, the reference data from the sample CSVs (including the account-mapping import). The expected mart is
built from the generator's payloads, its record of metric values, the Seat Link rows and the license cases of
fleet_reference (which subscription each license belongs to), applying the latest-of-month rules directly.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from fleet.pings import fleet_licenses, generate_fleet
from fleet.reference import account_id_for, current_subscription_id, fleet_reference
from streams.config import Settings
from streams.cs_mart import CS_MART_METRICS, MART, export, read_mart
from streams.enrich.service_ping import installation_id_for
from streams.records import ping_id_for
from streams.warehouse import migrate, open_warehouse
from tests.support.usage_samples import land_pings, land_seat_links, load_reference, seat_links

INSTANCES, WEEKS, SEED = 16, 10, 11
_TIERS = {"EE": "Starter", "EES": "Starter", "EEP": "Premium", "EEU": "Ultimate"}


def subscription_of(case: str, subscription_id: str | None) -> str | None:
    """Which known subscription a license belongs to once the account mappings are loaded (by its case)."""
    if case in ("matched", "no_account"):
        return subscription_id
    if case == "not_in_customersdot":
        return current_subscription_id(subscription_id or "")
    return None  # trials have none; a stale CustomersDot subscription is unknown


def _month(day: date) -> date:
    return day.replace(day=1)


def _coalesce(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def expected_mart(pings, links, ref) -> list[dict[str, Any]]:
    licenses = {lic.md5: lic for lic in fleet_licenses(INSTANCES, WEEKS, SEED)}
    subscriptions = {r["dim_subscription_id"]: r for r in ref.rows["subscriptions"]}
    account_names = {r["dim_crm_account_id"]: r["account_name"] for r in ref.rows["accounts"]}

    def owner(md5: str | None) -> tuple[str, str] | None:
        lic = licenses.get(md5 or "")
        sub = subscription_of(ref.cases[lic.md5], lic.subscription_id) if lic else None
        return (sub, account_id_for(lic.instance_uuid)) if sub else None

    latest_ping: dict[tuple, tuple] = {}
    for ping in (p for p in pings if p.valid):
        known = owner(ping.payload.get("license_md5"))
        if not known:
            continue
        recorded = datetime.fromisoformat(ping.recorded_at)
        pid = ping_id_for(ping.payload, ping.body())
        key = (_month(recorded.date()), known[0], installation_id_for(ping.uuid, ping.hostname))
        if key not in latest_ping or (recorded, pid) > latest_ping[key][:2]:
            latest_ping[key] = (recorded, pid, ping, known[1])
    latest_seat: dict[tuple, dict] = {}
    for row in links:
        known = owner(row["license_md5"])
        if not known:
            continue
        key = (_month(row["report_date"]), known[0])
        best = latest_seat.get(key)
        if best is None or (row["report_timestamp"], row["seat_link_id"]) > (best["report_timestamp"],
                                                                              best["seat_link_id"]):
            latest_seat[key] = row | {"account": known[1]}

    keys = [(m, s, inst, p) for (m, s, inst), p in latest_ping.items()]
    with_ping = {(m, s) for m, s, _ in latest_ping}
    keys += [(m, s, None, None) for (m, s) in latest_seat if (m, s) not in with_ping]
    rows = []
    for month, sub, installation, found in keys:
        seat = latest_seat.get((month, sub))
        rows.append(_row(month, sub, installation, found, seat, subscriptions[sub], account_names))
    return sorted(rows, key=lambda r: (r["snapshot_month"], r["dim_subscription_id"], r["installation_id"]))


def _row(month, sub, installation, found, seat, subscription, account_names) -> dict[str, Any]:
    recorded, pid, ping, account = found or (None, None, None, seat["account"])
    payload = ping.payload if ping else {}
    if installation is None:
        installation = seat["installation_id"]
    seat = seat or {}
    seats = subscription["seats"]
    license_users = _coalesce(seats if seats > 0 else None, payload.get("license_user_count"),
                              seat.get("license_user_count"))
    source = ("Subscription" if seats > 0 else "Service Ping" if payload.get("license_user_count") is not None
              else "Seat Link" if seat.get("license_user_count") is not None else "")
    billable = _coalesce(payload.get("license_billable_users"), seat.get("active_user_count"))
    version = payload.get("version", "")
    cleaned = ".".join(re.match(r"(\d+)\.(\d+)\.(\d+)", version).groups()) if ping else ""
    expires = payload.get("license_expires_at")
    expired = expires and date.fromisoformat(expires) < recorded.date()
    tier = ("Free" if payload.get("edition") in ("CE", "EE Free") or expired
            else _TIERS.get(payload.get("edition"), "Unknown")) if ping else ""
    metrics = ping.expected_metrics if ping else {}
    return {
        "primary_key": hashlib.md5(f"{month.isoformat()}|{sub}|{installation}".encode()).hexdigest(),
        "snapshot_month": month, "dim_subscription_id": sub,
        "subscription_name": subscription["subscription_name"],
        "subscription_status": subscription["subscription_status"],
        "subscription_product_tier": subscription["product_tier"],
        "term_start_date": subscription["term_start_date"], "term_end_date": subscription["term_end_date"],
        "dim_billing_account_id": subscription["dim_billing_account_id"], "dim_crm_account_id": account,
        "account_name": account_names[account], "installation_id": installation,
        "instance_uuid": ping.uuid if ping else seat["instance_uuid"],
        "hostname": ping.hostname if ping else seat["hostname"],
        "ping_id": pid, "ping_created_at": recorded, "version": version, "cleaned_version": cleaned,
        "edition": payload.get("edition", ""), "ping_product_tier": tier,
        "seat_link_id": seat.get("seat_link_id"), "seat_link_report_date": seat.get("report_date"),
        "license_user_count": license_users, "license_user_count_source": source,
        "billable_user_count": billable, "active_user_count": payload.get("active_user_count"),
        "max_historical_user_count": _coalesce(payload.get("historical_max_users"),
                                               seat.get("max_historical_user_count")),
        "license_utilization": (None if billable is None or license_users is None
                                else 0 if license_users == 0 else billable / license_users),
        "seat_link_billable_user_count": seat.get("active_user_count"),
    } | {
        column: (float(metrics[path]) if path in metrics and metrics[path] >= 0 else None)
        for column, path in CS_MART_METRICS
    }


@pytest.fixture(scope="module")
def sample():
    pings = generate_fleet(INSTANCES, WEEKS, seed=SEED)
    return pings, seat_links(INSTANCES, WEEKS, SEED), fleet_reference(INSTANCES, WEEKS, SEED)


@pytest.fixture(scope="module")
def mart(sample, tmp_path_factory):
    """(schema, rows) of the mart, exports written; the warehouse is closed again (one chdb per process)."""
    pings, links, ref = sample
    out = tmp_path_factory.mktemp("export")
    warehouse = open_warehouse(Settings.from_env())
    try:
        migrate(warehouse)
        land_pings(warehouse, pings)
        land_seat_links(warehouse, links)
        load_reference(warehouse, ref, out, list(ref.rows))
        schema, rows = read_mart(warehouse)
        # A partial rewrite left behind by a crash (ping rows stored twice, not yet merged) changes nothing.
        for table in ("fct_ping_instance", "fct_ping_instance_metric"):
            warehouse.execute(f"INSERT INTO {table} SELECT * FROM {table} WHERE ping_id % 3 = 0")
        assert read_mart(warehouse) == (schema, rows)
        exported = {fmt: export(warehouse, fmt, out / f"cs_mart.{fmt}") for fmt in ("csv", "parquet")}
    finally:
        warehouse.close()
    return schema, rows, out, exported


def test_mart_equals_the_plain_python_mart_row_for_row(mart, sample):
    _, rows, _, _ = mart
    expected = expected_mart(*sample)
    assert len(rows) == len(expected)
    for got, want in zip(rows, expected, strict=True):
        assert got == want, got["primary_key"]


def test_mart_covers_the_cases_it_documents(mart, sample):
    _, rows, _, _ = mart
    keys = [r["primary_key"] for r in rows]
    assert len(set(keys)) == len(keys)  # primary key is unique
    assert any(r["ping_id"] is None and r["seat_link_id"] is not None for r in rows)  # Seat Link only
    assert any(r["ping_id"] is not None and r["seat_link_id"] is not None for r in rows)
    assert len({r["snapshot_month"] for r in rows}) == 3
    assert {"Subscription", "Service Ping"} <= {r["license_user_count_source"] for r in rows}
    pings, _, ref = sample
    markers = {ping_id_for(p.payload, p.body()) for p in pings if p.valid
               for _, path in CS_MART_METRICS if p.expected_metrics.get(path, 0) < 0}
    assert any(r[c] is None for r in rows if r["ping_id"] in markers for c, _ in CS_MART_METRICS)  # error markers
    mapped_only = {current_subscription_id(lic.subscription_id or "")
                   for lic in fleet_licenses(INSTANCES, WEEKS, SEED) if ref.cases[lic.md5] == "not_in_customersdot"}
    assert mapped_only & {r["dim_subscription_id"] for r in rows}  # reached only through the mapping import


def test_metric_columns_are_the_documented_list(mart):
    schema, _, _, _ = mart
    names = [name for name, _ in schema]
    assert names[-len(CS_MART_METRICS):] == [column for column, _ in CS_MART_METRICS]
    assert all(ch_type == "Nullable(Float64)" for _, ch_type in schema[-len(CS_MART_METRICS):])
    sql = next(Path(__file__).parents[2].joinpath("clickhouse").glob(f"*_{MART}.sql")).read_text()
    for column, path in CS_MART_METRICS:
        assert f"maxIf(metric_value, metrics_path = '{path}') AS {column}" in sql


def _from_csv(text: str, ch_type: str) -> Any:
    base = ch_type.removeprefix("Nullable(").removeprefix("LowCardinality(").rstrip(")")
    if text == "" and ch_type.startswith("Nullable("):
        return None
    if base.startswith("DateTime64"):
        return datetime.fromisoformat(text)
    if base == "Date":
        return date.fromisoformat(text)
    if base.startswith(("Int", "UInt")):
        return int(text)
    return float(text) if base == "Float64" else text


def test_csv_export_round_trips(mart):
    schema, rows, out, exported = mart
    with (out / "cs_mart.csv").open(newline="") as handle:
        reader = csv.reader(handle)
        assert next(reader) == [name for name, _ in schema]
        back = [{name: _from_csv(value, ch_type) for (name, ch_type), value in zip(schema, line, strict=True)}
                for line in reader]
    assert exported["csv"] == len(rows) == len(back)
    assert back == rows


def test_parquet_export_round_trips(mart):
    schema, rows, out, exported = mart
    table = pq.read_table(out / "cs_mart.parquet")
    assert table.column_names == [name for name, _ in schema]
    assert exported["parquet"] == len(rows)
    assert table.to_pylist() == rows


def test_cli_export_writes_the_same_files(mart, tmp_path, module_database):
    _, rows, out, _ = mart
    env = os.environ | {"DENOMAS_DATA_DIR": str(out / "data"), "DENOMAS_WAREHOUSE_DATABASE": module_database}
    for fmt in ("csv", "parquet"):
        target = tmp_path / f"cli.{fmt}"
        result = subprocess.run([sys.executable, "-m", "streams.cli", "export", "cs-mart", "--format", fmt,
                                 "--out", str(target), "--role", "admin"], env=env, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"exported {len(rows)} rows of {MART} to {target} ({fmt})"
    assert (tmp_path / "cli.csv").read_bytes() == (out / "cs_mart.csv").read_bytes()
    assert pq.read_table(tmp_path / "cli.parquet").equals(pq.read_table(out / "cs_mart.parquet"))
