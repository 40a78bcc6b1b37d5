"""Issue 14's "done when": a client generated from the official TM Forum v4 swagger files works against Opsline as it
is. The pydantic models are generated at test time with datamodel-code-generator from ../shared/tmf/specs (the
swagger 2.0 `definitions` read as JSON Schema); then, over HTTP on a database seeded by the demo generator, every TMF
collection that has an official spec is listed (each item parsed with the generated model), paged (offset/limit,
X-Total-Count) and filtered on a documented attribute; customers, billing accounts and trouble tickets are created
from the generated *_Create model and patched from the *_Update model, as are a product and a customer bill (Opsline takes
no creates of those: products come from orders, bills from bill runs). Orders, cancellations, quotes and payments are created by their samples (test_tmf_b_samples)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from types import ModuleType
from typing import Any

import pytest
from conftest import BACKENDS, NOW, TMF_SPECS, Clock, _truncate_all
from fastapi.testclient import TestClient

from opsline.config import Settings
from opsline.core.events import Actor
from opsline.db.session import make_engine, make_sessionmaker
from opsline.demo import run_demo
from opsline.web.app import create_app

SETTINGS = dict(secret_key="test-secret-key-0123456789", worker_in_process=False)

# path under /tmf-api -> (spec, generated model of an item, a documented attribute to filter on)
RESOURCES: dict[str, tuple[str, str, str]] = {
    "customerManagement/v4/customer": ("TMF629-Customer", "Customer", "engagedParty.id"),
    "accountManagement/v4/billingAccount": ("TMF666-Account", "BillingAccount", "state"),
    "customerBillManagement/v4/customerBill": ("TMF678-CustomerBill", "CustomerBill", "state"),
    "customerBillManagement/v4/appliedCustomerBillingRate": ("TMF678-CustomerBill", "AppliedCustomerBillingRate", "billingAccount.id"),
    "paymentManagement/v4/payment": ("TMF676-Payment", "Payment", "status"),
    "paymentManagement/v4/refund": ("TMF676-Payment", "Refund", "status"),
    "productCatalogManagement/v4/productOffering": ("TMF620-ProductCatalog", "ProductOffering", "lifecycleStatus"),
    "productCatalogManagement/v4/productOfferingPrice": ("TMF620-ProductCatalog", "ProductOfferingPrice", "priceType"),
    "productInventory/v4/product": ("TMF637-ProductInventory", "Product", "status"),
    "productOrderingManagement/v4/productOrder": ("TMF622-ProductOrder", "ProductOrder", "state"),
    "productOrderingManagement/v4/cancelProductOrder": ("TMF622-ProductOrder", "CancelProductOrder", "state"),
    "quoteManagement/v4/quote": ("TMF648-Quote", "Quote", "state"),
    "serviceOrdering/v4/serviceOrder": ("TMF641-ServiceOrdering", "ServiceOrder", "state"),
    "troubleTicket/v4/troubleTicket": ("TMF621-TroubleTicket", "TroubleTicket", "status"),
}


@pytest.fixture(scope="session")
def generated(tmp_path_factory) -> dict[str, ModuleType]:  # type: ignore[no-untyped-def]
    """spec name -> the module datamodel-code-generator writes from its swagger file."""
    from datamodel_code_generator import DataModelType, InputFileType, generate

    out: dict[str, ModuleType] = {}
    folder = tmp_path_factory.mktemp("tmf_client")
    for spec in sorted({s for s, _, _ in RESOURCES.values()}):
        source = next(TMF_SPECS.glob(f"{spec}-*.swagger.json"))
        target = folder / f"{spec.replace('-', '_').lower()}.py"
        generate(source.read_text(), input_file_type=InputFileType.JsonSchema, output=target, output_model_type=DataModelType.PydanticV2BaseModel,
                 formatters=[])
        module_spec = importlib.util.spec_from_file_location(target.stem, target)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[target.stem] = module
        module_spec.loader.exec_module(module)
        out[spec] = module
    return out


@pytest.fixture(scope="module", params=BACKENDS)
def client(request, tmp_path_factory, sqlite_template, pg_engine):  # type: ignore[no-untyped-def]
    from opsline.users.service import create_api_client

    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("tmfclient") / "demo.db"
        shutil.copy(sqlite_template, path)
        engine = make_engine(f"sqlite:///{path}")
    else:
        engine = pg_engine
        _truncate_all(engine)
    run_demo(engine, accounts=20, now=NOW)
    with make_sessionmaker(engine).begin() as s:
        _, token = create_api_client(s, name="generated-client", roles=["admin"], now=NOW, actor=Actor.system("test"))
    app = create_app(settings=Settings(database_url=engine.url.render_as_string(hide_password=False), **SETTINGS), engine=engine, clock=Clock(NOW),
                     start_worker=False)
    c = TestClient(app, base_url="https://opsline.example")
    c.headers["Authorization"] = f"Bearer {token}"
    with c:
        yield c
    if request.param == "sqlite":
        engine.dispose()


def _value(item: dict[str, Any], attribute: str) -> Any:
    head, _, rest = attribute.partition(".")
    value = item.get(head)
    if isinstance(value, list):
        value = value[0] if value else None
    return _value(value, rest) if rest and isinstance(value, dict) else value


def _body(model: Any) -> dict[str, Any]:
    """What the generated client sends: the model as JSON, by the spec's names, without the unset attributes."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


# Where the owner's answer (not this client) still fails the generated model; non-strict, so a fix shows as XPASS. (TMF676's
# paymentItem.item.href, format uri, is absolute now, so the payment list passes strictly.)
OWNER_GAPS: dict[str, str] = {}


@pytest.mark.parametrize("path", sorted(RESOURCES))
def test_a_generated_client_lists_pages_and_filters_every_resource(request, client, generated, path):
    if path in OWNER_GAPS:
        request.applymarker(pytest.mark.xfail(reason=OWNER_GAPS[path], strict=False))
    spec, definition, attribute = RESOURCES[path]
    model = getattr(generated[spec], definition)
    url = f"/tmf-api/{path}"
    r = client.get(url, params={"limit": 6})
    assert r.status_code == 200, r.text[:300]
    items = [model.model_validate(i) for i in r.json()]
    if not items:
        pytest.skip(f"the demo has no {definition}")
    total = int(r.headers["X-Total-Count"])
    assert total >= len(items) and r.headers["X-Result-Count"] == str(len(items))
    page = client.get(url, params={"offset": 1, "limit": 2})
    assert [model.model_validate(i).id for i in page.json()] == [i.id for i in items[1:3]] and page.headers["X-Total-Count"] == str(total)
    wanted = _value(r.json()[0], attribute)
    assert wanted is not None, f"{definition} answers no {attribute}"
    filtered = client.get(url, params={attribute: str(wanted), "limit": 1000})
    assert filtered.status_code == 200, filtered.text[:300]
    found = [model.model_validate(i) for i in filtered.json()]
    assert items[0].id in {f.id for f in found} and all(str(_value(i, attribute)) == str(wanted) for i in filtered.json())
    assert int(filtered.headers["X-Total-Count"]) == len(found) <= total


def test_a_generated_client_creates_and_patches_a_customer(client, generated):
    m = generated["TMF629-Customer"]
    create = m.CustomerCreate.model_validate({"name": "Generated Client (Pty) Ltd", "engagedParty": {"id": "0", "@referredType": "Organization"},
                                              "contactMedium": [{"mediumType": "email", "characteristic": {"emailAddress": "ops@generated.example"}}],
                                              "statusReason": "onboarded by a partner"})
    r = client.post("/tmf-api/customerManagement/v4/customer", json=_body(create))
    assert r.status_code == 201, r.text
    made = m.Customer.model_validate(r.json())
    assert made.name == "Generated Client (Pty) Ltd" and made.statusReason == "onboarded by a partner"
    assert r.headers["Location"] == f"https://opsline.example{made.href}"
    update = m.CustomerUpdate.model_validate({"engagedParty": _body(made.engagedParty), "name": "Generated Client Holdings"})
    r = client.patch(made.href, json=_body(update), headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    assert m.Customer.model_validate(r.json()).name == "Generated Client Holdings" == client.get(made.href).json()["name"]


def test_a_generated_client_creates_and_patches_a_billing_account(client, generated):
    m = generated["TMF666-Account"]
    create = m.BillingAccountCreate.model_validate({"name": "Head office", "accountType": "b2b",
                                                    "relatedParty": [{"id": "0", "name": "Generated Freight", "role": "owner", "@referredType": "Organization"}]})
    r = client.post("/tmf-api/accountManagement/v4/billingAccount", json=_body(create))
    assert r.status_code == 201, r.text
    made = m.BillingAccount.model_validate(r.json())
    assert made.accountType == "b2b" and made.description == "Generated Freight"
    # BillingAccount_Update requires name and relatedParty: the client sends back what it got
    update = m.BillingAccountUpdate.model_validate({"name": made.name, "relatedParty": [_body(p) for p in made.relatedParty],
                                                    "description": "Generated Freight Holdings"})
    r = client.patch(made.href, json=_body(update), headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    assert m.BillingAccount.model_validate(r.json()).description == "Generated Freight Holdings"
    renamed = m.BillingAccountUpdate.model_validate({"name": "Another number", "relatedParty": [_body(p) for p in made.relatedParty]})
    r = client.patch(made.href, json=_body(renamed))
    assert r.status_code == 400 and r.json()["field"] == "name", r.text
    assert client.get(made.href).json()["name"] == made.name


def test_a_generated_client_creates_and_patches_a_trouble_ticket(client, generated):
    m = generated["TMF621-TroubleTicket"]
    customer = client.get("/tmf-api/customerManagement/v4/customer", params={"limit": 1, "status": "active"}).json()[0]
    create = m.TroubleTicketCreate.model_validate({"description": "No sync light since the storm", "severity": "major", "ticketType": "device_technical",
                                                   "relatedParty": [{"id": customer["id"], "role": "customer", "@referredType": "Customer"}]})
    r = client.post("/tmf-api/troubleTicket/v4/troubleTicket", json=_body(create))
    assert r.status_code == 201, r.text
    made = m.TroubleTicket.model_validate(r.json())
    assert made.severity == "major"
    update = m.TroubleTicketUpdate.model_validate({"severity": "critical"})
    r = client.patch(made.href, json=_body(update), headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    assert m.TroubleTicket.model_validate(r.json()).severity == "critical" == client.get(made.href).json()["severity"]


def test_a_generated_client_patches_a_product_and_a_customer_bill(client, generated):
    m = generated["TMF637-ProductInventory"]
    product = m.Product.model_validate(client.get("/tmf-api/productInventory/v4/product", params={"limit": 1, "status": "active"}).json()[0])
    update = m.ProductUpdate.model_validate({"productCharacteristic": [{"name": "partnerLineRef", "value": "FNO-LINE-0042"}]})
    r = client.patch(product.href, json=_body(update), headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    got = m.Product.model_validate(r.json())
    assert {"partnerLineRef": "FNO-LINE-0042"}.items() <= {c.name: c.value.root if hasattr(c.value, "root") else c.value for c in got.productCharacteristic}.items()
    b = generated["TMF678-CustomerBill"]
    bills = client.get("/tmf-api/customerBillManagement/v4/customerBill", params={"state": "new", "limit": 1}).json()
    if not bills:
        pytest.skip("the demo has no bill in state new")
    bill = b.CustomerBill.model_validate(bills[0])
    r = client.patch(bill.href, json=_body(b.CustomerBillUpdate.model_validate({"state": "onHold"})), headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    assert b.CustomerBill.model_validate(r.json()).state.value == "onHold" == client.get(bill.href).json()["state"]
