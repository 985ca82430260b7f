"""A client that keeps posting numbered Service Pings and sends each again until it is accepted, as a Denomas
instance does. The fault scenarios (bench/faults) and tests use it to count what was acknowledged, what had
to be sent again, and which of those the topic holds once, twice or never.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from types import TracebackType

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer

NO_ANSWER = 0  # the collector could not be reached at all


class PostingClient:
    def __init__(self, url: str, senders: int = 3, pause: float = 0.02, resend_pause: float = 0.2) -> None:
        self.url, self.senders, self.pause, self.resend_pause = url, senders, pause, resend_pause
        self.answers: list[tuple[float, int]] = []  # (monotonic time, HTTP status) of every request
        self.acknowledged: set[int] = set()
        self.resent: set[int] = set()  # numbers that got an answer other than 200 at least once
        self._ids = itertools.count()
        self._http: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task] = []

    async def __aenter__(self) -> PostingClient:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        self._tasks = [asyncio.create_task(self._send()) for _ in range(self.senders)]
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()

    async def _post(self, body: bytes) -> int:
        assert self._http is not None
        try:
            async with self._http.post(f"{self.url}/usage_data", data=body) as response:
                return response.status
        except (aiohttp.ClientError, TimeoutError):
            return NO_ANSWER

    async def _send(self) -> None:
        while True:
            number = next(self._ids)
            body = orjson.dumps({"uuid": f"instance-{number % 7}", "number": number})
            while (status := await self._post(body)) != 200:
                self.answers.append((time.monotonic(), status))
                self.resent.add(number)
                await asyncio.sleep(self.resend_pause)
            self.answers.append((time.monotonic(), status))
            self.acknowledged.add(number)
            await asyncio.sleep(self.pause)

    def statuses_since(self, since: float, until: float = float("inf")) -> Counter[int]:
        return Counter(status for at, status in self.answers if since <= at < until)

    async def wait_for(self, status: int, since: float, bound: float) -> float:
        """Seconds from `since` to the first answer with `status`; TimeoutError after `bound` seconds."""
        deadline = since + bound
        while True:
            found = [at for at, answered in self.answers if at >= since and answered == status]
            if found:
                return min(found) - since
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {status} answer within {bound:.0f} s")
            await asyncio.sleep(0.05)


async def stored_numbers(bootstrap: str, topic: str, idle_ms: int = 3000) -> Counter[int]:
    """How often each number is in the topic (read to the end: until nothing arrives for `idle_ms`)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    numbers: Counter[int] = Counter()
    try:
        while batch := await consumer.getmany(timeout_ms=idle_ms):
            numbers.update(orjson.loads(r.value)["number"] for records in batch.values() for r in records)
    finally:
        await consumer.stop()
    return numbers
