"""Map errors to problem+json (RFC 9457) for the API, and to friendly pages for the web app."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from opsline.api.conventions import TMFConventions, tmf_fields
from opsline.core.errors import NotAuthenticated, OpslineError

log = logging.getLogger("opsline.api")
PROBLEM = "application/problem+json"


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith(("/api/", "/tmf-api/")) and "text/html" in request.headers.get("accept", "")


def _tmf_path(request: Request) -> bool:
    return request.url.path.startswith("/tmf-api/")


def _input_status(request: Request, status: int = 422) -> int:
    """Bad input is 400 on the TM Forum APIs (TMF630), 422 elsewhere."""
    return 400 if status == 422 and _tmf_path(request) else status


def problem_response(status: int, title: str, detail: str, *, instance: str, extra: dict | None = None) -> JSONResponse:
    body = {"type": "about:blank" if status >= 500 else f"https://opsline.dev/problems/{title.lower().replace(' ', '-')}", "title": title, "status": status, "detail": detail, "instance": instance}
    if extra:
        body.update(extra)
    if instance.startswith(("/tmf-api/", "/api/")):
        body = tmf_fields(body, tmf_path=instance.startswith("/tmf-api/"))
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def _validation_errors(errors: list) -> list[dict]:
    out = []
    for e in errors:
        loc = [str(p) for p in e.get("loc", ())]
        if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
            loc = loc[1:]
        out.append({"field": ".".join(loc), "message": e.get("msg", ""), "type": e.get("type", "")})
    return out


def install(app: FastAPI) -> None:
    # TMF630 conventions on every /tmf-api route (and the /api alias); see opsline.api.conventions.
    app.add_middleware(TMFConventions)
    document_errors(app)

    @app.exception_handler(OpslineError)
    async def _opsline_error(request: Request, exc: OpslineError):  # type: ignore[no-untyped-def]
        if isinstance(exc, NotAuthenticated) and _wants_html(request):
            portal = request.url.path == "/portal" or request.url.path.startswith("/portal/")  # customers sign in on their own page
            return RedirectResponse("/portal/login" if portal else f"/login?next={request.url.path}", status_code=303)
        if _wants_html(request) and not request.headers.get("hx-request"):
            from opsline.web.templating import render_error

            return render_error(request, exc.status, exc.title, exc.detail)
        status = _input_status(request, exc.status)
        body = exc.problem(instance=request.url.path)
        body["status"] = status
        if request.url.path.startswith(("/tmf-api/", "/api/")):
            body = tmf_fields(body, tmf_path=_tmf_path(request))
        return JSONResponse(body, status_code=status, media_type=PROBLEM)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):  # type: ignore[no-untyped-def]
        errs = _validation_errors(exc.errors())
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errs)
        extra = {"errors": errs} | ({"field": errs[0]["field"]} if errs else {})
        return problem_response(_input_status(request), "Invalid input", detail, instance=request.url.path, extra=extra)

    @app.exception_handler(ValidationError)
    async def _pyd_validation(request: Request, exc: ValidationError):  # type: ignore[no-untyped-def]
        errs = _validation_errors(exc.errors())
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errs)
        if _wants_html(request) and not request.headers.get("hx-request"):
            from opsline.web.templating import render_error

            return render_error(request, 422, "Invalid input", detail)
        extra = {"errors": errs} | ({"field": errs[0]["field"]} if errs else {})
        return problem_response(_input_status(request), "Invalid input", detail, instance=request.url.path, extra=extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):  # type: ignore[no-untyped-def]
        title = {404: "Not found", 405: "Method not allowed", 413: "Payload too large"}.get(exc.status_code, "Error")
        return problem_response(exc.status_code, title, str(exc.detail), instance=request.url.path)

    @app.exception_handler(StaleDataError)
    async def _stale(request: Request, exc: StaleDataError):  # type: ignore[no-untyped-def]
        # An optimistic-version UPDATE that matched no row: someone else saved first (any service that did not say so itself).
        detail = "this record was changed by someone else while you edited it; reload and try again"
        if _wants_html(request) and not request.headers.get("hx-request"):
            from opsline.web.templating import render_error

            return render_error(request, 409, "Conflict", detail)
        return problem_response(409, "Conflict", detail, instance=request.url.path)

    @app.exception_handler(OverflowError)
    async def _overflow(request: Request, exc: OverflowError):  # type: ignore[no-untyped-def]
        return _out_of_range(request)

    @app.exception_handler(PoolTimeout)
    async def _busy(request: Request, exc: PoolTimeout):  # type: ignore[no-untyped-def]
        # Every database connection of this process is in use (overload): say so and when to retry, rather than a 500.
        log.warning("database pool exhausted on %s %s", request.method, request.url.path)
        detail = "the service is busy; please try again in a few seconds"
        if _wants_html(request) and not request.headers.get("hx-request"):
            from opsline.web.templating import render_error

            page = render_error(request, 503, "Busy", detail)
        else:
            page = problem_response(503, "Service busy", detail, instance=request.url.path)
        page.headers["Retry-After"] = "5"
        return page

    @app.exception_handler(DBAPIError)
    async def _database_error(request: Request, exc: DBAPIError):  # type: ignore[no-untyped-def]
        # A number past the database's integer range (a hostile `?page=` or id) is bad input, not a crash.
        if getattr(exc.orig, "sqlstate", None) == "22003" or isinstance(exc.orig, OverflowError):
            return _out_of_range(request)
        return await _crash(request, exc)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception):  # type: ignore[no-untyped-def]
        # Anything unforeseen still answers in the API's language (problem+json) or as the error page, never a bare text/plain.
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        if _wants_html(request) and not request.headers.get("hx-request"):
            from opsline.web.templating import render_error

            return render_error(request, 500, "Something went wrong", "the error was logged; please try again or tell support the time it happened")
        return problem_response(500, "Internal server error", "the error was logged; please try again", instance=request.url.path)


ERROR_SCHEMA = {"type": "object", "required": ["type", "title", "status"], "properties": {
    "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": ["string", "integer"]}, "detail": {"type": "string"},
    "instance": {"type": "string"}, "code": {"type": "string"}, "reason": {"type": "string"}, "message": {"type": "string"}}}
ERROR_STATUSES = {"400": "Bad request", "401": "Not signed in", "403": "Not allowed", "404": "Not found", "409": "Conflict with the current state"}


def document_errors(app: FastAPI) -> None:
    """Every API operation documents the problem+json answers this module gives (as TMF's own specs do on each
    operation): 400 (the TMF APIs answer bad input with 400, never 422), 401, 403, 404 and 409."""
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        doc = generate()
        doc.setdefault("components", {}).setdefault("schemas", {})["Problem"] = ERROR_SCHEMA
        for path, item in doc.get("paths", {}).items():
            if not path.startswith(("/tmf-api/", "/api/")):
                continue
            for op in item.values():
                responses = op.setdefault("responses", {})
                if path.startswith("/tmf-api/"):
                    responses.pop("422", None)
                elif "422" in responses:  # elsewhere bad input is a 422, answered as problem+json too
                    responses["422"] = {"description": "Invalid input", "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
                for code, text in ERROR_STATUSES.items():
                    responses.setdefault(code, {"description": text, "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}})
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


def _out_of_range(request: Request) -> JSONResponse:
    detail = "a number in the request is out of range (page, offset, limit or id too large)"
    if _wants_html(request) and not request.headers.get("hx-request"):
        from opsline.web.templating import render_error

        return render_error(request, 422, "Invalid input", detail)
    return problem_response(_input_status(request), "Invalid input", detail, instance=request.url.path)
