"""The API browser works on a closed network: Swagger UI is served from our own static files, never a CDN."""

from fastapi.testclient import TestClient


def test_the_api_browser_loads_swagger_ui_from_our_own_static_files(app, api_token):
    with TestClient(app) as client:
        client.headers.update(api_token("billing_analyst"))
        page = client.get("/api/docs")
        assert page.status_code == 200
        assert "/static/vendor/swagger-ui-bundle.js" in page.text and "cdn" not in page.text.lower()
        js = client.get("/static/vendor/swagger-ui-bundle.js")
        assert js.status_code == 200 and len(js.content) > 1_000_000
        assert client.get("/static/vendor/swagger-ui.css").status_code == 200
