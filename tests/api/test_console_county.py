"""The county's console pages: townships, villages and staff accounts through the same
services as the API, and the password an admin chose, which its holder must change before
any other page opens."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask, url_for
from flask.testing import FlaskClient
from sqlalchemy import select

from backend.extensions import db
from points.models import AuthSession, Township, User, Village
from tests.factories import PASSWORD, World
from tests.support.console import console_login, csrf_in

CHOSEN = "chosen-by-the-admin"
OWN = "my-very-own-password"
_KEY = re.compile(r'name="idempotency_key" value="([^"]*)"')


def post(client: FlaskClient, url: str, token: str, **data: Any) -> Any:
    return client.post(url, data={"csrf_token": token, **{k: str(v) for k, v in data.items()}})


def user_id(app: Flask, username: str) -> int:
    with app.app_context():
        found = db.session.scalar(select(User.id).where(User.username == username))
        assert found is not None
        return found


def live_sessions(app: Flask, username: str) -> int:
    uid = user_id(app, username)
    with app.app_context():
        return len(
            db.session.scalars(
                select(AuthSession).where(
                    AuthSession.user_id == uid, AuthSession.revoked_at.is_(None)
                )
            ).all()
        )


def log_in_must_change(client: FlaskClient, username: str, password: str) -> str:
    """Log in with a password an admin chose: every page leads to /console/password."""
    page = client.get("/console/login")
    response = client.post(
        "/console/login",
        data={"username": username, "password": password, "csrf_token": csrf_in(page.text)},
    )
    assert response.status_code == 303
    landing = client.get("/console/")
    assert landing.status_code == 303
    assert landing.headers["Location"] == "/console/password"
    form = client.get("/console/password")
    assert form.status_code == 200 and 'id="must-change"' in form.text
    return csrf_in(form.text)


def test_the_county_sets_up_a_township_a_village_and_a_cadre_who_changes_the_password(
    app: Flask, client: FlaskClient, world: World
) -> None:
    token = console_login(client, "county")
    made = post(client, "/console/townships", token, name="新河镇", code="T9")
    assert made.status_code == 303
    page = client.get("/console/townships")
    assert "新河镇" in page.text
    with app.app_context():
        township = db.session.scalar(select(Township).where(Township.name == "新河镇"))
        assert township is not None
        township_id = township.id

    renamed = post(client, f"/console/townships/{township_id}/rename", token, name="新河乡")
    assert renamed.status_code == 303
    assert "新河乡" in client.get("/console/townships").text

    made = post(client, "/console/villages", token, township_id=township_id, name="柳村")
    assert made.status_code == 303
    with app.app_context():
        village_id = db.session.scalar(select(Village.id).where(Village.name == "柳村"))
    renamed = post(client, f"/console/villages/{village_id}/rename", token, name="柳树村")
    assert renamed.status_code == 303
    assert "柳树村" in client.get("/console/villages").text

    created = post(
        client,
        "/console/users",
        token,
        username="liu_cadre",
        name="柳干部",
        password=CHOSEN,
        role="cadre",
        village_id=village_id,
        township_id=world.township_2,  # another role's picker: not sent on
    )
    assert created.status_code == 303
    listing = client.get("/console/users")
    assert "liu_cadre" in listing.text and "柳树村" in listing.text
    assert "待本人改密码" in listing.text
    with app.app_context():
        cadre = db.session.scalar(select(User).where(User.username == "liu_cadre"))
        assert cadre is not None
        assert (cadre.role, cadre.village_id, cadre.township_id) == (
            "cadre",
            village_id,
            township_id,
        )
        assert cadre.must_change_password
        with app.test_request_context():
            cadre_page = url_for("console.user", user_id=cadre.id)
    # the list links each account to its own page, and names where it works
    row = re.search(rf'<tr data-user="{cadre.id}".*?</tr>', listing.text, re.S)
    assert row is not None
    assert f'<a href="{cadre_page}">liu_cadre</a>' in row.group(0)
    assert "<td>村干部</td>" in row.group(0) and "柳树村</td>" in row.group(0)
    assert "liu_cadre" in client.get(cadre_page).text

    # the cadre, in a browser of their own
    other = app.test_client()
    token2 = log_in_must_change(other, "liu_cadre", CHOSEN)
    assert other.get("/console/townships").headers["Location"] == "/console/password"
    htmx = other.get("/console/", headers={"HX-Request": "true"})
    assert htmx.status_code == 204 and htmx.headers["HX-Redirect"] == "/console/password"

    mismatch = post(
        other,
        "/console/password",
        token2,
        current_password=CHOSEN,
        new_password=OWN,
        new_password_again=OWN + "x",
    )
    assert mismatch.status_code == 422 and "两次输入的新密码不一致" in mismatch.text
    wrong = post(
        other,
        "/console/password",
        token2,
        current_password="not-it-at-all",
        new_password=OWN,
        new_password_again=OWN,
    )
    assert wrong.status_code == 401 and "当前密码不正确" in wrong.text
    weak = post(
        other,
        "/console/password",
        token2,
        current_password=CHOSEN,
        new_password="short",
        new_password_again="short",
    )
    assert weak.status_code == 422 and "密码至少 8 位" in weak.text

    changed = post(
        other,
        "/console/password",
        token2,
        current_password=CHOSEN,
        new_password=OWN,
        new_password_again=OWN,
    )
    assert changed.status_code == 303 and changed.headers["Location"] == "/console/"
    today = other.get("/console/")
    assert today.status_code == 200 and "今日待办" in today.text
    assert "待本人改密码" not in client.get("/console/users").text

    # the admin resets it: the cadre's session ends, and the next login must change it again
    cadre_id = user_id(app, "liu_cadre")
    assert live_sessions(app, "liu_cadre") == 1
    reset = post(client, f"/console/users/{cadre_id}/password", token, password=CHOSEN)
    assert reset.status_code == 303
    assert "密码已重置" in client.get(reset.headers["Location"]).text
    assert live_sessions(app, "liu_cadre") == 0
    ended = other.get("/console/")
    assert ended.status_code == 303 and ended.headers["Location"].startswith("/console/login")
    log_in_must_change(other, "liu_cadre", CHOSEN)


def test_a_change_ends_the_users_other_sessions_and_keeps_this_one(
    app: Flask, client: FlaskClient, world: World
) -> None:
    elsewhere = app.test_client()
    console_login(elsewhere, "cadre_a")
    token = console_login(client, "cadre_a")
    assert live_sessions(app, "cadre_a") == 2

    changed = post(
        client,
        "/console/password",
        token,
        current_password=PASSWORD,
        new_password=OWN,
        new_password_again=OWN,
    )

    assert changed.status_code == 303
    assert live_sessions(app, "cadre_a") == 1
    assert client.get("/console/").status_code == 200
    assert elsewhere.get("/console/").status_code == 303


def test_a_township_admin_sees_and_names_only_their_townships_villages(
    app: Flask, client: FlaskClient, world: World
) -> None:
    token = console_login(client, "tadmin1")
    page = client.get("/console/villages")
    assert page.status_code == 200
    assert "清水村" in page.text and "桃源村" in page.text
    assert "白沙村" not in page.text and "白沙镇" not in page.text

    refused = post(client, "/console/villages", token, township_id=world.township_2, name="越界村")
    assert refused.status_code == 404
    assert 'class="refusal"' in refused.text and 'id="new-village"' in refused.text
    renamed = post(client, f"/console/villages/{world.village_c}/rename", token, name="越界")
    assert renamed.status_code == 404
    with app.app_context():
        assert db.session.scalar(select(Village.id).where(Village.name == "越界村")) is None
        assert db.session.get(Village, world.village_c).name == "白沙村"  # type: ignore[union-attr]

    # a township admin does not set up townships
    assert client.get("/console/townships").status_code == 403


def test_a_duplicate_name_is_refused_beside_the_form_keeping_what_was_typed(
    client: FlaskClient, world: World
) -> None:
    token = console_login(client, "tadmin1")
    page = client.get("/console/villages")
    key = _KEY.search(page.text)
    assert key
    refused = post(
        client,
        "/console/villages",
        token,
        township_id=world.township_1,
        name="桃源村",
        code="X1",
        idempotency_key=key.group(1),
    )
    assert refused.status_code == 409
    assert "本乡镇已有同名村" in refused.text
    assert 'value="X1"' in refused.text


def test_staff_accounts_by_role_and_scope_and_their_refusals(
    app: Flask, client: FlaskClient, world: World
) -> None:
    token = console_login(client, "tadmin1")
    listing = client.get("/console/users")
    assert listing.status_code == 200
    assert "cadre_a" in listing.text and "clerk_a" in listing.text
    assert "tadmin2" not in listing.text and ">county<" not in listing.text
    assert 'value="county_admin"' not in listing.text  # a township admin makes no county admin

    # a township admin makes no staff of another township
    refused = post(
        client,
        "/console/users",
        token,
        username="far_cadre",
        password=CHOSEN,
        role="cadre",
        village_id=world.village_c,
    )
    assert refused.status_code == 403 and 'class="refusal"' in refused.text
    assert 'value="far_cadre"' in refused.text
    bad_name = post(client, "/console/users", token, username="a b", password=CHOSEN, role="cadre")
    assert bad_name.status_code == 422 and "用户名" in bad_name.text

    # disable and enable; link to the roster entry (and unlink)
    cadre = world.cadre_a
    assert post(client, f"/console/users/{cadre}/disabled", token, disabled=1).status_code == 303
    with app.app_context():
        assert db.session.get(User, cadre).disabled  # type: ignore[union-attr]
    assert post(client, f"/console/users/{cadre}/disabled", token, disabled=0).status_code == 303
    search = client.get(f"/console/users/{cadre}?q=户主")
    assert "户主x" in search.text and "户主y" not in search.text  # within the cadre's village
    linked = post(client, f"/console/users/{cadre}/villager", token, villager_id=world.head_x)
    assert linked.status_code == 303
    assert "户主x" in client.get(f"/console/users/{cadre}").text
    out_of_scope = post(client, f"/console/users/{cadre}/villager", token, villager_id=world.head_y)
    assert out_of_scope.status_code == 422 and "只能关联本人工作范围内" in out_of_scope.text
    assert post(client, f"/console/users/{cadre}/villager", token).status_code == 303
    with app.app_context():
        user = db.session.get(User, cadre)
        assert user is not None and not user.disabled and user.villager_id is None

    # another township's account is not found
    assert client.get(f"/console/users/{world.tadmin2}").status_code == 404


def test_a_cadre_and_a_clerk_open_no_admins_page(client: FlaskClient, world: World) -> None:
    console_login(client, "cadre_a")
    for path in ("/console/users", "/console/villages", "/console/townships"):
        assert client.get(path).status_code == 403, path
    assert client.get(f"/console/users/{world.cadre_b}").status_code in (403, 404)
    today = client.get("/console/")
    assert "/console/users" not in today.text  # not in the menu either
    assert "/console/password" in today.text


def test_a_post_without_the_csrf_token_changes_nothing(
    app: Flask, client: FlaskClient, world: World
) -> None:
    console_login(client, "county")
    sent = [
        ("/console/townships", {"name": "无令牌镇"}),
        (f"/console/townships/{world.township_1}/rename", {"name": "无令牌镇"}),
        ("/console/villages", {"township_id": world.township_1, "name": "无令牌村"}),
        (f"/console/villages/{world.village_a}/rename", {"name": "无令牌村"}),
        ("/console/users", {"username": "no_token", "password": CHOSEN, "role": "county_admin"}),
        (f"/console/users/{world.cadre_a}/disabled", {"disabled": "1"}),
        (f"/console/users/{world.cadre_a}/password", {"password": CHOSEN}),
        (f"/console/users/{world.cadre_a}/villager", {"villager_id": world.head_x}),
        (
            "/console/password",
            {"current_password": PASSWORD, "new_password": OWN, "new_password_again": OWN},
        ),
    ]
    for url, data in sent:
        response = client.post(url, data=data)
        assert response.status_code == 403, url
    with app.app_context():
        assert db.session.scalar(select(Township.id).where(Township.name == "无令牌镇")) is None
        assert db.session.scalar(select(Village.id).where(Village.name == "无令牌村")) is None
        assert db.session.scalar(select(User.id).where(User.username == "no_token")) is None
        cadre = db.session.get(User, world.cadre_a)
        assert cadre is not None and not cadre.disabled and cadre.villager_id is None
        assert not cadre.must_change_password
    console_login(app.test_client(), "cadre_a")  # the password is unchanged
