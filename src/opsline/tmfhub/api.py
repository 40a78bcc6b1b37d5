"""TMF688-style `/hub` on every TM Forum API we serve: register a listener ({callback, query}), list, read, delete."""


from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from opsline.api.tmf import Fields, Limit, Offset, api_base, item_response, list_response
from opsline.tmfhub import service
from opsline.tmfhub.catalogue import APIS, HubApi
from opsline.web.deps import DB, Now, Principal, require

ListenerId = Annotated[int, Path(ge=1, le=2**53, description="Listener id")]


class EventSubscriptionInput(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    callback: str = Field(max_length=2000, pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#\s\[\]]+([/?#]\S*)?$", description="The URL events are POSTed to (absolute http or https)")
    query: str | None = Field(default=None, max_length=2000, description="Which events, e.g. eventType=ProductOrderStateChangeEvent&state=completed")
    type_: str | None = Field(default=None, alias="@type")
    base_type: str | None = Field(default=None, alias="@baseType")
    schema_location: str | None = Field(default=None, alias="@schemaLocation")


class EventSubscription(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str
    href: str | None = None
    callback: str
    query: str | None = None
    type_: str | None = Field(default=None, alias="@type")
    secret: str | None = Field(default=None, description="Only in the registration answer: the HMAC-SHA256 key of the X-Hub-Signature-256 header")


def _router_for(api: HubApi) -> APIRouter:
    base = api_base(api.name) + "/hub"
    router = APIRouter(tags=[f"{api.title} hub (TMF688 events)"])
    Reader = Annotated[Principal, Depends(require(api.permission))]

    @router.post(base, status_code=201, response_model=EventSubscription, response_model_by_alias=True, response_model_exclude_none=True,
                 summary=f"Register a listener for {api.name} events", operation_id=f"registerListener_{api.name}")
    def register_listener(body: EventSubscriptionInput, request: Request, db: DB, now: Now, principal: Reader) -> JSONResponse:
        listener, secret = service.register(db, api=api.name, callback=body.callback, query=body.query, now=now, actor=principal.actor)
        out = service.listener_out(listener, secret=secret)
        return JSONResponse(out, status_code=201, headers={"Location": str(request.base_url).rstrip("/") + out["href"]})

    @router.get(base, response_model=list[EventSubscription], response_model_by_alias=True, response_model_exclude_none=True,
                summary=f"List the listeners of the {api.name} hub", operation_id=f"listListeners_{api.name}")
    def list_listeners(db: DB, principal: Reader, fields: Fields = None, offset: Offset = 0, limit: Limit = 100) -> JSONResponse:
        rows, total = service.list_listeners(db, api=api.name, offset=offset, limit=limit)
        return list_response([service.listener_out(r) for r in rows], fields=fields, total=total)

    @router.get(base + "/{id}", response_model=EventSubscription, response_model_by_alias=True, response_model_exclude_none=True,
                summary=f"A listener of the {api.name} hub", operation_id=f"retrieveListener_{api.name}")
    def get_listener(id: ListenerId, db: DB, principal: Reader, fields: Fields = None) -> JSONResponse:
        return item_response(service.listener_out(service.get_listener(db, api=api.name, listener_id=id)), fields=fields)

    @router.delete(base + "/{id}", status_code=204, summary=f"Unregister a listener of the {api.name} hub", operation_id=f"unregisterListener_{api.name}")
    def delete_listener(id: ListenerId, db: DB, now: Now, principal: Reader) -> Response:
        service.delete_listener(db, api=api.name, listener_id=id, now=now, actor=principal.actor)
        return Response(status_code=204)

    return router


def routers() -> list[APIRouter]:
    return [_router_for(api) for api in APIS]


