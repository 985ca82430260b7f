"""A deterministic sample fleet of self-managed Denomas instances sending weekly Service Pings.

Used by tests, demos and benchmarks. Every numeric or boolean value placed into a payload is recorded in
``GeneratedPing.expected_metrics`` at the moment it is placed, so tests can compare the warehouse against
an independent record instead of re-flattening the same JSON the pipeline flattens.

Everything derives from ``seed``: one ``random.Random`` per instance (seeded from a string, which Python
hashes deterministically), one for the fleet-level choices (scenarios, defects).
"""

from __future__ import annotations

import hashlib
import math
import random
import uuid as uuidlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import orjson

DEFECTS = ("missing_uuid", "bad_version", "bad_recorded_at", "counts_not_object")
DEFECT_RATE = 0.03
ERROR_MARKER_RATE = 0.01
# -1 timeout/failure, -2 error in a counter, -1000 deprecated metric; timeouts are the most common.
ERROR_MARKERS = (-1, -1, -1, -2, -2, -1000)
# Identifiers, not measurements: never metric rows.
NOT_MEASUREMENTS = frozenset({"database.pg_system_id", "license_id"})

# edition -> (license plan, tier rank). The product maps ultimate->EEU, premium->EEP, starter->EES, else EE.
_EDITIONS: dict[str, tuple[str | None, int]] = {
    "CE": (None, 0),
    "EE Free": (None, 0),
    "EE": ("early_adopter", 1),
    "EES": ("starter", 1),
    "EEP": ("premium", 1),
    "EEU": ("ultimate", 2),
}
_EDITION_WEIGHTS = {"CE": 25, "EE Free": 20, "EE": 3, "EES": 5, "EEP": 30, "EEU": 17}
_INSTALL_WEIGHTS = {
    "omnibus-gitlab": 60,
    "gitlab-helm-chart": 18,
    "docker": 14,
    "source": 6,
    "gitlab-development-kit": 2,
}
# size -> (weight, active-user range, node-count range)
_SIZES = {
    "small": (40, (3, 40), (1, 1)),
    "medium": (35, (40, 400), (1, 2)),
    "large": (18, (400, 3000), (3, 5)),
    "xl": (7, (3000, 25000), (6, 9)),
}
_GATE_RANK = {"free": 0, "ee": 0, "premium": 1, "ultimate": 2}

# Monthly releases; at the fleet's start 18.1 is the newest and one more appears every four weeks.
_RELEASES = [(17, minor) for minor in range(12)] + [(18, minor) for minor in range(12)]
_LATEST_AT_START = _RELEASES.index((18, 1))

# Event counters: (all-time path, 28d path, 7d path, events per active user per week, gate).
# The 28d and 7d values are sums of the same weekly increments that feed the all-time total.
_EVENTS: tuple[tuple[str, str | None, str | None, float, str], ...] = (
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
_UAM = "usage_activity_by_stage_monthly"
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
    f"{_UAM}.secure.user_{scan}_jobs"
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


_USERS: tuple[_UserSpec, ...] = (
    # manage; the UMAU metric has the widest adoption so every other user metric stays below it
    _u(f"{_UAM}.manage.events", (0.82, 0.97), all_time=f"{_UA}.manage.events"),
    _u(f"{_UAM}.manage.unique_users_all_imports", (0.0, 0.04), all_time=f"{_UA}.manage.unique_users_all_imports"),
    _u(f"{_UAM}.manage.groups", (0.01, 0.08)),
    _u(_hll("manage", "manage_total_unique_counts"), (0.3, 0.7)),
    # plan
    _u(f"{_UAM}.plan.issues", (0.15, 0.5), all_time=f"{_UA}.plan.issues"),
    _u(f"{_UAM}.plan.notes", (0.2, 0.6)),
    _u(f"{_UAM}.plan.epics", (0.02, 0.15), "premium"),
    _u(_hll("issues_edit", "g_project_management_issue_created"), (0.1, 0.4)),
    _u(_hll("issues_edit", "g_project_management_issue_closed"), (0.05, 0.3)),
    _u(_hll("epics_usage", "epics_usage_total_unique_counts"), (0.02, 0.2), "premium"),
    # create
    _u(f"{_UAM}.create.action_monthly_active_users_project_repo", (0.35, 0.8)),
    _u(f"{_UAM}.create.merge_requests", (0.2, 0.55), all_time=f"{_UA}.create.merge_requests"),
    _u(f"{_UAM}.create.snippets", (0.0, 0.05)),
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
    _u(f"{_UAM}.verify.ci_pipelines", (0.15, 0.6), all_time=f"{_UA}.verify.ci_pipelines"),
    _u(f"{_UAM}.verify.ci_builds", (0.15, 0.6)),
    _u(f"{_UAM}.verify.ci_pipeline_schedules", (0.0, 0.05)),
    _u(_hll("pipeline_authoring", "o_pipeline_authoring_unique_users_committing_ciconfigfile"), (0.02, 0.2)),
    # package
    _u(_MAVEN, (0.0, 0.15)),
    _u(_NPM, (0.0, 0.2)),
    _u(_hll("user_packages", "user_packages_total_unique_counts"), (0.0, 0.1), components=(_MAVEN[0], _NPM[0])),
    _u(f"{_UAM}.package.projects_with_packages", (0.0, 0.1), all_time=f"{_UA}.package.projects_with_packages"),
    # secure
    _u(_SCANNERS[0], (0.05, 0.3)),
    _u(_SCANNERS[1], (0.05, 0.3)),
    _u(_SCANNERS[2], (0.05, 0.3), "ultimate"),
    _u(_SCANNERS[3], (0.03, 0.25), "ultimate"),
    _u(_SCANNERS[4], (0.0, 0.1), "ultimate"),
    _u(
        f"{_UAM}.secure.user_unique_users_all_secure_scanners",
        (0.0, 0.1),
        all_time=f"{_UA}.secure.user_unique_users_all_secure_scanners",
        components=_SCANNERS,
    ),
    # deploy (the payload still calls the stage "release")
    _u(f"{_UAM}.release.deployments", (0.03, 0.3), all_time=f"{_UA}.release.deployments"),
    _u(f"{_UAM}.release.releases", (0.0, 0.05)),
    _u(_hll("ci_users", "ci_users_executing_deployment_job"), (0.03, 0.3)),
    # configure
    _u(_hll("kubernetes_agent", "agent_users_using_ci_tunnel"), (0.0, 0.1)),
    _u(f"{_UAM}.configure.kubernetes_agents", (0.0, 0.02)),
    _u(f"{_UAM}.configure.project_clusters_enabled", (0.0, 0.01)),
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
    _u(f"{_UAM}.monitor.projects_with_incidents", (0.0, 0.02)),
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
_FLAGS: tuple[tuple[str, float, str], ...] = (
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

_RUNNER_TYPES = ("instance", "group", "project")

# Paths the tests check for consistency across weeks and windows.
CUMULATIVE_COUNT_PATHS = tuple(spec[0] for spec in _EVENTS) + tuple(spec[2] for spec in _USERS if spec[2])
WINDOW_PAIRS = tuple((spec[2], spec[1]) for spec in _EVENTS if spec[1] and spec[2]) + tuple(
    (spec[1], spec[0]) for spec in _USERS if spec[1]
)
STAGE_MONTHLY_USER_PATHS = tuple(spec[0] for spec in _USERS if spec[0].startswith(_UAM + "."))

_COMPANIES = (
    "northwind", "contoso", "initech", "globex", "umbrella", "hooli", "vandelay", "acme", "stark",
    "wayne", "tyrell", "cyberdyne", "soylent", "wonka", "oceanic", "aperture", "massive", "monarch",
)  # fmt: skip
_HOST_PREFIXES = ("git", "denomas", "code", "scm", "dev")
_KERNELS = ("5.15.0-105-generic", "6.1.0-18-amd64", "5.14.0-427.el9.x86_64", "6.8.0-40-generic")
_OPERATING_SYSTEMS = ("ubuntu-22.04", "ubuntu-24.04", "debian-12", "el-9", "el-8", "amazon-2023", "opensuse_leap-15.5")
_DB_FLAVORS = (
    "PostgreSQL on Amazon RDS",
    "Amazon Aurora PostgreSQL",
    "Cloud SQL for PostgreSQL",
    "Azure Database for PostgreSQL - Flexible Server",
)
# service -> (processes on a node with N cpus, resident bytes per process)
_SERVICE_SHAPES: dict[str, tuple[Any, int]] = {
    "web": (lambda cpus: min(cpus, 24), 850_000_000),  # one Puma worker per core, capped
    "sidekiq": (lambda cpus: max(1, cpus // 4), 750_000_000),
    "workhorse": (lambda cpus: 1, 90_000_000),
    "redis": (lambda cpus: 1, 300_000_000),
    "postgres": (lambda cpus: 10 + 2 * cpus, 40_000_000),
    "gitaly": (lambda cpus: 1 + cpus // 16, 400_000_000),
    "prometheus": (lambda cpus: 1, 350_000_000),
    "node-exporter": (lambda cpus: 1, 20_000_000),
    "registry": (lambda cpus: 1, 60_000_000),
}
_ROLE_SERVICES = {
    "all": ("web", "sidekiq", "workhorse", "redis", "postgres", "gitaly", "prometheus", "node-exporter"),
    "app": ("web", "sidekiq", "workhorse", "node-exporter"),
    "data": ("postgres", "redis", "prometheus", "node-exporter"),
    "gitaly": ("gitaly", "node-exporter"),
    "sidekiq": ("sidekiq", "node-exporter"),
}


@dataclass
class GeneratedPing:
    uuid: str
    hostname: str
    recorded_at: str
    payload: dict[str, Any]
    valid: bool
    defect: str | None
    expected_metrics: dict[str, int | float]
    scenario: str = "steady"
    week: int = 0

    def body(self) -> bytes:
        return orjson.dumps(self.payload)


@dataclass
class _License:
    key: str  # the license key itself: only hashes of it ever enter the pipeline's storage
    from_week: int
    key_md5: str
    key_sha256: str
    license_id: int
    seats: int
    plan: str
    trial: bool
    subscription_id: str | None
    starts_at: date
    expires_at: date


@dataclass
class _Node:
    role: str
    cpus: int
    memory_bytes: int
    machine: str
    kernel: str


@dataclass
class _Instance:
    index: int
    rng: random.Random
    uuid: str
    hostname: str
    weekday: int
    hour: int
    minute: int
    installation_type: str
    edition: str
    rank: int
    scenario: str
    base_users: int
    growth: float
    drop_start: int
    drop_weeks: int
    drop_factor: float
    churn_week: int | None
    reset_week: int | None
    age_weeks: int
    upgrade_mode: str
    upgrade_every: int
    release: int
    version_suffix: str
    licenses: list[_License]
    nodes: list[_Node]
    scale_week: int | None
    scale_node: _Node | None
    pg_system_id: int
    db_flavor: str | None
    db_version: str | None
    operating_system: str
    flags: dict[str, bool]
    flag_flip: tuple[str, int] | None
    adoption: dict[str, float]
    runner_factors: tuple[float, float, float]
    event_noise: float


@dataclass
class _State:
    """What an instance carries from one week to the next."""

    totals: dict[str, int] = field(default_factory=dict)
    recent: dict[str, list[int]] = field(default_factory=dict)
    user_totals: dict[str, int] = field(default_factory=dict)
    historical_max: int = 0
    user_count_markers: dict[str, int | None] = field(default_factory=dict)  # sticky error markers, see _Builder
    release: int = 0
    patch: int = 0


class _Builder:
    """Places values into a payload and records every numeric or boolean leaf as it is placed."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.payload: dict[str, Any] = {}
        self.metrics: dict[str, int | float] = {}

    def put(self, path: str, value: Any) -> None:
        *parents, leaf = path.split(".")
        node = self.payload
        for key in parents:
            node = node.setdefault(key, {})
        self.place(node, path, leaf, value)

    def place(self, container: dict[str, Any], path: str, key: str, value: Any) -> None:
        container[key] = value
        if path in NOT_MEASUREMENTS:
            return
        if isinstance(value, bool):
            self.metrics[path] = int(value)
        elif isinstance(value, int | float):
            self.metrics[path] = value

    def count(self, path: str, value: int, sticky: dict[str, int | None] | None = None) -> None:
        """A counter, replaced by an error marker about as often as real instances time out. With `sticky` (the
        instance's 28-day user counts) the first ping decides and later pings repeat it: a distinct-user count
        that times out on an installation's big tables does so week after week, so one installation's marker
        does not come and go from one month-end ping to the next (the draws stay the same: week 0 is unchanged)."""
        marked = self.rng.random() < ERROR_MARKER_RATE
        if sticky is not None and path in sticky:
            marker = sticky[path]
        else:
            marker = self.rng.choice(ERROR_MARKERS) if marked else None
            if sticky is not None:
                sticky[path] = marker
        self.put(path, value if marker is None else marker)


def _pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _allowed(inst_rank: int, edition: str, gate: str) -> bool:
    if gate == "ee" and edition == "CE":
        return False
    return inst_rank >= _GATE_RANK[gate]


def _schedule(instance_uuid: str) -> tuple[int, int, int]:
    """Weekday, hour and minute of the weekly job, derived from the uuid as the product's cron does."""

    def digest(text: str) -> int:
        return int(hashlib.sha256(text.encode()).hexdigest(), 16)

    return digest(instance_uuid) % 7, digest(instance_uuid + "hour") % 24, digest(instance_uuid + "minute") % 60


def _licenses(
    rng: random.Random, seed: int, uid: str, plan: str, users: int, start: date, weeks: int
) -> list[_License]:
    """Successive licenses: a trial converting to a paid one, or yearly renewals inside the window."""
    trial = plan == "ultimate" and rng.random() < 0.25
    starts = start - timedelta(days=rng.randint(5, 20) if trial else rng.randint(10, 330))
    seats = max(10, int(math.ceil(users * rng.uniform(1.05, 1.4) / 10.0)) * 10)
    result: list[_License] = []
    from_week = 0
    end = start + timedelta(weeks=weeks)
    while True:
        length = timedelta(days=30 if trial else 365)
        key = f"denomas-license:{seed}:{uid}:{len(result)}:{rng.getrandbits(64):016x}"
        result.append(
            _License(
                key=key,
                from_week=from_week,
                # The product hashes License#normalized_data: the key with exactly one trailing newline.
                key_md5=hashlib.md5(f"{key}\n".encode()).hexdigest(),
                key_sha256=hashlib.sha256(f"{key}\n".encode()).hexdigest(),
                license_id=rng.randint(10_000, 999_999),
                seats=100 if trial else seats,
                plan=plan,
                trial=trial,
                subscription_id=None if trial else f"2c92a0ff{rng.getrandbits(96):024x}",
                starts_at=starts,
                expires_at=starts + length,
            )
        )
        starts = starts + length
        if starts >= end:
            return result
        from_week = max(from_week + 1, (starts - start).days // 7 + 1)
        trial = False


def _nodes(rng: random.Random, size: str) -> list[_Node]:
    low, high = _SIZES[size][2]
    count = rng.randint(low, high)
    roles = ["all"] if count == 1 else ["app", "data", "gitaly", "app", "sidekiq", "gitaly", "app", "sidekiq", "app"]
    machine = "aarch64" if rng.random() < 0.15 else "x86_64"
    kernel = rng.choice(_KERNELS)
    cpu_choices = {"small": (2, 4), "medium": (4, 8, 16), "large": (8, 16, 32), "xl": (16, 32, 64)}[size]
    return [_node(rng, roles[i], cpu_choices, machine, kernel) for i in range(count)]


def _node(rng: random.Random, role: str, cpu_choices: tuple[int, ...], machine: str, kernel: str) -> _Node:
    cpus = rng.choice(cpu_choices)
    memory = cpus * rng.choice((2, 4, 8)) * 1024**3
    return _Node(role=role, cpus=cpus, memory_bytes=memory, machine=machine, kernel=kernel)


def _adoption(rng: random.Random, rank: int, edition: str) -> dict[str, float]:
    adoption: dict[str, float] = {}
    for path28, _, _, (low, high), gate, components in _USERS:
        if not _allowed(rank, edition, gate):
            continue
        share = rng.uniform(low, high)
        parts = [adoption[c] for c in components if c in adoption]
        if components:
            share = min(0.8, max(parts, default=0.0) + share)
        adoption[path28] = share
    return adoption


def _make_instance(seed: int, index: int, scenario: str, weeks: int, start: date) -> _Instance:
    rng = random.Random(f"denomas-fleet:{seed}:{index}")
    uid = str(uuidlib.UUID(int=rng.getrandbits(128), version=4))
    weekday, hour, minute = _schedule(uid)
    installation_type = _pick(rng, _INSTALL_WEIGHTS)
    edition = "EE" if installation_type == "gitlab-development-kit" else _pick(rng, _EDITION_WEIGHTS)
    plan, rank = _EDITIONS[edition]
    size = _pick(rng, {name: spec[0] for name, spec in _SIZES.items()})
    base_users = rng.randint(*_SIZES[size][1])
    nodes = _nodes(rng, size)
    scale_week = rng.randint(1, max(1, weeks - 1)) if len(nodes) > 1 and rng.random() < 0.5 else None
    scale_node = _node(rng, "app", (8, 16, 32), nodes[0].machine, nodes[0].kernel) if scale_week is not None else None
    upgrade_mode = rng.choices(("eager", "periodic", "stuck"), weights=(45, 40, 15))[0]
    release = {
        "eager": _LATEST_AT_START - rng.randint(0, 1),
        "periodic": _LATEST_AT_START - rng.randint(2, 7),
        "stuck": rng.randint(0, 6),
    }[upgrade_mode]
    if installation_type == "gitlab-development-kit":
        suffix = "-pre"
    else:
        suffix = "-ee" if edition != "CE" and installation_type == "omnibus-gitlab" and rng.random() < 0.3 else ""
    bundled_db = installation_type in ("omnibus-gitlab", "docker", "gitlab-development-kit")
    flags = {path: rng.random() < p for path, p, gate in _FLAGS if _allowed(rank, edition, gate)}
    flip_path = rng.choice(sorted(flags))
    return _Instance(
        index=index,
        rng=rng,
        uuid=uid,
        hostname=f"{rng.choice(_HOST_PREFIXES)}.{rng.choice(_COMPANIES)}-{index}.example",
        weekday=weekday,
        hour=hour,
        minute=minute,
        installation_type=installation_type,
        edition=edition,
        rank=rank,
        scenario=scenario,
        base_users=base_users,
        # 0.2-0.8 % a week (1-3.5 % a month): the fleet grows the few percent a month a real one does, so the
        # xMAU month-over-month check (+/-10 %) passes; drops and churn stay per-instance events.
        growth=rng.uniform(0.002, 0.008) if scenario == "growth" else 0.0,
        drop_start=rng.randint(max(1, weeks // 3), max(1, weeks // 2)),
        drop_weeks=rng.randint(2, 3),
        drop_factor=rng.uniform(0.3, 0.55),
        churn_week=rng.randint(max(1, weeks // 3), max(1, weeks - 2)) if scenario == "churn" else None,
        reset_week=rng.randint(1, max(1, weeks - 2)) if scenario == "reset" else None,
        age_weeks=rng.randint(8, 300),
        upgrade_mode=upgrade_mode,
        upgrade_every=rng.randint(8, 12),
        release=release,
        version_suffix=suffix,
        licenses=_licenses(rng, seed, uid, plan, base_users, start, weeks) if plan else [],
        nodes=nodes,
        scale_week=scale_week,
        scale_node=scale_node,
        pg_system_id=rng.randrange(2**62, 2**63),
        db_flavor=None if bundled_db or rng.random() < 0.3 else rng.choice(_DB_FLAVORS),
        db_version=None if bundled_db else rng.choice(("14.15", "15.10", "16.6")),
        operating_system=rng.choice(_OPERATING_SYSTEMS),
        flags=flags,
        flag_flip=(flip_path, rng.randint(1, max(1, weeks - 1))) if rng.random() < 0.15 else None,
        adoption=_adoption(rng, rank, edition),
        runner_factors=(rng.uniform(0.05, 0.5), rng.uniform(0.0, 0.4), rng.uniform(0.0, 0.8)),
        event_noise=rng.uniform(0.05, 0.25),
    )


def _assign_scenarios(seed: int, instances: int) -> list[str]:
    """A few instances drop, churn or reset their counters; the rest are steady or growing."""
    rng = random.Random(f"denomas-fleet:{seed}:scenarios")
    order = list(range(instances))
    rng.shuffle(order)
    special = ["drop"] * max(1, round(instances * 0.06)) + ["churn"] * max(1, round(instances * 0.08)) + ["reset"]
    scenarios = ["steady"] * instances
    for position, index in enumerate(order):
        if position < len(special):
            scenarios[index] = special[position]
        elif rng.random() < 0.4:
            scenarios[index] = "growth"
    return scenarios


def _active_users(inst: _Instance, week: int) -> int:
    users = inst.base_users * (1.0 + inst.growth) ** week * inst.rng.uniform(0.98, 1.02)
    if inst.scenario == "drop" and inst.drop_start <= week < inst.drop_start + inst.drop_weeks:
        users *= inst.drop_factor
    return max(1, round(users))


def _recorded_at(inst: _Instance, start: date, week: int) -> str:
    day = start + timedelta(weeks=week, days=(inst.weekday - start.weekday()) % 7)
    moment = datetime.combine(day, time(inst.hour, inst.minute, inst.rng.randint(0, 30)), tzinfo=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{inst.rng.randint(0, 999):03d}+00:00"


def _upgrade(inst: _Instance, state: _State, week: int) -> None:
    """Move along the release train: eager instances follow quickly, periodic ones jump, stuck ones patch."""
    rng = inst.rng
    latest = min(len(_RELEASES) - 1, _LATEST_AT_START + week // 4)
    eager = inst.upgrade_mode == "eager" and rng.random() < 0.6
    periodic = inst.upgrade_mode == "periodic" and week > 0 and week % inst.upgrade_every == 0
    target = latest if eager or periodic else state.release
    if target > state.release:
        state.release, state.patch = target, rng.randint(0, 3)
    elif rng.random() < 0.08:
        state.patch += 1


def _put_identity(b: _Builder, inst: _Instance, state: _State, recorded_at: str, users: int) -> None:
    major, minor = _RELEASES[state.release]
    b.put("uuid", inst.uuid)
    b.put("hostname", inst.hostname)
    b.put("version", f"{major}.{minor}.{state.patch}{inst.version_suffix}")
    b.put("installation_type", inst.installation_type)
    b.put("active_user_count", users)
    b.put("recorded_at", recorded_at)
    b.put("edition", inst.edition)


def _put_license(b: _Builder, inst: _Instance, state: _State, week: int, users: int) -> None:
    if not inst.licenses:
        return
    lic = [item for item in inst.licenses if item.from_week <= week][-1]
    b.put("license_md5", lic.key_md5)
    b.put("license_sha256", lic.key_sha256)
    b.put("license_id", lic.license_id)
    b.put("historical_max_users", state.historical_max)
    b.put("license_user_count", lic.seats)
    b.put("license_billable_users", max(1, round(users * inst.rng.uniform(0.85, 0.98))))
    b.put("license_starts_at", lic.starts_at.isoformat())
    b.put("license_expires_at", lic.expires_at.isoformat())
    b.put("license_plan", lic.plan)
    b.put("license_trial", lic.trial)
    b.put("license_subscription_id", lic.subscription_id)
    b.put("license_trial_ends_on", lic.expires_at.isoformat() if lic.trial else None)


def _put_events(b: _Builder, inst: _Instance, state: _State, week: int, users: int) -> None:
    rng = inst.rng
    reset = week == inst.reset_week
    for all_path, path28, path7, rate, gate in _EVENTS:
        if not _allowed(inst.rank, inst.edition, gate):
            continue
        expected = rate * users * rng.uniform(1 - inst.event_noise, 1 + inst.event_noise)
        increment = int(expected + rng.random())  # stochastic rounding keeps rare events possible
        if all_path not in state.totals:
            state.totals[all_path] = int(rate * inst.base_users * inst.age_weeks * rng.uniform(0.4, 1.0))
            state.recent[all_path] = [increment] * 3
        if reset:  # restored from scratch: the all-time history is gone
            state.totals[all_path] = 0
            state.recent[all_path] = []
        state.totals[all_path] += increment
        state.recent[all_path] = (state.recent[all_path] + [increment])[-4:]
        b.count(all_path, state.totals[all_path])
        if path28:
            b.count(path28, sum(state.recent[all_path]))
        if path7:
            b.count(path7, increment)


def _put_users(b: _Builder, inst: _Instance, state: _State, week: int, users: int) -> None:
    # One activity level and one 7d/28d ratio per week keep totals >= parts and 7d <= 28d after rounding.
    level = inst.rng.uniform(0.9, 1.0)
    weekly_share = inst.rng.uniform(0.45, 0.75)
    reset = week == inst.reset_week
    for path28, path7, all_path, _, _, _ in _USERS:
        share = inst.adoption.get(path28)
        if share is None:
            continue
        monthly = min(users, round(users * share * level))
        b.count(path28, monthly, state.user_count_markers)
        if path7:
            b.count(path7, round(monthly * weekly_share))
        if all_path:
            previous = 0 if reset else state.user_totals.get(all_path, round(monthly * inst.rng.uniform(1.5, 3.0)))
            state.user_totals[all_path] = max(previous, monthly) + round(monthly * 0.03)
            b.count(all_path, state.user_totals[all_path])
        if path28 == f"{_UAM}.manage.events":
            _put_auth_providers(b, inst, monthly)


def _put_auth_providers(b: _Builder, inst: _Instance, monthly: int) -> None:
    """Split of the month's active users by sign-in provider (an object metric)."""
    providers = ["standard"]
    if inst.flags.get("ldap_enabled"):
        providers.append("ldapmain")
    if inst.flags.get("omniauth_enabled"):
        providers += ["saml", "google_oauth2"] if inst.rank else ["google_oauth2"]
    remaining = monthly
    for provider in providers[1:]:
        share = round(remaining * inst.rng.uniform(0.2, 0.6))
        b.count(f"{_UAM}.manage.user_auth_by_provider.{provider}", share)
        remaining -= share
    b.count(f"{_UAM}.manage.user_auth_by_provider.standard", remaining)


def _put_runners(b: _Builder, inst: _Instance, users: int) -> None:
    rng = inst.rng
    scale = math.sqrt(users)
    shared = inst.flags.get("gitlab_shared_runners_enabled", True)
    active = {}
    for kind, factor in zip(_RUNNER_TYPES, inst.runner_factors, strict=True):
        active[kind] = 0 if kind == "instance" and not shared else round(scale * factor)
    inactive = round(sum(active.values()) * rng.uniform(0.05, 0.3))
    b.count("counts.ci_runners", sum(active.values()) + inactive)
    for kind in _RUNNER_TYPES:
        b.count(f"counts.ci_runners_{kind}_type_active", active[kind])
    for kind in _RUNNER_TYPES:
        b.count(f"counts.ci_runners_{kind}_type_active_online", round(active[kind] * rng.uniform(0.6, 1.0)))


def _put_flags(b: _Builder, inst: _Instance, week: int) -> None:
    for path, value in inst.flags.items():
        if inst.flag_flip and inst.flag_flip[0] == path and week >= inst.flag_flip[1]:
            value = not value  # an admin changed the setting once
        b.put(path, value)
    if inst.rank >= 1:
        b.count("counts.geo_nodes", 1 + inst.index % 2 if inst.flags.get("geo_enabled") else 0)
        b.count("counts.ldap_users", round(inst.base_users * 0.8) if inst.flags.get("ldap_enabled") else 0)


def _put_components(b: _Builder, inst: _Instance, state: _State, nodes: list[_Node]) -> None:
    major, minor = _RELEASES[state.release]
    b.put("git.version.major", 2)
    b.put("git.version.minor", 43 + state.release // 4)
    b.put("git.version.patch", state.release % 3)
    gitaly_nodes = sum(1 for node in nodes if node.role in ("all", "gitaly"))
    b.put("gitaly.version", f"{major}.{minor}.{state.patch}")
    b.put("gitaly.servers", gitaly_nodes)
    b.put("gitaly.clusters", 1 if gitaly_nodes >= 3 else 0)
    b.put("gitaly.filesystems", ["EXT4"] if inst.operating_system != "el-9" else ["XFS"])
    b.put("gitlab_pages.enabled", inst.index % 3 == 0)
    b.put("gitlab_pages.version", f"{major}.{minor}.{state.patch}")
    if inst.flags.get("container_registry_enabled"):
        b.put("container_registry_server.vendor", "gitlab")
        b.put("container_registry_server.version", f"4.{minor}.0-gitlab")
        b.put("container_registry_server.db_enabled", major >= 18 and inst.index % 2 == 0)
    bundled_version = "16.8" if major >= 18 else "14.11"
    b.put("database.adapter", "postgresql")
    b.put("database.version", inst.db_version or bundled_version)
    b.put("database.pg_system_id", inst.pg_system_id)
    b.put("database.flavor", inst.db_flavor)


def _put_settings(b: _Builder, inst: _Instance) -> None:
    b.put("settings.gitaly_apdex", round(inst.rng.uniform(0.95, 0.999), 4))
    b.put("settings.operating_system", inst.operating_system)
    categories = ["standard", "subscription", "operational"]
    if inst.flags.get("settings.service_ping_features_enabled"):
        categories.append("optional")
    b.put("settings.collected_data_categories", categories)


def _week_nodes(inst: _Instance, week: int) -> list[_Node]:
    """Large instances add an app node at some week; a few of them scale down again instead."""
    if inst.scale_week is None or week < inst.scale_week or inst.scale_node is None:
        return inst.nodes
    if inst.index % 4 == 0 and len(inst.nodes) > 2:
        return inst.nodes[:-1]
    return inst.nodes + [inst.scale_node]


def _put_topology(b: _Builder, inst: _Instance, nodes: list[_Node], users: int) -> None:
    rng = inst.rng
    topology: dict[str, Any] = {}
    b.payload["topology"] = topology
    b.place(topology, "topology.duration_s", "duration_s", round(rng.uniform(0.01, 0.4) * len(nodes), 4))
    b.place(topology, "topology.failures", "failures", [])
    requests = round(users * rng.uniform(20, 60))
    b.place(topology, "topology.application_requests_per_hour", "application_requests_per_hour", requests)
    apdex = round(rng.uniform(0.95, 0.999), 3)
    b.place(topology, "topology.query_apdex_weekly_average", "query_apdex_weekly_average", apdex)
    load = min(0.95, 0.05 + users / (200.0 * sum(node.cpus for node in nodes)))
    entries: list[dict[str, Any]] = []
    b.place(topology, "topology.nodes", "nodes", entries)
    for i, node in enumerate(nodes):
        entries.append(_node_payload(b, inst, node, f"topology.nodes[{i}]", load))


def _node_payload(b: _Builder, inst: _Instance, node: _Node, prefix: str, load: float) -> dict[str, Any]:
    rng = inst.rng
    entry: dict[str, Any] = {}
    b.place(entry, f"{prefix}.node_memory_total_bytes", "node_memory_total_bytes", node.memory_bytes)
    b.place(entry, f"{prefix}.node_memory_utilization", "node_memory_utilization", round(rng.uniform(0.3, 0.85), 3))
    b.place(entry, f"{prefix}.node_cpus", "node_cpus", node.cpus)
    b.place(entry, f"{prefix}.node_cpu_utilization", "node_cpu_utilization", round(load * rng.uniform(0.7, 1.3), 3))
    entry["node_uname_info"] = {"machine": node.machine, "sysname": "Linux", "release": node.kernel}
    services: list[dict[str, Any]] = []
    entry["node_services"] = services
    names = list(_ROLE_SERVICES[node.role])
    if node.role in ("all", "app") and inst.flags.get("container_registry_enabled"):
        names.append("registry")
    for j, name in enumerate(names):
        services.append(_service_payload(b, rng, name, node.cpus, f"{prefix}.node_services[{j}]"))
    return entry


def _service_payload(b: _Builder, rng: random.Random, name: str, cpus: int, prefix: str) -> dict[str, Any]:
    processes, rss_each = _SERVICE_SHAPES[name]
    count = processes(cpus)
    rss = int(count * rss_each * rng.uniform(0.8, 1.2))
    service: dict[str, Any] = {"name": name}
    b.place(service, f"{prefix}.process_count", "process_count", count)
    b.place(service, f"{prefix}.process_memory_rss", "process_memory_rss", rss)
    b.place(service, f"{prefix}.process_memory_uss", "process_memory_uss", int(rss * rng.uniform(0.7, 0.85)))
    b.place(service, f"{prefix}.process_memory_pss", "process_memory_pss", int(rss * rng.uniform(0.8, 0.9)))
    if name == "web":
        service["server"] = "puma"
    return service


def _ping(inst: _Instance, state: _State, start: date, week: int) -> GeneratedPing:
    users = _active_users(inst, week)
    state.historical_max = max(state.historical_max, users)
    _upgrade(inst, state, week)
    recorded_at = _recorded_at(inst, start, week)
    nodes = _week_nodes(inst, week)
    b = _Builder(inst.rng)
    _put_identity(b, inst, state, recorded_at, users)
    _put_license(b, inst, state, week, users)
    _put_flags(b, inst, week)
    _put_runners(b, inst, users)
    _put_events(b, inst, state, week, users)
    _put_users(b, inst, state, week, users)
    _put_components(b, inst, state, nodes)
    _put_settings(b, inst)
    _put_topology(b, inst, nodes, users)
    return GeneratedPing(
        uuid=inst.uuid,
        hostname=inst.hostname,
        recorded_at=recorded_at,
        payload=b.payload,
        valid=True,
        defect=None,
        expected_metrics=b.metrics,
        scenario=inst.scenario,
        week=week,
    )


def _break(ping: GeneratedPing, defect: str, rng: random.Random) -> None:
    """Make the payload violate the Service Ping schema the way real broken clients do."""
    payload = ping.payload
    if defect == "missing_uuid":
        del payload["uuid"]
    elif defect == "bad_version":
        payload["version"] = rng.choice(("VERSION", "17.x", "18.2"))
    elif defect == "bad_recorded_at":
        payload["recorded_at"] = rng.choice(("last thursday", "Thu Jun  4 10:44:00 UTC 2026", "1780569840"))
    elif defect == "counts_not_object":
        payload["counts"] = [{key: value} for key, value in payload["counts"].items()]
    ping.valid, ping.defect = False, defect


def generate_fleet(instances: int, weeks: int, seed: int = 42, start: date = date(2026, 6, 1)) -> list[GeneratedPing]:
    """Weekly pings of ``instances`` installations over ``weeks`` weeks, ordered by recorded_at."""
    scenarios = _assign_scenarios(seed, instances)
    pings: list[GeneratedPing] = []
    for index in range(instances):
        inst = _make_instance(seed, index, scenarios[index], weeks, start)
        state = _State(historical_max=round(inst.base_users * inst.rng.uniform(1.0, 1.15)), release=inst.release)
        for week in range(weeks):
            if inst.churn_week is not None and week >= inst.churn_week:
                break  # the instance stopped sending
            pings.append(_ping(inst, state, start, week))
    pings.sort(key=lambda ping: (ping.recorded_at, ping.uuid))
    rng = random.Random(f"denomas-fleet:{seed}:defects")
    if pings:
        chosen = sorted(rng.sample(range(len(pings)), max(1, round(len(pings) * DEFECT_RATE))))
        for n, position in enumerate(chosen):
            _break(pings[position], DEFECTS[n % len(DEFECTS)], rng)
    return pings


@dataclass(frozen=True)
class FleetLicense:
    """One license of the sample fleet, for the Seat Link and reference-data generators."""

    instance_uuid: str
    hostname: str
    edition: str
    scenario: str
    key: str
    md5: str
    sha256: str
    license_id: int
    seats: int
    plan: str
    trial: bool
    subscription_id: str | None
    starts_at: date
    expires_at: date
    from_week: int
    churn_week: int | None  # the instance stops reporting from this week on


def fleet_licenses(instances: int, weeks: int, seed: int = 42, start: date = date(2026, 6, 1)) -> list[FleetLicense]:
    """Every license of the instances `generate_fleet` builds with the same arguments (same seed, same keys)."""
    scenarios = _assign_scenarios(seed, instances)
    result = []
    for index in range(instances):
        inst = _make_instance(seed, index, scenarios[index], weeks, start)
        result.extend(
            FleetLicense(inst.uuid, inst.hostname, inst.edition, inst.scenario, lic.key, lic.key_md5, lic.key_sha256,
                         lic.license_id, lic.seats, lic.plan, lic.trial, lic.subscription_id, lic.starts_at,
                         lic.expires_at, lic.from_week, inst.churn_week)
            for lic in inst.licenses
        )
    return result


def fleet_summary(pings: list[GeneratedPing]) -> dict[str, Any]:
    valid = [ping for ping in pings if ping.valid]
    scenarios = {ping.uuid: ping.scenario for ping in pings}
    return {
        "pings": len(pings),
        "valid": len(valid),
        "invalid": len(pings) - len(valid),
        "instances": len(scenarios),
        "metric_rows": sum(len(ping.expected_metrics) for ping in valid),
        "defects": dict(Counter(ping.defect for ping in pings if ping.defect)),
        "scenarios": dict(Counter(scenarios.values())),
    }
