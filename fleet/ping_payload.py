"""One sample Service Ping payload, section by section (identity, license, flags, runners, event counters, user
counts, components, settings, topology), drawn from the instance's random stream. Every numeric or boolean leaf is
recorded as it is placed (`PayloadBuilder.metrics`): the independent record tests compare the warehouse against.
fleet/pings.py decides the week's users, release and nodes and calls `build_payload`.
"""

from __future__ import annotations

import math
import random
from typing import Any

from fleet.instances import Instance, Node, State, allowed
from fleet.ping_catalog import RELEASES, ROLE_SERVICES, SERVICE_SHAPES
from fleet.ping_metrics import ERROR_MARKER_RATE, ERROR_MARKERS, EVENTS, NOT_MEASUREMENTS, RUNNER_TYPES, UAM, USERS


class PayloadBuilder:
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



def _put_identity(b: PayloadBuilder, inst: Instance, state: State, recorded_at: str, users: int) -> None:
    major, minor = RELEASES[state.release]
    b.put("uuid", inst.uuid)
    b.put("hostname", inst.hostname)
    b.put("version", f"{major}.{minor}.{state.patch}{inst.version_suffix}")
    b.put("installation_type", inst.installation_type)
    b.put("active_user_count", users)
    b.put("recorded_at", recorded_at)
    b.put("edition", inst.edition)


def _put_license(b: PayloadBuilder, inst: Instance, state: State, week: int, users: int) -> None:
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


def _put_events(b: PayloadBuilder, inst: Instance, state: State, week: int, users: int) -> None:
    rng = inst.rng
    reset = week == inst.reset_week
    for all_path, path28, path7, rate, gate in EVENTS:
        if not allowed(inst.rank, inst.edition, gate):
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


def _put_users(b: PayloadBuilder, inst: Instance, state: State, week: int, users: int) -> None:
    # One activity level and one 7d/28d ratio per week keep totals >= parts and 7d <= 28d after rounding.
    level = inst.rng.uniform(0.9, 1.0)
    weekly_share = inst.rng.uniform(0.45, 0.75)
    reset = week == inst.reset_week
    for path28, path7, all_path, _, _, _ in USERS:
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
        if path28 == f"{UAM}.manage.events":
            _put_auth_providers(b, inst, monthly)


def _put_auth_providers(b: PayloadBuilder, inst: Instance, monthly: int) -> None:
    """Split of the month's active users by sign-in provider (an object metric)."""
    providers = ["standard"]
    if inst.flags.get("ldap_enabled"):
        providers.append("ldapmain")
    if inst.flags.get("omniauth_enabled"):
        providers += ["saml", "google_oauth2"] if inst.rank else ["google_oauth2"]
    remaining = monthly
    for provider in providers[1:]:
        share = round(remaining * inst.rng.uniform(0.2, 0.6))
        b.count(f"{UAM}.manage.user_auth_by_provider.{provider}", share)
        remaining -= share
    b.count(f"{UAM}.manage.user_auth_by_provider.standard", remaining)


def _put_runners(b: PayloadBuilder, inst: Instance, users: int) -> None:
    rng = inst.rng
    scale = math.sqrt(users)
    shared = inst.flags.get("gitlab_shared_runners_enabled", True)
    active = {}
    for kind, factor in zip(RUNNER_TYPES, inst.runner_factors, strict=True):
        active[kind] = 0 if kind == "instance" and not shared else round(scale * factor)
    inactive = round(sum(active.values()) * rng.uniform(0.05, 0.3))
    b.count("counts.ci_runners", sum(active.values()) + inactive)
    for kind in RUNNER_TYPES:
        b.count(f"counts.ci_runners_{kind}_type_active", active[kind])
    for kind in RUNNER_TYPES:
        b.count(f"counts.ci_runners_{kind}_type_active_online", round(active[kind] * rng.uniform(0.6, 1.0)))


def _put_flags(b: PayloadBuilder, inst: Instance, week: int) -> None:
    for path, value in inst.flags.items():
        if inst.flag_flip and inst.flag_flip[0] == path and week >= inst.flag_flip[1]:
            value = not value  # an admin changed the setting once
        b.put(path, value)
    if inst.rank >= 1:
        b.count("counts.geo_nodes", 1 + inst.index % 2 if inst.flags.get("geo_enabled") else 0)
        b.count("counts.ldap_users", round(inst.base_users * 0.8) if inst.flags.get("ldap_enabled") else 0)


def _put_components(b: PayloadBuilder, inst: Instance, state: State, nodes: list[Node]) -> None:
    major, minor = RELEASES[state.release]
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


def _put_settings(b: PayloadBuilder, inst: Instance) -> None:
    b.put("settings.gitaly_apdex", round(inst.rng.uniform(0.95, 0.999), 4))
    b.put("settings.operating_system", inst.operating_system)
    categories = ["standard", "subscription", "operational"]
    if inst.flags.get("settings.service_ping_features_enabled"):
        categories.append("optional")
    b.put("settings.collected_data_categories", categories)



def _put_topology(b: PayloadBuilder, inst: Instance, nodes: list[Node], users: int) -> None:
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


def _node_payload(b: PayloadBuilder, inst: Instance, node: Node, prefix: str, load: float) -> dict[str, Any]:
    rng = inst.rng
    entry: dict[str, Any] = {}
    b.place(entry, f"{prefix}.node_memory_total_bytes", "node_memory_total_bytes", node.memory_bytes)
    b.place(entry, f"{prefix}.node_memory_utilization", "node_memory_utilization", round(rng.uniform(0.3, 0.85), 3))
    b.place(entry, f"{prefix}.node_cpus", "node_cpus", node.cpus)
    b.place(entry, f"{prefix}.node_cpu_utilization", "node_cpu_utilization", round(load * rng.uniform(0.7, 1.3), 3))
    entry["node_uname_info"] = {"machine": node.machine, "sysname": "Linux", "release": node.kernel}
    services: list[dict[str, Any]] = []
    entry["node_services"] = services
    names = list(ROLE_SERVICES[node.role])
    if node.role in ("all", "app") and inst.flags.get("container_registry_enabled"):
        names.append("registry")
    for j, name in enumerate(names):
        services.append(_service_payload(b, rng, name, node.cpus, f"{prefix}.node_services[{j}]"))
    return entry


def _service_payload(b: PayloadBuilder, rng: random.Random, name: str, cpus: int, prefix: str) -> dict[str, Any]:
    processes, rss_each = SERVICE_SHAPES[name]
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


def build_payload(inst: Instance, state: State, week: int, users: int, recorded_at: str,
                  nodes: list[Node]) -> PayloadBuilder:
    """The week's payload, its sections in a fixed order (the random draws depend on it)."""
    b = PayloadBuilder(inst.rng)
    _put_identity(b, inst, state, recorded_at, users)
    _put_license(b, inst, state, week, users)
    _put_flags(b, inst, week)
    _put_runners(b, inst, users)
    _put_events(b, inst, state, week, users)
    _put_users(b, inst, state, week, users)
    _put_components(b, inst, state, nodes)
    _put_settings(b, inst)
    _put_topology(b, inst, nodes, users)
    return b
