"""TMF623 SLA read API: a B2B contract as an SLA with its rules and a measured October violation as an SLAViolation,
with fields, offset/limit and X-Total-Count, filters, 404s as problem+json, and who may read it."""

from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import select

from opsline.b2b import service
from opsline.cases.models import Queue, SupportCase
from opsline.core.events import Actor
from opsline.core.localtime import zone
from opsline.core.money import Money
from opsline.customers.models import Account, Party

MGR = Actor(name="svc", roles=frozenset({"service_manager"}))


def _contract(factory, now) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        p = Party(kind="organisation", name="Karoo Mining Ltd", created_at=now)
        s.add(p)
        s.flush()
        a = Account(account_number=f"B{p.id:09d}", party_id=p.id, name="Karoo Mining Ltd", kind="b2b", status="active", segment_code="enterprise",
                    value_tier_code="standard", currency="ZAR", created_at=now, updated_at=now)
        s.add(a)
        q = s.execute(select(Queue).where(Queue.code == "technical")).scalar_one_or_none()
        if q is None:
            q = Queue(code="technical", name="Technical", is_escalation=False, assignment="manual", skills=[], active=True)
            s.add(q)
        s.flush()
        opened = datetime(2026, 10, 7, 6, tzinfo=timezone.utc)
        s.add(SupportCase(reference="CS-KM1", account_id=a.id, category_code="network_coverage", channel="call", subject="Mine site offline",
                          state="resolved", priority=1, queue_id=q.id, opened_at=opened, updated_at=opened,
                          resolved_at=datetime(2026, 10, 8, 6, tzinfo=timezone.utc), reopen_count=0))
        s.flush()
        cid = service.create_contract(s, account_id=a.id, name="Site connectivity", valid_from=date(2026, 1, 1), valid_to=None,
                                      monthly_value=Money.of("40000", "ZAR"), credit_cap=Money.of("5000", "ZAR"), terms="Standard terms", now=now, actor=MGR)
        service.add_rule(s, contract_id=cid, metric="availability", operator=">=", reference_value="99.9", consequence="credit_percent",
                         credit_percent="10", now=now, actor=MGR)
        service.add_rule(s, contract_id=cid, metric="mttr", operator="<=", reference_value="8", tolerance="0.5", now=now, actor=MGR)
        service.evaluate_month(s, period=date(2026, 10, 1), now=now, tz=zone("Africa/Johannesburg"), actor=MGR)
        return int(a.id), cid


def test_a_contract_reads_as_a_tmf623_sla_with_its_rules_and_its_violation(client_as, factory, now) -> None:
    acc, cid = _contract(factory, now)
    c = client_as("billing_analyst")
    r = c.get("/tmf-api/slaManagement/v2/sla")
    assert r.status_code == 200 and r.headers["X-Total-Count"] == "1" and r.headers["X-Result-Count"] == "1"
    sla = r.json()[0]
    assert sla["@type"] == "SLA" and sla["href"] == f"/tmf-api/slaManagement/v2/sla/{cid}" and sla["state"] == "active"
    assert sla["relatedParty"][0] == {"id": str(acc), "href": f"/tmf-api/customerManagement/v4/customer/{acc}", "name": "Karoo Mining Ltd",
                                      "role": "SLAConsumer", "@referredType": "Customer"}
    avail = next(x for x in sla["rule"] if x["metric"] == "availability")
    assert (avail["operator"], avail["referenceValue"], avail["unit"], avail["tolerance"]) == (".ge", "99.9", "%", "0")
    assert "10 % of the monthly charges" in avail["consequence"]
    assert sla["validFor"]["startDateTime"].startswith("2026-01-01")
    one = c.get(f"/tmf-api/slaManagement/v2/sla/{cid}?fields=name")
    assert one.json() == {"id": str(cid), "href": f"/tmf-api/slaManagement/v2/sla/{cid}", "@type": "SLA", "name": one.json()["name"]}
    v = c.get(f"/tmf-api/slaManagement/v2/slaViolation?sla.id={cid}&period=2026-10")
    assert v.status_code == 200 and v.headers["X-Total-Count"] == "2"  # availability and mean time to restore (24 h)
    viol = next(x for x in v.json() if x["violation"]["rule"]["id"] == avail["id"])
    assert viol["@type"] == "SLAViolation" and viol["sla"]["id"] == str(cid)
    assert viol["violation"]["operator"] == ".ge" and viol["violation"]["referenceValue"] == "99.9"
    assert float(viol["violation"]["actualValue"]) < 99.9 and viol["violation"]["rule"]["href"].endswith(f"#rule-{avail['id']}")
    assert "service credit proposed" in viol["violation"]["comment"]
    assert c.get(f"/tmf-api/slaManagement/v2/slaViolation/{viol['id']}").json()["id"] == viol["id"]
    assert c.get("/tmf-api/slaManagement/v2/slaViolation?period=2026-09").headers["X-Total-Count"] == "0"
    paged = c.get("/tmf-api/slaManagement/v2/sla?offset=1&limit=1")
    assert paged.json() == [] and paged.headers["X-Total-Count"] == "1"


def test_unknown_ids_are_404_problems_bad_filters_422_and_only_b2b_readers_may_read(client_as, factory, now) -> None:
    _contract(factory, now)
    c = client_as("service_manager")
    r = c.get("/tmf-api/slaManagement/v2/sla/987654", headers={"Accept": "application/problem+json"})
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    assert c.get("/tmf-api/slaManagement/v2/slaViolation/987654").status_code == 404
    assert c.get("/tmf-api/slaManagement/v2/slaViolation?period=October").status_code == 400  # request validation answers 400 problems
    assert c.get("/tmf-api/slaManagement/v2/sla?limit=0").status_code == 400
    assert client_as("debtors_clerk").get("/tmf-api/slaManagement/v2/sla").status_code == 403
