"""The resource inside an event, exactly as the owning API's GET by id answers it: the GET route's own function is
found in the area's router and called (read-only), so an event never drifts from what the API serves."""

from __future__ import annotations

import inspect
import json
from datetime import datetime
from functools import lru_cache
from typing import Any, Callable

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from sqlalchemy.orm import Session
from starlette.responses import Response

from opsline.api.tmf import api_base, dump
from opsline.config import get_settings
from opsline.core.events import Actor
from opsline.core.localtime import zone
from opsline.payments.api import payments_by_id
from opsline.web.deps import Principal

HUB_PRINCIPAL = Principal(Actor(name="tmf-hub", roles=frozenset({"admin"})), None, "TMF event hub", frozenset({"admin"}), "token")


@lru_cache(maxsize=None)
def _endpoints() -> dict[str, Callable[..., Any]]:
    """GET-by-id endpoint per collection path (`/tmf-api/x/v4/productOrder` -> fn), from every area's routers."""
    from fastapi.routing import APIRoute

    from opsline.areas import load_areas

    out: dict[str, Callable[..., Any]] = {}
    for area in load_areas():
        for router in area.routers() if area.routers else []:
            for route in router.routes:
                if isinstance(route, APIRoute) and "GET" in route.methods and route.path.startswith("/tmf-api/") and route.path.endswith("}"):
                    head, _, last = route.path.rpartition("/")
                    if last.startswith("{") and head.count("/") == 4:
                        out.setdefault(head, route.endpoint)
    return out


def has_renderer(api: str, resource: str) -> bool:
    return f"{api_base(api)}/{resource}" in _endpoints()


def render(session: Session, *, api: str, resource: str, resource_id: Any, now: datetime) -> dict[str, Any] | None:
    """The resource as GET /tmf-api/{api}/v4/{resource}/{id} answers it, or None when that GET would not find it."""
    from opsline.core.errors import NotFound

    fn = _endpoints().get(f"{api_base(api)}/{resource}")
    if fn is None:
        return None
    kwargs: dict[str, Any] = {}
    for name, p in inspect.signature(fn).parameters.items():
        if name == "db":
            kwargs[name] = session
        elif name == "now":
            kwargs[name] = now
        elif name == "tz":
            kwargs[name] = zone(get_settings().timezone)
        elif name == "principal":
            kwargs[name] = HUB_PRINCIPAL
        elif name == "response":
            kwargs[name] = Response()
        elif isinstance(p.default, FieldInfo):  # an old-style `= Query(None)` default
            kwargs[name] = None if p.default.is_required() else p.default.default
        elif p.default is inspect.Parameter.empty:
            kwargs[name] = int(resource_id) if str(resource_id).isdigit() else resource_id  # the path parameter
    try:
        out = fn(**kwargs)
    except NotFound:
        return None
    if isinstance(out, BaseModel):
        return dump(out)
    if isinstance(out, Response):
        return json.loads(bytes(out.body)) if out.status_code == 200 else None
    return out if isinstance(out, dict) else None


# Resources whose API renders many at once, as its GET by id renders each: (api, resource) -> fn(session, ids) -> {id: resource}
BATCH_RENDERERS: dict[tuple[str, str], Callable[[Session, list[str]], dict[str, dict[str, Any]]]] = {
    ("paymentManagement", "payment"): lambda session, ids: payments_by_id(session, ids),
}


def render_many(session: Session, *, api: str, resource: str, resource_ids: list[str], now: datetime) -> dict[str, dict[str, Any]]:
    """{id: the resource as GET /tmf-api/{api}/v4/{resource}/{id} answers it} (ids it would not find are left out): the API's
    batch renderer when it has one (a few queries for the lot), else its GET by id, one at a time."""
    batch = BATCH_RENDERERS.get((api, resource))
    if batch is not None:
        return batch(session, resource_ids)
    out = {}
    for rid in resource_ids:
        obj = render(session, api=api, resource=resource, resource_id=rid, now=now)
        if obj is not None:
            out[str(rid)] = obj
    return out
