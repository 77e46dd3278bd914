"""A deactivated villager (迁出、去世: `PATCH /villagers/{id} {"active": false}`) keeps their
WeChat login and can still read the household's passbook, but earns, reports, objects and
orders no more: 403 `villager_inactive`, with nothing written. Staff cannot give them points
either (proxy check-in, awards): 409 `villager_inactive`. Reactivating them undoes it."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select

from backend.caller import token_settings
from backend.extensions import db
from points import sessions
from points.models import CheckIn, Claim, Objection, Redemption
from points.scope import ACTIONS, ACTIVE_VILLAGER_ACTIONS, VILLAGER
from tests.factories import (
    World,
    add_household,
    add_reward,
    fund,
    member_token,
    object_to,
    open_activity,
    order,
    self_report,
)
from tests.support.reads import account_of, count, entries_of, error_code

API = "/api/v1"


def set_active(client: FlaskClient, world: World, villager_id: int, active: bool) -> None:
    response = client.patch(
        f"{API}/villagers/{villager_id}", json={"active": active}, headers=world.headers("cadre_a")
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["active"] is active


def assert_refused_as_inactive(response: Any) -> None:
    assert response.status_code == 403, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "villager_inactive"
    assert "停用" in error["message"]


# ---- the villager's own WeChat session ------------------------------------------------------


def test_a_deactivated_villager_cannot_check_in_even_with_a_session_started_before(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    _, code = open_activity(client, world, items["GOV-ASSEMBLY"])
    villager = world.headers("villager_x")  # logged in while still on the roster
    set_active(client, world, world.head_x, False)
    response = client.post(f"{API}/checkins", json={"token": code}, headers=villager)
    assert_refused_as_inactive(response)
    assert (count(app, CheckIn), count(app, Claim)) == (0, 0)

    set_active(client, world, world.head_x, True)
    again = client.post(f"{API}/checkins", json={"token": code}, headers=villager)
    assert again.status_code == 201, again.get_json()


def test_a_deactivated_villager_cannot_check_out(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    _, code = open_activity(client, world, items["PUB-VOLUNTEER"])
    checked = client.post(
        f"{API}/checkins", json={"token": code}, headers=world.headers("villager_x")
    )
    assert checked.status_code == 201, checked.get_json()
    set_active(client, world, world.head_x, False)
    response = client.post(
        f"{API}/checkins/{checked.get_json()['checkin_id']}/checkout",
        headers=world.headers("villager_x"),
    )
    assert_refused_as_inactive(response)
    with app.app_context():
        assert db.session.scalar(select(CheckIn.checked_out_at)) is None


def test_a_deactivated_villager_cannot_self_report(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    set_active(client, world, world.head_x, False)
    response = self_report(client, world, "villager_x", items["PUB-VOLUNTEER"], 2)
    assert_refused_as_inactive(response)
    assert count(app, Claim) == 0


def test_a_deactivated_villager_cannot_object(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    neighbour = add_household(app, world.village_a, "李家", "李四")
    awarded = client.post(
        f"{API}/awards",
        headers=world.headers("cadre_a"),
        json={
            "rule_item_id": items["ENV-YARD"],
            "targets": [{"household_id": neighbour["household"]}],
        },
    )
    assert awarded.status_code == 201, awarded.get_json()
    claim = awarded.get_json()[0]
    assert claim["status"] == "in_notice"
    set_active(client, world, world.head_x, False)
    response = object_to(client, world, "villager_x", claim["id"])
    assert_refused_as_inactive(response)
    assert count(app, Objection) == 0
    with app.app_context():
        assert db.session.scalar(select(Claim.status)) == "in_notice"


def test_a_deactivated_villager_cannot_order(app: Flask, client: FlaskClient, world: World) -> None:
    soap = add_reward(app, world.shop_a, "香皂", 5, 50)
    fund(app, world.household_x, 100)
    set_active(client, world, world.head_x, False)
    response = order(client, world.headers("villager_x"), world.shop_a, [(soap, 2)])
    assert_refused_as_inactive(response)
    assert count(app, Redemption) == 0
    assert account_of(app, world.household_x)["available"] == 100


def test_a_deactivated_villager_cannot_renew_the_household_plate(
    client: FlaskClient, world: World
) -> None:
    set_active(client, world, world.head_x, False)
    response = client.post(
        f"{API}/households/{world.household_x}/plate/renew", headers=world.headers("villager_x")
    )
    assert_refused_as_inactive(response)


def test_a_deactivated_villager_still_reads_the_passbook(
    app: Flask, client: FlaskClient, world: World
) -> None:
    fund(app, world.household_x, 30)
    set_active(client, world, world.head_x, False)
    headers = world.headers("villager_x")
    account = client.get(f"{API}/me/account", headers=headers)
    passbook = client.get(f"{API}/me/ledger", headers=headers)
    assert account.status_code == 200, account.get_json()
    assert account.get_json()["available"] == 30
    assert passbook.status_code == 200, passbook.get_json()
    assert [e["amount"] for e in passbook.get_json()["items"]] == [30]
    assert client.get(f"{API}/me", headers=headers).status_code == 200


def test_only_villager_actions_are_held_back() -> None:
    # Staff actions are taken by staff in their own right, never through a villager's
    # binding, so the list holds villager actions only.
    assert all(VILLAGER in ACTIONS[action] for action in ACTIVE_VILLAGER_ACTIONS)


def test_authentication_reads_whether_the_villager_is_active_in_its_one_query(
    app: Flask, client: FlaskClient, world: World
) -> None:
    set_active(client, world, world.head_x, False)
    pair = world.tokens("villager_x")
    with app.app_context():
        statements: list[str] = []
        engine = db.engine

        def seen(*args: Any) -> None:
            statements.append(args[2])

        event.listen(engine, "before_cursor_execute", seen)
        try:
            actor, _ = sessions.authenticate(db.session, token_settings(), pair.access_token)
        finally:
            event.remove(engine, "before_cursor_execute", seen)
            db.session.rollback()
    assert actor.villager_active is False and actor.household_id == world.household_x
    # One SELECT, as before (SQLite also sends the BEGIN of the transaction).
    assert [s.split()[0] for s in statements if not s.startswith("BEGIN")] == ["SELECT"]
    assert "villagers.active" in statements[-1]


# ---- staff cannot give a deactivated villager points ----------------------------------------


def test_proxy_check_in_of_a_deactivated_villagers_card_is_refused(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    activity_id, _ = open_activity(client, world, items["GOV-ASSEMBLY"])
    set_active(client, world, world.spouse_x, False)
    response = client.post(
        f"{API}/activities/{activity_id}/proxy-checkins",
        json={"member_token": member_token(app, world.spouse_x)},
        headers=world.headers("cadre_a"),
    )
    assert response.status_code == 409, response.get_json()
    assert error_code(response) == "villager_inactive"
    assert response.get_json()["error"]["details"] == {"villager_id": world.spouse_x}
    assert (count(app, CheckIn), count(app, Claim)) == (0, 0)


def test_an_award_naming_a_deactivated_villager_is_refused_whole(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    set_active(client, world, world.spouse_x, False)
    response = client.post(
        f"{API}/awards",
        headers=world.headers("cadre_a"),
        json={
            "rule_item_id": items["PUB-VOLUNTEER"],
            "units": 2,
            "targets": [{"villager_id": world.head_x}, {"villager_id": world.spouse_x}],
        },
    )
    assert response.status_code == 409, response.get_json()
    assert error_code(response) == "villager_inactive"
    assert count(app, Claim) == 0
    assert entries_of(app, world.household_x) == []
    # The dry run before it says the same.
    preview = client.post(
        f"{API}/rules/evaluate",
        headers=world.headers("cadre_a"),
        json={"item_id": items["PUB-VOLUNTEER"], "villager_id": world.spouse_x, "units": 2},
    )
    assert preview.status_code == 409 and error_code(preview) == "villager_inactive"
