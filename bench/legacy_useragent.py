"""The hand-written user agent rules that streams/enrich/useragent.py replaced (uap-core), kept only as the
"before" of the normalize benchmark: same run, same records, the old classifier swapped in."""

from __future__ import annotations

import re
from functools import lru_cache

# Order matters: Edge and Opera also say "Chrome", Chrome also says "Safari", bots say anything.
_PATTERNS = (
    (r"bot\b|crawler|spider|slurp", "Bot"),
    (r"\bEdg(e|A|iOS)?/", "Edge"),
    (r"\bOPR/|\bOpera\b", "Opera"),
    (r"\bFirefox/|\bFxiOS/", "Firefox"),
    (r"\bChrome/|\bCriOS/|\bChromium/", "Chrome"),
    (r"\bSafari/", "Safari"),
    (r"snowplow", "Snowplow tracker"),
    (r"\bpython-requests/", "python-requests"),
    (r"\baiohttp/", "aiohttp"),
    (r"\bcurl/", "curl"),
    (r"\bDenomas/", "Denomas"),
    (r"\bokhttp/", "okhttp"),
    (r"\bGo-http-client/", "Go http client"),
)
_RULES = tuple((re.compile(pattern, re.IGNORECASE), family) for pattern, family in _PATTERNS)


@lru_cache(maxsize=4096)  # a fleet sends few distinct user agents, each thousands of times
def ua_family(user_agent: str | None) -> str:
    """'' when there is no user agent, 'Other' when no rule matches."""
    if not user_agent or not user_agent.strip():
        return ""
    for pattern, family in _RULES:
        if pattern.search(user_agent):
            return family
    return "Other"


class LegacyColumns:
    """What the normalizer wrote before: the coarse family only."""

    def __init__(self, family: str) -> None:
        self.family = family

    def columns(self) -> dict[str, str]:
        return {"ua_family": self.family}


def legacy_parse(user_agent: str | None) -> LegacyColumns:
    return LegacyColumns(ua_family(user_agent))
