"""The review rules on every path that decides points, beyond awards and approvals: a linked
cadre rejecting, proxy-checking-in or checking out for their own household, one cadre
lifting what two imposed, a linked admin withdrawing their household's veto, and a linked
cadre's household privacy, which is the villagers' own choice."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from backend.extensions import db
from points.models import Claim
from tests.factories import (
    World,
    add_cadre,
    approve,
    link_staff_to_villager,
    member_token,
    open_activity,
    post_due,
    self_report,
    set_policy,
    upload_photo,
)
from tests.support.clock import frozen, local
from tests.support.reads import error_code

API = "/api/v1"
APRIL_10 = local(2026, 4, 10)


def claim_status(app: Flask, claim_id: int) -> str:
    with app.app_context():
        return db.session.scalar(select(Claim.status).where(Claim.id == claim_id))


def award_to_x(client: FlaskClient, world: World, item_id: int, **extra: Any) -> int:
    photo = upload_photo(client, world.headers("cadre_a"))
    response = client.post(
        f"{API}/awards",
        json={
            "rule_item_id": item_id,
            "note": "核实属实",
            "evidence": [photo],
            "targets": [{"household_id": world.household_x}],
            **extra,
        },
        headers=world.headers("cadre_a"),
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()[0]["id"]


def withdraw(client: FlaskClient, world: World, user: str | int, claim_id: int) -> Any:
    return client.post(
        f"{API}/claims/{claim_id}/withdraw",
        json={"reason": "录入有误"},
        headers=world.headers(user),
    )


def test_a_linked_cadre_cannot_reject_their_households_claim(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    link_staff_to_villager(app, world.cadre_a, world.spouse_x)
    reported = self_report(client, world, "villager_x", items["PUB-VOLUNTEER"], 2)
    assert reported.status_code == 201, reported.get_json()
    claim_id = reported.get_json()["id"]
    refused = client.post(
        f"{API}/claims/{claim_id}/reject",
        json={"reason": "不符合"},
        headers=world.headers("cadre_a"),
    )
    assert refused.status_code == 403 and error_code(refused) == "self_approval"
    assert claim_status(app, claim_id) == "pending"


def test_one_cadre_cannot_withdraw_what_two_imposed(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    second = add_cadre(app, world, "cadre_a2")
    # A veto in notice, imposed by two cadres: only the township lifts it.
    veto = award_to_x(client, world, items["CIV-LAVISH"])
    assert approve(client, world, second, veto).get_json()["status"] == "in_notice"
    for cadre in ("cadre_a", second):
        refused = withdraw(client, world, cadre, veto)
        assert refused.status_code == 403, refused.get_json()
        assert error_code(refused) == "needs_township_withdrawal"
    assert claim_status(app, veto) == "in_notice"
    lifted = withdraw(client, world, "tadmin1", veto)
    assert lifted.status_code == 200, lifted.get_json()
    assert lifted.get_json()["status"] == "withdrawn"

    # A deduction at the two-cadre threshold likewise; one below it a cadre withdraws.
    set_policy(client, world, two_cadre_threshold=2)
    heavy = award_to_x(client, world, items["ENV-CLUTTER"], units=3)
    assert approve(client, world, second, heavy).get_json()["status"] == "in_notice"
    refused = withdraw(client, world, "cadre_a", heavy)
    assert refused.status_code == 403
    assert error_code(refused) == "needs_township_withdrawal"
    assert claim_status(app, heavy) == "in_notice"
    light = award_to_x(client, world, items["ENV-CLUTTER"], units=1)
    assert claim_status(app, light) == "in_notice"
    assert withdraw(client, world, "cadre_a", light).status_code == 200
    assert claim_status(app, light) == "withdrawn"


def test_a_linked_admin_cannot_withdraw_their_households_veto(
    app: Flask, client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> None:
    second = add_cadre(app, world, "cadre_a2")
    with frozen(APRIL_10):
        veto = award_to_x(client, world, items["CIV-LAVISH"])
        assert approve(client, world, second, veto).status_code == 200
    with frozen(APRIL_10 + timedelta(days=30)):
        post_due(runner)
    assert claim_status(app, veto) == "posted"
    link_staff_to_villager(app, world.tadmin1, world.head_x)
    refused = client.post(
        f"{API}/claims/{veto}/veto-withdrawal",
        json={"reason": "申诉成立"},
        headers=world.headers("tadmin1"),
    )
    assert refused.status_code == 403 and error_code(refused) == "self_approval"
    assert (
        client.post(
            f"{API}/claims/{veto}/veto-withdrawal",
            json={"reason": "申诉成立"},
            headers=world.headers("county"),
        ).status_code
        == 200
    )


def test_a_linked_cadres_proxy_check_in_of_their_household_waits_for_review(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    set_policy(client, world, notice_days=0)
    activity, _ = open_activity(client, world, items["GOV-ASSEMBLY"])
    path = f"{API}/activities/{activity}/proxy-checkins"
    # Unlinked, the scan approves (and with no notice days, posts) at once...
    neighbour = client.post(
        path,
        json={"member_token": member_token(app, world.head_x)},
        headers=world.headers("cadre_a"),
    )
    assert neighbour.status_code == 201, neighbour.get_json()
    assert neighbour.get_json()["status"] == "posted"
    # ...but a cadre's own household waits for another cadre.
    link_staff_to_villager(app, world.cadre_a, world.head_x)
    own = client.post(
        path,
        json={"member_token": member_token(app, world.spouse_x)},
        headers=world.headers("cadre_a"),
    )
    assert own.status_code == 201, own.get_json()
    assert own.get_json()["status"] == "pending"
    assert claim_status(app, own.get_json()["claim_id"]) == "pending"


def test_staff_cannot_check_out_a_deactivated_villager(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    _, code = open_activity(client, world, items["PUB-VOLUNTEER"])
    checked = client.post(
        f"{API}/checkins", json={"token": code}, headers=world.headers("villager_x")
    )
    assert checked.status_code == 201, checked.get_json()
    deactivated = client.patch(
        f"{API}/villagers/{world.head_x}", json={"active": False}, headers=world.headers("cadre_a")
    )
    assert deactivated.status_code == 200
    response = client.post(
        f"{API}/checkins/{checked.get_json()['checkin_id']}/checkout",
        headers=world.headers("cadre_a"),
    )
    assert response.status_code == 409 and error_code(response) == "villager_inactive"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Claim)) == 0


def test_household_privacy_is_the_villagers_own_choice(
    app: Flask, client: FlaskClient, world: World
) -> None:
    link_staff_to_villager(app, world.cadre_a, world.head_x)
    response = client.put(
        f"{API}/me/board-privacy",
        json={"public_board_opt_out": True},
        headers=world.headers("cadre_a"),
    )
    assert response.status_code == 403 and error_code(response) == "villager_only"
    assert (
        client.put(
            f"{API}/me/board-privacy",
            json={"public_board_opt_out": True},
            headers=world.headers("villager_x"),
        ).status_code
        == 200
    )
