"""The sample fleet's instances: editions, licenses, nodes, adoption and scenario, drawn once per instance from
the seed (fleet/pings.py turns them into weekly pings)."""

from __future__ import annotations

import hashlib
import math
import random
import uuid as uuidlib
from dataclasses import dataclass, field
from datetime import date, timedelta

from fleet.ping_catalog import (
    COMPANIES,
    DB_FLAVORS,
    EDITION_WEIGHTS,
    EDITIONS,
    GATE_RANK,
    HOST_PREFIXES,
    INSTALL_WEIGHTS,
    KERNELS,
    LATEST_AT_START,
    OPERATING_SYSTEMS,
    SIZES,
)
from fleet.ping_metrics import FLAGS, USERS


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
class Node:
    role: str
    cpus: int
    memory_bytes: int
    machine: str
    kernel: str


@dataclass
class Instance:
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
    nodes: list[Node]
    scale_week: int | None
    scale_node: Node | None
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
class State:
    """What an instance carries from one week to the next."""

    totals: dict[str, int] = field(default_factory=dict)
    recent: dict[str, list[int]] = field(default_factory=dict)
    user_totals: dict[str, int] = field(default_factory=dict)
    historical_max: int = 0
    user_count_markers: dict[str, int | None] = field(default_factory=dict)  # sticky error markers, see _Builder
    release: int = 0
    patch: int = 0


def _pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def allowed(inst_rank: int, edition: str, gate: str) -> bool:
    if gate == "ee" and edition == "CE":
        return False
    return inst_rank >= GATE_RANK[gate]


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


def _nodes(rng: random.Random, size: str) -> list[Node]:
    low, high = SIZES[size][2]
    count = rng.randint(low, high)
    roles = ["all"] if count == 1 else ["app", "data", "gitaly", "app", "sidekiq", "gitaly", "app", "sidekiq", "app"]
    machine = "aarch64" if rng.random() < 0.15 else "x86_64"
    kernel = rng.choice(KERNELS)
    cpu_choices = {"small": (2, 4), "medium": (4, 8, 16), "large": (8, 16, 32), "xl": (16, 32, 64)}[size]
    return [_node(rng, roles[i], cpu_choices, machine, kernel) for i in range(count)]


def _node(rng: random.Random, role: str, cpu_choices: tuple[int, ...], machine: str, kernel: str) -> Node:
    cpus = rng.choice(cpu_choices)
    memory = cpus * rng.choice((2, 4, 8)) * 1024**3
    return Node(role=role, cpus=cpus, memory_bytes=memory, machine=machine, kernel=kernel)


def _adoption(rng: random.Random, rank: int, edition: str) -> dict[str, float]:
    adoption: dict[str, float] = {}
    for path28, _, _, (low, high), gate, components in USERS:
        if not allowed(rank, edition, gate):
            continue
        share = rng.uniform(low, high)
        parts = [adoption[c] for c in components if c in adoption]
        if components:
            share = min(0.8, max(parts, default=0.0) + share)
        adoption[path28] = share
    return adoption


def make_instance(seed: int, index: int, scenario: str, weeks: int, start: date) -> Instance:
    rng = random.Random(f"denomas-fleet:{seed}:{index}")
    uid = str(uuidlib.UUID(int=rng.getrandbits(128), version=4))
    weekday, hour, minute = _schedule(uid)
    installation_type = _pick(rng, INSTALL_WEIGHTS)
    edition = "EE" if installation_type == "gitlab-development-kit" else _pick(rng, EDITION_WEIGHTS)
    plan, rank = EDITIONS[edition]
    size = _pick(rng, {name: spec[0] for name, spec in SIZES.items()})
    base_users = rng.randint(*SIZES[size][1])
    nodes = _nodes(rng, size)
    scale_week = rng.randint(1, max(1, weeks - 1)) if len(nodes) > 1 and rng.random() < 0.5 else None
    scale_node = _node(rng, "app", (8, 16, 32), nodes[0].machine, nodes[0].kernel) if scale_week is not None else None
    upgrade_mode = rng.choices(("eager", "periodic", "stuck"), weights=(45, 40, 15))[0]
    release = {
        "eager": LATEST_AT_START - rng.randint(0, 1),
        "periodic": LATEST_AT_START - rng.randint(2, 7),
        "stuck": rng.randint(0, 6),
    }[upgrade_mode]
    if installation_type == "gitlab-development-kit":
        suffix = "-pre"
    else:
        suffix = "-ee" if edition != "CE" and installation_type == "omnibus-gitlab" and rng.random() < 0.3 else ""
    bundled_db = installation_type in ("omnibus-gitlab", "docker", "gitlab-development-kit")
    flags = {path: rng.random() < p for path, p, gate in FLAGS if allowed(rank, edition, gate)}
    flip_path = rng.choice(sorted(flags))
    return Instance(
        index=index,
        rng=rng,
        uuid=uid,
        hostname=f"{rng.choice(HOST_PREFIXES)}.{rng.choice(COMPANIES)}-{index}.example",
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
        db_flavor=None if bundled_db or rng.random() < 0.3 else rng.choice(DB_FLAVORS),
        db_version=None if bundled_db else rng.choice(("14.15", "15.10", "16.6")),
        operating_system=rng.choice(OPERATING_SYSTEMS),
        flags=flags,
        flag_flip=(flip_path, rng.randint(1, max(1, weeks - 1))) if rng.random() < 0.15 else None,
        adoption=_adoption(rng, rank, edition),
        runner_factors=(rng.uniform(0.05, 0.5), rng.uniform(0.0, 0.4), rng.uniform(0.0, 0.8)),
        event_noise=rng.uniform(0.05, 0.25),
    )


def assign_scenarios(seed: int, instances: int) -> list[str]:
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
