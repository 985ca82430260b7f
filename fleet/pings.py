"""A deterministic sample fleet of self-managed Denomas instances sending weekly Service Pings.

Used by tests, demos and benchmarks. Every numeric or boolean value placed into a payload is recorded in
``GeneratedPing.expected_metrics`` at the moment it is placed, so tests can compare the warehouse against
an independent record instead of re-flattening the same JSON the pipeline flattens.

Everything derives from ``seed``: one ``random.Random`` per instance (seeded from a string, which Python
hashes deterministically), one for the fleet-level choices (scenarios, defects).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import orjson

from fleet.instances import Instance, Node, State, allowed, assign_scenarios, make_instance
from fleet.ping_catalog import (
    DEFECT_RATE,
    DEFECTS,
    ERROR_MARKER_RATE,
    ERROR_MARKERS,
    EVENTS,
    LATEST_AT_START,
    NOT_MEASUREMENTS,
    RELEASES,
    ROLE_SERVICES,
    RUNNER_TYPES,
    SERVICE_SHAPES,
    UAM,
    USERS,
)


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


def _active_users(inst: Instance, week: int) -> int:
    users = inst.base_users * (1.0 + inst.growth) ** week * inst.rng.uniform(0.98, 1.02)
    if inst.scenario == "drop" and inst.drop_start <= week < inst.drop_start + inst.drop_weeks:
        users *= inst.drop_factor
    return max(1, round(users))


def _recorded_at(inst: Instance, start: date, week: int) -> str:
    day = start + timedelta(weeks=week, days=(inst.weekday - start.weekday()) % 7)
    moment = datetime.combine(day, time(inst.hour, inst.minute, inst.rng.randint(0, 30)), tzinfo=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{inst.rng.randint(0, 999):03d}+00:00"


def _upgrade(inst: Instance, state: State, week: int) -> None:
    """Move along the release train: eager instances follow quickly, periodic ones jump, stuck ones patch."""
    rng = inst.rng
    latest = min(len(RELEASES) - 1, LATEST_AT_START + week // 4)
    eager = inst.upgrade_mode == "eager" and rng.random() < 0.6
    periodic = inst.upgrade_mode == "periodic" and week > 0 and week % inst.upgrade_every == 0
    target = latest if eager or periodic else state.release
    if target > state.release:
        state.release, state.patch = target, rng.randint(0, 3)
    elif rng.random() < 0.08:
        state.patch += 1


def _put_identity(b: _Builder, inst: Instance, state: State, recorded_at: str, users: int) -> None:
    major, minor = RELEASES[state.release]
    b.put("uuid", inst.uuid)
    b.put("hostname", inst.hostname)
    b.put("version", f"{major}.{minor}.{state.patch}{inst.version_suffix}")
    b.put("installation_type", inst.installation_type)
    b.put("active_user_count", users)
    b.put("recorded_at", recorded_at)
    b.put("edition", inst.edition)


def _put_license(b: _Builder, inst: Instance, state: State, week: int, users: int) -> None:
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


def _put_events(b: _Builder, inst: Instance, state: State, week: int, users: int) -> None:
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


def _put_users(b: _Builder, inst: Instance, state: State, week: int, users: int) -> None:
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


def _put_auth_providers(b: _Builder, inst: Instance, monthly: int) -> None:
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


def _put_runners(b: _Builder, inst: Instance, users: int) -> None:
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


def _put_flags(b: _Builder, inst: Instance, week: int) -> None:
    for path, value in inst.flags.items():
        if inst.flag_flip and inst.flag_flip[0] == path and week >= inst.flag_flip[1]:
            value = not value  # an admin changed the setting once
        b.put(path, value)
    if inst.rank >= 1:
        b.count("counts.geo_nodes", 1 + inst.index % 2 if inst.flags.get("geo_enabled") else 0)
        b.count("counts.ldap_users", round(inst.base_users * 0.8) if inst.flags.get("ldap_enabled") else 0)


def _put_components(b: _Builder, inst: Instance, state: State, nodes: list[Node]) -> None:
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


def _put_settings(b: _Builder, inst: Instance) -> None:
    b.put("settings.gitaly_apdex", round(inst.rng.uniform(0.95, 0.999), 4))
    b.put("settings.operating_system", inst.operating_system)
    categories = ["standard", "subscription", "operational"]
    if inst.flags.get("settings.service_ping_features_enabled"):
        categories.append("optional")
    b.put("settings.collected_data_categories", categories)


def _week_nodes(inst: Instance, week: int) -> list[Node]:
    """Large instances add an app node at some week; a few of them scale down again instead."""
    if inst.scale_week is None or week < inst.scale_week or inst.scale_node is None:
        return inst.nodes
    if inst.index % 4 == 0 and len(inst.nodes) > 2:
        return inst.nodes[:-1]
    return inst.nodes + [inst.scale_node]


def _put_topology(b: _Builder, inst: Instance, nodes: list[Node], users: int) -> None:
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


def _node_payload(b: _Builder, inst: Instance, node: Node, prefix: str, load: float) -> dict[str, Any]:
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


def _service_payload(b: _Builder, rng: random.Random, name: str, cpus: int, prefix: str) -> dict[str, Any]:
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


def _ping(inst: Instance, state: State, start: date, week: int) -> GeneratedPing:
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
    scenarios = assign_scenarios(seed, instances)
    pings: list[GeneratedPing] = []
    for index in range(instances):
        inst = make_instance(seed, index, scenarios[index], weeks, start)
        state = State(historical_max=round(inst.base_users * inst.rng.uniform(1.0, 1.15)), release=inst.release)
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
    scenarios = assign_scenarios(seed, instances)
    result = []
    for index in range(instances):
        inst = make_instance(seed, index, scenarios[index], weeks, start)
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
