"""The analysts' catalog (docs/catalog.md), generated from the definitions themselves.

Every table and view of the warehouse is described by what ClickHouse knows about it: the table COMMENT
(data class first, then "Grain: ...", then what it holds), the column types and column COMMENTs
(system.tables, system.columns). Every metric comes from the metric dictionaries loaded into the warehouse
(dim_ping_metric for Service Ping, dim_event_metric for event metrics when present). Nothing is written by
hand, so the catalog cannot drift from the SQL: change a COMMENT in a migration and regenerate.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from streams.config import MIGRATIONS_DIR
from streams.warehouse import Warehouse, load_migrations

LAYERS = (
    ("raw_", "Raw: what arrived"),
    ("prep_", "Prep: intermediate joins"),
    ("dim_", "Dimensions"),
    ("fct_", "Facts"),
    ("agg_", "Aggregates (daily states)"),
    ("mart_", "Marts"),
    ("rpt_", "Reports"),
)
_CLASS = re.compile(r"^\s*(orange|yellow|public|green|red)(\s*/\s*(orange|yellow|public|green|red))*\b", re.I)
_CLASS_WORD = re.compile(r"[A-Za-z]+")
_GRAIN = re.compile(r"Grain:\s*(.+?\.)(\s|$)")
_TARGET = re.compile(r"\bTO\s+(?:`?\w+`?\.)?`?(\w+)`?")


@dataclass(frozen=True)
class CatalogObject:
    name: str
    engine: str
    comment: str
    columns: list[tuple[str, str, str]]  # (name, type, comment)

    @property
    def kind(self) -> str:
        if self.engine == "View":
            return "view"
        if self.engine == "MaterializedView":
            return "materialized view"
        return f"table ({self.engine})"

    @property
    def data_class(self) -> str:
        match = _CLASS.match(self.comment)
        return match.group(0).strip().title().replace(" ", "") if match else "unclassified"

    @property
    def grain(self) -> str:
        match = _GRAIN.search(self.comment)
        return match.group(1).rstrip(".") if match else ""

    @property
    def definition(self) -> str:
        """The comment without its class and grain: what the object holds."""
        text = _CLASS.sub("", self.comment, count=1).lstrip(". ")
        return _GRAIN.sub("", text, count=1).strip()


def classes_of(comment: str) -> frozenset[str]:
    """The data classes a COMMENT starts with ('Orange/Yellow. Grain: ...' -> Orange and Yellow). Empty when the
    object is unclassified: only unrestricted users read it."""
    match = _CLASS.match(comment)
    return frozenset(word.title() for word in _CLASS_WORD.findall(match.group(0))) if match else frozenset()


# Columns that carry the Yellow part of an Orange/Yellow object whose other columns a role without Yellow may read
# (customer success reads its mart without seats and subscription terms). Views have no column comments: this is
# the one definition of those columns' class; every other column has its object's class.
YELLOW_COLUMNS: dict[str, frozenset[str]] = {
    "mart_product_usage_paid_user_metrics_monthly": frozenset({
        "subscription_status", "term_start_date", "term_end_date", "license_user_count", "license_user_count_source",
        "billable_user_count", "max_historical_user_count", "license_utilization", "seat_link_billable_user_count",
    }),
}
YELLOW_COLUMNS["mart_product_usage_paid_user_metrics_monthly_stored"] = (  # its stored rows (clickhouse/150)
    YELLOW_COLUMNS["mart_product_usage_paid_user_metrics_monthly"])

def columns_classes(name: str, classes: frozenset[str], columns: Iterable[str]) -> frozenset[str]:
    """The classes of some columns of an object: its own, without Yellow when none of them is a Yellow column."""
    yellow = YELLOW_COLUMNS.get(name)
    if yellow is not None and not yellow & set(columns):
        return classes - {"Yellow"}
    return classes


def class_label(classes: frozenset[str]) -> str:
    return "/".join(sorted(classes, key=["Orange", "Yellow", "Public"].index)) if classes else "unclassified"


_CREATE = re.compile(r"^CREATE\s+(?:OR\s+REPLACE\s+)?(TABLE|VIEW|MATERIALIZED\s+VIEW|DICTIONARY)\s+"
                     r"(?:IF\s+NOT\s+EXISTS\s+)?`?(\w+)`?", re.I)
_DROP = re.compile(r"^DROP\s+(?:TABLE|VIEW|DICTIONARY)\s+(?:IF\s+EXISTS\s+)?`?(\w+)`?", re.I)
_MODIFY_COMMENT = re.compile(r"^ALTER\s+TABLE\s+`?(\w+)`?\s+MODIFY\s+COMMENT\s+'((?:[^'\\]|''|\\.)*)'\s*$", re.I | re.S)
_LAST_COMMENT = re.compile(r"\bCOMMENT\s+'((?:[^'\\]|''|\\.)*)'\s*$", re.S)
# a table shaped like a view (CREATE TABLE ... COMMENT '...' EMPTY AS SELECT ...): the comment precedes the query
_COMMENT_BEFORE_QUERY = re.compile(r"\bCOMMENT\s+'((?:[^'\\]|''|\\.)*)'\s+EMPTY\s+AS\s+SELECT\b", re.S)


def _unquote(text: str) -> str:
    return text.replace("''", "'").replace("\\'", "'")


def migration_comments(directory: Path = MIGRATIONS_DIR) -> dict[str, str]:
    """Each object's COMMENT as the migrations leave it, read from the SQL files without a warehouse (for the
    server's grants, which are written before any server exists). Materialized views hold no data: left out."""
    comments: dict[str, str] = {}
    for migration in load_migrations(directory):
        for statement in migration.statements():
            if created := _CREATE.match(statement):
                comments.pop(created.group(2), None)
                last = _LAST_COMMENT.search(statement) or _COMMENT_BEFORE_QUERY.search(statement)
                if not created.group(1).upper().startswith("MATERIALIZED"):
                    comments[created.group(2)] = _unquote(last.group(1)) if last else ""
            elif dropped := _DROP.match(statement):
                comments.pop(dropped.group(1), None)
            elif modified := _MODIFY_COMMENT.match(statement):
                comments[modified.group(1)] = _unquote(modified.group(2))
    return comments


def _materialized_view_comment(create_query: str, comments: dict[str, str]) -> str:
    """A materialized view holds no data: it takes the class and grain of the table it writes to."""
    match = _TARGET.search(create_query)
    if not match or match.group(1) not in comments:
        return ""
    return f"{comments[match.group(1)]} Fills {match.group(1)} as rows arrive."


def catalog_objects(warehouse: Warehouse) -> list[CatalogObject]:
    found = warehouse.query(
        "SELECT name, engine, comment, create_table_query FROM system.tables WHERE database = currentDatabase() "
        "AND NOT startsWith(name, '.inner') ORDER BY name").rows
    comments = {name: comment for name, _, comment, _ in found}
    tables = [(name, engine, _materialized_view_comment(query, comments) if engine == "MaterializedView" and not comment
               else comment) for name, engine, comment, query in found]
    columns: dict[str, list[tuple[str, str, str]]] = {}
    for table, name, ch_type, comment in warehouse.query(
            "SELECT table, name, type, comment FROM system.columns WHERE database = currentDatabase() "
            "ORDER BY table, position").rows:
        columns.setdefault(table, []).append((name, ch_type, comment))
    return [CatalogObject(name, engine, comment, columns.get(name, [])) for name, engine, comment in tables]


def _layer(name: str) -> str:
    return next((title for prefix, title in LAYERS if name.startswith(prefix)), "Other")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _objects_markdown(objects: list[CatalogObject]) -> list[str]:
    lines = ["## Tables and views", "", "| object | kind | class | grain |", "|---|---|---|---|"]
    ordered = sorted(objects, key=lambda o: ([t for _, t in LAYERS].index(_layer(o.name))
                                             if _layer(o.name) != "Other" else len(LAYERS), o.name))
    lines += [f"| [`{o.name}`](#{o.name}) | {o.kind} | {o.data_class} | {_cell(o.grain)} |" for o in ordered]
    current = ""
    for obj in ordered:
        if _layer(obj.name) != current:
            current = _layer(obj.name)
            lines += ["", f"### {current}"]
        lines += ["", f"#### {obj.name}", "", f"- kind: {obj.kind}", f"- class: {obj.data_class}"]
        if obj.grain:
            lines.append(f"- grain: {_cell(obj.grain)}")
        if obj.definition:
            lines.append(f"- definition: {_cell(obj.definition)}")
        lines += ["", "| column | type | description |", "|---|---|---|"]
        lines += [f"| `{name}` | `{ch_type}` | {_cell(comment)} |" for name, ch_type, comment in obj.columns]
    return lines


def _flags(row: dict) -> str:
    return ", ".join(name for name in ("umau", "smau", "gmau", "paid_gmau") if row.get(f"is_{name}")) or ""


def _metrics_markdown(warehouse: Warehouse, table: str, path_column: str, title: str) -> list[str]:
    result = warehouse.query(
        f"SELECT * FROM {table} FINAL ORDER BY {path_column}")  # names are constants of this module
    rows = result.dicts()
    lines = ["", f"## {title}", "", f"{len(rows)} metrics, from `{table}`. Class: public (definitions only).", "",
             "| metric | time frame | section | stage | group | xMAU | status | description |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| `{row[path_column]}` | {row.get('time_frame', '')} | {row.get('product_section', '')} | "
            f"{row.get('product_stage', '')} | {row.get('product_group', '')} | {_flags(row)} | "
            f"{row.get('metric_status', '')} | {_cell(str(row.get('description', '')))} |")
    return lines


def catalog_markdown(warehouse: Warehouse) -> str:
    objects = catalog_objects(warehouse)
    names = {o.name for o in objects}
    lines = [
        "# Data catalog",
        "",
        "Generated by `denomas-usage catalog` from the warehouse's own definitions: table and column COMMENTs",
        "(system.tables, system.columns) and the metric dictionaries (dim_ping_metric, dim_event_metric). Do not edit:",
        "change the COMMENT in the migration (or the metric's YAML) and regenerate.",
        "",
        "Classes: **Orange** customer/personal row-level data (hostnames, user ids, accounts, IP-derived location),",
        "**Yellow** financial data and aggregates of it (subscriptions, seats), **Public** everything else.",
        "Read ReplacingMergeTree tables with `FINAL`; views already do.",
        "",
    ]
    lines += _objects_markdown(objects)
    if "dim_ping_metric" in names:
        lines += _metrics_markdown(warehouse, "dim_ping_metric", "metrics_path", "Service Ping metrics")
    if "dim_event_metric" in names:
        lines += _metrics_markdown(warehouse, "dim_event_metric", "key_path", "Event metrics")
    return "\n".join(lines) + "\n"


def write_catalog(warehouse: Warehouse, path: Path) -> int:
    """Write the catalog; return how many objects it describes."""
    text = catalog_markdown(warehouse)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return len(catalog_objects(warehouse))
