"""Seeded, realistic demo data for a South African ISP + B2B provider; also the data generator for bench/.

Customers are generated as columns with numpy and loaded with COPY (PostgreSQL) or executemany (SQLite),
so a million accounts load in minutes. Each area adds a step to `demo_steps()` for its own data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Iterator, Protocol

import numpy as np
from sqlalchemy import Engine, select, text

from opsline.core import events
from opsline.core.events import Actor
from opsline.core.ids import account_number
from opsline.customers import search as account_search
from opsline.db import sequences
from opsline.db.bulk import copy_rows, next_id, reset_sequence
from opsline.db.maintenance import schedule_optimize
from opsline.db.session import make_sessionmaker, optimize, vacuum
from opsline.seed import seed_reference
from opsline.users.models import User
from opsline.users.service import create_user

FIRST = ("Thabo Sipho Lerato Nomvula Johan Pieter Ayesha Priya Kagiso Lindiwe Themba Zanele Anele Bongani Naledi Karabo Mpho Tshepo "
         "Refilwe Palesa Sibusiso Nandi Lwazi Busisiwe Hendrik Annelie Marius Elmarie Riaan Charl Fatima Yusuf Zaheer Kavitha Rajesh "
         "Michelle Craig Lauren Ryan Jessica Kyle Megan Dylan Chloe Ntombi Andile Precious Blessing Lungile Sizwe Mandla Vusi Zodwa").split()
LAST = ("Nkosi Dlamini Botha van der Merwe Naidoo Pillay Mokoena Khumalo Ndlovu Smith Jacobs Williams Mahlangu Molefe Zulu Mthembu "
        "Sithole Pretorius Venter Nel du Plessis Coetzee Govender Reddy Moodley Petersen Adams Hendricks Maseko Mabaso Shabalala Radebe "
        "Steyn Kruger Fourie Engelbrecht Naicker Chetty Maharaj Baloyi Mathebula Nxumalo Cele Ngcobo Mkhize Hadebe Tshabalala Modise").split()
LAST = [n.replace("van der", "van der ").replace("  ", " ") for n in LAST]
BUSINESS_SUFFIX = ["Logistics (Pty) Ltd", "Attorneys Inc", "Engineering CC", "Holdings (Pty) Ltd", "Medical Practice", "Accountants",
                   "Property Group", "Motors", "Trading", "Construction (Pty) Ltd", "Pharmacy", "Consulting", "Foods (Pty) Ltd", "Architects"]
STREETS = ["Main", "Church", "Jan Smuts", "Rivonia", "Oxford", "Voortrekker", "Beyers Naudé", "Nelson Mandela", "Long", "Bree", "Loop",
           "Florida", "Kloof", "Musgrave", "Marine", "Victoria", "Protea", "Jacaranda", "Acacia", "Sunset", "Hill", "Park", "Station", "Buitengracht",
           "Louis Botha", "William Nicol", "Republic", "Malibongwe", "Umhlanga Rocks", "Ridge", "Kingsway", "Durban", "Queen", "King"]
STREET_TYPES = ["Street", "Road", "Avenue", "Drive", "Crescent", "Lane", "Close"]
# city, province, postal prefix, latitude, longitude, suburbs, FNOs that cover it
CITIES = [
    ("Johannesburg", "Gauteng", "2", -26.2041, 28.0473, ["Sandton", "Randburg", "Rosebank", "Melville", "Fourways", "Bryanston", "Soweto", "Parktown"], ["openserve", "vumatel", "frogfoot", "metrofibre"]),
    ("Pretoria", "Gauteng", "0", -25.7479, 28.2293, ["Hatfield", "Menlo Park", "Centurion", "Lynnwood", "Waterkloof", "Montana"], ["openserve", "vumatel", "metrofibre", "frogfoot"]),
    ("Cape Town", "Western Cape", "8", -33.9249, 18.4241, ["Sea Point", "Claremont", "Observatory", "Bellville", "Durbanville", "Green Point", "Rondebosch"], ["openserve", "vumatel", "octotel", "frogfoot"]),
    ("Durban", "KwaZulu-Natal", "4", -29.8587, 31.0218, ["Umhlanga", "Morningside", "Berea", "Westville", "Glenwood", "Ballito"], ["openserve", "vumatel", "metrofibre"]),
    ("Gqeberha", "Eastern Cape", "6", -33.9608, 25.6022, ["Summerstrand", "Walmer", "Newton Park", "Lorraine"], ["openserve", "frogfoot"]),
    ("Bloemfontein", "Free State", "9", -29.0852, 26.1596, ["Westdene", "Brandwag", "Universitas", "Langenhovenpark"], ["openserve", "frogfoot"]),
    ("Stellenbosch", "Western Cape", "7", -33.9321, 18.8602, ["Die Boord", "Paradyskloof", "Uniepark"], ["openserve", "octotel", "frogfoot"]),
    ("Polokwane", "Limpopo", "0", -23.9045, 29.4689, ["Bendor", "Fauna Park", "Westenburg"], ["openserve"]),
    ("Mbombela", "Mpumalanga", "1", -25.4753, 30.9694, ["Sonheuwel", "West Acres", "Riverside Park"], ["openserve", "frogfoot"]),
    ("East London", "Eastern Cape", "5", -33.0292, 27.8546, ["Vincent", "Nahoon", "Beacon Bay"], ["openserve"]),
]
EMAIL_DOMAINS = ["gmail.com", "outlook.com", "yahoo.co.za", "webmail.co.za", "icloud.com", "mweb.co.za"]
MOBILE_PREFIXES = ["82", "83", "84", "72", "73", "74", "76", "79", "60", "61", "71", "81"]

DEMO_PASSWORD = "opsline-demo"
DEMO_USERS = [
    ("admin", "Ada Admin", ["admin"]),
    ("cancel", "Cebo Cancellations", ["cancellations_coordinator"]),
    ("support", "Sam Second-Line", ["second_line_agent"]),
    ("support2", "Sindi Second-Line", ["second_line_agent"]),
    ("debtors", "Dawie Debtors", ["debtors_clerk"]),
    ("debtorsmgr", "Dineo Debtors-Manager", ["debtors_manager"]),
    ("billing", "Bilal Billing", ["billing_analyst"]),
    ("service", "Sarah Service-Manager", ["service_manager"]),
]


class ProgressLike(Protocol):
    def add_task(self, description: str, total: float | None = ...) -> Any: ...
    def advance(self, task_id: Any, advance: float = ...) -> None: ...


class _NoProgress:
    def add_task(self, description: str, total: float | None = None) -> int:
        return 0

    def advance(self, task_id: Any, advance: float = 1) -> None:
        pass


@dataclass
class DemoContext:
    engine: Engine
    now: datetime
    rng: np.random.Generator
    accounts: int
    progress: ProgressLike
    first_account_id: int = 0
    account_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class CustomerColumns:
    """The generated customer rows, column-wise, for one chunk."""

    rows_party: list[tuple[Any, ...]]
    rows_account: list[tuple[Any, ...]]
    rows_site: list[tuple[Any, ...]]
    rows_contact: list[tuple[Any, ...]]


PARTY_COLS = ("id", "kind", "name", "given_name", "family_name", "registration_number", "id_number", "created_at")
ACCOUNT_COLS = ("id", "account_number", "party_id", "name", "kind", "status", "segment_code", "value_tier_code", "currency", "email", "phone",
                "billing_line1", "billing_line2", "billing_suburb", "billing_city", "billing_province", "billing_postal_code", "billing_country",
                "payment_terms_days", "bill_cycle_day", "vat_registered", "vat_number", "created_at", "updated_at", "version")
SITE_COLS = ("id", "account_id", "label", "line1", "line2", "suburb", "city", "province", "postal_code", "country", "latitude", "longitude", "fno_coverage", "timezone", "created_at")
CONTACT_COLS = ("id", "account_id", "name", "role", "email", "phone", "is_primary")


def generate_customers(rng: np.random.Generator, *, start_id: int, n: int, now: datetime, currency: str = "ZAR") -> CustomerColumns:
    """Generate n parties/accounts/sites/contacts with ids start_id .. start_id+n-1 (vectorised draws)."""
    ids = np.arange(start_id, start_id + n, dtype=np.int64)
    fi = rng.integers(0, len(FIRST), n)
    li = rng.integers(0, len(LAST), n)
    kind_draw = rng.random(n)
    kinds = np.where(kind_draw < 0.90, "retail", np.where(kind_draw < 0.99, "b2b", "wholesale"))
    tier_draw = rng.random(n)
    tiers = np.where(tier_draw < 0.01, "vip", np.where(tier_draw < 0.015, "influencer", np.where(tier_draw < 0.065, "high_value", "standard")))
    st_draw = rng.random(n)
    statuses = np.where(st_draw < 0.93, "active", np.where(st_draw < 0.97, "suspended", "closed"))
    ci = rng.integers(0, len(CITIES), n)
    house = rng.integers(1, 400, n)
    street = rng.integers(0, len(STREETS), n)
    stype = rng.integers(0, len(STREET_TYPES), n)
    sub = rng.integers(0, 8, n)
    suffix = rng.integers(0, len(BUSINESS_SUFFIX), n)
    mob = rng.integers(0, len(MOBILE_PREFIXES), n)
    mobnum = rng.integers(1_000_000, 9_999_999, n)
    dom = rng.integers(0, len(EMAIL_DOMAINS), n)
    cycle = rng.choice(np.array([1, 1, 1, 15, 25]), n)
    days_ago = rng.integers(30, 3650, n)
    jitter_lat = rng.normal(0, 0.05, n)
    jitter_lon = rng.normal(0, 0.05, n)
    parties, accounts, sites, contacts = [], [], [], []
    for k in range(n):
        i = int(ids[k])
        first, last = FIRST[fi[k]], LAST[li[k]]
        kind = str(kinds[k])
        city, province, pc, lat, lon, suburbs, fnos = CITIES[ci[k]]
        suburb = suburbs[sub[k] % len(suburbs)]
        line1 = f"{house[k]} {STREETS[street[k]]} {STREET_TYPES[stype[k]]}"
        postal = f"{pc}{(i * 37) % 1000:03d}"
        created = now - timedelta(days=int(days_ago[k]))
        phone = f"+27{MOBILE_PREFIXES[mob[k]]}{mobnum[k]}"
        if kind == "retail":
            name = f"{first} {last}"
            email = f"{first.lower()}.{last.lower().replace(' ', '')}{i % 997}@{EMAIL_DOMAINS[dom[k]]}"
            party = (i, "person", name, first, last, None, None, created)
            segment = "consumer"
            terms = 30
        else:
            name = f"{last} {BUSINESS_SUFFIX[suffix[k]]}"
            email = f"accounts@{last.lower().replace(' ', '')}{i % 997}.co.za"
            party = (i, "organisation", name, None, None, f"20{i % 24:02d}/{i % 999999:06d}/07", None, created)
            segment = "wholesale" if kind == "wholesale" else ("enterprise" if i % 5 == 0 else "sme")
            terms = 30 if kind == "b2b" else 45
        parties.append(party)
        accounts.append((i, account_number(i), i, name, kind, str(statuses[k]), segment, str(tiers[k]), currency, email, phone,
                         line1, None, suburb, city, province, postal, "ZA", terms, int(cycle[k]), kind != "retail",
                         f"4{i % 1_000_000_000:09d}" if kind != "retail" else None, created, created, 1))
        sites.append((i, i, "Home" if kind == "retail" else "Head office", line1, None, suburb, city, province, postal, "ZA",
                      round(lat + float(jitter_lat[k]), 6), round(lon + float(jitter_lon[k]), 6), list(fnos), None, created))
        contacts.append((i, i, name if kind == "retail" else f"{first} {last}", "primary" if kind == "retail" else "accounts", email, phone, True))
    return CustomerColumns(parties, accounts, sites, contacts)


def _chunks(total: int, size: int) -> Iterator[tuple[int, int]]:
    done = 0
    while done < total:
        n = min(size, total - done)
        yield done, n
        done += n


def load_customers(ctx: DemoContext, *, chunk: int = 50_000) -> None:
    """Bulk-load ctx.accounts customers; ids continue after any existing ones."""
    with ctx.engine.begin() as conn:
        start = max(next_id(conn, t) for t in ("party", "account", "site", "contact"))
    ctx.first_account_id = start
    task = ctx.progress.add_task("customers", total=ctx.accounts)
    for offset, n in _chunks(ctx.accounts, chunk):
        cols = generate_customers(ctx.rng, start_id=start + offset, n=n, now=ctx.now)
        with ctx.engine.begin() as conn, account_search.bulk_insert(conn, first_id=start + offset, last_id=start + offset + n - 1):
            copy_rows(conn, "party", PARTY_COLS, cols.rows_party)
            copy_rows(conn, "account", ACCOUNT_COLS, cols.rows_account)
            copy_rows(conn, "site", SITE_COLS, cols.rows_site)
            copy_rows(conn, "contact", CONTACT_COLS, cols.rows_contact)
        ctx.progress.advance(task, n)
    with ctx.engine.begin() as conn:
        for t in ("party", "account", "site", "contact"):
            reset_sequence(conn, t)
        # account numbers were derived from ids; new accounts continue after them
        sequences.advance_to(conn, sequences.ACCOUNT_NUMBER, start + ctx.accounts - 1)
    ctx.account_ids = np.arange(start, start + ctx.accounts, dtype=np.int64)
    ctx.counts["accounts"] = ctx.accounts


def add_users(ctx: DemoContext) -> None:
    factory = make_sessionmaker(ctx.engine)
    with factory.begin() as s:
        existing = set(s.execute(select(User.username)).scalars())
        for username, full_name, roles in DEMO_USERS:
            if username not in existing:
                create_user(s, username=username, full_name=full_name, email=f"{username}@opsline.example", password=DEMO_PASSWORD, roles=roles, now=ctx.now, actor=Actor.system("demo"), skills=[])


def add_memos_and_duplicates(ctx: DemoContext) -> None:
    """A few memos on early accounts and some near-duplicate accounts for the clean-up page."""
    if ctx.accounts == 0:
        return
    memo_texts = [
        "Customer called about slow speeds in the evening; advised router restart and logged with FNO.",
        "Promise to pay by the 25th; salary date moved. Do not suspend before then.",
        "Asked about upgrading to 200/200 Mbps; sent quote by email.",
        "Complained about double debit order in October; refund approved by billing.",
        "Prefers contact by WhatsApp after 17:00.",
    ]
    sample = ctx.account_ids[: min(len(ctx.account_ids), 2000)]
    rows = []
    mid = 0
    with ctx.engine.begin() as conn:
        mid = next_id(conn, "memo")
        for j, acc in enumerate(sample[:: max(1, len(sample) // 400)]):
            for m in range(1 + j % 3):
                rows.append((mid, int(acc), ctx.now - timedelta(days=40 - 10 * m, hours=j % 9), DEMO_USERS[1 + (j + m) % 6][0], ["support", "debtors", "sales", "billing", "general"][(j + m) % 5], memo_texts[(j + m) % len(memo_texts)]))
                mid += 1
        copy_rows(conn, "memo", ("id", "account_id", "created_at", "author", "category", "body"), rows)
        reset_sequence(conn, "memo")
        # near-duplicates: same phone and address, slightly different name spelling
        dup_n = max(2, min(200, ctx.accounts // 500))
        src = conn.execute(text("SELECT id, party_id, name, email, phone, billing_line1, billing_suburb, billing_city, billing_province, billing_postal_code FROM account WHERE kind = 'retail' ORDER BY id LIMIT :n"), {"n": dup_n}).all()
        start = max(next_id(conn, "party"), next_id(conn, "account"))
        parties, accounts = [], []
        for k, r in enumerate(src):
            i = start + k
            name = r.name.replace("e", "é", 1) if k % 2 else r.name.upper() if k % 3 == 0 else r.name + " "
            name = name.strip()
            created = ctx.now - timedelta(days=10)
            parties.append((i, "person", name, None, None, None, None, created))
            accounts.append((i, account_number(i), i, name, "retail", "active", "consumer", "standard", "ZAR", None, r.phone, r.billing_line1, None,
                             r.billing_suburb, r.billing_city, r.billing_province, r.billing_postal_code, "ZA", 30, 1, False, None, created, created, 1))
        copy_rows(conn, "party", PARTY_COLS, parties)
        copy_rows(conn, "account", ACCOUNT_COLS, accounts)
        reset_sequence(conn, "party")
        reset_sequence(conn, "account")
        sequences.advance_to(conn, sequences.ACCOUNT_NUMBER, start + len(accounts) - 1)
    ctx.counts["memos"] = len(rows)
    ctx.counts["duplicate_accounts"] = len(src)


def demo_steps() -> list[tuple[str, Callable[[DemoContext], None]]]:
    """Every area's demo steps, in area order (customers before catalog before orders ...)."""
    from opsline.areas import load_areas

    return [step for area in load_areas() for step in area.demo_steps]


def run_demo(engine: Engine, *, accounts: int, now: datetime, seed: int = 20261123, progress: ProgressLike | None = None, steps: list[str] | None = None) -> dict[str, int]:
    """Seed reference data and generate demo data. Returns counts per kind of row."""
    factory = make_sessionmaker(engine)
    with factory.begin() as s:
        seed_reference(s, now=now)
    ctx = DemoContext(engine=engine, now=now, rng=np.random.default_rng(seed), accounts=accounts, progress=progress or _NoProgress())
    for name, step in demo_steps():
        if steps is None or name in steps:
            step(ctx)
            # Fresh statistics before the next step queries what this one loaded (without them PostgreSQL plans
            # the bill run over 100,000 accounts as if the tables were empty, and stalls).
            optimize(engine, analyze=True)
    vacuum(engine)
    with factory.begin() as s:
        events.record(s, now=now, actor=Actor.system("demo"), entity_type="demo", entity_id="load", action="loaded", after=dict(ctx.counts))
        schedule_optimize(s, now=now)
    return ctx.counts
