"""Route lookup that stays fast with hundreds of routes.

FastAPI (0.137 and later) keeps each included router as a node and, for every request, tries the routes of every
node in turn, at about 15 µs a route: with Opsline's ~900 routes that was 15 ms of CPU per request before any work
(measured with py-spy; /healthz answered 82 req/s on one worker). Each area's router therefore answers "no match" at
once for a path whose first segment none of its routes can start with. What a request matches, and in which order,
is unchanged: the gate only skips routers that could not match.

The gate is the router's own `matches` (its class becomes `_GatedRouter`, a subclass adding only that), not a router
wrapped around it: wrapping made FastAPI rebuild every route's dependency model for each app (4.7 s per create_app)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from starlette.routing import Match, get_route_path
from starlette.types import Scope


def first_segment(path: str) -> str:
    """"/cases/{id}/notes" → "cases"; "/" → ""."""
    return path.lstrip("/").split("/", 1)[0]


def route_segments(router: APIRouter) -> frozenset[str] | None:
    """The first path segments `router`'s routes can start with; None when one starts with a path parameter (it
    could match anything) or is not a plain route."""
    segments = set()
    for route in router.routes:
        path = getattr(route, "path", None)
        if path is None:
            return None
        segments.add(first_segment(path))
    return None if any("{" in s for s in segments) else frozenset(segments)


class _GatedRouter(APIRouter):
    """An APIRouter whose `matches` first checks the request's first path segment (`_gate_segments`)."""

    _gate_segments: frozenset[str] | None = None

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if self._gate_segments is not None and first_segment(get_route_path(scope)) not in self._gate_segments:
            return Match.NONE, {}
        return super().matches(scope)


def include_router_gated(app: FastAPI, router: APIRouter) -> None:
    """`app.include_router(router)`, with the router gated on its first path segments (see the module docstring).
    Routers are module-level, so the gate is set once per process; a router of another class is included as is."""
    if type(router) is APIRouter:
        router.__class__ = _GatedRouter
    if isinstance(router, _GatedRouter):
        router._gate_segments = route_segments(router)
    app.include_router(router)
