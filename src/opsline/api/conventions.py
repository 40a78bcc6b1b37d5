"""TMF630 conventions applied to every route under /tmf-api without per-area code (an ASGI middleware that reads the
route table): the `/api/{apiName}/v4/...` alias, unknown query parameters and oversized pages refused with 400, `fields`
on routes that do not narrow themselves, `X-Result-Count` on every list, absolute `Location` on 201, JSON Patch
(`application/json-patch+json`) applied to the resource's current representation and handed to the route as a merge
patch, and the TMF error body (`code`, `reason`, `message`, `status`, `referenceError`) on every error answer of
/tmf-api and /api.

What a route declares decides what it accepts: its query parameters (aliases, e.g. `billingAccount.id`) are its
filters; `fields`, `offset` and `limit` are always accepted; `sort` only where the route declares it (see
`opsline.api.tmf.Sort` and `sort_clauses`), elsewhere it is a 400 rather than silently ignored."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opsline.api.jsonpatch import JsonPatchError, JsonPatchTestFailed, apply_json_patch, merge_patch_between
from opsline.api.tmf import PAGE_LIMIT_MAX, TMF_ROOT, parse_fields, select_fields

ALWAYS_ALLOWED = frozenset({"fields", "offset", "limit"})
API_PREFIXES = (TMF_ROOT + "/", "/api/")
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"


@dataclass(frozen=True)
class TMFRoute:
    path: str
    regex: Any
    methods: frozenset[str]
    query: frozenset[str]  # declared query parameter names (aliases)
    collection: bool  # a GET answering a list (the path does not end with a path parameter)


def tmf_routes(app: Any) -> list[TMFRoute]:
    """Every API route under /tmf-api with the query parameters it declares (read from the app's route table)."""
    out: list[TMFRoute] = []
    for ctx in iter_route_contexts(app.routes):
        path = ctx.path or ""
        if not isinstance(ctx.original_route, APIRoute) or not path.startswith(TMF_ROOT + "/"):
            continue
        query = frozenset(_query_names(ctx.dependant))
        methods = frozenset(ctx.methods or ())
        out.append(TMFRoute(path, ctx.path_regex, methods, query, "GET" in methods and not path.endswith("}")))
    return out


def _query_names(dependant: Any) -> set[str]:
    names: set[str] = set()
    for f in dependant.query_params:
        ann = getattr(f.field_info, "annotation", None)
        if isinstance(ann, type) and issubclass(ann, BaseModel):  # a query-parameter model: its fields are the parameters
            names |= {fi.alias or n for n, fi in ann.model_fields.items()}
        else:
            names.add(getattr(f, "validation_alias", None) or f.alias)
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def api_names(routes: list[TMFRoute]) -> set[str]:
    """`customerManagement`, `troubleTicket` ...: the first segment after /tmf-api/ of every TMF route."""
    return {r.path.split("/")[2] for r in routes}


def tmf_fields(body: dict[str, Any], *, tmf_path: bool) -> dict[str, Any]:
    """Add the TMF630 error attributes to a problem+json body (kept: type, title, status, detail, instance, field ...).
    On /tmf-api `status` is a string as the TMF Error schema says; elsewhere it stays the RFC 9457 number."""
    status = body.get("status")
    code = str(body.get("type", "")).rstrip("/").rsplit("/", 1)[-1] or str(status)
    if code == "about:blank":
        code = str(status)
    out = dict(body)
    out.setdefault("code", code)
    out.setdefault("reason", str(body.get("title") or "Error"))
    out.setdefault("message", str(body.get("detail") or body.get("title") or ""))
    ref = body.get("type")
    if isinstance(ref, str) and ref.startswith("http"):
        out.setdefault("referenceError", ref)
    out.setdefault("@type", "Error")
    if tmf_path and status is not None:
        out["status"] = str(status)
    return out


def problem_body(status: int, title: str, detail: str, *, instance: str, slug: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    body = {"type": f"https://opsline.dev/problems/{slug}", "title": title, "status": status, "detail": detail, "instance": instance}
    body.update(extra or {})
    return tmf_fields(body, tmf_path=instance.startswith(TMF_ROOT + "/"))


async def _send_json(send: Send, status: int, body: Any, *, media_type: str = "application/problem+json", headers: list[tuple[bytes, bytes]] | None = None) -> None:
    raw = json.dumps(body).encode()
    hdrs = [(b"content-type", media_type.encode()), (b"content-length", str(len(raw)).encode())] + (headers or [])
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": raw})


def _base_url(scope: Scope) -> str:
    headers = dict(scope.get("headers") or [])
    host = headers.get(b"host", b"").decode("latin-1")
    if not host:
        server = scope.get("server") or ("localhost", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}{scope.get('root_path', '')}"


class TMFConventions:
    """The ASGI middleware (installed by `opsline.api.problems.install`, so every app gets it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._routes: list[TMFRoute] | None = None
        self._names: set[str] = set()

    def _table(self, scope: Scope) -> list[TMFRoute]:
        if self._routes is None:
            self._routes = tmf_routes(scope["app"])
            self._names = api_names(self._routes)
        return self._routes

    def _match(self, scope: Scope, path: str, method: str) -> TMFRoute | None:
        for r in self._table(scope):
            if r.regex.match(path) and method in r.methods:
                return r
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIXES):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        # Text never carries NUL characters (PostgreSQL cannot store them): a 400 naming the parameter or attribute, before
        # anything reads it, on every API route.
        nul = _nul_in_query(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        if nul is None and scope["method"] in ("POST", "PUT", "PATCH") and "json" in _content_type(scope):
            body = await _read_body(receive)
            receive = _replay(body)
            nul = _nul_in_json(body)
        if nul is not None:
            await _send_json(send, 400, problem_body(400, "Invalid text", f"'{nul}' contains a NUL character, which text may not hold",
                                                     instance=path, slug="nul-character", extra={"field": nul}))
            return
        self._table(scope)
        parts = path.split("/")
        if path.startswith("/api/") and len(parts) > 3 and parts[2] in self._names and re.fullmatch(r"v\d+", parts[3]):
            # The documented alias: /api/customerManagement/v4/customer is /tmf-api/customerManagement/v4/customer.
            path = TMF_ROOT + path[len("/api"):]
            scope = dict(scope, path=path, raw_path=path.encode())
        if not path.startswith(TMF_ROOT + "/"):
            await self.app(scope, receive, _ErrorBodies(send, tmf_path=False).send)
            return
        method = scope["method"]
        route = self._match(scope, path, method)
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        if route is not None:
            refusal = self._check_query(route, query, path)
            if refusal is not None:
                await _send_json(send, 400, refusal)
                return
        if route is not None and method == "PATCH" and _content_type(scope).startswith(JSON_PATCH):
            await self._json_patch(scope, receive, send, path)
            return
        narrow = None
        if route is not None and method == "GET" and "fields" not in route.query:
            narrow = parse_fields(dict(query).get("fields"))
        out = _Rewriter(send, scope=scope, narrow=narrow, collection=bool(route and route.collection))
        await self.app(scope, receive, out.send)

    def _check_query(self, route: TMFRoute, query: list[tuple[str, str]], path: str) -> dict[str, Any] | None:
        for name, value in query:
            if name in route.query or name in ALWAYS_ALLOWED:
                continue
            if name == "sort":
                return problem_body(400, "Invalid query", "sorting is not offered on this resource", instance=path, slug="unsupported-sort",
                                    extra={"field": "sort"})
            allowed = sorted(route.query | ALWAYS_ALLOWED)
            return problem_body(400, "Unknown query parameter", f"'{name}' is not a filter of this resource (allowed: {', '.join(allowed)})",
                                instance=path, slug="unknown-query-parameter", extra={"field": name})
        limit = dict(query).get("limit")
        if limit is not None and limit.strip().isdigit() and int(limit) > PAGE_LIMIT_MAX:
            return problem_body(400, "Page too large", f"limit may be at most {PAGE_LIMIT_MAX} (asked for {int(limit)}); page with offset",
                                instance=path, slug="page-too-large", extra={"field": "limit", "maximum": PAGE_LIMIT_MAX})
        return None

    async def _json_patch(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        """Apply RFC 6902 operations to what GET answers now and hand the route the equivalent merge patch."""
        raw = await _read_body(receive)
        try:
            ops = json.loads(raw or b"null")
        except ValueError:
            await _send_json(send, 400, problem_body(400, "Invalid input", "the JSON Patch body is not JSON", instance=path, slug="invalid-input"))
            return
        get_scope = dict(scope, method="GET", query_string=b"", headers=[(k, v) for k, v in scope["headers"] if k not in (b"content-type", b"content-length")])
        status, headers, body = await _call(self.app, get_scope, b"")
        if status != 200:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        current = json.loads(body)
        try:
            patched = apply_json_patch(current, ops)
        except JsonPatchTestFailed as exc:
            await _send_json(send, 409, problem_body(409, "Conflict", str(exc), instance=path, slug="json-patch-test-failed"))
            return
        except JsonPatchError as exc:
            await _send_json(send, 400, problem_body(400, "Invalid input", str(exc), instance=path, slug="invalid-json-patch", extra={"field": exc.pointer}))
            return
        merge = json.dumps(merge_patch_between(current, patched)).encode()
        headers_in = [(k, v) for k, v in scope["headers"] if k not in (b"content-type", b"content-length")]
        headers_in += [(b"content-type", MERGE_PATCH.encode()), (b"content-length", str(len(merge)).encode())]
        patch_scope = dict(scope, headers=headers_in)
        out = _Rewriter(send, scope=patch_scope, narrow=None, collection=False)
        await self.app(patch_scope, _replay(merge), out.send)


def _nul_in_query(query: list[tuple[str, str]]) -> str | None:
    """The first query parameter whose name or value holds a NUL character."""
    return next((name.replace("\x00", "") or "query" for name, value in query if "\x00" in name or "\x00" in value), None)


def _nul_in_json(body: bytes) -> str | None:
    """The dotted path of the first JSON string (key or value) holding a NUL character; None when there is none or the
    body is not JSON (the route then answers its own 400)."""
    if b"\\u0000" not in body.lower() and b"\x00" not in body:
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        return None

    def walk(node: Any, where: str) -> str | None:
        if isinstance(node, str):
            return (where or "body") if "\x00" in node else None
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            here = f"{where}.{key}" if where else str(key)
            if isinstance(key, str) and "\x00" in key:
                return here.replace("\x00", "")
            found = walk(value, here)
            if found:
                return found
        return None

    return walk(doc, "")


def _content_type(scope: Scope) -> str:
    return dict(scope.get("headers") or []).get(b"content-type", b"").decode("latin-1").lower()


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _call(app: ASGIApp, scope: Scope, body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Run a request through the app in-process and collect its answer."""
    status, headers, chunks = 500, [], []

    async def send(message: Message) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status, headers = message["status"], list(message.get("headers") or [])
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, _replay(body), send)
    return status, headers, b"".join(chunks)


class _Buffered:
    """Collect a JSON answer so it can be changed before it is sent; other answers pass through untouched."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._start: Message | None = None
        self._chunks: list[bytes] = []
        self._passthrough = False

    def wants(self, status: int, headers: dict[bytes, bytes]) -> bool:
        raise NotImplementedError

    def rewrite(self, status: int, headers: dict[bytes, bytes], body: bytes) -> tuple[dict[bytes, bytes], bytes]:
        raise NotImplementedError

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = {k.lower(): v for k, v in message.get("headers") or []}
            if self.wants(message["status"], headers):
                self._start = message
            else:
                self._passthrough = True
                await self._send(message)
            return
        if message["type"] != "http.response.body" or self._passthrough or self._start is None:
            await self._send(message)
            return
        self._chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        start = self._start
        raw_headers = list(start.get("headers") or [])
        headers = {k.lower(): v for k, v in raw_headers}
        try:
            new_headers, body = self.rewrite(start["status"], headers, b"".join(self._chunks))
        except ValueError:  # not JSON after all: send it as it came
            new_headers, body = headers, b"".join(self._chunks)
        new_headers[b"content-length"] = str(len(body)).encode()
        kept = [(k, v) for k, v in raw_headers if k.lower() not in new_headers]
        await self._send({"type": "http.response.start", "status": start["status"], "headers": kept + list(new_headers.items())})
        await self._send({"type": "http.response.body", "body": body})


def _is_json(headers: dict[bytes, bytes]) -> bool:
    ct = headers.get(b"content-type", b"").split(b";")[0].strip()
    return ct == b"application/json" or ct.endswith(b"+json")


class _ErrorBodies(_Buffered):
    """Every JSON error answer gets the TMF error attributes."""

    def __init__(self, send: Send, *, tmf_path: bool) -> None:
        super().__init__(send)
        self.tmf_path = tmf_path

    def wants(self, status: int, headers: dict[bytes, bytes]) -> bool:
        return status >= 400 and _is_json(headers)

    def rewrite(self, status: int, headers: dict[bytes, bytes], body: bytes) -> tuple[dict[bytes, bytes], bytes]:
        data = json.loads(body)
        if not isinstance(data, dict):
            return headers, body
        data.setdefault("status", status)
        data.setdefault("title", "Error")
        return headers, json.dumps(tmf_fields(data, tmf_path=self.tmf_path)).encode()


class _Rewriter(_ErrorBodies):
    """On /tmf-api: error bodies as above, `fields` narrowing for routes that do not narrow themselves, X-Result-Count
    on every list, and an absolute Location on 201."""

    def __init__(self, send: Send, *, scope: Scope, narrow: list[str] | None, collection: bool) -> None:
        super().__init__(send, tmf_path=True)
        self.scope = scope
        self.narrow = narrow
        self.collection = collection

    def wants(self, status: int, headers: dict[bytes, bytes]) -> bool:
        if not _is_json(headers):
            return False
        return status >= 400 or status == 201 or (status == 200 and (self.narrow is not None or (self.collection and b"x-result-count" not in headers)))

    def rewrite(self, status: int, headers: dict[bytes, bytes], body: bytes) -> tuple[dict[bytes, bytes], bytes]:
        if status >= 400:
            return super().rewrite(status, headers, body)
        data = json.loads(body)
        if status == 201:
            location = headers.get(b"location", b"").decode("latin-1")
            if not location and isinstance(data, dict) and isinstance(data.get("href"), str):
                location = data["href"]
            if location and not location.startswith(("http://", "https://")):
                location = _base_url(self.scope) + ("" if location.startswith("/") else "/") + location
            if location:
                headers[b"location"] = location.encode()
            return headers, body
        if self.narrow is not None:
            if isinstance(data, list):
                data = [select_fields(i, self.narrow) if isinstance(i, dict) else i for i in data]
            elif isinstance(data, dict):
                data = select_fields(data, self.narrow)
            body = json.dumps(data).encode()
        if self.collection and isinstance(data, list) and b"x-result-count" not in headers:
            headers[b"x-result-count"] = str(len(data)).encode()
        return headers, body
