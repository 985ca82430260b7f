"""The dashboard's web server (aiohttp): one HTML page per dashboard page, a JSON answer per page, and the chart
library's JavaScript served from its Python package (plotly ships plotly.min.js): no CDN, works offline.

Every number comes from the warehouse through its ClickHouse interface (clickhouse-connect), read-only
(`readonly=1` travels as a setting of each request), as the configured user (DENOMAS_WAREHOUSE_USER /
DENOMAS_WAREHOUSE_PASSWORD; the default user when unset).
"""

from __future__ import annotations

import asyncio
import html
import importlib.resources
import logging
import os
import time
from collections import OrderedDict
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse, urlunparse

import orjson
from aiohttp import web

from streams.catalog import catalog_objects
from streams.config import Settings
from streams.dashboard.entity_pages import entity_page
from streams.dashboard.page_model import FilterError, Page, parse_filters
from streams.dashboard.pages import PAGES
from streams.warehouse import ServerWarehouse

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"
CONNECTIONS = 4  # panels of a page are asked in parallel, one connection each
CACHED_ANSWERS = 256
WARM_EVERY_SECONDS = 10.0
# Tables written on a schedule whatever the data does (check runs, evaluator state): a page that does not show them
# keeps its cached answer when only they change.
OPERATIONAL = frozenset({"check_results", "alert_scope_state", "agg_event_metric_refresh", "agg_behavior_day_status",
                         "schema_migrations", "rpt_refresh_state"})
# What the warehouse holds, per table: active parts' rows, newest part and part count change with every insert.
_VERSION_SQL = """SELECT table, sum(rows), toString(max(modification_time)), count() FROM system.parts
                  WHERE database = currentDatabase() AND active GROUP BY table ORDER BY table"""


def plotly_js() -> Path:
    """plotly.min.js as the plotly Python package ships it."""
    return Path(str(importlib.resources.files("plotly") / "package_data" / "plotly.min.js"))


def warehouse_url(settings: Settings, env: dict[str, str] | None = None) -> str:
    """The warehouse URL with the dashboard's user (DENOMAS_WAREHOUSE_USER / _PASSWORD) when one is configured."""
    env = dict(os.environ) if env is None else env
    user = env.get("DENOMAS_WAREHOUSE_USER", "")
    if not user:
        return settings.warehouse_url
    parts = urlparse(settings.warehouse_url)
    credentials = quote(user, safe="") + ":" + quote(env.get("DENOMAS_WAREHOUSE_PASSWORD", ""), safe="")
    netloc = f"{credentials}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunparse(parts._replace(netloc=netloc))


def combine_classes(classes: list[str]) -> str:
    """'Orange/Yellow' + 'Yellow' + 'Public' -> 'Orange / Yellow / Public' (each class once, in order seen)."""
    seen: list[str] = []
    for text in classes:
        seen += [c.strip() for c in text.split("/") if c.strip() and c.strip() not in seen]
    return " / ".join(seen) or "unclassified"


class Dashboard:
    """Answers pages from a small pool of read-only warehouse connections."""

    def __init__(self, settings: Settings, connections: int = CONNECTIONS) -> None:
        self._url, self._database, self._connections = warehouse_url(settings), settings.warehouse_database, connections
        self._pool: asyncio.Queue[ServerWarehouse] = asyncio.Queue()
        self._opened = 0
        self._classes: dict[str, str] = {}
        self._classes_at = float("-inf")
        self._answers: OrderedDict[tuple, tuple[tuple, dict[str, Any]]] = OrderedDict()
        self._asking: dict[tuple, asyncio.Future] = {}

    async def _connection(self) -> ServerWarehouse:
        """A connection of the pool, opened on first need: the dashboard may start before the database exists."""
        if self._pool.empty() and self._opened < self._connections:
            self._opened += 1
            try:
                return await asyncio.to_thread(ServerWarehouse, self._url, self._database, create_database=False)
            except Exception:
                self._opened -= 1
                raise
        return await self._pool.get()

    async def query(self, sql: str, params: dict[str, Any]) -> dict[str, Any]:
        warehouse = await self._connection()
        try:
            result = await asyncio.to_thread(warehouse.query, sql, params, {"readonly": 1})
        finally:
            self._pool.put_nowait(warehouse)
        return {"columns": result.columns, "rows": [list(row) for row in result.rows]}

    async def data_class(self, page: Page) -> str:
        """The class of what the page shows: the classes of the tables it reads, from their COMMENTs (catalog)."""
        if time.monotonic() - self._classes_at > 300:
            warehouse = await self._connection()
            try:
                objects = await asyncio.to_thread(catalog_objects, warehouse)
            finally:
                self._pool.put_nowait(warehouse)
            self._classes = {o.name: o.data_class for o in objects}
            self._classes_at = time.monotonic()
        return combine_classes([self._classes.get(name, "unclassified") for name in page.tables])

    async def answer(self, page: Page, params: dict[str, Any]) -> dict[str, Any]:
        """The page's answer: from the cache while no table it may read has changed, else asked again."""
        started = time.perf_counter()
        parts = (await self.query(_VERSION_SQL, {}))["rows"]
        version = tuple(tuple(row) for row in parts if row[0] not in OPERATIONAL or row[0] in page.tables)
        key = (page.key, tuple(sorted((k, str(v)) for k, v in params.items())))
        cached = self._answers.get(key)
        if cached and cached[0] == version:
            self._answers.move_to_end(key)
            return cached[1] | {"cached": True, "seconds": round(time.perf_counter() - started, 4)}
        if (key, version) not in self._asking:  # one question per page, filters and data version at a time
            self._asking[(key, version)] = asyncio.ensure_future(self._ask(page, params))
        try:
            answer = await asyncio.shield(self._asking[(key, version)])
        finally:
            self._asking.pop((key, version), None)
        self._answers[key] = (version, answer)
        while len(self._answers) > CACHED_ANSWERS:
            self._answers.popitem(last=False)
        return answer | {"seconds": round(time.perf_counter() - started, 4)}

    async def warm(self) -> None:
        """Keep every page's unfiltered answer ready: asked again in the background when its data changed."""
        while True:
            for page in PAGES.values():
                try:
                    await self.answer(page, parse_filters({}).params())
                except Exception as exc:  # a page that cannot be answered now is answered (and reported) on request
                    log.warning("warming %s: %s", page.key, exc)
            await asyncio.sleep(WARM_EVERY_SECONDS)

    async def _ask(self, page: Page, params: dict[str, Any]) -> dict[str, Any]:
        results = await asyncio.gather(*(self.query(panel.sql, params) for panel in page.panels))
        panels = [{"key": panel.key, "title": panel.title, "chart": asdict(panel.chart) if panel.chart else None,
                   "entity_links": panel.entity_links, **result} for panel, result in zip(page.panels, results,
                                                                                          strict=True)]
        return {"page": page.key, "title": page.title, "data_class": await self.data_class(page),
                "tables": list(page.tables), "panels": panels,
                "cached": False}

    async def close(self) -> None:
        while not self._pool.empty():
            self._pool.get_nowait().close()


def resolve(name: str, query: dict[str, str]) -> tuple[Page, dict[str, Any]]:
    """The page and its bound parameters for a request; FilterError for anything it cannot use."""
    if name == "entity" and query.get("type"):
        if not query.get("id"):
            raise FilterError("an entity page needs an id (pick one from the search)")
        return entity_page(query["type"]), parse_filters(query).params() | {"id": query["id"][:200]}
    if name not in PAGES:
        raise web.HTTPNotFound(text=f"no dashboard page {name!r}; pages: {', '.join(PAGES)}")
    return PAGES[name], parse_filters(query).params()


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS), status=status,
                        content_type="application/json")


async def api(request: web.Request) -> web.Response:
    try:
        page, params = resolve(request.match_info["page"], dict(request.query))
    except FilterError as exc:
        return _json({"error": str(exc)}, status=400)
    try:
        return _json(await request.app[DASHBOARD].answer(page, params))
    except Exception as exc:  # the warehouse's fault (not there yet, a table missing): say so, keep serving
        log.warning("answering %s: %s", page.key, exc)
        return _json({"error": f"the warehouse could not answer: {str(exc)[:500]}"}, status=503)


_FILTER_FIELDS = {
    "months": '<label>From <input type="month" name="from" value="{from}"></label>'
              '<label>To <input type="month" name="to" value="{to}"></label>',
    "delivery": '<label>Delivery <select name="delivery">{delivery_options}</select></label>',
    "search": '<label>Account search <input type="search" name="q" value="{q}" '
              'placeholder="name, hostname or id"></label>',
}


def _filters_html(page: Page, query: dict[str, str]) -> str:
    if not page.filters:
        return ""
    values = {k: html.escape(query.get(k, "")) for k in ("from", "to", "q")}
    options = "".join(f'<option value="{v}"{" selected" if query.get("delivery", "") == v else ""}>{label}</option>'
                      for v, label in (("", "both"), ("Self-Managed", "Self-Managed"), ("SaaS", "SaaS")))
    fields = "".join(_FILTER_FIELDS[f].format(**values, delivery_options=options) for f in page.filters)
    hidden = "".join(f'<input type="hidden" name="{k}" value="{html.escape(query[k])}">'
                     for k in ("type", "id") if query.get(k))
    return (f'<form id="filters" method="get">{hidden}{fields}<button type="submit">Apply</button>'
            f'<a href="?{"&".join(f"{k}={quote(query[k])}" for k in ("type", "id") if query.get(k))}">reset</a></form>')


def page_html(page: Page, query: dict[str, str], data_class: str) -> str:
    current = "entity" if page.requires else page.key
    nav = "".join(f'<a href="/{p.key}"{" class=current" if p.key == current else ""}>{html.escape(p.title)}</a>'
                  for p in PAGES.values())
    title = page.title + (f": {query['id']}" if page.requires else "")
    classes = " / ".join(f'<span class="class class-{html.escape(c.strip().lower())}">{html.escape(c.strip())}</span>'
                      for c in data_class.split("/"))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)} · Denomas usage</title>
<link rel="icon" href="data:,"><link rel="stylesheet" href="/static/dashboard.css">
<script src="/static/plotly.min.js"></script><script src="/static/dashboard.js" defer></script></head>
<body data-page="{html.escape(page.key)}" data-api="/api/{html.escape('entity' if page.requires else page.key)}">
<nav>{nav}</nav>
<header><h1>{html.escape(title)}</h1>
<p id="data-class" data-class="{html.escape(data_class)}">Data class: {classes}</p>
<p class="description">{html.escape(page.description)}</p>{_filters_html(page, query)}</header>
<main id="panels"><p class="loading">loading ...</p></main>
<footer>Tables read: {", ".join(f"<code>{html.escape(t)}</code>" for t in page.tables)}.
<span id="answered"></span></footer>
</body></html>"""


async def page(request: web.Request) -> web.Response:
    query = dict(request.query)
    try:
        found, _ = resolve(request.match_info["page"], query)
    except FilterError as exc:
        return web.Response(status=400, text=f"bad filter: {exc}")
    try:
        data_class = await request.app[DASHBOARD].data_class(found)
    except Exception as exc:
        log.warning("data class of %s: %s", found.key, exc)
        data_class = "unknown (the warehouse did not answer)"
    return web.Response(text=page_html(found, query, data_class), content_type="text/html")


async def index(request: web.Request) -> web.Response:
    raise web.HTTPFound(f"/{next(iter(PAGES))}")


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def static(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    files = {"plotly.min.js": plotly_js(), "dashboard.js": STATIC_DIR / "dashboard.js",
             "dashboard.css": STATIC_DIR / "dashboard.css"}
    if name not in files:
        raise web.HTTPNotFound()
    return web.FileResponse(files[name], headers={"Cache-Control": "max-age=3600"})


DASHBOARD = web.AppKey("dashboard", Dashboard)


def make_app(settings: Settings, warm: bool = True) -> web.Application:
    app = web.Application()

    async def open_dashboard(app: web.Application):
        app[DASHBOARD] = Dashboard(settings)
        warming = asyncio.create_task(app[DASHBOARD].warm()) if warm else None
        yield
        if warming:
            warming.cancel()
            await asyncio.gather(warming, return_exceptions=True)
        await app[DASHBOARD].close()

    app.cleanup_ctx.append(open_dashboard)
    app.router.add_get("/", index)
    app.router.add_get("/health", health)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/{page}", api)
    app.router.add_get("/{page}", page)
    return app


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8050) -> None:
    """Serve until interrupted (SIGINT/SIGTERM)."""
    print(f"dashboard on http://{host}:{port}/ (warehouse {urlparse(settings.warehouse_url).netloc.split('@')[-1]}, "
          f"database {settings.warehouse_database})", flush=True)
    web.run_app(make_app(replace(settings)), host=host, port=port, print=None, access_log=None)

