"""What an erasure deletes and how it proves the deletion (streams/erase/run.py runs it).

Which base tables hold a subject is found from system.columns, not listed by hand: a user by `user_hash`, a SaaS
namespace by its namespace columns, an instance by its uuid, host names, installation and ping ids; alerts by their
scope. Each `Target` deletes through the run's noted rows in `erasure_pending` (`{eid:String}`: no statement holds
the subject), and carries the same rows found with bound parameters of the subject, for the proof query that must
count 0 in every table. A schema erase does not cover (a user in clear, a bitmap nobody recomputes) is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from streams.erase.subjects import LIST_TABLE, LOG_TABLE, NAMESPACE_COLUMNS, PENDING_TABLE
from streams.warehouse import Warehouse
from streams.warehouse.reports import STAGING_PREFIX

KINDS = ("user", "namespace", "instance")
OWN_TABLES = {LIST_TABLE, PENDING_TABLE, LOG_TABLE}
# Derived tables recomputed from the facts (streams/event_metrics/); any other table with a bitmap of user hashes
# is an error: erase would not know how to take the user out of it.
RECOMPUTED = {"agg_behavior_event_daily", "agg_behavior_active_daily", "agg_event_metric_daily"}
# Columns that would hold a user in clear: a table with one is refused until erase handles it.
CLEAR_USER_COLUMNS = {"user_id", "uid", "user_name", "username", "email"}
INSTANCE_COLUMNS = ("instance_uuid", "instance_id")
HOST_COLUMNS = ("hostname", "host")  # Service Ping, Seat Link and Version Check host names (not events' host_name)
SAAS_ROWS = "(realm = 'saas' OR deployment_type = '.com')"  # SaaS rule of prep_behavior_event_scope (clickhouse/070)


@dataclass(frozen=True)
class Target:
    """Rows of `table` to delete: `where` refers to the run's pending rows ({eid:String}) only."""

    table: str
    where: str
    proof: str  # the same rows, found with bound parameters of the subject (for the proof query)


def pending(kind: str, column: str = "number") -> str:
    return f"(SELECT {column} FROM {PENDING_TABLE} WHERE erasure_id = {{eid:String}} AND kind = '{kind}')"


def table_columns(warehouse: Warehouse) -> dict[str, dict[str, str]]:
    """Every base table of the database (views excluded: they hold nothing) -> {column: type}."""
    rows = warehouse.query(
        "SELECT c.table, c.name, c.type FROM system.columns AS c "
        "INNER JOIN (SELECT name FROM system.tables WHERE database = currentDatabase() AND engine NOT LIKE '%View') "
        "AS t ON c.table = t.name WHERE c.database = currentDatabase()").rows
    tables: dict[str, dict[str, str]] = {}
    for table, name, kind in rows:
        # a stored report's staging copy lives only while a refresh runs (it may be dropped under our feet): the
        # run's refresh (streams/erase/run.py) recomputes the stored reports from the cleaned facts instead
        if table not in OWN_TABLES and not str(table).startswith(STAGING_PREFIX):
            tables.setdefault(str(table), {})[str(name)] = str(kind)
    return tables


def check_schema(tables: dict[str, dict[str, str]]) -> None:
    """Refuse to run on a schema erase does not cover: a user in clear, or a bitmap nobody recomputes."""
    for table, columns in tables.items():
        clear = sorted(CLEAR_USER_COLUMNS & set(columns))
        if clear:
            raise RuntimeError(f"{table} has column(s) {clear} that may hold a user in clear; erase does not "
                               "cover it: store a keyed user_hash instead, or extend streams/erase/plan.py")
        bitmaps = [name for name, kind in columns.items() if "groupBitmap" in kind]
        if bitmaps and table not in RECOMPUTED:
            raise RuntimeError(f"{table}.{bitmaps[0]} holds user bitmaps that erase does not recompute; "
                               "extend streams/erase/plan.py (RECOMPUTED) with how to rebuild it")


def user_targets(tables: dict[str, dict[str, str]]) -> list[Target]:
    return [Target(t, f"user_hash IN {pending('user')}", "user_hash = {user_hash:UInt64}")
            for t, columns in sorted(tables.items()) if "user_hash" in columns and t not in RECOMPUTED]


def _alert_targets(tables: dict[str, dict[str, str]], scopes: str, proof: str) -> list[Target]:
    """Alerts about the scopes, their deliveries first (found through the alerts table, deleted after them)."""
    out = []
    if "alerts" in tables and "alert_delivery" in tables:
        out.append(Target("alert_delivery", f"alert_id IN (SELECT alert_id FROM alerts WHERE {scopes})",
                          f"alert_id IN (SELECT alert_id FROM alerts WHERE {proof})"))
    return out + [Target(t, scopes, proof) for t, columns in sorted(tables.items())
                  if {"scope_type", "scope_id"} <= set(columns)]


def namespace_targets(tables: dict[str, dict[str, str]]) -> list[Target]:
    out = []
    for table, columns in sorted(tables.items()):
        names = [c for c in NAMESPACE_COLUMNS if c in columns]
        if names and table not in RECOMPUTED:
            saas = f"{SAAS_ROWS} AND " if {"realm", "deployment_type"} <= set(columns) else ""
            out.append(Target(table, saas + "(" + " OR ".join(f"{c} IN {pending('namespace')}" for c in names) + ")",
                              saas + "(" + " OR ".join(f"{c} = {{namespace:UInt64}}" for c in names) + ")"))
    scopes = f"scope_type = 'namespace' AND scope_id IN {pending('namespace', 'toString(number)')}"
    return _alert_targets(tables, scopes, "scope_type = 'namespace' AND scope_id = toString({namespace:UInt64})") + out


def instance_targets(tables: dict[str, dict[str, str]]) -> list[Target]:
    """Alerts, then every row of its uuid, own host names, installations and pings."""
    scopes = (f"scope_type = 'instance' AND (scope_id IN {pending('installation', 'text')} "
              f"OR scope_id IN {pending('instance', 'text')})")
    proof_scopes = ("scope_type = 'instance' AND (has(JSONExtract({installations:String}, 'Array(String)'), "
                    "scope_id) OR scope_id = {instance:String})")
    out = _alert_targets(tables, scopes, proof_scopes)
    for table, columns in sorted(tables.items()):
        if table in RECOMPUTED:
            continue
        clauses, proofs = [], []
        for name in INSTANCE_COLUMNS:
            if name in columns:
                clauses.append(f"{name} IN {pending('instance', 'text')}")
                proofs.append(f"{name} = {{instance:String}}")
        for name in HOST_COLUMNS:  # version checks, old Seat Links: by the hosts no other instance reported
            if name in columns:
                clauses.append(f"{name} IN {pending('host', 'text')}")
                proofs.append(f"has(JSONExtract({{hosts:String}}, 'Array(String)'), {name})")
        if "installation_id" in columns:
            clauses.append(f"installation_id IN {pending('installation', 'text')}")
            proofs.append("has(JSONExtract({installations:String}, 'Array(String)'), installation_id)")
        if "ping_id" in columns:
            clauses.append(f"ping_id IN {pending('ping')}")
            proofs.append("has(JSONExtract({pings:String}, 'Array(UInt64)'), ping_id)")
        if clauses:
            out.append(Target(table, " OR ".join(clauses), " OR ".join(proofs)))
    # Anchors last: a re-run after a crash collects installations and pings from them again.
    anchors = ("fct_ping_instance", "raw_service_ping")
    return sorted(out, key=lambda target: target.table in anchors)


# ---------------------------------------------------------------------------------------------------
# The proof


def states_proof(kind: str) -> str:
    """The derived tables' rows, every version (no FINAL), that still show the subject."""
    return {"user": "bitmapContains(users, {user_hash:UInt64})",
            "namespace": "scope = 'namespace' AND scope_id = toString({namespace:UInt64})",
            "instance": "scope = 'instance' AND scope_id = {instance:String}"}[kind]


def proof_sql(kind: str, targets: Sequence[Target]) -> str:
    """One query, one row per table: rows that still hold the subject (every count must be 0)."""
    parts = [f"SELECT '{t.table}' AS table_name, count() AS rows_left FROM {t.table} WHERE {t.proof}"
             for t in targets if t.proof]
    states = states_proof(kind)
    parts += [f"SELECT '{t}' AS table_name, count() AS rows_left FROM {t} WHERE {states}"
              for t in sorted(RECOMPUTED) if kind != "user" or t != "agg_event_metric_daily"]
    return "SELECT * FROM (\n" + "\nUNION ALL\n".join(parts) + "\n) ORDER BY table_name"
