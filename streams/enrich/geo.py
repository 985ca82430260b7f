"""IP address -> coarse location (country, region, city), from a small built-in range table.

The table is deliberately tiny: private, loopback and link-local addresses are 'ZZ' (local), and the
documentation ranges reserved by RFC 5737 / RFC 3849 (never routed on the Internet) stand in for
countries so the sample data and the tests have known answers. Anything else is unknown (''). A real
deployment would swap `locate` for a GeoIP database lookup; callers only see `Location`.
The IP itself is never returned or kept: callers drop it right after this lookup.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


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
    return UNKNOWN


def encode_location(location: Location) -> str:
    """The location as one header value ("country|region|city"): what travels instead of the IP."""
    return "|".join((location.country, location.region, location.city))


def decode_location(text: str) -> Location:
    parts = (text.split("|") + ["", "", ""])[:3]
    return Location(*parts)
