"""Schemathesis drives the TMF629/TMF666 endpoints from our own OpenAPI document: no 5xx, responses match the schema."""

from conftest import run_schemathesis


def test_customer_and_billing_account_endpoints_conform_to_their_openapi_schema(app, api_token):
    n = run_schemathesis(app, api_token("admin"), r"^/tmf-api/(customerManagement/v4/customer|accountManagement/v4/billingAccount)")
    assert n == 9  # customer: list, get, post, patch, delete; billingAccount: list, get, post, patch
