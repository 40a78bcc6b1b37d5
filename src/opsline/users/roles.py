"""Roles and the permissions each grants. Every page and endpoint declares the permission it needs."""

from __future__ import annotations

import enum
from functools import lru_cache


class Role(enum.StrEnum):
    ADMIN = "admin"
    CANCELLATIONS = "cancellations_coordinator"
    SECOND_LINE = "second_line_agent"
    DEBTORS_CLERK = "debtors_clerk"
    DEBTORS_MANAGER = "debtors_manager"
    BILLING = "billing_analyst"
    SERVICE_MANAGER = "service_manager"


ROLE_LABELS = {
    Role.ADMIN: "Administrator",
    Role.CANCELLATIONS: "Cancellations coordinator",
    Role.SECOND_LINE: "Second-line agent",
    Role.DEBTORS_CLERK: "Debtors clerk",
    Role.DEBTORS_MANAGER: "Debtors manager",
    Role.BILLING: "Billing / OTC analyst",
    Role.SERVICE_MANAGER: "Service manager",
}

# Permission names are "<area>.<verb>".
ALL_STAFF = {Role.CANCELLATIONS, Role.SECOND_LINE, Role.DEBTORS_CLERK, Role.DEBTORS_MANAGER, Role.BILLING, Role.SERVICE_MANAGER}

PERMISSIONS: dict[str, set[Role]] = {
    "customers.view": ALL_STAFF,
    "customers.edit": {Role.CANCELLATIONS, Role.SECOND_LINE, Role.DEBTORS_CLERK, Role.DEBTORS_MANAGER, Role.BILLING, Role.SERVICE_MANAGER},
    "customers.create": {Role.BILLING, Role.SERVICE_MANAGER, Role.SECOND_LINE},
    "memos.add": ALL_STAFF,
    "catalog.view": ALL_STAFF,
    "catalog.edit": {Role.BILLING},
    "orders.view": ALL_STAFF,
    "orders.place": {Role.BILLING, Role.SECOND_LINE, Role.CANCELLATIONS, Role.SERVICE_MANAGER},
    "orders.manage": {Role.BILLING, Role.CANCELLATIONS},
    "inventory.view": ALL_STAFF,
    "partners.view": ALL_STAFF,
    "partners.manage": {Role.CANCELLATIONS, Role.BILLING},
    "billing.view": ALL_STAFF,
    "billing.run": {Role.BILLING},
    "billing.approve": {Role.BILLING, Role.DEBTORS_MANAGER},
    "billing.credit": {Role.BILLING, Role.DEBTORS_MANAGER},
    "claims.raise": ALL_STAFF,
    "claims.decide": {Role.BILLING, Role.DEBTORS_MANAGER},
    "cases.view": ALL_STAFF,
    "cases.work": {Role.SECOND_LINE, Role.CANCELLATIONS, Role.DEBTORS_CLERK, Role.DEBTORS_MANAGER, Role.BILLING, Role.SERVICE_MANAGER},
    "cases.manage": {Role.SECOND_LINE, Role.SERVICE_MANAGER},
    "sla.view": ALL_STAFF,
    "sla.manage": {Role.SERVICE_MANAGER},
    "jobs.view": ALL_STAFF,
    "desks.view": ALL_STAFF,  # a desk home page; which desks a user may open follows their roles (web/desk.py)
    "api.docs": ALL_STAFF,  # the OpenAPI description and API browser (API clients hold roles too)
    "metrics.view": set(),  # Prometheus scrapes with OPSLINE_METRICS_TOKEN instead
    "privacy.request": {Role.SECOND_LINE, Role.SERVICE_MANAGER, Role.DEBTORS_MANAGER, Role.BILLING},
    "privacy.approve": {Role.SERVICE_MANAGER, Role.DEBTORS_MANAGER},
    "admin.reference_data": set(),
    "admin.users": set(),
}


def allowed(roles: frozenset[str] | set[str], permission: str) -> bool:
    """Admins may do everything; unknown permissions are denied."""
    if Role.ADMIN.value in roles:
        return True
    granted = all_permissions().get(permission)
    if granted is None:
        return False
    return any(r in roles for r in granted)


@lru_cache(maxsize=1)
def all_permissions() -> dict[str, frozenset[str]]:
    """The permissions above plus those each area declares."""
    from opsline.areas import load_areas

    merged: dict[str, set[str]] = {k: {r.value for r in v} for k, v in PERMISSIONS.items()}
    for area in load_areas():
        for perm, roles in area.permissions.items():
            merged.setdefault(perm, set()).update(str(r) for r in roles)
    return {k: frozenset(v) for k, v in merged.items()}
