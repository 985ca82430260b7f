"""Prometheus metrics of this process (prometheus-client), served as text on GET /metrics.

One registry per process. The worker fills the landed / dead-lettered / insert / latency / check metrics and a lag
gauge read at scrape time; the collector can call `observe_request` and `observe_accepted` and serve
`metrics_response` on its own /metrics. Labels stay bounded: sources, stages, reason classes ("schema", "not valid
JSON"), topics, check names; never ids or free text.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry()

REQUESTS = Counter("denomas_http_requests", "Collector requests by endpoint and status", ["endpoint", "status"],
                   registry=REGISTRY)
ACCEPTED = Counter("denomas_records_accepted", "Records the collector accepted and published", ["source"],
                   registry=REGISTRY)
LANDED = Counter("denomas_records_landed", "Records stored in the warehouse", ["source"], registry=REGISTRY)
DEAD_LETTERED = Counter("denomas_records_dead_lettered", "Dead letters stored, by source, stage and reason class",
                        ["source", "stage", "reason"], registry=REGISTRY)
CONSUMER_LAG = Gauge("denomas_consumer_lag", "Records of a consumed topic not yet committed by the worker's group",
                     ["topic"], registry=REGISTRY)
INSERT_SECONDS = Histogram("denomas_batch_insert_seconds", "Time of one successful warehouse write of a batch",
                           ["what"], registry=REGISTRY,
                           buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
STORED_LATENCY = Histogram("denomas_received_to_stored_seconds",
                           "Collector receipt (received_at / collector_tstamp) to stored, per record", ["source"],
                           registry=REGISTRY, buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600))
CHECK_STATUS = Gauge("denomas_check_status", "Latest result of a trusted-data check: 0 pass, 1 warn, 2 fail, 3 error",
                     ["check", "kind", "scope"], registry=REGISTRY)
CHECK_OBSERVED = Gauge("denomas_check_observed", "Latest observed value of a trusted-data check",
                       ["check", "kind", "scope"], registry=REGISTRY)
CHECK_RUNS = Counter("denomas_check_results", "Check results by kind and status", ["kind", "status"],
                     registry=REGISTRY)

# Sink counters (SinkStats keys) that count stored records of a source.
LANDED_KEYS = {"pings": "service_ping", "error_reports": "service_ping_error",
               "timing_reports": "service_ping_metadata", "seat_links": "seat_link",
               "version_checks": "version_check", "behavior_events": "snowplow"}
_STATUS_VALUE = {"pass": 0, "warn": 1, "fail": 2, "error": 3}


def observe_request(endpoint: str, status: int) -> None:
    REQUESTS.labels(endpoint, str(status)).inc()


def observe_accepted(source: str, records: int = 1) -> None:
    ACCEPTED.labels(source).inc(records)


def observe_counts(counts: Mapping[str, int]) -> None:
    """What a sink stored (its SinkStats counts); reference tables count as reference_<kind>."""
    for key, value in counts.items():
        source = LANDED_KEYS.get(key) or (key if key.startswith("reference_") else None)
        if source and value:
            LANDED.labels(source).inc(value)


def reason_class(reason: str) -> str:
    """'schema: uuid is required' -> 'schema': the reason without its details (a bounded label)."""
    head = reason.split(":", 1)[0].strip()
    return head[:60] if head and len(head.split()) <= 6 else "other"


def observe_dead_letters(rows: Iterable[Mapping[str, Any]]) -> None:
    for row in rows:
        DEAD_LETTERED.labels(str(row.get("source", "unknown")), str(row.get("stage", "unknown")),
                             reason_class(str(row.get("reason", "")))).inc()


def observe_insert(what: str, seconds: float) -> None:
    INSERT_SECONDS.labels(what).observe(seconds)


def _received(record: Any) -> str | None:
    """When the collector received a normalized record of any source."""
    if not isinstance(record, dict):
        return None
    inner = record.get("ping") or record.get("report") or record
    for name in ("received_at", "collector_tstamp", "checked_at"):
        if isinstance(inner.get(name), str):
            return inner[name]
    return None


def observe_stored(source: str, records: Sequence[Any], now: datetime | None = None) -> None:
    """Receipt -> stored latency of each record of a batch that was just written."""
    from streams.records import parse_timestamp

    now = now or datetime.now(UTC)
    flat = [item for record in records for item in (record if isinstance(record, list) else [record])]
    for record in flat:  # a Snowplow record is a list of events
        inner = record.get("receipt") if isinstance(record, dict) and "receipt" in record else record
        text = _received(inner)
        if text is None:
            continue
        try:
            STORED_LATENCY.labels(source).observe(max(0.0, (now - parse_timestamp(text)).total_seconds()))
        except (TypeError, ValueError, AttributeError):
            continue


def observe_check_results(results: Iterable[Any]) -> None:
    for r in results:
        labels = (r.check.name, r.check.kind, r.scope)
        CHECK_STATUS.labels(*labels).set(_STATUS_VALUE[r.status])
        if r.observed is not None:
            CHECK_OBSERVED.labels(*labels).set(float(r.observed))
        CHECK_RUNS.labels(r.check.kind, r.status).inc()


def set_lag(lag_by_topic: Mapping[str, int]) -> None:
    for topic, lag in lag_by_topic.items():
        CONSUMER_LAG.labels(topic).set(lag)


def render() -> bytes:
    return generate_latest(REGISTRY)


def metrics_handler(before: Callable[[], Awaitable[None]] | None = None) -> Callable[[web.Request], Any]:
    """An aiohttp handler for GET /metrics; `before` refreshes gauges read at scrape time (consumer lag)."""

    async def handle(request: web.Request) -> web.Response:
        if before is not None:
            await before()
        response = web.Response(body=render())
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        response.charset = "utf-8"
        return response

    return handle


@web.middleware
async def count_requests(request: web.Request, handler: Any) -> web.StreamResponse:
    """Requests by endpoint (the route, not the raw path: a client cannot mint new series) and status; used by the
    collector and the warehouse service."""
    resource = request.match_info.route.resource
    endpoint = resource.canonical if resource is not None else "unmatched"
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        observe_request(endpoint, exc.status)
        raise
    observe_request(endpoint, response.status)
    return response
