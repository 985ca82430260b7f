"""What a dashboard page is made of: a Page of Panels, each one SQL query (bound parameters only) with the Chart
the browser draws from its rows; and the filters a person sets, checked and passed to every query as bound parameters.

Filters travel with neutral values when unset (every month, every delivery, every account), so each query has one
fixed text whatever a person types. The pages themselves are in streams/dashboard/pages.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from streams.marts import ShowError, parse_month

DELIVERIES = ("Self-Managed", "SaaS")
FIRST_MONTH, LAST_MONTH = date(1970, 1, 1), date(2149, 1, 1)  # the Date type ends in 2149
MONTHS = "{month_from:Date} AND {month_to:Date}"
DELIVERY = "({delivery:String} = '' OR delivery = {delivery:String})"


def search(*columns: str) -> str:
    """Rows where the account search text is empty or found (case-insensitive) in any of `columns`."""
    found = " OR ".join(f"positionCaseInsensitive(toString({c}), {{search:String}}) > 0" for c in columns)
    return f"({{search:String}} = '' OR {found})"


@dataclass(frozen=True)
class Chart:
    """How the browser draws a panel's rows: x column, y columns, one trace per value of `series` (if any)."""

    kind: str  # line | bar (side by side) | stack (stacked bars)
    x: str
    ys: tuple[str, ...]
    series: str | None = None
    markers: str | None = None  # key of a panel whose rows (x, y, label columns) are marked on this chart
    marker_columns: tuple[str, str, str] = ("x", "y", "label")


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    sql: str
    chart: Chart | None = None
    entity_links: bool = False  # rows name a scope (scope_type, scope_id): link each to its page


@dataclass(frozen=True)
class Page:
    key: str
    title: str
    description: str
    tables: tuple[str, ...]  # what the page reads: its data class is theirs
    panels: tuple[Panel, ...]
    filters: tuple[str, ...] = ("months",)  # months, delivery, search
    requires: tuple[str, ...] = field(default=())  # query parameters a page needs (the entity page: type, id)


@dataclass(frozen=True)
class Filters:
    month_from: date = FIRST_MONTH
    month_to: date = LAST_MONTH
    delivery: str = ""
    search: str = ""

    def params(self) -> dict[str, Any]:
        return {"month_from": self.month_from, "month_to": self.month_to, "delivery": self.delivery,
                "search": self.search}


class FilterError(ValueError):
    """A filter value the dashboard cannot use; the message says what would work (HTTP 400)."""


def parse_filters(query: dict[str, str]) -> Filters:
    """?from=YYYY-MM&to=YYYY-MM&delivery=SaaS&q=text -> Filters; a bad value is a FilterError."""
    try:
        month_from = parse_month(query["from"]) if query.get("from") else FIRST_MONTH
        month_to = parse_month(query["to"]) if query.get("to") else LAST_MONTH
    except ShowError as exc:
        raise FilterError(str(exc)) from None
    if month_from > month_to:
        raise FilterError(f"the month range is empty: from {query['from']} is after to {query['to']}")
    delivery = query.get("delivery", "")
    if delivery not in ("", *DELIVERIES):
        raise FilterError(f"delivery is one of {', '.join(DELIVERIES)} (or empty for both), got {delivery!r}")
    text = query.get("q", "").strip()
    if len(text) > 200:
        raise FilterError("the search text is longer than 200 characters")
    return Filters(month_from, month_to, delivery, text)
