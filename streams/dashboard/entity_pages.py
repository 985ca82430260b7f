"""The pages of one account, instance or namespace: a search that finds it (ENTITY), and its own page
(`entity_page`): who it is, its 7- and 28-day users from the daily event bitmaps next to its Service Ping active
users, and its alerts marked on that chart. Unlike the report pages (streams/dashboard/pages.py) these read the
facts and daily states of one scope, chosen by the `type` and `id` query parameters.
"""

from __future__ import annotations

from streams.dashboard.page_model import Chart, FilterError, Page, Panel, search

SCOPE_TYPES = ("instance", "account", "namespace")

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
