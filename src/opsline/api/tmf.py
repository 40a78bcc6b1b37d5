"""Shared TM Forum Open API shapes and TMF630 plumbing every TMF list uses: `/tmf-api/{apiName}/v4` bases,
`fields` selection, `offset`/`limit` paging, `X-Total-Count`/`X-Result-Count` headers (see `list_response`), `sort`.

What every route under /tmf-api gets without code (opsline.api.conventions): unknown query parameters and
`limit` above PAGE_LIMIT_MAX are a 400 naming the parameter; `fields` is applied to the answer when the route does not
declare it; X-Result-Count is added to a list that lacks it; a 201's Location is made absolute (taken from the body's
`href` when the route sets none); `application/json-patch+json` PATCHes are applied to the current representation
and handed to the route as a merge patch; error bodies carry the TMF Error attributes; bad input is 400.

What a list route must still do itself: count the matches for X-Total-Count (`list_response(..., total=n)`), page in
the query (`.offset(offset).limit(limit)`, never rounding offset to a page), and sort in the query:

    def list_orders(..., sort: Sort = None, offset: Offset = 0, limit: Limit = 50):
        q = select(Order).where(...).order_by(*sort_clauses(sort, {"orderDate": Order.created_at, "state": Order.state},
                                                             default=[Order.id.desc()], tiebreak=Order.id))
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any, Annotated, Iterable, Mapping, Sequence

from fastapi import Path, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, create_model

from opsline.core.errors import OpslineError

TMF_ROOT = "/tmf-api"


def api_base(api_name: str, version: int = 4) -> str:
    """`/tmf-api/customerManagement/v4`: where an API's resources live (TMF630)."""
    return f"{TMF_ROOT}/{api_name}/v{version}"


class TMFModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class Ref(TMFModel):
    id: str
    href: str | None = None
    name: str | None = None
    referred_type: str | None = Field(default=None, alias="@referredType")


class RelatedParty(TMFModel):
    id: str
    href: str | None = None
    name: str | None = None
    role: str | None = None
    referred_type: str | None = Field(default=None, alias="@referredType")


class TimePeriod(TMFModel):
    startDateTime: datetime | None = None
    endDateTime: datetime | None = None


class TMFMoney(TMFModel):
    unit: str
    value: float


class Characteristic(TMFModel):
    name: str
    value: Any = None
    valueType: str | None = None


class Note(TMFModel):
    id: str | None = None
    author: str | None = None
    date: datetime | None = None
    text: str


def page_headers(response: Response, *, count: int, total: int | None = None) -> None:
    """TMF630 paging headers: X-Result-Count (items in this answer) and X-Total-Count (items matching, all pages)."""
    response.headers["X-Result-Count"] = str(count)
    if total is not None:
        response.headers["X-Total-Count"] = str(total)


# Attributes kept whatever `fields` asks for, so a client can always follow and identify what it got.
ALWAYS_KEPT = ("id", "href", "@type")


def parse_fields(fields: str | None) -> list[str] | None:
    """`fields=name,status` -> ["name", "status"]; None or "" means every attribute. `fields=none` keeps only ids.
    Dotted names (`contactMedium.mediumType`) select inside a nested attribute."""
    if fields is None or not fields.strip():
        return None
    names = [f.strip() for f in fields.split(",") if f.strip()]
    return [] if names == ["none"] else names


def select_fields(item: dict[str, Any], names: list[str] | None) -> dict[str, Any]:
    """The attributes of `item` named in `names` (plus id, href, @type)."""
    if names is None:
        return item
    top: dict[str, list[str]] = {}
    for n in names:
        head, _, rest = n.partition(".")
        top.setdefault(head, [])
        if rest:
            top[head].append(rest)
    out: dict[str, Any] = {k: item[k] for k in ALWAYS_KEPT if k in item}
    for key, sub in top.items():
        if key not in item:
            continue
        value = item[key]
        if sub and isinstance(value, dict):
            value = select_fields(value, sub)
        elif sub and isinstance(value, list):
            value = [select_fields(v, sub) if isinstance(v, dict) else v for v in value]
        out[key] = value
    return out


@lru_cache(maxsize=None)
def selectable(model: type[BaseModel]) -> type[BaseModel]:
    """The documented answer of a resource that honours `fields`: the same attributes, none required (a client that
    asks for `fields=name` gets only `name`, `id`, `href` and `@type`)."""
    defs: dict[str, Any] = {}
    for name, f in model.model_fields.items():
        defs[name] = (f.annotation | None, Field(default=None, alias=f.alias, description=f.description))
    return create_model(f"{model.__name__}Fields", __base__=TMFModel, **defs)


def list_response(items: Iterable[BaseModel | dict[str, Any]], *, fields: str | None = None, total: int | None = None) -> JSONResponse:
    """The answer of a TMF list: items (as their JSON shape, without nulls) narrowed to `fields`, with the paging headers."""
    names = parse_fields(fields)
    data = [select_fields(dump(i) if isinstance(i, BaseModel) else i, names) for i in items]
    headers = {"X-Result-Count": str(len(data))}
    if total is not None:
        headers["X-Total-Count"] = str(total)
    return JSONResponse(data, headers=headers)


def item_response(item: BaseModel | dict[str, Any], *, fields: str | None = None, status_code: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    """One resource, narrowed to `fields` (TMF630 allows `fields` on a GET by id too)."""
    return JSONResponse(select_fields(dump(item) if isinstance(item, BaseModel) else item, parse_fields(fields)), status_code=status_code, headers=headers)


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


# THE maximum page size of every TMF list (documented in the README); a larger `limit` is a 400, never a silent cut.
PAGE_LIMIT_MAX = 1000

# Shared parameter types: bounded so nonsense never reaches the database (SQLite INTEGER is 64-bit).
ResourceId = Annotated[int, Path(ge=1, le=2**53, description="Resource id")]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="Items to skip")]
Limit = Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX, description="Items per page")]
Fields = Annotated[str | None, Query(max_length=1000, pattern=r"^[A-Za-z0-9@_.,]*$", description="Comma-separated properties to be provided in response")]
Sort = Annotated[str | None, Query(max_length=300, pattern=r"^[-+]?[A-Za-z0-9@_.]+(,[-+]?[A-Za-z0-9@_.]+)*$",
                                   description="Comma-separated attributes to sort by; a leading '-' sorts descending (e.g. -orderDate,id)")]


class UnsortableAttribute(OpslineError):
    status = 400
    title = "Invalid sort"
    type_slug = "invalid-sort"


def sort_clauses(sort: str | None, columns: Mapping[str, Any], *, default: Sequence[Any] = (), tiebreak: Any = None) -> list[Any]:
    """ORDER BY clauses for `sort=-orderDate,name` (TMF630): each attribute must be a key of `columns` (attribute ->
    SQL column or expression). Without `sort`, `default`. `tiebreak` (usually the primary key) is appended so pages never
    overlap. Raises UnsortableAttribute (400, naming the attribute and the sortable ones)."""
    if not sort or not sort.strip():
        clauses = list(default)
    else:
        clauses = []
        for part in sort.split(","):
            part = part.strip()
            desc = part.startswith("-")
            name = part.lstrip("+-")
            if name not in columns:
                raise UnsortableAttribute(f"cannot sort by '{name}' (sortable: {', '.join(sorted(columns))})", field="sort")
            col = columns[name]
            clauses.append(col.desc() if desc else col.asc())
    if tiebreak is not None:
        clauses.append(tiebreak)
    return clauses
