"""User agents -> ua_family and the uap-core columns, on real user agent strings (unit tests: pure logic)."""

from __future__ import annotations

import re

import pytest
import requests

from streams.enrich.useragent import NONE, parse_user_agent, ua_family

CHROME_WIN = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/131.0.0.0 Safari/537.36")

# (user agent, ua_family, ua_name, ua_version, os_family, os_version, device_family)
REAL = [
    (CHROME_WIN, "Chrome", "Chrome", "131.0.0.0", "Windows", "10", "Other"),
    ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile "
     "Safari/537.36", "Chrome", "Chrome Mobile", "131.0.0.0", "Android", "10", "K"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
     "Firefox", "Firefox", "133.0", "Windows", "10", "Other"),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
     "Firefox", "Firefox", "133.0", "Linux", "", "Other"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 "
     "Safari/605.1.15", "Safari", "Safari", "18.1", "Mac OS X", "10.15.7", "Mac"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
     "Mobile/15E148 Safari/604.1", "Safari", "Mobile Safari", "17.5", "iOS", "17.5", "iPhone"),
    (CHROME_WIN + " Edg/131.0.2903.86", "Edge", "Edge", "131.0.2903.86", "Windows", "10", "Other"),
    (CHROME_WIN + " OPR/116.0.0.0", "Opera", "Opera", "116.0.0", "Windows", "10", "Other"),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
     "Bot", "Googlebot", "2.1", "Other", "", "Spider"),
    ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Googlebot/2.1; +http://www.google.com/bot.html) "
     "Chrome/131.0.6778.69 Safari/537.36", "Bot", "Googlebot", "2.1", "Other", "", "Spider"),
    ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) "
     "Chrome/116.0.1938.76 Safari/537.36", "Bot", "bingbot", "2.0", "Other", "", "Spider"),
    ("curl/8.5.0", "curl", "curl", "8.5.0", "Other", "", "Other"),
    ("Python/3.11 aiohttp/3.9.5", "aiohttp", "Python aiohttp", "3.9.5", "Other", "", "Other"),
    ("okhttp/4.12.0", "okhttp", "okhttp", "4.12.0", "Other", "", "Other"),  # the Java and Android trackers
    ("Go-http-client/1.1", "Go http client", "Go-http-client", "1.1", "Other", "", "Other"),  # the Go tracker
    # Trackers uap-core does not know: recognised by our own rule, the uap columns say so.
    ("snowplow-nodejs-tracker/3.0", "Snowplow tracker", "Other", "", "Other", "", "Other"),
    ("Denomas/18.2.0 (Ruby)", "Denomas", "Other", "", "Other", "", "Other"),
    ("SomethingElse/1.0", "Other", "Other", "", "Other", "", "Other"),
]


@pytest.mark.parametrize(("ua", "family", "name", "version", "os", "os_version", "device"), REAL)
def test_real_user_agents_parse_to_family_version_os_and_device(ua, family, name, version, os, os_version, device):
    parsed = parse_user_agent(ua)
    assert (parsed.family, parsed.name, parsed.version, parsed.os_family, parsed.os_version,
            parsed.device_family) == (family, name, version, os, os_version, device)
    assert ua_family(ua) == family


def test_the_python_trackers_own_user_agent_is_recognised():
    # snowplow-tracker (Python) sends through requests: its user agent is requests' default, whatever the version.
    agent = requests.utils.default_user_agent()
    parsed = parse_user_agent(agent)
    assert (parsed.family, parsed.name) == ("python-requests", "Python Requests")
    assert parsed.version == ".".join(requests.__version__.split(".")[:2])  # uap-core reads major.minor


def test_no_user_agent_is_empty_everywhere():
    for missing in (None, "", "   "):
        assert parse_user_agent(missing) == NONE
        assert set(NONE.columns().values()) == {""}


def test_columns_match_the_migration():
    from streams.config import MIGRATIONS_DIR
    sql = (MIGRATIONS_DIR / "025_fct_behavior_structured_event.sql").read_text()
    declared = set(re.findall(r"^\s+(ua_\w+|os_\w+|device_\w+)\s", sql, flags=re.MULTILINE))
    assert set(parse_user_agent(CHROME_WIN).columns()) <= declared
