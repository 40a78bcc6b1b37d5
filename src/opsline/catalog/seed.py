"""The catalog every installation starts with: fibre via five FNOs, mobile bundles, B2B links, equipment,
services, contract terms. Idempotent by offering code; operators edit prices afterwards in /admin."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsline.catalog.models import ContractTerm, OfferingEquipment, Price, ProductOffering

CATALOG_START = date(2023, 1, 1)
PRICE_INCREASE = date(2026, 3, 1)  # annual increase: older recurring prices end here

FNOS = {  # code: (short, display name, retail surcharge in rand, wholesale share of retail)
    "openserve": ("OS", "Openserve", 0, Decimal("0.60")),
    "vumatel": ("VU", "Vumatel", 20, Decimal("0.62")),
    "frogfoot": ("FF", "Frogfoot", 0, Decimal("0.58")),
    "metrofibre": ("MF", "MetroFibre", 10, Decimal("0.55")),
    "octotel": ("OC", "Octotel", 30, Decimal("0.65")),
}
FIBRE_SPEEDS = [(25, 25, 399), (50, 25, 599), (100, 100, 899), (200, 200, 1099), (500, 250, 1299), (1000, 500, 1399)]
# FNOs that charge an installation fee on month-to-month; the others charge activation
INSTALL_FEE_FNOS = {"openserve", "metrofibre"}

MOBILE = [  # code, name, recurring R, data MB, voice sec, sms, months
    ("MOB-DATA-10GB", "Mobile data 10 GB", 199, 10_240, 0, 0, 0),
    ("MOB-DATA-50GB", "Mobile data 50 GB", 499, 51_200, 0, 0, 0),
    ("MOB-SMART-S-24", "Smart S 24-month (2 GB + 100 min + 100 SMS)", 249, 2_048, 6_000, 100, 24),
    ("MOB-SMART-L-24", "Smart L 24-month (20 GB + 500 min + 500 SMS)", 599, 20_480, 30_000, 500, 24),
    ("MOB-PAYG", "Mobile pay-as-you-go", 0, 0, 0, 0, 0),
]
B2B = [  # code, name, partner, down, up, recurring R, install R
    ("B2B-MPLS-10", "MPLS link 10/10 Mbps", "frogfoot", 10, 10, 4_500, 4_999),
    ("B2B-MPLS-50", "MPLS link 50/50 Mbps", "metrofibre", 50, 50, 8_500, 4_999),
    ("B2B-MPLS-100", "MPLS link 100/100 Mbps", "openserve", 100, 100, 12_500, 4_999),
    ("B2B-SDWAN-200", "SD-WAN 200/200 Mbps managed", "vumatel", 200, 200, 18_000, 7_500),
    ("B2B-DIA-1000", "Dedicated internet access 1 Gbps", "metrofibre", 1000, 1000, 25_000, 9_999),
]
CONTRACT_TERMS = [
    ("CONSUMER-M2M", "Consumer month-to-month", 0, "consumer", 20, True, "CPA s14: 20 business days' notice; no penalty."),
    ("CONSUMER-12", "Consumer 12-month", 12, "consumer", 20, True, "CPA s14: may cancel on 20 business days' notice with a reasonable penalty."),
    ("CONSUMER-24", "Consumer 24-month", 24, "consumer", 20, True, "CPA s14: may cancel on 20 business days' notice with a reasonable penalty."),
    ("JURISTIC-M2M", "Business month-to-month", 0, "juristic", 20, True, "Calendar-month notice per contract."),
    ("JURISTIC-12", "Business 12-month", 12, "juristic", 20, True, "Not covered by CPA s14: remaining months are payable."),
    ("JURISTIC-24", "Business 24-month", 24, "juristic", 20, True, "Not covered by CPA s14: remaining months are payable."),
]


# The seeded "reasonable penalty" cap for consumers: at most a fifth of the recurring charges still due (data; edit in /admin).
CONSUMER_PENALTY_CAP = Decimal("0.20")


def _r(rand: int | Decimal) -> int:
    return int(Decimal(rand) * 100)


def seed_catalog(session: Session, *, now: datetime, currency: str = "ZAR") -> None:
    """Insert the standard catalog; offerings whose code already exists are left as the operator edited them."""
    existing = set(session.execute(select(ProductOffering.code)).scalars())
    for code, name, months, kind, notice, early, desc in CONTRACT_TERMS:
        if session.execute(select(ContractTerm.id).where(ContractTerm.code == code)).first() is None:
            session.add(ContractTerm(code=code, name=name, months=months, customer_kind=kind, notice_business_days=notice, may_cancel_early=early, description=desc,
                                     penalty_cap_fraction=CONSUMER_PENALTY_CAP if kind == "consumer" and months else None))

    def offering(code: str, prices: list[dict], **kw: object) -> ProductOffering | None:
        if code in existing:
            return None
        o = ProductOffering(code=code, created_at=now, active=True, **kw)
        session.add(o)
        session.flush()
        for p in prices:
            session.add(Price(offering_id=o.id, currency=currency, tax_rate_code="VAT15", valid_from=p.pop("valid_from", CATALOG_START), **p))
        existing.add(code)
        return o

    def by_code(code: str) -> ProductOffering:
        return session.execute(select(ProductOffering).where(ProductOffering.code == code)).scalar_one()

    # equipment
    offering("EQ-ROUTER-AX1800", [
        {"kind": "one_off", "name": "Wi-Fi 6 router (purchase)", "amount_minor": _r(1499), "charge_event": "router"},
        {"kind": "one_off", "name": "Unreturned router", "amount_minor": _r(1499), "charge_event": "unreturned_equipment"},
        {"kind": "wholesale_cost", "name": "Router unit cost", "amount_minor": _r(890)},
    ], name="Wi-Fi 6 router AX1800", kind="equipment", equipment_kind="router", description="Dual-band Wi-Fi 6 router, TR-069 managed.")
    offering("EQ-ONT-FNO", [], name="FNO optical network terminal", kind="equipment", equipment_kind="ont", description="Installed and owned by the FNO.")
    offering("EQ-SIM", [{"kind": "one_off", "name": "SIM card", "amount_minor": _r(1), "charge_event": "activation"}], name="SIM card (nano/micro/standard)", kind="equipment", equipment_kind="sim")
    router, ont, sim = by_code("EQ-ROUTER-AX1800"), by_code("EQ-ONT-FNO"), by_code("EQ-SIM")

    for partner, (short, pname, surcharge, share) in FNOS.items():
        for down, up, rand in FIBRE_SPEEDS:
            retail = rand + surcharge
            for months in (0, 24):
                code = f"FIB-{short}-{down}-{up}" + ("-24M" if months else "")
                prices: list[dict] = [
                    {"kind": "recurring", "name": "Monthly fibre access", "amount_minor": _r(retail - 50), "charge_event": "monthly", "valid_from": CATALOG_START, "valid_to": PRICE_INCREASE},
                    {"kind": "recurring", "name": "Monthly fibre access", "amount_minor": _r(retail), "charge_event": "monthly", "valid_from": PRICE_INCREASE},
                    {"kind": "wholesale_cost", "name": f"{pname} line cost", "amount_minor": int(_r(retail) * share) // 100 * 100, "charge_event": "monthly"},
                    {"kind": "one_off", "name": "Reconnection fee", "amount_minor": _r(250), "charge_event": "reconnection"},
                    {"kind": "one_off", "name": "Cancellation fee", "amount_minor": 0, "charge_event": "cancellation"},
                ]
                if months == 0:
                    if partner in INSTALL_FEE_FNOS:
                        prices.append({"kind": "one_off", "name": "Installation", "amount_minor": _r(1999), "charge_event": "installation"})
                    prices.append({"kind": "one_off", "name": "Activation", "amount_minor": _r(999 if partner not in INSTALL_FEE_FNOS else 0), "charge_event": "activation"})
                    prices.append({"kind": "one_off", "name": "Wi-Fi 6 router (purchase)", "amount_minor": _r(1499), "charge_event": "router"})
                else:
                    prices.append({"kind": "one_off", "name": "Activation", "amount_minor": 0, "charge_event": "activation"})
                    prices.append({"kind": "early_termination", "name": "Consumer early cancellation (CPA s14)", "amount_minor": 0, "etc_fraction": Decimal("0.25"), "etc_cap_months": 6, "applies_to": "consumer", "charge_event": "cancellation"})
                    prices.append({"kind": "early_termination", "name": "Business early cancellation", "amount_minor": 0, "etc_fraction": Decimal("1"), "applies_to": "juristic", "charge_event": "cancellation"})
                o = offering(code, prices, name=f"{pname} Fibre {down}/{up} Mbps" + (" (24 months)" if months else " (month-to-month)"), kind="fibre", partner_code=partner,
                             download_mbps=down, upload_mbps=up, contract_months=months, customer_kind="any",
                             description=f"Uncapped fibre on the {pname} network; " + ("loaned router, free installation." if months else "router purchased or own router."))
                if o is not None:
                    session.add(OfferingEquipment(offering_id=o.id, equipment_offering_id=router.id, owner="isp_loaned" if months else "customer_owned"))
                    session.add(OfferingEquipment(offering_id=o.id, equipment_offering_id=ont.id, owner="fno"))

    for code, name, rand, mb, sec, sms, months in MOBILE:
        prices = [
            {"kind": "recurring", "name": "Monthly bundle", "amount_minor": _r(rand), "charge_event": "monthly"},
            {"kind": "usage", "name": "Data", "amount_minor": 29, "usage_type": "data_mb", "unit": "MB", "included_quantity": Decimal(mb)},
            {"kind": "usage", "name": "Voice", "amount_minor": 1, "usage_type": "voice_sec", "unit": "second", "included_quantity": Decimal(sec)},
            {"kind": "usage", "name": "SMS", "amount_minor": 50, "usage_type": "sms", "unit": "message", "included_quantity": Decimal(sms)},
            {"kind": "wholesale_cost", "name": "Network cost", "amount_minor": int(_r(rand) * Decimal("0.45")) // 100 * 100, "charge_event": "monthly"},
        ]
        if months:
            prices.append({"kind": "early_termination", "name": "Consumer early cancellation (CPA s14)", "amount_minor": 0, "etc_fraction": Decimal("0.25"), "etc_cap_months": 6, "applies_to": "consumer", "charge_event": "cancellation"})
            prices.append({"kind": "early_termination", "name": "Business early cancellation", "amount_minor": 0, "etc_fraction": Decimal("1"), "applies_to": "juristic", "charge_event": "cancellation"})
        o = offering(code, prices, name=name, kind="mobile", contract_months=months, customer_kind="any", description="Out-of-bundle: R0.29/MB, R0.60/min billed per second, R0.50/SMS.")
        if o is not None:
            session.add(OfferingEquipment(offering_id=o.id, equipment_offering_id=sim.id, owner="customer_owned"))

    for code, name, partner, down, up, rand, install in B2B:
        prices = [
            {"kind": "recurring", "name": "Monthly link", "amount_minor": _r(rand), "charge_event": "monthly"},
            {"kind": "one_off", "name": "Installation", "amount_minor": _r(install), "charge_event": "installation"},
            {"kind": "wholesale_cost", "name": "Last-mile cost", "amount_minor": int(_r(rand) * Decimal("0.6")) // 100 * 100, "charge_event": "monthly"},
            {"kind": "early_termination", "name": "Business early cancellation", "amount_minor": 0, "etc_fraction": Decimal("1"), "applies_to": "juristic", "charge_event": "cancellation"},
        ]
        o = offering(code, prices, name=name, kind="b2b_link", partner_code=partner, download_mbps=down, upload_mbps=up, contract_months=24, customer_kind="business",
                     sla_template_code="B2B-GOLD" if rand >= 12_000 else "B2B-SILVER", description=f"Symmetric business link, 24-month term, delivered over {FNOS[partner][1]}.")
        if o is not None:
            session.add(OfferingEquipment(offering_id=o.id, equipment_offering_id=router.id, owner="isp_loaned"))
            session.add(OfferingEquipment(offering_id=o.id, equipment_offering_id=ont.id, owner="fno"))

    offering("SVC-MANAGED-ROUTER", [
        {"kind": "recurring", "name": "Managed router service", "amount_minor": _r(350), "charge_event": "monthly"},
        {"kind": "one_off", "name": "Configuration", "amount_minor": _r(500), "charge_event": "activation"},
    ], name="Managed router service", kind="service", contract_months=12, customer_kind="business", description="Monitoring, firmware and configuration of the customer's router.")
    offering("SVC-STATIC-IP", [{"kind": "recurring", "name": "Static IPv4 address", "amount_minor": _r(99), "charge_event": "monthly"}],
             name="Static IP address", kind="service", customer_kind="any", description="One public IPv4 address on a fibre or B2B link.")
    session.flush()
