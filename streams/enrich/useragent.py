"""User agent -> browser, OS and device with versions, from the uap-core rules (what Snowplow's own UA enrichment
uses), shipped precompiled by ``ua-parser-builtins`` and matched by ``ua-parser`` (offline; ``ua-parser-rs`` makes
a first parse fast). ``ua_family`` stays the coarse, stable class the marts group by: Bot, the browser engines'
brands, the HTTP clients, and the trackers uap-core does not know."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import ua_parser

# uap-core does not know these clients: they are ours or the Snowplow trackers' own.
_TRACKERS = ((re.compile(r"snowplow", re.IGNORECASE), "Snowplow tracker"), (re.compile(r"\bDenomas/"), "Denomas"))
# uap-core family -> coarse family, by prefix (Chrome Mobile, Chrome Mobile iOS, Mobile Safari UI/WKWebView ...).
_COARSE_PREFIXES = (("Edge", "Edge"), ("Opera", "Opera"), ("Firefox", "Firefox"), ("Chrome", "Chrome"),
                    ("Chromium", "Chrome"), ("Safari", "Safari"), ("Mobile Safari", "Safari"))
# The old names of the HTTP clients, kept so ua_family means the same as before.
_CLIENTS = {"Python Requests": "python-requests", "Python aiohttp": "aiohttp", "Go-http-client": "Go http client"}
_SPIDER = "Spider"  # uap-core's device family of crawlers and bots


@dataclass(frozen=True)
class UserAgent:
    """One parsed user agent; families are 'Other' when the rules do not know it, '' when there is none."""

    family: str  # coarse class, the ua_family column
    name: str  # uap-core user agent family (Chrome Mobile, Googlebot, curl ...)
    version: str
    os_family: str
    os_version: str
    device_family: str
    device_brand: str
    device_model: str

    def columns(self) -> dict[str, str]:
        return {"ua_family": self.family, "ua_name": self.name, "ua_version": self.version,
                "os_family": self.os_family, "os_version": self.os_version, "device_family": self.device_family,
                "device_brand": self.device_brand, "device_model": self.device_model}


NONE = UserAgent("", "", "", "", "", "", "", "")


def _version(*parts: str | None) -> str:
    out = []
    for part in parts:
        if part is None:
            break
        out.append(part)
    return ".".join(out)


def _coarse(name: str, device: str, user_agent: str) -> str:
    for pattern, family in _TRACKERS:
        if pattern.search(user_agent):
            return family
    if device == _SPIDER:
        return "Bot"
    for prefix, family in _COARSE_PREFIXES:
        if name.startswith(prefix):
            return family
    return _CLIENTS.get(name, name)


@lru_cache(maxsize=8192)  # a fleet sends few distinct user agents, each thousands of times
def parse_user_agent(user_agent: str | None) -> UserAgent:
    if not user_agent or not user_agent.strip():
        return NONE
    result = ua_parser.parse(user_agent).with_defaults()
    agent, os, device = result.user_agent, result.os, result.device
    return UserAgent(
        family=_coarse(agent.family, device.family, user_agent), name=agent.family,
        version=_version(agent.major, agent.minor, agent.patch, agent.patch_minor),
        os_family=os.family, os_version=_version(os.major, os.minor, os.patch, os.patch_minor),
        device_family=device.family, device_brand=device.brand or "", device_model=device.model or "")


def ua_family(user_agent: str | None) -> str:
    """'' when there is no user agent, 'Other' when no rule knows it."""
    return parse_user_agent(user_agent).family
