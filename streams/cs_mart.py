"""The customer-success mart `mart_product_usage_paid_user_metrics_monthly` (clickhouse/042_...): read and export.

Grain and primary key: snapshot_month x dim_subscription_id x installation_id (`primary_key` = md5 of the three).
The SQL file documents the rules (latest ping and latest Seat Link report per month, seat columns). The metric
columns are the documented list below: the latest ping's value of each metrics_path, NULL when not reported or
reported as an error marker.
"""

from __future__ import annotations

import csv
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from streams.catalog import class_label, classes_of, columns_classes
from streams.records import parse_timestamp
from streams.warehouse import Warehouse
from streams.warehouse_service.access import KNOWN_ROLES, ROLES, UNRESTRICTED_ROLES, readable_columns, reads_part

MART = "mart_product_usage_paid_user_metrics_monthly"

# Column -> metrics_path (named like the reference's wave columns: <concept>_<28_days|all_time>_<user|event>).
CS_MART_METRICS: tuple[tuple[str, str], ...] = (
    ("umau_28_days_user", "usage_activity_by_stage_monthly.manage.events"),
    ("action_monthly_active_users_project_repo_28_days_user",
     "usage_activity_by_stage_monthly.create.action_monthly_active_users_project_repo"),
    ("merge_requests_28_days_user", "usage_activity_by_stage_monthly.create.merge_requests"),
    ("issues_28_days_user", "usage_activity_by_stage_monthly.plan.issues"),
    ("epics_28_days_user", "usage_activity_by_stage_monthly.plan.epics"),
    ("ci_pipelines_28_days_user", "usage_activity_by_stage_monthly.verify.ci_pipelines"),
    ("ci_builds_28_days_user", "usage_activity_by_stage_monthly.verify.ci_builds"),
    ("deployments_28_days_user", "usage_activity_by_stage_monthly.release.deployments"),
    ("releases_28_days_user", "usage_activity_by_stage_monthly.release.releases"),
    ("user_unique_users_all_secure_scanners_28_days_user",
     "usage_activity_by_stage_monthly.secure.user_unique_users_all_secure_scanners"),
    ("user_sast_jobs_28_days_user", "usage_activity_by_stage_monthly.secure.user_sast_jobs"),
    ("user_packages_28_days_user", "redis_hll_counters.user_packages.user_packages_total_unique_counts_monthly"),
    ("merge_requests_28_days_event", "counts_monthly.merge_requests"),
    ("deployments_28_days_event", "counts_monthly.deployments"),
    ("ci_builds_all_time_event", "counts.ci_builds"),
    ("ci_internal_pipelines_all_time_event", "counts.ci_internal_pipelines"),
    ("ci_runners_all_time_event", "counts.ci_runners"),
    ("issues_all_time_event", "counts.issues"),
    ("merge_requests_all_time_event", "counts.merge_requests"),
    ("projects_all_time_event", "counts.projects"),
    ("gitlab_shared_runners_enabled", "gitlab_shared_runners_enabled"),
    ("container_registry_enabled", "container_registry_enabled"),
)

_ARROW_TYPES: dict[str, pa.DataType] = {
    "String": pa.string(), "UInt8": pa.uint8(), "UInt64": pa.uint64(), "Int64": pa.int64(),
    "Float64": pa.float64(), "Date": pa.date32(),
}


def _unwrap(ch_type: str) -> tuple[str, bool]:
    nullable = ch_type.startswith("Nullable(")
    for wrapper in ("Nullable(", "LowCardinality("):
        if ch_type.startswith(wrapper):
            ch_type = ch_type[len(wrapper):-1]
    return ch_type, nullable


def arrow_field(name: str, ch_type: str) -> pa.Field:
    base, nullable = _unwrap(ch_type)
    if base.startswith("DateTime64"):
        return pa.field(name, pa.timestamp("ms", tz="UTC"), nullable)
    if base not in _ARROW_TYPES:
        raise ValueError(f"no export type for {name} {ch_type}")
    return pa.field(name, _ARROW_TYPES[base], nullable)


def _typed(value: Any, ch_type: str) -> Any:
    """A JSON value of the engine's answer as the Python value of its column type."""
    base, _ = _unwrap(ch_type)
    if value is None:
        return None
    if base.startswith("DateTime64"):
        return parse_timestamp(str(value))
    if base == "Date":
        return date.fromisoformat(str(value))
    if base.startswith(("Int", "UInt")):
        return int(value)
    if base == "Float64":
        return float(value)
    return value


class ExportRefused(PermissionError):
    """The role may not read what the export would write."""


def mart_schema(warehouse: Warehouse) -> list[tuple[str, str]]:
    """(column, ClickHouse type) of the mart, in order."""
    return [(str(r[0]), str(r[1])) for r in warehouse.query(f"DESCRIBE TABLE {MART}").rows]


def mart_classes(warehouse: Warehouse) -> frozenset[str]:
    """The mart's data classes, from its COMMENT in the warehouse (the one definition, see streams/catalog.py)."""
    comment = warehouse.query("SELECT comment FROM system.tables WHERE database = currentDatabase() "
                              "AND name = {t:String}", {"t": MART}).scalar()
    return classes_of(str(comment or ""))


def role_columns(warehouse: Warehouse, role: str) -> list[str]:
    """The mart's columns `role` may read (all of them for admin and writer); refused when there are none."""
    if role not in KNOWN_ROLES:
        raise ValueError(f"unknown role {role!r}: one of {', '.join(sorted(KNOWN_ROLES))}")
    if role in UNRESTRICTED_ROLES:
        return [name for name, _ in mart_schema(warehouse)]
    classes = mart_classes(warehouse)
    if not reads_part(ROLES[role], MART, classes):
        raise ExportRefused(f"role {role} may not read {MART} ({class_label(classes)})")
    names = [name for name, _ in mart_schema(warehouse)]
    readable = readable_columns(ROLES[role], MART, classes, names)
    return [name for name in names if name in readable]


def read_mart(warehouse: Warehouse, columns: list[str] | None = None) -> tuple[list[tuple[str, str]],
                                                                              list[dict[str, Any]]]:
    """The mart (or some of its columns), typed, ordered by its primary key."""
    schema = [(name, ch_type) for name, ch_type in mart_schema(warehouse) if columns is None or name in columns]
    names = ", ".join(f"`{name}`" for name, _ in schema)  # names the engine described, never user input
    result = warehouse.query(f"SELECT {names} FROM {MART} ORDER BY snapshot_month, dim_subscription_id, "
                             "installation_id")
    types = dict(schema)
    rows = [{name: _typed(value, types[name]) for name, value in zip(result.columns, row, strict=True)}
            for row in result.rows]
    return schema, rows


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds")
    if isinstance(value, date):
        return value.isoformat()
    return repr(value) if isinstance(value, float) else str(value)


def stamp_path(out: Path) -> Path:
    return out.with_name(out.name + ".class.json")


def export(warehouse: Warehouse, fmt: str, out: Path, role: str = "admin") -> int:
    """Write the columns of the mart `role` may read to `out` as csv (header line; NULL = empty field; ISO dates)
    or parquet; returns rows. The data class of what was written goes into `<out>.class.json` (and the Parquet
    file's metadata). Raises ExportRefused when the role may read none of the mart; the warehouse itself refuses
    (ACCESS_DENIED) when the connected user does not have the role's grants."""
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"unknown export format {fmt!r}: csv or parquet")
    columns = role_columns(warehouse, role)
    schema, rows = read_mart(warehouse, columns)
    label = class_label(columns_classes(MART, mart_classes(warehouse), columns))
    stamp = {"data_class": label, "source": MART, "role": role, "rows": len(rows), "columns": columns}
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        with out.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow([name for name, _ in schema])
            writer.writerows([_csv_value(row[name]) for name, _ in schema] for row in rows)
    elif fmt == "parquet":
        arrow_schema = pa.schema([arrow_field(name, ch_type) for name, ch_type in schema],
                                 metadata={f"denomas.{k}": str(v) for k, v in stamp.items() if k != "columns"})
        pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema), out)
    stamp_path(out).write_bytes(orjson.dumps(stamp, option=orjson.OPT_INDENT_2))
    return len(rows)
