"""IP -> location for real public addresses: the country from iptocc's bundled data, region and city from a
MaxMind-format database when DENOMAS_GEOIP_DB names one (built here with mmdb-writer, a test dependency)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from streams.collector import RunningCollector
from streams.config import TOPIC_RAW_SNOWPLOW, Settings
from streams.enrich import geo
from streams.enrich.geo import LOCAL, UNKNOWN, Location, locate
from streams.kafka.topics import ensure_topics

PAYLOAD = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"


@pytest.fixture(autouse=True)
def _fresh_reader(monkeypatch):
    monkeypatch.delenv(geo.GEOIP_DB_ENV, raising=False)
    geo.city_reader.cache_clear()
    yield
    geo.city_reader.cache_clear()


# Stable allocations: Google's public resolver (ARIN, US), APNIC's 1.1.1.0/24 (AU), MaxMind's own test address
# (GB), Google's Dublin IPv6 block (RIPE, IE).
@pytest.mark.parametrize(("ip", "country"), [
    ("8.8.8.8", "US"), ("1.1.1.1", "AU"), ("81.2.69.160", "GB"), ("::ffff:81.2.69.160", "GB"),
    ("2a00:1450:4001:82a::200e", "IE"),
])
def test_public_addresses_get_their_country_from_the_bundled_data(ip, country):
    assert locate(ip) == Location(country, "", "")


def _city_db(path: Path) -> Path:
    """A two-network GeoIP2-City database, the layout GeoLite2/DB-IP city files have."""
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoIP2-City")
    writer.insert_network(IPSet(["81.2.69.0/24"]), {
        "country": {"iso_code": "GB", "names": {"en": "United Kingdom"}},
        "subdivisions": [{"iso_code": "ENG", "names": {"en": "England"}}],
        "city": {"names": {"en": "London"}}})
    writer.insert_network(IPSet(["2a02:ff0::/32"]), {"registered_country": {"iso_code": "NL"}})  # no city known
    writer.to_db_file(str(path))
    return path


def test_a_configured_city_database_gives_region_and_city(tmp_path, monkeypatch):
    monkeypatch.setenv(geo.GEOIP_DB_ENV, str(_city_db(tmp_path / "city.mmdb")))
    assert locate("81.2.69.160") == Location("GB", "England", "London")
    assert locate("::ffff:81.2.69.1") == Location("GB", "England", "London")
    assert locate("2a02:ff0::1") == Location("NL", "", "")
    assert locate("8.8.8.8") == Location("US", "", "")  # not in the database: the bundled country
    assert locate("10.0.0.1") == LOCAL and locate("192.0.2.10").city == "San Francisco"


def test_an_unreadable_database_is_reported_and_the_country_still_resolves(tmp_path, monkeypatch, caplog):
    broken = tmp_path / "broken.mmdb"
    broken.write_bytes(b"not a database")
    for path in (broken, tmp_path / "missing.mmdb"):
        geo.city_reader.cache_clear()
        monkeypatch.setenv(geo.GEOIP_DB_ENV, str(path))
        caplog.clear()
        assert locate("81.2.69.160") == Location("GB", "", "")
        assert geo.GEOIP_DB_ENV in caplog.text and str(path) in caplog.text


def test_unroutable_and_malformed_addresses_stay_unknown():
    for ip in ("100.64.0.1", "224.0.0.1", "256.1.1.1", "host.example", "", None):
        assert locate(ip) == UNKNOWN, ip


def _event(**params: str) -> dict:
    return {"e": "se", "eid": str(uuid.uuid4()), "tv": "py-1.1.0", "p": "srv", "se_ca": "c", "se_ac": "a"} | params


async def _raw_records(bootstrap: str, topic: str) -> list:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        records = []
        while batch := await consumer.getmany(timeout_ms=2000):
            records.extend(r for partition in batch.values() for r in partition)
        return records
    finally:
        await consumer.stop()


@pytest.mark.integration
def test_the_collector_resolves_real_addresses_at_the_edge_and_no_ip_reaches_kafka(
        kafka_bootstrap, tmp_path, unique_name, monkeypatch):
    monkeypatch.setenv(geo.GEOIP_DB_ENV, str(_city_db(tmp_path / "city.mmdb")))
    settings = Settings.from_env(data_dir=tmp_path, topic_prefix=f"t-geo-{unique_name}.", topic_partitions=1)
    city, country = _event(ip="81.2.69.160"), _event()  # the tracker's ip parameter; the connection's address

    async def run() -> list:
        await ensure_topics(kafka_bootstrap, settings, [TOPIC_RAW_SNOWPLOW])
        collector = RunningCollector(kafka_bootstrap, settings)
        tp2 = f"{await collector.start()}/com.snowplowanalytics.snowplow/tp2"
        try:
            async with aiohttp.ClientSession() as session:
                for event, headers in ((city, {}), (country, {"X-Forwarded-For": "8.8.8.8"})):
                    body = orjson.dumps({"schema": PAYLOAD, "data": [event]})
                    async with session.post(tp2, data=body, headers=headers) as response:
                        assert response.status == 200
        finally:
            await collector.stop()
        return await _raw_records(kafka_bootstrap, settings.topic(TOPIC_RAW_SNOWPLOW))

    records = asyncio.run(run())
    geo_of = {event["eid"]: dict(r.headers).get("client_geo") for r in records for event in orjson.loads(r.value)}
    assert geo_of == {city["eid"]: b"GB|England|London", country["eid"]: b"US||"}
    for record in records:
        everything = record.value + b"".join(value for _, value in record.headers)
        assert b"81.2.69.160" not in everything and b"8.8.8.8" not in everything
