"""Fault-suite support (issue 10): a real pipeline to hurt, and an independent account of what it must hold after.

- `Pipeline`: the collector in this process and the worker as a child process that can be SIGKILLed, on a broker
  the caller provides; senders that post the generator's Snowplow tracker payloads and Service Pings over HTTP and
  record which requests were acknowledged (HTTP 2xx).
- `InsertWatch`: sees the engine begin a part (inotify: a `tmp_insert_*` directory created in a table's data path)
  and freezes the engine while the worker is killed, so that a kill lands inside an insert.
- `check_warehouse`: reads the fact tables (FINAL) and recomputes in plain Python, without the warehouse's own SQL,
  what every derived table must hold (agg_behavior_event_daily, agg_behavior_active_daily, agg_event_metric_daily,
  dim_installation); compares that with what the readers see, and the facts with the acknowledged set.

The worker logs at INFO; its log is copied to test-artifacts/faults/ after each scenario.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import os
import random
import select
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import orjson

from fleet.demo import send_pings, wait_until_landed
from fleet.pings import GeneratedPing
from fleet.snowplow import PAYLOAD_DATA, GeneratedEvent, SnowplowFleet, tracker_batches
from streams.collector import RunningCollector
from streams.config import (
    TOPIC_NORMALIZED_SERVICE_PING,
    TOPIC_NORMALIZED_SNOWPLOW,
    TOPIC_RAW_SERVICE_PING,
    TOPIC_RAW_SNOWPLOW,
    Settings,
)
from streams.enrich.pseudonym import HASH_KEY_ENV
from streams.event_metrics.definitions import EventMetric, load_event_metrics
from streams.event_metrics.refresh import pending_days
from streams.kafka.admin import OffsetProbe
from streams.kafka.topics import ensure_topics
from streams.warehouse import DATABASE, Warehouse, migrate, open_warehouse
from streams.warehouse_service.process import WarehouseServiceProcess
from streams.worker import WorkerProcess

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "faults"  # worker logs of the fault runs
HASH_KEY = "faults-hash-key"  # DENOMAS_HASH_KEY for the worker: user hashes are recomputed here from it
# Tables whose parts an insert of the Snowplow or Service Ping sinks writes (facts and what is derived from them).
WATCHED_TABLES = ("fct_behavior_structured_event", "agg_behavior_event_daily", "agg_behavior_active_daily",
                  "fct_ping_instance", "fct_ping_instance_metric", "dim_installation")
# A kill aimed at a derived table that has become a view (no parts: dim_installation, clickhouse/015) lands
# while its source is written instead.
KILL_FALLBACK = {"dim_installation": "fct_ping_instance"}

# Where an event or ping waits until it is stored: raw (not normalized yet) or normalized (not stored yet).
STORED_TOPICS = (TOPIC_RAW_SNOWPLOW, TOPIC_NORMALIZED_SNOWPLOW, TOPIC_RAW_SERVICE_PING, TOPIC_NORMALIZED_SERVICE_PING)


def fault_settings(data_dir: Path, name: str, **overrides: Any) -> Settings:
    """Settings of one scenario: its own topics, consumer group and warehouse (a warehouse service of its own on
    `data_dir`, started by `scenario_warehouse`, so faults hit that engine's files and no other test's)."""
    values: dict[str, Any] = {"topic_prefix": f"f-{name}.", "app_id": f"faults-{name}", "topic_partitions": 3,
                              "sink_batch_size": 50, "clickhouse_url": None, "warehouse_database": DATABASE,
                              "worker_web_port": 0} | overrides
    return Settings.from_env(data_dir=data_dir, **values)


@contextlib.contextmanager
def scenario_warehouse(settings: Settings) -> Iterator[tuple[Settings, WarehouseServiceProcess]]:
    """The scenario's own warehouse service (the engine's files under settings.chdb_path); yields the settings the
    worker and the checks use to reach it, and the service (its pid: the engine's process)."""
    with WarehouseServiceProcess(settings) as service:
        yield replace(settings, clickhouse_url=service.url), service


# ---------------------------------------------------------------------------------------------------
# The pipeline


class KillableWorker(WorkerProcess):
    """`WorkerProcess` with SIGKILL: no shutdown, no commit, whatever it was doing (normalizer children too).
    It hashes user ids with HASH_KEY, so that the checks can recompute the hashes."""

    def start(self) -> None:
        previous = os.environ.get(HASH_KEY_ENV)
        os.environ[HASH_KEY_ENV] = HASH_KEY  # the child inherits this process's environment
        try:
            super().start()
        finally:
            if previous is None:
                del os.environ[HASH_KEY_ENV]
            else:
                os.environ[HASH_KEY_ENV] = previous


@dataclass
class Acks:
    """What the collector acknowledged (HTTP 2xx), as the clients saw it."""

    events: set[str] = field(default_factory=set)  # eids of acknowledged events the generator expects to land
    event_statuses: Counter[int] = field(default_factory=Counter)  # requests by status
    events_in_acked_requests: int = 0  # every event of an acknowledged request (copies and defects too)
    bad_events: Counter[str] = field(default_factory=Counter)  # acknowledged events to dead-letter, by stage
    pings: dict[int, GeneratedPing] = field(default_factory=dict)  # ping_id -> acknowledged valid ping
    invalid_pings: int = 0  # acknowledged pings that must be dead-lettered (schema)
    ping_statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    @property
    def acknowledged(self) -> int:
        return len(self.events) + len(self.pings)


async def post_events(url: str, events: Sequence[GeneratedEvent], acks: Acks, concurrency: int = 4,
                      pause: float = 0.0) -> None:
    """POST the events as trackers do (payload_data batches, `stm` stamped at send time with the device's skew).

    Copies of earlier events (retries, id conflicts) go after every original was answered, so the original is the
    one stored. `pause` between requests spreads the load over time."""
    batches = tracker_batches(list(events))
    copies = [b for b in batches if b[0].duplicate or b[0].conflict]
    originals = batches[: len(batches) - len(copies)]
    endpoint = f"{url}/com.snowplowanalytics.snowplow/tp2"

    async def send(http: aiohttp.ClientSession, batch: list[GeneratedEvent]) -> None:
        stm = str(int(time.time() * 1000) + batch[0].skew_ms)
        body = orjson.dumps({"schema": PAYLOAD_DATA, "data": [e.payload | {"stm": stm} for e in batch]})
        try:
            async with http.post(endpoint, data=body, headers={"Content-Type": "application/json"}) as response:
                status, text = response.status, await response.text()
        except aiohttp.ClientError as exc:
            status, text = 0, repr(exc)
        acks.event_statuses[status] += 1
        if 200 <= status < 300:
            acks.events.update(e.event_id for e in batch if e.expected is not None)
            acks.bad_events.update("validate" if e.defect else "dedup" for e in batch if e.defect or e.conflict)
            acks.events_in_acked_requests += len(batch)
        else:
            acks.failures.append(f"snowplow {status}: {text[:200]}")

    async def drain_queue(http: aiohttp.ClientSession, queue: list[list[GeneratedEvent]]) -> None:
        while queue:
            await send(http, queue.pop())
            if pause:
                await asyncio.sleep(pause)

    async with aiohttp.ClientSession() as http:
        for group in (originals, copies):
            queue = group[::-1]
            await asyncio.gather(*(drain_queue(http, queue) for _ in range(concurrency)))


async def post_pings(url: str, pings: Sequence[GeneratedPing], acks: Acks) -> None:
    """POST the pings to /usage_data (fleet.demo.send_pings) and keep the acknowledged valid ones by ping id."""
    report = await send_pings(url, pings, progress=False)
    acks.ping_statuses[200] += report.accepted
    acks.ping_statuses[0] += report.sent - report.accepted
    acks.failures += [f"ping {failure}" for failure in report.failures]
    valid = 0
    for ping in pings:
        ping_id = report.ping_ids.get(f"{ping.uuid}|{ping.recorded_at}")
        if ping.valid and ping_id is not None:
            acks.pings[int(ping_id)] = ping
            valid += 1
    acks.invalid_pings += report.accepted - valid


class Pipeline:
    """Collector (this process) + worker (child process) on `bootstrap`, for one scenario's settings."""

    def __init__(self, settings: Settings, bootstrap: str) -> None:
        self.settings, self.bootstrap = settings, bootstrap
        self.worker = KillableWorker(settings, bootstrap, loglevel="INFO")  # its log: evidence when a fault test fails
        self.collector = RunningCollector(bootstrap, settings)
        self.url = ""

    async def start(self) -> str:
        await ensure_topics(self.bootstrap, self.settings)
        self.worker.start()
        self.url = await self.collector.start()
        return self.url

    async def drain(self, timeout: float = 600) -> float:
        """Wait until the worker's group has no lag; seconds waited. Fails fast when the worker died.

        No lag means every derived table is current too: the Snowplow sink recomputes the touched days and their
        metrics before it acks (issue 10). (Before that fix the metrics followed a 30 s timer.)"""
        started = time.monotonic()
        while True:
            if not self.worker.alive():
                raise RuntimeError(f"the worker exited:\n{self.worker.log_tail()}")
            try:
                await wait_until_landed(self.settings, self.bootstrap, timeout=5)
                return time.monotonic() - started
            except TimeoutError:
                if time.monotonic() - started > timeout:
                    raise

    async def lag(self, topics: Iterable[str]) -> int:
        """Records of `topics` (unprefixed) that the worker has not acknowledged (committed) yet."""
        async with OffsetProbe(self.bootstrap) as probe:
            return await probe.group_lag(self.settings.app_id, [self.settings.topic(t) for t in topics])

    async def stop(self) -> None:
        await self.collector.stop()
        self.worker.stop()


async def stored_so_far(pipe: Pipeline) -> str:
    """What the worker has stored and acknowledged so far (why a wait for an insert saw none): rows and active parts
    per watched table, days waiting for their recompute, and per topic the group's committed offset / log end."""
    def tables() -> tuple[list[tuple], int]:
        warehouse = open_warehouse(pipe.settings)
        try:
            rows = warehouse.query("SELECT table, toString(sum(rows)), toString(count()) FROM system.parts "
                                   "WHERE database = currentDatabase() AND active GROUP BY table").rows
            return [r for r in rows if r[0] in WATCHED_TABLES], len(pending_days(warehouse))
        finally:
            warehouse.close()

    parts, pending = await asyncio.to_thread(tables)
    async with OffsetProbe(pipe.bootstrap) as probe:
        partitions = await probe.partitions([pipe.settings.topic(t) for t in STORED_TOPICS])
        committed = await probe.committed(pipe.settings.app_id, partitions)
        ends = await probe.end_offsets(partitions)
    offsets: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for tp, end in ends.items():
        meta = committed.get(tp)
        offsets[tp.topic][0] += meta.offset if meta is not None and meta.offset >= 0 else 0
        offsets[tp.topic][1] += end
    return (f"rows/parts {sorted((t, int(r), int(n)) for t, r, n in parts)}; days pending recompute {pending}; "
            f"committed/end {dict(sorted((t, tuple(v)) for t, v in offsets.items()))}")


# ---------------------------------------------------------------------------------------------------
# Seeing inserts in flight


def table_paths(settings: Settings, tables: Iterable[str] | None = WATCHED_TABLES) -> dict[str, Path]:
    """Data directory of each table (None: every table), migrating first as the worker will; call while no worker
    runs."""
    warehouse = open_warehouse(settings)
    try:
        migrate(warehouse)
        rows = warehouse.query("SELECT name, data_paths FROM system.tables WHERE database = currentDatabase()").rows
    finally:
        warehouse.close()
    wanted = None if tables is None else set(tables)
    return {name: Path(paths[0]) for name, paths in rows if paths and (wanted is None or name in wanted)}


@dataclass
class Seen:
    """A part the engine began to write, as the watch saw it."""

    table: str
    part: str  # its tmp_insert_* directory
    in_flight: bool  # the part was still unfinished when the watch's action (a SIGKILL) had completed; False: it
    # came FINISHED_PART_GRACE s after that part (every part of the table was finished before the engine was frozen)
    busy: list[str]  # tables with a part being written at that moment
    finished_first: int = 0  # parts of the chosen tables that were finished before the watch could act on them


class _Inotify:
    """The kernel's file-creation events of some directories (inotify(7) through libc; Linux only)."""

    IN_CREATE, IN_ONLYDIR, IN_Q_OVERFLOW, IN_CLOEXEC = 0x100, 0x01000000, 0x4000, 0o2000000
    _HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name, NUL-padded)

    def __init__(self, directories: dict[str, Path]) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self._check(self._libc.inotify_init1(self.IN_CLOEXEC))
        self.names: dict[int, str] = {}
        for name, path in directories.items():
            wd = self._libc.inotify_add_watch(self.fd, os.fsencode(path), self.IN_CREATE | self.IN_ONLYDIR)
            self.names[self._check(wd, path)] = name

    @staticmethod
    def _check(result: int, path: Path | None = None) -> int:
        if result < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno), str(path) if path else None)
        return result

    def read(self, timeout: float) -> list[tuple[str, str]]:
        """(directory name, created entry) of the events queued since the last read; waits up to `timeout` s for one."""
        if not select.select([self.fd], [], [], max(0.0, timeout))[0]:
            return []
        data, events, offset = os.read(self.fd, 64 * 1024), [], 0
        while offset < len(data):
            wd, mask, _cookie, size = self._HEADER.unpack_from(data, offset)
            name = data[offset + self._HEADER.size: offset + self._HEADER.size + size].rstrip(b"\0").decode()
            offset += self._HEADER.size + size
            if mask & self.IN_Q_OVERFLOW:
                raise RuntimeError("inotify queue overflow: creations were lost")
            if wd in self.names:
                events.append((self.names[wd], name))
        return events

    def close(self) -> None:
        os.close(self.fd)


# After a part of the awaited table was finished before the engine could be frozen, how long to wait for another
# before acting anyway (a recompute writes one part per batch: a portion may bring only two).
FINISHED_PART_GRACE = 10.0


def wait_stopped(pid: int, timeout: float = 30) -> None:
    """Until every thread of `pid` has stopped (SIGSTOP takes effect per thread, a thread inside a system call, a
    rename say, completes it first)."""
    deadline = time.monotonic() + timeout
    while True:
        states = []
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{pid}/task/{task}/stat").read_text()
                states.append(stat[stat.rindex(")") + 2])  # the state follows the parenthesised command name
        if all(state in "tTZX" for state in states):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"process {pid} did not stop in {timeout} s: thread states {states}")
        time.sleep(0.0005)


class InsertWatch:
    """Sees the engine begin to write a part (a `tmp_insert_*` directory created in a table's data directory) and
    can act at that moment, with the part unfinished.

    inotify: the kernel queues every creation, so none is missed however late this process gets the CPU. (The 2 ms
    poll it replaces looked every 10-13 ms on a loaded machine and missed parts of the small INSERT ... SELECT that
    recomputes agg_behavior_active_daily, which can be gone between two looks: in CI, every one the first kill
    waited for.) With the engine's pid, the engine is frozen (SIGSTOP, waited for until every thread has stopped)
    from the notification until the action is done: a part found unfinished while it is frozen stays unfinished, so
    the action (the worker's SIGKILL) provably lands while that insert is in flight.
    """

    def __init__(self, paths: dict[str, Path], engine_pid: int | None = None) -> None:
        self.paths, self.engine_pid = paths, engine_pid
        self._events = _Inotify(paths)
        self.created: Counter[str] = Counter()  # parts begun per table during the last wait (a timeout's evidence)
        self._closed = threading.Event()

    def close(self) -> None:
        """Also ends a wait still running (a scenario that failed), within a second."""
        self._closed.set()
        self._events.close()

    def writing(self) -> list[str]:
        busy = []
        for name, path in self.paths.items():
            with contextlib.suppress(OSError), os.scandir(path) as entries:
                if any(entry.name.startswith("tmp_insert_") for entry in entries):
                    busy.append(name)
        return busy

    async def wait(self, timeout: float, tables: Iterable[str] | None = None,
                   then: Callable[[], None] | None = None) -> Seen | None:
        """The first part of one of `tables` (default: any) begun from now on; None after `timeout` s. `then` runs
        in the watching thread the moment that part is seen, while it is unfinished (the next part is taken when
        one was finished before the engine was frozen)."""
        while self._events.read(0):  # parts begun before this call: not what the caller waits for
            pass
        self.created = Counter()
        # The watching thread needs the GIL to act: by default this thread (the collector, the senders) keeps it up
        # to 5 ms, long enough for a small part to be finished before the engine is frozen.
        previous = sys.getswitchinterval()
        sys.setswitchinterval(0.0002)
        try:
            return await asyncio.to_thread(self._wait, set(tables or self.paths), timeout, then)
        finally:
            sys.setswitchinterval(previous)

    def _wait(self, chosen: set[str], timeout: float, then: Callable[[], None] | None) -> Seen | None:
        finished_first, deadline = 0, time.monotonic() + timeout
        passed_over: tuple[str, str, float] | None = None  # the last part finished before the engine was frozen
        while (left := deadline - time.monotonic()) > 0 and not self._closed.is_set():
            if passed_over is not None and time.monotonic() - passed_over[2] > FINISHED_PART_GRACE:
                # every part of the table was finished before the engine could be frozen: act right after the last
                seen = self._act(passed_over[0], passed_over[1], then, unfinished_only=False)
                return replace(seen, finished_first=finished_first) if seen else None
            try:
                events = self._events.read(min(left, 1.0))
            except (OSError, ValueError):  # closed meanwhile
                if self._closed.is_set():
                    return None
                raise
            for table, entry in events:
                if not entry.startswith("tmp_insert_"):
                    continue
                self.created[table] += 1
                if table in chosen:
                    seen = self._act(table, entry, then)
                    if seen is not None:
                        return replace(seen, finished_first=finished_first)
                    finished_first += 1
                    passed_over = (table, entry, time.monotonic())
        return None

    def _act(self, table: str, entry: str, then: Callable[[], None] | None,
             unfinished_only: bool = True) -> Seen | None:
        part = self.paths[table] / entry
        if then is None:
            return Seen(table, entry, part.is_dir(), self.writing())
        if self.engine_pid is not None:
            os.kill(self.engine_pid, signal.SIGSTOP)
        try:
            if self.engine_pid is not None:
                wait_stopped(self.engine_pid)
            if unfinished_only and not part.is_dir():  # finished (renamed) before the engine was frozen
                return None
            then()
            return Seen(table, entry, part.is_dir(), self.writing())
        finally:
            if self.engine_pid is not None:
                os.kill(self.engine_pid, signal.SIGCONT)


# ---------------------------------------------------------------------------------------------------
# The independent recomputation


class EventFact(NamedTuple):
    event_id: str
    day: date
    event_type: str
    category: str
    action: str
    user_hash: int
    namespace_id: int
    parent_namespace_id: int
    realm: str
    deployment_type: str
    instance_id: str


def event_scopes(fact: EventFact) -> list[tuple[str, str]]:
    """The scopes an event counts in (clickhouse/070): its instance; for SaaS events its top namespace
    (ultimate parent, else its own) and 'all'."""
    saas = fact.realm == "saas" or fact.deployment_type == ".com"
    namespace = fact.parent_namespace_id or fact.namespace_id
    scopes = [("instance", fact.instance_id)] if fact.instance_id else []
    if saas and namespace:
        scopes.append(("namespace", str(namespace)))
    if saas:
        scopes.append(("saas", "all"))
    return scopes


@dataclass
class Daily:
    """Per day x scope (x event): the user hashes (anonymous excluded) and the number of events."""

    event_users: dict[tuple, set[int]] = field(default_factory=lambda: defaultdict(set))
    event_counts: Counter[tuple] = field(default_factory=Counter)
    active_users: dict[tuple, set[int]] = field(default_factory=lambda: defaultdict(set))
    active_counts: Counter[tuple] = field(default_factory=Counter)

    @classmethod
    def of(cls, facts: Iterable[EventFact]) -> Daily:
        daily = cls()
        for fact in {f.event_id: f for f in facts}.values():
            struct = fact.event_type == "struct" and fact.action != ""
            for scope, scope_id in event_scopes(fact):
                active = (fact.day, scope, scope_id)
                daily.active_counts[active] += 1
                if fact.user_hash:
                    daily.active_users[active].add(fact.user_hash)
                if struct:
                    key = active + (fact.category, fact.action)
                    daily.event_counts[key] += 1
                    if fact.user_hash:
                        daily.event_users[key].add(fact.user_hash)
        return daily

    def cells(self) -> dict[str, dict[tuple, tuple[int, int]]]:
        """What the readers see: (distinct users, events) per key of each daily table."""
        def cells(users: dict[tuple, set[int]], counts: Counter[tuple]) -> dict[tuple, tuple[int, int]]:
            return {key: (len(users.get(key, ())), count) for key, count in counts.items()}

        return {"agg_behavior_event_daily": cells(self.event_users, self.event_counts),
                "agg_behavior_active_daily": cells(self.active_users, self.active_counts)}


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _window_values(metric: EventMetric, per_event: list[dict[date, tuple[set[int], int]]], first: date,
                   last: date) -> dict[date, int]:
    """The metric for one scope on every end day in [first, last], by its definition (sliding windows)."""
    span = metric.window_days
    users = [Counter() for _ in per_event]  # user hash -> days in the window it appears on, per event
    events = 0
    out: dict[date, int] = {}
    day = first
    while day <= last:
        leaving = day - timedelta(days=span) if span else None
        for index, by_day in enumerate(per_event):
            entered = by_day.get(day)
            if entered:
                users[index].update(entered[0])
                events += entered[1]
            left = by_day.get(leaving) if leaving else None
            if left:
                users[index].subtract(left[0])
                events -= left[1]
                users[index] = +users[index]  # drop users no longer in the window
        if metric.value_type == "user" and metric.operator == "AND":
            value = len(set.intersection(*(set(c) for c in users))) if all(users) else 0
        elif metric.value_type == "user":
            value = len(set().union(*users))
        else:
            value = events if metric.value_type == "event" else int(events > 0)
        if value:
            out[day] = value
        day += timedelta(days=1)
    return out


def expected_metrics(daily: Daily, metrics: Sequence[EventMetric], first: date, last: date) -> dict[tuple, int]:
    """Every metric for every scope and end day in [first, last]: {(key_path, scope, scope_id, day): value}
    (missing = 0). The window ending on D holds D-6..D (7d), D-27..D (28d) or every day up to D (all)."""
    by_scope: dict[tuple[str, str], dict[tuple[str, str], dict[date, tuple[set[int], int]]]] = defaultdict(dict)
    for (day, scope, scope_id, category, action), count in daily.event_counts.items():
        cell = (daily.event_users.get((day, scope, scope_id, category, action), set()), count)
        by_scope[(scope, scope_id)].setdefault((category, action), {})[day] = cell
    out: dict[tuple, int] = {}
    for metric in metrics:
        names = [(e.category, e.action) for e in metric.events]
        for (scope, scope_id), by_event in by_scope.items():
            if not any(name in by_event for name in names):
                continue
            values = _window_values(metric, [by_event.get(name, {}) for name in names], first, last)
            out.update({(metric.key_path, scope, scope_id, day): value for day, value in values.items()})
    return out


def keyed_hash(user_id: str | None, key: str = HASH_KEY) -> int:
    """The user hash by its definition (blake2b MAC, 8 bytes big-endian, 0 -> 1; no user -> 0)."""
    if not user_id:
        return 0
    digest = hashlib.blake2b(user_id.encode(), key=key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") or 1


def generator_facts(fleet: SnowplowFleet, acknowledged: set[str]) -> list[EventFact]:
    """The fact rows the generator says the acknowledged events must become."""
    return [EventFact(row.event_id, row.behavior_date, row.event_type, row.event_category, row.event_action,
                      keyed_hash(row.user_id), row.namespace_id, row.ultimate_parent_namespace_id, row.realm,
                      row.deployment_type, row.instance_id)
            for row in fleet.expected_rows().values() if row.event_id in acknowledged]


# ---------------------------------------------------------------------------------------------------
# Reading the warehouse as its readers do


def read_event_facts(warehouse: Warehouse) -> list[EventFact]:
    rows = warehouse.query(
        "SELECT event_id, toString(behavior_date), toString(event_type), toString(event_category), "
        "toString(event_action), toString(user_hash), toString(namespace_id), toString(ultimate_parent_namespace_id), "
        "toString(realm), toString(deployment_type), instance_id FROM fct_behavior_structured_event FINAL").rows
    return [EventFact(r[0], _day(r[1]), r[2], r[3], r[4], int(r[5]), int(r[6]), int(r[7]), r[8], r[9], r[10])
            for r in rows]


def read_daily(warehouse: Warehouse) -> dict[str, dict[tuple, tuple[int, int]]]:
    """The daily tables as readers merge them (FINAL works for aggregate states and for recomputed rows alike)."""
    event_rows = warehouse.query(
        "SELECT toString(behavior_date) AS d, toString(scope) AS s, scope_id, toString(event_category) AS c, "
        "toString(event_action) AS a, groupBitmapMerge(users), toString(sum(events)) "
        "FROM agg_behavior_event_daily FINAL GROUP BY d, s, scope_id, c, a").rows
    active_rows = warehouse.query(
        "SELECT toString(behavior_date) AS d, toString(scope) AS s, scope_id, groupBitmapMerge(users), "
        "toString(sum(events)) FROM agg_behavior_active_daily FINAL GROUP BY d, s, scope_id").rows
    return {
        "agg_behavior_event_daily": {(_day(r[0]),) + tuple(r[1:5]): (int(r[5]), int(r[6])) for r in event_rows},
        "agg_behavior_active_daily": {(_day(r[0]), r[1], r[2]): (int(r[3]), int(r[4])) for r in active_rows},
    }


def read_metrics(warehouse: Warehouse) -> dict[tuple, int]:
    rows = warehouse.query("SELECT toString(key_path), toString(scope), scope_id, toString(metric_date), "
                           "toString(value) FROM agg_event_metric_daily FINAL").rows
    return {(k, s, i, _day(d)): int(v) for k, s, i, d, v in rows if int(v)}


_INSTALLATION_COLUMNS = "installation_id, instance_uuid, hostname"


def read_installations(warehouse: Warehouse) -> dict[tuple, tuple]:
    rows = warehouse.query(
        f"SELECT {_INSTALLATION_COLUMNS}, toString(min(first_ping_at)), toString(max(last_ping_at)), "
        "argMaxMerge(latest_version), argMaxMerge(latest_edition), argMaxMerge(latest_installation_type) "
        f"FROM dim_installation GROUP BY {_INSTALLATION_COLUMNS}").rows  # a table of states or a view: no FINAL
    return {tuple(r[:3]): tuple(r[3:]) for r in rows}


def expected_installations(warehouse: Warehouse) -> dict[tuple, tuple]:
    """dim_installation by its definition, from fct_ping_instance FINAL: first/last ping, latest attributes."""
    rows = warehouse.query(f"SELECT {_INSTALLATION_COLUMNS}, toString(recorded_at), version, toString(edition), "
                           "toString(installation_type) FROM fct_ping_instance FINAL").rows
    out: dict[tuple, tuple] = {}
    for row in sorted(rows, key=lambda r: r[3]):
        key, recorded_at, latest = tuple(row[:3]), row[3], tuple(row[4:])
        first = out[key][0] if key in out else recorded_at
        out[key] = (first, recorded_at) + latest
    return out


# ---------------------------------------------------------------------------------------------------
# The verdict


def cell_diffs(stored: dict, expected: dict, zero: Any = 0) -> list[tuple]:
    """(key, stored, expected) for every key whose values differ; a missing key counts as `zero`."""
    return [(k, stored.get(k, zero), expected.get(k, zero)) for k in sorted(set(stored) | set(expected), key=str)
            if stored.get(k, zero) != expected.get(k, zero)]


@dataclass
class Check:
    acknowledged_events: int
    acknowledged_pings: int
    lost_events: set[str]  # acknowledged, not in fct_behavior_structured_event FINAL
    unexpected_events: set[str]  # stored though the generator says they must not land (or were not acknowledged)
    doubled_events: int  # reader-visible duplicates: FINAL rows beyond one per event_id
    lost_pings: set[int]
    doubled_pings: int
    metric_rows: list[tuple]  # (ping_id, stored metric rows, expected) where they differ
    diffs: dict[str, list[tuple]]  # derived table -> cells that differ from the recomputation from the facts
    generator_diffs: dict[str, list[tuple]]  # recomputation from the generator's rows vs from the facts
    dead_letters: list[tuple]  # ((source, stage), stored, expected) where they differ: valid data dead-lettered?
    expected_cells: dict[str, int] = field(default_factory=dict)  # non-zero cells each derived table must hold
    notes: list[str] = field(default_factory=list)

    @classmethod
    def empty(cls) -> Check:
        return cls(0, 0, set(), set(), 0, set(), 0, [], {}, {}, [])

    @property
    def lost(self) -> int:
        return len(self.lost_events) + len(self.lost_pings)

    @property
    def stored(self) -> int:
        return self.acknowledged_events + self.acknowledged_pings - self.lost

    @property
    def derived_excess(self) -> int:
        """Events counted more often than stored, summed over agg_behavior_active_daily cells."""
        return sum(max(0, got[1] - want[1]) for _, got, want in self.diffs.get("agg_behavior_active_daily", [])
                   if isinstance(got, tuple) and isinstance(want, tuple))

    @property
    def doubled(self) -> int:
        return self.doubled_events + self.doubled_pings + self.derived_excess

    @property
    def aggregates_exact(self) -> bool:
        return not any(self.diffs.values()) and not any(self.generator_diffs.values())

    def summary(self) -> str:
        parts = [f"events acked {self.acknowledged_events} lost {len(self.lost_events)} "
                 f"doubled {self.doubled_events} unexpected {len(self.unexpected_events)}",
                 f"pings acked {self.acknowledged_pings} lost {len(self.lost_pings)} doubled {self.doubled_pings} "
                 f"wrong metric rows {len(self.metric_rows)}"]
        parts += [f"{table}: {len(cells)} cells differ, e.g. {cells[:3]}" for table, cells in self.diffs.items()
                  if cells]
        parts += [f"generator vs facts {table}: {len(cells)} cells differ, e.g. {cells[:3]}"
                  for table, cells in self.generator_diffs.items() if cells]
        if self.dead_letters:
            parts.append(f"dead letters ((source, stage), stored, expected): {self.dead_letters}")
        return "\n".join(parts + self.notes)


def _today() -> date:
    return datetime.now(UTC).date()


def check_warehouse(warehouse: Warehouse, acks: Acks, fleet: SnowplowFleet | None = None,
                    metrics: Sequence[EventMetric] | None = None) -> Check:
    """Facts against the acknowledged set, derived tables against a recomputation from the facts."""
    facts = read_event_facts(warehouse)
    ids = Counter(f.event_id for f in facts)
    stored_ids = set(ids)
    ping_counts = {int(p): int(n) for p, n in warehouse.query(
        "SELECT toString(ping_id), count() FROM fct_ping_instance FINAL GROUP BY ping_id").rows}
    metric_counts = {int(p): int(n) for p, n in warehouse.query(
        "SELECT toString(ping_id), count() FROM fct_ping_instance_metric FINAL GROUP BY ping_id").rows}
    metric_rows = [(ping_id, metric_counts.get(ping_id, 0), len(ping.expected_metrics))
                   for ping_id, ping in sorted(acks.pings.items())
                   if metric_counts.get(ping_id, 0) != len(ping.expected_metrics)]

    daily = Daily.of(facts)
    expected_cells = {table: len(cells) for table, cells in daily.cells().items()}
    diffs = {table: cell_diffs(stored, daily.cells()[table], (0, 0)) for table, stored in read_daily(warehouse).items()}
    stored_metrics = read_metrics(warehouse)
    notes = []
    if facts:
        first = min(f.day for f in facts)
        horizon = min(max(f.day for f in facts), _today())
        last = max([horizon] + [key[3] for key in stored_metrics])  # rows past the horizon must be right too
        want = expected_metrics(daily, list(load_event_metrics() if metrics is None else metrics), first, last)
        diffs["agg_event_metric_daily"] = cell_diffs(stored_metrics, want)
        expected_cells["agg_event_metric_daily"] = len(want)
        notes.append(f"metric end days {first}..{horizon}: {len(want)} non-zero cells expected")
    else:
        diffs["agg_event_metric_daily"] = cell_diffs(stored_metrics, {})
    installations = expected_installations(warehouse)
    diffs["dim_installation"] = cell_diffs(read_installations(warehouse), installations, None)
    expected_cells["dim_installation"] = len(installations)

    generator_diffs = {}
    if fleet is not None:
        from_generator = Daily.of(generator_facts(fleet, acks.events)).cells()
        generator_diffs = {table: cell_diffs(daily.cells()[table], cells, (0, 0))
                           for table, cells in from_generator.items()}
    letters = {("snowplow", stage): int(n) for stage, n in warehouse.query(
        "SELECT toString(stage), count() FROM raw_snowplow_bad_row GROUP BY stage").rows}
    letters |= {("service_ping", stage): int(n) for stage, n in warehouse.query(
        "SELECT toString(stage), count() FROM raw_dead_letter FINAL WHERE source = 'service_ping' GROUP BY stage").rows}
    expected_letters = {("snowplow", stage): n for stage, n in acks.bad_events.items()}
    if acks.invalid_pings:
        expected_letters[("service_ping", "validate")] = acks.invalid_pings
    return Check(
        acknowledged_events=len(acks.events), acknowledged_pings=len(acks.pings),
        lost_events=acks.events - stored_ids,
        unexpected_events=stored_ids - acks.events if fleet is not None else set(),
        doubled_events=sum(n - 1 for n in ids.values()),
        lost_pings=set(acks.pings) - set(ping_counts),
        doubled_pings=sum(n - 1 for n in ping_counts.values()),
        metric_rows=metric_rows, diffs=diffs, generator_diffs=generator_diffs,
        dead_letters=cell_diffs(letters, expected_letters), expected_cells=expected_cells, notes=notes,
    )


def check_settings(settings: Settings, acks: Acks, fleet: SnowplowFleet | None = None) -> Check:
    """`check_warehouse` on a scenario's warehouse (the worker must be stopped)."""
    warehouse = open_warehouse(settings)
    try:
        return check_warehouse(warehouse, acks, fleet)
    finally:
        warehouse.close()


# ---------------------------------------------------------------------------------------------------
# Faults and scenarios (the tests run them small, bench/faults at full size)


@dataclass
class Outcome:
    acks: Acks
    check: Check
    kills: list[tuple[str | None, list[str]]] = field(default_factory=list)  # (aimed at, tables being written)
    kill_parts: list[Seen | None] = field(default_factory=list)  # per kill aimed at a table: the part it landed in
    restart_to_write: list[float] = field(default_factory=list)  # per restart: seconds until the worker wrote again
    recover_seconds: float | None = None  # fault over (last restart, disk freed) -> every record landed
    worker_exits: int = 0  # times the worker died by itself (it is restarted, as a supervisor would)
    lag_at_fault_end: int | None = None  # records not yet acknowledged (raw + normalized topics) as the fault ended
    notes: list[str] = field(default_factory=list)

    def __repr__(self) -> str:  # what a failing test shows of its fixture
        timings = ", ".join(f"{s:.1f}" for s in self.restart_to_write)
        return (f"Outcome(kills={self.kills}, kill_parts={self.kill_parts}, restart_to_write_s=[{timings}], "
                f"recover_s={self.recover_seconds}, "
                f"worker_exits={self.worker_exits}, lag_at_fault_end={self.lag_at_fault_end}, notes={self.notes})")


def portions(items: Sequence, parts: int) -> list[list]:
    size = max(1, -(-len(items) // parts))
    chunks = [list(items[i:i + size]) for i in range(0, len(items), size)]
    return chunks + [[] for _ in range(parts - len(chunks))]


async def post_all(url: str, events: Sequence[GeneratedEvent], pings: Sequence[GeneratedPing], acks: Acks) -> None:
    await asyncio.gather(post_events(url, events, acks), post_pings(url, pings, acks))


async def kill_while_writing(pipe: Pipeline, watch: InsertWatch, target: str | None, rng: random.Random,
                             outcome: Outcome, timeout: float = 300) -> None:
    """Wait until the worker writes (a restarted worker first rejoins its group), then SIGKILL it and restart it:
    with `target`, the moment the engine begins a part of `target` (the watch freezes the engine with that part
    unfinished and kills the worker from its thread); with None, at a random moment 0-2 s after it began writing."""
    started = time.monotonic()
    if target is not None and target not in watch.paths:
        target = KILL_FALLBACK.get(target)
    seen = await watch.wait(timeout, tables=[target] if target else None, then=pipe.worker.kill if target else None)
    if seen is None:
        outcome.notes.append(f"no part of {target or 'any watched table'} begun in {timeout:.0f} s; parts begun: "
                             f"{dict(watch.created)}; {await stored_so_far(pipe)}")
    elif outcome.kills:  # the previous kill's restart
        outcome.restart_to_write.append(time.monotonic() - started)
    busy = seen.busy if seen else []
    if target is None and seen:
        await asyncio.sleep(rng.uniform(0, 2))
        busy = watch.writing() or ["(between inserts)"]
    pipe.worker.kill()  # nothing left to do when the watch killed it
    pipe.worker.start()
    outcome.kills.append((target, busy))
    outcome.kill_parts.append(seen if target else None)


def keep_log(log: Path, name: str) -> None:
    """A copy of a child's log in test-artifacts/faults/ (what CI keeps of a failed run)."""
    with contextlib.suppress(OSError):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, ARTIFACTS / name)


async def run_worker_kills(bootstrap: str, workdir: Path, fleet: SnowplowFleet, pings: Sequence[GeneratedPing],
                           targets: Sequence[str | None], seed: int = 1) -> Outcome:
    """Events and pings in len(targets)+1 portions; after each but the last, a SIGKILL while the worker writes it."""
    with scenario_warehouse(fault_settings(workdir, f"kill-{workdir.name}")) as (settings, service):
        watch = InsertWatch(table_paths(settings), engine_pid=service.pid)
        pipe, acks, rng = Pipeline(settings, bootstrap), Acks(), random.Random(seed)
        outcome = Outcome(acks, Check.empty())
        url = await pipe.start()
        try:
            event_parts, ping_parts = portions(fleet.events, len(targets) + 1), portions(pings, len(targets) + 1)
            for n, target in enumerate([*targets, None]):
                # Watch from before the portion is sent: a fast worker may store all of it while it is being sent.
                kill = (asyncio.create_task(kill_while_writing(pipe, watch, target, rng, outcome))
                        if n < len(targets) else None)
                await post_all(url, event_parts[n], ping_parts[n], acks)
                if kill is not None:
                    await kill
            last_restart = time.monotonic()
            first_write = await watch.wait(300)
            if first_write:
                outcome.restart_to_write.append(time.monotonic() - last_restart)
            await pipe.drain()
            outcome.recover_seconds = time.monotonic() - last_restart
        finally:
            watch.close()
            await pipe.stop()
            keep_log(pipe.worker.log_path, f"worker-kill-{workdir.name}.log")
        outcome.check = check_settings(settings, acks, fleet)
    with contextlib.suppress(OSError):
        (ARTIFACTS / f"worker-kill-{workdir.name}.outcome.txt").write_text(f"{outcome!r}\n{outcome.check.summary()}\n")
    return outcome


@contextlib.contextmanager
def small_tmpfs(path: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of `size_mb` MiB mounted on `path` (root only), unmounted afterwards whatever happened."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill_up(directory: Path) -> Path:
    """Fill the filesystem of `directory` with a file until no block is left (dd stops at ENOSPC)."""
    filler = directory / "faults-filler"
    for block in ("1M", "4k"):
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", f"bs={block}", "oflag=append", "conv=notrunc"],
                       capture_output=True, check=False)
    return filler


def chattr(paths: Iterable[Path], flag: str) -> None:
    """`chattr +i`/`-i` on directories: an immutable directory refuses new entries, for root too."""
    existing = [str(p) for p in paths if p.exists()]
    if existing:
        subprocess.run(["chattr", flag, *existing], capture_output=True, check=False)


class WarehouseFault:
    """The engine's data directory full (`full`) or its table directories immutable (`immutable`)."""

    def __init__(self, kind: str, settings: Settings, paths: dict[str, Path]) -> None:
        if kind not in ("full", "immutable"):
            raise ValueError(f"unknown warehouse fault {kind!r}")
        self.kind, self.settings, self.paths = kind, settings, paths
        self.filler: Path | None = None

    def begin(self) -> None:
        if self.kind == "full":
            self.filler = fill_up(self.settings.chdb_path)
        else:
            chattr(self.paths.values(), "+i")

    def end(self) -> None:
        """Idempotent: also the cleanup after a failure."""
        if self.kind == "full":
            if self.filler is not None:
                self.filler.unlink(missing_ok=True)
        else:
            chattr(self.paths.values(), "-i")


async def run_warehouse_fault(bootstrap: str, workdir: Path, kind: str, fleet: SnowplowFleet,
                              pings: Sequence[GeneratedPing], seconds: float, tmpfs_mb: int = 512) -> Outcome:
    """Half the records stored normally; then the fault for `seconds` while the other half arrives; then the
    warehouse is writable again and everything must land once."""
    settings = fault_settings(workdir, f"{kind}-{workdir.name}")
    mount = small_tmpfs(settings.chdb_path, tmpfs_mb) if kind == "full" else contextlib.nullcontext()
    with mount, scenario_warehouse(settings) as (settings, _service):
        paths = table_paths(settings, None)
        watch = InsertWatch({name: paths[name] for name in WATCHED_TABLES if name in paths})
        fault = WarehouseFault(kind, settings, paths)
        pipe, acks = Pipeline(settings, bootstrap), Acks()
        outcome = Outcome(acks, Check.empty())
        url = await pipe.start()
        try:
            (events_before, events_during), (pings_before, pings_during) = (portions(fleet.events, 2),
                                                                            portions(pings, 2))
            await post_all(url, events_before, pings_before, acks)
            if not await watch.wait(300):
                outcome.notes.append("the worker never wrote before the fault")
            await pipe.drain()
            fault.begin()
            began = time.monotonic()
            await post_all(url, events_during, pings_during, acks)
            await asyncio.sleep(max(0.0, seconds - (time.monotonic() - began)))
            outcome.lag_at_fault_end = await pipe.lag(STORED_TOPICS)
            fault.end()
            ended = time.monotonic()
            if not pipe.worker.alive():
                outcome.worker_exits += 1
                outcome.notes.append(f"the worker died during the fault:\n{pipe.worker.log_tail(10)}")
                pipe.worker.stop()
                pipe.worker.start()
            await pipe.drain()
            outcome.recover_seconds = time.monotonic() - ended
        finally:
            fault.end()
            watch.close()
            await pipe.stop()
            keep_log(pipe.worker.log_path, f"worker-{kind}-{workdir.name}.log")
        outcome.check = check_settings(settings, acks, fleet)
    return outcome
