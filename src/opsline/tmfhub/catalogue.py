"""Which TM Forum APIs have a /hub, who may use it, and which domain events become which TMF event types.

Each rule maps a domain event some area already publishes (a lifecycle's `<name>.<state>`, or a declared event such as
`case.changed`) to a TMF event on one resource of one API. The resource in the event is what the API's GET answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class HubApi:
    name: str  # apiName, as in /tmf-api/{name}/v4
    title: str
    permission: str  # the permission the API's GET needs: a listener receives what it could read
    event_types: tuple[str, ...]  # every event type this hub can send


@dataclass(frozen=True)
class Rule:
    domain_event: str  # exact name or fnmatch pattern
    api: str
    resource: str  # path segment: /tmf-api/{api}/v4/{resource}/{id}
    event_type: Callable[[str, dict[str, Any]], list[str]]  # (domain event name, payload) -> TMF event types (may be [])
    # the resource in this rule's Create event is rendered when the publishing transaction commits (its delivery, and so its
    # place in the order per resource, is taken when published): a create whose parts are added after it is announced (an
    # order's items). Its other events keep the resource as it was when they were published.
    at_commit: bool = False


def _lifecycle(prefix: str, *, create: str | None = None, extra: dict[str, str] | None = None, change: str = "State") -> Callable[[str, dict[str, Any]], list[str]]:
    """`<name>.<state>` events: a StateChange (TMF621: StatusChange; a Create when nothing came before), plus `extra[state]`."""

    def f(name: str, payload: dict[str, Any]) -> list[str]:
        if payload.get("batch"):
            return []
        state = name.rsplit(".", 1)[-1]
        if create and not payload.get("from"):
            return [create]
        out = [f"{prefix}{change}ChangeEvent"]
        if extra and state in extra:
            out.append(extra[state])
        return out

    return f


def _case_changed(name: str, payload: dict[str, Any]) -> list[str]:
    what = str(payload.get("what") or "")
    if what == "opened":
        return ["TroubleTicketCreateEvent"]
    # a status change publishes case.<state> too (TroubleTicketStatusChangeEvent); these are the other attributes
    if what in {"priority", "assignment", "note"} or "," in what or what.startswith(("severity", "queue")):
        return ["TroubleTicketAttributeValueChangeEvent"]
    return []


def _invoice(name: str, payload: dict[str, Any]) -> list[str]:
    # a draft is not a bill yet: it becomes one (TMF678) when it is finalised
    state = name.rsplit(".", 1)[-1]
    if state == "draft" or payload.get("batch"):
        return []
    return ["CustomerBillCreateEvent"] if state == "finalised" else ["CustomerBillStateChangeEvent"]


def _offering_changed(name: str, payload: dict[str, Any]) -> list[str]:
    """TMF620: `lifecycleStatus` is the offering's state (StateChange); any other attribute is an AttributeValueChange."""
    attributes = set(payload.get("attributes") or [])
    out = ["ProductOfferingStateChangeEvent"] if "lifecycleStatus" in attributes else []
    if attributes - {"lifecycleStatus"} or not attributes:  # a change that names nothing is still a change
        out.append("ProductOfferingAttributeValueChangeEvent")
    return out


def _always(event_type: str) -> Callable[[str, dict[str, Any]], list[str]]:
    """A declared create/change event (`<area>.<resource>_created` / `_changed`): always this one TMF event type."""
    return lambda name, payload: [] if payload.get("batch") else [event_type]


APIS: tuple[HubApi, ...] = (
    HubApi("productOrderingManagement", "TMF622 Product Ordering", "orders.view",
           ("ProductOrderCreateEvent", "ProductOrderStateChangeEvent", "ProductOrderAttributeValueChangeEvent",
            "CancelProductOrderCreateEvent", "CancelProductOrderStateChangeEvent")),
    HubApi("troubleTicket", "TMF621 Trouble Ticket", "cases.view",
           ("TroubleTicketCreateEvent", "TroubleTicketStatusChangeEvent", "TroubleTicketAttributeValueChangeEvent", "TroubleTicketResolvedEvent")),
    HubApi("customerManagement", "TMF629 Customer", "customers.view",
           ("CustomerCreateEvent", "CustomerStateChangeEvent", "CustomerAttributeValueChangeEvent")),
    HubApi("accountManagement", "TMF666 Account", "customers.view",
           ("BillingAccountStateChangeEvent", "BillingAccountAttributeValueChangeEvent")),
    HubApi("productInventory", "TMF637 Product Inventory", "inventory.view",
           ("ProductCreateEvent", "ProductStateChangeEvent", "ProductAttributeValueChangeEvent")),
    HubApi("quoteManagement", "TMF648 Quote", "orders.view", ("QuoteCreateEvent", "QuoteStateChangeEvent", "QuoteAttributeValueChangeEvent")),
    HubApi("serviceOrdering", "TMF641 Service Ordering", "partners.view",
           ("ServiceOrderCreateEvent", "ServiceOrderStateChangeEvent", "ServiceOrderAttributeValueChangeEvent")),
    HubApi("customerBillManagement", "TMF678 Customer Bill", "billing.view", ("CustomerBillCreateEvent", "CustomerBillStateChangeEvent")),
    HubApi("paymentManagement", "TMF676 Payment", "payments.view",
           ("PaymentCreateEvent", "PaymentStateChangeEvent", "RefundCreateEvent", "RefundStateChangeEvent")),
    HubApi("productCatalogManagement", "TMF620 Product Catalog", "catalog.view",
           ("ProductOfferingCreateEvent", "ProductOfferingStateChangeEvent", "ProductOfferingAttributeValueChangeEvent")),
)
BY_NAME = {a.name: a for a in APIS}

RULES: tuple[Rule, ...] = (
    Rule("product_order.*", "productOrderingManagement", "productOrder", _lifecycle("ProductOrder", create="ProductOrderCreateEvent"), at_commit=True),
    Rule("cancel_product_order.*", "productOrderingManagement", "cancelProductOrder", _lifecycle("CancelProductOrder", create="CancelProductOrderCreateEvent")),
    Rule("case.changed", "troubleTicket", "troubleTicket", _case_changed),
    Rule("case.*", "troubleTicket", "troubleTicket",
         lambda n, p: [] if n == "case.changed" or n == "case.retention_declined" else
         _lifecycle("TroubleTicket", extra={"resolved": "TroubleTicketResolvedEvent"}, change="Status")(n, p)),
    Rule("account.*", "customerManagement", "customer", _lifecycle("Customer", create="CustomerCreateEvent")),
    Rule("account.*", "accountManagement", "billingAccount", _lifecycle("BillingAccount")),
    Rule("product.*", "productInventory", "product", _lifecycle("Product", create="ProductCreateEvent")),
    Rule("quote.*", "quoteManagement", "quote", _lifecycle("Quote", create="QuoteCreateEvent")),
    Rule("partner_service_order.*", "serviceOrdering", "serviceOrder", _lifecycle("ServiceOrder", create="ServiceOrderCreateEvent")),
    Rule("invoice.*", "customerBillManagement", "customerBill", _invoice),
    Rule("payment.*", "paymentManagement", "payment", _lifecycle("Payment", create="PaymentCreateEvent")),
    Rule("refund.*", "paymentManagement", "refund", _lifecycle("Refund", create="RefundCreateEvent")),
    # creates and attribute changes: events the owning services publish (payload: id, and the changed `attributes`)
    # published when the order is placed, before its items exist: the event carries the order as the placing transaction commits it
    Rule("orders.order_created", "productOrderingManagement", "productOrder", _always("ProductOrderCreateEvent"), at_commit=True),
    Rule("orders.order_changed", "productOrderingManagement", "productOrder", _always("ProductOrderAttributeValueChangeEvent")),
    Rule("orders.quote_created", "quoteManagement", "quote", _always("QuoteCreateEvent")),
    Rule("orders.quote_changed", "quoteManagement", "quote", _always("QuoteAttributeValueChangeEvent")),
    Rule("customers.account_created", "customerManagement", "customer", _always("CustomerCreateEvent")),
    Rule("customers.account_changed", "customerManagement", "customer", _always("CustomerAttributeValueChangeEvent")),
    Rule("customers.account_changed", "accountManagement", "billingAccount", _always("BillingAccountAttributeValueChangeEvent")),
    Rule("inventory.product_created", "productInventory", "product", _always("ProductCreateEvent")),
    Rule("inventory.product_changed", "productInventory", "product", _always("ProductAttributeValueChangeEvent")),
    Rule("partners.service_order_created", "serviceOrdering", "serviceOrder", _always("ServiceOrderCreateEvent")),
    Rule("partners.service_order_changed", "serviceOrdering", "serviceOrder", _always("ServiceOrderAttributeValueChangeEvent")),
    Rule("payments.payment_created", "paymentManagement", "payment", _always("PaymentCreateEvent")),
    # a statement or debit-order file writes its payments set-based: one event for the batch ({"ids": [...]}), rendered in pages
    Rule("payments.payments_created", "paymentManagement", "payment", _always("PaymentCreateEvent")),
    Rule("payments.refund_created", "paymentManagement", "refund", _always("RefundCreateEvent")),
    # offerings change at /admin (reference data): the catalog area's admin view publishes these
    Rule("catalog.offering_created", "productCatalogManagement", "productOffering", _always("ProductOfferingCreateEvent")),
    Rule("catalog.offering_changed", "productCatalogManagement", "productOffering", _offering_changed),
)

# TMF event types whose domain event no area publishes yet (listed so registration still accepts them and the README can
# say what is missing): none left.
NOT_YET_PUBLISHED: tuple[str, ...] = ()


def resource_type(resource: str) -> str:
    """`productOrder` -> `ProductOrder` (the @type and the key inside the event body is the resource name itself)."""
    return resource[:1].upper() + resource[1:]
