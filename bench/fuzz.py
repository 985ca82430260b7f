"""The fuzz suite's longer run (`python -m bench --only fuzz`): more hostile requests per endpoint than the tests,
with a new random seed each run (printed, so a finding can be replayed), against the collector and a worker as
child processes. Reports requests, statuses, 5xx, refusals without a reason, whether every accepted invalid
request became a dead letter or bad row, and the processes' peak RSS. Nothing is asserted here."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from bench.common import Result
from streams.config import Settings
from tests.fuzz_support import free_port, run_fuzz

EXAMPLES, QUICK_EXAMPLES = 400, 80  # per endpoint (the tests send 40)


def run(bootstrap: str, workdir: Path, quick: bool, progress: Callable[[str], None]) -> list[Result]:
    seed = random.SystemRandom().randrange(2**32)
    name = uuid.uuid4().hex[:8]
    settings = replace(Settings.from_env(data_dir=workdir / f"fuzz-{name}", topic_prefix=f"fuzz-{name}.",
                                         app_id=f"bench-fuzz-{name}", topic_partitions=1),
                       worker_web_port=free_port(), warehouse_database=f"fuzz_{name}")
    examples = QUICK_EXAMPLES if quick else EXAMPLES
    progress(f"fuzz: {examples} requests per endpoint, seed {seed}")
    result = run_fuzz(settings, bootstrap, examples, seed)
    tally, got, rss = result["tally"], result["counts"], result["rss"]
    letters = got["dead_letters"]
    accounted = (letters.get("service_ping", 0) == tally.accepted["service_ping"]
                 and got["seat_links"] + letters.get("seat_link", 0) == tally.accepted["seat_link"] + 1
                 and got["version_checks"] + letters.get("version_check", 0) == tally.accepted["version_check"] + 1
                 and got["bad_rows"] == tally.bad_rows)
    statuses: dict[int, int] = {}
    for (_, status), count in tally.statuses.items():
        statuses[status] = statuses.get(status, 0) + count
    note = f"seed {seed}; statuses {dict(sorted(statuses.items()))}"
    alive = all(result["alive"].values()) and result["alive_after"]
    return [
        Result("fuzz: hostile requests sent", tally.requests, "requests", note=note),
        Result("fuzz: answers 5xx (broker up)", len(tally.server_errors), "answers", target="0"),
        Result("fuzz: 4xx without a reason", len(tally.no_reason), "answers", target="0"),
        Result("fuzz: accepted invalid requests -> dead letters / bad rows", int(accounted), "1 = all accounted",
               target="1", note=f"accepted {dict(tally.accepted)}; bad rows {got['bad_rows']} of {tally.bad_rows}"),
        Result("fuzz: valid record of each source landed after", int(got["pings"] == 1 and
                                                                    got["valid_version_checks"] == 1),
               "1 = yes", target="1", note=f"valid answers {result['valid']}"),
        Result("fuzz: collector and worker stayed up", int(alive), "1 = yes", target="1"),
        Result("fuzz: collector peak RSS", round(rss["collector_peak"], 1), "MiB"),
        Result("fuzz: worker peak RSS", round(rss["worker_peak"], 1), "MiB"),
    ]
