"""ClickHouse's HTTP protocol as this service speaks it: reading a request (credentials, URL and form parameters,
the compressed body, where an INSERT's statement ends and its data begins) and writing an answer (content type,
summary header, the Native header block of an empty result). The request handling is streams/warehouse_service/http.py.
"""

from __future__ import annotations

import base64
import re
import zlib
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from streams.warehouse_service.engine import Connection, Result, Statement
from streams.warehouse_service.errors import ClickHouseError
from streams.warehouse_service.users import User

# URL parameters that are the HTTP interface's own, not settings.
TRANSPORT_PARAMS = frozenset({
    "query", "database", "default_format", "user", "password", "query_id", "session_id", "session_timeout",
    "session_check", "compress", "decompress", "quota_key", "buffer_size", "wait_end_of_query", "role", "stacktrace",
    "client_protocol_version",
})
# Settings clickhouse-connect sends with every request; accepted even with readonly=1 (they change no result).
CLIENT_SETTINGS = frozenset({
    "enable_http_compression", "send_progress_in_http_headers", "http_headers_progress_interval_ms",
    "date_time_input_format", "input_format_null_as_default", "output_format_arrow_string_as_string",
    "http_zlib_compression_level", "cancel_http_readonly_queries_on_client_close",
    "cast_string_to_dynamic_use_inference",
})
MAX_QUERY_BYTES = 16 * 1024 * 1024  # a statement (not insert data) read from a POST body
HEAD_BYTES = 256 * 1024  # where an INSERT statement in a POST body must end (its data follows)


class _Decoder:
    """Streaming request-body decompression (Content-Encoding), across concatenated frames or members."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._decompressor: Any = self._new()

    def _new(self) -> Any:
        if self.encoding in ("gzip", "deflate", "x-gzip"):
            return zlib.decompressobj(wbits=47)  # gzip or zlib header, detected
        if self.encoding == "lz4":
            import lz4.frame

            return lz4.frame.LZ4FrameDecompressor()
        if self.encoding == "zstd":
            from backports import zstd

            return zstd.ZstdDecompressor()
        if self.encoding == "br":
            try:
                import brotli  # type: ignore[import-not-found]
            except ImportError:
                raise ClickHouseError(48, "NOT_IMPLEMENTED", "Content-Encoding br: brotli is not installed") from None
            return brotli.Decompressor()
        raise ClickHouseError(36, "BAD_ARGUMENTS", f"Unknown Content-Encoding: {self.encoding}")

    def feed(self, chunk: bytes) -> bytes:
        out = []
        while chunk:
            decompress = self._decompressor.process if self.encoding == "br" else self._decompressor.decompress
            out.append(decompress(chunk))
            if not getattr(self._decompressor, "eof", False):
                break
            chunk = self._decompressor.unused_data
            self._decompressor = self._new()
        return b"".join(out)


class Body:
    """The request body, decompressed as it streams in; the statement's head is read first."""

    def __init__(self, request: web.Request) -> None:
        encoding = request.headers.get("Content-Encoding", "").strip().lower()
        self._decoder = _Decoder(encoding) if encoding and encoding != "identity" else None
        self._chunks = request.content.iter_chunked(1 << 20) if request.can_read_body else None
        self.head = b""
        self.ended = self._chunks is None

    async def _next(self) -> bytes | None:
        if self._chunks is None:
            return None
        try:
            chunk = await self._chunks.__anext__()
        except StopAsyncIteration:
            self.ended = True
            return None
        return self._decoder.feed(chunk) if self._decoder else chunk

    async def read_head(self, size: int) -> bytes:
        while len(self.head) < size and not self.ended:
            chunk = await self._next()
            if chunk:
                self.head += chunk
        return self.head

    async def rest(self) -> Any:
        """What is left after the head: consumes the body."""
        if self.head:
            yield self.head
            self.head = b""
        while (chunk := await self._next()) is not None:
            if chunk:
                yield chunk

    async def text(self) -> str:
        parts, size = [], 0
        async for chunk in self.rest():
            size += len(chunk)
            if size > MAX_QUERY_BYTES:
                raise ClickHouseError(202, "QUERY_IS_TOO_LARGE", f"Query is larger than {MAX_QUERY_BYTES} bytes")
            parts.append(chunk)
        try:
            return b"".join(parts).decode()
        except UnicodeDecodeError:
            raise ClickHouseError(36, "BAD_ARGUMENTS", "The query is not valid UTF-8") from None


FORM_TYPES = ("multipart/form-data",)  # as ClickHouse: a url-encoded body (curl --data-binary) is the query itself


async def request_fields(request: web.Request) -> Mapping[str, str]:
    """The request's parameters: the URL's, plus the form fields of a form body (clickhouse-connect sends the
    query and its `param_*` values as a form when they would make the URL too long)."""
    if request.method != "POST" or request.content_type not in FORM_TYPES:
        return request.query
    fields = dict(request.query)
    for name, value in (await request.post()).items():
        if not isinstance(value, str):  # a file part: external data, which this service does not take
            raise ClickHouseError(48, "NOT_IMPLEMENTED", f"external data ({name}) is not supported")
        fields[name] = value
    return fields


_TRAILING_FORMAT = re.compile(r"\s+FORMAT\s+\w+\s*$")


def native_header(conn: Connection, statement: Statement) -> bytes:
    """An empty result in Native format as a ClickHouse server sends it: one block with the columns' names and types
    and no rows (the embedded engine writes nothing; clients read the column names from this block). The columns
    come from the engine's DESCRIBE of the statement (its canonical text, without its FORMAT clause)."""
    try:
        described = conn.run(f"DESCRIBE ({_TRAILING_FORMAT.sub('', statement.formatted)})", "JSONCompact",
                             statement.params).body
        columns = [(row[0], row[1]) for row in orjson.loads(described)["data"]]
    except (ClickHouseError, RuntimeError, ValueError, KeyError):
        return b""  # a statement DESCRIBE cannot take (e.g. SHOW ...): as before, no block
    out = bytearray(_leb128(len(columns)) + _leb128(0))
    for name, kind in columns:
        for text in (name.encode(), kind.encode()):
            out += _leb128(len(text)) + text
    return bytes(out)


def _leb128(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def credentials(request: web.Request) -> tuple[str, str, bool]:
    """(user, password, given): basic auth, X-ClickHouse-User/Key headers, or user/password parameters."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("basic "):
        try:
            name, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise ClickHouseError(516, "AUTHENTICATION_FAILED", "Malformed basic authorization header") from None
        return name or "default", password, True
    if "X-ClickHouse-User" in request.headers or "X-ClickHouse-Key" in request.headers:
        return request.headers.get("X-ClickHouse-User", "default"), request.headers.get("X-ClickHouse-Key", ""), True
    if "user" in request.query or "password" in request.query:
        return request.query.get("user", "default"), request.query.get("password", ""), True
    return "default", "", False


def readonly_level(user: User, requested: str | None, method: str) -> int:
    """ClickHouse's rules: a user cannot lower its own readonly level; GET requests are readonly=2."""
    levels = {user.readonly, 2 if method == "GET" else 0}
    if requested is not None:
        if requested not in ("0", "1", "2"):
            raise ClickHouseError(36, "BAD_ARGUMENTS", f"Invalid value for setting readonly: {requested}")
        if user.readonly and requested == "0":
            raise ClickHouseError(164, "READONLY", "Cannot modify 'readonly' setting in readonly mode")
        levels.add(int(requested))
    return 1 if 1 in levels else (2 if 2 in levels else 0)


def content_type(fmt: str) -> str:
    if fmt.startswith(("TabSeparated", "TSV")):
        return "text/tab-separated-values; charset=UTF-8"
    if fmt.startswith("CSV"):
        return "text/csv; charset=UTF-8; header=absent"
    if fmt.startswith("JSON"):
        return "application/json; charset=UTF-8"
    if fmt in ("Native", "Arrow", "ArrowStream", "Parquet", "RowBinary", "RowBinaryWithNamesAndTypes", "ORC"):
        return "application/octet-stream"
    return "text/plain; charset=UTF-8"


def summary_header(result: Result) -> str:
    return orjson.dumps({
        "read_rows": str(result.rows_read), "read_bytes": str(result.bytes_read),
        "written_rows": str(result.rows_written), "written_bytes": str(result.bytes_written),
        "total_rows_to_read": "0", "elapsed_ns": str(int(result.elapsed * 1e9)),
    }).decode()


_DATA_START = re.compile(rb"\bFORMAT\s+`?\w+`?|\bVALUES\b", flags=re.IGNORECASE)
_HAS_INSERT = re.compile(rb"\bINSERT\b", flags=re.IGNORECASE)


def _skip_to_data(raw: bytes) -> bytes:
    """Data starts after the format name, past spaces and one line break."""
    raw = raw.lstrip(b" \t")
    return raw[1:] if raw.startswith(b"\n") else raw[2:] if raw.startswith(b"\r\n") else raw


def find_data_insert(conn: Connection, raw: bytes, params: Mapping[str, str]) -> tuple[Statement, bytes] | None:
    """`INSERT ... FORMAT x` or `VALUES` followed by data (text or binary, as clickhouse-connect sends Native):
    the statement is the shortest prefix the engine parses as a data INSERT; the rest is data, which never runs
    as SQL (chdb would run a statement after `VALUES (1); `). None if `raw` starts no data INSERT."""
    if not _HAS_INSERT.search(raw):  # a shortcut only: the engine decides below
        return None
    for match in _DATA_START.finditer(raw):
        try:
            prefix = raw[: match.end()].decode()
            statement = conn.analyze(prefix, params)
        except (UnicodeDecodeError, ClickHouseError):
            continue
        if statement.inserts_data:
            return statement, _skip_to_data(raw[match.end():])
        return None
    return None
