"""Seat Link endpoint, as Denomas instances call it daily (formats.md section 3).

The license key is hashed here, at the edge: the raw topic carries the instance's JSON with `license_key`
replaced by `license_key_sha256` and `license_key_md5`, so the key is never published, stored or logged.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from streams.collector.common import BadRequest, Collector
from streams.config import TOPIC_RAW_SEAT_LINK
from streams.enrich.seat_link import KEY_FIELD, SHA256_FIELD, hash_license_key
from streams.records import KIND_REPORT

# What the customers portal answers (the current worker reads data.*; 13.x workers read `license`).
# No new license, no future subscriptions; null reconciliation dates make the instance drop any
# reconciliation banner instead of inventing a schedule we do not know.
ACCEPTED = {
    "success": True,
    "data": {"errors": None, "license": None, "future_subscriptions": [], "next_reconciliation_date": None,
             "display_alert_from": None},
    "license": None,
}


def hashed_report(document: dict) -> dict:
    """Refuse what cannot be a Seat Link report, then replace the key by its hashes."""
    key = document.get(KEY_FIELD)
    if not isinstance(key, str) or not key.strip():
        raise BadRequest(422, "license_key is missing or not a non-empty string")
    if all(document.get(name) in (None, "") for name in ("timestamp", "date")):
        raise BadRequest(422, "report has neither timestamp nor date")
    return hash_license_key(document)


def failure(exc: BadRequest) -> web.Response:
    """The portal's error shape (the worker raises data.errors) plus our usual `error`."""
    body = {"success": False, "error": exc.reason, "data": {"errors": exc.reason}}
    return web.json_response(body, status=exc.status)


def routes(collector: Collector) -> list[web.RouteDef]:
    topic = collector.settings.topic(TOPIC_RAW_SEAT_LINK)

    async def seat_links(request: web.Request) -> web.Response:
        try:
            _, document = await collector.read_json(request)
            report = hashed_report(document)
            await collector.publish(topic, report[SHA256_FIELD], orjson.dumps(report),
                                    collector.receipt("seat_link", KIND_REPORT))
        except BadRequest as exc:
            return failure(exc)
        return web.json_response(ACCEPTED)

    return [web.post("/api/v1/seat_links", seat_links)]
