"""Sample data for the reference-data and customer-success-mart tests: the fleet's pings written through the
sink functions, Seat Link reports for the fleet's licenses as rows of fct_seat_link, reference CSVs.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from fleet.pings import GeneratedPing, fleet_licenses
from fleet.reference import FleetReference
from streams.enrich.metric_dictionary import MetricDictionary
from streams.enrich.service_ping import installation_id_for, normalize_ping
from streams.records import ping_id_for, stable_id
from streams.reference.kinds import KINDS
from streams.reference.load import load_csv
from streams.warehouse import Warehouse, writers

START = date(2026, 6, 1)


def land_pings(warehouse: Warehouse, pings: list[GeneratedPing]) -> None:
    """Valid pings into fct_ping_instance(_metric) exactly as the sink agent writes them."""
    dictionary = MetricDictionary.from_dir()
    received = datetime(2026, 1, 1, tzinfo=UTC)
    records = []
    for offset, ping in enumerate(p for p in pings if p.valid):
        body = ping.body()
        record = normalize_ping(ping.payload, dictionary, ping_id_for(ping.payload, body), received)
        record.update(kind="ping", raw=body.decode(), source={"partition": 0, "offset": offset})
        records.append(record)
    writers.write_pings(warehouse, records)


def seat_links(instances: int, weeks: int, seed: int, start: date = START) -> list[dict]:
    """Seat Link reports (rows of fct_seat_link) every other day for every license while it is current.

    Instances that stop sending pings keep sending Seat Link (Service Ping switched off), so some subscription
    months have Seat Link reports and no ping. Some clients do not send license_user_count.
    """
    licenses = fleet_licenses(instances, weeks, seed, start)
    rows = []
    for n, lic in enumerate(licenses):
        rng = random.Random(f"seat-links:{seed}:{lic.md5}")
        later = [o.from_week for o in licenses if o.instance_uuid == lic.instance_uuid and o.from_week > lic.from_week]
        last_day = start + timedelta(weeks=min(later) if later else weeks)
        day = start + timedelta(weeks=lic.from_week, days=n % 2)
        users = max(1, round(lic.seats * rng.uniform(0.5, 0.9)))
        peak = users
        while day < last_day:
            users = max(1, users + rng.randint(-3, 4))
            peak = max(peak, users)
            stamp = datetime.combine(day, time(rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)), UTC)
            rows.append({
                "seat_link_id": stable_id(lic.sha256, stamp.isoformat(), lic.instance_uuid),
                "license_md5": lic.md5, "license_sha256": lic.sha256, "instance_uuid": lic.instance_uuid,
                "hostname": lic.hostname, "installation_id": installation_id_for(lic.instance_uuid, lic.hostname),
                "gitlab_version": "18.1.0", "report_timestamp": stamp, "report_date": day,
                "active_user_count": users, "max_historical_user_count": peak,
                "license_user_count": lic.seats if n % 3 else None, "add_on_metrics": "[]", "received_at": stamp,
            })
            day += timedelta(days=2)
    return rows


def land_seat_links(warehouse: Warehouse, rows: list[dict]) -> None:
    warehouse.insert("fct_seat_link", rows)
    warehouse.insert("fct_seat_link", rows[::7])  # a resent batch: FINAL must collapse it


def load_reference(warehouse: Warehouse, ref: FleetReference, directory: Path, kinds: list[str]) -> None:
    paths = ref.write_csvs(directory)
    for name in kinds:
        load_csv(warehouse, KINDS[name], paths[name])
