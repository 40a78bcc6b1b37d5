"""Reference data logistics starts with (inserted once; operators edit it in /admin): courier slots, unreturned-
equipment fee rules per model (from the catalogue's 'unreturned_equipment' price), which FNOs want their ONTs back,
and the customer messages (collection booked, unreturned-equipment warning)."""

from __future__ import annotations

from datetime import datetime, time

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsline.catalog.models import Price, ProductOffering
from opsline.logistics.models import CourierSlot, EquipmentFeeRule, OntReturnRule
from opsline.notifications import service as notifications
from opsline.partners.models import Partner

# (courier, weekdays, windows (start, end), capacity per window)
SLOTS = [
    ("courierguy", (0, 1, 2, 3, 4), ((time(8), time(12)), (time(12), time(17))), 40),
    ("courierguy", (5,), ((time(8), time(12)),), 15),
    ("dsv", (0, 2, 4), ((time(9), time(13)), (time(13), time(17))), 25),
]
GRACE_DAYS, WARNING_DAYS = 20, 5
ONT_RULES = [("vumatel", True, "Vumatel collects its ONTs through the ISP when a line is cancelled"),
             ("openserve", False, "Openserve leaves the ONT on the wall"),
             ("frogfoot", False, "Frogfoot leaves the ONT on the wall"),
             ("metrofibre", False, "MetroFibre leaves the ONT on the wall"),
             ("octotel", False, "Octotel leaves the ONT on the wall")]

TEMPLATES = [
    ("collection.booked", "email", "Your equipment collection {{ collection.number }} is booked",
     "Dear {{ account.name }},\n\nOur courier will collect {{ collection.devices }} on {{ collection.date }} between {{ collection.window }} at "
     "{{ collection.address }}. Please have the device(s) ready with the power supply; {{ collection.contact_name }} or someone else "
     "at the address can hand them over.\n\nReference: {{ collection.number }}\n", "Courier collection booked"),
    ("collection.booked", "sms", "",
     "Courier collection {{ collection.number }}: {{ collection.date }} {{ collection.window }} at {{ collection.address }}. Please have {{ collection.devices }} ready.",
     "Courier collection booked (SMS)"),
    ("equipment.unreturned_warning", "email", "Please return your equipment to avoid a charge of {{ fee.amount }}",
     "Dear {{ account.name }},\n\nWe have not yet received {{ fee.devices }}. If it has not reached us by {{ fee.due_date }}, "
     "{{ fee.amount }} will be charged on your next bill. If it arrives later, the charge is credited back.\n", "Unreturned equipment warning"),
    ("equipment.unreturned_warning", "sms", "",
     "Reminder: please return {{ fee.devices }} by {{ fee.due_date }} or {{ fee.amount }} will be charged (credited back if it arrives later).",
     "Unreturned equipment warning (SMS)"),
]


def seed(session: Session, *, now: datetime) -> None:
    for event, channel, subject, body, desc in TEMPLATES:
        notifications.ensure_template(session, event=event, channel=channel, language="en", subject=subject, body=body, now=now, description=desc)
    partners = set(session.execute(select(Partner.code)).scalars())
    have = {(c, w, s) for c, w, s in session.execute(select(CourierSlot.courier_code, CourierSlot.weekday, CourierSlot.start_time)).all()}
    for courier, days, windows, cap in SLOTS:
        if courier not in partners:
            continue
        for d in days:
            for start, end in windows:
                if (courier, d, start) not in have:
                    session.add(CourierSlot(courier_code=courier, weekday=d, start_time=start, end_time=end, capacity=cap, active=True))
    rules = set(session.execute(select(EquipmentFeeRule.model)).scalars())
    for name, amount, currency, tax in session.execute(select(ProductOffering.name, Price.amount_minor, Price.currency, Price.tax_rate_code)
                                                       .join(Price, Price.offering_id == ProductOffering.id)
                                                       .where(Price.charge_event == "unreturned_equipment").order_by(Price.id)).all():
        if name not in rules:
            session.add(EquipmentFeeRule(model=name, fee_minor=amount, currency=currency, tax_rate_code=tax, grace_days=GRACE_DAYS,
                                         warning_days=WARNING_DAYS, active=True))
            rules.add(name)
    onts = set(session.execute(select(OntReturnRule.partner_code)).scalars())
    for code, collect, note in ONT_RULES:
        if code in partners and code not in onts:
            session.add(OntReturnRule(partner_code=code, collect_ont=collect, note=note))
    session.flush()
