"""How service orders reach a partner: the Adapter protocol, the HTTP (TMF641 over REST) adapter, and webhook signatures."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

SIGNATURE_HEADER = "X-Opsline-Signature"


@dataclass(frozen=True)
class AdapterResult:
    """What a partner said about an order: accepted (with their reference) or rejected (with why)."""

    accepted: bool
    partner_ref: str | None = None
    state: str = "acknowledged"
    reason: str | None = None
    response: dict[str, Any] = field(default_factory=dict)


class AdapterUnavailable(Exception):
    """The partner could not be reached or answered with a transient error; the delivery job retries with backoff."""


class Adapter(Protocol):
    def submit(self, order_payload: dict[str, Any]) -> AdapterResult: ...

    def status(self, partner_ref: str) -> AdapterResult: ...

    def cancel(self, cancel_payload: dict[str, Any], *, external_ref: str) -> AdapterResult: ...


def sign(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of the raw body>`, the value of the X-Opsline-Signature header."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str | None, body: bytes, *, signature: str | None = None, authorization: str | None = None) -> bool:
    """True when the body is signed with the partner's webhook secret (HMAC header) or the bearer token equals the secret."""
    if not secret:
        return False
    if signature:
        return hmac.compare_digest(sign(secret, body), signature.strip())
    if authorization and authorization.lower().startswith("bearer "):
        return hmac.compare_digest(authorization[7:].strip(), secret)
    return False


def _result_from(data: dict[str, Any]) -> AdapterResult:
    state = str(data.get("state") or "acknowledged")
    return AdapterResult(accepted=state != "rejected", partner_ref=str(data["id"]) if data.get("id") is not None else None, state=state,
                         reason=data.get("stateChangeReason") or data.get("description") if state == "rejected" else None, response=data)


class HttpAdapter:
    """TMF641 over HTTPS. One attempt per call: retries happen in the job system (exponential backoff), and the
    externalId / Idempotency-Key make a repeated submit return the order the partner already has. Subclasses for
    other partner kinds (couriers) change only where orders go and what the partner is called in errors."""

    submit_path = "/serviceOrder"
    who = "partner"

    def __init__(self, *, base_url: str, auth_token: str | None, timeout_seconds: float = 10.0, signing_secret: str | None = None, transport: httpx.BaseTransport | None = None) -> None:
        if not base_url:
            raise AdapterUnavailable("the partner has no base_url configured")
        self.base_url = base_url.rstrip("/")
        self.auth_token = auth_token
        self.timeout = httpx.Timeout(timeout_seconds, connect=min(5.0, timeout_seconds))
        self.signing_secret = signing_secret
        self.transport = transport

    def _client(self) -> httpx.Client:
        headers = {"Accept": "application/json", "User-Agent": "opsline-partners/1"}
        if self.auth_token:
            headers["Authorization"] = f"Bearer {self.auth_token}"
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=self.timeout, transport=self.transport)

    def submit(self, order_payload: dict[str, Any]) -> AdapterResult:
        body = json.dumps(order_payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": str(order_payload.get("externalId", ""))}
        if self.signing_secret:
            headers[SIGNATURE_HEADER] = sign(self.signing_secret, body)
        try:
            with self._client() as client:
                resp = client.post(self.submit_path, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise AdapterUnavailable(f"{self.who} unreachable: {type(exc).__name__}: {exc}") from exc
        return self._interpret(resp)

    def cancel(self, cancel_payload: dict[str, Any], *, external_ref: str) -> AdapterResult:
        """POST a TMF641 cancelServiceOrder. The Idempotency-Key (`cancel:` + our reference) makes a repeat return the
        request the partner already has. Raises AdapterUnavailable (the job retries)."""
        body = json.dumps(cancel_payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": f"cancel:{external_ref}"}
        if self.signing_secret:
            headers[SIGNATURE_HEADER] = sign(self.signing_secret, body)
        try:
            with self._client() as client:
                resp = client.post("/cancelServiceOrder", content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise AdapterUnavailable(f"{self.who} unreachable: {type(exc).__name__}: {exc}") from exc
        return self._interpret(resp)

    def status(self, partner_ref: str) -> AdapterResult:
        try:
            with self._client() as client:
                resp = client.get(f"/serviceOrder/{partner_ref}")
        except httpx.HTTPError as exc:
            raise AdapterUnavailable(f"partner unreachable: {type(exc).__name__}: {exc}") from exc
        return self._interpret(resp)

    @staticmethod
    def _interpret(resp: httpx.Response) -> AdapterResult:
        try:
            data = resp.json() if resp.content else {}
        except ValueError:
            data = {"raw": resp.text[:500]}
        if not isinstance(data, dict):
            data = {"raw": data}
        if resp.status_code in (200, 201, 202) or (resp.status_code == 409 and data.get("id")):
            return _result_from(data)
        if resp.status_code in (400, 404, 422):
            reason = data.get("detail") or data.get("reason") or data.get("message") or f"HTTP {resp.status_code}"
            return AdapterResult(accepted=False, state="rejected", reason=str(reason), response=data)
        raise AdapterUnavailable(f"partner answered HTTP {resp.status_code}: {str(data)[:300]}")
