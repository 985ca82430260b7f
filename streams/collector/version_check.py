"""Version Check endpoints (formats.md section 4): `GET /check.json` for the instance's server, and the
`/check.svg` and `/check.png` badges older admin pages load in the browser.

Answers come from the release list (`streams.releases.ReleaseBook`, a CSV reloaded when it changes); each
check is published to the raw topic, keyed by the host of the Referer, with the answer it got.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from aiohttp import web

from streams.collector import badge
from streams.collector.common import BadRequest, Collector, safe_text
from streams.config import TOPIC_RAW_VERSION_CHECK
from streams.enrich.version_check import (
    AS_OF_HEADER,
    InvalidCheck,
    answer_day,
    assess,
    checked_version,
    decode_gitlab_info,
    host_from_referer,
)
from streams.releases import ReleaseBook, releases_path

CONTENT_TYPES = {"json": "application/json", "svg": "image/svg+xml", "png": "image/png"}
SEVERITY_HEADER = "X-Denomas-Severity"  # the answer in a header too, so image clients (and tests) can read it


def optional_text(value: str | None) -> str | None:
    return None if value is None else safe_text(value)


def routes(collector: Collector) -> list[web.RouteDef]:
    topic = collector.settings.topic(TOPIC_RAW_VERSION_CHECK)
    book = ReleaseBook(releases_path(collector.settings))

    async def check(request: web.Request, request_format: str) -> web.Response:
        try:
            param = request.query.get("gitlab_info")
        except (UnicodeError, ValueError) as exc:
            raise BadRequest(400, f"query string cannot be decoded: {exc}") from exc
        try:
            _, version = checked_version(decode_gitlab_info(param))
            as_of = answer_day(request.headers.get(AS_OF_HEADER), datetime.now(UTC).date(),
                               collector.settings.version_check_replay)
        except InvalidCheck as exc:
            raise BadRequest(400, str(exc)) from exc
        try:
            answer = assess(version, book.releases(), as_of)
        except LookupError as exc:
            raise BadRequest(503, f"no release list to compare with ({exc}); load releases") from exc
        referer = optional_text(request.headers.get("Referer"))
        record = {"gitlab_info": param, "referer": referer,
                  "user_agent": optional_text(request.headers.get("User-Agent")),
                  "format": request_format, "severity": answer.severity, "latest_version": answer.latest_version}
        await collector.publish(topic, host_from_referer(referer) or None, orjson.dumps(record),
                                collector.receipt("version_check", request_format))
        headers = {"Cache-Control": "no-cache", SEVERITY_HEADER: answer.severity}
        if request_format == "json":
            return web.json_response(answer.as_json(), headers=headers)
        image = badge.svg(answer.severity) if request_format == "svg" else badge.png(answer.severity)
        return web.Response(body=image, content_type=CONTENT_TYPES[request_format], headers=headers)

    async def check_json(request: web.Request) -> web.Response:
        return await check(request, "json")

    async def check_svg(request: web.Request) -> web.Response:
        return await check(request, "svg")

    async def check_png(request: web.Request) -> web.Response:
        return await check(request, "png")

    return [web.get("/check.json", check_json), web.get("/check.svg", check_svg), web.get("/check.png", check_png)]
