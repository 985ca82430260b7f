"""Seat Link reports and Version Checks of the sample fleet (fleet.pings), with what each should produce.

Seat Link: every licensed (non-trial) instance syncs daily, in one client generation per instance
(12.9 `date` form .. 18.1 `unique_instance_id`). Seat counts come from the instance's pings of that week
and the license hashes from `fleet_licenses`, so reports join to the pings exactly. A few reports are
sent twice (a Sidekiq retry), a few are broken: some the collector refuses (4xx), some the agent
dead-letters.

Version Check: one check per ping (its version that week), as JSON or as the badge image, with the
instance URL as Referer; a ping with a broken version makes a check the collector refuses.

`expected` holds, for every report or check that should land, the row it should become, written down
here from the generator's own values (not by running the pipeline's code).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import uuid as uuidlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from fleet.pings import FleetLicense, GeneratedPing, fleet_licenses, generate_fleet
from streams.enrich.version_check import AS_OF_HEADER
from streams.warehouse import Warehouse

if TYPE_CHECKING:
    from streams.progress import ProgressCallback

GENERATIONS = ("12.9", "13.0", "13.x", "14.x", "14.x+license_md5", "add_on_metrics", "18.1+")
# Licensed instances take generations in this order (after a seeded shuffle): every generation once, then
# mostly current clients.
_GENERATION_CYCLE = GENERATIONS + ("18.1+", "add_on_metrics", "13.x", "18.1+", "14.x", "add_on_metrics", "18.1+")
# Collector refuses these (HTTP 4xx); the agent dead-letters the others.
COLLECTOR_DEFECTS = ("no_license_key", "no_timestamp", "not_json")
AGENT_DEFECTS = ("bad_timestamp", "users_not_integer", "bad_add_on_metrics")
DEFECT_RATE = 0.03
RESEND_RATE = 0.03
CHECK_DEFECTS = ("not_base64", "no_version", "missing")


@dataclass
class GeneratedSeatLink:
    instance_uuid: str
    generation: str
    body: bytes
    license_key: str  # what the instance holds; only its hashes may ever be stored
    status: int = 200  # what the collector must answer
    defect: str | None = None
    resend: bool = False  # a second copy of an earlier report
    expected: dict[str, Any] | None = None  # the fct_seat_link row (first copy of a valid report only)


@dataclass
class GeneratedVersionCheck:
    host: str
    referer: str
    gitlab_info: str | None  # the query parameter as sent
    request_format: str  # json, svg, png
    checked_on: date | None = None  # the day the instance asked (its ping's day); sent as AS_OF_HEADER
    status: int = 200
    defect: str | None = None
    expected: dict[str, Any] | None = None  # the fct_version_check row, without what depends on the day asked


# ---------------------------------------------------------------------------------------------------
# Seat Link


def _week_pings(pings: Sequence[GeneratedPing]) -> dict[str, dict[int, GeneratedPing]]:
    by_instance: dict[str, dict[int, GeneratedPing]] = {}
    for ping in pings:
        by_instance.setdefault(ping.uuid, {})[ping.week] = ping
    return by_instance


def _week_versions(weekly: dict[int, GeneratedPing]) -> dict[int, str]:
    """The version an instance ran each week; a ping whose version was spoiled borrows its neighbour's."""
    good = {week: p.payload["version"] for week, p in weekly.items() if p.defect != "bad_version"}
    return {week: good.get(week) or good[min(good, key=lambda w: (abs(w - week), w))] for week in weekly}


def _add_ons(rng: random.Random, lic: FleetLicense) -> list[dict[str, Any]]:
    if lic.plan not in ("premium", "ultimate") or rng.random() < 0.4:
        return []
    purchased = max(5, lic.seats // rng.choice((2, 4, 10)))
    add_ons = [{"add_on_type": "duo_pro" if lic.plan == "premium" else "duo_enterprise",
                "purchased_seats": purchased, "assigned_seats": rng.randint(0, purchased)}]
    if rng.random() < 0.3:
        add_ons.append({"add_on_type": "duo_nano", "purchased_seats": lic.seats, "assigned_seats": 0})
    return add_ons


def _report(generation: str, lic: FleetLicense, key: str, ping: GeneratedPing, version: str, reported: datetime,
            add_ons: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(payload as that client generation sends it, the fct_seat_link row it should become)."""
    billable, max_users = ping.payload["license_billable_users"], ping.payload["historical_max_users"]
    modern = generation not in ("12.9", "13.0", "13.x")
    unique_id = str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"denomas:{lic.instance_uuid}"))
    if generation == "12.9":
        payload = {"date": reported.date().isoformat(), "license_key": key, "max_historical_user_count": max_users,
                   "active_users": billable}
    elif generation == "13.0":
        payload = {"timestamp": reported.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "license_key": key,
                   "max_historical_user_count": max_users, "active_users": billable}
    elif generation == "13.x":
        payload = {"timestamp": reported.isoformat(), "license_key": key, "max_historical_user_count": max_users,
                   "billable_users_count": billable}
    else:
        payload = {"gitlab_version": version, "timestamp": reported.strftime("%Y-%m-%dT%H:%M:%SZ"),
                   "date": reported.date().isoformat(), "license_key": key, "max_historical_user_count": max_users,
                   "billable_users_count": billable, "hostname": lic.hostname, "instance_id": lic.instance_uuid}
        if generation == "14.x+license_md5":
            payload["license_md5"] = lic.md5
        if generation in ("add_on_metrics", "18.1+"):
            payload["add_on_metrics"] = add_ons
        if generation == "18.1+":
            payload["unique_instance_id"] = unique_id
    uuid = lic.instance_uuid if modern else ""
    expected = {
        "license_md5": lic.md5, "license_sha256": lic.sha256, "instance_uuid": uuid,
        "unique_instance_id": unique_id if generation == "18.1+" else "",
        "hostname": lic.hostname if modern else "",
        "installation_id": hashlib.md5(f"{uuid}|{lic.hostname}".encode()).hexdigest() if modern else "",
        "gitlab_version": version if modern else "",
        "report_timestamp": reported if generation != "12.9" else datetime.combine(reported.date(), time(0), UTC),
        "report_date": reported.date(), "active_user_count": billable, "max_historical_user_count": max_users,
        "license_user_count": None,
        "add_on_metrics": add_ons if generation in ("add_on_metrics", "18.1+") else [],
        "payload_generation": {"13.0": "13.x", "14.x+license_md5": "14.x"}.get(generation, generation),
    }
    return payload, expected


def _break(report: GeneratedSeatLink, payload: dict[str, Any], defect: str) -> None:
    """Broken the way real clients and proxies break reports."""
    report.defect, report.expected = defect, None
    if defect == "no_license_key":
        payload.pop("license_key")
        report.status = 422
    elif defect == "no_timestamp":
        payload.pop("timestamp", None)
        payload.pop("date", None)
        report.status = 422
    elif defect == "not_json":
        report.body = orjson.dumps(payload)[:-20]  # cut off by a proxy
        report.status = 400
        return
    elif defect == "bad_timestamp":
        for name in ("timestamp", "date"):
            if name in payload:
                payload[name] = "yesterday at noon"
    elif defect == "users_not_integer":
        field_name = "billable_users_count" if "billable_users_count" in payload else "active_users"
        payload[field_name] = str(payload[field_name])
    elif defect == "bad_add_on_metrics":
        payload["add_on_metrics"] = {"duo_enterprise": 5}
    report.body = orjson.dumps(payload)


def generate_seat_links(instances: int, weeks: int, seed: int = 42, start: date = date(2026, 6, 1),
                        pings: Sequence[GeneratedPing] | None = None) -> list[GeneratedSeatLink]:
    """Daily reports of every licensed, non-trial instance of `generate_fleet(instances, weeks, seed, start)`."""
    by_week = _week_pings(pings if pings is not None else generate_fleet(instances, weeks, seed, start))
    rng = random.Random(f"denomas-seat-link:{seed}")
    reports: list[tuple[datetime, GeneratedSeatLink, dict[str, Any]]] = []
    licenses = sorted(fleet_licenses(instances, weeks, seed, start), key=lambda x: (x.instance_uuid, x.from_week))
    licensed = sorted({lic.instance_uuid for lic in licenses if not lic.trial})
    rng.shuffle(licensed)
    generations = {uuid: _GENERATION_CYCLE[n % len(_GENERATION_CYCLE)] for n, uuid in enumerate(licensed)}
    for lic in licenses:
        if lic.trial:
            continue  # trials do not sync seats
        generation = generations[lic.instance_uuid]
        key = lic.key + rng.choice(("", "\n", "\r\n"))  # how the instance stored it; the hash is the same
        add_ons = _add_ons(rng, lic)
        second = rng.randint(0, 59)
        weekly = by_week.get(lic.instance_uuid, {})
        versions = _week_versions(weekly)
        for day_index in range(weeks * 7):
            week = day_index // 7
            day = start + timedelta(days=day_index)
            if week < lic.from_week or day > lic.expires_at or week not in weekly:
                continue  # another license is installed, this one expired, or the instance stopped (churn)
            reported = datetime.combine(day - timedelta(days=1), time(12, 0, second), UTC)
            payload, expected = _report(generation, lic, key, weekly[week], versions[week], reported, add_ons)
            report = GeneratedSeatLink(lic.instance_uuid, generation, orjson.dumps(payload), key, expected=expected)
            reports.append((reported, report, payload))
    reports.sort(key=lambda item: (item[0], item[1].instance_uuid))
    _spoil(rng, reports)
    out: list[GeneratedSeatLink] = []
    for _, report, _ in reports:
        out.append(report)
        if report.resend:  # the retry follows soon after the first attempt
            out.append(GeneratedSeatLink(report.instance_uuid, report.generation, report.body, report.license_key,
                                         report.status, report.defect, resend=True))
            report.resend = False
    return out


def _spoil(rng: random.Random, reports: list[tuple[datetime, GeneratedSeatLink, dict[str, Any]]]) -> None:
    if not reports:
        return
    count = max(len(COLLECTOR_DEFECTS + AGENT_DEFECTS), round(len(reports) * DEFECT_RATE))
    chosen = sorted(rng.sample(range(len(reports)), min(count, len(reports))))
    defects = COLLECTOR_DEFECTS + AGENT_DEFECTS
    for n, position in enumerate(chosen):
        _, report, payload = reports[position]
        defect = defects[n % len(defects)]
        if defect == "bad_add_on_metrics" and "add_on_metrics" not in payload:
            defect = "users_not_integer"
        _break(report, payload, defect)
    for position in rng.sample(range(len(reports)), max(1, round(len(reports) * RESEND_RATE))):
        reports[position][1].resend = True


def seat_link_summary(reports: Sequence[GeneratedSeatLink]) -> dict[str, Any]:
    """The numbers the pipeline must reproduce."""
    return {
        "sent": len(reports),
        "accepted": sum(1 for r in reports if r.status == 200),
        "refused_by_collector": sum(1 for r in reports if r.status != 200),
        "landed": sum(1 for r in reports if r.expected is not None),
        "dead_letters": sum(1 for r in reports if r.status == 200 and r.defect),
        "resent": sum(1 for r in reports if r.resend),
        "generations": dict(Counter(r.generation for r in reports if r.expected is not None)),
    }


# ---------------------------------------------------------------------------------------------------
# Version Check


def encode_gitlab_info(info: dict[str, Any]) -> str:
    """As the instance does: Base64.urlsafe_encode64(info.to_json)."""
    return base64.urlsafe_b64encode(orjson.dumps(info)).decode()


def generate_version_checks(pings: Sequence[GeneratedPing], seed: int = 42) -> list[GeneratedVersionCheck]:
    """One check per ping, in the ping's order: the version it ran that week."""
    rng = random.Random(f"denomas-version-check:{seed}")
    style: dict[str, tuple[str, bool]] = {}
    checks = []
    for ping in pings:
        if ping.uuid not in style:  # per instance: json (server) or a badge (an admin's browser), edition sent?
            style[ping.uuid] = (rng.choices(("json", "svg", "png"), weights=(8, 1, 1))[0], rng.random() < 0.25)
        request_format, with_edition = style[ping.uuid]
        version, edition = ping.payload["version"], ping.payload.get("edition")
        info = {"version": version} | ({"edition": edition} if with_edition and edition else {})
        path = "/" if request_format == "json" else "/admin"
        check = GeneratedVersionCheck(ping.hostname, f"https://{ping.hostname}{path}", encode_gitlab_info(info),
                                      request_format, date.fromisoformat(ping.recorded_at[:10]))
        if ping.defect == "bad_version":
            check.status, check.defect = 400, "bad_version"
        else:
            major, minor, patch = (int(part) for part in version.split("-")[0].split("."))
            check.expected = {
                "version": version, "major_version": major, "minor_version": minor, "patch_version": patch,
                "edition": "EE" if version.endswith("-ee") else edition if with_edition and edition else "CE",
                "host": ping.hostname, "request_format": request_format,
            }
        checks.append(check)
    for n, position in enumerate(sorted(rng.sample(range(len(checks)), min(len(checks), 3)))):
        check = checks[position]
        check.defect, check.status, check.expected = CHECK_DEFECTS[n], 400, None
        check.gitlab_info = {"not_base64": "%%%not-base64%%%", "no_version": encode_gitlab_info({"revision": "abc"}),
                             "missing": None}[check.defect]
    return checks


def version_check_summary(checks: Sequence[GeneratedVersionCheck]) -> dict[str, Any]:
    return {
        "sent": len(checks),
        "accepted": sum(1 for c in checks if c.status == 200),
        "refused_by_collector": sum(1 for c in checks if c.status != 200),
        "landed": sum(1 for c in checks if c.expected is not None),
        "formats": dict(Counter(c.request_format for c in checks if c.expected is not None)),
    }


def landed_counts(warehouse: Warehouse) -> dict[str, int]:
    """What the warehouse holds for both sources, counted as queries see them (FINAL)."""
    def count(sql: str) -> int:
        return int(warehouse.query(sql).scalar())

    return {
        "seat_links": count("SELECT count() FROM fct_seat_link FINAL"),
        "seat_link_rejects": count("SELECT count() FROM raw_dead_letter FINAL WHERE source = 'seat_link'"),
        "version_checks": count("SELECT count() FROM fct_version_check FINAL"),
        "version_check_rejects": count("SELECT count() FROM raw_dead_letter FINAL WHERE source = 'version_check'"),
    }


# ---------------------------------------------------------------------------------------------------
# Sending over HTTP (the demo and the tests)


@dataclass
class SeatLinkReport:
    sent: int = 0
    accepted: int = 0
    refused: int = 0
    statuses: list[int] = field(default_factory=list)  # per payload, in the order given
    failures: list[str] = field(default_factory=list)


@dataclass
class VersionCheckReport:
    sent: int = 0
    accepted: int = 0
    refused: int = 0
    statuses: list[int] = field(default_factory=list)
    severities: list[str | None] = field(default_factory=list)  # what each check was answered
    answers: list[Any] = field(default_factory=list)  # JSON answers, the image bytes for badges, or the error
    failures: list[str] = field(default_factory=list)


async def _run_all(count: int, concurrency: int, send: Any, progress: ProgressCallback | None = None) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(count):
        queue.put_nowait(index)
    done = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while not queue.empty():
            await send(session, queue.get_nowait())
            done += 1
            if progress is not None:
                progress(done, count)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))


async def send_seat_links(url: str, payloads: Sequence[GeneratedSeatLink | bytes], concurrency: int = 8,
                          progress: ProgressCallback | None = None) -> SeatLinkReport:
    """POST each report to /api/v1/seat_links as the instance's worker does."""
    report = SeatLinkReport(statuses=[0] * len(payloads))
    headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": "Denomas/18.1.0"}

    async def send(session: aiohttp.ClientSession, index: int) -> None:
        item = payloads[index]
        body = item.body if isinstance(item, GeneratedSeatLink) else item
        async with session.post(f"{url}/api/v1/seat_links", data=body, headers=headers) as response:
            answer = await response.json(content_type=None)
        report.sent += 1
        report.statuses[index] = response.status
        if response.status == 200 and answer.get("success") is True:
            report.accepted += 1
        else:
            report.refused += 1
            report.failures.append(f"{response.status}: {answer.get('error')}")

    await _run_all(len(payloads), concurrency, send, progress)
    return report


async def send_version_checks(url: str, checks: Sequence[GeneratedVersionCheck], concurrency: int = 8,
                              progress: ProgressCallback | None = None) -> VersionCheckReport:
    """GET check.json (or the badge) with the instance's Referer and the day it asked (AS_OF_HEADER, honoured by a
    collector that allows replays); records the severity answered."""
    report = VersionCheckReport(statuses=[0] * len(checks), severities=[None] * len(checks),
                                answers=[None] * len(checks))

    async def send(session: aiohttp.ClientSession, index: int) -> None:
        check = checks[index]
        params = {"gitlab_info": check.gitlab_info} if check.gitlab_info is not None else {}
        headers = {"Referer": check.referer}
        if check.checked_on:
            headers[AS_OF_HEADER] = check.checked_on.isoformat()
        async with session.get(f"{url}/check.{check.request_format}", params=params, headers=headers) as response:
            body = await response.read()
            severity = response.headers.get("X-Denomas-Severity")
        report.sent += 1
        report.statuses[index] = response.status
        if response.status != 200:
            report.refused += 1
            report.answers[index] = orjson.loads(body)
            report.failures.append(f"{response.status}: {report.answers[index].get('error')}")
            return
        report.accepted += 1
        if check.request_format == "json":
            report.answers[index] = orjson.loads(body)
            severity = report.answers[index]["severity"]
        else:
            report.answers[index] = body
        report.severities[index] = severity

    await _run_all(len(checks), concurrency, send, progress)
    return report
