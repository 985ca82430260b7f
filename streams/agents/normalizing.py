"""The validate/normalize loop of the Seat Link and Version Check agents.

Each raw record becomes one normalized record on the output topic or one dead letter; the batch is acked
only after all of them were delivered. `redact` lets a source clean the bytes a dead letter keeps.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import faust
import orjson

from streams.agents.common import AgentContext, Rejected
from streams.enrich.personal import redact_bytes
from streams.records import as_bytes, event_headers

log = logging.getLogger(__name__)

Normalizer = Callable[[bytes, dict[str, str], Any], dict]


async def send_letter(ctx: AgentContext, event: faust.EventT, source: str, stage: str, reason: str,
                      redact: Callable[[bytes], bytes] | None) -> Any:
    value = None if redact is None else redact(redact_bytes(as_bytes(event.value)))
    return await ctx.send_dead_letter(event, source, stage, reason, value)


async def normalize_batches(ctx: AgentContext, stream: Any, source: str, normalize: Normalizer,
                            output: faust.TopicT, redact: Callable[[bytes], bytes] | None = None) -> None:
    async for events in stream.take_events(100, within=0.5):
        pending = []
        for event in events:
            message = event.message
            try:
                record = normalize(as_bytes(event.value), event_headers(event), message)
            except Rejected as exc:
                pending.append(await send_letter(ctx, event, source, exc.stage, exc.reason, redact))
                continue
            except Exception as exc:  # a bug must not block the partition: park the record, keep going
                log.exception("normalizing a %s record failed", source)
                pending.append(await send_letter(ctx, event, source, "normalize", repr(exc), redact))
                continue
            pending.append(await output.send(key=message.key, value=orjson.dumps(record)))
        await asyncio.gather(*pending)  # delivered before this batch is acked
