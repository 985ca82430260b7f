"""What the sample fleet's instances and their pings are drawn from, besides the metrics (fleet/ping_metrics.py):
editions and tier gates, installation types, sizes, releases, host names, kernels, operating systems, database
flavors, the services and their processes on each node role, and the schema defects a few pings carry
(fleet/instances.py and fleet/pings.py draw from these)."""

from __future__ import annotations

from typing import Any

DEFECTS = ("missing_uuid", "bad_version", "bad_recorded_at", "counts_not_object")


DEFECT_RATE = 0.03


# edition -> (license plan, tier rank). The product maps ultimate->EEU, premium->EEP, starter->EES, else EE.
EDITIONS: dict[str, tuple[str | None, int]] = {
    "CE": (None, 0),
    "EE Free": (None, 0),
    "EE": ("early_adopter", 1),
    "EES": ("starter", 1),
    "EEP": ("premium", 1),
    "EEU": ("ultimate", 2),
}


EDITION_WEIGHTS = {"CE": 25, "EE Free": 20, "EE": 3, "EES": 5, "EEP": 30, "EEU": 17}


INSTALL_WEIGHTS = {
    "omnibus-gitlab": 60,
    "gitlab-helm-chart": 18,
    "docker": 14,
    "source": 6,
    "gitlab-development-kit": 2,
}


# size -> (weight, active-user range, node-count range)
SIZES = {
    "small": (40, (3, 40), (1, 1)),
    "medium": (35, (40, 400), (1, 2)),
    "large": (18, (400, 3000), (3, 5)),
    "xl": (7, (3000, 25000), (6, 9)),
}


GATE_RANK = {"free": 0, "ee": 0, "premium": 1, "ultimate": 2}


# Monthly releases; at the fleet's start 18.1 is the newest and one more appears every four weeks.
RELEASES = [(17, minor) for minor in range(12)] + [(18, minor) for minor in range(12)]


LATEST_AT_START = RELEASES.index((18, 1))


COMPANIES = (
    "northwind", "contoso", "initech", "globex", "umbrella", "hooli", "vandelay", "acme", "stark",
    "wayne", "tyrell", "cyberdyne", "soylent", "wonka", "oceanic", "aperture", "massive", "monarch",
)  # fmt: skip


HOST_PREFIXES = ("git", "denomas", "code", "scm", "dev")


KERNELS = ("5.15.0-105-generic", "6.1.0-18-amd64", "5.14.0-427.el9.x86_64", "6.8.0-40-generic")


OPERATING_SYSTEMS = ("ubuntu-22.04", "ubuntu-24.04", "debian-12", "el-9", "el-8", "amazon-2023", "opensuse_leap-15.5")


DB_FLAVORS = (
    "PostgreSQL on Amazon RDS",
    "Amazon Aurora PostgreSQL",
    "Cloud SQL for PostgreSQL",
    "Azure Database for PostgreSQL - Flexible Server",
)


# service -> (processes on a node with N cpus, resident bytes per process)
SERVICE_SHAPES: dict[str, tuple[Any, int]] = {
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


ROLE_SERVICES = {
    "all": ("web", "sidekiq", "workhorse", "redis", "postgres", "gitaly", "prometheus", "node-exporter"),
    "app": ("web", "sidekiq", "workhorse", "node-exporter"),
    "data": ("postgres", "redis", "prometheus", "node-exporter"),
    "gitaly": ("gitaly", "node-exporter"),
    "sidekiq": ("sidekiq", "node-exporter"),
}
