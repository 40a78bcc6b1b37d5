"""Domain error hierarchy; the API and web layers map these to problem+json (RFC 9457) responses."""

from __future__ import annotations

from typing import Any


class OpslineError(Exception):
    """Base for every error a user can cause. `status` is the HTTP status the API answers with."""

    status: int = 400
    title: str = "Bad request"
    type_slug: str = "bad-request"

    def __init__(self, detail: str, *, field: str | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra or {}

    def problem(self, *, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"https://opsline.dev/problems/{self.type_slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        if self.field:
            body["field"] = self.field
        body.update(self.extra)
        return body


class NotFound(OpslineError):
    status = 404
    title = "Not found"
    type_slug = "not-found"


class InvalidInput(OpslineError):
    status = 422
    title = "Invalid input"
    type_slug = "invalid-input"


class Conflict(OpslineError):
    status = 409
    title = "Conflict"
    type_slug = "conflict"


class TransitionNotAllowed(Conflict):
    title = "Transition not allowed"
    type_slug = "transition-not-allowed"


class StaleVersion(Conflict):
    title = "Edited by someone else"
    type_slug = "stale-version"


class PermissionDenied(OpslineError):
    status = 403
    title = "Forbidden"
    type_slug = "forbidden"


class NotAuthenticated(OpslineError):
    status = 401
    title = "Not authenticated"
    type_slug = "not-authenticated"
