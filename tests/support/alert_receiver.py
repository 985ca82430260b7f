"""A webhook receiver for the alert tests: a real aiohttp server on 127.0.0.1 that refuses the first attempts
of each event, checks signatures, and records what it accepted by event id."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable

import orjson
from aiohttp import web

from streams.alerts.delivery import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, verify_signature


class Receiver:
    def __init__(self, secret: str | None, failures: Callable[[str], int] = lambda event_id: 0,
                 status: int = 503) -> None:
        self.secret = secret
        self.failures = failures  # how many attempts of this event id are refused before one is accepted
        self.status = status
        self.attempts: Counter[str] = Counter()
        self.accepted: dict[str, list[dict]] = defaultdict(list)
        self.bad_signatures = 0
        self.down = False  # refuse everything (503), counting the attempts
        self.refused_while_down = 0
        self.headers: dict[str, dict[str, str]] = {}
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        event_id = request.headers.get(IDEMPOTENCY_HEADER, "")
        self.attempts[event_id] += 1
        if self.down:
            self.refused_while_down += 1
            return web.Response(status=503, text="down for maintenance")
        if self.attempts[event_id] <= self.failures(event_id):
            return web.Response(status=self.status, text="not now")
        if self.secret is not None and not verify_signature(self.secret, body, request.headers.get(SIGNATURE_HEADER)):
            self.bad_signatures += 1
            return web.Response(status=401, text="bad signature")
        self.accepted[event_id].append(orjson.loads(body))
        self.headers[event_id] = dict(request.headers)
        return web.Response(status=200, text="ok")

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}/hook"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
