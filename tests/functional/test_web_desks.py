"""Desk home pages: each role lands on its own desk with the cards every area declares for it (counts that link to
the list behind them, hints, tones, charts); one failing area never takes the page down."""

import logging
import re

import pytest
from sqlalchemy import func, select, text

from opsline.areas import Area, HomeCard, load_areas
from opsline.customers.models import Account
from opsline.users.roles import ROLE_LABELS, Role
from opsline.web import desk
from conftest import post_login


def _cards(session, *, now, actor, tz):  # type: ignore[no-untyped-def]
    accounts = session.execute(select(func.count()).select_from(Account)).scalar_one()
    return [
        HomeCard(desks=("debtors_clerk", "debtors_manager"), title="Accounts in arrears", count=1234, href="/accounts?status=active",
                 permission="customers.view", hint="oldest 3 d 4 h", tone="danger", order=10),
        HomeCard(desks=("debtors_clerk",), title="Accounts on file", count=accounts, href="/accounts", permission="customers.view", order=20),
        HomeCard(desks=("debtors_clerk",), title="Bill runs to approve", count=2, href="/billing/runs", permission="billing.run", order=5),
        HomeCard(desks=("second_line_agent",), title="Cases breaching soon", count=7, href="/cases?tab=breaching", permission="cases.view",
                 tone="warn", hint="3 at risk",
                 chart={"type": "bar", "data": {"labels": ["P1", "P2"], "datasets": [{"label": "open", "data": [3, 4]}]}}),
        HomeCard(desks=("billing_analyst",), title="Card with an unsafe link", count="n/a", href="javascript:alert(1)", permission="billing.view"),
    ]


def _broken(session, *, now, actor, tz):  # type: ignore[no-untyped-def]
    session.execute(text("SELECT * FROM no_such_table_for_desk_test"))  # a database error inside the transaction
    return []


TEST_AREA = Area(name="desk_test", order=1, home=_cards)
BROKEN_AREA = Area(name="broken_area", order=0, home=_broken)


@pytest.fixture
def areas(monkeypatch):  # type: ignore[no-untyped-def]
    """Replace the discovered areas' home functions with test-only ones (a broken area runs first)."""

    def use(*extra: Area) -> None:
        monkeypatch.setattr(desk, "load_areas", lambda: tuple(extra))

    return use


def test_each_role_lands_on_its_own_desk_page(client_as, areas):
    areas(TEST_AREA)
    for role in Role:
        c = client_as(role.value)
        r = c.get("/", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == f"/desk/{role.value}"
        page = c.get(r.headers["location"])
        assert page.status_code == 200 and f"{ROLE_LABELS[role]} desk" in page.text


def test_a_desk_shows_its_own_cards_with_counts_linking_to_the_list_behind_them(client_as, areas):
    areas(TEST_AREA)
    page = client_as("debtors_clerk").get("/desk/debtors_clerk").text
    assert re.search(r'<a class="count" href="/accounts\?status=active"[^>]*>1,234</a>', page)
    assert "oldest 3 d 4 h" in page and "tone-danger" in page
    assert re.search(r'href="/accounts"[^>]*>0</a>', page)  # a real query's count
    assert "Cases breaching soon" not in page  # another desk's card
    assert page.index("Accounts in arrears") < page.index("Accounts on file")  # ordered by the card's order


def test_cards_are_shown_only_to_users_who_may_open_the_list(client_as, areas):
    areas(TEST_AREA)
    assert "Bill runs to approve" not in client_as("debtors_clerk").get("/desk/debtors_clerk").text  # billing.run is not theirs
    assert "Bill runs to approve" in client_as("admin").get("/desk/debtors_clerk").text


def test_chart_js_is_loaded_only_on_desks_with_a_chart(client_as, areas):
    areas(TEST_AREA)
    with_chart = client_as("second_line_agent").get("/desk/second_line_agent").text
    assert '<script src="/static/vendor/chart.umd.min.js"' in with_chart and "data-chart='" in with_chart
    assert '"labels": ["P1", "P2"]' in with_chart
    without = client_as("debtors_clerk").get("/desk/debtors_clerk").text
    assert "chart.umd.min.js" not in without and "data-chart" not in without


def test_a_card_link_that_is_not_a_local_path_is_not_rendered_as_a_link(client_as, areas):
    areas(TEST_AREA)
    page = client_as("billing_analyst").get("/desk/billing_analyst").text
    assert "Card with an unsafe link" in page and "javascript:" not in page


def test_a_failing_area_is_shown_unavailable_and_logged_while_the_other_cards_render(client_as, areas, caplog):
    areas(BROKEN_AREA, TEST_AREA)
    c = client_as("debtors_clerk")
    with caplog.at_level(logging.ERROR, logger="opsline.web.desk"):
        r = c.get("/desk/debtors_clerk")
    assert r.status_code == 200
    assert 'data-area="broken_area"' in r.text and "unavailable" in r.text
    assert "Accounts in arrears" in r.text and re.search(r'href="/accounts"[^>]*>0</a>', r.text)  # queries after the failure still work
    assert any(rec.name == "opsline.web.desk" and "broken_area" in rec.getMessage() and rec.exc_info for rec in caplog.records)


def test_a_user_with_several_roles_gets_a_desk_switcher(client_as, areas):
    areas(TEST_AREA)
    c = client_as("billing_analyst", "debtors_clerk")
    r = c.get("/", follow_redirects=False)
    assert r.headers["location"] == "/desk/debtors_clerk"
    page = c.get("/desk/debtors_clerk").text
    assert 'aria-label="Switch desk"' in page and 'href="/desk/billing_analyst"' in page
    assert c.get("/desk/billing_analyst").status_code == 200
    refused = c.get("/desk/service_manager")
    assert refused.status_code == 403 and "Service manager desk is for that role" in refused.json()["detail"]
    assert 'aria-label="Switch desk"' not in client_as("debtors_clerk").get("/desk/debtors_clerk").text  # one role, no switcher


def test_admin_sees_every_desk(client_as, areas):
    areas(TEST_AREA)
    c = client_as("admin")
    assert c.get("/", follow_redirects=False).headers["location"] == "/desk/admin"
    page = c.get("/desk/admin").text
    for title in ("Accounts in arrears", "Accounts on file", "Bill runs to approve", "Cases breaching soon"):
        assert title in page
    assert '<a href="/desk/debtors_clerk">Debtors clerk</a>' in page and '<a href="/desk/second_line_agent">Second-line agent</a>' in page
    for role in Role:
        assert f'href="/desk/{role.value}"' in page  # the switcher offers every desk
        assert c.get(f"/desk/{role.value}").status_code == 200


def test_an_unknown_desk_is_404(client_as):
    r = client_as("admin").get("/desk/astronaut")
    assert r.status_code == 404 and "no 'astronaut' desk" in r.json()["detail"]


def test_a_desk_with_nothing_waiting_says_so(client_as, areas):
    areas()
    page = client_as("service_manager").get("/desk/service_manager").text
    assert "Nothing is waiting on this desk." in page


def test_every_demo_user_lands_on_their_own_desk_page_with_every_areas_cards(client_as, make_user, app):
    """The real areas (whatever home cards they declare today) on the demo users' roles: no area is unavailable."""
    from fastapi.testclient import TestClient

    from opsline.demo import DEMO_USERS

    declared = [a.name for a in load_areas() if a.home]
    for username, _name, roles in DEMO_USERS:
        make_user(*roles, username=username)
        with TestClient(app) as c:
            assert post_login(c, username).status_code == 303
            r = c.get("/", follow_redirects=False)
            assert r.headers["location"] == f"/desk/{roles[0]}", username
            page = c.get(r.headers["location"])
            assert page.status_code == 200, (username, page.text[:500])
            assert "desk-unavailable" not in page.text, (username, declared, re.findall(r'data-area="([^"]+)"', page.text))


def test_the_admin_desk_shows_stuck_background_jobs_with_the_oldest_ones_age(client_as, factory, now):
    from datetime import timedelta

    from opsline.core.jobs import Job

    def job(kind: str, at, **kw):  # type: ignore[no-untyped-def]
        return Job(kind=kind, payload={}, state=kw.pop("state", "queued"), priority=100, run_at=at, created_at=at, **kw)

    with factory.begin() as s:
        s.add_all([job("test.dead", now - timedelta(hours=5), state="dead", attempts=8),
                   job("test.retry", now - timedelta(minutes=30), attempts=2),
                   job("test.fine", now)])
    page = client_as("admin").get("/desk/admin").text
    card = page[page.index("Background jobs stuck"):][:600]
    assert re.search(r'href="/jobs"[^>]*>2</a>', card) and "1 dead, 1 retrying; oldest 5 h 0 min" in card
    assert "Background jobs stuck" not in client_as("billing_analyst").get("/desk/billing_analyst").text


def test_every_area_declares_the_desks_its_cards_are_for_so_a_desk_runs_only_those_areas(factory, now):
    """A desk page skips areas whose `home_desks` leave it out (the coordinator's home no longer waits for debtors'
    queries): so every card an area returns must be for a desk it declares, or the card would silently vanish."""
    from zoneinfo import ZoneInfo

    from opsline.core.events import Actor

    admin = Actor(name="admin", roles=frozenset({Role.ADMIN.value}))
    checked = []
    with factory() as s:
        for area in load_areas():
            if area.home is None or area.home_desks is None:
                continue
            cards = area.home(s, now=now, actor=admin, tz=ZoneInfo("Africa/Johannesburg"))  # some areas show cards only when there is work
            for card in cards:
                assert set(card.desks) <= set(area.home_desks) | {Role.ADMIN.value}, (area.name, card.title, card.desks, area.home_desks)
            checked.append(area.name)
    assert {"cancellations", "debtors", "cases", "billing", "logistics"} <= set(checked)


def test_a_desk_page_runs_only_the_areas_with_cards_for_it(client_as, monkeypatch):
    ran: list[str] = []

    def spy(name):  # type: ignore[no-untyped-def]
        def home(session, *, now, actor, tz):  # type: ignore[no-untyped-def]
            ran.append(name)
            return [HomeCard(desks=(name,), title=f"{name} work", count=1, href="/accounts", permission="customers.view")]
        return home

    areas = (Area(name="for_debtors", order=1, home=spy("debtors_clerk"), home_desks=("debtors_clerk",)),
             Area(name="for_agents", order=2, home=spy("second_line_agent"), home_desks=("second_line_agent",)))
    monkeypatch.setattr(desk, "load_areas", lambda: areas)
    page = client_as("debtors_clerk").get("/desk/debtors_clerk")
    assert page.status_code == 200 and "debtors_clerk work" in page.text
    assert ran == ["debtors_clerk"]
