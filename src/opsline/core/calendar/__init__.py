"""Business calendars (shifts, public holidays, closures) and SLA clock maths, scalar and vectorised; business-day
arithmetic on dates. Rooms: base (shifts, errors), business (BusinessCalendar), index (CalendarIndex), days
(add_business_days), memo (calendars and indexes built once per stored definition)."""

from opsline.core.calendar.base import InvalidCalendar, OutsideCalendarRange, Shift, standard_week
from opsline.core.calendar.business import BusinessCalendar
from opsline.core.calendar.days import add_business_days, is_business_day
from opsline.core.calendar.index import CalendarIndex
from opsline.core.calendar.memo import calendar_from_data, index_around

__all__ = [
    "BusinessCalendar",
    "CalendarIndex",
    "InvalidCalendar",
    "OutsideCalendarRange",
    "Shift",
    "add_business_days",
    "calendar_from_data",
    "index_around",
    "is_business_day",
    "standard_week",
]
