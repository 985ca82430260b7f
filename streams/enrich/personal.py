"""Personal data in what we publish and keep: user ids pseudonymized, IP addresses removed.

User ids (decided from the Snowplow formats, reference/ingestion-anchors.md and the Iglu schemas of the corpus):
- tracker parameters `uid` (user_id), `duid` (domain_userid), `tnuid` and `nuid` (network_userid);
- in contexts and self-describing events: `user_id` (our denomas_standard, GitLab's gitlab_standard 1-0-5+),
  `global_user_id` (gitlab_standard 1-1-0+) and `google_analytics_id` (gitlab_standard 1-0-5+).
They are matched by name (case, `_` and `-` ignored) at any depth, inside `co`/`ue_pr` (JSON text) and `cx`/`ue_px`
(base64 JSON) too, because other vendors' contexts are kept unvalidated. Each becomes its pseudonym
(streams.enrich.pseudonym: "uh64:" + the keyed hash), which is recognised and never hashed again, so records
another producer published straight to a raw topic are cleaned by the agent the same way, idempotently.
A context that cannot be decoded cannot be searched: it is replaced by UNDECODABLE (the event becomes a bad row).

IP addresses: fields named like an address (`ip`, `user_ipaddress`, `X-Forwarded-For`, ...) are blanked. Dead
letters (`redact_bytes`) go further, since their bytes come from anyone: JSON is decoded (so an escaped key such as
"\\u0069p" is seen as `ip`), cleaned by key, every string also cleaned as text, and re-encoded only if something
changed; bytes that are not JSON get the same rules as text: `"key": value` pairs and `key=value` parameters by
name, and every IPv4/IPv6 literal replaced by `[ip]`. A `license_key` in a dead letter, at any depth, is replaced by
its hashes (blanked in bytes that are not JSON), whichever topic the record came from.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from typing import Any
from urllib.parse import quote, unquote_plus

import orjson

from streams.enrich.limits import json_depth_exceeds
from streams.enrich.pseudonym import pseudonym
from streams.enrich.seat_link import KEY_FIELD, hash_license_key
from streams.enrich.snowplow import b64decode_any

USER_ID_FIELDS = frozenset({"uid", "duid", "tnuid", "nuid", "userid", "globaluserid", "googleanalyticsid"})
IP_FIELDS = frozenset({"ip", "useripaddress", "ipaddress", "clientip", "remoteaddr", "xforwardedfor", "forwarded",
                       "xrealip"})
JSON_PARAMS = frozenset({"co", "ue_pr"})
BASE64_PARAMS = frozenset({"cx", "ue_px"})
UNDECODABLE = "[removed: undecodable, may hold personal data]"
IP_MARK = b"[ip]"


def _kind(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


def _scalar_text(value: Any) -> str | int | None:
    if value is None or isinstance(value, str | int) and not isinstance(value, bool):
        return value
    return orjson.dumps(value).decode()  # an id as a number, object or list: hashed as its JSON text


def pseudonymize_event(event: Any, key: bytes | None = None) -> Any:
    """A Snowplow event (or anything parsed from JSON) with user ids pseudonymized and IP fields blanked; the same
    object when there was nothing to change. Call json_depth_exceeds first: this recurses."""
    return _clean(event, key, letter=False)


def redact_bytes(value: bytes, key: bytes | None = None) -> bytes:
    """The bytes a dead letter may keep (see the module doc); unchanged when they hold nothing personal."""
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError:
        return redact_text(value, key)
    if json_depth_exceeds(document):
        return redact_text(value, key)
    cleaned = _clean(document, key, letter=True)
    return value if cleaned == document else orjson.dumps(cleaned)


def redact_reason(text: str, key: bytes | None = None) -> str:
    """A dead letter's reason with the rules for text applied (schema messages may quote values)."""
    return redact_text(text.encode("utf-8", "surrogateescape"), key).decode("utf-8", "replace")


def _clean(value: Any, key: bytes | None, letter: bool) -> Any:
    if isinstance(value, dict):
        unkeyed = hash_license_key(value) if letter and KEY_FIELD in value else value  # a license key, wherever
        cleaned = {name: _clean_field(name, item, key, letter) for name, item in unkeyed.items()}
        return value if cleaned == value else cleaned
    if isinstance(value, list):
        items = [_clean(item, key, letter) for item in value]
        return value if items == value else items
    if letter and isinstance(value, str):
        return redact_reason(value, key)
    return value


def _clean_field(name: Any, value: Any, key: bytes | None, letter: bool) -> Any:
    kind = _kind(name) if isinstance(name, str) else ""
    if kind in USER_ID_FIELDS and value is not None:
        return pseudonym(_scalar_text(value), key) if value != "" else ""
    if kind in IP_FIELDS and isinstance(value, str | list):  # an address or a list of them (a flag stays a flag)
        return "" if isinstance(value, str) else ["" if isinstance(item, str) else item for item in value]
    if isinstance(value, str) and (name in JSON_PARAMS or name in BASE64_PARAMS):
        return _reencode(value, name in BASE64_PARAMS, key, letter)
    return _clean(value, key, letter)


def _reencode(text: str, encoded: bool, key: bytes | None, letter: bool) -> str:
    """A JSON (or base64 JSON) parameter, cleaned; kept byte for byte when it holds nothing to clean."""
    try:
        document = orjson.loads(b64decode_any(text) if encoded else text)
    except (binascii.Error, ValueError):  # orjson.JSONDecodeError is a ValueError
        return UNDECODABLE
    if json_depth_exceeds(document):
        return UNDECODABLE
    cleaned = _clean(document, key, letter)
    if cleaned == document:
        return text
    data = orjson.dumps(cleaned)
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode() if encoded else data.decode()


# ---------------------------------------------------------------------------------------------------
# Text rules: bytes that are not JSON (truncated, broken) and strings inside dead letters.

def _names() -> bytes:
    """The field names the text rules look for, as a pattern: case, `_` and `-` between letters ignored."""
    kinds = sorted(USER_ID_FIELDS | IP_FIELDS | {_kind(KEY_FIELD)}, key=len, reverse=True)
    flexible = [b"[_-]?".join(re.escape(c.encode()) for c in kind) for kind in kinds]
    return b"(?i:" + b"|".join(flexible + [re.escape(n.encode()) for n in sorted(JSON_PARAMS | BASE64_PARAMS)]) + b")"


# "key": value, where the value is a string (possibly cut off by the end of the bytes) or a number, and the key one
# of the names or a string with escapes (`"\\u0069p"`). Possessive quantifiers: a quote that is never closed costs
# one pass, not one per byte after it.
_PAIR = re.compile(rb'"(' + _names() + rb'|[^"\\]*+\\.(?:[^"\\]++|\\.)*+)"\s*+:\s*+'
                   rb'("(?:[^"\\]++|\\.)*+(?:"|\\?$)|[-+0-9.eE]++)')
_PARAM = re.compile(rb"(?<![^?&;\s])(" + _names() + rb")=([^&;\s\"]*+)")
_IPV4 = re.compile(rb"\d{1,3}(?:\.\d{1,3}){3}")  # boundaries checked in Python: a look-behind first slows the scan
_IPV6_TAIL = re.compile(rb":[0-9A-Fa-f:.]*+")  # from its first colon on (a literal first byte scans fast)
_IPV6_PERCENT = re.compile(rb"(?:[0-9A-Fa-f]{0,4}%3[Aa]){2,7}[0-9A-Fa-f]{0,4}")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_WORD = frozenset(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")


def redact_text(value: bytes, key: bytes | None = None) -> bytes:
    """Bytes that are not a JSON document: user ids and IPs by field name, then every IP literal. Each rule runs
    only where the bytes can hold what it looks for (most strings of a dead letter hold none of it)."""
    if b'"' in value and b":" in value:
        value = _PAIR.sub(lambda m: _pair(m, key), value)
    if b"=" in value:
        value = _PARAM.sub(lambda m: _param(m, key), value)
    if b"." in value:
        value = _IPV4.sub(_ipv4, value)
    if value.count(b":") >= 2:
        value = _ipv6(value)
    if b"%3" in value:
        value = _IPV6_PERCENT.sub(lambda m: _ip_or_same(m.group(0), m.group(0).replace(b"%3A", b":")
                                                          .replace(b"%3a", b":")), value)
    return value


def _ipv4(match: re.Match[bytes]) -> bytes:
    data, start, end = match.string, match.start(), match.end()
    before, after = data[start - 1:start], data[end:end + 2]
    if (before and (before[0] in _WORD or before == b".")) or (after and after[0] in _WORD) or (
            after[:1] == b"." and after[1:] and after[1] in _WORD):
        return match.group(0)  # part of a longer word, number or version
    return _ip_or_same(match.group(0), match.group(0))


def _ipv6(data: bytes) -> bytes:
    """Every IPv6 literal as IP_MARK: from each run of hex digits, colons and dots, the up to 4 hex digits before its
    first colon included, that parses as an address and is not part of a longer word."""
    out, last = [], 0
    for match in _IPV6_TAIL.finditer(data):
        start, end = match.start(), match.end()
        while start > max(last, match.start() - 4) and data[start - 1] in _HEX:
            start -= 1
        while end > start + 2 and data[end - 1] in b".:" and data[end - 2:end] != b"::":
            end -= 1  # a sentence's full stop, a port's colon
        before, after, candidate = data[start - 1:start], data[end:end + 1], data[start:end]
        if (before and (before[0] in _WORD or before in (b"%", b"."))) or (after and after[0] in _WORD) or \
                candidate.count(b":") < 2 or _ip_or_same(candidate, candidate) is candidate:
            continue
        out += [data[last:start], IP_MARK]
        last = end
    return b"".join([*out, data[last:]]) if out else data


def _ip_or_same(text: bytes, address: bytes) -> bytes:
    try:
        ipaddress.ip_address(address.decode("ascii"))
    except ValueError:
        return text
    return IP_MARK


def _json_text(raw: bytes) -> str:
    """A JSON string's content (without its quotes), unescaped when the escapes are valid."""
    try:
        return orjson.loads(b'"' + raw + b'"')
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace")


def _pair(match: re.Match[bytes], key: bytes | None) -> bytes:
    name, value = _json_text(match.group(1)), match.group(2)
    complete = value.startswith(b'"') and len(value) > 1 and value.endswith(b'"')  # the pattern consumed escapes
    text = _json_text(value[1:-1] if complete else value.lstrip(b'"'))
    kind = _kind(name)
    if kind in USER_ID_FIELDS:
        new: str | None = pseudonym(text, key) if text else ""
    elif kind in IP_FIELDS or name == KEY_FIELD:
        new = ""
    elif name in JSON_PARAMS or name in BASE64_PARAMS:
        new = _reencode(text, name in BASE64_PARAMS, key, True) if complete else UNDECODABLE
        if new == text:
            return match.group(0)
    else:
        return match.group(0)
    return b'"' + match.group(1) + b'":' + orjson.dumps(new)


def _param(match: re.Match[bytes], key: bytes | None) -> bytes:
    name = unquote_plus(match.group(1).decode("utf-8", "replace"))
    text = unquote_plus(match.group(2).decode("utf-8", "replace"))
    kind = _kind(name)
    if kind in USER_ID_FIELDS:
        new = pseudonym(text, key) if text else ""
    elif kind in IP_FIELDS or name == KEY_FIELD:
        new = ""
    elif name in JSON_PARAMS or name in BASE64_PARAMS:
        new = _reencode(text, name in BASE64_PARAMS, key, True)
        if new == text:
            return match.group(0)
    else:
        return match.group(0)
    return match.group(1) + b"=" + quote(new, safe=":").encode()
