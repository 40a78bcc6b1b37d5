"""Locust users for bench/load.py: second-line agents working cases in the browser app, a CRM placing TMF622 orders,
customers' invoices viewed through TMF678. Every answer is checked (status and content) before it counts as a
success. Inputs come from the environment bench/load.py sets (OPSLINE_LOAD_* ids and the API token).
FastHttpUser (geventhttpclient) rather than HttpUser (requests): locust's own advice for high request rates, and the
load generator shares the 2 cores with the server, so its cost per request counts against the server's figures."""

from __future__ import annotations

import itertools
import os
import random
import re

from locust import between, task
from locust.contrib.fasthttp import FastHttpUser

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
CASES = [int(x) for x in os.environ["OPSLINE_LOAD_CASES"].split(",")]
INVOICES = [int(x) for x in os.environ["OPSLINE_LOAD_INVOICES"].split(",")]
ORDER_TARGETS = [tuple(int(v) for v in x.split(":")) for x in os.environ["OPSLINE_LOAD_ORDER_TARGETS"].split(",")]  # account:site:offering
TOKEN = os.environ["OPSLINE_LOAD_TOKEN"]
AGENTS = os.environ.get("OPSLINE_LOAD_AGENTS", "support,support2").split(",")
PASSWORD = os.environ.get("OPSLINE_LOAD_PASSWORD", "opsline-demo")
_seq = itertools.count(1)


class Agent(FastHttpUser):
    """A second-line agent: the work queue, a case, a note on it now and then."""

    weight = 6
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        name = AGENTS[next(_seq) % len(AGENTS)]
        form = self.client.get("/login", name="GET /login")
        m = CSRF.search(form.text or "")
        r = self.client.post("/login", data={"username": name, "password": PASSWORD, "next": "/cases", "csrf_token": m.group(1) if m else ""},
                             allow_redirects=False, name="POST /login")
        if r.status_code != 303:
            raise RuntimeError(f"sign-in as {name} failed: {r.status_code}")
        self.csrf = ""

    @task(4)
    def work_queue(self) -> None:
        with self.client.get("/cases", name="GET /cases (work queue)", catch_response=True) as r:
            if r.status_code != 200 or "case" not in r.text.lower():
                r.failure(f"work queue {r.status_code}")

    @task(4)
    def open_case(self) -> None:
        cid = random.choice(CASES)
        with self.client.get(f"/cases/{cid}", name="GET /cases/{id}", catch_response=True) as r:
            m = CSRF.search(r.text or "")
            if r.status_code != 200 or not m:
                r.failure(f"case page {r.status_code}")
                return
            self.csrf = m.group(1)

    @task(1)
    def add_note(self) -> None:
        if not self.csrf:
            return self.open_case()
        cid = random.choice(CASES)
        with self.client.post(f"/cases/{cid}/notes", data={"body": "Called the customer back; router restarted, line stable.", "visibility": "internal",
                                                           "csrf_token": self.csrf}, allow_redirects=False, name="POST /cases/{id}/notes", catch_response=True) as r:
            if r.status_code not in (200, 303):
                r.failure(f"note {r.status_code}")


class Crm(FastHttpUser):
    """An integrated CRM placing product orders (each with its own Idempotency-Key) and reading them back."""

    weight = 2
    wait_time = between(0.5, 1.5)

    default_headers = {"Authorization": f"Bearer {TOKEN}"}

    @task
    def place_order(self) -> None:
        account, site, offering = random.choice(ORDER_TARGETS)
        key = f"load-{os.getpid()}-{next(_seq)}-{random.getrandbits(40)}"
        body = {"billingAccount": {"id": str(account)}, "externalId": key,
                "productOrderItem": [{"id": "1", "action": "add", "productOffering": {"id": str(offering)}, "product": {"place": [{"id": str(site)}]}}]}
        with self.client.post("/tmf-api/productOrderingManagement/v4/productOrder", json=body, headers={"Idempotency-Key": key},
                              name="POST TMF622 productOrder", catch_response=True) as r:
            if r.status_code != 201 or not r.json().get("id"):
                r.failure(f"order {r.status_code}: {r.text[:200]}")
                return
            oid = r.json()["id"]
        with self.client.get(f"/tmf-api/productOrderingManagement/v4/productOrder/{oid}", name="GET TMF622 productOrder/{id}", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"order read {r.status_code}")


class InvoiceViewer(FastHttpUser):
    """Self-service and partner systems reading customer bills."""

    weight = 2
    wait_time = between(0.5, 1.5)

    default_headers = {"Authorization": f"Bearer {TOKEN}"}

    @task
    def bill(self) -> None:
        iid = random.choice(INVOICES)
        with self.client.get(f"/tmf-api/customerBillManagement/v4/customerBill/{iid}", name="GET TMF678 customerBill/{id}", catch_response=True) as r:
            if r.status_code != 200 or str(r.json().get("id")) != str(iid):
                r.failure(f"bill {r.status_code}")
