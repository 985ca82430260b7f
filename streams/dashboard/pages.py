"""What each dashboard page shows: its panels, each one SQL query over the marts and reports (bound parameters
only), the chart drawn from the query's rows, and the tables it reads (the page's data class comes from their
COMMENTs, through streams/catalog.py). The heavy reports are read from their stored rows (`<view>_stored`, kept
current by the worker: streams/warehouse/reports.py), so a page reads a small table whatever the raw volume.

Filters travel as bound parameters with neutral values when unset (every month, every delivery, every account),
so each query has one fixed text whatever a person types.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from streams.marts import ShowError, parse_month
from streams.warehouse.reports import STORED

DELIVERIES = ("Self-Managed", "SaaS")
SCOPE_TYPES = ("instance", "account", "namespace")
FIRST_MONTH, LAST_MONTH = date(1970, 1, 1), date(2149, 1, 1)  # the Date type ends in 2149
MONTHS = "{month_from:Date} AND {month_to:Date}"
DELIVERY = "({delivery:String} = '' OR delivery = {delivery:String})"


def over_views(sql: str) -> str:
    """A page query asked of the views its stored reports hold the rows of (streams/warehouse/reports.py): the same
    answer while they are current (tests compare the two)."""
    for table, report in STORED.items():
        sql = re.sub(rf"\b{table}\b", report.view, sql)
    return sql


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


# ---------------------------------------------------------------------------------------------------
# The pages

XMAU = Page(
    "xmau", "xMAU by month and stage",
    "Unique monthly active users (UMAU) and stage monthly active users (SMAU): recorded users from the "
    "installations' last ping of the month (Self-Managed) or from events (SaaS), the estimate for installations "
    "that do not report, and their total.",
    ("rpt_xmau_monthly_stored",),
    (
        Panel("umau", "UMAU per month: recorded and estimated", f"""
            SELECT formatDateTime(month, '%Y-%m') AS report_month, delivery,
                   sum(recorded_users) AS recorded, sum(estimated_users) AS estimated,
                   sum(total_users_with_estimate) AS total
            FROM rpt_xmau_monthly_stored
            WHERE xmau_type = 'UMAU' AND month BETWEEN {MONTHS} AND {DELIVERY}
            GROUP BY report_month, delivery ORDER BY report_month, delivery""",
              Chart("stack", "report_month", ("recorded", "estimated"), series="delivery")),
        Panel("smau", "SMAU per stage and month", f"""
            SELECT formatDateTime(month, '%Y-%m') AS report_month, delivery, product_stage AS stage,
                   concat(product_stage, ' (', delivery, ')') AS series,
                   sum(recorded_users) AS recorded, sum(estimated_users) AS estimated,
                   sum(total_users_with_estimate) AS total
            FROM rpt_xmau_monthly_stored
            WHERE xmau_type = 'SMAU' AND month BETWEEN {MONTHS} AND {DELIVERY}
            GROUP BY report_month, delivery, product_stage ORDER BY report_month, delivery, stage""",
              Chart("line", "report_month", ("total",), series="series")),
        Panel("all", "Every xMAU metric", f"""
            SELECT formatDateTime(month, '%Y-%m') AS report_month, delivery, xmau_type, product_stage AS stage,
                   metrics_path, recorded_users AS recorded, estimated_users AS estimated,
                   total_users_with_estimate AS total, reporting_installations, is_complete_month
            FROM rpt_xmau_monthly_stored
            WHERE month BETWEEN {MONTHS} AND {DELIVERY}
            ORDER BY report_month, delivery, xmau_type, stage, metrics_path"""),
    ),
    filters=("months", "delivery"),
)

VERSION_LAG = Page(
    "version-lag", "Version lag",
    "How many major.minor releases newer than an installation's version were available by month end; 3 or more "
    "is outside the security-fix window. Self-Managed installations (their last ping of the month).",
    ("rpt_version_lag_monthly_stored", "rpt_version_lag_account_monthly_stored"),
    (
        Panel("trend", "Installations 3 or more minors behind, per month", f"""
            SELECT formatDateTime(ping_created_date_month, '%Y-%m') AS month, count() AS installations,
                   countIf(is_far_behind = 1) AS far_behind, round(avg(minors_behind), 2) AS avg_minors_behind
            FROM rpt_version_lag_monthly_stored
            WHERE ping_created_date_month BETWEEN {MONTHS}
            GROUP BY ping_created_date_month ORDER BY ping_created_date_month""",
              Chart("line", "month", ("installations", "far_behind"))),
        Panel("accounts", "Accounts", f"""
            SELECT formatDateTime(ping_created_date_month, '%Y-%m') AS month, dim_crm_account_id, account_name,
                   installations, far_behind_installations, max_minors_behind, oldest_version
            FROM rpt_version_lag_account_monthly_stored
            WHERE ping_created_date_month BETWEEN {MONTHS} AND {search('account_name', 'dim_crm_account_id')}
            ORDER BY month DESC, max_minors_behind DESC, dim_crm_account_id LIMIT 500"""),
        Panel("installations", "Installations", f"""
            SELECT formatDateTime(ping_created_date_month, '%Y-%m') AS month, installation_id, hostname,
                   dim_crm_account_id, installation_type, ping_edition, product_tier, version,
                   latest_major_minor_version AS latest, minors_behind, is_far_behind
            FROM rpt_version_lag_monthly_stored
            WHERE ping_created_date_month BETWEEN {MONTHS}
              AND {search('hostname', 'dim_crm_account_id', 'installation_id')}
            ORDER BY month DESC, minors_behind DESC, installation_id LIMIT 500"""),
    ),
    filters=("months", "search"),
)

INSTALLATION_TYPES = Page(
    "installation-types", "Installation types",
    "How Self-Managed installations are deployed (their last ping of the month), by edition.",
    ("rpt_installation_types_monthly_stored",),
    (
        Panel("trend", "Installations per type and month", f"""
            SELECT formatDateTime(ping_created_date_month, '%Y-%m') AS month, installation_type,
                   sum(installations) AS installations
            FROM rpt_installation_types_monthly_stored
            WHERE ping_created_date_month BETWEEN {MONTHS}
            GROUP BY ping_created_date_month, installation_type ORDER BY month, installation_type""",
              Chart("stack", "month", ("installations",), series="installation_type")),
        Panel("types", "Types and editions", f"""
            SELECT formatDateTime(ping_created_date_month, '%Y-%m') AS month, installation_type, ping_edition,
                   installations, paid_installations, active_users, round(share_of_installations, 4) AS share
            FROM rpt_installation_types_monthly_stored
            WHERE ping_created_date_month BETWEEN {MONTHS}
            ORDER BY month, installation_type, ping_edition"""),
    ),
)

TOPOLOGY = Page(
    "topology", "Runners and topology",
    "Nodes, CPUs and CI runners of Self-Managed installations and whether they scaled up or down since their "
    "previous reported month.",
    ("rpt_topology_monthly_stored",),
    (
        Panel("trend", "Nodes, CPUs and active runners per month", f"""
            SELECT formatDateTime(ping_created_date_month, '%Y-%m') AS month, count() AS installations,
                   sum(node_count) AS nodes, sum(total_cpus) AS cpus, sum(ifNull(active_runners, 0)) AS active_runners,
                   countIf(scaling = 'up') AS scaled_up, countIf(scaling = 'down') AS scaled_down
            FROM rpt_topology_monthly_stored
            WHERE ping_created_date_month BETWEEN {MONTHS}
            GROUP BY ping_created_date_month ORDER BY ping_created_date_month""",
              Chart("line", "month", ("nodes", "cpus", "active_runners", "scaled_up", "scaled_down"))),
        Panel("installations", "Installations", f"""
            SELECT formatDateTime(ping_created_date_month, '%Y-%m') AS month, installation_id, dim_crm_account_id,
                   installation_type, node_count, total_cpus, round(total_memory_bytes / 1073741824, 1) AS memory_gib,
                   services, processes, ci_runners, active_runners, active_runners_change, scaling
            FROM rpt_topology_monthly_stored
            WHERE ping_created_date_month BETWEEN {MONTHS} AND {search('dim_crm_account_id', 'installation_id')}
            ORDER BY month DESC, installation_id LIMIT 500"""),
    ),
    filters=("months", "search"),
)

STAGE_ADOPTION = Page(
    "stage-adoption", "Stage adoption",
    "A stage is adopted in a month when any 28-day metric of the stage is above 0 in an installation's last "
    "ping of the month.",
    ("rpt_stage_adoption_monthly_stored", "rpt_stage_adoption_account_monthly_stored"),
    (
        Panel("trend", "Installations adopting each stage, per month", f"""
            SELECT formatDateTime(ping_created_date_month, '%Y-%m') AS month, product_stage AS stage,
                   uniqExact(installation_id) AS installations
            FROM rpt_stage_adoption_monthly_stored
            WHERE ping_created_date_month BETWEEN {MONTHS}
            GROUP BY ping_created_date_month, product_stage ORDER BY month, stage""",
              Chart("line", "month", ("installations",), series="stage")),
        Panel("accounts", "Accounts", f"""
            SELECT formatDateTime(ping_created_date_month, '%Y-%m') AS month, dim_crm_account_id, account_name,
                   product_stage AS stage, adopting_installations, account_installations
            FROM rpt_stage_adoption_account_monthly_stored
            WHERE ping_created_date_month BETWEEN {MONTHS} AND {search('account_name', 'dim_crm_account_id')}
            ORDER BY month DESC, dim_crm_account_id, stage LIMIT 1000"""),
    ),
    filters=("months", "search"),
)

CUSTOMER_SUCCESS = Page(
    "customer-success", "Customer success",
    "The customer-success mart: per subscription and installation and month, licensed seats, billable and active "
    "users and license utilization (billable / licensed).",
    ("mart_product_usage_paid_user_metrics_monthly_stored",),
    (
        Panel("trend", "Seats and users per month", f"""
            SELECT formatDateTime(snapshot_month, '%Y-%m') AS month, count() AS rows,
                   sum(ifNull(license_user_count, 0)) AS licensed, sum(ifNull(billable_user_count, 0)) AS billable,
                   sum(ifNull(active_user_count, 0)) AS active, round(avg(license_utilization), 4) AS avg_utilization
            FROM mart_product_usage_paid_user_metrics_monthly_stored
            WHERE snapshot_month BETWEEN {MONTHS} AND {search('account_name', 'dim_crm_account_id', 'hostname')}
            GROUP BY snapshot_month ORDER BY snapshot_month""",
              Chart("bar", "month", ("licensed", "billable", "active"))),
        Panel("mart", "Subscriptions and installations", f"""
            SELECT formatDateTime(snapshot_month, '%Y-%m') AS month, dim_crm_account_id, account_name,
                   dim_subscription_id, subscription_product_tier AS tier, hostname, cleaned_version AS version,
                   license_user_count, billable_user_count, active_user_count, max_historical_user_count,
                   round(license_utilization, 4) AS utilization, umau_28_days_user
            FROM mart_product_usage_paid_user_metrics_monthly_stored
            WHERE snapshot_month BETWEEN {MONTHS} AND {search('account_name', 'dim_crm_account_id', 'hostname')}
            ORDER BY month DESC, dim_crm_account_id, dim_subscription_id, hostname, installation_id LIMIT 1000"""),
    ),
    filters=("months", "search"),
)

# The newest result of each check and scope: its current state (check_results keeps the history).
_NEWEST = ("(check_name, scope, checked_at) IN "
           "(SELECT check_name, scope, max(checked_at) FROM check_results GROUP BY check_name, scope)")

PIPELINE = Page(
    "pipeline", "Pipeline health and trusted data",
    "The newest result of every trusted-data check (`denomas-usage check`, the worker's schedule): failures "
    "first; consumer lag (completeness) and freshness; records the pipeline rejected, by reason.",
    ("check_results", "raw_dead_letter"),
    (
        Panel("failed", "Failing checks (newest result)", f"""
            SELECT check_name, kind, table_name, scope, severity, status, observed, threshold, message,
                   toString(checked_at) AS checked_at
            FROM check_results
            WHERE {_NEWEST}
              AND status != 'pass'
            ORDER BY severity, check_name, scope"""),
        Panel("runs", "Check results per run", """
            SELECT toString(min(checked_at)) AS run_at, run_id, countIf(status = 'pass') AS pass,
                   countIf(status = 'warn') AS warn, countIf(status IN ('fail', 'error')) AS fail
            FROM check_results GROUP BY run_id ORDER BY run_at""",
              Chart("stack", "run_at", ("pass", "warn", "fail"))),
        Panel("lag", "Consumer lag and freshness (newest results)", f"""
            SELECT check_name, kind, table_name, scope, status, observed, threshold, toString(checked_at) AS checked_at
            FROM check_results
            WHERE kind IN ('completeness', 'freshness') AND {_NEWEST}
            ORDER BY kind, check_name, scope"""),
        # Snowplow bad rows carry their reason as a self-describing JSON (with timestamps and the payload): the
        # failure messages are the reason.
        Panel("dead_letters", "Dead letters by reason", """
            SELECT source, stage,
                   substring(if(isValidJSON(reason) AND JSONHas(reason, 'data', 'failure', 'messages'),
                                JSONExtractRaw(reason, 'data', 'failure', 'messages'), reason), 1, 300) AS failure,
                   count() AS records, toString(max(received_at)) AS newest
            FROM raw_dead_letter FINAL
            GROUP BY source, stage, failure ORDER BY records DESC, source, stage, failure LIMIT 200""",
              Chart("stack", "source", ("records",), series="stage")),
        Panel("checks", "Every check (newest result)", f"""
            SELECT check_name, kind, table_name, scope, severity, status, observed, threshold,
                   toString(checked_at) AS checked_at
            FROM check_results
            WHERE {_NEWEST}
            ORDER BY check_name, scope"""),
    ),
    filters=(),
)

ENTITY_SEARCH = Panel("matches", "Accounts, instances and namespaces", f"""
    SELECT scope_type, scope_id, name FROM (
        SELECT 'account' AS scope_type, dim_crm_account_id AS scope_id, account_name AS name
        FROM dim_crm_account FINAL WHERE is_deleted = 0
        UNION ALL
        SELECT DISTINCT 'instance', installation_id, hostname FROM dim_installation
        UNION ALL
        SELECT 'namespace', id, max(name) FROM (
            SELECT toString(namespace_id) AS id, namespace_name AS name FROM dim_namespace FINAL WHERE is_deleted = 0
            UNION ALL
            SELECT DISTINCT scope_id, '' FROM agg_behavior_active_daily WHERE scope = 'namespace')
        GROUP BY id)
    WHERE {search('scope_id', 'name')}
    ORDER BY scope_type, name, scope_id LIMIT 200""", entity_links=True)

# Daily 7- and 28-day distinct users from the daily bitmaps of one scope's events (instance uuid, namespace; an
# account: the union of its namespaces' bitmaps, exact distinct users), as the alert evaluator reads them.
# The scope's daily states are read once: its newest day (the last window end shown) comes along as a window function.
_EVENT_DAYS = """
    SELECT toDate(behavior_date + k) AS day, groupBitmapMerge(users) AS users, w
    FROM (SELECT behavior_date, users, max(behavior_date) OVER () AS last_day FROM ({daily}))
    ARRAY JOIN [7, 28] AS w ARRAY JOIN range(w) AS k
    WHERE day <= last_day AND day BETWEEN {{month_from:Date}} AND addDays(addMonths({{month_to:Date}}, 1), -1)
    GROUP BY day, w"""
_DAILY = {
    "instance": """SELECT behavior_date, users FROM agg_behavior_active_daily FINAL
                   WHERE scope = 'instance' AND scope_id IN (SELECT instance_uuid FROM dim_installation
                                                            WHERE installation_id = {id:String})""",
    "namespace": """SELECT behavior_date, users FROM agg_behavior_active_daily FINAL
                    WHERE scope = 'namespace' AND scope_id = {id:String}""",
    "account": """SELECT a.behavior_date AS behavior_date, a.users AS users FROM agg_behavior_active_daily AS a FINAL
                  WHERE a.scope = 'namespace' AND a.scope_id IN (SELECT toString(namespace_id) FROM dim_namespace FINAL
                                                                 WHERE dim_crm_account_id = {id:String})""",
}
# Service Ping active users: an instance's pings; an account's installations summed per week (latest ping each).
_PING_USERS = {
    "instance": """SELECT toDate(recorded_at) AS day, toFloat64(active_user_count) AS ping_active_users
                   FROM fct_ping_instance FINAL WHERE installation_id = {id:String} AND active_user_count >= 0""",
    "account": """SELECT week AS day, sum(users) AS ping_active_users FROM (
                      SELECT p.installation_id, toMonday(p.recorded_at) AS week,
                             toFloat64(argMax(p.active_user_count, p.recorded_at)) AS users
                      FROM fct_ping_instance AS p FINAL
                      INNER JOIN prep_ping_subscription AS s ON p.ping_id = s.ping_id
                      WHERE s.dim_crm_account_id = {id:String} AND p.active_user_count >= 0
                      GROUP BY p.installation_id, week)
                  GROUP BY week""",
    "namespace": "SELECT toDate(0) AS day, toFloat64(0) AS ping_active_users WHERE 0",
}
# Who the scope is.
_ABOUT = {
    "instance": """SELECT installation_id, instance_uuid, hostname, toString(min(first_ping_at)) AS first_ping,
                          toString(max(last_ping_at)) AS last_ping
                   FROM dim_installation WHERE installation_id = {id:String}
                   GROUP BY installation_id, instance_uuid, hostname""",
    "account": """SELECT dim_crm_account_id, account_name, crm_account_type, billing_country
                  FROM dim_crm_account FINAL WHERE dim_crm_account_id = {id:String}""",
    "namespace": """SELECT toString(namespace_id) AS namespace_id, namespace_name, plan, dim_crm_account_id
                    FROM dim_namespace FINAL WHERE toString(namespace_id) = {id:String}""",
}
# The scope ids alerts use: installation_id for Service Ping / Seat Link rules, the uuid for event rules.
_ALERT_IDS = {
    "instance": "(SELECT installation_id FROM dim_installation WHERE installation_id = {id:String} UNION ALL "
                "SELECT instance_uuid FROM dim_installation WHERE installation_id = {id:String})",
    "namespace": "(SELECT {id:String})",
    "account": "(SELECT {id:String})",
}


def entity_page(scope_type: str) -> Page:
    """The page of one account, instance or namespace: its users over time with its alerts marked."""
    if scope_type not in SCOPE_TYPES:
        raise FilterError(f"type is one of {', '.join(SCOPE_TYPES)}, got {scope_type!r}")
    daily = _DAILY[scope_type]
    events = _EVENT_DAYS.format(daily=daily)
    users = f"""
        SELECT toString(day) AS day, maxIf(users, w = 7) AS users_7d, maxIf(users, w = 28) AS users_28d,
               max(ping_active_users) AS ping_active_users
        FROM (SELECT day, users, w, CAST(NULL, 'Nullable(Float64)') AS ping_active_users FROM ({events})
              UNION ALL
              SELECT day, CAST(NULL, 'Nullable(UInt64)'), 0, ping_active_users FROM ({_PING_USERS[scope_type]})
              WHERE day BETWEEN {{month_from:Date}} AND addDays(addMonths({{month_to:Date}}, 1), -1))
        GROUP BY day ORDER BY day"""
    alerts = f"""
        SELECT toString(opened_period) AS opened, rule, scope_type, signal, condition_type, state,
               opened_value, baseline, threshold, toString(resolved_period) AS resolved_period, resolved_value
        FROM alerts FINAL
        WHERE scope_id IN {_ALERT_IDS[scope_type]}
          AND opened_period BETWEEN {{month_from:Date}} AND addDays(addMonths({{month_to:Date}}, 1), -1)
        ORDER BY opened_period, rule"""
    tables = {"instance": ("dim_installation", "fct_ping_instance"),
              "account": ("dim_crm_account", "dim_namespace", "fct_ping_instance", "prep_ping_subscription"),
              "namespace": ("dim_namespace",)}[scope_type]
    return Page(
        f"entity-{scope_type}", f"{scope_type.title()}",
        "Distinct users of the 7 and 28 days ending each day (events: an instance's, a namespace's, or an "
        "account's namespaces together), Service Ping active users, and the alerts opened for it (marked).",
        ("agg_behavior_active_daily", "alerts", *tables),
        (
            Panel("about", "Who", _ABOUT[scope_type]),
            Panel("users", "7- and 28-day users", users,
                  Chart("line", "day", ("users_7d", "users_28d", "ping_active_users"), markers="alerts",
                        marker_columns=("opened", "opened_value", "rule"))),
            Panel("alerts", "Alerts", alerts),
        ),
        requires=("type", "id"),
    )


ENTITY = Page(
    "entity", "Accounts, instances, namespaces",
    "Find an account, instance or namespace (by name, hostname or id) and open its page.",
    ("dim_crm_account", "dim_installation", "dim_namespace", "agg_behavior_active_daily"),
    (ENTITY_SEARCH,),
    filters=("search",),
)

PAGES: dict[str, Page] = {page.key: page for page in (
    XMAU, ENTITY, VERSION_LAG, INSTALLATION_TYPES, TOPOLOGY, STAGE_ADOPTION, CUSTOMER_SUCCESS, PIPELINE)}
