"""Print any mart or report of the warehouse as a table, filtered by scope and month.

The marts themselves are SQL views (clickhouse/045-069: last ping of the month, monthly metric values, xMAU and
estimated xMAU, use-case reports). This module only reads them: it learns each object's columns from
system.columns, so `denomas-usage show` works for every engineer's marts, not just a fixed list.

  --scope VALUE         rows where any scope column (installation, account, stage, xMAU type, ...) equals VALUE
  --scope COLUMN=VALUE  rows where that column equals VALUE
  --from / --to YYYY-MM months (inclusive) of the object's month column

Values are bound parameters; column and table names are checked against system.columns and system.tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from streams.tables import format_table
from streams.warehouse import DATABASE, QueryResult, Warehouse

# Objects `show` prints: the dimensional model and everything built on it (raw payloads are not for reading).
SHOWABLE_PREFIXES = ("mart_", "rpt_", "fct_", "dim_", "prep_", "agg_")
# The month column of an object: the first of these it has, else its first Date column named like a month.
MONTH_COLUMNS = ("ping_created_date_month", "month", "reporting_month", "snapshot_month", "report_month")
# Columns a bare --scope VALUE is matched against, when the object has them.
SCOPE_COLUMNS = (
    "installation_id", "instance_uuid", "hostname", "dim_crm_account_id", "latest_subscription_id",
    "dim_subscription_id", "namespace_id", "metrics_path", "product_stage", "product_group", "xmau_type",
    "delivery", "installation_type", "ping_edition", "product_tier", "estimation_grain",
)
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


class ShowError(ValueError):
    """A request `show` cannot answer; the message says why and what would work."""


@dataclass(frozen=True)
class ObjectInfo:
    name: str
    engine: str
    comment: str
    columns: list[tuple[str, str]]  # (name, ClickHouse type)

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]

    @property
    def month_column(self) -> str | None:
        names = self.column_names
        for name in MONTH_COLUMNS:
            if name in names:
                return name
        return next((n for n, t in self.columns if "month" in n and t.replace("Nullable(", "").startswith("Date")),
                    None)


def parse_month(text: str) -> date:
    """'2026-07' -> 2026-07-01; anything else is a ShowError."""
    match = _MONTH.match(text.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ShowError(f"months are YYYY-MM, got {text!r}")
    return date(int(match.group(1)), int(match.group(2)), 1)


def showable_objects(warehouse: Warehouse) -> list[str]:
    rows = warehouse.query(
        "SELECT name FROM system.tables WHERE database = {db:String} AND NOT startsWith(name, '.inner') "
        "AND engine != 'MaterializedView' ORDER BY name", {"db": DATABASE}).rows
    return [name for (name,) in rows if name.startswith(SHOWABLE_PREFIXES)]


def object_info(warehouse: Warehouse, name: str) -> ObjectInfo:
    known = showable_objects(warehouse)
    if name not in known:
        marts = ", ".join(n for n in known if n.startswith(("mart_", "rpt_")))
        raise ShowError(f"no mart or report named {name!r}; marts and reports: {marts}")
    engine, comment = warehouse.query(
        "SELECT engine, comment FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        {"db": DATABASE, "t": name}).rows[0]
    columns = warehouse.query(
        "SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String} ORDER BY position",
        {"db": DATABASE, "t": name}).rows
    return ObjectInfo(name, engine, comment, [(c, t) for c, t in columns])


def _scope_filter(info: ObjectInfo, scope: str) -> tuple[str, str]:
    """SQL condition and the bound value for --scope."""
    column, sep, value = scope.partition("=")
    if sep and column.strip() in info.column_names:
        return f"toString({column.strip()}) = {{scope:String}}", value.strip()
    if sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", column.strip()):
        raise ShowError(f"{info.name} has no column {column.strip()!r}; columns: {', '.join(info.column_names)}")
    candidates = [c for c in SCOPE_COLUMNS if c in info.column_names]
    if not candidates:
        raise ShowError(f"{info.name} has no scope column; use --scope COLUMN=VALUE with one of "
                        f"{', '.join(info.column_names)}")
    return "(" + " OR ".join(f"toString({c}) = {{scope:String}}" for c in candidates) + ")", scope.strip()


def show_query(info: ObjectInfo, scope: str | None = None, month_from: date | None = None,
               month_to: date | None = None, limit: int = 200) -> tuple[str, dict[str, object]]:
    """The SELECT (and its parameters) that prints one object. Names come from system tables, values are bound."""
    if any("AggregateFunction" in t for _, t in info.columns):
        raise ShowError(f"{info.name} holds aggregate states; query it with the -Merge combinators instead")
    conditions: list[str] = []
    params: dict[str, object] = {"limit": limit}
    month = info.month_column
    if (month_from or month_to) and month is None:
        raise ShowError(f"{info.name} has no month column; drop --from/--to")
    if month_from:
        conditions.append(f"{month} >= {{month_from:Date}}")
        params["month_from"] = month_from
    if month_to:
        conditions.append(f"{month} <= {{month_to:Date}}")
        params["month_to"] = month_to
    if scope:
        condition, params["scope"] = _scope_filter(info, scope)
        conditions.append(condition)
    final = " FINAL" if "ReplacingMergeTree" in info.engine else ""
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    plain = [n for n, t in info.columns if not t.startswith(("Array", "Map", "Tuple"))]
    order = [month] if month else []
    order += [n for n in plain if n != month][: 3 - len(order)]
    order_by = f" ORDER BY {', '.join(order)}" if order else ""
    return f"SELECT * FROM {info.name}{final}{where}{order_by} LIMIT {{limit:UInt64}}", params


def show(warehouse: Warehouse, name: str, scope: str | None = None, month_from: date | None = None,
         month_to: date | None = None, limit: int = 200) -> QueryResult:
    sql, params = show_query(object_info(warehouse, name), scope, month_from, month_to, limit)
    return warehouse.query(sql, params)


def show_text(warehouse: Warehouse, name: str, scope: str | None = None, month_from: date | None = None,
              month_to: date | None = None, limit: int = 200) -> str:
    result = show(warehouse, name, scope, month_from, month_to, limit)
    more = " (limit reached: narrow with --scope/--from/--to or raise --limit)" if len(result.rows) >= limit else ""
    return format_table(result.columns, result.rows, title=name) + f"\n({len(result.rows)} rows{more})"


# ---------------------------------------------------------------------------------------------------
# What the demo prints


def xmau_table(warehouse: Warehouse) -> str:
    """UMAU and SMAU per month, recorded next to the estimate, Self-Managed and SaaS."""
    result = warehouse.query("""
        SELECT formatDateTime(month, '%Y-%m') AS month, delivery, xmau_type, product_stage, metrics_path,
               recorded_users, estimated_users, total_users_with_estimate
        FROM rpt_xmau_monthly
        WHERE xmau_type IN ('UMAU', 'SMAU')
        ORDER BY month, delivery, xmau_type DESC, product_stage, metrics_path""")
    rows = [(m, d, t, s, recorded, estimated, total) for m, d, t, s, _, recorded, estimated, total in result.rows]
    return format_table(["month", "delivery", "xMAU", "stage", "recorded", "estimated", "total"], rows,
                        title="xMAU by month (UMAU, SMAU per stage): recorded + estimated = total")


def version_lag_table(warehouse: Warehouse, limit: int = 15) -> str:
    """Installations furthest behind the newest release in the latest month."""
    result = warehouse.query("""
        SELECT hostname, installation_type, ping_edition, product_tier, version, latest_major_minor_version,
               minors_behind
        FROM rpt_version_lag_monthly
        WHERE ping_created_date_month = (SELECT max(ping_created_date_month) FROM rpt_version_lag_monthly)
          AND is_far_behind = 1
        ORDER BY minors_behind DESC, hostname
        LIMIT {limit:UInt64}""", {"limit": limit})
    summary = warehouse.query("""
        SELECT formatDateTime(ping_created_date_month, '%Y-%m'), count(), countIf(is_far_behind = 1)
        FROM rpt_version_lag_monthly
        WHERE ping_created_date_month = (SELECT max(ping_created_date_month) FROM rpt_version_lag_monthly)
        GROUP BY ping_created_date_month""").rows
    month, installations, behind = summary[0] if summary else ("no pings yet", 0, 0)
    title = (f"Version lag, {month}: {behind} of {installations} installations 3 or more minor releases behind "
             f"(showing up to {limit})")
    return format_table(["hostname", "type", "edition", "tier", "version", "latest", "minors behind"],
                        result.rows, title=title)


def demo_tables(warehouse: Warehouse) -> str:
    """The monthly xMAU table and the version-lag report, as printable text."""
    return xmau_table(warehouse) + "\n\n" + version_lag_table(warehouse)
