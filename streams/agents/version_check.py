"""Version Check agents, and the seed of the release table.

  usage.raw.version_check --normalize_version_check--> usage.normalized.version_check
        --version_check_sink--> fct_version_check          (bad records --> usage.dlq)
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from streams.agents.common import AgentContext, Rejected, sink_batches, write_with_retry
from streams.agents.normalizing import normalize_batches
from streams.config import TOPIC_NORMALIZED_VERSION_CHECK, TOPIC_RAW_VERSION_CHECK
from streams.enrich.version_check import (
    SEVERITIES,
    InvalidCheck,
    checked_version,
    decode_gitlab_info,
    edition_of,
    host_from_referer,
)
from streams.records import H_REQUEST_ID, VersionCheckRecord, received_at, stable_id, timestamp_text
from streams.releases import seed_if_empty
from streams.warehouse.writers import write_version_checks

log = logging.getLogger(__name__)

CONSUMED_TOPICS = [TOPIC_RAW_VERSION_CHECK, TOPIC_NORMALIZED_VERSION_CHECK]
FORMATS = ("json", "svg", "png")


def check_id_for(headers: dict[str, str], message: Any) -> int:
    """The collector's request id; for records published by others, their Kafka position (stable on redelivery)."""
    if headers.get(H_REQUEST_ID):
        return stable_id("version_check", headers[H_REQUEST_ID])
    return stable_id("version_check", str(message.topic), str(message.partition), str(message.offset))


def normalize(value: bytes, headers: dict[str, str], message: Any) -> VersionCheckRecord:
    """Raw check (the request and the answer it got) -> fct_version_check record. Raises Rejected."""
    try:
        envelope = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise Rejected("validate", f"not valid JSON: {exc}") from exc
    if not isinstance(envelope, dict):
        raise Rejected("validate", f"expected a JSON object, got {type(envelope).__name__}")
    try:
        info = decode_gitlab_info(envelope.get("gitlab_info"))
        text, version = checked_version(info)
    except InvalidCheck as exc:
        raise Rejected("validate", str(exc)) from exc
    severity, request_format = envelope.get("severity"), envelope.get("format", "json")
    if severity not in SEVERITIES or request_format not in FORMATS:
        raise Rejected("validate", f"severity must be one of {SEVERITIES} and format one of {FORMATS}")
    return {
        "check_id": check_id_for(headers, message),
        "checked_at": timestamp_text(received_at(headers), "milliseconds"),
        "version": text, "major_version": version.major, "minor_version": version.minor,
        "patch_version": version.patch, "prerelease": version.prerelease, "edition": edition_of(version, info),
        "host": host_from_referer(envelope.get("referer")), "severity": severity,
        "latest_version": str(envelope.get("latest_version") or ""), "request_format": request_format,
    }


def register(ctx: AgentContext) -> None:
    raw = ctx.topic(TOPIC_RAW_VERSION_CHECK)
    normalized = ctx.topic(TOPIC_NORMALIZED_VERSION_CHECK)
    warehouse, settings = ctx.warehouse, ctx.settings

    @ctx.app.agent(raw, name="normalize_version_check")
    async def normalize_version_check_agent(stream: Any) -> None:
        await normalize_batches(ctx, stream, "version_check", normalize, normalized)

    async def write(records: list[dict]) -> None:
        counts = await write_with_retry(lambda: write_version_checks(warehouse, records), "version checks",
                                        warehouse)
        ctx.stats.add(**counts)

    @ctx.app.agent(normalized, name="version_check_sink")
    async def version_check_sink(stream: Any) -> None:
        await sink_batches(ctx, stream, "version_check", write, settings.sink_batch_size,
                           settings.sink_batch_seconds)

    @ctx.app.task
    async def seed_releases() -> None:
        seeded = await asyncio.to_thread(seed_if_empty, warehouse)
        if seeded:
            log.info("dim_app_release seeded with %d releases", seeded)
