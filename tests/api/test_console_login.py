"""The console's login: the API's password check and rate limits, a server-side session in an
HttpOnly SameSite=Lax cookie (Secure outside development), revoked at once like the API's
sessions, an idle timeout, and CSRF on every request that changes something."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from backend.extensions import db
from points.models import AuthSession, User
from tests.factories import PASSWORD, World
from tests.support.console import console_login, csrf_in

LOGIN = "/console/login"


def _cookie_header(response: Any) -> str:
    headers = response.headers
    return next(v for v in headers.getlist("Set-Cookie") if v.startswith("vp_console="))


def _post_login(client: FlaskClient, username: str, password: str, **kwargs: Any) -> Any:
    token = csrf_in(client.get(LOGIN).text)
    return client.post(
        LOGIN,
        data={"username": username, "password": password, "csrf_token": token},
        **kwargs,
    )


def _sessions(app: Flask, username: str) -> list[AuthSession]:
    with app.app_context():
        user_id = db.session.scalar(select(User.id).where(User.username == username))
        return list(db.session.scalars(select(AuthSession).where(AuthSession.user_id == user_id)))


def test_a_login_sets_an_httponly_lax_secure_cookie_of_a_server_side_session(
    app: Flask, client: FlaskClient, world: World
) -> None:
    response = _post_login(client, "cadre_a", PASSWORD)

    assert response.status_code == 303
    cookie = _cookie_header(response)
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" in cookie  # APP_ENV is not development
    assert "Path=/console" in cookie
    [row] = _sessions(app, "cadre_a")
    # the row keeps only the secret's hash: the cookie's secret is nowhere in the database
    secret = cookie.split("=", 1)[1].split(";")[0].split(".", 1)[1]
    assert row.secret_hash and secret not in row.secret_hash
    assert client.get("/console/").status_code == 200


def test_in_development_the_cookie_is_not_secure_so_plain_http_works(
    app: Flask, client: FlaskClient, world: World
) -> None:
    app.config["CONSOLE_SECURE_COOKIE"] = False
    try:
        cookie = _cookie_header(_post_login(client, "cadre_a", PASSWORD))
    finally:
        app.config["CONSOLE_SECURE_COOKIE"] = True
    assert "Secure" not in cookie


def test_a_wrong_password_and_an_unknown_user_get_the_same_answer_and_no_session(
    app: Flask, client: FlaskClient, world: World
) -> None:
    wrong = _post_login(client, "cadre_a", "not-the-password")
    unknown = _post_login(client, "nobody", "not-the-password")

    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "用户名或密码错误" in response.text
        assert not any(v.startswith("vp_console=") for v in response.headers.getlist("Set-Cookie"))
    assert 'value="cadre_a"' in wrong.text  # the form keeps the name
    assert _sessions(app, "cadre_a") == []


def test_a_villager_account_cannot_enter(app: Flask, client: FlaskClient, world: World) -> None:
    """Villagers log in by WeChat; even with a username and password set, the console is not
    theirs: the same answer as a wrong password."""
    with app.app_context():
        villager = db.session.get(User, world.villager_x)
        assert villager is not None
        villager.username = "villager_x"
        villager.password_hash = db.session.get(User, world.cadre_a).password_hash  # type: ignore[union-attr]
        db.session.commit()

    response = _post_login(client, "villager_x", PASSWORD)

    assert response.status_code == 401
    assert _sessions(app, "villager_x") == []


def test_a_login_without_its_csrf_token_is_refused(
    app: Flask, client: FlaskClient, world: World
) -> None:
    client.get(LOGIN)
    response = client.post(LOGIN, data={"username": "cadre_a", "password": PASSWORD})

    assert response.status_code == 403
    assert _sessions(app, "cadre_a") == []


def test_logout_needs_the_csrf_token_and_then_ends_the_session_at_once(
    app: Flask, client: FlaskClient, world: World
) -> None:
    token = console_login(client, "cadre_a")

    refused = client.post("/console/logout")
    assert refused.status_code == 403
    assert client.get("/console/").status_code == 200  # still logged in: nothing changed

    assert client.post("/console/logout", data={"csrf_token": token}).status_code == 303
    [row] = _sessions(app, "cadre_a")
    assert row.revoked_reason == "logout"
    assert client.get("/console/").headers["Location"].startswith("/console/login")


def test_a_csrf_token_of_another_session_is_refused(
    app: Flask, client: FlaskClient, world: World
) -> None:
    other = app.test_client()
    other_token = console_login(other, "cadre_b")
    console_login(client, "cadre_a")

    assert client.post("/console/logout", data={"csrf_token": other_token}).status_code == 403
    assert client.get("/console/").status_code == 200


def test_disabling_the_user_or_resetting_the_password_ends_console_logins_at_once(
    app: Flask, client: FlaskClient, world: World
) -> None:
    console_login(client, "cadre_a")
    other = app.test_client()
    console_login(other, "cadre_b")

    admin = world.headers("county")
    assert (
        client.patch(f"/api/v1/users/{world.cadre_a}", json={"disabled": True}, headers=admin)
    ).status_code == 200
    assert (
        client.patch(
            f"/api/v1/users/{world.cadre_b}",
            json={"password": "a-new-password-2026"},
            headers=admin,
        )
    ).status_code == 200

    for browser in (client, other):
        response = browser.get("/console/")
        assert response.status_code == 303
        assert response.headers["Location"].startswith("/console/login")


def test_an_idle_session_ends_and_says_why(app: Flask, client: FlaskClient, world: World) -> None:
    start = datetime.now(UTC)
    with time_machine.travel(start, tick=False):
        console_login(client, "cadre_a")
    idle = timedelta(minutes=app.config["CONSOLE_IDLE_MINUTES"])

    with time_machine.travel(start + idle - timedelta(minutes=1), tick=False):
        assert client.get("/console/").status_code == 200  # used: the clock starts again
    with time_machine.travel(start + 2 * idle - timedelta(minutes=2), tick=False):
        assert client.get("/console/").status_code == 200
    with time_machine.travel(start + 3 * idle, tick=False):
        response = client.get("/console/")

    assert response.status_code == 303
    assert "reason=session_expired" in response.headers["Location"]
    [row] = _sessions(app, "cadre_a")
    assert row.revoked_reason == "idle"
    login_page = client.get(response.headers["Location"])
    assert "长时间未操作" in login_page.text


def test_an_api_session_opens_no_console_and_a_forged_cookie_opens_nothing(
    app: Flask, client: FlaskClient, world: World
) -> None:
    world.tokens("cadre_a")  # an API login: a session row without a secret
    [row] = _sessions(app, "cadre_a")
    for value in (f"{row.id}.anything", f"{row.id}.", "garbage", "." * 40):
        client.set_cookie("vp_console", value, path="/console")
        response = client.get("/console/")
        assert response.status_code == 303, value
        assert response.headers["Location"].startswith("/console/login")


def test_after_login_only_a_console_page_of_this_server_is_the_next_page(
    client: FlaskClient, world: World
) -> None:
    for target, expected in (
        ("/console/claims", "/console/claims"),
        ("https://evil.example/", "/console/"),
        ("//evil.example/console/", "/console/"),
        ("/api/v1/me", "/console/"),
    ):
        client.delete_cookie("vp_console", path="/console")
        token = csrf_in(client.get(LOGIN).text)
        response = client.post(
            LOGIN,
            query_string={"next": target},
            data={"username": "cadre_a", "password": PASSWORD, "csrf_token": token},
        )
        assert response.headers["Location"] == expected, target


def test_the_console_login_counts_against_the_same_limit_as_the_api_login(
    app: Flask, client: FlaskClient, world: World
) -> None:
    limit = int(app.config["LOGIN_RATE_LIMIT"].split()[0])
    for i in range(limit - 1):
        response = client.post(
            "/api/v1/auth/login", json={"username": f"guess-{i}", "password": "x" * 8}
        )
        assert response.status_code == 401
    assert _post_login(client, "guess-last", "wrong-password").status_code == 401

    blocked = _post_login(client, "cadre_a", PASSWORD)

    assert blocked.status_code == 429
    assert "操作太频繁" in blocked.text
    assert blocked.mimetype == "text/html"
    assert _sessions(app, "cadre_a") == []


def test_console_pages_carry_the_html_security_headers(client: FlaskClient, world: World) -> None:
    for response in (client.get(LOGIN), client.get("/console/", follow_redirects=True)):
        headers = response.headers
        policy = dict(
            (d.split()[0], d.split()[1:]) for d in headers["Content-Security-Policy"].split("; ")
        )
        assert policy["script-src"] == ["'self'"]  # no inline script
        assert policy["style-src"] == ["'self'"]
        assert policy["form-action"] == ["'self'"]
        assert policy["frame-ancestors"] == ["'none'"]
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["Cache-Control"] == "no-store"
        assert "<script>" not in response.text and " on" + "click=" not in response.text


def test_a_login_makes_one_session_row(app: Flask, client: FlaskClient, world: World) -> None:
    console_login(client, "cadre_a")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuthSession)) == 1


def test_a_page_polling_on_its_own_does_not_keep_an_idle_session_alive(
    app: Flask, client: FlaskClient, world: World
) -> None:
    start = datetime.now(UTC)
    with time_machine.travel(start, tick=False):
        console_login(client, "cadre_a")
    idle = timedelta(minutes=app.config["CONSOLE_IDLE_MINUTES"])
    poll = {"X-Console-Poll": "1", "HX-Request": "true"}

    with time_machine.travel(start + idle - timedelta(minutes=1), tick=False):
        assert client.get("/console/", headers=poll).status_code == 200
    with time_machine.travel(start + idle + timedelta(minutes=1), tick=False):
        response = client.get("/console/", headers=poll)

    assert response.status_code == 204  # htmx is told to load the login page whole
    assert "reason=session_expired" in response.headers["HX-Redirect"]


def test_padding_the_username_gets_no_more_password_guesses(
    app: Flask, client: FlaskClient, world: World
) -> None:
    limit = int(app.config["LOGIN_RATE_LIMIT"].split()[0])
    statuses = []
    for i in range(limit + 5):
        response = _post_login(
            client,
            "cadre_a" + " " * i,
            "wrong-password",
            environ_base={"REMOTE_ADDR": f"10.0.{i // 250}.{i % 250 + 1}"},
        )
        statuses.append(response.status_code)
    assert statuses[:limit] == [401] * limit
    assert set(statuses[limit:]) == {429}


def test_a_csrf_token_outside_ascii_is_refused_not_an_error(
    client: FlaskClient, world: World
) -> None:
    console_login(client, "cadre_a")
    response = client.post("/console/logout", data={"csrf_token": "令牌"})
    assert response.status_code == 403
    assert client.get("/console/").status_code == 200
