"""A deterministic sample fleet of self-managed Denomas instances sending weekly Service Pings.

Used by tests, demos and benchmarks. Every numeric or boolean value placed into a payload is recorded in
``GeneratedPing.expected_metrics`` at the moment it is placed, so tests can compare the warehouse against
an independent record instead of re-flattening the same JSON the pipeline flattens. This module moves each instance
through its weeks (users, upgrades, nodes), breaks a few pings and orders them; fleet/ping_payload.py writes one
week's payload.

Everything derives from ``seed``: one ``random.Random`` per instance (seeded from a string, which Python
hashes deterministically), one for the fleet-level choices (scenarios, defects).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import orjson

from fleet.instances import Instance, Node, State, assign_scenarios, make_instance
from fleet.ping_catalog import DEFECT_RATE, DEFECTS, LATEST_AT_START, RELEASES
from fleet.ping_payload import build_payload


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


def _week_nodes(inst: Instance, week: int) -> list[Node]:
    """Large instances add an app node at some week; a few of them scale down again instead."""
    if inst.scale_week is None or week < inst.scale_week or inst.scale_node is None:
        return inst.nodes
    if inst.index % 4 == 0 and len(inst.nodes) > 2:
        return inst.nodes[:-1]
    return inst.nodes + [inst.scale_node]


def _ping(inst: Instance, state: State, start: date, week: int) -> GeneratedPing:
    users = _active_users(inst, week)
    state.historical_max = max(state.historical_max, users)
    _upgrade(inst, state, week)
    recorded_at = _recorded_at(inst, start, week)
    nodes = _week_nodes(inst, week)
    b = build_payload(inst, state, week, users, recorded_at, nodes)
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
