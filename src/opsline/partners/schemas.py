"""Pydantic shapes for the partners API (TMF641 ServiceOrder as we sent it) and the callback answer."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from opsline.api.tmf import Note, TMFModel


class ServiceOrderItemOut(TMFModel):
    id: str
    action: str
    state: str
    service: dict[str, Any]
    type_: str = Field(default="ServiceOrderItem", alias="@type")


class ServiceOrderOut(TMFModel):
    """TMF641 ServiceOrder: one outbound order to a wholesale partner."""

    id: str
    href: str
    externalId: str
    state: str
    category: str = "wholesaleFibre"
    description: str | None = None
    orderDate: str
    requestedStartDate: str | None = None
    requestedCompletionDate: str | None = None
    expectedCompletionDate: str | None = None
    completionDate: str | None = None
    relatedParty: list[dict[str, Any]] = []
    serviceOrderItem: list[ServiceOrderItemOut] = []
    note: list[Note] = []
    characteristic: list[dict[str, Any]] = []
    type_: str = Field(default="ServiceOrder", alias="@type")


class CallbackAck(TMFModel):
    """What we answer a partner's state-change event with."""

    outcome: str  # applied | ignored
    detail: str
    externalId: str | None = None
    state: str | None = None
