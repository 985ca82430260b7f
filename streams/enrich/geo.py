"""IP address -> coarse location (country, region, city), offline.

- Private, loopback and link-local addresses are 'ZZ' (local).
- The documentation ranges reserved by RFC 5737 / RFC 3849 (never routed on the Internet) stand in for
  countries so the sample data and the tests have known answers.
- A MaxMind-format city database (GeoIP2/GeoLite2-City, DB-IP city lite), when its path is in DENOMAS_GEOIP_DB,
  gives country, region and city.
- Else the country comes from the data bundled with ``iptocc`` (the RIRs' delegation files); region and city stay ''.
Anything else is unknown (''). The IP itself is never returned or kept: callers drop it right after this lookup
(the collector resolves at the edge and forwards only the location).
"""

from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import iptocc
import maxminddb

log = logging.getLogger(__name__)
GEOIP_DB_ENV = "DENOMAS_GEOIP_DB"


@dataclass(frozen=True)
class Location:
    country: str
    region: str
    city: str


UNKNOWN = Location("", "", "")
LOCAL = Location("ZZ", "", "")

# Documentation ranges as fixtures (fictional locations); more specific networks first.
_RANGES: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, Location], ...] = tuple(
    (ipaddress.ip_network(net), loc) for net, loc in (
        ("192.0.2.0/25", Location("US", "California", "San Francisco")),
        ("192.0.2.128/25", Location("US", "New York", "New York")),
        ("198.51.100.0/24", Location("DE", "Berlin", "Berlin")),
        ("203.0.113.0/24", Location("JP", "Tokyo", "Tokyo")),
        ("2001:db8::/32", Location("NL", "North Holland", "Amsterdam")),
    )
)


def locate(ip: str | None) -> Location:
    if not ip:
        return UNKNOWN
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return UNKNOWN
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    # The documentation ranges count as "private" in Python's ipaddress, so look them up first.
    for network, location in _RANGES:
        if address.version == network.version and address in network:
            return location
    if address.is_private or address.is_loopback or address.is_link_local:
        return LOCAL
    reader = city_reader(os.environ.get(GEOIP_DB_ENV, ""))
    found = _from_city_record(reader.get(address)) if reader is not None else UNKNOWN
    if found.country:
        return found
    country = iptocc.country_code(str(address))
    return Location(country, "", "") if country else UNKNOWN


@lru_cache(maxsize=4)
def city_reader(path: str) -> maxminddb.Reader | None:
    """The configured city database, opened once (memory-mapped); None when none is set or it cannot be read."""
    if not path:
        return None
    try:
        return maxminddb.open_database(path)
    # A broken setting must not stop the collector: the country still resolves.
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as error:
        log.error("%s=%s cannot be read (%s): locations get the country only", GEOIP_DB_ENV, path, error)
        return None


def _name(node: Any) -> str:
    names = node.get("names") if isinstance(node, dict) else None
    return str(names.get("en", "")) if isinstance(names, dict) else ""


def _from_city_record(record: Any) -> Location:
    """A GeoIP2-City shaped record -> Location (missing parts are '')."""
    if not isinstance(record, dict):
        return UNKNOWN
    country = record.get("country") or record.get("registered_country") or {}
    subdivisions = record.get("subdivisions") or [{}]
    code = country.get("iso_code", "") if isinstance(country, dict) else ""
    return Location(str(code), _name(subdivisions[0]), _name(record.get("city")))


def encode_location(location: Location) -> str:
    """The location as one header value ("country|region|city"): what travels instead of the IP."""
    return "|".join((location.country, location.region, location.city))


def decode_location(text: str) -> Location:
    parts = (text.split("|") + ["", "", ""])[:3]
    return Location(*parts)
