"""An independent plain-Python model of the Service Ping marts (clickhouse/045-069), computed from the
generator's raw pings (payload fields and `expected_metrics`, recorded as the generator placed each value).

Nothing here reads the warehouse or reuses its SQL. What it takes from the project is definitional only: the
metric dictionary (which paths are defined, their time frame, stage and xMAU flags: test input data), the id of
a ping (`ping_id_for`, the collector's answer) and the installation key formula (md5 of "uuid|hostname").
It also lands pings for the tests through the real sink functions.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from fleet.pings import GeneratedPing
from streams.enrich.metric_dictionary import MetricDictionary
from streams.enrich.service_ping import normalize_ping
from streams.records import ping_id_for
from streams.warehouse import Warehouse
from streams.warehouse.writers import load_metric_dictionary, write_pings
from tests.support.fresh import fresh_warehouse

OFFICIAL = "metric/version check - subscription based estimation"
GRAINS = (OFFICIAL, "metric/version check - seat based estimation", "reported metric - subscription based estimation",
          "reported metric - seat based estimation")
_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-(.+))?$")
_TIERS = {"EE": "Starter", "EES": "Starter", "EEP": "Premium", "EEU": "Ultimate"}
RECEIVED_AT = datetime(2026, 12, 1, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------------
# Landing


def normalized_records(pings: Iterable[GeneratedPing], dictionary: MetricDictionary) -> list[dict]:
    records = []
    for ping in pings:
        body = ping.body()
        record = normalize_ping(ping.payload, dictionary, ping_id_for(ping.payload, body), RECEIVED_AT)
        record.update(kind="ping", raw=body.decode(), source={"partition": 0, "offset": 0})
        records.append(record)
    return records


def open_warehouse(path: Path, dictionary: MetricDictionary) -> Warehouse:
    """A fresh, migrated database with the dictionary loaded (`path`: where an embedded engine used to be)."""
    warehouse = fresh_warehouse()
    load_metric_dictionary(warehouse, dictionary, RECEIVED_AT)
    return warehouse


def land(warehouse: Warehouse, records: Sequence[dict], batch: int = 60) -> None:
    for start in range(0, len(records), batch):
        write_pings(warehouse, records[start:start + batch])


def duplicate_rows(warehouse: Warehouse, every: int = 4) -> None:
    """Store a second copy of every `every`-th ping's rows, as a crash between inserts and a redelivery leaves
    them; merges are stopped so the copies stay unmerged while the tests read."""
    for table in ("fct_ping_instance", "fct_ping_instance_metric"):
        warehouse.execute(f"SYSTEM STOP MERGES {table}")
        warehouse.execute(f"INSERT INTO {table} SELECT * FROM {table} WHERE ping_id % {every} = 0")


# ---------------------------------------------------------------------------------------------------
# One ping, read from the payload


@dataclass
class Ping:
    ping_id: int
    installation_id: str
    uuid: str
    hostname: str
    recorded_at: datetime
    month: date
    version: str
    version_id: int
    prerelease: int
    edition: str
    ping_edition: str
    tier: str
    installation_type: str
    active_users: int | None
    subscription: str
    trial: bool
    seats: int | None
    starts_at: date | None
    expires_at: date | None
    license_md5: str
    license_sha256: str
    metrics: dict[str, float]
    payload: dict = field(repr=False)


def _date(value: object) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) and value else None


def read_ping(generated: GeneratedPing) -> Ping:
    payload = generated.payload
    recorded = datetime.fromisoformat(payload["recorded_at"]).astimezone(UTC)
    major, minor, _, suffix = _VERSION.match(payload["version"]).groups()
    edition = payload.get("edition") or "CE"
    expires = _date(payload.get("license_expires_at"))
    if edition in ("CE", "EE Free") or (expires is not None and expires < recorded.date()):
        tier = "Free"
    else:
        tier = _TIERS.get(edition, "Unknown")
    return Ping(
        ping_id=ping_id_for(payload, generated.body()),
        installation_id=hashlib.md5(f"{payload['uuid']}|{payload.get('hostname') or ''}".encode()).hexdigest(),
        uuid=payload["uuid"], hostname=payload.get("hostname") or "", recorded_at=recorded,
        month=date(recorded.year, recorded.month, 1), version=payload["version"],
        version_id=int(major) * 100 + int(minor), prerelease=int(bool(suffix) and suffix.lower() != "ee"),
        edition=edition, ping_edition="CE" if edition == "CE" else "EE", tier=tier,
        installation_type=payload.get("installation_type") or "", active_users=payload.get("active_user_count"),
        subscription=payload.get("license_subscription_id") or "", trial=payload.get("license_trial") is True,
        seats=payload.get("license_user_count"), starts_at=_date(payload.get("license_starts_at")),
        expires_at=expires, license_md5=payload.get("license_md5") or "",
        license_sha256=payload.get("license_sha256") or "",
        metrics={path: float(value) for path, value in generated.expected_metrics.items()}, payload=payload,
    )


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


# ---------------------------------------------------------------------------------------------------
# Reference data the xMAU tests load (a stand-in for CustomersDot/Zuora exports)


@dataclass
class Subscription:
    subscription_id: str
    account_id: str
    status: str
    tier: str
    seats: int
    start: date | None
    end: date | None


@dataclass
class Reference:
    subscriptions: dict[str, Subscription]
    licenses: dict[str, str]  # license hash (md5 or sha256) -> subscription id
    accounts: dict[str, str]  # account id -> name


# ---------------------------------------------------------------------------------------------------
# The model


class Model:
    """Every mart number, from raw pings. `reference` switches the subscription population as the SQL does."""

    def __init__(self, generated: Iterable[GeneratedPing], dictionary: MetricDictionary,
                 reference: Reference | None = None, releases: dict[int, date] | None = None) -> None:
        by_id = {p.ping_id: p for p in (read_ping(g) for g in generated if g.valid)}
        self.pings = sorted(by_id.values(), key=lambda p: (p.installation_id, p.recorded_at, p.ping_id))
        self.dictionary = dictionary
        self.reference = reference
        self.releases = releases or {}  # major*100+minor -> first release date
        self.months = sorted({p.month for p in self.pings})
        # A row is a defined metric when the dictionary has exactly its path (the reference's exact join).
        self._definitions = {path: dictionary.get(path) for p in self.pings for path in p.metrics}

    # -- definitions -------------------------------------------------------------------------------

    def defined(self, path: str) -> bool:
        return self._definitions[path] is not None

    def time_frame(self, path: str) -> str | None:
        d = self._definitions[path]
        return d.time_frame if d is not None else None

    def stage(self, path: str) -> str:
        d = self._definitions[path]
        return (d.product_stage or "") if d is not None else ""

    def flags(self, path: str) -> dict[str, int]:
        exact = self.dictionary.get(path)  # dim_ping_metric is joined on the exact path
        if exact is None:
            return {"is_umau": 0, "is_smau": 0, "is_gmau": 0, "is_paid_gmau": 0}
        return {"is_umau": int(exact.is_umau), "is_smau": int(exact.is_smau), "is_gmau": int(exact.is_gmau),
                "is_paid_gmau": int(exact.is_paid_gmau)}

    # -- last ping of the month, time frames, monthly values -----------------------------------------

    def last_pings(self) -> dict[tuple[str, date], Ping]:
        last: dict[tuple[str, date], Ping] = {}
        for ping in self.pings:
            key = (ping.installation_id, ping.month)
            if key not in last or (ping.recorded_at, ping.ping_id) > (last[key].recorded_at, last[key].ping_id):
                last[key] = ping
        return last

    def time_frame_rows(self) -> dict[str, set[tuple[int, str]]]:
        views: dict[str, set[tuple[int, str]]] = {"7_day": set(), "28_day": set(), "all_time": set(),
                                                   "none_null": set()}
        names = {"7d": "7_day", "28d": "28_day", "all": "all_time", "none": "none_null"}
        for ping in self.pings:
            for path in ping.metrics:
                frame = self.time_frame(path)
                views[names[frame] if frame else "none_null"].add((ping.ping_id, path))
        return views

    def monthly(self) -> dict[tuple[str, str, date], dict]:
        """(installation, path, month) -> metric_value, previous_metric_value, previous month, monthly value."""
        rows: dict[tuple[str, str, date], dict] = {}
        last_value: dict[tuple[str, str], tuple[float, date]] = {}
        for (installation, month), ping in sorted(self.last_pings().items(), key=lambda kv: kv[1].recorded_at):
            for path, value in ping.metrics.items():
                frame = self.time_frame(path)
                if frame not in ("28d", "all") or value < 0:
                    continue
                previous = last_value.get((installation, path))
                last_value[(installation, path)] = (value, month)
                if frame == "28d":
                    rows[(installation, path, month)] = {"metric_value": value, "previous_metric_value": None,
                                                         "previous_month": None, "monthly_metric_value": value}
                else:
                    prev_value = previous[0] if previous else None
                    rows[(installation, path, month)] = {
                        "metric_value": value, "previous_metric_value": prev_value,
                        "previous_month": previous[1] if previous else None,
                        "monthly_metric_value": max(value - (prev_value or 0.0), 0.0)}
        return rows

    def first_last_versions(self) -> dict[tuple[str, str, int], tuple[int, int, int]]:
        seen: dict[tuple[str, str, int], list] = {}
        for ping in self.pings:
            if self.releases and ping.version_id not in self.releases:
                continue
            for path in ping.metrics:
                if not self.defined(path):
                    continue
                entry = seen.setdefault((path, ping.ping_edition, ping.prerelease), [ping.version_id, 0, set()])
                entry[0] = min(entry[0], ping.version_id)
                entry[1] = max(entry[1], ping.version_id)
                entry[2].add(ping.installation_id)
        return {key: (first, last, len(installations)) for key, (first, last, installations) in seen.items()}

    # -- subscriptions ---------------------------------------------------------------------------------

    def subscription_of(self, ping: Ping) -> str:
        if self.reference is not None:  # the license found by md5, else by sha256, names the subscription
            for digest in (ping.license_md5, ping.license_sha256):
                if digest and digest in self.reference.licenses:
                    return self.reference.licenses[digest] or ping.subscription
        return ping.subscription

    def account_of(self, ping: Ping) -> str:
        if self.reference is None:
            return ""
        sub = self.reference.subscriptions.get(self.subscription_of(ping))
        return sub.account_id if sub else ""

    def _subscriptions(self) -> dict[str, Subscription]:
        if self.reference is not None:
            return {s.subscription_id: s for s in self.reference.subscriptions.values()
                    if s.status in ("Active", "Cancelled") and s.tier.lower() not in ("free", "storage")}
        found: dict[str, list] = {}
        for ping in sorted(self.pings, key=lambda p: (p.recorded_at, p.ping_id)):
            if not ping.subscription or ping.trial:
                continue
            entry = found.setdefault(ping.subscription, [0, None, None])
            entry[0] = ping.seats or 0
            if ping.starts_at:
                entry[1] = min(entry[1], ping.starts_at) if entry[1] else ping.starts_at
            if ping.expires_at:
                entry[2] = max(entry[2], ping.expires_at) if entry[2] else ping.expires_at
        return {sid: Subscription(sid, "", "Active", "paid", seats, start, end)
                for sid, (seats, start, end) in found.items()}

    def population(self) -> dict[tuple[date, str], tuple[int, int]]:
        """(month, subscription) -> (seats, is_missing_from_population)."""
        subs = self._subscriptions()
        result: dict[tuple[date, str], tuple[int, int]] = {}
        for month in self.months:
            for sub in subs.values():
                started = sub.start is not None and sub.start.replace(day=1) <= month
                if started and (sub.end is None or sub.end.replace(day=1) > month):
                    result[(month, sub.subscription_id)] = (sub.seats, 0)
        for (_, month), ping in self.last_pings().items():
            sid = self.subscription_of(ping)
            if sid in subs and (month, sid) not in result:
                result[(month, sid)] = (subs[sid].seats, 1)
        return result

    def latest_subscriptions(self) -> dict[tuple[date, str, str], dict]:
        population = self.population()
        pinged: dict[tuple[date, str], list[Ping]] = defaultdict(list)
        for (_, month), ping in self.last_pings().items():
            if self.subscription_of(ping):
                pinged[(month, self.subscription_of(ping))].append(ping)
        counts: dict[tuple[date, str, str], int] = defaultdict(int)
        for ping in self.pings:
            if self.subscription_of(ping):
                counts[(ping.month, self.subscription_of(ping), ping.installation_id)] += 1
        rows = {}
        for (month, sid), (seats, missing) in population.items():
            for ping in pinged.get((month, sid), []):
                rows[(month, sid, ping.installation_id)] = {
                    "ping_edition": ping.ping_edition, "version_is_prerelease": ping.prerelease,
                    "major_minor_version_id": ping.version_id, "instance_user_count": ping.active_users,
                    "licensed_user_count": seats, "ping_count": counts[(month, sid, ping.installation_id)],
                    "has_sent_pings": 1, "is_missing_from_population": missing}
            if not pinged.get((month, sid)):
                rows[(month, sid, "")] = {
                    "ping_edition": "", "version_is_prerelease": None, "major_minor_version_id": None,
                    "instance_user_count": None, "licensed_user_count": seats, "ping_count": 0,
                    "has_sent_pings": 0, "is_missing_from_population": missing}
        return rows

    # -- estimates -------------------------------------------------------------------------------------

    def reported_counts(self) -> dict[tuple[date, str, str], tuple[int, int]]:
        totals: dict[date, list[int]] = defaultdict(lambda: [0, 0])
        for (month, _), (seats, _) in self.population().items():
            totals[month][0] += 1
            totals[month][1] += seats
        result = {}
        for ping in self.pings:
            for path, value in ping.metrics.items():
                if self.time_frame(path) in ("28d", "all") and value >= 0 and ping.month in totals:
                    result[(ping.month, path, ping.ping_edition)] = tuple(totals[ping.month])
        return result

    def on_versions_counts(self) -> dict[tuple[date, str, str], tuple[int, int]]:
        windows = self.first_last_versions()
        subs = {(month, sid, row["licensed_user_count"], row["version_is_prerelease"], row["major_minor_version_id"])
                for (month, sid, _), row in self.latest_subscriptions().items() if row["has_sent_pings"]}
        members: dict[tuple[date, str, str], dict[str, int]] = defaultdict(dict)
        for month, sid, seats, prerelease, version in subs:
            for (path, edition, window_prerelease), (first, last, _) in windows.items():
                if prerelease == window_prerelease and first <= version <= last:
                    members[(month, path, edition)][sid] = seats
        return {key: (len(found), sum(found.values())) for key, found in members.items()}

    def factors(self) -> dict[tuple[date, str, str, str], tuple[int, int, int, float]]:
        """(month, path, edition, grain) -> (reporting, not_reporting, total, percent_reporting)."""
        population = self.population()
        reporting_subs: dict[tuple[date, str], set[str]] = defaultdict(set)
        last = self.last_pings()
        for (installation, path, month) in self.monthly():
            sid = self.subscription_of(last[(installation, month)])
            if sid and (month, sid) in population:
                reporting_subs[(month, path)].add(sid)
        reported = {key: (len(s), sum(population[(key[0], sid)][0] for sid in s)) for key, s in reporting_subs.items()}
        totals = self.reported_counts()
        on_versions = self.on_versions_counts()
        result = {}
        for (month, path, edition), (subs, seats) in on_versions.items():
            if (month, path) in reported and (month, path, edition) in totals:
                total_subs, total_seats = totals[(month, path, edition)]
                result[(month, path, edition, GRAINS[0])] = _factor(subs, total_subs)
                result[(month, path, edition, GRAINS[1])] = _factor(seats, total_seats)
        for (month, path, edition), (total_subs, total_seats) in totals.items():
            if (month, path) in reported:
                subs, seats = reported[(month, path)]
                result[(month, path, edition, GRAINS[2])] = _factor(subs, total_subs)
                result[(month, path, edition, GRAINS[3])] = _factor(seats, total_seats)
        return result

    def recorded_usage(self) -> dict[tuple[date, str, str, str], float]:
        """(month, path, edition, tier) -> sum of monthly values."""
        last = self.last_pings()
        usage: dict[tuple[date, str, str, str], float] = defaultdict(float)
        for (installation, path, month), row in self.monthly().items():
            ping = last[(installation, month)]
            usage[(month, path, ping.ping_edition, ping.tier)] += row["monthly_metric_value"]
        return usage

    def totals_with_estimates(self) -> dict[tuple[date, str, str, str, str], tuple[float, float, float]]:
        """(month, path, edition, tier, grain) -> (recorded, estimated, total with estimate)."""
        factors = self.factors()
        result = {}
        for (month, path, edition, tier), recorded in self.recorded_usage().items():
            for grain in GRAINS:
                factor = factors.get((month, path, edition, grain))
                if factor is None:
                    continue
                total = estimate(recorded, factor[3])
                result[(month, path, edition, tier, grain)] = (recorded, total - recorded, total)
        return result

    def xmau(self) -> dict[tuple[date, str, str], tuple[int, int, int, int]]:
        """(month, xmau_type, path) -> (recorded, estimated, total, reporting installations)."""
        last = self.last_pings()
        recorded: dict[tuple[date, str, str], float] = defaultdict(float)
        installations: dict[tuple[date, str, str], set[str]] = defaultdict(set)
        for (installation, path, month), row in self.monthly().items():
            tier = last[(installation, month)].tier
            for xmau_type in _types(self.flags(path), tier):
                recorded[(month, xmau_type, path)] += row["monthly_metric_value"]
                installations[(month, xmau_type, path)].add(installation)
        estimated: dict[tuple[date, str, str], float] = defaultdict(float)
        for (month, path, _, tier, grain), (_, uplift, _) in self.totals_with_estimates().items():
            if grain == OFFICIAL:
                for xmau_type in _types(self.flags(path), tier):
                    estimated[(month, xmau_type, path)] += uplift
        return {key: (int(value), int(estimated[key]), int(value) + int(estimated[key]), len(installations[key]))
                for key, value in recorded.items()}

    # -- use-case reports --------------------------------------------------------------------------

    def version_lag(self) -> dict[tuple[str, date], tuple[str, int]]:
        """(installation, month) -> (latest major.minor available, minors behind)."""
        if self.releases:
            available = {v: day.replace(day=1) for v, day in self.releases.items()}
        else:
            available = {}
            for ping in self.pings:
                if not ping.prerelease:
                    available[ping.version_id] = min(available.get(ping.version_id, ping.month), ping.month)
        result = {}
        for (installation, month), ping in self.last_pings().items():
            versions = [v for v, first in available.items() if first <= month]
            if versions:
                latest = max(versions)
                result[(installation, month)] = (f"{latest // 100}.{latest % 100}",
                                                 sum(1 for v in versions if v > ping.version_id))
        return result

    def installation_types(self) -> dict[tuple[date, str, str], tuple[int, int, int, float]]:
        groups: dict[tuple[date, str, str], list[Ping]] = defaultdict(list)
        for (_, month), ping in self.last_pings().items():
            groups[(month, ping.installation_type, ping.ping_edition)].append(ping)
        per_month: dict[date, int] = defaultdict(int)
        for (month, _, _), pings in groups.items():
            per_month[month] += len(pings)
        return {key: (len(pings), sum(1 for p in pings if p.tier != "Free"), sum(p.active_users or 0 for p in pings),
                      len(pings) / per_month[key[0]]) for key, pings in groups.items()}

    def topology(self) -> dict[tuple[str, date], dict]:
        rows = {}
        previous: dict[str, dict] = {}
        for (installation, month), ping in sorted(self.last_pings().items(), key=lambda kv: (kv[0][0], kv[0][1])):
            nodes = ping.payload.get("topology", {}).get("nodes", [])
            runner_paths = [f"counts.ci_runners_{kind}_type_active" for kind in ("instance", "group", "project")]
            runners = [ping.metrics.get(path) for path in runner_paths]
            total_runners = ping.metrics.get("counts.ci_runners")
            row = {
                "node_count": len(nodes),
                "total_cpus": float(sum(n["node_cpus"] for n in nodes)),
                "total_memory_bytes": float(sum(n["node_memory_total_bytes"] for n in nodes)),
                "services": sum(len(n["node_services"]) for n in nodes),
                "processes": float(sum(s["process_count"] for n in nodes for s in n["node_services"])),
                "ci_runners": total_runners if total_runners is not None and total_runners >= 0 else None,
                "active_runners": (sum(runners) if all(r is not None and r >= 0 for r in runners) else None),
            }
            before = previous.get(installation)
            row["previous_month"] = before["month"] if before else None
            if before:
                row["node_count_change"] = row["node_count"] - before["node_count"]
                row["total_cpus_change"] = row["total_cpus"] - before["total_cpus"]
                known = row["active_runners"] is not None and before["active_runners"] is not None
                row["active_runners_change"] = row["active_runners"] - before["active_runners"] if known else None
                pairs = ((row["node_count"], before["node_count"]), (row["total_cpus"], before["total_cpus"]))
                row["scaling"] = next(("up" if now > then else "down" for now, then in pairs if now != then), "same")
            else:
                row.update(node_count_change=None, total_cpus_change=None, active_runners_change=None, scaling="first")
            previous[installation] = row | {"month": month}
            rows[(installation, month)] = row
        return rows

    def stage_adoption(self) -> dict[tuple[str, date, str], tuple[int, float]]:
        found: dict[tuple[str, date, str], list[float]] = defaultdict(list)
        for (installation, month), ping in self.last_pings().items():
            for path, value in ping.metrics.items():
                if self.time_frame(path) == "28d" and self.stage(path) and value > 0:
                    found[(installation, month, self.stage(path))].append(value)
        return {key: (len(values), max(values)) for key, values in found.items()}

    def active_user_changes(self) -> dict[tuple[str, date], tuple]:
        last = self.last_pings()
        result = {}
        for (installation, month), ping in last.items():
            before = last.get((installation, add_months(month, -1)))
            previous = before.active_users if before else None
            change = None if previous is None or ping.active_users is None else ping.active_users - previous
            pct = None if change is None or previous == 0 else change * 100 / previous
            drop = int(change is not None and change < 0)
            significant = int(change is not None and change < 0 and change * 5 <= -previous)
            result[(installation, month)] = (ping.active_users, previous, change, pct, drop, significant)
        return result


def _factor(reporting: int, total: int) -> tuple[int, int, int, float]:
    return reporting, total - reporting, total, (reporting / total if total else 0.0)


def estimate(recorded: float, percent: float) -> float:
    """ROUND(recorded + DIV0(recorded * (1 - pct), pct)), rounding half away from zero (values are >= 0)."""
    return float(math.floor(recorded + (recorded * (1 - percent) / percent if percent else 0.0) + 0.5))


def _types(flags: dict[str, int], tier: str) -> list[str]:
    types = []
    if flags["is_umau"]:
        types.append("UMAU")
    if flags["is_smau"]:
        types.append("SMAU")
    if flags["is_gmau"]:
        types.append("GMAU")
    if flags["is_paid_gmau"] and tier != "Free":
        types.append("Paid GMAU")
    return types
