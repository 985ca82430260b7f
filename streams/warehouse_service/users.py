"""Users of the warehouse service, from a YAML (or TOML) file. Passwords are stored as sha256 hex, never in clear.

    users:
      default: {}                      # no password: accepted from loopback addresses only
      ingest:
        password_sha256_hex: 9f86d0...  # `denomas-usage`'s workers
      analyst:
        password_sha256_hex: 5e8848...
        readonly: 1                    # 1: reads only, no settings changes; 2: reads only, settings allowed
        roles: [analyst]               # analyst, customer_success, finance, admin, writer (README "Roles")
        settings: {max_execution_time: 60}
        networks: [127.0.0.0/8, "::1/128", 10.0.0.0/8]

Without a file there is one user, `default`, without password, loopback only. A user without `roles` is not
restricted (as ClickHouse's `default`); give every person a role.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from streams.warehouse_service.errors import ClickHouseError

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
# A readonly user's queries stop after this long unless its settings say otherwise: analysts' queries are bounded.
READONLY_MAX_EXECUTION_TIME = 120

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class User:
    name: str
    password_sha256_hex: str | None = None  # None: no password
    readonly: int = 0
    roles: tuple[str, ...] = ()
    settings: Mapping[str, str] = field(default_factory=dict)
    networks: tuple[IpNetwork, ...] = LOOPBACK

    def query_settings(self) -> dict[str, str]:
        """Settings applied to each of this user's queries (before the request's own)."""
        settings = dict(self.settings)
        if self.readonly:
            settings.setdefault("max_execution_time", str(READONLY_MAX_EXECUTION_TIME))
        return settings


def _user(name: str, spec: Mapping[str, Any]) -> User:
    if "password" in spec:
        raise ValueError(f"user {name}: store password_sha256_hex, never the password in clear")
    digest = spec.get("password_sha256_hex")
    if digest is not None and (len(str(digest)) != 64 or any(c not in "0123456789abcdef" for c in str(digest).lower())):
        raise ValueError(f"user {name}: password_sha256_hex must be 64 hex digits")
    readonly = int(spec.get("readonly", 0))
    if readonly not in (0, 1, 2):
        raise ValueError(f"user {name}: readonly must be 0, 1 or 2")
    networks = tuple(ipaddress.ip_network(str(n), strict=False) for n in spec.get("networks", ())) or (
        LOOPBACK if digest is None else (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")))
    return User(name=name, password_sha256_hex=str(digest).lower() if digest else None, readonly=readonly,
                roles=tuple(spec.get("roles", ())), networks=networks,
                settings={str(k): str(v) for k, v in (spec.get("settings") or {}).items()})


def load_users(path: Path | None) -> dict[str, User]:
    if path is None:
        return {"default": User("default")}
    text = path.read_text()
    doc = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    users = (doc or {}).get("users")
    if not isinstance(users, Mapping) or not users:
        raise ValueError(f"{path}: expected a `users:` mapping with at least one user")
    return {str(name): _user(str(name), spec or {}) for name, spec in users.items()}


def hash_password(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def authenticate(users: Mapping[str, User], name: str, password: str, peer: str | None) -> User:
    """The user, or ClickHouse's AUTHENTICATION_FAILED (same answer for unknown user and wrong password)."""
    user = users.get(name)
    ok = user is not None and _address_allowed(user, peer)
    if user is not None and user.password_sha256_hex is not None:
        ok = ok and hmac.compare_digest(hash_password(password), user.password_sha256_hex)
    elif user is not None:
        ok = ok and password == ""
    if not ok or user is None:
        raise ClickHouseError(516, "AUTHENTICATION_FAILED",
                              f"{name}: Authentication failed: password is incorrect, or there is no user with such "
                              "name")
    return user


def _address_allowed(user: User, peer: str | None) -> bool:
    if peer is None:
        return False
    try:
        address = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in user.networks)


def write_demo_users(directory: Path) -> tuple[Path, str]:
    """The demo's users file: `default` (loopback, unrestricted: the URLs the demo prints) and `writer` (role
    writer, a fresh random password: the worker's user). Returns the file and the writer's password."""
    password = secrets.token_urlsafe(18)
    path = directory / "warehouse-users.yml"
    directory.mkdir(parents=True, exist_ok=True)
    users = {"default": {}, "writer": {"password_sha256_hex": hash_password(password), "roles": ["writer"],
                                       "networks": ["127.0.0.0/8", "::1/128"]}}
    path.write_text(yaml.safe_dump({"users": users}))
    os.chmod(path, 0o600)
    return path, password

