"""The 6-digit pickup number (取货号) beside the pickup QR: the clerk types it when a cracked
screen will not scan. One number per open order of a shop; only that shop's clerk may use it,
only while the order is open, and a few tries a minute (a number can be guessed)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from backend.extensions import db
from points.models import Redemption, User, Villager
from points.shop import pickup_codes
from tests.factories import World, add_reward, add_shop_b, bound_villagers, fund, order
from tests.support.clock import frozen, local
from tests.support.concurrency import assert_no_server_errors, on_postgres, post_together
from tests.support.reads import account_of, error_code

API = "/api/v1"


def _pickup(client: FlaskClient, headers: dict[str, str], code: str, **extra: str) -> Any:
    return client.post(
        f"{API}/redemptions/pickup-code", headers={**headers, **extra}, json={"pickup_code": code}
    )


def _placed(app: Flask, client: FlaskClient, world: World) -> dict[str, Any]:
    rice = add_reward(app, world.shop_a, "大米", 10, 50)
    fund(app, world.household_x, 100)
    response = order(client, world.headers("villager_x"), world.shop_a, [(rice, 1)])
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_the_household_sees_a_six_digit_number_and_the_clerk_types_it(
    app: Flask, client: FlaskClient, world: World
) -> None:
    placed = _placed(app, client, world)
    code = placed["pickup_code"]
    assert len(code) == 6 and code.isdigit()
    again = client.get(
        f"{API}/redemptions/{placed['id']}", headers=world.headers("villager_x")
    ).get_json()
    assert again["pickup_code"] == code
    # Only the household holds it: a clerk who could read it could pick up alone.
    assert (
        client.get(
            f"{API}/redemptions/{placed['id']}", headers=world.headers("clerk_a")
        ).get_json()["pickup_code"]
        is None
    )

    done = _pickup(client, world.headers("clerk_a"), code)
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["status"] == "fulfilled"
    assert done.get_json()["pickup_code"] is None
    assert account_of(app, world.household_x)["held"] == 0
    # Once picked up the number names no open order.
    twice = _pickup(client, world.headers("clerk_a"), code)
    assert twice.status_code == 404 and error_code(twice) == "pickup_code_not_found"


def test_only_a_clerk_of_the_orders_shop_may_type_it(
    app: Flask, client: FlaskClient, world: World
) -> None:
    placed = _placed(app, client, world)
    shop_b = add_shop_b(app, world)
    other = _pickup(client, world.headers(shop_b["clerk"]), placed["pickup_code"])
    assert other.status_code == 404 and error_code(other) == "pickup_code_not_found"
    for who in ("villager_x", "cadre_a", "tadmin1"):
        assert _pickup(client, world.headers(who), placed["pickup_code"]).status_code == 403
    assert account_of(app, world.household_x)["held"] == 10


def test_cancelled_and_expired_orders_do_not_answer_to_their_number(
    app: Flask, client: FlaskClient, world: World
) -> None:
    rice = add_reward(app, world.shop_a, "大米", 10, 50)
    fund(app, world.household_x, 100)
    with frozen(local(2026, 5, 10, 9)):
        first = order(client, world.headers("villager_x"), world.shop_a, [(rice, 1)]).get_json()
        second = order(client, world.headers("villager_x"), world.shop_a, [(rice, 1)]).get_json()
        assert first["pickup_code"] != second["pickup_code"]
        client.post(
            f"{API}/redemptions/{first['id']}/cancel", headers=world.headers("villager_x"), json={}
        )
        cancelled = _pickup(client, world.headers("clerk_a"), first["pickup_code"])
        assert error_code(cancelled) == "pickup_code_not_found"
    with frozen(local(2026, 5, 13, 10)):  # past the 72-hour hold, before the expiry run
        late = _pickup(client, world.headers("clerk_a"), second["pickup_code"])
    assert late.status_code == 409 and error_code(late) == "redemption_expired"
    assert account_of(app, world.household_x)["held"] == 10


@pytest.mark.parametrize("code", ["12345", "1234567", "abcdef", "12 456", 123456, None])
def test_a_malformed_number_is_refused(client: FlaskClient, world: World, code: Any) -> None:
    response = client.post(
        f"{API}/redemptions/pickup-code",
        headers=world.headers("clerk_a"),
        json={"pickup_code": code},
    )
    assert response.status_code == 422, response.get_json()


def test_typing_numbers_is_rate_limited_per_clerk(
    app: Flask, client: FlaskClient, world: World
) -> None:
    placed = _placed(app, client, world)
    saved = app.config["PICKUP_CODE_RATE_LIMIT"]
    app.config["PICKUP_CODE_RATE_LIMIT"] = "3 per minute"
    try:
        wrong = "000000" if placed["pickup_code"] != "000000" else "000001"
        for _ in range(3):
            assert _pickup(client, world.headers("clerk_a"), wrong).status_code == 404
        blocked = _pickup(client, world.headers("clerk_a"), placed["pickup_code"])
        assert blocked.status_code == 429 and error_code(blocked) == "rate_limited"
    finally:
        app.config["PICKUP_CODE_RATE_LIMIT"] = saved
    assert account_of(app, world.household_x)["held"] == 10


def test_a_number_drawn_twice_is_drawn_again(
    app: Flask, client: FlaskClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unique index, not luck, keeps two open orders of a shop from sharing a number: a
    draw that collides rolls back to its savepoint and draws again."""
    rice = add_reward(app, world.shop_a, "大米", 10, 50)
    fund(app, world.household_x, 100)
    draws = iter([123456, 123456, 654321])
    monkeypatch.setattr(pickup_codes.secrets, "randbelow", lambda _: next(draws))
    first = order(client, world.headers("villager_x"), world.shop_a, [(rice, 1)]).get_json()
    second = order(client, world.headers("villager_x"), world.shop_a, [(rice, 1)]).get_json()
    assert (first["pickup_code"], second["pickup_code"]) == ("123456", "654321")
    assert account_of(app, world.household_x)["held"] == 20


def test_a_shop_whose_numbers_keep_colliding_refuses_cleanly(
    app: Flask, client: FlaskClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    rice = add_reward(app, world.shop_a, "大米", 10, 50)
    fund(app, world.household_x, 100)
    monkeypatch.setattr(pickup_codes.secrets, "randbelow", lambda _: 777)
    assert (
        order(client, world.headers("villager_x"), world.shop_a, [(rice, 1)]).get_json()[
            "pickup_code"
        ]
        == "000777"
    )
    refused = order(client, world.headers("villager_x"), world.shop_a, [(rice, 1)])
    assert refused.status_code == 409 and error_code(refused) == "pickup_code_busy"
    # Refused as a whole: no second hold, no second order.
    assert account_of(app, world.household_x)["held"] == 10
    with app.app_context():
        assert len(db.session.scalars(select(Redemption)).all()) == 1


@on_postgres
def test_concurrent_orders_of_one_shop_never_share_a_number(
    app: Flask, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many orders at once, each household drawing from only four numbers: the index makes
    the losers draw again, so every open order still has its own."""
    villagers = bound_villagers(app, world.village_a, 4)
    rice = add_reward(app, world.shop_a, "大米", 10, 100)
    numbers = iter([1, 2, 3, 4] * 50)
    monkeypatch.setattr(pickup_codes.secrets, "randbelow", lambda _: next(numbers))
    with app.app_context():
        households = [
            db.session.get(Villager, db.session.get(User, user_id).villager_id).household_id
            for user_id in villagers
        ]  # type: ignore[union-attr]
    for household_id in households:
        fund(app, household_id, 100)
    headers = {user_id: world.headers(user_id) for user_id in villagers}
    body = {"shop_id": world.shop_a, "items": [{"reward_id": rice, "quantity": 1}]}
    replies = post_together(
        app, 4, f"{API}/redemptions", lambda i: headers[villagers[i]], lambda _: body
    )
    assert_no_server_errors(replies)
    assert Counter(r.status for r in replies) == {201: 4}, replies
    with app.app_context():
        codes = db.session.scalars(select(Redemption.pickup_code)).all()
    assert len(set(codes)) == 4


def test_orders_placed_before_numbers_have_none_and_keep_their_qr(
    app: Flask, client: FlaskClient, world: World
) -> None:
    placed = _placed(app, client, world)
    with app.app_context():
        db.session.get(Redemption, placed["id"]).pickup_code = None  # type: ignore[union-attr]
        db.session.commit()
    shown = client.get(
        f"{API}/redemptions/{placed['id']}", headers=world.headers("villager_x")
    ).get_json()
    assert shown["pickup_code"] is None and shown["pickup_token"]
