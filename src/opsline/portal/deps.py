"""The portal's own authentication dependency: a customer from the portal session cookie (never a staff session), with
the session's CSRF token checked on every unsafe request. The route-table test reads `customer_permission`."""

from __future__ import annotations

from typing import Callable

from fastapi import Request

from opsline.core.errors import NotAuthenticated
from opsline.portal import auth
from opsline.portal.auth import Customer
from opsline.web.deps import UNSAFE, DB, Now
from opsline.web.security import require_csrf


def customer_token(request: Request) -> str:
    return request.cookies.get(auth.COOKIE_NAME, "")


def customer(scope: str = "portal") -> Callable[..., Customer]:
    """Dependency factory: the signed-in customer (401 otherwise; a browser is sent to /portal/login).
    Bearer tokens are refused: the portal takes only a customer's session."""

    def dep(request: Request, db: DB, now: Now) -> Customer:
        if request.headers.get("authorization", "").lower().startswith("bearer "):
            raise NotAuthenticated("the customer portal takes no API tokens; sign in at /portal/login")
        c = auth.load_customer(db, token=customer_token(request), now=now)
        if request.method in UNSAFE:
            require_csrf(request, c.csrf_token)
        request.state.csrf_token = c.csrf_token
        return c

    dep.__name__ = f"customer_{scope}"
    dep.customer_permission = scope  # type: ignore[attr-defined]
    return dep
