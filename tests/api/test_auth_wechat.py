"""POST /api/v1/auth/wechat against a fake WeChat server speaking jscode2session over HTTP."""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from backend.extensions import db
from points.models import User
from tests.support.fake_wechat import FakeWeChat
from tests.support.reads import error_code
from tests.support.wechat import TIMEOUT, point_at

WECHAT = "/api/v1/auth/wechat"
ME = "/api/v1/me"


def wechat_login(client: FlaskClient, code: str) -> Any:
    return client.post(WECHAT, json={"code": code})


def codes_sent(fake: FakeWeChat) -> list[str]:
    return [r.get("js_code", "") for r in fake.requests]


def users_with_openid(app: Flask, openid: str) -> list[User]:
    with app.app_context():
        users = list(db.session.scalars(select(User).where(User.openid == openid)))
        db.session.expunge_all()
        return users


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---- success --------------------------------------------------------------------------------


def test_first_login_creates_an_unbound_villager(
    app: Flask, client: FlaskClient, wechat_server: FakeWeChat
) -> None:
    response = wechat_login(client, "ok-alice")

    assert response.status_code == 200
    body = response.get_json()
    assert body["bound"] is False
    assert body["user"]["role"] == "villager"
    assert body["user"]["villager_id"] is None
    [user] = users_with_openid(app, "openid-alice")
    assert body["user"]["id"] == user.id
    assert user.role == "villager" and user.villager_id is None
    me = client.get(ME, headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.get_json()["user"]["id"] == user.id
    assert me.get_json()["role"] == "villager"
    assert me.get_json()["villager"] is None
    assert (
        client.post(
            "/api/v1/auth/refresh", json={"refresh_token": body["refresh_token"]}
        ).status_code
        == 200
    )
    assert codes_sent(wechat_server) == ["ok-alice"]


def test_second_login_of_the_same_openid_is_the_same_user(
    app: Flask, client: FlaskClient, wechat_server: FakeWeChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = wechat_login(client, "ok-alice")
    assert first.status_code == 200

    # a new wx.login() code for the same WeChat user (a fresh fake has not seen this code)
    with FakeWeChat() as again:
        point_at(app, monkeypatch, again)
        second = wechat_login(client, "ok-alice")
        other = wechat_login(client, "ok-bob")
        assert codes_sent(again) == ["ok-alice", "ok-bob"]

    assert second.status_code == 200
    assert second.get_json()["user"]["id"] == first.get_json()["user"]["id"]
    assert len(users_with_openid(app, "openid-alice")) == 1
    assert other.status_code == 200
    assert other.get_json()["user"]["id"] != first.get_json()["user"]["id"]


def test_unionid_is_kept(app: Flask, client: FlaskClient, wechat_server: FakeWeChat) -> None:
    wechat_server.unionids["carol"] = "union-carol"

    assert wechat_login(client, "ok-carol").status_code == 200

    [user] = users_with_openid(app, "openid-carol")
    assert user.unionid == "union-carol"


def test_session_key_never_leaves_the_server(
    client: FlaskClient, wechat_server: FakeWeChat, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wechat_server.errcode_zero_on_success = True

    responses = [wechat_login(client, "ok-dave"), wechat_login(client, "noopenid")]
    responses.append(
        client.get(
            ME, headers={"Authorization": f"Bearer {responses[0].get_json()['access_token']}"}
        )
    )

    assert responses[0].status_code == 200
    assert responses[1].status_code >= 400
    assert len(wechat_server.issued_session_keys) == 2
    for response in responses:
        text = response.get_data(as_text=True)
        assert "session_key" not in text
        for key in wechat_server.issued_session_keys:
            assert key not in text
    logged = caplog.text + "".join(repr(r.__dict__) for r in caplog.records)
    assert caplog.records  # the client does log the exchange, just not its secrets
    for key in wechat_server.issued_session_keys:
        assert key not in logged
    assert wechat_server.secret not in logged
    assert "ok-dave" not in logged


# ---- WeChat refusals ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("bad", 401, "wechat_code_invalid"),  # errcode 40029
        ("blocked", 403, "wechat_login_blocked"),  # errcode 40226
        ("busy", 429, "wechat_rate_limited"),  # errcode 45011
        ("sys", 503, "wechat_unavailable"),  # errcode -1
        ("garbage", 503, "wechat_unavailable"),  # HTTP 200, not JSON
        ("boom", 503, "wechat_unavailable"),  # HTTP 500
    ],
)
def test_wechat_refusals(
    app: Flask, client: FlaskClient, wechat_server: FakeWeChat, code: str, status: int, error: str
) -> None:
    response = wechat_login(client, code)

    assert response.status_code == status
    assert error_code(response) == error
    assert response.get_json()["error"]["message"]
    assert "access_token" not in response.get_json()
    assert codes_sent(wechat_server) == [code]
    if status == 429:
        assert int(response.headers["Retry-After"]) > 0
    else:  # the API sends Retry-After with 429 only
        assert "Retry-After" not in response.headers
    with app.app_context():
        assert db.session.scalar(select(User.id).where(User.role == "villager")) is None


def test_code_used_twice_is_refused(client: FlaskClient, wechat_server: FakeWeChat) -> None:
    assert wechat_login(client, "ok-erin").status_code == 200

    again = wechat_login(client, "ok-erin")

    assert again.status_code == 401
    assert error_code(again) == "wechat_code_used"
    assert "access_token" not in again.get_json()


def test_hanging_wechat_times_out(client: FlaskClient, wechat_server: FakeWeChat) -> None:
    started = time.monotonic()
    response = wechat_login(client, "hang")
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert error_code(response) == "wechat_unavailable"
    assert elapsed < TIMEOUT + 1.5
    assert codes_sent(wechat_server) == ["hang"]


def test_unreachable_wechat_is_503(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "WECHAT_APPID", "wx-test-appid")
    monkeypatch.setitem(app.config, "WECHAT_SECRET", "test-app-secret")
    monkeypatch.setitem(app.config, "WECHAT_API_BASE", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setitem(app.config, "WECHAT_TIMEOUT", TIMEOUT)

    started = time.monotonic()
    response = wechat_login(client, "ok-frank")

    assert response.status_code == 503
    assert error_code(response) == "wechat_unavailable"
    assert time.monotonic() - started < TIMEOUT + 1.5


def test_wrong_app_secret_is_not_a_login(
    app: Flask, client: FlaskClient, wechat_server: FakeWeChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "WECHAT_SECRET", "not-the-secret")

    response = wechat_login(client, "ok-gina")

    assert response.status_code >= 500
    assert "access_token" not in response.get_json()
    assert "not-the-secret" not in response.get_data(as_text=True)
    assert users_with_openid(app, "openid-gina") == []


@pytest.mark.parametrize("body", [{}, {"code": ""}, {"code": "ok-x", "openid": "openid-x"}])
def test_bad_request_bodies(
    client: FlaskClient, wechat_server: FakeWeChat, body: dict[str, Any]
) -> None:
    response = client.post(WECHAT, json=body)

    assert response.status_code == 422
    assert wechat_server.requests == []


# ---- development logins and configuration ---------------------------------------------------


def test_dev_login_in_development_without_app_id(app: Flask, client: FlaskClient) -> None:
    app.config.update(APP_ENV="development", WECHAT_APPID="", WECHAT_SECRET="")

    response = wechat_login(client, "dev-zhang")

    assert response.status_code == 200
    body = response.get_json()
    [user] = users_with_openid(app, "dev-zhang")
    assert body["user"]["id"] == user.id
    assert body["user"]["role"] == "villager"
    me = client.get(ME, headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.get_json()["user"]["id"] == user.id
    assert wechat_login(client, "dev-zhang").get_json()["user"]["id"] == user.id


@pytest.mark.parametrize("env", ["production", "testing", "development"])
def test_dev_codes_refused_unless_development_without_app_id(
    app: Flask, client: FlaskClient, wechat_server: FakeWeChat, env: str
) -> None:
    # the fake is configured (an app id is set), so even development refuses dev codes
    app.config.update(APP_ENV=env)

    response = wechat_login(client, "dev-zhang")

    assert response.status_code == 401
    assert error_code(response) == "wechat_code_invalid"
    assert "access_token" not in response.get_json()
    assert wechat_server.requests == []
    assert users_with_openid(app, "dev-zhang") == []


@pytest.mark.parametrize("env", ["production", "testing"])
def test_dev_codes_refused_outside_development_even_without_app_id(
    app: Flask, client: FlaskClient, env: str
) -> None:
    app.config.update(APP_ENV=env, WECHAT_APPID="", WECHAT_SECRET="")

    response = wechat_login(client, "dev-zhang")

    assert response.status_code == 401
    assert error_code(response) == "wechat_code_invalid"
    assert users_with_openid(app, "dev-zhang") == []


@pytest.mark.parametrize("env", ["production", "testing"])
def test_no_app_id_outside_development_is_not_configured(
    app: Flask,
    client: FlaskClient,
    wechat_server: FakeWeChat,
    monkeypatch: pytest.MonkeyPatch,
    env: str,
) -> None:
    app.config.update(APP_ENV=env)
    monkeypatch.setitem(app.config, "WECHAT_APPID", "")

    response = wechat_login(client, "ok-henry")

    assert response.status_code == 503
    assert error_code(response) == "wechat_not_configured"
    assert wechat_server.requests == []
