"""Pure Version Check logic: decoding `gitlab_info`, and the answer an instance gets for its version.

Severity (what the instance's badge shows: "Up to date", "Update available", "Update ASAP"):
  danger   it misses a security fix: a security release exists for its own minor with a higher patch, or
           a security round (the security releases of one day) fixed versions above it without a backport
           to its minor (its minor is no longer maintained)
  warning  anything else that is not the latest release: an older release (also the latest patch of an older
           minor), and every version the release list does not hold: never released (18.4.8 when 18.4 stops at
           18.4.7, 19.0.0), a pre-release (18.5.0-rc1, 18.6.0-pre: not a release, whatever it precedes), or a
           release not out yet on the day of the check. An unknown version is never "up to date".
  success  it runs the latest release (any edition suffix: 18.4.7-ee is 18.4.7)
Only releases published on or before the day of the check count. That day is today; a replaying sender (the demo
sends checks its fleet made weeks ago) may give an earlier day in the AS_OF_HEADER when the collector allows it.
latest_stable_version_of_minor is the newest release of the version's own minor, or the latest release when its
minor has none out (never an echo of a version that was not released).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from itertools import groupby
from typing import Any
from urllib.parse import urlsplit

import orjson

from streams.enrich.service_ping import Version, parse_version

MAX_GITLAB_INFO = 4096
AS_OF_HEADER = "X-Denomas-As-Of"  # YYYY-MM-DD: the day a replayed check was made (honoured only when allowed)
STABLE_VERSIONS = 3  # latest_stable_versions: the latest patch of this many newest minors
SEVERITIES = ("success", "warning", "danger")

VersionKey = tuple[int, int, int, int]


class InvalidCheck(ValueError):
    """A request whose gitlab_info cannot be used; the reason goes back to the client (HTTP 400)."""


@dataclass(frozen=True)
class Release:
    major: int
    minor: int
    patch: int
    release_date: date
    is_security: bool = False

    @property
    def version(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    @property
    def key(self) -> VersionKey:
        return (self.major, self.minor, self.patch, 1)


def version_key(version: Version) -> VersionKey:
    """Order of versions: a pre-release (18.2.0-pre, -rc1) comes before its release."""
    return (version.major, version.minor, version.patch, 0 if version.is_prerelease else 1)


# ---------------------------------------------------------------------------------------------------
# The request


def decode_gitlab_info(param: str | None) -> dict:
    """`Base64.urlsafe_encode64({version: ...}.to_json)` -> the JSON object. Tolerates missing padding and
    standard base64 (whose '+' arrives as a space when the client did not escape it)."""
    if not param:
        raise InvalidCheck('gitlab_info is missing; send ?gitlab_info=<url-safe base64 of {"version": "x.y.z"}>')
    if len(param) > MAX_GITLAB_INFO:
        raise InvalidCheck(f"gitlab_info longer than {MAX_GITLAB_INFO} characters")
    text = param.strip().replace(" ", "+").replace("+", "-").replace("/", "_").rstrip("=")
    text += "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(text, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidCheck(f"gitlab_info is not base64: {exc}") from exc
    try:
        info = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidCheck(f"gitlab_info does not decode to JSON: {exc}") from exc
    if not isinstance(info, dict):
        raise InvalidCheck(f"gitlab_info must decode to a JSON object, got {type(info).__name__}")
    return info


def checked_version(info: dict) -> tuple[str, Version]:
    """The version text as sent and its parsed form."""
    text = info.get("version")
    if not isinstance(text, str) or not text.strip():
        raise InvalidCheck('gitlab_info has no "version" string')
    try:
        version = parse_version(text)
    except ValueError as exc:
        raise InvalidCheck(f"gitlab_info version {text[:40]!r} is not major.minor.patch") from exc
    if max(version.major, version.minor, version.patch) > 65535:
        raise InvalidCheck(f"gitlab_info version {text[:40]!r} has a part above 65535")
    return text.strip(), version


def edition_of(version: Version, info: dict) -> str:
    """EE for an `-ee` version (EE packages carry the suffix), else the `edition` sent in gitlab_info, else CE."""
    if version.edition_suffix:
        return "EE"
    edition = info.get("edition")
    if isinstance(edition, str) and edition.strip():
        return edition.strip()[:32]
    return "CE"


def host_from_referer(referer: str | None) -> str:
    """The host of the page (or instance URL) that asked; empty when there is no usable Referer."""
    if not referer:
        return ""
    text = referer.strip()
    try:
        parts = urlsplit(text if "//" in text else "//" + text)
        return (parts.hostname or "")[:255]
    except ValueError:
        return ""


# ---------------------------------------------------------------------------------------------------
# The answer


@dataclass(frozen=True)
class Answer:
    severity: str
    latest_version: str
    latest_stable_versions: list[str]
    latest_stable_version_of_minor: str
    missed_security_releases: list[str] = field(default_factory=list)

    @property
    def critical_vulnerability(self) -> bool:
        return self.severity == "danger"

    @property
    def details(self) -> str:
        if not self.missed_security_releases:
            return ""
        missed = ", ".join(self.missed_security_releases[-3:])
        return f"Security releases missed: {missed}. Upgrade to {self.latest_version}."

    def as_json(self) -> dict[str, Any]:
        """The check.json body, with the fields instances read (formats.md section 4.2)."""
        return {
            "latest_stable_versions": self.latest_stable_versions,
            "latest_stable_version_of_minor": self.latest_stable_version_of_minor,
            "latest_version": self.latest_version,
            "severity": self.severity,
            "critical_vulnerability": self.critical_vulnerability,
            "details": self.details,
        }


def released(releases: Sequence[Release], as_of: date) -> list[Release]:
    """Releases out on `as_of`, oldest version first."""
    return sorted((r for r in releases if r.release_date <= as_of), key=lambda r: r.key)


def missed_security_releases(key: VersionKey, known: Sequence[Release]) -> list[Release]:
    """Security fixes a version lacks, one security round (the security releases of one day) at a time."""
    security = sorted((r for r in known if r.is_security), key=lambda r: (r.release_date, r.key))
    missed: list[Release] = []
    for _, group in groupby(security, key=lambda r: r.release_date):
        round_ = list(group)
        if max(r.key for r in round_) <= key:
            continue  # at or above everything this round fixed
        own_line = [r for r in round_ if (r.major, r.minor) == key[:2]]
        if own_line:  # backported to its minor: only a higher patch of that minor is missing
            missed.extend(r for r in own_line if r.key > key)
        else:  # its minor got no fix: the nearest newer release of the round is the way out
            missed.append(min((r for r in round_ if r.key > key), key=lambda r: r.key))
    return sorted(missed, key=lambda r: r.key)


def assess(version: Version, releases: Sequence[Release], as_of: date) -> Answer:
    """What check.json answers for `version` on `as_of`. Raises LookupError when no release is known."""
    known = released(releases, as_of)
    if not known:
        raise LookupError(f"no release published on or before {as_of}")
    key = version_key(version)
    newest_of_minor = {(r.major, r.minor): r for r in known}  # oldest first, so the last patch wins
    stable = [newest_of_minor[m].version for m in sorted(newest_of_minor, reverse=True)[:STABLE_VERSIONS]]
    latest = known[-1]
    own = newest_of_minor.get((version.major, version.minor), latest)
    missed = missed_security_releases(key, known)
    severity = "danger" if missed else "success" if key == latest.key else "warning"
    return Answer(severity, latest.version, stable, own.version, [r.version for r in missed])


def answer_day(header: str | None, today: date, replay_allowed: bool) -> date:
    """The day a check is answered as of: today, or the earlier day a replaying sender gives in AS_OF_HEADER when
    the collector allows replays. Raises InvalidCheck for a header that is not a day up to today."""
    if not replay_allowed or not header:
        return today
    try:
        day = date.fromisoformat(header.strip())
    except ValueError as exc:
        raise InvalidCheck(f"{AS_OF_HEADER} must be a day YYYY-MM-DD, got {header[:40]!r}") from exc
    if day > today:
        raise InvalidCheck(f"{AS_OF_HEADER} {day} is after today ({today}): a check cannot be answered ahead")
    return day
