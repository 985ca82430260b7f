"""Erasure of one user, one SaaS namespace or one self-managed instance (README "Erasure").

`erase(settings, user_id=...)` (`denomas-usage erase --user-id ID | --namespace ID | --instance UUID`):

1. lists the subject on `erasure_list` (a digest under the erasure key, never the id or its user_hash), so every
   sink drops its records from then on, also in a replay of the raw topics;
2. notes the subject and what hangs off it (days of its events, an instance's installations, pings, host names,
   dead letters) in `erasure_pending` under a run id, so that no DELETE statement text holds the subject (the engine
   keeps them in system.mutations), and a re-run after a crash finds what the crashed run had collected;
3. deletes its rows from every table that holds them, found from system.columns (user_hash; namespace ids; instance
   uuid, installation and ping ids; alert scopes; dead letters by their decoded bytes), with synchronous mutations;
4. recomputes the derived tables of every day its events touched and removes their older rows (daily bitmap states,
   7/28-day and all-time metrics; marts and reports are views over them);
5. records per table how many rows went in `erasure_log` (no id, no hash), empties its pending rows, and proves the
   result: a query over every such table that must count 0 everywhere (printed, then run).

Every step is idempotent and reads what is stored, so running it twice, or again after a crash, is safe. Which tables
and rows hold a subject, and the proof query: streams/erase/plan.py; this module runs the steps.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson

from streams.enrich.pseudonym import hashed_user
from streams.enrich.service_ping import installation_id_for
from streams.erase.plan import (
    SAAS_ROWS,
    Target,
    check_schema,
    instance_targets,
    namespace_targets,
    pending,
    proof_sql,
    table_columns,
    user_targets,
)
from streams.erase.subjects import (
    LIST_TABLE,
    LOG_TABLE,
    PENDING_TABLE,
    SUBJECT_SOURCES,
    Subject,
    letter_subjects,
    subject_digest,
)
from streams.event_metrics.refresh import mark_touched, recompute_days
from streams.warehouse import Warehouse
from streams.warehouse.reports import refresh_reports

ATTEMPTS = 3  # runs of one erasure until its proof is clean


@dataclass
class Erasure:
    kind: str
    digest: str
    erasure_id: str
    started_at: datetime
    proof_params: dict[str, Any] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)
    days: list[date] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------
# Running an erasure


def _now(warehouse: Warehouse) -> datetime:
    value = warehouse.query("SELECT now64(3, 'UTC')").scalar()
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _begin(warehouse: Warehouse, kind: str, value: int | str) -> tuple[dict[str, dict[str, str]], Erasure]:
    """Check the schema, list the subject (agents drop it from now on), note it under the run id of a crashed run
    of the same subject if there is one."""
    tables = table_columns(warehouse)
    check_schema(tables)
    started, digest = _now(warehouse), subject_digest(kind, value)
    warehouse.insert(LIST_TABLE, [{"kind": kind, "subject_digest": digest, "listed_at": started}])
    leftover = warehouse.query(f"SELECT any(erasure_id) FROM {PENDING_TABLE} WHERE subject_digest = {{d:String}}",
                               {"d": digest}).scalar()
    erasure = Erasure(kind, digest, str(leftover or uuid.uuid4()), started)
    if isinstance(value, int):
        _note(warehouse, erasure, kind, numbers=[value])
    else:
        _note(warehouse, erasure, kind, texts=[value])
    return tables, erasure


def _note(warehouse: Warehouse, erasure: Erasure, kind: str, numbers: Iterable[int] = (),
          texts: Iterable[str] = ()) -> None:
    rows = [{"number": int(n), "text": ""} for n in set(numbers)] + [{"number": 0, "text": str(t)} for t in set(texts)]
    warehouse.insert(PENDING_TABLE, [row | {"erasure_id": erasure.erasure_id, "subject_digest": erasure.digest,
                                            "kind": kind, "started_at": erasure.started_at} for row in rows])


def _noted(warehouse: Warehouse, erasure: Erasure, kind: str, column: str = "text") -> list[Any]:
    return [row[0] for row in warehouse.query(
        f"SELECT DISTINCT {column} FROM {PENDING_TABLE} WHERE erasure_id = {{eid:String}} AND kind = {{kind:String}}",
        {"eid": erasure.erasure_id, "kind": kind}).rows]


def _values(warehouse: Warehouse, sql: str, params: dict[str, Any]) -> set[Any]:
    return {row[0] for row in warehouse.query(sql, params).rows}


def _delete(warehouse: Warehouse, erasure: Erasure, target: Target) -> None:
    """Count, then delete synchronously (the mutation has finished on every part when this returns)."""
    params = {"eid": erasure.erasure_id}
    count = int(warehouse.query(f"SELECT count() FROM {target.table} WHERE {target.where}", params).scalar())
    if count:
        warehouse.execute(f"ALTER TABLE {target.table} DELETE WHERE {target.where} SETTINGS mutations_sync = 2",
                          params)
    erasure.deleted[target.table] = erasure.deleted.get(target.table, 0) + count


def _note_days(warehouse: Warehouse, erasure: Erasure, facts_where: str, states_where: str,
               params: dict[str, Any]) -> None:
    """Days whose derived tables must be recomputed: of the facts still stored, of derived rows that still show the
    subject (a crashed run may have deleted the facts already), and of a crashed run (pending)."""
    days = _values(warehouse, f"SELECT DISTINCT behavior_date FROM fct_behavior_structured_event WHERE {facts_where}",
                   params)
    for table in ("agg_behavior_event_daily", "agg_behavior_active_daily"):
        days |= _values(warehouse, f"SELECT DISTINCT behavior_date FROM {table} WHERE {states_where}", params)
    _note(warehouse, erasure, "day", texts=[str(d) for d in days])
    erasure.days = sorted(date.fromisoformat(str(d)[:10]) for d in _noted(warehouse, erasure, "day"))


def _dead_letters(warehouse: Warehouse, erasure: Erasure, subjects: set[Subject]) -> list[tuple[str, int]]:
    """Dead letters whose decoded bytes name the subject (Python: a user id hides in base64 contexts)."""
    digests = {subject_digest(kind, value) for kind, value in subjects}
    found = []
    for source, letter_id, original in warehouse.query(
            "SELECT source, dead_letter_id, original FROM raw_dead_letter WHERE has(JSONExtract({sources:String}, "
            "'Array(String)'), toString(source))", {"sources": orjson.dumps(SUBJECT_SOURCES).decode()}).rows:
        named = {subject_digest(kind, value) for kind, value in letter_subjects(str(source), original)}
        if named & digests:
            found.append((str(source), int(letter_id)))
    return found


def _delete_letters(warehouse: Warehouse, erasure: Erasure, subjects: set[Subject]) -> None:
    letters = _dead_letters(warehouse, erasure, subjects)
    _note(warehouse, erasure, "letter", texts=[f"{source}:{letter_id}" for source, letter_id in letters])
    _delete(warehouse, erasure, Target(
        "raw_dead_letter", f"concat(toString(source), ':', toString(dead_letter_id)) IN {pending('letter', 'text')}",
        ""))


def _finish(warehouse: Warehouse, erasure: Erasure) -> None:
    """Recompute the affected days, log without the subject, forget the pending rows."""
    if erasure.days:
        recompute_days(warehouse, erasure.days)
    finished = _now(warehouse)
    base = {"erasure_id": erasure.erasure_id, "kind": erasure.kind, "started_at": erasure.started_at,
            "finished_at": finished}
    warehouse.insert(LOG_TABLE, [base | {"table_name": t, "rows_deleted": n, "days_recomputed": 0}
                                 for t, n in sorted(erasure.deleted.items())]
                     + [base | {"table_name": "", "rows_deleted": sum(erasure.deleted.values()),
                                "days_recomputed": len(erasure.days)}])
    warehouse.execute(f"ALTER TABLE {PENDING_TABLE} DELETE WHERE subject_digest = {{d:String}} "
                      "SETTINGS mutations_sync = 2", {"d": erasure.digest})


def _erase_rows(warehouse: Warehouse, erasure: Erasure, targets: list[Target],
                subject: Subject) -> tuple[Erasure, list[Target]]:
    """Delete every target's rows and the subject's dead letters, recompute, log, forget the pending rows."""
    for target in targets:
        _delete(warehouse, erasure, target)
    _delete_letters(warehouse, erasure, {subject})
    mark_touched(warehouse, erasure.days)  # should this run die now, the worker's refresh recomputes what it can
    refresh_reports(warehouse)  # the stored reports' months whose facts changed, recomputed from the cleaned views
    _finish(warehouse, erasure)
    return erasure, targets


def erase_user(warehouse: Warehouse, user_id: str) -> tuple[Erasure, list[Target]]:
    hashed = hashed_user(user_id)
    if not hashed:
        raise ValueError("an empty user id identifies nobody")
    tables, erasure = _begin(warehouse, "user", hashed)
    erasure.proof_params = {"user_hash": hashed}
    _note_days(warehouse, erasure, "user_hash = {h:UInt64}", "bitmapContains(users, {h:UInt64})", {"h": hashed})
    return _erase_rows(warehouse, erasure, user_targets(tables), ("user", hashed))


def erase_namespace(warehouse: Warehouse, namespace_id: int) -> tuple[Erasure, list[Target]]:
    if namespace_id <= 0:
        raise ValueError("a namespace id is a positive integer")
    tables, erasure = _begin(warehouse, "namespace", namespace_id)
    erasure.proof_params = {"namespace": namespace_id}
    _note_days(warehouse, erasure, f"{SAAS_ROWS} AND (namespace_id = {{n:UInt64}} "
               "OR ultimate_parent_namespace_id = {n:UInt64})",
               "scope = 'namespace' AND scope_id = toString({n:UInt64})", {"n": namespace_id})
    return _erase_rows(warehouse, erasure, namespace_targets(tables), ("namespace", namespace_id))


def _instance_values(warehouse: Warehouse, erasure: Erasure, instance: str) -> None:
    """Note the instance's installations, pings and own host names (hosts no other instance reported)."""
    p = {"u": instance}
    hosts = _values(warehouse, "SELECT DISTINCT hostname FROM fct_ping_instance WHERE instance_uuid = {u:String} "
                               "UNION DISTINCT SELECT DISTINCT hostname FROM fct_seat_link "
                               "WHERE instance_uuid = {u:String}", p) - {""}
    shared = _values(warehouse, "SELECT DISTINCT hostname FROM fct_ping_instance WHERE instance_uuid != {u:String} "
                                "UNION DISTINCT SELECT DISTINCT hostname FROM fct_seat_link "
                                "WHERE instance_uuid NOT IN ('', {u:String})", p)
    own_hosts = hosts - shared
    installations = _values(warehouse, "SELECT DISTINCT installation_id FROM fct_ping_instance "
                                       "WHERE instance_uuid = {u:String} UNION DISTINCT SELECT DISTINCT "
                                       "installation_id FROM fct_seat_link WHERE instance_uuid = {u:String}", p)
    installations |= {installation_id_for(instance, h) for h in hosts} | {installation_id_for(instance, None)}
    installations -= {""}
    listed = [("host", h) for h in own_hosts] + [("instance", i) for i in installations]  # alert scopes, replays
    warehouse.insert(LIST_TABLE, [{"kind": kind, "subject_digest": subject_digest(kind, value),
                                   "listed_at": erasure.started_at} for kind, value in listed])
    pings = _values(warehouse, "SELECT ping_id FROM fct_ping_instance WHERE instance_uuid = {u:String} UNION DISTINCT "
                               "SELECT ping_id FROM raw_service_ping WHERE instance_uuid = {u:String} UNION DISTINCT "
                               "SELECT ping_id FROM raw_service_ping_part WHERE position(piece, {u:String}) > 0", p)
    _note(warehouse, erasure, "host", texts=own_hosts)
    _note(warehouse, erasure, "installation", texts=installations)
    _note(warehouse, erasure, "ping", numbers=pings)
    erasure.proof_params = {
        "instance": instance, "hosts": orjson.dumps(sorted(_noted(warehouse, erasure, "host"))).decode(),
        "installations": orjson.dumps(sorted(_noted(warehouse, erasure, "installation"))).decode(),
        "pings": orjson.dumps(sorted(int(n) for n in _noted(warehouse, erasure, "ping", "number"))).decode()}


def erase_instance(warehouse: Warehouse, instance: str) -> tuple[Erasure, list[Target]]:
    instance = instance.strip()
    if not instance:
        raise ValueError("an empty instance uuid identifies nothing")
    tables, erasure = _begin(warehouse, "instance", instance)
    _instance_values(warehouse, erasure, instance)
    _note_days(warehouse, erasure, "instance_id = {u:String}", "scope = 'instance' AND scope_id = {u:String}",
               {"u": instance})
    return _erase_rows(warehouse, erasure, instance_targets(tables), ("instance", instance))


# ---------------------------------------------------------------------------------------------------
# The proof (its query: plan.py) and the command


def prove(warehouse: Warehouse, erasure: Erasure, targets: Sequence[Target]) -> tuple[str, list[tuple[str, int]]]:
    sql = proof_sql(erasure.kind, targets)
    rows = [(str(t), int(n)) for t, n in warehouse.query(sql, erasure.proof_params).rows]
    subjects = {("user", erasure.proof_params.get("user_hash")), ("namespace", erasure.proof_params.get("namespace")),
                ("instance", erasure.proof_params.get("instance"))}
    letters = _dead_letters(warehouse, erasure, {s for s in subjects if s[1] is not None})
    return sql, rows + [("raw_dead_letter (bytes decoded in Python)", len(letters))]


def _erase_once(warehouse: Warehouse, user_id: str | None, namespace: int | None,
                instance: str | None) -> tuple[Erasure, list[Target]]:
    if user_id is not None:
        return erase_user(warehouse, user_id)
    if namespace is not None:
        return erase_namespace(warehouse, int(namespace))
    return erase_instance(warehouse, str(instance))


def erase(settings: Any, user_id: str | None = None, namespace: int | None = None,
          instance: str | None = None, out: Callable[[str], None] = print) -> int:
    """The `erase` command: exactly one subject; prints what went, the proof query and its answer; 0 when nothing of
    the subject is left, 1 when something is, 2 for a usage error."""
    from streams.tables import format_table
    from streams.warehouse import open_warehouse

    if len([v for v in (user_id, namespace, instance) if v is not None]) != 1:
        out("erase: give exactly one of --user-id, --namespace, --instance")
        return 2
    deleted: dict[str, int] = defaultdict(int)
    warehouse = open_warehouse(settings)
    try:
        passes = 0
        while passes < ATTEMPTS:  # a writer racing the erasure shows up in the proof: run again
            passes += 1
            erasure, targets = _erase_once(warehouse, user_id, namespace, instance)
            for table, count in erasure.deleted.items():
                deleted[table] += count
            sql, left = prove(warehouse, erasure, targets)
            if not any(n for _, n in left):
                break
    except ValueError as exc:
        out(f"erase: {exc}")
        return 2
    finally:
        warehouse.close()
    out(format_table(["table", "rows deleted"], sorted(deleted.items()),
                     title=f"Erased one {erasure.kind} (run {erasure.erasure_id}, {passes} pass(es)); "
                           f"{len(erasure.days)} event days recomputed"))
    names = ", ".join(f"{{{name}}}" for name in erasure.proof_params)
    out(f"Proof (bound parameters {names}: the subject's {erasure.kind} values, not shown):\n{sql}")
    out(format_table(["table", "rows left"], left, title="Rows of the subject left"))
    remaining = sum(n for _, n in left)
    out("nothing of the subject is left" if not remaining else f"{remaining} rows of the subject are left")
    return 0 if not remaining else 1
