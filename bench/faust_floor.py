"""The framework's own floor: a Faust agent that only consumes and parses, with the worker's settings.

Run by `faust_consume_parse_rate` as a child process (one Faust app per process):
    python -m bench.faust_floor BOOTSTRAP TOPIC EXPECTED OUT_FILE BATCH
It reads TOPIC from the start in its own consumer group, `orjson.loads` every record in batches exactly as the
agents take them, and writes items/s (bench.common.items_in) to OUT_FILE once EXPECTED items were seen.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson


async def faust_consume_parse_rate(bootstrap: str, topic: str, expected: int, batch: int,
                                   timeout: float = 600) -> float:
    """Items/s of a do-nothing Faust agent (consume + orjson.loads) over the same records, taking `batch`
    records per step as the measured agent does."""
    with tempfile.TemporaryDirectory(prefix="faust-floor-") as tmp:
        out = Path(tmp) / "rate"
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bench.faust_floor", bootstrap, topic,
                                                    str(expected), str(out), str(batch),
                                                    cwd=Path(__file__).parent.parent,
                                                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        try:
            _, err = await asyncio.wait_for(proc.communicate(), timeout=timeout)
        except TimeoutError:
            proc.kill()
            raise
        if not out.exists():
            raise RuntimeError(f"faust floor run failed: {err.decode(errors='replace')[-2000:]}")
        return float(out.read_text())


def main(bootstrap: str, topic_name: str, expected: int, out: Path, batch: int) -> None:
    import faust

    from bench.common import items_in
    from streams.agents import faust_app
    from streams.config import Settings

    settings = Settings.from_env(data_dir=out.parent)
    app = faust_app(f"faust-floor-{uuid.uuid4().hex[:8]}", settings, bootstrap)
    topic = app.topic(topic_name, value_type=bytes)
    seen, counted_from, started = 0, 0, 0.0
    last_full: tuple[int, float] = (0, 0.0)  # (items seen, time) at the end of the last full batch

    @app.agent(topic)
    async def consume_parse(stream: Any) -> None:
        nonlocal seen, counted_from, started, last_full
        async for events in stream.take_events(batch, within=0.5):
            seen += sum(items_in(orjson.loads(event.value)) for event in events)
            now = time.perf_counter()
            if not started:  # the clock starts after the first batch (group join and first fetch excluded)
                started, counted_from = now, seen
            elif len(events) == batch:
                last_full = (seen, now)
            if seen >= expected:
                # Up to the last full batch: the final partial one waited `within` for records that never came.
                items, at = last_full if last_full[1] else (seen, now)
                out.write_text(str((items - counted_from) / (at - started)))
                os.kill(os.getpid(), signal.SIGTERM)

    faust.Worker(app, loglevel="ERROR", quiet=True, redirect_stdouts=False).execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5]))
