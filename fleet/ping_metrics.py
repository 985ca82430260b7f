"""The metric paths a sample Service Ping carries, by kind: event counters (all-time, 28-day and 7-day), distinct-user
counts (with their adoption, tier gate and components), feature flags and runner types; the values a counter that
failed reports instead (error markers); and the path sets tests check across weeks and windows. fleet/ping_payload.py
places them; fleet/ping_catalog.py holds the rest of what an instance and its pings are drawn from.
"""

from __future__ import annotations

ERROR_MARKER_RATE = 0.01


# -1 timeout/failure, -2 error in a counter, -1000 deprecated metric; timeouts are the most common.
ERROR_MARKERS = (-1, -1, -1, -2, -2, -1000)


# Identifiers, not measurements: never metric rows.
NOT_MEASUREMENTS = frozenset({"database.pg_system_id", "license_id"})


# Event counters: (all-time path, 28d path, 7d path, events per active user per week, gate).
# The 28d and 7d values are sums of the same weekly increments that feed the all-time total.
EVENTS: tuple[tuple[str, str | None, str | None, float, str], ...] = (
    ("counts.issues", "counts_monthly.issues", "counts_weekly.issues", 0.6, "free"),
    ("counts.notes", None, None, 3.0, "free"),
    ("counts.labels", None, None, 0.03, "free"),
    ("counts.milestones", None, None, 0.01, "free"),
    ("counts.boards", None, None, 0.004, "free"),
    ("counts.todos", None, None, 1.5, "free"),
    ("counts.service_desk_issues", None, None, 0.03, "free"),
    ("counts.epics", None, None, 0.02, "premium"),
    ("counts.merge_requests", "counts_monthly.merge_requests", "counts_weekly.merge_requests", 0.5, "free"),
    ("counts.snippets", "counts_monthly.snippets", "counts_weekly.snippets", 0.02, "free"),
    ("counts.suggestions", None, None, 0.08, "free"),
    ("counts.protected_branches", None, None, 0.01, "free"),
    ("counts.lfs_objects", None, None, 0.2, "free"),
    ("counts.uploads", None, None, 0.3, "free"),
    ("counts.deploy_keys", None, None, 0.002, "free"),
    ("counts.remote_mirrors", None, None, 0.001, "free"),
    (
        "counts.count_total_code_suggestions_accepted",
        "counts.count_total_code_suggestions_accepted_monthly",
        "counts.count_total_code_suggestions_accepted_weekly",
        2.0,
        "premium",
    ),
    ("counts.groups", None, None, 0.01, "free"),
    ("counts.projects", "counts_monthly.projects", "counts_weekly.projects", 0.05, "free"),
    ("counts.keys", None, None, 0.005, "free"),
    ("counts.web_hooks", None, None, 0.002, "free"),
    ("counts.projects_jira_active", None, None, 0.0005, "free"),
    ("counts.projects_slack_active", None, None, 0.0008, "free"),
    ("counts.projects_imported_from_github", None, None, 0.003, "free"),
    (
        "counts.count_total_user_logins",
        "counts.count_total_user_logins_monthly",
        "counts.count_total_user_logins_weekly",
        4.0,
        "free",
    ),
    ("counts.ci_builds", None, None, 10.0, "free"),
    ("counts.ci_internal_pipelines", None, None, 2.0, "free"),
    ("counts.ci_external_pipelines", None, None, 0.05, "free"),
    ("counts.ci_pipeline_schedules", None, None, 0.003, "free"),
    ("counts.ci_triggers", None, None, 0.002, "free"),
    ("counts.packages", "counts_monthly.packages", "counts_weekly.packages", 0.3, "free"),
    (
        "counts.count_total_package_pulls",
        "counts.count_total_package_pulls_monthly",
        "counts.count_total_package_pulls_weekly",
        2.5,
        "free",
    ),
    ("counts.projects_with_expiration_policy_enabled", None, None, 0.002, "free"),
    ("counts.sast_jobs", None, None, 0.5, "free"),
    ("counts.secret_detection_jobs", None, None, 0.4, "free"),
    ("counts.dependency_scanning_jobs", None, None, 0.3, "ultimate"),
    ("counts.container_scanning_jobs", None, None, 0.25, "ultimate"),
    ("counts.dast_jobs", None, None, 0.04, "ultimate"),
    ("counts.deployments", "counts_monthly.deployments", "counts_weekly.deployments", 0.4, "free"),
    (
        "counts.successful_deployments",
        "counts_monthly.successful_deployments",
        "counts_weekly.successful_deployments",
        0.34,
        "free",
    ),
    (
        "counts.failed_deployments",
        "counts_monthly.failed_deployments",
        "counts_weekly.failed_deployments",
        0.05,
        "free",
    ),
    ("counts.environments", None, None, 0.01, "free"),
    ("counts.releases", None, None, 0.02, "free"),
    ("counts.feature_flags", None, None, 0.004, "free"),
    ("counts.kubernetes_agents", None, None, 0.0008, "free"),
    ("counts.kubernetes_agents_with_token", None, None, 0.0006, "free"),
    ("counts.clusters", None, None, 0.0003, "free"),
    ("counts.auto_devops_enabled", None, None, 0.0008, "free"),
    ("counts.incident_issues", None, None, 0.01, "free"),
    ("counts.alert_bot_incident_issues", None, None, 0.004, "free"),
    ("counts.projects_with_alerts_created", None, None, 0.0005, "free"),
    (
        "counts.count_total_vulnerability_state_changes",
        "counts.count_total_vulnerability_state_changes_monthly",
        "counts.count_total_vulnerability_state_changes_weekly",
        0.2,
        "ultimate",
    ),
    ("counts.projects_with_scan_execution_policies", None, None, 0.0005, "ultimate"),
    ("counts.audit_event_destinations", None, None, 0.0001, "premium"),
    (
        "counts.count_total_product_analytics_dashboard_views",
        "counts.count_total_product_analytics_dashboard_views_monthly",
        "counts.count_total_product_analytics_dashboard_views_weekly",
        0.3,
        "ultimate",
    ),
)


_UA = "usage_activity_by_stage"


UAM = "usage_activity_by_stage_monthly"


_HLL = "redis_hll_counters"


def _hll(category: str, event: str) -> tuple[str, str]:
    return f"{_HLL}.{category}.{event}_monthly", f"{_HLL}.{category}.{event}_weekly"


# Distinct-user metrics: (28d path, 7d path, all-time path, adoption range, gate, components).
# Adoption is the share of active users; a metric with components (a "total" or an aggregate) takes the
# largest component's share plus the range, so a total is never below its parts.
_UserSpec = tuple[str, str | None, str | None, tuple[float, float], str, tuple[str, ...]]


_CR_CREATE = _hll("code_review", "i_code_review_user_create_mr")


_CR_APPROVE = _hll("code_review", "i_code_review_user_approve_mr")


_MAVEN = _hll("user_packages", "i_package_maven_user")


_NPM = _hll("user_packages", "i_package_npm_user")


_SCANNERS = tuple(
    f"{UAM}.secure.user_{scan}_jobs"
    for scan in ("sast", "secret_detection", "dependency_scanning", "container_scanning", "dast")
)


_ALERT_STATUS = _hll("incident_management", "incident_management_alert_status_changed")


_COMPLIANCE_DASHBOARD = _hll("compliance", "g_compliance_dashboard")


_AUDIT_EVENTS = _hll("compliance", "g_compliance_audit_events")


_SEARCH = _hll("search", "i_search_total")


_SEARCH_PAID = _hll("search", "i_search_paid")


_CONTRIBUTION = _hll("analytics", "g_analytics_contribution")


_VALUESTREAM = _hll("analytics", "g_analytics_valuestream")


def _u(
    hll_or_path: tuple[str, str] | str,
    adoption: tuple[float, float],
    gate: str = "free",
    all_time: str | None = None,
    components: tuple[str, ...] = (),
) -> _UserSpec:
    if isinstance(hll_or_path, tuple):
        return (hll_or_path[0], hll_or_path[1], all_time, adoption, gate, components)
    return (hll_or_path, None, all_time, adoption, gate, components)


USERS: tuple[_UserSpec, ...] = (
    # manage; the UMAU metric has the widest adoption so every other user metric stays below it
    _u(f"{UAM}.manage.events", (0.82, 0.97), all_time=f"{_UA}.manage.events"),
    _u(f"{UAM}.manage.unique_users_all_imports", (0.0, 0.04), all_time=f"{_UA}.manage.unique_users_all_imports"),
    _u(f"{UAM}.manage.groups", (0.01, 0.08)),
    _u(_hll("manage", "manage_total_unique_counts"), (0.3, 0.7)),
    # plan
    _u(f"{UAM}.plan.issues", (0.15, 0.5), all_time=f"{_UA}.plan.issues"),
    _u(f"{UAM}.plan.notes", (0.2, 0.6)),
    _u(f"{UAM}.plan.epics", (0.02, 0.15), "premium"),
    _u(_hll("issues_edit", "g_project_management_issue_created"), (0.1, 0.4)),
    _u(_hll("issues_edit", "g_project_management_issue_closed"), (0.05, 0.3)),
    _u(_hll("epics_usage", "epics_usage_total_unique_counts"), (0.02, 0.2), "premium"),
    # create
    _u(f"{UAM}.create.action_monthly_active_users_project_repo", (0.35, 0.8)),
    _u(f"{UAM}.create.merge_requests", (0.2, 0.55), all_time=f"{_UA}.create.merge_requests"),
    _u(f"{UAM}.create.snippets", (0.0, 0.05)),
    _u(_CR_CREATE, (0.15, 0.5)),
    _u(_CR_APPROVE, (0.1, 0.4)),
    _u(
        (
            "counts_monthly.aggregated_metrics.code_review_group_monthly_active_users",
            "counts_weekly.aggregated_metrics.code_review_group_monthly_active_users",
        ),
        (0.0, 0.1),
        components=(_CR_CREATE[0], _CR_APPROVE[0]),
    ),
    _u(_hll("source_code", "wiki_action"), (0.02, 0.2)),
    _u(_hll("source_code", "git_write_action"), (0.3, 0.75)),
    _u(_hll("ide_edit", "g_edit_by_web_ide"), (0.02, 0.2)),
    # verify
    _u(f"{UAM}.verify.ci_pipelines", (0.15, 0.6), all_time=f"{_UA}.verify.ci_pipelines"),
    _u(f"{UAM}.verify.ci_builds", (0.15, 0.6)),
    _u(f"{UAM}.verify.ci_pipeline_schedules", (0.0, 0.05)),
    _u(_hll("pipeline_authoring", "o_pipeline_authoring_unique_users_committing_ciconfigfile"), (0.02, 0.2)),
    # package
    _u(_MAVEN, (0.0, 0.15)),
    _u(_NPM, (0.0, 0.2)),
    _u(_hll("user_packages", "user_packages_total_unique_counts"), (0.0, 0.1), components=(_MAVEN[0], _NPM[0])),
    _u(f"{UAM}.package.projects_with_packages", (0.0, 0.1), all_time=f"{_UA}.package.projects_with_packages"),
    # secure
    _u(_SCANNERS[0], (0.05, 0.3)),
    _u(_SCANNERS[1], (0.05, 0.3)),
    _u(_SCANNERS[2], (0.05, 0.3), "ultimate"),
    _u(_SCANNERS[3], (0.03, 0.25), "ultimate"),
    _u(_SCANNERS[4], (0.0, 0.1), "ultimate"),
    _u(
        f"{UAM}.secure.user_unique_users_all_secure_scanners",
        (0.0, 0.1),
        all_time=f"{_UA}.secure.user_unique_users_all_secure_scanners",
        components=_SCANNERS,
    ),
    # deploy (the payload still calls the stage "release")
    _u(f"{UAM}.release.deployments", (0.03, 0.3), all_time=f"{_UA}.release.deployments"),
    _u(f"{UAM}.release.releases", (0.0, 0.05)),
    _u(_hll("ci_users", "ci_users_executing_deployment_job"), (0.03, 0.3)),
    # configure
    _u(_hll("kubernetes_agent", "agent_users_using_ci_tunnel"), (0.0, 0.1)),
    _u(f"{UAM}.configure.kubernetes_agents", (0.0, 0.02)),
    _u(f"{UAM}.configure.project_clusters_enabled", (0.0, 0.01)),
    # monitor
    _u(_ALERT_STATUS, (0.0, 0.05)),
    _u(
        _hll("incident_management", "incident_management_total_unique_counts"),
        (0.0, 0.05),
        components=(_ALERT_STATUS[0],),
    ),
    _u(
        (
            "counts_monthly.aggregated_metrics.incident_management_alerts_total_unique_counts",
            "counts_weekly.aggregated_metrics.incident_management_alerts_total_unique_counts",
        ),
        (0.0, 0.04),
        components=(_ALERT_STATUS[0],),
    ),
    _u(f"{UAM}.monitor.projects_with_incidents", (0.0, 0.02)),
    # govern
    _u(_COMPLIANCE_DASHBOARD, (0.0, 0.05), "ultimate"),
    _u(_AUDIT_EVENTS, (0.0, 0.08), "premium"),
    _u(
        _hll("compliance", "compliance_total_unique_counts"),
        (0.0, 0.05),
        "premium",
        components=(_COMPLIANCE_DASHBOARD[0], _AUDIT_EVENTS[0]),
    ),
    _u(
        (
            "counts_monthly.aggregated_metrics.compliance_features_track_unique_visits_union",
            "counts_weekly.aggregated_metrics.compliance_features_track_unique_visits_union",
        ),
        (0.0, 0.03),
        "premium",
        components=(_COMPLIANCE_DASHBOARD[0], _AUDIT_EVENTS[0]),
    ),
    _u(_hll("govern", "users_visiting_vulnerability_report"), (0.01, 0.15), "ultimate"),
    # systems: search
    _u(_SEARCH, (0.2, 0.6)),
    _u(_SEARCH_PAID, (0.05, 0.4), "premium"),
    _u(_hll("search", "search_total_unique_counts"), (0.0, 0.1), components=(_SEARCH[0], _SEARCH_PAID[0])),
    # analytics
    _u(_CONTRIBUTION, (0.0, 0.1)),
    _u(_VALUESTREAM, (0.0, 0.1)),
    _u(_hll("analytics", "analytics_total_unique_counts"), (0.0, 0.1), components=(_CONTRIBUTION[0], _VALUESTREAM[0])),
)


# Feature flags and boolean settings: (path, probability of true, gate).
FLAGS: tuple[tuple[str, float, str], ...] = (
    ("container_registry_enabled", 0.7, "free"),
    ("dependency_proxy_enabled", 0.3, "free"),
    ("gitlab_shared_runners_enabled", 0.8, "free"),
    ("gravatar_enabled", 0.6, "free"),
    ("ldap_enabled", 0.3, "free"),
    ("mattermost_enabled", 0.1, "free"),
    ("omniauth_enabled", 0.5, "free"),
    ("prometheus_enabled", 0.8, "free"),
    ("prometheus_metrics_enabled", 0.6, "free"),
    ("grafana_link_enabled", 0.3, "free"),
    ("signup_enabled", 0.4, "free"),
    ("instance_auto_devops_enabled", 0.2, "free"),
    ("gitpod_enabled", 0.05, "free"),
    ("elasticsearch_enabled", 0.3, "ee"),
    ("geo_enabled", 0.1, "premium"),
    ("settings.ldap_encrypted_secrets_enabled", 0.1, "free"),
    ("settings.smtp_encrypted_secrets_enabled", 0.1, "free"),
    ("settings.service_ping_features_enabled", 0.5, "free"),
    ("settings.snowplow_enabled", 0.05, "free"),
    ("settings.snowplow_configured_to_gitlab_collector", 0.03, "free"),
    ("settings.certificate_based_clusters_ff", 0.1, "free"),
)


RUNNER_TYPES = ("instance", "group", "project")


# Paths the tests check for consistency across weeks and windows.
CUMULATIVE_COUNT_PATHS = tuple(spec[0] for spec in EVENTS) + tuple(spec[2] for spec in USERS if spec[2])


WINDOW_PAIRS = tuple((spec[2], spec[1]) for spec in EVENTS if spec[1] and spec[2]) + tuple(
    (spec[1], spec[0]) for spec in USERS if spec[1]
)


STAGE_MONTHLY_USER_PATHS = tuple(spec[0] for spec in USERS if spec[0].startswith(UAM + "."))
