"""Erasure of a user, a SaaS namespace and a self-managed instance (streams/erase/, README "Erasure").

The pipeline test streams the sample fleet (Service Ping, Seat Link, Version Check, Snowplow) through the collector,
the real broker and a worker into the warehouse service, erases one SaaS user, one SaaS namespace and one instance
with the CLI, and checks after each step and after a replay of every topic by a new consumer group:
- nothing holds the subject (an independent scan of every column of every table, not the command's own proof);
- every 7/28-day and all-time metric, and 7/28-day active users per scope, equal a computation in plain Python
  over the generator's events without the erased subjects.
The direct tests (no broker) cover a crash half-way and the refusal of a schema erase does not cover.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from fleet.demo import DemoFleet, feed, wait_until_landed
from fleet.pings import generate_fleet
from fleet.reference import fleet_reference
from fleet.seat_link import generate_seat_links, generate_version_checks
from fleet.snowplow import ExpectedRow
from fleet.snowplow_events import generate_snowplow
from streams.collector import RunningCollector
from streams.config import Settings
from streams.enrich.pseudonym import user_hash
from streams.enrich.service_ping import installation_id_for
from streams.erase import run as erase_module
from streams.erase import subjects as erase_subjects
from streams.erase.plan import check_schema
from streams.erase.run import erase_user
from streams.erase.subjects import ErasureList, subject_digest
from streams.event_metrics.definitions import EventMetric, load_event_metrics
from streams.event_metrics.read import active_users
from streams.event_metrics.refresh import mark_touched, refresh_pending
from streams.event_metrics.sql import STORED_SCOPES
from streams.kafka.topics import ensure_topics
from streams.reference.kinds import KINDS as REFERENCE_KINDS
from streams.reference.load import publish as publish_reference
from streams.warehouse import Warehouse, migrate, open_warehouse
from streams.worker import WorkerProcess

METRICS = load_event_metrics()
ACTIONS = sorted({e.action for m in METRICS for e in m.events if e.category == "InternalEventTracking"})

# ---------------------------------------------------------------------------------------------------
# The independent computation: plain Python over event rows.


@dataclass(frozen=True)
class Event:
    day: date
    user: str | None  # None: anonymous
    event_type: str
    event: tuple[str, str]  # (category, action)
    scopes: tuple[tuple[str, str], ...]  # (scope, scope_id) it counts for


def scopes_of(realm: str, deployment_type: str, namespace: int, parent: int, instance: str) -> tuple:
    """The README's rule ("Extending"), restated: instance for events with one; namespace (the top-level one) and
    saas only for SaaS events."""
    saas = realm == "saas" or deployment_type == ".com"
    top = parent or namespace
    out = [("instance", instance)] if instance else []
    if saas and top:
        out.append(("namespace", str(top)))
    if saas:
        out.append(("saas", "all"))
    return tuple(out)


def fleet_event(row: ExpectedRow) -> Event:
    return Event(row.behavior_date, row.user_id, row.event_type, (row.event_category, row.event_action),
                 scopes_of(row.realm, row.deployment_type, row.namespace_id, row.ultimate_parent_namespace_id,
                           row.instance_id))


Cells = dict[tuple, int]


def expected_numbers(events: Iterable[Event], metrics: Iterable[EventMetric] = METRICS) -> tuple[Cells, Cells]:
    """(every metric per scope and end day, active users per scope, window and day), first event day to the last."""
    events = list(events)
    users: dict[tuple, set[str]] = defaultdict(set)
    counts: dict[tuple, int] = defaultdict(int)
    active: dict[tuple, set[str]] = defaultdict(set)
    keys = set()
    for e in events:
        for key in e.scopes:
            keys.add(key)
            if e.user:
                active[(key, e.day)].add(e.user)
            if e.event_type == "struct" and e.event[1]:
                counts[(key, e.day, e.event)] += 1
                if e.user:
                    users[(key, e.day, e.event)].add(e.user)
    first, last = min(e.day for e in events), max(e.day for e in events)
    ends = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    cells: Cells = {}
    for metric in metrics:
        wanted = [(e.category, e.action) for e in metric.events]
        for key in keys:
            for end in ends:
                window = [end - timedelta(days=n) for n in range(metric.window_days or (end - first).days + 1)]
                if metric.value_type == "user":
                    per_event = [set().union(*(users.get((key, d, ev), set()) for d in window)) for ev in wanted]
                    value = len(set.intersection(*per_event) if metric.operator == "AND" else set.union(*per_event))
                else:
                    total = sum(counts.get((key, d, ev), 0) for d in window for ev in wanted)
                    value = total if metric.value_type == "event" else int(total > 0)
                if value:
                    cells[(metric.key_path, key[0], key[1], end)] = value
    actives: Cells = {}
    for key in keys:
        for window in (7, 28):
            for end in ends:
                found = set().union(*(active.get((key, end - timedelta(days=n)), set()) for n in range(window)))
                if found:
                    actives[(key[0], key[1], window, end)] = len(found)
    return cells, actives


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def warehouse_numbers(warehouse: Warehouse) -> tuple[Cells, Cells]:
    """What the warehouse shows: agg_event_metric_daily, and active users merged from the daily states."""
    cells = {(str(k), str(s), str(i), _day(d)): int(v) for k, s, i, d, v in warehouse.query(
        "SELECT key_path, scope, scope_id, metric_date, value FROM agg_event_metric_daily FINAL").rows}
    first, last = warehouse.query("SELECT min(behavior_date), max(behavior_date) FROM fct_behavior_structured_event "
                                  "FINAL").rows[0]
    actives: Cells = {}
    for scope in STORED_SCOPES:
        for window in (7, 28):
            for day, scope_id, users in active_users(warehouse, scope, _day(first), _day(last), window).rows:
                actives[(scope, str(scope_id), window, _day(day))] = int(users)
    return cells, actives


def differences(want: Cells, got: Cells) -> list:
    return sorted(((k, want.get(k), got.get(k)) for k in want.keys() | got.keys() if want.get(k) != got.get(k)),
                  key=str)[:10]


def tables_holding(warehouse: Warehouse, number: int | None = None, text: str | None = None) -> dict[str, int]:
    """An independent scan: every base table, every column that could hold the value (every version of every row,
    no FINAL): integers, bitmaps of user hashes, strings equal to it or (payloads) containing it."""
    columns = warehouse.query(
        "SELECT c.table, c.name, c.type FROM system.columns AS c INNER JOIN (SELECT name FROM system.tables "
        "WHERE database = currentDatabase() AND engine NOT LIKE '%View') AS t ON c.table = t.name "
        "WHERE c.database = currentDatabase()").rows
    found = {}
    for table, name, kind in columns:
        if number is not None and kind.startswith(("UInt64", "Nullable(UInt64)", "Int64", "Nullable(Int64)")):
            where, params = f"`{name}` = {{v:UInt64}}", {"v": number}
        elif number is not None and "groupBitmap" in kind:
            where, params = f"bitmapContains(`{name}`, {{v:UInt64}})", {"v": number}
        elif text is not None and "String" in kind and "Array" not in kind and "Map" not in kind:
            where, params = f"position(toString(`{name}`), {{v:String}}) > 0", {"v": text}
        else:
            continue
        try:
            count = int(warehouse.query(f"SELECT count() FROM `{table}` WHERE {where}", params).scalar())
        except DatabaseError as exc:  # a stored report's staging table, dropped since listed, holds nothing
            if "UNKNOWN_TABLE" not in str(exc):
                raise
            continue
        if count:
            found[f"{table}.{name}"] = count
    return found


# ---------------------------------------------------------------------------------------------------
# The pipeline: stream, erase with the CLI, replay with a new consumer group.


@dataclass
class Subjects:
    user: str  # a SaaS user id as trackers send it
    namespace: int  # a SaaS top-level namespace
    instance: str  # a self-managed instance with pings, Seat Links, version checks and events
    hostnames: set[str]

    def without(self, stage: str) -> Callable[[ExpectedRow], bool]:
        """The rows that stay after `stage` (user, then namespace and instance)."""
        def keep(row: ExpectedRow) -> bool:
            if row.user_id == self.user:
                return False
            if stage == "user":
                return True
            saas = row.realm == "saas" or row.deployment_type == ".com"
            top = row.ultimate_parent_namespace_id or row.namespace_id
            return not (saas and (top == self.namespace or row.namespace_id == self.namespace)) \
                and row.instance_id != self.instance
        return keep


@dataclass
class Stage:
    numbers: tuple[Cells, Cells]
    user_left: dict[str, int]
    namespace_left: dict[str, int]
    instance_left: dict[str, int]
    instance_rows: dict[str, int]
    other_rows: dict[str, int]
    log_rows: list[tuple]
    list_rows: int


def _instance_rows(warehouse: Warehouse, instance: str, hosts: set[str], installations: set[str]) -> dict[str, int]:
    params = {"u": instance, "hosts": sorted(hosts), "installations": sorted(installations)}
    sql = {
        "raw_service_ping": "instance_uuid = {u:String}", "fct_ping_instance": "instance_uuid = {u:String}",
        "fct_ping_instance_metric": "installation_id IN {installations:Array(String)}",
        "fct_seat_link": "instance_uuid = {u:String} OR hostname IN {hosts:Array(String)}",
        "fct_version_check": "host IN {hosts:Array(String)}",
        "fct_behavior_structured_event": "instance_id = {u:String}",
        "raw_dead_letter": "position(original, {u:String}) > 0",
        "alerts": "scope_type = 'instance' AND (scope_id IN {installations:Array(String)} OR scope_id = {u:String})",
        "alert_scope_state": "scope_type = 'instance' AND (scope_id IN {installations:Array(String)} "
                             "OR scope_id = {u:String})",
    }
    return {table: int(warehouse.query(f"SELECT count() FROM {table} WHERE {where}", params).scalar())
            for table, where in sql.items()}


def _other_rows(warehouse: Warehouse, instance: str) -> dict[str, int]:
    return {table: int(warehouse.query(f"SELECT count() FROM {table} FINAL WHERE {column} != {{u:String}}",
                                       {"u": instance}).scalar())
            for table, column in (("fct_ping_instance", "instance_uuid"), ("fct_seat_link", "instance_uuid"))}


def _stage(settings: Settings, subjects: Subjects) -> Stage:
    warehouse = open_warehouse(settings)
    try:
        installations = {installation_id_for(subjects.instance, h) for h in subjects.hostnames}
        return Stage(
            warehouse_numbers(warehouse),
            tables_holding(warehouse, number=user_hash(subjects.user)),
            {k: v for k, v in tables_holding(warehouse, number=subjects.namespace).items()
             if k.startswith(("dim_namespace", "alerts", "alert_scope_state"))}
            | {"saas events": int(warehouse.query(
                "SELECT count() FROM fct_behavior_structured_event WHERE (realm = 'saas' OR deployment_type = '.com') "
                "AND (namespace_id = {n:UInt64} OR ultimate_parent_namespace_id = {n:UInt64})",
                {"n": subjects.namespace}).scalar())},
            tables_holding(warehouse, text=subjects.instance),
            _instance_rows(warehouse, subjects.instance, subjects.hostnames, installations),
            _other_rows(warehouse, subjects.instance),
            warehouse.query("SELECT * FROM erasure_log ORDER BY started_at, table_name").rows,
            int(warehouse.query("SELECT count() FROM erasure_list FINAL").scalar()),
        )
    finally:
        warehouse.close()


def _cli(settings: Settings, *args: str, command: str = "erase", bootstrap: str = "") -> subprocess.CompletedProcess:
    env = os.environ | {"DENOMAS_WAREHOUSE_DATABASE": settings.warehouse_database,
                        "CLICKHOUSE_URL": settings.warehouse_url, "DENOMAS_TOPIC_PREFIX": settings.topic_prefix,
                        "DENOMAS_APP_ID": settings.app_id, "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    return subprocess.run([sys.executable, "-m", "streams.cli", command, *args], env=env, capture_output=True,
                          text=True, timeout=600)


def _fleet(seed: int) -> DemoFleet:
    pings = generate_fleet(6, 5, seed=seed)
    return DemoFleet(pings, generate_seat_links(6, 5, seed, pings=pings), generate_version_checks(pings, seed),
                     generate_snowplow(6, 5, seed, namespaces=4), fleet_reference(6, 5, seed))


def _choose(fleet: DemoFleet) -> Subjects:
    rows = list(fleet.snowplow.expected_rows().values())
    saas_users: dict[str, int] = defaultdict(int)
    for row in rows:
        if row.realm == "saas" and row.user_id:
            saas_users[row.user_id] += 1
    user = max(sorted(saas_users), key=lambda u: saas_users[u])
    tops = sorted({r.ultimate_parent_namespace_id for r in rows
                   if r.realm == "saas" and r.ultimate_parent_namespace_id})
    by_uuid: dict[str, set[str]] = defaultdict(set)
    for ping in fleet.pings:
        by_uuid[ping.uuid].add(ping.hostname)
    # Seat Link clients older than 14.x send neither uuid nor host name: only an instance whose reports name it
    # can have its Seat Links erased (README "Erasure"), so the test erases one of those.
    named = {s.instance_uuid for s in fleet.seat_links if s.generation == "14.x"}
    instance = max(sorted(set(fleet.snowplow.instances) & set(by_uuid) & named),
                   key=lambda u: sum(r.instance_id == u for r in rows))
    return Subjects(user, tops[-1], instance, by_uuid[instance])


async def _stream(settings: Settings, bootstrap: str, fleet: DemoFleet) -> None:
    collector = RunningCollector(bootstrap, replace(settings, version_check_replay=True))
    try:
        url = await collector.start()
        for kind in fleet.reference.base_kinds():
            await publish_reference(settings, bootstrap, REFERENCE_KINDS[kind], fleet.reference.rows[kind])
        await feed(url, fleet)
        await wait_until_landed(settings, bootstrap, timeout=400)
    finally:
        await collector.stop()


@pytest.fixture(scope="module")
def erased(kafka_bootstrap, tmp_path_factory):
    name = uuid.uuid4().hex[:8]
    settings = Settings.from_env(data_dir=tmp_path_factory.mktemp("erase"), topic_partitions=2,
                                 topic_prefix=f"e-{name}.", app_id=f"erase-{name}", worker_web_port=0)
    asyncio.run(ensure_topics(kafka_bootstrap, settings))
    warehouse = open_warehouse(settings)
    migrate(warehouse)
    warehouse.close()
    fleet = _fleet(seed=23)
    subjects = _choose(fleet)
    namespaces = fleet.reference.rows["namespaces"]  # the erased namespace's reference row, on the compacted topic
    namespaces.append(namespaces[0] | {"namespace_id": subjects.namespace, "namespace_name": "erased-group"})
    stages: dict[str, Stage] = {}
    runs: dict[str, subprocess.CompletedProcess] = {}
    worker = WorkerProcess(settings, kafka_bootstrap)
    worker.start()  # it keeps running (and refreshing) while the erasures run
    try:
        asyncio.run(_stream(settings, kafka_bootstrap, fleet))
        stages["before"] = _stage(settings, subjects)
        runs["user"] = _cli(settings, "--user-id", subjects.user)
        stages["user"] = _stage(settings, subjects)
        runs["user again"] = _cli(settings, "--user-id", subjects.user)
        runs["namespace"] = _cli(settings, "--namespace", str(subjects.namespace))
        runs["instance"] = _cli(settings, "--instance", subjects.instance)
        stages["all"] = _stage(settings, subjects)
        runs["completeness"] = _cli(settings, "--no-store", "kind:completeness", command="check",
                                    bootstrap=kafka_bootstrap)
    finally:
        worker.stop()
    replay = replace(settings, app_id=f"replay-{name}")  # a new consumer group: every topic from its start
    with WorkerProcess(replay, kafka_bootstrap, log_path=settings.data_dir / "replay.log") as again:
        asyncio.run(wait_until_landed(replay, kafka_bootstrap, timeout=400))
        warehouse = open_warehouse(settings)
        refresh_pending(warehouse)  # what the worker's timer does; the sink already did it for its batches
        warehouse.close()
        assert again.alive()
    stages["replay"] = _stage(settings, subjects)
    return fleet, subjects, stages, runs


def _expected(fleet: DemoFleet, keep: Callable[[ExpectedRow], bool] = lambda row: True) -> tuple[Cells, Cells]:
    return expected_numbers(fleet_event(r) for r in fleet.snowplow.expected_rows().values() if keep(r))


@pytest.mark.integration
def test_before_erasure_the_numbers_match_python_and_the_subjects_are_stored(erased):
    fleet, subjects, stages, _ = erased
    before = stages["before"]
    cells, actives = _expected(fleet)
    assert len(cells) > 500 and len(actives) > 200
    assert differences(cells, before.numbers[0]) == []
    assert differences(actives, before.numbers[1]) == []
    assert before.user_left["fct_behavior_structured_event.user_hash"] > 5
    assert any(k.startswith("agg_behavior_active_daily") for k in before.user_left)
    assert before.namespace_left["saas events"] > 5 and before.namespace_left.get("dim_namespace.namespace_id") == 1
    assert all(before.instance_rows[t] > 0 for t in ("raw_service_ping", "fct_ping_instance_metric",
                                                     "fct_seat_link", "fct_version_check",
                                                     "fct_behavior_structured_event"))


@pytest.mark.integration
def test_erase_user_leaves_no_hash_and_every_number_equals_a_recomputation_without_the_user(erased):
    fleet, subjects, stages, runs = erased
    print(runs["user"].stdout)  # what the command printed (pytest -rA shows it)
    assert runs["user"].returncode == 0, runs["user"].stdout + runs["user"].stderr
    assert "nothing of the subject is left" in runs["user"].stdout
    assert "UNION ALL" in runs["user"].stdout  # the proof query is printed
    after = stages["user"]
    assert after.user_left == {}
    cells, actives = _expected(fleet, subjects.without("user"))
    assert differences(cells, after.numbers[0]) == []
    assert differences(actives, after.numbers[1]) == []
    assert cells != _expected(fleet)[0]  # the user did change numbers


@pytest.mark.integration
def test_erase_twice_is_idempotent(erased):
    _, _, stages, runs = erased
    again = runs["user again"]
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing of the subject is left" in again.stdout
    logs = [row for row in stages["all"].log_rows if row[1] == "user"]
    runs_by_id: dict[str, int] = defaultdict(int)
    for row in logs:
        if row[4] == "":
            runs_by_id[row[0]] += int(row[5])
    assert sorted(runs_by_id.values())[0] == 0 and sorted(runs_by_id.values())[-1] > 0  # second run: 0 rows


@pytest.mark.integration
def test_the_log_and_the_list_hold_nothing_that_identifies_the_subjects(erased):
    _, subjects, stages, _ = erased
    hashed = user_hash(subjects.user)
    rows = stages["all"].log_rows
    assert {row[1] for row in rows} == {"user", "namespace", "instance"}
    text = repr(rows)
    for secret in (subjects.user, str(hashed), f"{hashed:016x}", subjects.instance):
        assert secret not in text
    assert stages["all"].list_rows >= 3


@pytest.mark.integration
def test_erase_namespace_and_instance(erased):
    fleet, subjects, stages, runs = erased
    for kind in ("namespace", "instance"):
        print(runs[kind].stdout)
        assert runs[kind].returncode == 0, runs[kind].stdout + runs[kind].stderr
    after = stages["all"]
    assert after.namespace_left == {"saas events": 0}
    assert after.instance_left == {}
    assert after.instance_rows == dict.fromkeys(after.instance_rows, 0)
    assert after.other_rows == stages["before"].other_rows  # the other instances keep every row
    cells, actives = _expected(fleet, subjects.without("all"))
    assert differences(cells, after.numbers[0]) == []
    assert differences(actives, after.numbers[1]) == []


@pytest.mark.integration
def test_offsets_of_erased_subjects_count_as_accounted_in_completeness(erased):
    """Their rows were deleted on purpose: the raw topics' completeness still passes on every partition."""
    *_, runs = erased
    done = runs["completeness"]
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("complete through offset") >= 8  # 4 raw topics x 2 partitions
    assert "neither landed nor dead-lettered" not in done.stdout


@pytest.mark.integration
def test_a_replay_of_every_topic_does_not_bring_them_back(erased):
    fleet, subjects, stages, _ = erased
    replay = stages["replay"]
    assert replay.user_left == {}
    assert replay.namespace_left == {"saas events": 0}
    assert replay.instance_left == {}
    assert replay.instance_rows == dict.fromkeys(replay.instance_rows, 0)
    assert replay.other_rows == stages["before"].other_rows
    cells, actives = _expected(fleet, subjects.without("all"))
    assert differences(cells, replay.numbers[0]) == []
    assert differences(actives, replay.numbers[1]) == []


# ---------------------------------------------------------------------------------------------------
# Direct tests on the warehouse service (no broker)


def _fact_rows(events: list[tuple[str, date, int, str]]) -> list[dict[str, Any]]:
    """(user id, day, namespace, action) -> minimal fct_behavior_structured_event rows (SaaS events)."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return [{"event_id": str(uuid.UUID(int=n + 1)), "event_type": "struct", "event_category": "InternalEventTracking",
             "event_action": action, "behavior_date": day, "user_hash": user_hash(user), "namespace_id": ns,
             "ultimate_parent_namespace_id": ns, "realm": "saas", "deployment_type": ".com",
             "collector_tstamp": now, "derived_tstamp": now, "ingested_at": now}
            for n, (user, day, ns, action) in enumerate(events)]


def _events(seed_actions: list[str]) -> list[tuple[str, date, int, str]]:
    start = date(2026, 3, 1)
    out = []
    for n in range(120):
        out.append((f"u{n % 7}", start + timedelta(days=n % 40), 20001 + n % 3, seed_actions[n % len(seed_actions)]))
    out.append(("solo", start + timedelta(days=45), 20009, seed_actions[0]))  # the only user of a namespace and day
    return out


def test_a_crash_half_way_is_safe_to_rerun(warehouse, monkeypatch):
    events = _events(ACTIONS[:5])
    warehouse.insert("fct_behavior_structured_event", _fact_rows(events))
    mark_touched(warehouse, {day for _, day, _, _ in events})
    refresh_pending(warehouse)

    def crash(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("killed half-way")

    monkeypatch.setattr(erase_module, "recompute_days", crash)  # facts deleted, derived tables not recomputed yet
    with pytest.raises(RuntimeError):
        erase_user(warehouse, "solo")
    assert tables_holding(warehouse, number=user_hash("solo"))  # the bitmaps still show the user
    monkeypatch.undo()
    erasure, _ = erase_user(warehouse, "solo")
    assert erasure.days == [date(2026, 4, 15)]  # found again from the pending rows of the crashed run
    erase_user(warehouse, "u3")
    assert tables_holding(warehouse, number=user_hash("solo")) == {}
    assert tables_holding(warehouse, number=user_hash("u3")) == {}
    assert int(warehouse.query("SELECT count() FROM erasure_pending").scalar()) == 0
    for user in ("solo", "u3"):  # the statement texts the engine keeps name no erased user
        assert warehouse.query("SELECT count() FROM system.mutations WHERE database = currentDatabase() AND "
                               "position(command, {h:String}) > 0", {"h": str(user_hash(user))}).scalar() == 0
    assert warehouse.query("SELECT count() FROM system.mutations WHERE database = currentDatabase() AND "
                           "position(command, 'erasure_pending') > 0").scalar() > 0  # they refer to it instead
    kept = [Event(day, user, "struct", ("InternalEventTracking", action), scopes_of("saas", ".com", ns, ns, ""))
            for user, day, ns, action in events if user not in ("solo", "u3")]
    cells, actives = expected_numbers(kept)
    got_cells, got_actives = warehouse_numbers(warehouse)
    assert differences(cells, got_cells) == []
    assert differences(actives, got_actives) == []
    assert not any(key[1:3] == ("namespace", "20009") for key in got_cells)  # a namespace whose only user went


def test_the_agents_list_drops_erased_subjects_only():
    listed = ErasureList(frozenset({subject_digest("user", 42), subject_digest("namespace", 7)}))
    rows = [{"user_hash": 42}, {"user_hash": 43}, {"user_hash": 0, "namespace_id": 7, "realm": "saas"},
            {"user_hash": 0, "namespace_id": 7, "realm": "self-managed"}]
    assert listed.keep(rows, erase_subjects.event_subjects) == [rows[1], rows[3]]
    assert ErasureList().keep(rows, erase_subjects.event_subjects) == rows


def test_a_schema_erase_does_not_cover_is_refused():
    with pytest.raises(RuntimeError, match="recompute"):
        check_schema({"agg_new_thing": {"users": "AggregateFunction(groupBitmap, UInt64)"}})
    with pytest.raises(RuntimeError, match="in clear"):
        check_schema({"raw_new_source": {"user_id": "String"}})
    check_schema({"agg_behavior_active_daily": {"users": "AggregateFunction(groupBitmap, UInt64)"}})


def test_the_command_refuses_an_empty_or_missing_subject():
    printed: list[str] = []
    assert erase_module.erase(Settings.from_env(), user_id="  ", out=printed.append) == 2
    assert erase_module.erase(Settings.from_env(), out=printed.append) == 2
    assert printed == ["erase: an empty user id identifies nobody",
                       "erase: give exactly one of --user-id, --namespace, --instance"]


def test_dead_letters_name_their_subjects_from_the_decoded_bytes():
    import base64

    import orjson

    from fleet.snowplow import CONTEXTS, STANDARD

    standard = {"schema": STANDARD, "data": {"user_id": 1000042, "namespace_id": 30003,
                                             "ultimate_parent_namespace_id": 20003, "realm": "saas"}}
    cx = base64.urlsafe_b64encode(orjson.dumps({"schema": CONTEXTS, "data": [standard]})).decode()
    event = {"e": "se", "cx": cx, "se_va": "not a number"}  # a bad event: its context still names the user
    subjects = erase_subjects.letter_subjects("snowplow", orjson.dumps([event, {"e": "pv", "uid": "u-7"}]))
    assert set(subjects) == {("user", user_hash(1000042)), ("namespace", 30003), ("namespace", 20003),
                             ("user", user_hash("u-7"))}
    assert erase_subjects.letter_subjects("service_ping", b'{"uuid": "abc", "version": "x"}') == [("instance", "abc")]
    assert erase_subjects.letter_subjects("service_ping", b"not json") == []
    assert erase_subjects.letter_subjects("version_check", b'{"uuid": "abc"}') == []


def _instance_rows_direct(warehouse: Warehouse, instances: dict[str, str]) -> None:
    """Two instances (uuid -> hostname) with a ping, its metrics, its raw payload, a Seat Link, a version check and
    events on three days each."""
    now = datetime(2026, 3, 1, tzinfo=UTC)
    for n, (uuid_, host) in enumerate(sorted(instances.items())):
        installation = installation_id_for(uuid_, host)
        ping = {"ping_id": 100 + n, "recorded_at": now}
        warehouse.insert("fct_ping_instance", [ping | {"installation_id": installation, "instance_uuid": uuid_,
                                                       "hostname": host, "received_at": now}])
        warehouse.insert("fct_ping_instance_metric", [ping | {"installation_id": installation, "metrics_path": p}
                                                      for p in ("a", "b", "c")])
        warehouse.insert("raw_service_ping", [ping | {"instance_uuid": uuid_, "received_at": now,
                                                      "payload": f'{{"uuid": "{uuid_}"}}'.encode()}])
        warehouse.insert("fct_seat_link", [{"seat_link_id": 200 + n, "instance_uuid": uuid_, "hostname": host,
                                            "installation_id": installation, "report_timestamp": now,
                                            "report_date": now.date(), "received_at": now}])
        warehouse.insert("fct_version_check", [{"check_id": 300 + n, "checked_at": now, "host": host}])
        rows = _fact_rows([(f"sm-{n}-{k}", date(2026, 3, 1 + k), 0, ACTIONS[0]) for k in range(3)])
        warehouse.insert("fct_behavior_structured_event", [
            r | {"event_id": f"{uuid_}-{k}", "instance_id": uuid_, "realm": "self-managed", "deployment_type": ""}
            for k, r in enumerate(rows)])
    mark_touched(warehouse, {date(2026, 3, 1 + k) for k in range(3)})
    refresh_pending(warehouse)


@pytest.mark.parametrize("crash_at", [2, 6, 99])
def test_an_instance_erasure_killed_anywhere_is_safe_to_rerun(warehouse, monkeypatch, crash_at):
    instances = {"11111111-1111-4111-8111-111111111111": "gone.example.org",
                 "22222222-2222-4222-8222-222222222222": "kept.example.org"}
    _instance_rows_direct(warehouse, instances)
    gone, kept = sorted(instances)
    real_delete, calls = erase_module._delete, []

    def delete_then_crash(*args: Any) -> None:
        calls.append(args[2].table)
        if len(calls) == crash_at:
            raise RuntimeError("killed half-way")
        real_delete(*args)

    def crash(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("killed before the recompute")

    monkeypatch.setattr(erase_module, "_delete", delete_then_crash)
    if crash_at == 99:
        monkeypatch.setattr(erase_module, "recompute_days", crash)
    with pytest.raises(RuntimeError):
        erase_module.erase_instance(warehouse, gone)
    assert tables_holding(warehouse, text=gone)  # the crash left some of it (facts, or the derived tables)
    monkeypatch.undo()
    erase_module.erase_instance(warehouse, gone)
    installation = installation_id_for(gone, instances[gone])
    for value in (gone, instances[gone], installation):
        assert tables_holding(warehouse, text=value) == {}, value
    assert tables_holding(warehouse, number=100) == {}  # the ping id
    assert tables_holding(warehouse, text=kept)["fct_ping_instance.instance_uuid"] == 1
    assert tables_holding(warehouse, text=instances[kept])["fct_version_check.host"] == 1
    cells, actives = expected_numbers(
        Event(date(2026, 3, 1 + k), f"sm-1-{k}", "struct", ("InternalEventTracking", ACTIONS[0]),
              scopes_of("self-managed", "", 0, 0, kept)) for k in range(3))
    assert cells and actives
    got_cells, got_actives = warehouse_numbers(warehouse)
    assert differences(cells, got_cells) == []
    assert differences(actives, got_actives) == []
