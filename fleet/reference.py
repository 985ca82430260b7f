"""Reference data for the sample fleet: licenses, subscriptions, CRM and billing accounts, namespaces, and an
account-mapping import, derived from `fleet.pings.fleet_licenses` (same seed, same license keys).

Real reference data is incomplete, so some licenses deliberately do not match (the `case` of each license):

- matched:              CustomersDot knows the license; its subscription and account exist.
- trial:                a trial license: no subscription, so no account (the mapping cannot change that).
- not_in_customersdot:  CustomersDot lacks the license and Zuora knows the subscription only under a newer id,
                        so the subscription the instance reports is unknown. The mapping import names the
                        current subscription: fixed by the import.
- no_account:           the subscription exists but names neither a CRM account nor a billing account with one.
                        The mapping import names the account: fixed by the import.
- stale_subscription:   CustomersDot names a subscription id Zuora no longer has. The mapping import also has a
                        row for it, but CustomersDot's subscription takes precedence (as in the reference model),
                        so it stays unmatched.

Hashes: some dim_license rows carry only the md5 or only the sha256 (older and newer CustomersDot rows), and the
mapping rows alternate between md5 and sha256, so matching has to use either hash. License keys themselves are
only hashed here, never written out.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from fleet.pings import FleetLicense, fleet_licenses
from streams.reference.kinds import KINDS
from streams.reference.load import write_csv

CASE_CYCLE = ("matched", "not_in_customersdot", "matched", "no_account", "matched", "stale_subscription",
              "matched", "not_in_customersdot")
_TIER = {"starter": "Starter", "premium": "Premium", "ultimate": "Ultimate", "early_adopter": "Starter"}


def _hex(*parts: str, length: int = 24) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:length]


def account_id_for(instance_uuid: str) -> str:
    return "0014" + _hex("account", instance_uuid, length=14)


def billing_account_id_for(instance_uuid: str) -> str:
    return "2c92a0fc" + _hex("billing", instance_uuid)


def current_subscription_id(subscription_id: str) -> str:
    """The id Zuora gives the same subscription after an amendment (a new version, a new id)."""
    return "2c92a0fd" + _hex("renewed", subscription_id)


def _company(hostname: str) -> str:
    parts = hostname.split(".")
    return (parts[1] if len(parts) > 2 else hostname).replace("-", " ").title()


@dataclass
class FleetReference:
    """Rows per reference kind (typed like `read_csv` returns them) and each license's case, keyed by md5."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {name: [] for name in KINDS})
    cases: dict[str, str] = field(default_factory=dict)

    def add(self, kind: str, **values: Any) -> None:
        columns = KINDS[kind].columns
        defaults = {c.name: (0 if c.kind in ("count", "flag") else None if c.kind in ("date", "datetime") else "")
                    for c in columns}
        unknown = set(values) - set(defaults)
        if unknown:
            raise ValueError(f"not columns of {kind}: {sorted(unknown)}")
        self.rows[kind].append(defaults | values | {"updated_at": None, "is_deleted": 0})

    def base_kinds(self) -> list[str]:
        """Everything but the account-mapping import, in load order."""
        return [name for name in KINDS if name != "account_mappings"]

    def write_csvs(self, directory: Path) -> dict[str, Path]:
        return {name: write_csv(KINDS[name], rows, directory / f"{name}.csv") for name, rows in self.rows.items()}


def _hashes(lic: FleetLicense, position: int) -> dict[str, str]:
    """Which hashes CustomersDot has for this license: both, only md5, or only sha256."""
    if position % 5 == 0:
        return {"license_md5": lic.md5}
    if position % 5 == 1:
        return {"license_sha256": lic.sha256}
    return {"license_md5": lic.md5, "license_sha256": lic.sha256}


def _license(ref: FleetReference, lic: FleetLicense, position: int, subscription_id: str) -> None:
    ref.add("licenses", dim_license_id=str(lic.license_id), dim_subscription_id=subscription_id,
            license_user_count=lic.seats, license_plan=lic.plan, is_trial=int(lic.trial), starts_at=lic.starts_at,
            expires_at=lic.expires_at, **_hashes(lic, position))


def _term_end(lic: FleetLicense, start: date) -> tuple[str, date]:
    """Status and term end of the license's subscription: a customer whose instance stops sending (churn) has
    cancelled, so the subscription ends the day it stopped (a renewal issued for after that never starts)."""
    if lic.churn_week is None:
        return "Active", lic.expires_at
    stopped = start + timedelta(weeks=lic.churn_week)
    return ("Cancelled", max(lic.starts_at, stopped)) if stopped < lic.expires_at else ("Active", lic.expires_at)


def _subscription(ref: FleetReference, lic: FleetLicense, subscription_id: str, account: str, billing: str,
                  position: int, start: date) -> None:
    # Every fourth subscription comes without a seat quantity (0): marts fall back to the reported seat count.
    status, end = _term_end(lic, start)
    ref.add("subscriptions", dim_subscription_id=subscription_id,
            subscription_name=f"A-S{int(_hex('name', subscription_id, length=8), 16) % 10**8:08d}",
            dim_crm_account_id=account, dim_billing_account_id=billing, subscription_status=status,
            product_tier=_TIER.get(lic.plan, "Unknown"), seats=0 if position % 4 == 2 else lic.seats,
            term_start_date=lic.starts_at, term_end_date=end)


def _mapping(ref: FleetReference, lic: FleetLicense, position: int, subscription_id: str, account: str,
             note: str) -> None:
    license_hash = lic.md5 if position % 2 == 0 else lic.sha256
    ref.add("account_mappings", license_hash=license_hash, dim_subscription_id=subscription_id,
            dim_crm_account_id=account, note=note)


def _add_license(ref: FleetReference, lic: FleetLicense, case: str, position: int, start: date) -> None:
    account, billing = account_id_for(lic.instance_uuid), billing_account_id_for(lic.instance_uuid)
    subscription_id = lic.subscription_id or ""
    ref.cases[lic.md5] = case
    if case == "trial":
        _license(ref, lic, position, "")
    elif case == "matched":
        _license(ref, lic, position, subscription_id)
        # Every third subscription names only its billing account, which names the CRM account.
        direct = position % 3 != 0
        _subscription(ref, lic, subscription_id, account if direct else "", billing, position, start)
    elif case == "not_in_customersdot":
        current = current_subscription_id(subscription_id)
        _subscription(ref, lic, current, account, billing, position, start)
        _mapping(ref, lic, position, current, "", "license missing from CustomersDot")
    elif case == "no_account":
        _license(ref, lic, position, subscription_id)
        _subscription(ref, lic, subscription_id, "", "", position, start)
        _mapping(ref, lic, position, subscription_id, account, "subscription without account")
    elif case == "stale_subscription":
        _license(ref, lic, position, subscription_id)
        current = current_subscription_id(subscription_id)
        _subscription(ref, lic, current, account, billing, position, start)
        _mapping(ref, lic, position, current, "", "ignored: CustomersDot names a subscription")
    else:
        raise ValueError(f"unknown case {case}")


def fleet_reference(instances: int, weeks: int, seed: int = 42, start: date = date(2026, 6, 1)) -> FleetReference:
    """Reference data for `generate_fleet(instances, weeks, seed, start)`; deterministic in its arguments."""
    licenses = fleet_licenses(instances, weeks, seed, start)
    ref = FleetReference()
    paid = [lic for lic in licenses if not lic.trial]
    random.Random(f"denomas-fleet-reference:{seed}").shuffle(paid)
    cases = {lic.md5: CASE_CYCLE[i % len(CASE_CYCLE)] for i, lic in enumerate(paid)}
    for position, lic in enumerate(licenses):
        _add_license(ref, lic, "trial" if lic.trial else cases[lic.md5], position, start)
    for index, uuid in enumerate(dict.fromkeys(lic.instance_uuid for lic in licenses)):
        hostname = next(lic.hostname for lic in licenses if lic.instance_uuid == uuid)
        account = account_id_for(uuid)
        ref.add("accounts", dim_crm_account_id=account, account_name=_company(hostname), crm_account_type="Customer",
                billing_country=("US", "DE", "JP", "BR", "IN")[index % 5])
        ref.add("billing_accounts", dim_billing_account_id=billing_account_id_for(uuid), dim_crm_account_id=account,
                billing_account_name=f"{_company(hostname)} billing", currency=("USD", "EUR", "JPY")[index % 3])
        ref.add("namespaces", namespace_id=10_000 + index, namespace_name=_company(hostname).lower().replace(" ", "-"),
                plan="free", dim_crm_account_id=account)
    return ref
