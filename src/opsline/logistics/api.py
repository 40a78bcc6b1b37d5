"""The courier webhook: a courier reports an attempt (collected, not home, refused, wrong address) on a booking we sent
it. Authenticated like the FNO webhooks (HMAC-SHA256 of the body with the courier's webhook secret, or the secret as a
bearer token); bad input is problem+json naming the field; a repeat or an update for a closed booking is acknowledged
as ignored (202) and audited."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse

from opsline.api.problems import PROBLEM
from opsline.logistics import courier
from opsline.logistics.models import ATTEMPT_OUTCOMES
from opsline.partners.adapters import SIGNATURE_HEADER, verify_signature
from opsline.partners.models import Partner, PartnerKind
from opsline.web.deps import DB, Now, Tz

router = APIRouter(tags=["logistics"])
CourierCode = Annotated[str, Path(min_length=1, max_length=30, pattern=r"^[a-z0-9_-]+$")]


def _problem(status: int, title: str, detail: str, path: str, field: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": f"https://opsline.dev/problems/{title.lower().replace(' ', '-')}", "title": title, "status": status, "detail": detail,
                            "instance": path}
    if field:
        body["field"] = field
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


@router.post("/api/logistics/callback/{courier_code}", status_code=200,
             responses={202: {"description": "Ignored (a repeat, or the booking is no longer waiting) and audited"}, 401: {"description": "Bad signature"},
                        404: {"description": "Unknown courier"}, 422: {"description": "Bad body (the field is named)"}})
async def courier_callback(courier_code: CourierCode, request: Request, db: DB, now: Now, tz: Tz) -> JSONResponse:
    """`{"externalId": "COL-000123", "attempt": 1, "outcome": "not_home", "note": "..."}` from the courier."""
    raw = await request.body()
    path = request.url.path
    p = db.get(Partner, courier_code)
    if p is None or p.kind != PartnerKind.COURIER:
        return _problem(404, "Not found", f"unknown courier '{courier_code}'", path)
    if not verify_signature(p.webhook_secret, raw, signature=request.headers.get(SIGNATURE_HEADER), authorization=request.headers.get("authorization")):
        return _problem(401, "Not authenticated", "bad or missing signature", path)
    try:
        event = json.loads(raw or b"{}")
    except ValueError:
        return _problem(422, "Invalid input", "the body is not JSON", path, "body")
    if not isinstance(event, dict):
        return _problem(422, "Invalid input", "the body must be a JSON object", path, "body")
    if not isinstance(event.get("externalId"), str) or not event["externalId"]:
        return _problem(422, "Invalid input", "externalId (our collection number) is required", path, "externalId")
    if not isinstance(event.get("attempt"), int) or event["attempt"] < 1:
        return _problem(422, "Invalid input", "attempt must be a positive whole number", path, "attempt")
    if event.get("outcome") not in ATTEMPT_OUTCOMES:
        return _problem(422, "Invalid input", f"outcome must be one of {', '.join(ATTEMPT_OUTCOMES)}", path, "outcome")
    res = courier.apply_courier_event(db, courier_code=courier_code, event=event, now=now, tz=tz)
    if "ignored" in res:
        return JSONResponse({"outcome": "ignored", "detail": res["ignored"]}, status_code=202)
    return JSONResponse({"outcome": "applied", "collection": res["collection"]}, status_code=200)
