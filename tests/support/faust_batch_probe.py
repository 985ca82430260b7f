"""Run by tests/integration/test_batching.py in a child process: a Faust worker whose agent fails its first batch.

Usage: python faust_batch_probe.py BOOTSTRAP TOPIC GROUP safe|default
Prints "seen N" before stopping itself with SIGTERM (a normal, clean worker shutdown).
"""

import asyncio
import os
import signal
import sys

import faust

from streams.agents import faust_broker_url
from streams.agents.batching import AckAfterStream

bootstrap, topic_name, group, kind = sys.argv[1:5]
app = faust.App(group, broker=faust_broker_url(bootstrap), store="memory://", value_serializer="raw",
                consumer_auto_offset_reset="earliest", web_enabled=False, broker_commit_interval=0.2,
                stream_wait_empty=False,
                Stream=AckAfterStream if kind == "safe" else faust.Stream, autodiscover=False)
topic = app.topic(topic_name, value_type=bytes)
seen: list[bytes] = []


@app.agent(topic)
async def failing(stream):
    async for events in stream.take_events(10, within=0.3):
        seen.extend(e.value for e in events)
        raise RuntimeError("the warehouse refused the batch")


@app.task
async def stop_after_a_while():
    for _ in range(200):
        if seen:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(2.0)  # several commit intervals
    print(f"seen {len(seen)}", flush=True)
    os.kill(os.getpid(), signal.SIGTERM)


faust.Worker(app, loglevel="ERROR", quiet=True, redirect_stdouts=False).execute_from_commandline()
