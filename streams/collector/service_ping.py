"""Service Ping endpoints, as Denomas instances call them (see formats.md section 1.1)."""

from __future__ import annotations

from aiohttp import web

from streams.collector.common import BadRequest, Collector, str_or_none
from streams.config import TOPIC_RAW_SERVICE_PING
from streams.records import H_PING_ID, KIND_ERROR, KIND_METADATA, KIND_PING, ping_id_for


def routes(collector: Collector) -> list[web.RouteDef]:
    topic = collector.settings.topic(TOPIC_RAW_SERVICE_PING)

    async def usage_data(request: web.Request) -> web.Response:
        body, document = await collector.read_json(request)
        ping_id = ping_id_for(document, body)
        headers = collector.receipt("service_ping", KIND_PING) | {H_PING_ID: str(ping_id)}
        await collector.publish(topic, str_or_none(document.get("uuid")), body, headers)
        # Instances read conv_index.usage_data_id (older ones dev_ops_score.usage_data_id): a positive integer.
        answer = {"usage_data_id": ping_id}
        return web.json_response({"conv_index": answer, "dev_ops_score": answer})

    async def usage_ping_errors(request: web.Request) -> web.Response:
        body, document = await collector.read_json(request)
        error = document.get("error")
        if not isinstance(error, dict):
            raise BadRequest(422, 'expected {"error": {...}}')
        headers = collector.receipt("service_ping", KIND_ERROR)
        await collector.publish(topic, str_or_none(error.get("uuid")), body, headers)
        return web.json_response({}, status=201)

    async def usage_ping_metadata(request: web.Request) -> web.Response:
        body, document = await collector.read_json(request)
        metadata = document.get("metadata")
        if not isinstance(metadata, dict) or not isinstance(metadata.get("metrics", []), list):
            raise BadRequest(422, 'expected {"metadata": {"uuid": ..., "metrics": [...]}}')
        await collector.publish(topic, str_or_none(metadata.get("uuid")), body,
                                collector.receipt("service_ping", KIND_METADATA))
        return web.json_response({}, status=201)

    return [
        web.post("/usage_data", usage_data),
        web.post("/usage_ping_errors", usage_ping_errors),
        web.post("/usage_ping_metadata", usage_ping_metadata),
    ]
