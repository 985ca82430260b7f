"""Hostile input generators (hypothesis strategies) for every collector endpoint and every raw topic, the collector
as a child process (so its RSS is its own), and the bookkeeping of what was sent and answered. Shared by the fuzz
tests (a fixed budget, derandomized) and bench/fuzz.py (a longer run)."""

from __future__ import annotations

import asyncio
import base64
import gzip
import os
import socket
import subprocess
import sys
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import orjson
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet.demo import wait_until_landed
from fleet.pings import generate_fleet
from fleet.seat_link import generate_seat_links
from streams import config
from streams.child import ChildProcess
from streams.config import Settings
from streams.warehouse import open_warehouse
from streams.worker import WorkerProcess
from tests.support.hostile import Answer, ThreadCollector, thread_collector

TP2 = "/com.snowplowanalytics.snowplow/tp2"
PAYLOAD_SCHEMA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
# Not a key of the tracker protocol: an event carrying it can never be valid (the schema allows no other keys),
# so every hostile Snowplow event is a bad row by construction.
INVALID_EVENT_KEY = "fz"

# ------------------------------------------------------------------------------------------- hostile values

ODD_TEXT = st.text(st.characters(codec="utf-8"), max_size=40) | st.sampled_from([
    "\u0000", "\u202e\u2066", "\U0001f600" * 50, "\ufeff", "\ud7ff\ue000", "\u0661\u0667.\u0663", "17.3.1\u00b2",
    "é" * 3000, "%FF%FE", "../../etc/passwd", "' OR 1=1 --", "{{7*7}}", "\\u0000",
])
NUMBERS = st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [-1, -2, -1000, 0, 2**63, -(2**63) - 1, 1e308, -0.0])
SCALARS = st.none() | st.booleans() | NUMBERS | ODD_TEXT
SMALL = SCALARS | st.lists(SCALARS, max_size=3) | st.dictionaries(ODD_TEXT, SCALARS, max_size=3)
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(ODD_TEXT, inner, max_size=5), max_leaves=20)


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"n": value}
    return value


# Wrong shapes beyond random values: deep nesting (orjson writes at most 254 levels), huge values, long arrays.
SHAPES = JSON_VALUES | JSON_VALUES | JSON_VALUES | st.integers(60, 400).map(nested) | st.sampled_from([
    "x" * 300_000, list(range(50_000)), {f"k{n}": n for n in range(20_000)}, [None] * 10_000,
])


def json_bytes(value: Any) -> bytes:
    """orjson refuses integers past 64 bits and nesting past 254 levels: write those by hand."""
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        if isinstance(value, int):
            return str(value).encode()
        if isinstance(value, list):
            return b"[" + b",".join(json_bytes(v) for v in value) + b"]"
        if isinstance(value, dict):
            return b"{" + b",".join(orjson.dumps(str(k)) + b":" + json_bytes(v) for k, v in value.items()) + b"}"
        raise


GZIP_BOMB = gzip.compress(b"\0" * (9 * 2**20), 9)  # ~9 KiB that inflate past the 8 MiB body limit


@st.composite
def encoded(draw: st.DrawFn, body: bytes) -> tuple[bytes, dict[str, str]]:
    """`body` as sent: plain, gzip/deflate (sometimes truncated or lying), or swapped for a bomb or junk."""
    how = draw(st.sampled_from(["plain", "plain", "plain", "gzip", "deflate", "truncated", "bomb", "lying",
                                "unknown", "junk"]))
    if how == "gzip":
        return gzip.compress(body), {"Content-Encoding": "gzip"}
    if how == "deflate":
        return zlib.compress(body), {"Content-Encoding": "deflate"}
    if how == "truncated":
        return gzip.compress(body)[:-9], {"Content-Encoding": "gzip"}
    if how == "bomb":
        return GZIP_BOMB, {"Content-Encoding": "gzip"}
    if how == "lying":
        return body, {"Content-Encoding": "gzip"}
    if how == "unknown":
        return body, {"Content-Encoding": draw(st.sampled_from(["br", "zstd", "gzip, gzip", "\xff"]))}
    if how == "junk":
        return draw(st.binary(max_size=2000)), {}
    return body, {}


# Header values: bytes that are not UTF-8, long ones, odd but framing-safe (no CR/LF); mostly without the control
# characters aiohttp's parser refuses before any handler runs (so the handlers see the odd values).
_PRINTABLE_BYTES = st.binary(max_size=200).map(lambda b: bytes(c for c in b if c >= 0x20 and c != 0x7F))
HEADER_VALUES = _PRINTABLE_BYTES | _PRINTABLE_BYTES | _PRINTABLE_BYTES | _PRINTABLE_BYTES | st.sampled_from(
    [b"\xff\xfe caf\xe9 \xc3", b"a" * 7000, b"1.2.3.4, \xff, ::1", b"not-an-ip", b"\xe2\x80\xae", b"\x00"]) | st.binary(
    max_size=200).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
HEADER_NAMES = st.sampled_from(["User-Agent", "X-Forwarded-For", "Referer", "Origin", "Content-Type", "SP-Anonymous",
                                "Cookie", "X-Denomas-As-Of", "Accept-Encoding", "X-Fuzz"])
HEADERS = st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=3)

# --------------------------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Request:
    endpoint: str  # a name of ENDPOINTS
    method: str
    path: bytes
    body: bytes = b""
    headers: dict[str, str | bytes] = field(default_factory=dict)
    events: int = 0  # hostile Snowplow events in the body (each a bad row when the request is accepted)


def _without(document: Any, *names: str) -> Any:
    return {k: v for k, v in document.items() if k not in names} if isinstance(document, dict) else document


@st.composite
def json_post(draw: st.DrawFn, endpoint: str, path: str, documents: st.SearchStrategy) -> Request:
    body = draw(documents.map(json_bytes) | st.binary(max_size=3000) | st.sampled_from(
        [b"", b"{", b'{"a": 1', b"\xef\xbb\xbf{}", b'{"a": "\xff"}', b"[" * 5000, b"null", b"1e999999"]))
    sent, encoding = draw(encoded(body))
    return Request(endpoint, "POST", path.encode(), sent, draw(HEADERS) | encoding)


# A ping without `version` (required) can never be valid: every accepted hostile ping is a dead letter.
PINGS = st.dictionaries(ODD_TEXT, SHAPES, max_size=6).flatmap(
    lambda doc: st.fixed_dictionaries({"uuid": SCALARS, "recorded_at": SCALARS}).map(lambda ids: doc | ids)
).map(lambda doc: _without(doc, "version")) | SHAPES
ERROR_REPORTS = st.fixed_dictionaries({"error": st.dictionaries(ODD_TEXT, SHAPES, max_size=5)}).map(
    lambda d: {"error": _without(d["error"], "uuid")}) | SHAPES
METADATA = st.fixed_dictionaries({"metadata": st.fixed_dictionaries(
    {"metrics": st.lists(JSON_VALUES, max_size=5)}, optional={"x": SHAPES})}) | SHAPES


@st.composite
def seat_links(draw: st.DrawFn) -> Any:
    document = draw(st.dictionaries(ODD_TEXT, SHAPES, max_size=6))
    if draw(st.booleans()):  # the shape the collector accepts, with hostile values
        document |= {"license_key": f"fuzz-key-{draw(st.uuids())}", "date": draw(ODD_TEXT | NUMBERS),
                     "active_users": draw(SCALARS), "timestamp": draw(SCALARS)}
    return document


@st.composite
def version_checks(draw: st.DrawFn, suffix: str) -> Request:
    readable = st.builds(lambda v, extra: base64.urlsafe_b64encode(json_bytes(extra | {"version": v})).decode(),
                         st.sampled_from(["17.3.1", "16.0.0-ee", "15.11.13", "99.99.99"]),
                         st.dictionaries(ODD_TEXT, JSON_VALUES, max_size=3))
    info = draw(st.one_of(  # mostly readable, so the odd parts reach the answer and the record
        readable, readable, readable,
        ODD_TEXT.map(lambda v: base64.urlsafe_b64encode(json_bytes({"version": v})).decode()),
        st.binary(max_size=80).map(lambda b: base64.b64encode(b).decode()),
        ODD_TEXT.map(lambda t: t.encode("utf-8", "surrogatepass").hex()),
        st.sampled_from([b'{"version": "17.3.1", "edition": "\\ud800"}', b'{"version": "\\udfff17.3.1"}',
                         b'{"version": "17.3.1\\u0000"}', b'{"version": "17.3.1", "version": 3}',
                         b'{"version": ["17.3.1"]}', b"\xef\xbb\xbf{\"version\": \"17.3.1\"}"]).map(
            lambda raw: base64.urlsafe_b64encode(raw).decode()),
    ))
    extra = draw(st.lists(st.tuples(st.binary(max_size=20), st.binary(max_size=300)), max_size=4))
    query = b"gitlab_info=" + _quote(info.encode("utf-8", "surrogatepass")) + b"".join(
        b"&" + _quote(k) + b"=" + _quote(v) for k, v in extra)
    if rarely(draw):  # raw bytes that are not UTF-8 straight in the request line
        query += b"&raw=" + draw(st.binary(min_size=1, max_size=20)).translate(_NO_SPACES)
    return Request(f"check.{suffix}", "GET", f"/check.{suffix}?".encode() + query, headers=draw(HEADERS))


_NO_SPACES = bytes.maketrans(b" \r\n\t#", b"_____")


def rarely(draw: st.DrawFn, one_in: int = 5) -> bool:
    """True about once in `one_in` draws (hypothesis leans to the smallest value, so the rare case is the largest)."""
    return draw(st.integers(1, one_in)) == one_in


def _quote(raw: bytes) -> bytes:
    return b"".join(bytes([c]) if chr(c).isascii() and chr(c).isalnum() else b"%%%02X" % c for c in raw)


PROTOCOL_KEYS = ["e", "p", "tv", "eid", "dtm", "uid", "ip", "cx", "co", "ue_pr", "ue_px", "se_ca", "se_ac", "se_va",
                 "url", "duid"]


@st.composite
def snowplow_events(draw: st.DrawFn) -> list[Any]:
    """Events that are all invalid: dicts carry INVALID_EVENT_KEY next to hostile protocol fields; others are not
    objects at all."""
    loose = st.dictionaries(st.sampled_from(PROTOCOL_KEYS) | ODD_TEXT, SHAPES, max_size=6)
    # Every protocol field may hold a small value of the wrong type (a number, null, list): big shapes mostly get the
    # whole request refused (too deep, too large) before a handler looks at a field (`"cx": 5` was a 500 that
    # 5,600 requests did not find).
    typed = st.fixed_dictionaries({}, optional={k: SMALL for k in PROTOCOL_KEYS})
    event = (loose | typed).map(lambda e: e | {INVALID_EVENT_KEY: "1"})
    return draw(st.lists(event | SHAPES, min_size=1, max_size=8))


@st.composite
def tp2(draw: st.DrawFn) -> Request:
    events = draw(snowplow_events())
    envelope = draw(st.sampled_from(["good", "good", "good", "schema", "data", "shape"]))
    if envelope == "good":
        body, count = json_bytes({"schema": PAYLOAD_SCHEMA, "data": events}), len(events)
    elif envelope == "schema":
        body, count = json_bytes({"schema": draw(ODD_TEXT), "data": events}), 0
    elif envelope == "data":
        data = draw(SHAPES)  # a non-empty list is accepted: its members are the (invalid) events
        body, count = json_bytes({"schema": PAYLOAD_SCHEMA, "data": data}), len(data) if isinstance(data, list) else 0
    else:
        body, count = json_bytes(draw(SHAPES)), 0
    sent, encoding = draw(encoded(body))
    return Request("tp2", "POST", TP2.encode(), sent, draw(HEADERS) | encoding, count)


@st.composite
def pixel(draw: st.DrawFn, path: str) -> Request:
    pairs = draw(st.lists(st.tuples(st.binary(max_size=12), st.binary(max_size=400)), max_size=12))
    raw = b"&".join(_quote(k) + b"=" + _quote(v) for k, v in pairs)
    if draw(st.booleans()):
        raw += b"&" + INVALID_EVENT_KEY.encode() + b"=1"  # else: no event parameters, or no valid protocol keys
    if rarely(draw):
        raw += b"&x=" + draw(st.binary(min_size=1, max_size=30)).translate(_NO_SPACES)
    if rarely(draw, 10):
        raw = b"&".join(b"p%d=%d" % (n, n) for n in range(draw(st.integers(100, 3000))))
    return Request(path.lstrip("/"), "GET", path.encode() + b"?" + raw, headers=draw(HEADERS))


@st.composite
def plain(draw: st.DrawFn, endpoint: str, method: str, path: str) -> Request:
    raw = draw(st.binary(max_size=200))
    query = raw.translate(_NO_SPACES) if rarely(draw) else _quote(raw)
    return Request(endpoint, method, path.encode() + (b"?" + query if query else b""), headers=draw(HEADERS))


@st.composite
def elsewhere(draw: st.DrawFn) -> Request:
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "TRACE", "FUZZ"]))
    path = b"/zz/" + draw(st.binary(max_size=60)).translate(_NO_SPACES).replace(b"?", b"_")  # no route
    return Request("elsewhere", method, path, draw(st.binary(max_size=500)) if method != "GET" else b"",
                   draw(HEADERS))


ENDPOINTS: dict[str, st.SearchStrategy[Request]] = {
    "usage_data": json_post("usage_data", "/usage_data", PINGS),
    "usage_ping_errors": json_post("usage_ping_errors", "/usage_ping_errors", ERROR_REPORTS),
    "usage_ping_metadata": json_post("usage_ping_metadata", "/usage_ping_metadata", METADATA),
    "seat_links": json_post("seat_links", "/api/v1/seat_links", seat_links()),
    "check.json": version_checks("json"),
    "check.svg": version_checks("svg"),
    "check.png": version_checks("png"),
    "tp2": tp2(),
    "i": pixel("/i"),
    "ice.png": pixel("/ice.png"),
    "options": plain("options", "OPTIONS", TP2),
    "health": plain("health", "GET", "/health"),
    "metrics": plain("metrics", "GET", "/metrics"),
    "elsewhere": elsewhere(),
}
SOURCES = {"usage_data": "service_ping", "usage_ping_errors": "service_ping", "usage_ping_metadata": "service_ping",
           "seat_links": "seat_link", "check.json": "version_check", "check.svg": "version_check",
           "check.png": "version_check", "tp2": "snowplow", "i": "snowplow", "ice.png": "snowplow"}

# --------------------------------------------------------------------------------------------- bookkeeping


@dataclass
class Tally:
    """What was sent and answered, per endpoint and status, and what should have become a bad row."""

    statuses: Counter = field(default_factory=Counter)  # (endpoint, status)
    accepted: Counter = field(default_factory=Counter)  # source -> 2xx answers that published a record
    bad_rows: int = 0  # Snowplow bad rows the answers promise (events of accepted requests, refused requests)
    reasons: Counter = field(default_factory=Counter)  # (endpoint, status, start of the reason) of 4xx answers
    no_reason: list[tuple[Request, Answer]] = field(default_factory=list)
    server_errors: list[tuple[Request, Answer]] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def record(self, request: Request, answer: Answer) -> None:
        self.statuses[request.endpoint, answer.status] += 1
        if answer.status >= 500:
            self.server_errors.append((request, answer))
        elif answer.status >= 400:
            reason = reason_of(answer)
            self.reasons[request.endpoint, answer.status, reason.split(":")[0][:50]] += 1
            if not reason and request.method != "HEAD":
                self.no_reason.append((request, answer))
        source = SOURCES.get(request.endpoint)
        if source is None:
            return
        if 200 <= answer.status < 300:
            self.accepted[source] += 1
            if source == "snowplow":
                self.bad_rows += request.events or 1  # a pixel or an unreadable body is one bad row
        elif source == "snowplow" and answer.status in (400, 422) and is_ours(answer):
            self.bad_rows += 1  # refused by the collector, and kept as a bad row of the whole request


def is_ours(answer: Answer) -> bool:
    """Answered by a collector handler (JSON), not by aiohttp's parser, which refuses a malformed request line or
    header (text) before any handler sees it: such a request is never published, so it is no bad row."""
    return answer.headers.get("content-type", "").startswith("application/json")


def reason_of(answer: Answer) -> str:
    """The `error` of a JSON answer, else the text of a plain one (aiohttp's own 4xx: bad request line, 404)."""
    try:
        document = orjson.loads(answer.body)
    except orjson.JSONDecodeError:
        return answer.body.decode("utf-8", "replace").strip()
    return str(document.get("error") or "") if isinstance(document, dict) else ""


def fuzz(collector: ThreadCollector, tally: Tally, endpoint: str, examples: int, seed: int | None = None) -> None:
    """`examples` hostile requests to one endpoint, each answered and tallied. seed=None: derandomized (CI)."""

    @settings(max_examples=examples, derandomize=seed is None, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), phases=("generate",))
    @given(ENDPOINTS[endpoint])
    def send(request: Request) -> None:
        tally.record(request, collector.request(request.method, request.path, request.body, request.headers))

    (send if seed is None else hypothesis.seed(seed)(send))()


# --------------------------------------------------------------------------------------------- processes


def rss_mib(pid: int, field_name: str = "VmRSS") -> float:
    """Resident memory of a process (VmHWM: its peak) in MiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    raise LookupError(field_name)


class CollectorProcess(ChildProcess):
    """`denomas-usage collector --port 0` on the settings' topics, as a child process (its memory is its own)."""

    def __init__(self, settings: Settings, bootstrap: str) -> None:
        super().__init__(settings.data_dir / "collector.log")
        self.settings, self.bootstrap = settings, bootstrap

    def start(self) -> ThreadCollector:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = os.environ | {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap, "DENOMAS_DATA_DIR": str(self.settings.data_dir),
                            "DENOMAS_TOPIC_PREFIX": self.settings.topic_prefix, "DENOMAS_APP_ID": self.settings.app_id,
                            "DENOMAS_TOPIC_PARTITIONS": str(self.settings.topic_partitions)}
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "collector", "--port", "0"],
                                          env=env, stdout=subprocess.PIPE, stderr=log, text=True)
        line = self._proc.stdout.readline().strip()  # type: ignore[union-attr]  # "collector listening on URL"
        if not line.startswith("collector listening on "):
            raise RuntimeError(f"collector did not start: {line!r}\n{self.log_tail()}")
        host, port = line.rsplit("/", 1)[1].split(":")
        return ThreadCollector(host, int(port), self.settings)


# --------------------------------------------------------------------------------------------- outcomes

VALID_EVENT = {"e": "se", "p": "web", "tv": "py-1.1.0", "se_ca": "fuzz", "se_ac": "valid-after",
               "eid": str(uuid.UUID(int=18)), "dtm": "1780000000000"}
VALID_HOST = "valid-after.example"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def send_valid(collector: ThreadCollector) -> dict[str, int]:
    """One valid record of each source, after the hostile ones: the status each got."""
    ping = next(p for p in generate_fleet(2, 2, seed=3) if p.valid)
    seat = next(r for r in generate_seat_links(3, 2, seed=5) if r.status == 200 and r.expected)
    gitlab_info = base64.urlsafe_b64encode(orjson.dumps({"version": "17.3.1"})).decode()
    return {
        "service_ping": collector.request("POST", "/usage_data", orjson.dumps(ping.payload)).status,
        "seat_link": collector.request("POST", "/api/v1/seat_links", seat.body).status,
        "version_check": collector.request("GET", f"/check.json?gitlab_info={gitlab_info}",
                                           headers={"Referer": f"https://{VALID_HOST}/admin"}).status,
        "snowplow": collector.request("POST", TP2, orjson.dumps({"schema": PAYLOAD_SCHEMA, "data": [VALID_EVENT]}),
                                      {"Content-Type": "application/json"}).status,
    }


def counts(settings: Settings) -> dict[str, object]:
    warehouse = open_warehouse(settings)
    try:
        def one(sql: str) -> object:
            return warehouse.query(sql).rows[0][0]

        return {
            "pings": one("SELECT count() FROM fct_ping_instance FINAL"),
            "ping_reports": one("SELECT (SELECT count() FROM fct_ping_error FINAL) + "
                                "(SELECT count() FROM fct_ping_metric_timing FINAL)"),
            "seat_links": one("SELECT count() FROM fct_seat_link FINAL"),
            "version_checks": one("SELECT count() FROM fct_version_check FINAL"),
            "valid_version_checks": one(f"SELECT count() FROM fct_version_check FINAL WHERE host = '{VALID_HOST}'"),
            "events": warehouse.query("SELECT event_category, event_action FROM fct_behavior_structured_event").rows,
            "bad_rows": one("SELECT count() FROM raw_snowplow_bad_row"),
            "dead_letters": dict(warehouse.query("SELECT source, count() FROM raw_dead_letter FINAL "
                                                 "GROUP BY source").rows),
        }
    finally:
        warehouse.close()


def drain(settings: Settings, bootstrap: str, worker: WorkerProcess, timeout: float = 300) -> None:
    """Wait until the worker has processed everything; if it does not, say where it stands (its log's end)."""
    try:
        asyncio.run(wait_until_landed(settings, bootstrap, timeout=timeout))
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; worker alive: {worker.alive()}; its log ends:\n{worker.log_tail(40)}") from exc


def run_fuzz(settings: Settings, bootstrap: str, examples: int, seed: int | None = None) -> dict:
    """The collector and a worker as child processes, `examples` hostile requests per endpoint, then one valid
    record per source; waits until the worker has processed everything and returns what was seen and stored."""
    collector_process = CollectorProcess(settings, bootstrap)
    collector = collector_process.start()
    worker = WorkerProcess(settings, bootstrap)
    tally = Tally()
    try:
        worker.start()
        for endpoint in ENDPOINTS:
            fuzz(collector, tally, endpoint, examples, seed)
        alive = {"collector": collector_process.alive(), "worker": worker.alive()}
        rss = {"collector": rss_mib(collector_process.pid), "collector_peak": rss_mib(collector_process.pid, "VmHWM"),
               "worker_peak": rss_mib(worker.pid, "VmHWM")}
        valid = send_valid(collector)
        drain(settings, bootstrap, worker)
        alive_after = worker.alive()
        logs = {"collector": collector_process.log_tail(200), "worker": worker.log_tail(),
                "collector_path": str(collector_process.log_path)}
    finally:
        worker.stop()
        collector_process.stop()
    return {"settings": settings, "tally": tally, "alive": alive, "alive_after": alive_after, "rss": rss,
            "valid": valid, "logs": logs, "counts": counts(settings)}


# --------------------------------------------------------------------------------------------- raw topics

KNOWN_HEADERS = ["received_at", "source", "kind", "request_id", "collector", "ping_id", "event_index", "useragent",
                 "client_geo", "bad_row_type", "reason", "stage", "failed_at", "kafka_topic", "kafka_partition",
                 "kafka_offset", "part"]
RECORD_HEADERS = st.dictionaries(st.sampled_from(KNOWN_HEADERS) | st.text(max_size=10),
                                 HEADER_VALUES | st.sampled_from([b"events", b"event", b"bad_request", b"-1", b"0x1",
                                                                  b"99999999999999999999", b"not a time"]),
                                 max_size=6)
RECORD_VALUES = st.one_of(
    st.binary(max_size=3000),  # random bytes
    SHAPES.map(json_bytes),  # wrong shapes, deep nesting, huge values
    snowplow_events().map(json_bytes),  # arrays of (invalid) events, what the Snowplow agent reads
    st.sampled_from([b"", b"\xff\xfe{\x00}\x00", "{\"a\": \"caf\xe9\"}".encode("latin-1"), b"\xef\xbb\xbf{}",
                     "{}".encode("utf-16"), GZIP_BOMB, b"[" * 5000, b'{"a": 1e99999}', b"x" * 2_000_000]),
)


@dataclass(frozen=True)
class RawRecord:
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


def invalid_reference(value: bytes) -> bytes | None:
    """A reference record's value that can never be valid: any JSON object with only its id is a valid row, so an
    object gets a license key (never loadable); JSON null is a valid delete, so it is left out (None)."""
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError:
        return value
    if isinstance(document, dict):
        return json_bytes(document | {"license_key": "fuzz-not-a-key"})
    return None if document is None else value


def raw_records(compacted: bool) -> st.SearchStrategy[RawRecord]:
    """Records another producer might publish, none of them valid. A compacted topic needs a key."""
    keys = st.binary(min_size=1, max_size=40) if compacted else st.none() | st.binary(max_size=40)
    values = RECORD_VALUES.map(invalid_reference).filter(bool) if compacted else RECORD_VALUES
    return st.builds(RawRecord, keys, values, RECORD_HEADERS.map(lambda h: tuple(h.items())))


def letter_identity(headers: tuple[tuple[str, bytes], ...]) -> tuple[str, ...]:
    """What identifies a dead letter published straight to the DLQ (its claimed Kafka position and stage), read the
    way any consumer must read another producer's headers: undecodable bytes replaced."""
    text = {name: value.decode("utf-8", "replace") for name, value in headers}
    identity = (text.get("kafka_topic", ""), text.get("kafka_partition", "0"), text.get("kafka_offset", "0"),
                text.get("stage", ""))
    return identity + ((text["part"],) if "part" in text else ())


def generate(strategy: st.SearchStrategy, examples: int, seed: int | None = None) -> list:
    """`examples` values of `strategy` (derandomized unless a seed is given)."""
    drawn: list = []

    @settings(max_examples=examples, derandomize=seed is None, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), phases=("generate",))
    @given(strategy)
    def draw(value: Any) -> None:
        drawn.append(value)

    (draw if seed is None else hypothesis.seed(seed)(draw))()
    return drawn


RAW_TOPICS = [config.TOPIC_RAW_SERVICE_PING, config.TOPIC_RAW_SEAT_LINK, config.TOPIC_RAW_VERSION_CHECK,
              config.TOPIC_RAW_SNOWPLOW, *config.REFERENCE_TOPICS]


async def publish(bootstrap: str, settings: Settings, records: dict[str, list[RawRecord]]) -> dict[str, list[int]]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=10 * 2**20)
    await producer.start()
    offsets: dict[str, list[int]] = {}
    try:
        for topic, hostile in records.items():
            for record in hostile:
                sent = await producer.send_and_wait(settings.topic(topic), value=record.value, key=record.key,
                                                    headers=list(record.headers))
                offsets.setdefault(topic, []).append(sent.offset)
    finally:
        await producer.stop()
    return offsets


def run_raw_fuzz(settings: Settings, bootstrap: str, examples: int, seed: int | None = None) -> dict:
    """`examples` hostile records on each raw and reference topic and on the DLQ, then a worker and one valid record
    per source over the collector; waits until the worker has processed everything, returns what was stored."""
    records = {topic: generate(raw_records(compacted=topic in config.REFERENCE_TOPICS), examples, seed)
               for topic in [*RAW_TOPICS, config.TOPIC_DLQ]}
    with thread_collector(bootstrap, settings) as collector:  # creates the topics
        offsets = asyncio.run(publish(bootstrap, settings, records))
        worker = WorkerProcess(settings, bootstrap)
        worker.start()
        try:
            valid = send_valid(collector)
            drain(settings, bootstrap, worker)
            alive, peak, log = worker.alive(), rss_mib(worker.pid, "VmHWM"), worker.log_tail()
        finally:
            worker.stop()
    warehouse = open_warehouse(settings)
    try:
        lettered = dict(warehouse.query("SELECT kafka_topic, groupUniqArray(kafka_offset) FROM raw_dead_letter FINAL "
                                        "GROUP BY kafka_topic").rows)
        ours = sorted(settings.topic(t) for t in RAW_TOPICS)  # the rest came from the letters put on the DLQ
        dlq_rows = warehouse.query("SELECT count() FROM raw_dead_letter FINAL WHERE kafka_topic NOT IN "
                                   "{ours:Array(String)}", {"ours": ours}).rows[0][0]
    finally:
        warehouse.close()
    return {"settings": settings, "records": records, "offsets": offsets, "valid": valid, "alive": alive,
            "peak": peak, "log": log, "lettered": lettered, "dlq_rows": dlq_rows,
            "counts": counts(settings)}
