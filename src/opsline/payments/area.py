"""Payments area wiring: statement import, matching, allocation, suspense, refunds, TMF676, desk cards and demo."""

from __future__ import annotations

from opsline.areas import Area
from opsline.payments import models  # noqa: F401  (tables)
from opsline.payments.models import ALLOCATION, PAYMENT, REFUND

CLERK, MANAGER, ANALYST = "debtors_clerk", "debtors_manager", "billing_analyst"

INVOICE_SETTLED = "payments.invoice_settled"
INVOICE_REOPENED = "payments.invoice_reopened"

def _seed(session, *, now) -> None:  # type: ignore[no-untyped-def]
    from opsline.payments import seed

    seed.seed(session, now=now)


AREA = Area(
    name="payments",
    seed=_seed,
    order=70,  # after billing (invoices, ledger)
    permissions={
        "payments.view": {CLERK, MANAGER, ANALYST},
        "payments.allocate": {CLERK, MANAGER},
        "payments.approve": {CLERK, MANAGER},
        "payments.refund": {CLERK, MANAGER},
        "payments.capture": {CLERK, MANAGER},
    },
    lifecycles=(PAYMENT, ALLOCATION, REFUND),
    events=(INVOICE_SETTLED, INVOICE_REOPENED),
)
