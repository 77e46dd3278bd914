"""Binding a WeChat user to a roster villager: a cadre's single-use binding QR, or the
village roster's name and phone; and who may make a binding code."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient

from points.tokens import TokenCodec, TokenType
from tests.factories import SECRET, World
from tests.support.reads import error_code

BIND = "/api/v1/auth/bind"
ME = "/api/v1/me"


def binding_token(client: FlaskClient, world: World, villager_id: int, by: str = "cadre_a") -> Any:
    return client.post(f"/api/v1/villagers/{villager_id}/binding-token", headers=world.headers(by))


def new_token(client: FlaskClient, world: World, villager_id: int) -> str:
    response = binding_token(client, world, villager_id)
    assert response.status_code == 201, response.data
    return response.get_json()["token"]


def fresh_wechat_user(app: Flask, client: FlaskClient, name: str) -> dict[str, str]:
    """A brand-new, unbound WeChat user, logged in through the development login."""
    app.config.update(APP_ENV="development", WECHAT_APPID="")
    response = client.post("/api/v1/auth/wechat", json={"code": f"dev-{name}"})
    assert response.status_code == 200, response.data
    assert response.get_json()["bound"] is False
    return {"Authorization": f"Bearer {response.get_json()['access_token']}"}


def me(client: FlaskClient, headers: dict[str, str]) -> dict[str, Any]:
    response = client.get(ME, headers=headers)
    assert response.status_code == 200, response.data
    return response.get_json()


def assert_unbound(client: FlaskClient, headers: dict[str, str]) -> None:
    body = me(client, headers)
    assert body["villager"] is None
    assert body["household"] is None
    assert body["scope"]["household_id"] is None


def give_phone(client: FlaskClient, world: World, villager_id: int, phone: str) -> None:
    response = client.patch(
        f"/api/v1/villagers/{villager_id}", json={"phone": phone}, headers=world.headers("cadre_a")
    )
    assert response.status_code == 200, response.data


# ---- the binding code -----------------------------------------------------------------------


def test_cadre_makes_a_binding_code(app: Flask, client: FlaskClient, world: World) -> None:
    before = datetime.now().astimezone()

    response = binding_token(client, world, world.spouse_x)

    assert response.status_code == 201
    body = response.get_json()
    token = body["token"]
    assert token and len(token) < 80  # short enough for a sharp small QR
    assert body["url"] == app.config["PUBLIC_BASE_URL"] + "/q/" + token
    assert body["url"] == "https://jf.example.gov.cn/q/" + token
    assert body["expires_at"].endswith("+08:00")
    expires_at = datetime.fromisoformat(body["expires_at"])
    hours = timedelta(hours=app.config["BINDING_TOKEN_HOURS"])
    assert before + hours - timedelta(minutes=1) <= expires_at
    assert expires_at <= datetime.now().astimezone() + hours + timedelta(minutes=1)
    png = base64.b64decode(body["qr_png_base64"], validate=True)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_township_admin_may_make_a_binding_code(client: FlaskClient, world: World) -> None:
    assert binding_token(client, world, world.spouse_x, by="tadmin1").status_code == 201


def test_cadre_of_another_village_gets_404(client: FlaskClient, world: World) -> None:
    response = binding_token(client, world, world.spouse_x, by="cadre_b")

    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_township_admin_of_another_township_gets_404(client: FlaskClient, world: World) -> None:
    assert binding_token(client, world, world.spouse_x, by="tadmin2").status_code == 404


# villager_x sees their own household's spouse_x, but may not make a code for them; a clerk
# does not even see the villager
@pytest.mark.parametrize(
    ("who", "status", "code"), [("villager_x", 403, "forbidden"), ("clerk_a", 404, "not_found")]
)
def test_villager_and_clerk_may_not_make_binding_codes(
    client: FlaskClient, world: World, who: str, status: int, code: str
) -> None:
    response = binding_token(client, world, world.spouse_x, by=who)

    assert response.status_code == status
    assert error_code(response) == code
    audit = client.get("/api/v1/audit", headers=world.headers("tadmin1")).get_json()
    assert audit["total"] == 0


def test_unknown_villager_is_404(client: FlaskClient, world: World) -> None:
    assert binding_token(client, world, 999_999).status_code == 404


def test_binding_code_is_audited(client: FlaskClient, world: World) -> None:
    assert binding_token(client, world, world.spouse_x).status_code == 201

    response = client.get("/api/v1/audit", headers=world.headers("tadmin1"))

    assert response.status_code == 200
    items = [e for e in response.get_json()["items"] if e["action"] == "binding_token.create"]
    assert len(items) == 1
    [entry] = items
    assert entry["actor_id"] == world.cadre_a
    assert entry["village_id"] == world.village_a
    assert entry["township_id"] == world.township_1
    assert entry["object_type"] == "binding_tokens"
    assert entry["after"]["villager_id"] == world.spouse_x
    # a township admin elsewhere does not see it; a cadre may not read the audit at all
    other = client.get("/api/v1/audit", headers=world.headers("tadmin2")).get_json()
    assert all(e["action"] != "binding_token.create" for e in other["items"])
    assert client.get("/api/v1/audit", headers=world.headers("cadre_a")).status_code == 403


# ---- binding with the code ------------------------------------------------------------------


def test_bind_with_code(client: FlaskClient, world: World) -> None:
    token = new_token(client, world, world.spouse_x)
    headers = world.headers("unbound")
    assert_unbound(client, headers)

    response = client.post(BIND, json={"token": token}, headers=headers)

    assert response.status_code == 200
    body = response.get_json()
    assert body["villager"]["id"] == world.spouse_x
    assert body["household"]["id"] == world.household_x
    assert body["scope"]["household_id"] == world.household_x
    after = me(client, headers)
    assert after["user"]["id"] == world.unbound
    assert after["user"]["villager_id"] == world.spouse_x
    assert after["role"] == "villager"
    assert after["villager"]["id"] == world.spouse_x
    assert after["villager"]["name"] == "配偶x"
    assert after["household"]["id"] == world.household_x
    assert after["scope"]["household_id"] == world.household_x
    assert after["scope"]["village_id"] == world.village_a
    # the cadre's roster now shows the member as bound
    villager = client.get(f"/api/v1/villagers/{world.spouse_x}", headers=world.headers("cadre_a"))
    assert villager.get_json()["bound"] is True


def test_code_works_once(app: Flask, client: FlaskClient, world: World) -> None:
    token = new_token(client, world, world.spouse_x)
    assert (
        client.post(BIND, json={"token": token}, headers=world.headers("unbound")).status_code
        == 200
    )
    other = fresh_wechat_user(app, client, "other")

    response = client.post(BIND, json={"token": token}, headers=other)

    assert response.status_code == 409
    assert error_code(response) == "binding_token_used"
    assert_unbound(client, other)
    assert me(client, world.headers("unbound"))["villager"]["id"] == world.spouse_x


def test_expired_code_is_refused(app: Flask, client: FlaskClient, world: World) -> None:
    token = new_token(client, world, world.spouse_x)
    later = datetime.now().astimezone() + timedelta(
        hours=app.config["BINDING_TOKEN_HOURS"], minutes=5
    )

    with time_machine.travel(later):
        headers = world.headers("unbound")
        response = client.post(BIND, json={"token": token}, headers=headers)
        assert response.status_code == 422
        assert error_code(response) == "qr_expired"
        assert_unbound(client, headers)

    # the refusal was the clock's alone: back in time the same code still binds
    assert (
        client.post(BIND, json={"token": token}, headers=world.headers("unbound")).status_code
        == 200
    )


def test_member_card_is_not_a_binding_code(client: FlaskClient, world: World) -> None:
    card = TokenCodec.from_secret(SECRET).encode(TokenType.MEMBER_CARD, (world.spouse_x,))
    headers = world.headers("unbound")

    response = client.post(BIND, json={"token": card}, headers=headers)

    assert response.status_code == 422
    assert error_code(response) == "qr_wrong_type"
    assert_unbound(client, headers)


@pytest.mark.parametrize("token", ["not-a-real-token", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "%%%"])
def test_random_string_is_qr_invalid(client: FlaskClient, world: World, token: str) -> None:
    headers = world.headers("unbound")

    response = client.post(BIND, json={"token": token}, headers=headers)

    assert response.status_code == 422
    assert error_code(response) == "qr_invalid"
    assert_unbound(client, headers)


def test_code_signed_with_another_key_is_invalid(client: FlaskClient, world: World) -> None:
    real = new_token(client, world, world.spouse_x)
    forged = TokenCodec.from_secret("another-secret-key-that-is-long-enough-000").encode(
        TokenType.BINDING, (1,), datetime.now().astimezone() + timedelta(hours=1)
    )
    headers = world.headers("unbound")

    response = client.post(BIND, json={"token": forged}, headers=headers)

    assert response.status_code == 422
    assert error_code(response) == "qr_invalid"
    assert client.post(BIND, json={"token": real}, headers=headers).status_code == 200


def test_user_already_bound_cannot_bind_another(client: FlaskClient, world: World) -> None:
    token = new_token(client, world, world.spouse_x)

    response = client.post(BIND, json={"token": token}, headers=world.headers("villager_x"))

    assert response.status_code == 409
    assert error_code(response) == "already_bound"
    assert me(client, world.headers("villager_x"))["villager"]["id"] == world.head_x
    # the refused attempt did not spend the code
    assert (
        client.post(BIND, json={"token": token}, headers=world.headers("unbound")).status_code
        == 200
    )


def test_villager_bound_to_another_wechat_with_code(client: FlaskClient, world: World) -> None:
    token = new_token(client, world, world.head_x)  # head_x is villager_x's already

    response = client.post(BIND, json={"token": token}, headers=world.headers("unbound"))

    assert response.status_code == 409
    assert error_code(response) == "villager_already_bound"
    assert_unbound(client, world.headers("unbound"))


@pytest.mark.parametrize(
    ("staff", "role"),
    [
        ("cadre_a", "cadre"),
        ("county", "county_admin"),
        ("clerk_a", "clerk"),
    ],
)
def test_staff_cannot_bind(client: FlaskClient, world: World, staff: str, role: str) -> None:
    token = new_token(client, world, world.spouse_x)

    response = client.post(BIND, json={"token": token}, headers=world.headers(staff))

    assert response.status_code == 403
    assert error_code(response) == "forbidden"
    body = me(client, world.headers(staff))
    assert body["role"] == role
    assert body["user"]["villager_id"] is None and body["villager"] is None
    assert (
        client.post(BIND, json={"token": token}, headers=world.headers("unbound")).status_code
        == 200
    )


def test_binding_needs_a_login(client: FlaskClient, world: World) -> None:
    token = new_token(client, world, world.spouse_x)

    response = client.post(BIND, json={"token": token})

    assert response.status_code == 401
    assert (
        client.post(BIND, json={"token": token}, headers=world.headers("unbound")).status_code
        == 200
    )


# ---- binding by roster name and phone -------------------------------------------------------


def test_bind_by_name_and_phone(client: FlaskClient, world: World) -> None:
    give_phone(client, world, world.spouse_x, "13912345678")
    headers = world.headers("unbound")

    response = client.post(
        BIND,
        json={"village_id": world.village_a, "name": "配偶x", "phone": "13912345678"},
        headers=headers,
    )

    assert response.status_code == 200
    assert response.get_json()["villager"]["id"] == world.spouse_x
    body = me(client, headers)
    assert body["villager"]["id"] == world.spouse_x
    assert body["household"]["id"] == world.household_x
    assert body["scope"]["household_id"] == world.household_x


@pytest.mark.parametrize(
    ("name", "phone", "village"),
    [
        ("配偶x", "13912345670", "village_a"),  # wrong phone
        ("配偶y", "13912345678", "village_a"),  # wrong name
        ("配偶x", "13912345678", "village_b"),  # right person, wrong village
    ],
)
def test_no_roster_match(
    client: FlaskClient, world: World, name: str, phone: str, village: str
) -> None:
    give_phone(client, world, world.spouse_x, "13912345678")
    headers = world.headers("unbound")

    response = client.post(
        BIND, json={"village_id": world.ids[village], "name": name, "phone": phone}, headers=headers
    )

    assert response.status_code == 422
    assert error_code(response) == "roster_no_match"
    assert_unbound(client, headers)


def test_villager_bound_to_another_wechat_by_phone(client: FlaskClient, world: World) -> None:
    # 户主x (phone 13800000000) is already villager_x's: answered as a pair not on the roster
    # (the cadre's binding code is the way for a villager whose entry someone else took)
    response = client.post(
        BIND,
        json={"village_id": world.village_a, "name": "户主x", "phone": "13800000000"},
        headers=world.headers("unbound"),
    )

    assert response.status_code == 422
    assert error_code(response) == "roster_no_match"
    assert_unbound(client, world.headers("unbound"))
    assert me(client, world.headers("villager_x"))["villager"]["id"] == world.head_x


def test_user_already_bound_cannot_bind_by_phone(client: FlaskClient, world: World) -> None:
    give_phone(client, world, world.spouse_x, "13912345678")

    response = client.post(
        BIND,
        json={"village_id": world.village_a, "name": "配偶x", "phone": "13912345678"},
        headers=world.headers("villager_x"),
    )

    assert response.status_code == 409
    assert error_code(response) == "already_bound"
    assert me(client, world.headers("villager_x"))["villager"]["id"] == world.head_x


def test_staff_cannot_bind_by_phone(client: FlaskClient, world: World) -> None:
    give_phone(client, world, world.spouse_x, "13912345678")

    response = client.post(
        BIND,
        json={"village_id": world.village_a, "name": "配偶x", "phone": "13912345678"},
        headers=world.headers("cadre_a"),
    )

    assert response.status_code == 403
    assert me(client, world.headers("cadre_a"))["villager"] is None


# ---- request shape --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        {"phone": "13912345678"},
        {"village_id": 1, "name": "配偶x", "phone": "13912345678"},
    ],
)
def test_token_and_roster_fields_together_is_422(
    client: FlaskClient, world: World, extra: dict[str, Any]
) -> None:
    token = new_token(client, world, world.spouse_x)
    headers = world.headers("unbound")

    response = client.post(BIND, json={"token": token} | extra, headers=headers)

    assert response.status_code == 422
    assert error_code(response) == "validation_error"
    assert_unbound(client, headers)


@pytest.mark.parametrize("body", [{}, {"village_id": 1, "name": "配偶x"}, {"phone": "139"}])
def test_incomplete_bind_request_is_422(
    client: FlaskClient, world: World, body: dict[str, Any]
) -> None:
    response = client.post(BIND, json=body, headers=world.headers("unbound"))

    assert response.status_code == 422
    assert error_code(response) == "validation_error"


def test_unknown_bind_field_is_named(client: FlaskClient, world: World) -> None:
    response = client.post(
        BIND, json={"token": "x", "villager_id": world.spouse_x}, headers=world.headers("unbound")
    )

    assert response.status_code == 422
    assert error_code(response) == "unknown_fields"
    assert response.get_json()["error"]["details"]["fields"] == ["villager_id"]


def test_binding_token_of_a_deactivated_villager_is_refused(
    client: FlaskClient, world: World
) -> None:
    cadre = world.headers("cadre_a")
    token = client.post(
        f"/api/v1/villagers/{world.spouse_x}/binding-token", headers=cadre
    ).get_json()["token"]
    assert (
        client.patch(
            f"/api/v1/villagers/{world.spouse_x}", json={"active": False}, headers=cadre
        ).status_code
        == 200
    )
    response = client.post(
        "/api/v1/auth/bind", json={"token": token}, headers=world.headers("unbound")
    )
    assert response.status_code == 404
    assert error_code(response) == "villager_inactive"


# ---- binding by name and phone without a village ----------------------------------------------


def _set_villager(app: Flask, villager_id: int, **values: Any) -> None:
    from backend.extensions import db
    from points.models import Villager

    with app.app_context():
        villager = db.session.get(Villager, villager_id)
        assert villager is not None
        for key, value in values.items():
            setattr(villager, key, value)
        db.session.commit()


def test_bind_without_village_finds_the_one_match_in_the_county(
    client: FlaskClient, world: World
) -> None:
    # An unbound villager has no village to pick: GET /villages shows them none.
    headers = world.headers("unbound")
    assert client.get("/api/v1/villages", headers=headers).get_json()["items"] == []
    give_phone(client, world, world.spouse_x, "13912345678")

    response = client.post(BIND, json={"name": "配偶x", "phone": "13912345678"}, headers=headers)

    assert response.status_code == 200, response.get_json()
    assert me(client, headers)["villager"]["id"] == world.spouse_x


def test_bind_without_village_answers_alike_unknown_ambiguous_or_bound(
    app: Flask, client: FlaskClient, world: World
) -> None:
    give_phone(client, world, world.spouse_x, "13912345678")
    # 配偶y of another village and township-mate gets the same name and phone: ambiguous
    _set_villager(app, world.spouse_y, name="配偶z", phone="13912345679")
    _set_villager(app, world.spouse_z, name="配偶z", phone="13912345679")
    _set_villager(app, world.head_z, name="停用者", phone="13912340000", active=False)
    headers = world.headers("unbound")
    answers = []
    for name, phone in [
        ("无此人", "13900000000"),  # unknown
        ("配偶z", "13912345679"),  # two villagers match
        ("户主x", "13800000000"),  # bound to villager_x's WeChat already
        ("停用者", "13912340000"),  # deactivated
    ]:
        response = client.post(BIND, json={"name": name, "phone": phone}, headers=headers)
        body = response.get_json()
        answers.append(
            (
                response.status_code,
                body["error"]["code"],
                body["error"]["message"],
                body["error"].get("details"),
            )
        )
    assert len(set(map(repr, answers))) == 1, answers
    assert answers[0][:2] == (422, "roster_no_match")
    assert_unbound(client, headers)
    assert me(client, world.headers("villager_x"))["villager"]["id"] == world.head_x


def test_bind_with_village_answers_alike_unknown_or_bound(
    client: FlaskClient, world: World
) -> None:
    # Village ids are small numbers anyone can try: naming one must not bring back an answer
    # that tells a villager bound to another WeChat from a pair not on the roster.
    answers = []
    for name, phone in [("无此人", "13900000000"), ("户主x", "13800000000")]:
        response = client.post(
            BIND,
            json={"village_id": world.village_a, "name": name, "phone": phone},
            headers=world.headers("unbound"),
        )
        body = response.get_json()
        answers.append((response.status_code, body["error"]["code"], body["error"]["message"]))
    assert answers[0] == answers[1], answers
    assert answers[0][:2] == (422, "roster_no_match")


def test_a_bound_or_staff_account_learns_nothing_of_the_roster(
    app: Flask, client: FlaskClient, world: World
) -> None:
    """Who asks is decided before the roster is read: a WeChat already bound, or a staff
    account, gets one answer whether the pair is on the roster, bound or unknown."""
    give_phone(client, world, world.spouse_x, "13912345678")
    pairs = [
        ("无此人", "13900000000"),  # unknown
        ("配偶x", "13912345678"),  # on the roster, not bound
        ("户主y", "13800000001"),
    ]  # bound to villager_y's WeChat
    _set_villager(app, world.head_y, phone="13800000001")
    for who, expected in (("villager_x", (409, "already_bound")), ("cadre_b", (403, "forbidden"))):
        for body in ({}, {"village_id": world.village_a}):
            answers = set()
            for name, phone in pairs:
                response = client.post(
                    BIND, json={**body, "name": name, "phone": phone}, headers=world.headers(who)
                )
                answers.add((response.status_code, error_code(response)))
            assert answers == {expected}, (who, body, answers)
    # A bound villager naming themselves is answered as before: bound, nothing changes.
    mine = client.post(
        BIND, json={"name": "户主x", "phone": "13800000000"}, headers=world.headers("villager_x")
    )
    assert mine.status_code == 200, mine.get_json()
