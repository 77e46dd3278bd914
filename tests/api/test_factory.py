"""The app factory, configuration, health and the OpenAPI document."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from backend import create_app
from tests.factories import SECRET


def test_production_refuses_to_start_without_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("APP_ENV", "production")
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})


def test_production_refuses_a_short_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "x" * 31)
    with pytest.raises(RuntimeError, match="32 bytes"):
        create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})


def test_production_starts_with_a_long_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", SECRET)
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://jf.example.gov.cn")
    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    assert app.config["SECRET_KEY"] == SECRET


def test_development_has_a_working_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("APP_ENV", "development")
    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    assert len(app.config["SECRET_KEY"]) >= 32


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "development")
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://jf.example.cn/")
    monkeypatch.setenv("APP_TIMEZONE", "Asia/Urumqi")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db/vp")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/3")
    app = create_app()
    assert app.config["PUBLIC_BASE_URL"] == "https://jf.example.cn"
    assert app.config["APP_TIMEZONE"] == "Asia/Urumqi"
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@db/vp"
    assert app.config["RATELIMIT_STORAGE_URI"] == "redis://127.0.0.1:6379/3"


def test_healthz(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}


def test_openapi_document_lists_the_contract(client: FlaskClient) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    paths = spec["paths"]
    for path in (
        "/api/v1/auth/wechat",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/bind",
        "/api/v1/me",
        "/api/v1/townships",
        "/api/v1/villages",
        "/api/v1/villages/{village_id}",
        "/api/v1/villages/{village_id}/households",
        "/api/v1/households/{household_id}",
        "/api/v1/households/{household_id}/members",
        "/api/v1/villagers/{villager_id}",
        "/api/v1/villages/{village_id}/roster",
        "/api/v1/villagers/{villager_id}/card.png",
        "/api/v1/villagers/{villager_id}/binding-token",
        "/api/v1/audit",
        "/api/v1/users",
        "/api/v1/users/{user_id}",
    ):
        assert path in paths, path
    member = spec["components"]["schemas"]["MemberIn"]
    assert member["properties"]["relation"]["enum"] == ["户主", "配偶", "子女", "父母", "其他"]
    assert paths["/api/v1/auth/login"]["post"]["security"] == []


def test_the_document_is_the_same_each_time_it_is_served(client: FlaskClient) -> None:
    # Built anew on each request from apispec's own dicts: marking the answered fields
    # `required` must work on copies, never on what the next request builds from.
    first = client.get("/api/v1/openapi.json").get_json()
    second = client.get("/api/v1/openapi.json").get_json()
    assert first == second
    schemas = first["components"]["schemas"]
    pages = [s for name, s in schemas.items() if name.endswith("Page")]
    assert pages and all("total_exact" in page["required"] for page in pages)
    assert not any("x-answered" in str(schema).lower() for schema in schemas.values())


def test_docs_page(client: FlaskClient) -> None:
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    assert "/api/v1/villages/{village_id}/households" in response.get_data(as_text=True)


def test_qr_landing_page_tells_what_to_do(client: FlaskClient) -> None:
    response = client.get("/q/AbC123")
    assert response.status_code == 200
    assert "微信" in response.get_data(as_text=True)


def test_app_fixture_uses_the_test_database(app: Flask) -> None:
    assert app.config["TESTING"] is True
