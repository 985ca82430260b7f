"""What each dashboard page shows: its panels, each one SQL query over the marts and reports, the chart drawn from
the query's rows, and the tables it reads (the page's data class comes from their COMMENTs, through
streams/catalog.py). The heavy reports are read from their stored rows (`<view>_stored`, kept current by the worker:
streams/warehouse/reports.py), so a page reads a small table whatever the raw volume. What a page, panel, chart and
filter are: streams/dashboard/page_model.py; the pages of one account, instance or namespace:
streams/dashboard/entity_pages.py.
"""

from __future__ import annotations

import re

from streams.dashboard.entity_pages import ENTITY
from streams.dashboard.page_model import DELIVERY, MONTHS, Chart, Page, Panel, search
from streams.warehouse.reports import STORED


def over_views(sql: str) -> str:
    """A page query asked of the views its stored reports hold the rows of (streams/warehouse/reports.py): the same
    answer while they are current (tests compare the two)."""
    for table, report in STORED.items():
        sql = re.sub(rf"\b{table}\b", report.view, sql)
    return sql


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


PAGES: dict[str, Page] = {page.key: page for page in (
    XMAU, ENTITY, VERSION_LAG, INSTALLATION_TYPES, TOPOLOGY, STAGE_ADOPTION, CUSTOMER_SUCCESS, PIPELINE)}
