"""Version Check: gitlab_info decoding, the severity rules, the release list (CSV, table, CLI, live reload),
the badges, and the endpoints end to end on real parts (HTTP -> Kafka -> Faust worker -> chdb).

Severities and versions expected here are worked out by hand from the small release lists below.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import struct
import zlib
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import orjson
import pytest

from fleet.ping_catalog import RELEASES as FLEET_RELEASES
from fleet.pings import generate_fleet
from fleet.seat_link import (
    encode_gitlab_info,
    generate_version_checks,
    landed_counts,
    send_version_checks,
    version_check_summary,
)
from streams import cli
from streams.agents import version_check as version_check_agent
from streams.agents.common import Rejected
from streams.collector import RunningCollector
from streams.collector.badge import BADGES, png, svg
from streams.config import Settings
from streams.enrich.service_ping import parse_version
from streams.enrich.version_check import (
    AS_OF_HEADER,
    InvalidCheck,
    Release,
    answer_day,
    assess,
    checked_version,
    decode_gitlab_info,
    edition_of,
    host_from_referer,
)
from streams.kafka.topics import ensure_topics
from streams.releases import (
    SEED_CSV,
    ReleaseBook,
    parse_releases_csv,
    read_releases_csv,
    releases_path,
    write_releases_csv,
)
from streams.warehouse import open_warehouse
from tests.support.pipeline import running_pipeline

# --- gitlab_info -----------------------------------------------------------------------------------


def test_gitlab_info_as_instances_encode_it():
    # Base64.urlsafe_encode64({version: "16.1.6"}.to_json), the example in formats.md 4.1
    assert decode_gitlab_info("eyJ2ZXJzaW9uIjoiMTYuMS42In0=") == {"version": "16.1.6"}
    assert decode_gitlab_info("eyJ2ZXJzaW9uIjoiMTYuMS42In0") == {"version": "16.1.6"}  # padding dropped
    info = {"version": "18.1.2-ee", "edition": "EEP", "x": "ü?>>"}
    standard = base64.b64encode(orjson.dumps(info)).decode()
    assert "+" in standard or "/" in standard
    assert decode_gitlab_info(standard) == info
    assert decode_gitlab_info(standard.replace("+", " ")) == info  # unescaped '+' arrives as a space


@pytest.mark.parametrize(("param", "reason"), [
    (None, "missing"),
    ("", "missing"),
    ("%%%", "not base64"),
    ("e" * 5000, "longer than"),
    (base64.urlsafe_b64encode(b"version=1").decode(), "JSON"),
    (base64.urlsafe_b64encode(b'["18.1.0"]').decode(), "JSON object"),
])
def test_unusable_gitlab_info_is_refused_with_a_reason(param, reason):
    with pytest.raises(InvalidCheck) as info:
        decode_gitlab_info(param)
    assert reason in str(info.value)


@pytest.mark.parametrize("info", [{}, {"version": 18}, {"version": " "}, {"version": "18.1"}, {"version": "v18"},
                                  {"version": "18.70000.1"}])
def test_a_check_needs_a_major_minor_patch_version(info):
    with pytest.raises(InvalidCheck):
        checked_version(info)


def test_edition_and_host():
    assert edition_of(parse_version("18.1.2-ee"), {"edition": "CE"}) == "EE"
    assert edition_of(parse_version("18.1.2"), {"edition": "EEU"}) == "EEU"
    assert edition_of(parse_version("18.1.2"), {}) == "CE"
    assert edition_of(parse_version("18.2.0-pre"), {"edition": ""}) == "CE"
    assert host_from_referer("https://Git.Example.com:8443/admin?x=1") == "git.example.com"
    assert host_from_referer("http://10.0.0.7/help") == "10.0.0.7"
    assert host_from_referer("gitlab.internal/admin") == "gitlab.internal"
    assert host_from_referer(None) == host_from_referer("") == ""


# --- severity --------------------------------------------------------------------------------------

D = date(2025, 1, 1)


def r(version: str, day: int, security: bool = False) -> Release:
    major, minor, patch = (int(x) for x in version.split("."))
    return Release(major, minor, patch, D + timedelta(days=day), security)


# Minors 17.10, 17.11, 18.0, 18.1. Security round of day 40 fixed 18.0 (18.0.1) and 17.11 (17.11.3), not 17.10;
# the round of day 70 fixed 18.1, 18.0 and 17.11. 18.2.0 is announced for day 1000 (not out on the days used).
RELEASES = [
    r("17.10.0", 0), r("17.10.5", 20),
    r("17.11.0", 10), r("17.11.2", 30), r("17.11.3", 40, True), r("17.11.4", 70, True),
    r("18.0.0", 20), r("18.0.1", 40, True), r("18.0.2", 60), r("18.0.3", 70, True),
    r("18.1.0", 50), r("18.1.1", 60), r("18.1.2", 70, True), r("18.1.3", 75),
    r("18.2.0", 1000),
]
DAY_65, DAY_80 = D + timedelta(days=65), D + timedelta(days=80)

SEVERITY_CASES = [
    # version, as_of, severity, latest_version, latest_stable_version_of_minor, missed security releases
    ("18.1.1", DAY_65, "success", "18.1.1", "18.1.1", []),
    ("18.1.1-ee", DAY_65, "success", "18.1.1", "18.1.1", []),
    ("18.1.0", DAY_65, "warning", "18.1.1", "18.1.1", []),  # behind, but newer than all the day-40 fixes
    ("18.0.2", DAY_65, "warning", "18.1.1", "18.0.2", []),
    ("18.0.1", DAY_65, "warning", "18.1.1", "18.0.2", []),
    ("18.0.0", DAY_65, "danger", "18.1.1", "18.0.2", ["18.0.1"]),  # missed its own minor's fix
    ("17.11.3", DAY_65, "warning", "18.1.1", "17.11.3", []),  # has the backport
    ("17.11.2", DAY_65, "danger", "18.1.1", "17.11.3", ["17.11.3"]),
    ("17.10.5", DAY_65, "danger", "18.1.1", "17.10.5", ["17.11.3"]),  # 17.10 got no backport: nearest fix
    ("18.2.0-pre", DAY_65, "warning", "18.1.1", "18.1.1", []),  # a pre-release is not a release: not up to date
    ("18.1.3", DAY_80, "success", "18.1.3", "18.1.3", []),
    ("18.1.2", DAY_80, "warning", "18.1.3", "18.1.3", []),
    ("18.1.1", DAY_80, "danger", "18.1.3", "18.1.3", ["18.1.2"]),
    ("18.0.3", DAY_80, "warning", "18.1.3", "18.0.3", []),
    ("18.0.2", DAY_80, "danger", "18.1.3", "18.0.3", ["18.0.3"]),
    ("18.0.0", DAY_80, "danger", "18.1.3", "18.0.3", ["18.0.1", "18.0.3"]),
    ("17.11.2", DAY_80, "danger", "18.1.3", "17.11.4", ["17.11.3", "17.11.4"]),
    ("17.10.5", DAY_80, "danger", "18.1.3", "17.10.5", ["17.11.3", "17.11.4"]),
    ("18.1.2-pre", DAY_80, "danger", "18.1.3", "18.1.3", ["18.1.2"]),  # a pre-release comes before its release
    ("18.1.3-rc1", DAY_80, "warning", "18.1.3", "18.1.3", []),  # the release it precedes is out
    # never released: unknown, so never up to date; the minor's answer is a real release, not an echo
    ("18.1.5", DAY_80, "warning", "18.1.3", "18.1.3", []),  # above the last patch of the newest minor
    ("18.0.5", DAY_80, "warning", "18.1.3", "18.0.3", []),  # above the last patch of an older minor
    ("19.0.0", DAY_80, "warning", "18.1.3", "18.1.3", []),  # a major nobody released
    ("17.9.9", DAY_80, "danger", "18.1.3", "18.1.3", ["17.11.3", "17.11.4"]),  # unknown and below the fixes
    # 18.2.0 is dated day 1000: not out on day 80 (an instance running it is not up to date), out on day 1000
    ("18.2.0", DAY_80, "warning", "18.1.3", "18.1.3", []),
    ("18.2.0", D + timedelta(days=1000), "success", "18.2.0", "18.2.0", []),
]

# The latest patch of each minor on day 80, worked out by hand: only the newest minor's is up to date; 18.0 and 17.11
# got the day-70 fixes; 17.10 got none of the fixes after day 20.
LATEST_PATCH_ON_DAY_80 = {"18.1.3": "success", "18.0.3": "warning", "17.11.4": "warning", "17.10.5": "danger"}


@pytest.mark.parametrize(("version", "as_of", "severity", "latest", "of_minor", "missed"), SEVERITY_CASES)
def test_severity(version, as_of, severity, latest, of_minor, missed):
    answer = assess(parse_version(version), RELEASES, as_of)
    assert (answer.severity, answer.latest_version, answer.latest_stable_version_of_minor,
            answer.missed_security_releases) == (severity, latest, of_minor, missed)
    body = answer.as_json()
    assert body["critical_vulnerability"] is (severity == "danger")
    assert (body["details"] == "") is (severity != "danger")
    assert set(body) == {"latest_stable_versions", "latest_stable_version_of_minor", "latest_version", "severity",
                         "critical_vulnerability", "details"}


def test_latest_patch_of_each_minor():
    newest = {(x.major, x.minor): x.version for x in sorted(RELEASES, key=lambda x: x.key) if x.release_date <= DAY_80}
    assert set(newest.values()) == set(LATEST_PATCH_ON_DAY_80)  # every minor out on day 80 is covered
    for version, severity in LATEST_PATCH_ON_DAY_80.items():
        answer = assess(parse_version(version), RELEASES, DAY_80)
        assert (answer.severity, answer.latest_stable_version_of_minor) == (severity, version)
        assert assess(parse_version(version + "-ee"), RELEASES, DAY_80).severity == severity


def test_a_check_is_answered_as_of_today_unless_a_replay_is_allowed():
    today = date(2026, 12, 5)
    assert answer_day(None, today, replay_allowed=True) == today
    assert answer_day("2026-06-10", today, replay_allowed=False) == today  # the header alone changes nothing
    assert answer_day("2026-06-10", today, replay_allowed=True) == date(2026, 6, 10)
    for header, reason in (("yesterday", "YYYY-MM-DD"), ("2026-12-06", "after today")):
        with pytest.raises(InvalidCheck, match=reason):
            answer_day(header, today, replay_allowed=True)


def test_fleet_checks_answered_on_their_own_day_are_not_all_danger():
    releases = read_releases_csv(SEED_CSV)
    checks = [c for c in generate_version_checks(generate_fleet(20, 12, seed=42), 42) if c.expected]
    on_their_day: dict[str, int] = {}
    for check in checks:
        answer = assess(checked_version(decode_gitlab_info(check.gitlab_info))[1], releases, check.checked_on)
        on_their_day[answer.severity] = on_their_day.get(answer.severity, 0) + 1
        latest = next(x for x in releases if x.version == answer.latest_version)
        assert latest.release_date <= check.checked_on  # nothing released after the check counts
    assert set(on_their_day) == {"success", "warning", "danger"}
    # the same checks answered in 2027 (every listed release out) miss fixes: the answer depends on the day
    late = [assess(checked_version(decode_gitlab_info(c.gitlab_info))[1], releases, date(2027, 12, 31)).severity
            for c in checks]
    assert set(late) == {"danger"}


def test_latest_stable_versions_are_the_newest_minors_latest_patches():
    assert assess(parse_version("17.10.0"), RELEASES, DAY_65).latest_stable_versions == ["18.1.1", "18.0.2",
                                                                                         "17.11.3"]
    assert assess(parse_version("17.10.0"), RELEASES, D + timedelta(days=1000)).latest_stable_versions == [
        "18.2.0", "18.1.3", "18.0.3"]


def test_no_release_out_yet_is_an_error_not_an_answer():
    with pytest.raises(LookupError):
        assess(parse_version("18.1.0"), RELEASES, D - timedelta(days=1))


# --- the release list ------------------------------------------------------------------------------


def test_seed_releases_cover_the_sample_fleet():
    releases = read_releases_csv(SEED_CSV)
    with SEED_CSV.open() as f:
        rows = list(csv.DictReader(f))
    assert len(releases) == len(rows) > 100
    minors = {(r.major, r.minor) for r in releases}
    assert set(FLEET_RELEASES) <= minors
    fleet_start = date(2026, 6, 1)
    by_version = {r.version: r for r in releases}
    latest_at_start = FLEET_RELEASES.index((18, 1))
    for index, (major, minor) in enumerate(FLEET_RELEASES[latest_at_start:]):
        # the fleet upgrades to minor n from week 4n on: it must be out by then
        assert by_version[f"{major}.{minor}.0"].release_date <= fleet_start + timedelta(weeks=4 * index)
    for ping in generate_fleet(20, 8, seed=2):
        if ping.defect == "bad_version":
            continue
        version = parse_version(ping.payload["version"])
        assert (version.major, version.minor) in minors
    assert any(r.is_security for r in releases) and not all(r.is_security for r in releases)


@pytest.mark.parametrize(("text", "error"), [
    ("version,release_date\n18.1.0,2026-01-01\n", "needs columns"),
    ("version,release_date,is_security\n18.1,2026-01-01,false\n", "line 2"),
    ("version,release_date,is_security\n18.1.0-ee,2026-01-01,false\n", "plain release"),
    ("version,release_date,is_security\n18.1.0,2026-13-01,false\n", "release_date"),
    ("version,release_date,is_security\n18.1.0,2026-01-01,maybe\n", "is_security"),
    ("version,major,release_date,is_security\n18.1.0,17,2026-01-01,false\n", "disagrees"),
    ("version,release_date,is_security\n18.1.0,2026-01-01,false\n18.1.0,2026-01-02,true\n", "line 3"),
])
def test_bad_release_files_are_refused_with_the_line(text, error):
    with pytest.raises(ValueError) as info:
        parse_releases_csv(text)
    assert error in str(info.value)


def test_release_book_reloads_a_changed_file_and_keeps_the_last_good_list(tmp_path):
    path = tmp_path / "releases.csv"
    write_releases_csv(path, RELEASES[:3])
    book = ReleaseBook(path, poll=0.0)
    assert book.releases() == sorted(RELEASES[:3], key=lambda x: x.key)
    write_releases_csv(path, RELEASES)
    assert len(book.releases()) == len(RELEASES)
    path.write_text("version,release_date,is_security\n18.1,2026-01-01,false\n")
    assert len(book.releases()) == len(RELEASES)  # broken file: the last good list stays
    assert book.reloads == 2
    assert releases_path(Settings(data_dir=tmp_path / "nothing")) == SEED_CSV
    assert releases_path(Settings(data_dir=tmp_path)) == path
    assert releases_path(Settings(data_dir=tmp_path, releases_csv=tmp_path / "x.csv")) == tmp_path / "x.csv"


# --- badges ----------------------------------------------------------------------------------------


def _png_pixels(data: bytes) -> tuple[int, int, bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, position = {}, 8
    while position < len(data):
        (length,) = struct.unpack(">I", data[position:position + 4])
        tag, body = data[position + 4:position + 8], data[position + 8:position + 8 + length]
        assert struct.unpack(">I", data[position + 8 + length:position + 12 + length])[0] == zlib.crc32(tag + body)
        chunks[tag] = body
        position += 12 + length
    width, height, depth, color = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, color) == (8, 2)
    return width, height, zlib.decompress(chunks[b"IDAT"])


@pytest.mark.parametrize("severity", ["success", "warning", "danger"])
def test_badges_say_what_the_severity_means(severity):
    text, (red, green, blue) = BADGES[severity]
    assert {"success": "up-to-date", "warning": "update available", "danger": "update asap"}[severity] == text
    assert f">{text}</text>".encode() in svg(severity)
    width, height, raw = _png_pixels(png(severity))
    assert len(raw) == height * (1 + 3 * width)
    pixels = {raw[i:i + 3] for row in range(height) for i in range(row * (1 + 3 * width) + 1,
                                                                    (row + 1) * (1 + 3 * width), 3)}
    assert pixels == {bytes((red, green, blue)), b"\xff\xff\xff"}  # background and white lettering
    assert width > height > 0


# --- the agent -------------------------------------------------------------------------------------


class _Message:
    topic, partition, offset = "t", 1, 7


def test_agent_normalizes_what_the_collector_published_and_rejects_the_rest():
    headers = {"received_at": "2026-06-01T10:00:00.000+00:00", "request_id": "abc"}
    envelope = {"gitlab_info": encode_gitlab_info({"version": "18.1.2-ee"}), "referer": "https://git.a.example/",
                "format": "png", "severity": "warning", "latest_version": "18.3.0"}
    record = version_check_agent.normalize(orjson.dumps(envelope), headers, _Message())
    record.pop("check_id")
    assert record == {"checked_at": "2026-06-01T10:00:00.000+00:00", "version": "18.1.2-ee", "major_version": 18,
                      "minor_version": 1, "patch_version": 2, "prerelease": "", "edition": "EE",
                      "host": "git.a.example", "severity": "warning", "latest_version": "18.3.0",
                      "request_format": "png"}
    same = version_check_agent.normalize(orjson.dumps(envelope), headers, _Message())["check_id"]
    other = version_check_agent.normalize(orjson.dumps(envelope), headers | {"request_id": "x"}, _Message())
    assert same != other["check_id"]
    for bad in (b"nope", b"[]", orjson.dumps(envelope | {"gitlab_info": "%%"}),
                orjson.dumps(envelope | {"severity": "fine"}), orjson.dumps(envelope | {"format": "gif"})):
        with pytest.raises(Rejected):
            version_check_agent.normalize(bad, headers, _Message())


# --- end to end ------------------------------------------------------------------------------------


def _csv(releases: list[Release]) -> str:
    lines = ["version,release_date,is_security"]
    lines += [f"{x.version},{x.release_date.isoformat()},{str(x.is_security).lower()}" for x in releases]
    return "\n".join(lines) + "\n"


TODAY = datetime.now(UTC).date()
# The same shape as RELEASES, but every release is out already (the collector uses today's date).
LIVE = [Release(x.major, x.minor, x.patch, TODAY - timedelta(days=200 - (x.release_date - D).days), x.is_security)
        for x in RELEASES if x.version != "18.2.0"] + [Release(18, 2, 0, TODAY + timedelta(days=30))]
CHECKS = [
    # gitlab_info, Referer, format -> expected status, and the row (version, edition, host, severity)
    ({"version": "18.1.3"}, "https://git.up.example/admin", "json", 200, ("18.1.3", "CE", "git.up.example", "success")),
    ({"version": "18.1.1-ee"}, "https://git.b.example/", "json", 200, ("18.1.1-ee", "EE", "git.b.example", "danger")),
    ({"version": "18.0.3", "edition": "EEP"}, "https://c.example/help", "svg", 200,
     ("18.0.3", "EEP", "c.example", "warning")),
    ({"version": "17.10.5"}, "https://d.example/admin", "png", 200, ("17.10.5", "CE", "d.example", "danger")),
    ({"version": "18.1.2"}, None, "json", 200, ("18.1.2", "CE", "", "warning")),
    ({"version": "18.2.0-pre"}, "http://gdk.test:3000/", "json", 200, ("18.2.0-pre", "CE", "gdk.test", "warning")),
    ({"version": "18.1"}, "https://e.example/", "json", 400, None),
    ({"revision": "abc"}, "https://e.example/", "svg", 400, None),
    ("%%%", "https://e.example/", "png", 400, None),
    (None, "https://e.example/", "json", 400, None),
]


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    name = tmp_path_factory.mktemp("vc").name
    data_dir = tmp_path_factory.mktemp("data")
    releases = data_dir / "live-releases.csv"
    releases.write_text(_csv(LIVE))
    return Settings.from_env(data_dir=data_dir, topic_prefix=f"t-{name}.", app_id=f"test-{name}",
                             topic_partitions=3, sink_batch_size=50, releases_csv=releases)


@pytest.fixture(scope="module")
def pipeline_run(kafka_bootstrap, settings):
    """Checks over HTTP; then the operator adds a security release and the same instance asks again."""
    import aiohttp

    fleet_pings = generate_fleet(6, 2, seed=4)
    fleet_checks = generate_version_checks(fleet_pings, seed=4)

    async def get(http, gitlab_info, referer, request_format):
        params = {} if gitlab_info is None else {
            "gitlab_info": gitlab_info if isinstance(gitlab_info, str) else encode_gitlab_info(gitlab_info)}
        headers = {"Referer": referer} if referer else {}
        async with http.get(f"{url}/check.{request_format}", params=params, headers=headers) as response:
            return response.status, response.headers.get("Content-Type"), await response.read()

    async def run():
        nonlocal url
        async with running_pipeline(settings, kafka_bootstrap) as pipeline:
            url = pipeline.url
            async with aiohttp.ClientSession() as http:
                answers = [await get(http, *check[:3]) for check in CHECKS]
                fleet_report = await send_version_checks(url, fleet_checks)
                # the operator publishes 18.1.4 as a security release: the running collector picks it up
                write_releases_csv(settings.releases_csv, LIVE + [Release(18, 1, 4, TODAY, True)])
                await asyncio.sleep(1.1)  # the collector looks at the file at most once a second
                later = await get(http, {"version": "18.1.3"}, "https://git.up.example/admin", "json")
            await pipeline.landed()
            return answers, later, fleet_report

    url = ""
    answers, later, fleet_report = asyncio.run(run())
    return {"answers": answers, "later": later, "fleet_checks": fleet_checks, "fleet_report": fleet_report}


def _query(settings: Settings, sql: str):
    warehouse = open_warehouse(settings)
    try:
        return warehouse.query(sql).rows
    finally:
        warehouse.close()


@pytest.mark.integration
def test_endpoints_answer_json_and_badges_as_clients_expect(pipeline_run):
    for (_, _, request_format, status, row), (got_status, content_type, body) in zip(
            CHECKS, pipeline_run["answers"], strict=True):
        assert got_status == status
        if status != 200:
            assert content_type.startswith("application/json") and orjson.loads(body)["error"]
        elif request_format == "json":
            answer = orjson.loads(body)
            assert answer["severity"] == row[3]
            assert answer["latest_version"] == "18.1.3"  # 18.2.0 is announced, not out
            assert answer["latest_stable_versions"] == ["18.1.3", "18.0.3", "17.11.4"]
        elif request_format == "svg":
            assert content_type == "image/svg+xml" and body == svg(row[3])
        else:
            assert content_type == "image/png" and body == png(row[3])
    status, _, body = pipeline_run["later"]
    assert status == 200
    assert orjson.loads(body)["severity"] == "danger"  # missed the security release added while running
    assert orjson.loads(body)["latest_version"] == "18.1.4"


@pytest.mark.integration
def test_every_check_lands_with_what_it_was_answered(pipeline_run, settings):
    expected = [row for *_, status, row in CHECKS if status == 200]
    expected.append(("18.1.3", "CE", "git.up.example", "danger"))  # the check after the reload
    fleet, report = pipeline_run["fleet_checks"], pipeline_run["fleet_report"]
    assert report.statuses == [c.status for c in fleet]
    for check, severity in zip(fleet, report.severities, strict=True):
        if check.expected:
            e = check.expected
            expected.append((e["version"], e["edition"], e["host"], severity))
    rows = _query(settings, "SELECT version, edition, host, severity FROM fct_version_check FINAL")
    assert sorted(rows) == sorted(expected)
    formats = _query(settings, "SELECT request_format, count() FROM fct_version_check FINAL GROUP BY 1")
    wanted: dict[str, int] = {}
    for _, _, request_format, status, _ in CHECKS:
        wanted[request_format] = wanted.get(request_format, 0) + (status == 200)
    for check in fleet:
        wanted[check.request_format] = wanted.get(check.request_format, 0) + (check.status == 200)
    wanted["json"] += 1
    assert {f: int(n) for f, n in formats} == {f: n for f, n in wanted.items() if n}
    parts = _query(settings, "SELECT version, major_version, minor_version, patch_version FROM fct_version_check")
    for version, major, minor, patch in parts:
        assert version.split("-")[0] == f"{major}.{minor}.{patch}"
    warehouse = open_warehouse(settings)
    try:
        counts = landed_counts(warehouse)
    finally:
        warehouse.close()
    summary = version_check_summary(fleet)
    assert counts["version_checks"] == len(expected) == summary["landed"] + 7
    assert counts["version_check_rejects"] == 0  # the collector refused every bad check itself


@pytest.mark.integration
def test_a_collector_that_allows_replays_answers_as_of_the_day_given(kafka_bootstrap, settings):
    """18.0.2 on day 65 of LIVE was a release behind (warning); today it misses the day-70 fix 18.0.3 (danger)."""
    import aiohttp

    day_65 = (TODAY - timedelta(days=135)).isoformat()
    param = encode_gitlab_info({"version": "18.0.2"})

    async def ask(replay: bool, day: str) -> tuple[int, dict]:
        collector = RunningCollector(kafka_bootstrap, replace(settings, version_check_replay=replay))
        url = await collector.start()
        try:
            async with aiohttp.ClientSession() as http, http.get(
                    f"{url}/check.json", params={"gitlab_info": param}, headers={AS_OF_HEADER: day}) as response:
                return response.status, orjson.loads(await response.read())
        finally:
            await collector.stop()

    async def run() -> list[tuple[int, dict]]:
        await ensure_topics(kafka_bootstrap, settings)
        # tomorrow as of the request, not of the import: a suite may run across midnight (UTC)
        tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
        return [await ask(replay, day) for replay, day in ((True, day_65), (False, day_65), (True, tomorrow))]

    (replayed, answer), (ignored, today_answer), (ahead, error) = asyncio.run(run())
    assert (replayed, answer["severity"], answer["latest_version"]) == (200, "warning", "18.1.1")
    assert (ignored, today_answer["severity"]) == (200, "danger")
    assert ahead == 400 and "after today" in error["error"]


@pytest.mark.integration
def test_worker_seeds_the_release_table_and_the_cli_loads_more(pipeline_run, settings, tmp_path, monkeypatch):
    with SEED_CSV.open() as f:
        seed = {(row["version"], row["release_date"], row["is_security"] == "true") for row in csv.DictReader(f)}
    query = "SELECT version, toString(release_date), is_security FROM dim_app_release FINAL"
    assert {(v, d, bool(s)) for v, d, s in _query(settings, query)} == seed

    monkeypatch.setenv("DENOMAS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("DENOMAS_WAREHOUSE_DATABASE", settings.warehouse_database)  # the pipeline's warehouse
    monkeypatch.delenv("DENOMAS_RELEASES_CSV", raising=False)
    bad = tmp_path / "bad.csv"
    bad.write_text("version,release_date,is_security\n18.12.0,2027-07-01,false\n18.12,2027-07-02,false\n")
    assert cli.main(["releases", "load", str(bad)]) == 1
    assert len(_query(settings, query)) == len(seed)  # nothing of a bad file is loaded

    update = tmp_path / "update.csv"
    update.write_text("version,release_date,is_security\n18.12.0,2027-07-08,false\n18.6.0,2026-10-15,true\n")
    assert cli.main(["releases", "load", str(update)]) == 0
    after = {(v, d, bool(s)) for v, d, s in _query(settings, query)}
    corrected = {row for row in seed if row[0] != "18.6.0"} | {("18.6.0", "2026-10-15", True),
                                                             ("18.12.0", "2027-07-08", False)}
    assert after == corrected
    live = settings.data_dir / "releases.csv"  # the collector's copy now holds the whole table
    assert {(x.version, x.release_date.isoformat(), x.is_security) for x in read_releases_csv(live)} == corrected
    assert releases_path(Settings.from_env()) == live


def test_fleet_checks_describe_what_they_send():
    pings = generate_fleet(12, 3, seed=9)
    checks = generate_version_checks(pings, seed=9)
    assert len(checks) == len(pings)
    assert [c.checked_on.isoformat() for c in checks] == [p.recorded_at[:10] for p in pings]  # the ping's day
    assert {c.request_format for c in checks} <= {"json", "svg", "png"}
    for check in checks:
        if check.expected is None:
            assert check.status == 400
            continue
        info = decode_gitlab_info(check.gitlab_info)
        assert info["version"] == check.expected["version"]
        assert check.referer.startswith(f"https://{check.expected['host']}/")
    assert sum(c.expected is None for c in checks) >= 3
