"""The role × route authorisation matrix, generated from the app's route table at test time (so routes any area adds
are covered): every route declares its permission or is explicitly public, every role gets 403 exactly where its
permission says so, and no role can reach an action it does not hold. Customer portal routes (/portal) are
customer-authenticated instead: each declares the portal's customer dependency or is public with a reason, a staff
session reaches none of them, and a customer's session reaches no staff page."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Mount

from opsline.users.roles import Role, all_permissions, allowed
from conftest import post_login

# Open to anyone, and why. Everything else must declare a permission with web.deps.require().
PUBLIC_ROUTES = {
    "/docs/oauth2-redirect": "part of the API browser",
    "/api/partners/callback/{partner_code}": "partner webhooks authenticate with their HMAC signature",
    "/api/logistics/callback/{courier_code}": "courier webhooks authenticate with their HMAC signature",
}
PUBLIC_MOUNTS = {"/static": "vendored CSS and JavaScript"}
ADMIN_MOUNTS = {"/admin"}  # starlette-admin, guarded by its own middleware (administrators only)
SAMPLE = {"fmt": "csv", "key": "details", "code": "sample", "partner_code": "sample"}
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


@dataclass(frozen=True)
class RouteInfo:
    path: str
    methods: frozenset[str]
    permissions: tuple[str, ...]  # every require() on the route (all must hold)
    public: str | None  # the reason, for routes marked with web.deps.public()
    customer: str | None  # the portal scope, for routes that take a signed-in customer (opsline.portal.deps.customer)
    path_params: tuple[tuple[str, type], ...]
    required_query: bool


def _walk(dependant, perms: list[str], public: list[str], customer: list[str]) -> None:  # type: ignore[no-untyped-def]
    for sub in dependant.dependencies:
        call = sub.call
        if getattr(call, "permission", None):
            perms.append(call.permission)
        if getattr(call, "public", None):
            public.append(call.public)
        if getattr(call, "customer_permission", None):
            customer.append(call.customer_permission)
        _walk(sub, perms, public, customer)


def route_table(app) -> tuple[list[RouteInfo], list[tuple[str, str]]]:  # type: ignore[no-untyped-def]
    """API routes with what they declare, and other routes/mounts as (kind, path)."""
    api, other = [], []
    for ctx in iter_route_contexts(app.routes):
        original = ctx.original_route
        if isinstance(original, APIRoute):
            perms: list[str] = []
            public: list[str] = []
            customer: list[str] = []
            _walk(ctx.dependant, perms, public, customer)
            params = tuple((f.name, f.field_info.annotation) for f in ctx.dependant.path_params)
            required_query = any(f.field_info.is_required() for f in ctx.dependant.query_params)
            api.append(RouteInfo(ctx.path, frozenset(ctx.methods or ()), tuple(dict.fromkeys(perms)), public[0] if public else None,
                                 customer[0] if customer else None, params, required_query))
        elif isinstance(original, Mount):
            other.append(("mount", original.path))
        else:
            other.append(("route", getattr(ctx, "path", "")))
    return api, other


def _url(route: RouteInfo, role: str) -> str:
    types = dict(route.path_params)

    def sample(m: re.Match[str]) -> str:
        name, convertor = m.group(1), m.group(2) or ""
        if name == "role":
            return role
        if name in SAMPLE:
            return SAMPLE[name]
        return "987654321" if types.get(name) is int or convertor == ":int" else "sample"

    return re.sub(r"\{(\w+)(:\w+)?\}", sample, route.path)


@pytest.fixture
def clients(app, make_user):  # type: ignore[no-untyped-def]
    """One signed-in client per role (server errors come back as 500s so every failure can be listed)."""
    made = {}
    for role in Role:
        username = make_user(role.value, username=f"matrix_{role.value}")
        c = TestClient(app, raise_server_exceptions=False)
        c.__enter__()
        r = post_login(c, username)
        assert r.status_code == 303, r.text
        c.headers["X-CSRF-Token"] = re.search(r'"X-CSRF-Token": "([^"]+)"', c.get("/jobs").text).group(1)  # type: ignore[union-attr]
        made[role.value] = c
    yield made
    for c in made.values():
        c.__exit__(None, None, None)


def undeclared_routes(app) -> list[str]:  # type: ignore[no-untyped-def]
    api, _ = route_table(app)
    return [f"{sorted(r.methods)} {r.path}" for r in api if not r.permissions and not r.public and not r.customer and r.path not in PUBLIC_ROUTES]


def test_every_route_declares_a_known_permission_or_is_explicitly_public(app):
    api, other = route_table(app)
    assert len(api) > 50, "the route table looks empty"
    known = all_permissions()
    undeclared = undeclared_routes(app)
    assert not undeclared, f"routes without a permission (use web.deps.require or web.deps.public): {undeclared}"
    unknown = [f"{r.path}: {p}" for r in api for p in r.permissions if p not in known]
    assert not unknown, f"routes requiring a permission no role is granted (typo?): {unknown}"
    for kind, path in other:
        if kind == "mount":
            assert path in PUBLIC_MOUNTS or path in ADMIN_MOUNTS, f"mount {path} is neither public nor admin-only"
        else:
            assert path in PUBLIC_ROUTES, f"route {path} declares no permission"


def test_a_route_added_without_a_permission_is_caught(app):
    from fastapi import APIRouter

    router = APIRouter()

    @router.get("/forgotten/{thing_id}")
    def forgotten(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    app.include_router(router)
    assert undeclared_routes(app) == ["['GET'] /forgotten/{thing_id}"]


def test_each_role_gets_403_or_200_on_every_get_route_as_its_permission_says(app, clients):
    api, _ = route_table(app)
    gets = [r for r in api if "GET" in r.methods and r.permissions]
    assert len(gets) > 50
    wrong = []
    for role, c in clients.items():
        for route in gets:
            may = all(allowed(frozenset({role}), p) for p in route.permissions)
            url = _url(route, role)
            status = c.get(url, follow_redirects=False).status_code
            if not may:
                ok = status == 403
            elif not route.path_params and not route.required_query:
                ok = status == 200 or status in (303, 307)  # "/" and "/desk" send you to your desk
            else:  # sample ids: allowed means past the permission check (the sample may not exist)
                ok = status not in (401, 403) and status < 500
            if not ok:
                wrong.append(f"{role}: GET {url} -> {status} (permission {', '.join(route.permissions)}, {'allowed' if may else 'denied'})")
    assert not wrong, "\n".join(wrong)


def test_no_role_can_reach_an_action_its_permission_does_not_grant(app, clients):
    api, _ = route_table(app)
    actions = [r for r in api if r.methods & UNSAFE and r.permissions]
    assert actions
    wrong = []
    for role, c in clients.items():
        for route in actions:
            if all(allowed(frozenset({role}), p) for p in route.permissions):
                continue
            for method in sorted(route.methods & UNSAFE):
                url = _url(route, role)
                status = c.request(method, url, data={}, follow_redirects=False).status_code
                if status != 403:
                    wrong.append(f"{role}: {method} {url} -> {status} (needs {', '.join(route.permissions)})")
    assert not wrong, "\n".join(wrong)


def test_reference_data_admin_is_for_administrators_only(clients):
    for role, c in clients.items():
        status = c.get("/admin/", follow_redirects=False).status_code
        assert status == (200 if role == Role.ADMIN.value else 303), role


def test_without_signing_in_only_public_routes_answer(app):
    api, _ = route_table(app)
    anonymous = TestClient(app, raise_server_exceptions=False)
    wrong = []
    for route in api:
        if "GET" not in route.methods or route.public or route.path in PUBLIC_ROUTES:
            continue
        status = anonymous.get(_url(route, "admin"), follow_redirects=False).status_code
        if status != 401:
            wrong.append(f"GET {route.path} -> {status}")
    assert not wrong, "\n".join(wrong)


# --- the customer portal: customer-authenticated, never staff ----------------------------------------------------------
PORTAL = "/portal"


def test_every_portal_route_takes_a_customer_or_is_public_with_a_reason_and_no_other_route_takes_a_customer(app):
    api, _ = route_table(app)
    portal = [r for r in api if r.path == PORTAL or r.path.startswith(PORTAL + "/")]
    assert len(portal) > 20, "the portal's routes are missing"
    wrong = [f"{sorted(r.methods)} {r.path}" for r in portal if not r.customer and not (r.public and len(r.public) > 10)]
    assert not wrong, f"portal routes neither customer-authenticated nor public with a reason: {wrong}"
    assert not [r.path for r in portal if r.permissions], "a portal route requires a staff permission"
    assert not [r.path for r in api if r.customer and not r.path.startswith(PORTAL)], "a customer dependency outside /portal"


@pytest.fixture
def customer_client(app, factory):  # type: ignore[no-untyped-def]
    """A customer signed in to the portal (their own account), CSRF header set."""
    from opsline.billing.invoicing.samples import make_account
    from opsline.core.events import Actor
    from opsline.customers.models import Account
    from opsline.portal import auth

    from conftest import NOW

    with factory.begin() as s:
        acc = make_account(s, now=NOW, name="Matrix Customer")
        party = s.get(Account, acc).party_id
        auth.create_user(s, email="matrix@portal.test", full_name="Matrix Customer", party_id=party, role="holder", now=NOW,
                         actor=Actor.system("test"), password="matrix password", verified=True)
    c = TestClient(app, raise_server_exceptions=False)
    c.get("/portal/login")
    r = c.post("/portal/login", data={"email": "matrix@portal.test", "password": "matrix password",
                                      "csrf_token": c.cookies.get("opsline_portal_form", path="/portal")}, follow_redirects=False)
    assert r.status_code == 303, r.text
    page = c.get("/portal?all=1")
    assert page.status_code == 200
    c.headers["X-CSRF-Token"] = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    return c


def test_no_staff_session_reaches_a_customer_portal_route(app, clients):
    api, _ = route_table(app)
    portal = [r for r in api if r.customer]
    wrong = []
    for role, c in clients.items():
        for route in portal:
            for method in sorted(route.methods & (UNSAFE | {"GET"})):
                status = c.request(method, _url(route, role), data={}, follow_redirects=False).status_code
                if status != 401:
                    wrong.append(f"{role}: {method} {route.path} -> {status}")
    assert not wrong, "\n".join(wrong)


def test_a_customer_session_reaches_no_staff_route(app, customer_client):
    api, _ = route_table(app)
    staff = [r for r in api if r.permissions]
    wrong = []
    for route in staff:
        for method in sorted(route.methods & (UNSAFE | {"GET"})):
            status = customer_client.request(method, _url(route, "admin"), data={}, follow_redirects=False).status_code
            if status != 401:
                wrong.append(f"{method} {route.path} -> {status}")
    assert not wrong, "\n".join(wrong)
