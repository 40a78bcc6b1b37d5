"""Map errors to problem+json (RFC 9457) for the API, and to friendly pages for the web app."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from opsline.core.errors import NotAuthenticated, OpslineError

log = logging.getLogger("opsline.api")
PROBLEM = "application/problem+json"


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith(("/api/", "/tmf-api/")) and "text/html" in request.headers.get("accept", "")


def problem_response(status: int, title: str, detail: str, *, instance: str, extra: dict | None = None) -> JSONResponse:
    body = {"type": "about:blank" if status >= 500 else f"https://opsline.dev/problems/{title.lower().replace(' ', '-')}", "title": title, "status": status, "detail": detail, "instance": instance}
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def _validation_errors(errors: list) -> list[dict]:
    out = []
    for e in errors:
        loc = [str(p) for p in e.get("loc", ()) if p not in ("body",)]
        out.append({"field": ".".join(loc), "message": e.get("msg", ""), "type": e.get("type", "")})
    return out


def install(app: FastAPI) -> None:
    @app.exception_handler(OpslineError)
    async def _opsline_error(request: Request, exc: OpslineError):  # type: ignore[no-untyped-def]
        if isinstance(exc, NotAuthenticated) and _wants_html(request):
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        if _wants_html(request) and not request.headers.get("hx-request"):
            from opsline.web.templating import render_error

            return render_error(request, exc.status, exc.title, exc.detail)
        return JSONResponse(exc.problem(instance=request.url.path), status_code=exc.status, media_type=PROBLEM)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):  # type: ignore[no-untyped-def]
        errs = _validation_errors(exc.errors())
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errs)
        return problem_response(422, "Invalid input", detail, instance=request.url.path, extra={"errors": errs})

    @app.exception_handler(ValidationError)
    async def _pyd_validation(request: Request, exc: ValidationError):  # type: ignore[no-untyped-def]
        errs = _validation_errors(exc.errors())
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errs)
        if _wants_html(request) and not request.headers.get("hx-request"):
            from opsline.web.templating import render_error

            return render_error(request, 422, "Invalid input", detail)
        return problem_response(422, "Invalid input", detail, instance=request.url.path, extra={"errors": errs})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):  # type: ignore[no-untyped-def]
        title = {404: "Not found", 405: "Method not allowed", 413: "Payload too large"}.get(exc.status_code, "Error")
        return problem_response(exc.status_code, title, str(exc.detail), instance=request.url.path)
