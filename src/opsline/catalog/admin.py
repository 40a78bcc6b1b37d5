"""The offering table in the /admin reference-data editor: audited like every reference table, and announced, so the TMF620
hub sends ProductOfferingCreateEvent, ProductOfferingAttributeValueChangeEvent and ProductOfferingStateChangeEvent."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import anyio
from starlette.requests import Request

from opsline.catalog import service
from opsline.catalog.models import ProductOffering
from opsline.core.events import Actor
from opsline.web.admin import ReferenceView


def _who(request: Request) -> tuple[datetime, Actor]:
    # the admin middleware put the app's clock and the signed-in administrator on the request (as ReferenceView's audit reads them)
    now = getattr(request.state, "admin_now", None) or datetime.now(timezone.utc)
    return now, getattr(request.state, "admin_actor", None) or Actor.system("admin")


class OfferingView(ReferenceView):
    """Product offerings: each create and each change of a column the TMF620 API shows is published in the edit's transaction.
    The creation time is the moment it is saved, not typed in."""

    exclude_fields_from_create = ["created_at"]
    exclude_fields_from_edit = ["created_at"]

    async def before_create(self, request: Request, data: dict[str, Any], obj: Any) -> None:
        obj.created_at = _who(request)[0]

    async def create(self, request: Request, data: dict[str, Any]) -> Any:
        obj = await super().create(request, data)
        if isinstance(obj, ProductOffering):
            now, actor = _who(request)
            await anyio.to_thread.run_sync(lambda: service.announce_offering_created(request.state.session, offering_id=obj.id, now=now, actor=actor))
        return obj

    async def edit(self, request: Request, pk: Any, data: dict[str, Any]) -> Any:
        found = await self.find_by_pk(request, pk)
        before = {c: getattr(found, c) for c in service.OFFERING_ATTRIBUTES} if found is not None else {}
        obj = await super().edit(request, pk, data)
        if isinstance(obj, ProductOffering):
            changed = [c for c in service.OFFERING_ATTRIBUTES if before.get(c) != getattr(obj, c)]
            now, actor = _who(request)
            await anyio.to_thread.run_sync(lambda: service.announce_offering_changed(request.state.session, offering_id=obj.id, columns=changed,
                                                                                     now=now, actor=actor))
        return obj
