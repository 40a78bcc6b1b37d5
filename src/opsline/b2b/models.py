"""Tables of B2B service management: contracts, their SLA rules (TMF623 shapes: metric, unit, reference value,
operator, tolerance, consequence), the violations measured per account and month, and the service credits they propose."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import BigInteger, CheckConstraint, Date, ForeignKey, Index, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from opsline.core.lifecycle import Lifecycle
from opsline.db.base import Base, IdPk, sql_in

# metric -> (unit, label). Every metric is measured per account and calendar month from Opsline's own data.
METRICS: dict[str, tuple[str, str]] = {
    "availability": ("%", "Availability (outage cases)"),
    "mttr": ("hours", "Mean time to restore"),
    "first_response_compliance": ("%", "First response within target"),
    "resolution_compliance": ("%", "Cases resolved without an SLA breach"),
    "order_on_time": ("%", "Orders delivered by the committed date"),
    "invoice_accuracy": ("%", "Invoice accuracy (100 - credit notes as % of billing)"),
    "claims_resolved_on_time": ("%", "Billing claims decided by their due date"),
}
OPERATORS: dict[str, str] = {">=": "at least", "<=": "at most", ">": "above", "<": "below"}
CONSEQUENCES = ("none", "credit_percent", "credit_fixed")


class ContractState(enum.StrEnum):
    ACTIVE = "active"
    ENDED = "ended"


CONTRACT = Lifecycle(name="b2b_contract", states=ContractState,
                     transitions={ContractState.ACTIVE: {"end": ContractState.ENDED}, ContractState.ENDED: {}},
                     permissions={"end": "b2b.manage"}, needs_reason={"end"}, labels={"end": "End contract"},
                     initial=ContractState.ACTIVE)


class CreditState(enum.StrEnum):
    PROPOSED = "proposed"
    APPROVED = "approved"  # queued for the next bill as a credit line
    REJECTED = "rejected"


CREDIT = Lifecycle(name="b2b_service_credit", states=CreditState,
                   transitions={CreditState.PROPOSED: {"approve": CreditState.APPROVED, "reject": CreditState.REJECTED},
                                CreditState.APPROVED: {}, CreditState.REJECTED: {}},
                   permissions={"approve": "b2b.approve", "reject": "b2b.approve"}, needs_reason={"reject"},
                   four_eyes={"approve": "proposed_by"},
                   labels={"approve": "Approve and queue for the next bill", "reject": "Reject"}, initial=CreditState.PROPOSED)


class B2BContract(Base):
    """A service contract with a B2B account: term, monthly committed value and the cap on service credits per month."""

    __tablename__ = "b2b_contract"
    id: Mapped[IdPk]
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    reference: Mapped[str] = mapped_column(String(30), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(10), default=ContractState.ACTIVE)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)  # exclusive
    currency: Mapped[str] = mapped_column(String(3))
    monthly_value_minor: Mapped[int] = mapped_column(BigInteger, default=0)  # committed monthly charges
    credit_cap_minor: Mapped[int] = mapped_column(BigInteger)  # service credits per month at most this
    terms: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(120))

    __table_args__ = (CONTRACT.check(), CheckConstraint("credit_cap_minor >= 0", name="credit_cap"),
                      Index("ix_b2b_contract_account", "account_id"))


class B2BSlaRule(Base):
    """One TMF623 rule: `metric` compared with `reference_value` by `operator`, with `tolerance` allowed before it is
    violated; the consequence is a credit as a percent of the monthly value or a fixed amount."""

    __tablename__ = "b2b_sla_rule"
    id: Mapped[IdPk]
    contract_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("b2b_contract.id"), index=True)
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    metric: Mapped[str] = mapped_column(String(40))
    unit: Mapped[str] = mapped_column(String(10))
    reference_value: Mapped[float] = mapped_column(Numeric(12, 4))
    operator: Mapped[str] = mapped_column(String(2))
    tolerance: Mapped[float] = mapped_column(Numeric(12, 4), default=0)
    consequence: Mapped[str] = mapped_column(String(20), default="none")
    credit_percent: Mapped[float | None] = mapped_column(Numeric(6, 2))
    credit_fixed_minor: Mapped[int | None] = mapped_column(BigInteger)
    description: Mapped[str | None] = mapped_column(String(300))

    __table_args__ = (CheckConstraint(sql_in("metric", tuple(METRICS)), name="metric"),
                      CheckConstraint(sql_in("operator", tuple(OPERATORS)), name="operator"),
                      CheckConstraint(sql_in("consequence", CONSEQUENCES), name="consequence"))


class B2BViolation(Base):
    """A rule not met in one month: the measured value beside the reference (one per rule and month)."""

    __tablename__ = "b2b_violation"
    id: Mapped[IdPk]
    rule_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("b2b_sla_rule.id"))
    contract_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("b2b_contract.id"))
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    period: Mapped[date] = mapped_column(Date)  # first day of the month
    metric: Mapped[str] = mapped_column(String(40))
    actual_value: Mapped[float] = mapped_column(Numeric(14, 4))
    reference_value: Mapped[float] = mapped_column(Numeric(12, 4))
    sample_size: Mapped[int] = mapped_column(Integer, default=0)
    cause: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("rule_id", "period", name="uq_b2b_violation_rule_period"),
                      Index("ix_b2b_violation_account_period", "account_id", "period"))


class B2BServiceCredit(Base):
    """A credit a violation proposes; approved by a second person, it is queued as a negative one-off charge for the
    account's next bill (billing's pending_charge with idempotency key `b2b-credit:<id>`)."""

    __tablename__ = "b2b_service_credit"
    id: Mapped[IdPk]
    violation_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("b2b_violation.id"), unique=True)
    contract_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("b2b_contract.id"))
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    period: Mapped[date] = mapped_column(Date)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    state: Mapped[str] = mapped_column(String(10), default=CreditState.PROPOSED)
    proposed_by: Mapped[str] = mapped_column(String(120))
    proposed_at: Mapped[datetime]
    decided_by: Mapped[str | None] = mapped_column(String(120))
    decided_at: Mapped[datetime | None]
    pending_charge_id: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (CREDIT.check(), CheckConstraint("amount_minor > 0", name="amount_positive"),
                      Index("ix_b2b_service_credit_state", "state", "contract_id"))


class B2BSetting(Base):
    """Operator settings of B2B service management (data, editable): which case categories count as outages, the
    first-response target in hours, the tax rate code of service credits."""

    __tablename__ = "b2b_setting"
    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[str] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(String(300))


class ReviewState(enum.StrEnum):
    DRAFT = "draft"  # generated after month close, read live from the month's data
    RELEASED = "released"  # the manager released it: emailed to the customer's contacts


REVIEW = Lifecycle(name="b2b_review", states=ReviewState,
                   transitions={ReviewState.DRAFT: {"release": ReviewState.RELEASED}, ReviewState.RELEASED: {}},
                   permissions={"release": "b2b.approve"}, labels={"release": "Release and email to the customer"},
                   initial=ReviewState.DRAFT)

ACTION_STATUSES = ("open", "in_progress", "done", "cancelled")


class B2BReview(Base):
    """The monthly service review of one B2B customer (one per account and month)."""

    __tablename__ = "b2b_review"
    id: Mapped[IdPk]
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    contract_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("b2b_contract.id"))
    period: Mapped[date] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(10), default=ReviewState.DRAFT)
    generated_at: Mapped[datetime]
    generated_by: Mapped[str] = mapped_column(String(120))
    released_at: Mapped[datetime | None]
    released_by: Mapped[str | None] = mapped_column(String(120))
    messages_sent: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (REVIEW.check(), UniqueConstraint("account_id", "period", name="uq_b2b_review_account_period"),
                      Index("ix_b2b_review_state_period", "state", "period"))


class B2BImprovementAction(Base):
    """An action of a customer's service improvement plan: carried on every review from the month it was opened until
    the month it was done or cancelled."""

    __tablename__ = "b2b_improvement_action"
    id: Mapped[IdPk]
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"), index=True)
    title: Mapped[str] = mapped_column(String(300))
    owner: Mapped[str] = mapped_column(String(120))
    due_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(12), default="open")
    opened_period: Mapped[date] = mapped_column(Date)
    closed_period: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(120))
    updated_at: Mapped[datetime]

    __table_args__ = (CheckConstraint(sql_in("status", ACTION_STATUSES), name="status"),)


class ChangeState(enum.StrEnum):
    SUBMITTED = "submitted"
    APPROVED = "approved"
    QUOTED = "quoted"  # out of scope: a quote prices it for the customer
    IN_DELIVERY = "in_delivery"  # linked to the order that delivers it
    DELIVERED = "delivered"  # that order completed
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


CHANGE = Lifecycle(name="b2b_change_request", states=ChangeState,
                   transitions={ChangeState.SUBMITTED: {"approve": ChangeState.APPROVED, "reject": ChangeState.REJECTED, "withdraw": ChangeState.WITHDRAWN},
                                ChangeState.APPROVED: {"quote": ChangeState.QUOTED, "start_delivery": ChangeState.IN_DELIVERY,
                                                       "withdraw": ChangeState.WITHDRAWN},
                                ChangeState.QUOTED: {"start_delivery": ChangeState.IN_DELIVERY, "withdraw": ChangeState.WITHDRAWN},
                                ChangeState.IN_DELIVERY: {"deliver": ChangeState.DELIVERED},
                                ChangeState.DELIVERED: {}, ChangeState.REJECTED: {}, ChangeState.WITHDRAWN: {}},
                   system_actions={"deliver"},
                   permissions={"approve": "b2b.approve", "reject": "b2b.approve", "withdraw": "b2b.manage", "quote": "b2b.manage",
                                "start_delivery": "b2b.manage"},
                   needs_reason={"reject", "withdraw"}, four_eyes={"approve": "created_by"},
                   labels={"approve": "Approve", "reject": "Reject", "withdraw": "Withdraw", "quote": "Turn into a quote",
                           "start_delivery": "Link the delivering order", "deliver": "Delivered"},
                   initial=ChangeState.SUBMITTED)
SCOPES = ("in_scope", "out_of_scope")


class B2BChangeRequest(Base):
    """A change the customer asks for under a contract: in scope (no charge) or out of scope (priced, quoted), approved
    by a second person, and tracked to the order that delivers it."""

    __tablename__ = "b2b_change_request"
    id: Mapped[IdPk]
    contract_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("b2b_contract.id"), index=True)
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    reference: Mapped[str] = mapped_column(String(20), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(String(12))
    impact: Mapped[str] = mapped_column(Text)
    price_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    state: Mapped[str] = mapped_column(String(12), default=ChangeState.SUBMITTED)
    quote_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("quote.id"))
    order_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("product_order.id"), index=True)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(120))
    decided_by: Mapped[str | None] = mapped_column(String(120))
    delivered_at: Mapped[datetime | None]

    __table_args__ = (CHANGE.check(), CheckConstraint(sql_in("scope", SCOPES), name="scope"),
                      CheckConstraint("price_minor >= 0", name="price_non_negative"),
                      CheckConstraint("scope = 'out_of_scope' OR price_minor = 0", name="in_scope_free"))


CHECK_KINDS = ("vs_contract", "vs_last_month", "credit_missing")


class B2BBillCheck(Base):
    """A difference found by the B2B billing peer review of a bill run: a B2B draft invoice against its contract's
    monthly value, against the customer's last invoice, or an approved service credit missing from it. The run cannot
    be approved while one is open; a reviewer other than the run's starter signs each off with a note."""

    __tablename__ = "b2b_bill_check"
    id: Mapped[IdPk]
    bill_run_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("bill_run.id"))
    invoice_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("invoice.id"))
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.id"))
    contract_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("b2b_contract.id"))
    kind: Mapped[str] = mapped_column(String(20))
    expected_minor: Mapped[int] = mapped_column(BigInteger)
    actual_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    state: Mapped[str] = mapped_column(String(12), default="open")
    signed_by: Mapped[str | None] = mapped_column(String(120))
    signed_at: Mapped[datetime | None]
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]

    __table_args__ = (CheckConstraint(sql_in("kind", CHECK_KINDS), name="kind"), CheckConstraint(sql_in("state", ("open", "signed_off")), name="state"),
                      UniqueConstraint("bill_run_id", "invoice_id", "kind", name="uq_b2b_bill_check_run_invoice_kind"),
                      Index("ix_b2b_bill_check_run_state", "bill_run_id", "state"))
