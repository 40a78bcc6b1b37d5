"""The debtors reports as wired by the debtors area (run after `opsline.debtors.area` mounts the reports router and grants
`debtors.view`): the app serves them without help, and the debtors clerk and manager open every report and export."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from debtors_reports_helpers import build_book

PAGES = ["/debtors/reports", "/debtors/reports/aged", "/debtors/reports/aged/accounts?bucket=d60", "/debtors/reports/top?n=10",
         "/debtors/reports/top?n=60", "/debtors/reports/collections", "/debtors/reports/collections/accounts?month=2026-11&measure=billed",
         "/debtors/reports/suspense", "/debtors/reports/aged/export?format=csv", "/debtors/reports/top/export?n=60&format=xlsx",
         "/debtors/reports/collections/export?format=csv", "/debtors/reports/suspense/export?format=xlsx"]


def test_the_app_serves_the_reports_router_from_the_debtors_area(app):  # type: ignore[no-untyped-def]
    paths = {ctx.original_route.path for ctx in iter_route_contexts(app.routes) if isinstance(ctx.original_route, APIRoute)}
    assert {"/debtors/reports", "/debtors/reports/top", "/debtors/reports/aged/export"} <= paths


@pytest.mark.parametrize("role", ["debtors_clerk", "debtors_manager"])
def test_the_debtors_clerk_and_manager_open_every_report_and_export(client_as, factory, role):  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        build_book(s)
    c = client_as(role)
    for url in PAGES:
        assert c.get(url).status_code == 200, url
