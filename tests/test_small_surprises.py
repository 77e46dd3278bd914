"""Small things a county walk-through met: the service's root, the documented health check
and QR landing page, Chinese in JSON, Chinese validation messages, a plate's rank at 0."""

from __future__ import annotations

from flask.testing import FlaskClient

API = "/api/v1"


def test_the_root_sends_a_browser_to_the_api_docs(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"] == f"{API}/docs"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    docs = client.get("/", follow_redirects=True)
    assert docs.status_code == 200 and docs.mimetype == "text/html"


def test_health_check_and_qr_landing_page_are_documented(client: FlaskClient) -> None:
    paths = client.get(f"{API}/openapi.json").get_json()["paths"]
    health = paths["/healthz"]["get"]
    assert health["security"] == []
    assert {"200", "503"} <= set(health["responses"])
    landing = paths["/q/{token}"]["get"]
    assert landing["security"] == []
    assert "text/html" in landing["responses"]["200"]["content"]
    assert paths["/"]["get"]["security"] == []
    assert client.get("/healthz").get_json() == {"status": "ok", "database": "ok"}
