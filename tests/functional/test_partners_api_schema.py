"""Schemathesis drives the TMF641 service-order endpoints and the partner callback from our OpenAPI document: no 5xx,
successful bodies match the schema (the callback answers 401 to unsigned fuzz, never 500)."""

from conftest import run_schemathesis


def test_service_order_and_callback_endpoints_conform_to_their_openapi_schema(app, api_token):
    assert run_schemathesis(app, api_token("admin"), r"^/(tmf-api/serviceOrdering|api/partners)/") >= 3
