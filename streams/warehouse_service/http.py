"""ClickHouse's HTTP interface over the embedded engine, enough for clickhouse-connect, curl, Grafana and DBeaver.

Each request goes through one pipeline: authenticate -> read the statement -> the engine parses it (one statement,
its kind and AST) -> policy (readonly, functions that reach outside, the per-role `access_check`) -> run on a reader
(reads) or the writer (everything else) -> answer with ClickHouse's headers, or its exception text and code.
How ClickHouse's HTTP protocol shapes the request and the answer: streams/warehouse_service/protocol.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from streams import metrics
from streams.warehouse_service.access import denied
from streams.warehouse_service.engine import (
    OUTSIDE_FUNCTIONS,
    SESSION_KINDS,
    Connection,
    Engine,
    Result,
    Statement,
    new_temp_path,
)
from streams.warehouse_service.errors import ClickHouseError, access_denied, readonly_error
from streams.warehouse_service.protocol import (
    CLIENT_SETTINGS,
    HEAD_BYTES,
    MAX_QUERY_BYTES,
    TRANSPORT_PARAMS,
    Body,
    content_type,
    credentials,
    find_data_insert,
    native_header,
    readonly_level,
    request_fields,
    summary_header,
)
from streams.warehouse_service.users import User, authenticate

log = logging.getLogger("denomas.warehouse")

# Called with the user, the parsed statement, a reader connection (for more of the engine's analysis, e.g.
# EXPLAIN QUERY TREE to see which tables and columns a query reads; its current database is the request's) and the
# request's database, before the statement runs; raises to refuse (streams/warehouse_service/access.py).
AccessCheck = Callable[[User, Statement, Connection, str], None]


@dataclass(frozen=True)
class QueryRequest:
    user: User
    query_id: str
    database: str
    default_format: str
    readonly: int
    settings: dict[str, str]
    params: dict[str, str]


class WarehouseHTTP:
    def __init__(self, engine: Engine, users: Mapping[str, User], access_check: AccessCheck | None = None) -> None:
        self.engine = engine
        self.users = users
        self.access_check = access_check

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_QUERY_BYTES, middlewares=[metrics.count_requests])
        app.router.add_get("/ping", self.ping)
        app.router.add_get("/metrics", metrics.metrics_handler())
        app.router.add_route("GET", "/", self.handle)
        app.router.add_route("POST", "/", self.handle)
        return app

    async def ping(self, request: web.Request) -> web.Response:
        return web.Response(text="Ok.\n")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        query_id = request.query.get("query_id") or str(uuid.uuid4())
        started = time.monotonic()
        log.debug("query %s: %s %s, parameters %s, Content-Encoding %s", query_id, request.method, request.path,
                  sorted(request.query), request.headers.get("Content-Encoding"))
        try:
            name, password, given = credentials(request)
            try:
                user = authenticate(self.users, name, password, request.remote)
            except ClickHouseError as error:
                log.warning("authentication failed for user %r from %s", name, request.remote)
                return self._error(error, query_id, 403 if given else 401)
            if request.method == "GET" and "query" not in request.query:
                return web.Response(text="Ok.\n")
            fields = await request_fields(request)
            req = self._query_request(request, fields, user, query_id)
            result, fmt = await self._execute(request, fields, req)
        except ClickHouseError as error:
            log.info("query %s failed: code %d %s", query_id, error.code, error.name)
            return self._error(error, query_id)
        log.debug("query %s done in %.3f s", query_id, time.monotonic() - started)
        headers = {
            "X-ClickHouse-Query-Id": query_id, "X-ClickHouse-Format": fmt,
            "X-ClickHouse-Timezone": self.engine.timezone, "X-ClickHouse-Summary": summary_header(result),
            "X-ClickHouse-Server-Display-Name": "denomas-warehouse",
        }
        return web.Response(body=result.body, headers=headers | {"Content-Type": content_type(fmt)})

    def _error(self, error: ClickHouseError, query_id: str, status: int | None = None) -> web.Response:
        headers = {"X-ClickHouse-Exception-Code": str(error.code), "X-ClickHouse-Query-Id": query_id,
                   "Content-Type": "text/plain; charset=UTF-8"}
        if status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="ClickHouse server HTTP API"'
        return web.Response(status=status or error.http_status, text=error.text + "\n", headers=headers)

    def _query_request(self, request: web.Request, query: Mapping[str, str], user: User,
                       query_id: str) -> QueryRequest:
        requested = {k: v for k, v in query.items() if k not in TRANSPORT_PARAMS and not k.startswith("param_")}
        readonly = readonly_level(user, requested.pop("readonly", None), request.method)
        if readonly == 1:
            changed = sorted(set(requested) - CLIENT_SETTINGS)
            if changed:
                raise ClickHouseError(164, "READONLY", f"Cannot modify '{changed[0]}' setting in readonly mode")
        database = query.get("database") or request.headers.get("X-ClickHouse-Database") or "default"
        return QueryRequest(
            user=user, query_id=query_id, database=database, readonly=readonly,
            default_format=query.get("default_format") or request.headers.get("X-ClickHouse-Format") or "TabSeparated",
            settings=user.query_settings() | requested,
            params={k[len("param_"):]: v for k, v in query.items() if k.startswith("param_")},
        )

    async def _execute(self, request: web.Request, fields: Mapping[str, str],
                       req: QueryRequest) -> tuple[Result, str]:
        query = fields.get("query")
        body = Body(request)
        data = b""
        async with self.engine.reader() as conn:
            head = query.encode() if query is not None else await body.read_head(HEAD_BYTES)
            found = await asyncio.to_thread(find_data_insert, conn, head, req.params)
            if found:
                statement, data = found
                if query is None:
                    body.head = b""  # the head was the statement and the start of the data
            else:
                text = await body.text()
                if query is not None and text:  # ClickHouse runs the query parameter followed by the body
                    text = query + "\n" + text
                if not (text or query):
                    raise ClickHouseError(62, "SYNTAX_ERROR", "Empty query")
                statement = await asyncio.to_thread(conn.analyze, text or query or "", req.params)
                if statement.inserts_data:  # its data would not be found: the statement did not fit the head
                    raise ClickHouseError(202, "QUERY_IS_TOO_LARGE", "INSERT statement too long")
            await asyncio.to_thread(self._authorize, req, statement, conn)
        if statement.inserts_data:
            return await self._insert(req, statement, data, body), "TabSeparated"
        fmt = statement.output_format or req.default_format
        if statement.reads_only:
            async with self.engine.reader() as conn:
                return await asyncio.to_thread(self._run, conn, req, statement, fmt), fmt
        async with self.engine.writer_connection() as conn:
            return await asyncio.to_thread(self._run, conn, req, statement, fmt), fmt

    def _authorize(self, req: QueryRequest, statement: Statement, conn: Connection) -> None:
        if statement.kind in SESSION_KINDS:
            raise ClickHouseError(48, "NOT_IMPLEMENTED", "SET and USE would not outlive this request here: "
                                  "pass settings and `database` as URL parameters")
        outside = sorted(statement.functions & OUTSIDE_FUNCTIONS)
        if outside:  # nobody here has the source grant (README "Roles")
            raise denied(req.user, f"READ ON {outside[0].upper()} ({outside[0]} reaches outside the warehouse; "
                         "not allowed over HTTP)")
        if statement.into_outfile:
            raise access_denied("INTO OUTFILE is not allowed over HTTP")
        if req.readonly and not statement.reads_only:
            raise readonly_error(statement.kind)
        if req.readonly == 1 and any(node == "Set" for _, node in statement.ast):
            raise ClickHouseError(164, "READONLY", "Cannot modify settings in readonly mode")
        if self.access_check is not None:
            with conn.context(req.database, {}):
                self.access_check(req.user, statement, conn, req.database)

    def _run(self, conn: Connection, req: QueryRequest, statement: Statement, fmt: str) -> Result:
        with conn.context(req.database, req.settings):
            result = conn.run(statement.text, fmt, statement.params)
            if fmt == "Native" and not result.body and statement.reads_only:
                result.body = native_header(conn, statement)
            return result

    async def _insert(self, req: QueryRequest, statement: Statement, data: bytes, body: Body) -> Result:
        """The data goes to a temporary file first, so the writer is held only while the engine inserts."""
        path = new_temp_path("insert")
        try:
            with open(path, "wb") as out:
                out.write(data)
                async for chunk in body.rest():
                    out.write(chunk)
            async with self.engine.writer_connection() as conn:
                return await asyncio.to_thread(self._insert_file, conn, req, statement, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _insert_file(self, conn: Connection, req: QueryRequest, statement: Statement, path: Path) -> Result:
        with conn.context(req.database, req.settings):
            return conn.insert_file(statement, req.database, path)
