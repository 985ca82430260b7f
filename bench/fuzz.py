"""The fuzz suite's longer run (`python -m bench --only fuzz`): more hostile requests per endpoint and more hostile
records per raw topic than the tests (tests/*/test_fuzz_*.py), with a new random seed each run (printed, so a finding
can be replayed with fuzz_support's `seed`), against the collector and a worker as child processes. Reports
requests, statuses, 5xx, refusals without a reason, whether every accepted invalid request and every hostile record
became a dead letter or bad row, whether valid records landed after them, and the processes' peak RSS. Nothing is
asserted here."""

from __future__ import annotations

import os
import random
import shutil
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from bench.common import Result
from streams import config
from streams.collector import INTERNAL_ERROR
from streams.config import PROJECT_ROOT, Settings
from tests.support.fuzz import RAW_TOPICS, free_port, letter_identity, run_fuzz, run_raw_fuzz

EXAMPLES, QUICK_EXAMPLES = 400, 80  # per endpoint (the tests send 40)
SEED_ENV = "DENOMAS_FUZZ_SEED"  # replay a run: the seed it printed
RAW_EXAMPLES, QUICK_RAW_EXAMPLES = 150, 40  # per topic (the tests publish 20)


def _settings(workdir: Path) -> Settings:
    name = uuid.uuid4().hex[:8]
    return replace(Settings.from_env(data_dir=workdir / f"fuzz-{name}", topic_prefix=f"fuzz-{name}.",
                                     app_id=f"bench-fuzz-{name}", topic_partitions=1),
                   worker_web_port=free_port(), warehouse_database=f"fuzz_{name}")


def run(bootstrap: str, workdir: Path, quick: bool, progress: Callable[[str], None]) -> list[Result]:
    seed = int(os.environ.get(SEED_ENV) or random.SystemRandom().randrange(2**32))
    return [*_endpoints(bootstrap, workdir, quick, progress, seed),
            *_raw_topics(bootstrap, workdir, quick, progress, seed)]


def _endpoints(bootstrap: str, workdir: Path, quick: bool, progress: Callable[[str], None], seed: int) -> list[Result]:
    settings = _settings(workdir)
    examples = QUICK_EXAMPLES if quick else EXAMPLES
    progress(f"fuzz: {examples} requests per endpoint, seed {seed}")
    try:
        result = run_fuzz(settings, bootstrap, examples, seed)
    except TimeoutError as exc:
        progress(f"fuzz: the accepted requests did not drain: {exc}")
        return [Result("fuzz: accepted requests drained by the worker", 0, "1 = yes", target="1", note=str(exc)[:300])]
    tally, got, rss = result["tally"], result["counts"], result["rss"]
    for request, answer in tally.server_errors:  # findings: what was sent, what came back, the collector's log
        progress(f"fuzz: {answer.status} for {request.method} {request.path[:300]!r} headers {request.headers} "
                 f"body {request.body[:300]!r}: {answer.body[:300]!r}")
    if tally.server_errors:
        kept = keep_log(Path(result["logs"]["collector_path"]), seed)
        tracebacks = handler_errors(kept.read_text(errors="replace"))
        progress(f"fuzz: the collector's log is kept in {kept}; its handler errors ({len(tracebacks)}):\n"
                 + "\n".join(tracebacks[-10:]) if tracebacks else f"fuzz: the collector's log ({kept}) ends:\n"
                 f"{result['logs']['collector']}")
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


def keep_log(log: Path, seed: int) -> Path:
    """A copy of a run's collector log under bench/results/ (the run's own directory is deleted after the bench)."""
    out = PROJECT_ROOT / "bench" / "results" / f"fuzz-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-seed{seed}-collector.log"
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(log, out)
    return out


def handler_errors(log: str) -> list[str]:
    """The tracebacks of requests answered 500: the collector's own log line for one (INTERNAL_ERROR) or aiohttp's
    ("Error handling request"), each up to the exception's line (the first after "Traceback" that is not indented).
    aiohttp logs its parser's 400s under the same words: those (an HttpProcessingError) are left out."""
    blocks: list[list[str]] = []
    open_ = False
    for line in log.splitlines():
        if "Error handling request" in line or f"{INTERNAL_ERROR} (answered 500" in line:
            blocks.append([line])
            open_ = True
        elif open_:
            blocks[-1].append(line)
            chained = line.startswith(("Traceback", "During handling", "The above")) or not line.strip()
            open_ = line.startswith(" ") or chained
    return ["\n".join(b) for b in blocks if "aiohttp.http_exceptions." not in "\n".join(b)]


def _raw_topics(bootstrap: str, workdir: Path, quick: bool, progress: Callable[[str], None], seed: int) -> list[Result]:
    settings = _settings(workdir)
    examples = QUICK_RAW_EXAMPLES if quick else RAW_EXAMPLES
    progress(f"fuzz: {examples} hostile records on each raw topic and the DLQ, seed {seed}")
    try:
        result = run_raw_fuzz(settings, bootstrap, examples, seed)
    except TimeoutError as exc:  # a finding: some record held a partition (or the worker is far too slow)
        progress(f"fuzz: the raw topics did not drain: {exc}")
        return [Result("fuzz: raw topics drained by the worker", 0, "1 = yes", target="1", note=str(exc)[:300])]
    lettered = {topic: sorted(result["lettered"].get(settings.topic(topic), [])) == sorted(result["offsets"][topic])
                for topic in RAW_TOPICS}
    distinct = {letter_identity(r.headers) for r in result["records"][config.TOPIC_DLQ]}
    got = result["counts"]
    landed = (got["pings"], got["seat_links"], got["valid_version_checks"]) == (1, 1, 1) and got["events"] == [
        ("fuzz", "valid-after")]
    published = sum(map(len, result["records"].values()))
    return [
        Result("fuzz: hostile records published to raw topics + DLQ", published, "records", note=f"seed {seed}"),
        Result("fuzz: raw topics whose every hostile record is a dead letter", sum(lettered.values()), "topics",
               target=str(len(RAW_TOPICS)), note=", ".join(t for t, ok in lettered.items() if not ok)),
        Result("fuzz: DLQ letters stored (distinct claimed positions)", result["dlq_rows"], "letters",
               target=str(len(distinct))),
        Result("fuzz: valid record of each source landed after (raw topics)", int(landed), "1 = yes", target="1"),
        Result("fuzz: worker stayed up (raw topics)", int(result["alive"]), "1 = yes", target="1"),
        Result("fuzz: worker peak RSS (raw topics)", round(result["peak"], 1), "MiB"),
    ]
