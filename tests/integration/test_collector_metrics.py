"""The collector's Prometheus page: requests by endpoint and status, records accepted per source (after the
broker's ack), on the real broker."""

from __future__ import annotations

import re

import aiohttp
import orjson
import pytest

from streams.collector import RunningCollector
from streams.config import Settings
from streams.kafka.topics import ensure_topics

pytestmark = pytest.mark.integration


def _value(page: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in page.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and ",".join(sorted(match.group(1).split(","))) == wanted:
            return float(match.group(2))
    return 0.0


async def test_metrics_count_requests_by_route_and_status_and_accepted_records(kafka_bootstrap, tmp_path,
                                                                            unique_name):
    settings = Settings.from_env(data_dir=tmp_path, topic_prefix=f"t-metrics-{unique_name}.")
    await ensure_topics(kafka_bootstrap, settings)
    collector = RunningCollector(kafka_bootstrap, settings)
    url = await collector.start()
    try:
        async with aiohttp.ClientSession() as http:
            async def page() -> str:
                async with http.get(f"{url}/metrics") as response:
                    assert response.status == 200 and response.content_type == "text/plain"
                    return await response.text()

            before = await page()
            ping = {"uuid": "3f0e1c1e-0000-4000-8000-000000000001", "recorded_at": "2026-06-01T10:00:00Z",
                    "version": "17.1.0", "counts": {"issues": 3}}
            async with http.post(f"{url}/usage_data", data=orjson.dumps(ping)) as response:
                assert response.status == 200, await response.text()
            async with http.post(f"{url}/usage_data", data=b"{not json") as response:
                assert response.status == 400
            async with http.get(f"{url}/no/such/{unique_name}") as response:
                assert response.status == 404
            after = await page()
    finally:
        await collector.stop()

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert delta("denomas_http_requests_total", endpoint="/usage_data", status="200") == 1
    assert delta("denomas_http_requests_total", endpoint="/usage_data", status="400") == 1
    assert delta("denomas_http_requests_total", endpoint="unmatched", status="404") == 1
    assert unique_name not in after  # unknown paths share one series
    assert delta("denomas_records_accepted_total", source="service_ping") == 1
