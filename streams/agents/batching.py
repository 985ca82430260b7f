"""Batches that are acknowledged only after the agent finished them.

faust's `Stream.take_events` acks a batch in a `finally` block, so a batch whose processing raised, or
was cancelled at shutdown, is acked and its offsets committed as if it had been stored: a silent loss.
`AckAfterStream.take_events` is the same buffering with one change: the batch is acked only when the
agent asks for the next one, i.e. after its work on this one returned normally. A failed or cancelled
batch stays unacknowledged, its offset is not committed, and Kafka redelivers it after a restart
(the writers are idempotent, so that changes no number).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import faust
from faust.types import EventT
from mode import Seconds, want_seconds
from mode.utils.aiter import aiter
from mode.utils.futures import notify


class AckAfterStream(faust.Stream):
    async def take_events(self, max_: int, within: Seconds) -> AsyncGenerator[Sequence[EventT], None]:
        events: list[EventT] = []
        buffer_full = asyncio.Event()
        buffer_consumed = asyncio.Event()
        timeout = want_seconds(within) if within else None
        stream_enable_acks = self.enable_acks
        buffer_consuming: asyncio.Future | None = None
        channel_it = aiter(self.channel)

        async def add_to_buffer(value: Any) -> Any:
            nonlocal buffer_consuming
            if buffer_consuming is not None:  # the agent is working on the previous batch
                try:
                    await buffer_consuming
                finally:
                    buffer_consuming = None
            event = self.current_event
            if event is None:
                raise RuntimeError("take buffer found current_event is None")
            events.append(event)
            if len(events) >= max_:
                buffer_full.set()
                buffer_consumed.clear()
                await self.wait(buffer_consumed)  # type: ignore[arg-type]
            return value

        self.enable_acks = False
        self.add_processor(add_to_buffer)
        self._enable_passive(channel_it)  # type: ignore[arg-type]
        try:
            while not self.should_stop:
                await self.wait_for_stopped(buffer_full, timeout=timeout)  # type: ignore[arg-type]
                if not events:
                    continue
                buffer_consuming = self.loop.create_future()
                batch = list(events)
                try:
                    yield batch
                    for event in batch:  # reached only when the agent finished the batch normally
                        await self.ack(event)
                finally:
                    events.clear()
                    notify(buffer_consuming)
                    buffer_full.clear()
                    buffer_consumed.set()
        finally:
            self.enable_acks = stream_enable_acks
            self._processors.remove(add_to_buffer)
