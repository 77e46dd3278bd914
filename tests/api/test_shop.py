"""The points supermarket (积分超市) through the API: shelves and stock, ordering (points and
stock reserved), the clerk's scan, cancel and expiry, counter redemption, and who may do
what. Settlement and the township report: test_settlement.py; races:
test_shop_concurrency.py."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from backend.caller import qr_codec
from backend.extensions import db
from points.demo import DEMO_PASSWORD
from points.models import (
    AuditEntry,
    LedgerEntry,
    Redemption,
    Reward,
    StockMovement,
    User,
)
from points.scope import Actor
from points.shop import redemption as redemptions
from points.tokens import TokenType
from tests.factories import (
    World,
    add_household,
    add_reward,
    add_shop_b,
    counter,
    fund,
    install_default_catalog,
    member_token,
    order,
    scan,
    set_policy,
    shelf,
)
from tests.support.clock import SHANGHAI, frozen, local
from tests.support.reads import account_of, entries_of, error_code, ledger_sum, stock_of

API = "/api/v1"


# ---- set-up helpers (each opens and closes its own app context) -----------------------------


def redemption_count(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Redemption)) or 0


# ---- shelves and stock ----------------------------------------------------------------------


def test_clerk_stocks_the_shelf_and_villagers_see_what_is_on_sale(
    client: FlaskClient, world: World
) -> None:
    clerk = world.headers("clerk_a")
    created = client.post(
        f"{API}/shops/{world.shop_a}/rewards",
        headers=clerk,
        json={"name": "洗衣粉", "points": 20, "stock": 30},
    )
    assert created.status_code == 201, created.get_json()
    detergent = created.get_json()
    assert (detergent["points"], detergent["stock"], detergent["active"]) == (20, 30, True)
    hidden = client.post(
        f"{API}/shops/{world.shop_a}/rewards",
        headers=clerk,
        json={"name": "过期酱油", "points": 8, "stock": 3, "active": False},
    )
    assert hidden.status_code == 201

    mine = client.get(
        f"{API}/shops/{world.shop_a}/rewards", headers=world.headers("villager_x")
    ).get_json()
    assert [r["name"] for r in mine["items"]] == ["洗衣粉"]
    staff = client.get(f"{API}/shops/{world.shop_a}/rewards", headers=clerk).get_json()
    assert {r["name"] for r in staff["items"]} == {"洗衣粉", "过期酱油"}
    # Village B's villager is not served by shop A: the shop does not exist for them.
    other = client.get(f"{API}/shops/{world.shop_a}/rewards", headers=world.headers("villager_y"))
    assert other.status_code == 404

    movements = client.get(
        f"{API}/rewards/{detergent['id']}/stock-movements", headers=clerk
    ).get_json()
    assert [
        (m["kind"], m["change"], m["stock_after"], m["created_by"]) for m in movements["items"]
    ] == [("initial", 30, 30, world.clerk_a)]


def test_who_may_keep_the_shelf(client: FlaskClient, world: World) -> None:
    body = {"name": "香皂", "points": 5, "stock": 10}
    url = f"{API}/shops/{world.shop_a}/rewards"
    assert client.post(url, headers=world.headers("cadre_a"), json=body).status_code == 403
    assert client.post(url, headers=world.headers("villager_x"), json=body).status_code == 403
    assert client.post(url, headers=world.headers("tadmin2"), json=body).status_code == 404
    shop_b = add_shop_b(world.app, world)
    assert (
        client.post(
            f"{API}/shops/{shop_b['shop']}/rewards", headers=world.headers("clerk_a"), json=body
        ).status_code
        == 404
    )
    assert client.post(url, headers=world.headers("tadmin1"), json=body).status_code == 201
    soap = client.get(url, headers=world.headers("clerk_a")).get_json()["items"][0]["id"]
    assert (
        client.patch(
            f"{API}/rewards/{soap}", headers=world.headers(shop_b["clerk"]), json={"points": 1}
        ).status_code
        == 404
    )
    assert (
        client.patch(
            f"{API}/rewards/{soap}", headers=world.headers("cadre_a"), json={"points": 1}
        ).status_code
        == 403
    )
    duplicate = client.post(url, headers=world.headers("clerk_a"), json=body)
    assert duplicate.status_code == 409 and error_code(duplicate) == "duplicate_name"


def test_price_changes_and_stock_only_moves_with_a_reason(
    app: Flask, client: FlaskClient, world: World
) -> None:
    soap = add_reward(app, world.shop_a, "香皂", 5, 10)
    clerk = world.headers("clerk_a")
    patched = client.patch(f"{API}/rewards/{soap}", headers=clerk, json={"points": 6})
    assert patched.status_code == 200 and patched.get_json()["points"] == 6
    # Stock is not a field one may simply overwrite.
    sneaky = client.patch(f"{API}/rewards/{soap}", headers=clerk, json={"stock": 999})
    assert sneaky.status_code == 422 and error_code(sneaky) == "unknown_fields"

    restock = client.post(
        f"{API}/rewards/{soap}/stock",
        headers=clerk,
        json={"kind": "restock", "change": 20, "reason": "供货商送货"},
    )
    assert restock.status_code == 201, restock.get_json()
    assert restock.get_json()["stock_after"] == 30
    fix = client.post(
        f"{API}/rewards/{soap}/stock",
        headers=world.headers("tadmin1"),
        json={"kind": "correction", "change": -4, "reason": "盘点少了 4 块"},
    )
    assert fix.status_code == 201 and fix.get_json()["stock_after"] == 26

    too_much = client.post(
        f"{API}/rewards/{soap}/stock",
        headers=clerk,
        json={"kind": "correction", "change": -27, "reason": "盘点"},
    )
    assert too_much.status_code == 409 and error_code(too_much) == "stock_negative"
    backwards = client.post(
        f"{API}/rewards/{soap}/stock",
        headers=clerk,
        json={"kind": "restock", "change": -1, "reason": "退货"},
    )
    assert backwards.status_code == 422 and error_code(backwards) == "invalid_change"
    no_reason = client.post(
        f"{API}/rewards/{soap}/stock", headers=clerk, json={"kind": "restock", "change": 1}
    )
    assert no_reason.status_code == 422
    cadre = client.post(
        f"{API}/rewards/{soap}/stock",
        headers=world.headers("cadre_a"),
        json={"kind": "restock", "change": 1, "reason": "x"},
    )
    assert cadre.status_code == 403
    assert stock_of(app, soap) == 26

    history = client.get(f"{API}/rewards/{soap}/stock-movements", headers=clerk).get_json()
    assert [
        (m["kind"], m["change"], m["stock_after"], m["reason"], m["created_by"])
        for m in history["items"]
    ] == [
        ("correction", -4, 26, "盘点少了 4 块", world.tadmin1),
        ("restock", 20, 30, "供货商送货", world.clerk_a),
    ]
    with app.app_context():
        actions = set(db.session.scalars(select(AuditEntry.action)))
    assert {"reward.update", "reward.restock", "reward.correction"} <= actions


# ---- ordering -------------------------------------------------------------------------------


def test_an_order_reserves_points_and_stock_without_spending_them(
    app: Flask, client: FlaskClient, world: World
) -> None:
    ids = shelf(app, world)
    with frozen(local(2026, 5, 10, 9)):
        response = order(
            client, world.headers("villager_x"), world.shop_a, [(ids["soap"], 2), (ids["rice"], 1)]
        )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["status"] == "reserved" and body["total_points"] == 60
    assert body["points"] == 60 and body["source"] == "order"
    # The default hold is 72 hours; times are shown in the village's offset.
    assert body["expires_at"] == "2026-05-13T09:00:00+08:00"
    assert body["pickup_url"] == f"https://jf.example.gov.cn/q/{body['pickup_token']}"
    assert [(line["name"], line["quantity"], line["points"]) for line in body["lines"]] == [
        ("香皂", 2, 10),
        ("大米 5kg", 1, 50),
    ]
    assert account_of(app, world.household_x)["available"] == 40
    assert account_of(app, world.household_x)["held"] == 60
    # Nothing is spent yet: the passbook shows only the earning.
    assert [e["kind"] for e in entries_of(app, world.household_x)] == ["earn"]
    assert stock_of(app, ids["soap"]) == 48 and stock_of(app, ids["rice"]) == 9

    mine = client.get(f"{API}/me/account", headers=world.headers("villager_x")).get_json()
    assert (mine["available"], mine["held"]) == (40, 60)
    png = client.get(
        f"{API}/redemptions/{body['id']}/pickup.png", headers=world.headers("villager_x")
    )
    assert png.status_code == 200 and png.data.startswith(b"\x89PNG")
    # The clerk sees the order but not its pickup code: only the household holds it.
    seen = client.get(f"{API}/redemptions/{body['id']}", headers=world.headers("clerk_a"))
    assert seen.status_code == 200 and seen.get_json()["pickup_token"] is None
    assert (
        client.get(
            f"{API}/redemptions/{body['id']}/pickup.png", headers=world.headers("clerk_a")
        ).status_code
        == 404
    )


def test_the_hold_time_is_configurable(app: Flask, client: FlaskClient, world: World) -> None:
    ids = shelf(app, world)
    app.config["REDEMPTION_HOLD_HOURS"] = 2
    try:
        with frozen(local(2026, 5, 10, 9)):
            body = order(
                client, world.headers("villager_x"), world.shop_a, [(ids["soap"], 1)]
            ).get_json()
    finally:
        app.config["REDEMPTION_HOLD_HOURS"] = 72
    assert body["expires_at"] == "2026-05-10T11:00:00+08:00"


def test_refused_orders_change_nothing(app: Flask, client: FlaskClient, world: World) -> None:
    ids = shelf(app, world)
    off = add_reward(app, world.shop_a, "旧毛巾", 3, 5, active=False)
    scarce = add_reward(app, world.shop_a, "针线包", 2, 1)
    shop_b = add_shop_b(app, world)
    elsewhere = add_reward(app, shop_b["shop"], "桃源香皂", 5, 5)
    villager = world.headers("villager_x")

    cases = [
        (order(client, villager, world.shop_a, [(ids["rice"], 3)]), 422, "insufficient_points"),
        (order(client, villager, world.shop_a, [(scarce, 2)]), 409, "out_of_stock"),
        (order(client, villager, world.shop_a, [(off, 1)]), 422, "reward_unavailable"),
        (order(client, villager, world.shop_a, [(elsewhere, 1)]), 422, "reward_unavailable"),
        (order(client, villager, world.shop_a, [(99999, 1)]), 422, "reward_unavailable"),
        # A shop that does not serve the household's village does not exist for it.
        (order(client, villager, shop_b["shop"], [(elsewhere, 1)]), 404, "not_found"),
        # The second line fails after the first was reserved: all of it rolls back.
        (
            order(client, villager, world.shop_a, [(ids["soap"], 2), (scarce, 2)]),
            409,
            "out_of_stock",
        ),
        (
            order(client, world.headers("clerk_a"), world.shop_a, [(ids["soap"], 1)]),
            403,
            "forbidden",
        ),
        (
            order(client, world.headers("unbound"), world.shop_a, [(ids["soap"], 1)]),
            403,
            "not_bound",
        ),
    ]
    for response, status, code in cases:
        assert (response.status_code, error_code(response)) == (status, code), response.get_json()
    short = cases[0][0].get_json()["error"]
    assert short["message"] == "积分不足：需要 150 分，可用 100 分"
    assert short["details"] == {"required": 150, "available": 100}

    bad = client.post(
        f"{API}/redemptions",
        headers=villager,
        json={"shop_id": world.shop_a, "items": [{"reward_id": ids["soap"], "quantity": 0}]},
    )
    assert bad.status_code == 422
    empty = client.post(
        f"{API}/redemptions", headers=villager, json={"shop_id": world.shop_a, "items": []}
    )
    assert empty.status_code == 422

    assert redemption_count(app) == 0
    assert account_of(app, world.household_x) == {
        "available": 100,
        "held": 0,
        "earned_total": 100,
        "entries": 1,
    }
    assert (stock_of(app, ids["soap"]), stock_of(app, scarce)) == (50, 1)


def test_the_same_reward_twice_in_one_order_is_one_line(
    app: Flask, client: FlaskClient, world: World
) -> None:
    ids = shelf(app, world)
    response = order(
        client, world.headers("villager_x"), world.shop_a, [(ids["soap"], 1), (ids["soap"], 2)]
    )
    assert response.status_code == 201
    assert [(line["name"], line["quantity"]) for line in response.get_json()["lines"]] == [
        ("香皂", 3)
    ]
    assert stock_of(app, ids["soap"]) == 47


def test_a_retried_order_reserves_once(app: Flask, client: FlaskClient, world: World) -> None:
    ids = shelf(app, world)
    villager = world.headers("villager_x")
    first = order(
        client, villager, world.shop_a, [(ids["rice"], 1)], **{"Idempotency-Key": "order-rice-1"}
    )
    again = order(
        client, villager, world.shop_a, [(ids["rice"], 1)], **{"Idempotency-Key": "order-rice-1"}
    )
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == first.get_json()["id"]
    assert redemption_count(app) == 1
    assert account_of(app, world.household_x)["held"] == 50
    assert stock_of(app, ids["rice"]) == 9


def test_minimum_points_per_redemption(app: Flask, client: FlaskClient, world: World) -> None:
    install_default_catalog(app, world.township_1)
    set_policy(client, world, min_redemption_points=10)
    ids = shelf(app, world)
    small = order(client, world.headers("villager_x"), world.shop_a, [(ids["soap"], 1)])
    assert small.status_code == 422 and error_code(small) == "below_minimum"
    assert small.get_json()["error"]["details"] == {"minimum": 10, "points": 5}
    enough = order(client, world.headers("villager_x"), world.shop_a, [(ids["soap"], 2)])
    assert enough.status_code == 201


def test_qualification_line_counts_the_last_twelve_months_of_score(
    app: Flask, client: FlaskClient, world: World
) -> None:
    """Policy: below the qualification line (default 60) over the last twelve months, no
    redemption. Spendable points alone are not enough, and old deeds age out."""
    soap = add_reward(app, world.shop_a, "香皂", 5, 50)
    now = local(2026, 5, 10)
    fund(app, world.household_x, 200, at=local(2025, 4, 20))  # thirteen months ago
    fund(app, world.household_x, 40, at=local(2025, 6, 3))  # eleven months ago
    with frozen(now):
        refused = order(client, world.headers("villager_x"), world.shop_a, [(soap, 1)])
    assert refused.status_code == 422 and error_code(refused) == "not_qualified"
    assert refused.get_json()["error"]["details"] == {"score": 40, "line": 60}
    # Deductions lower the score; spending does not.
    fund(app, world.household_x, 30, at=local(2026, 5, 1))
    fund(app, world.household_x, -5, at=local(2026, 5, 2), kind="deduct")
    with frozen(now):
        villager = world.headers("villager_x")
        placed = order(client, villager, world.shop_a, [(soap, 1)])
        assert placed.status_code == 201, placed.get_json()
        assert (
            scan(client, world.headers("clerk_a"), placed.get_json()["pickup_token"]).status_code
            == 200
        )
        assert order(client, villager, world.shop_a, [(soap, 1)]).status_code == 201

    install_default_catalog(app, world.township_1)
    set_policy(client, world, qualification_line=100)
    with frozen(now):
        assert (
            error_code(order(client, world.headers("villager_x"), world.shop_a, [(soap, 1)]))
            == "not_qualified"
        )
    set_policy(client, world, qualification_line=0)  # the line switched off
    with frozen(now):
        assert (
            order(client, world.headers("villager_x"), world.shop_a, [(soap, 1)]).status_code == 201
        )


# ---- the clerk's scan -----------------------------------------------------------------------


def test_scanning_a_pickup_code_twice_fulfils_once(
    app: Flask, client: FlaskClient, world: World
) -> None:
    ids = shelf(app, world)
    placed = order(
        client, world.headers("villager_x"), world.shop_a, [(ids["soap"], 2), (ids["rice"], 1)]
    ).get_json()
    clerk = world.headers("clerk_a")

    first = scan(client, clerk, placed["pickup_token"])
    assert first.status_code == 200, first.get_json()
    done = first.get_json()
    assert done["status"] == "fulfilled" and done["available_after"] == 40
    assert done["fulfilled_by"] == world.clerk_a and done["ledger_entry_id"] is not None
    assert done["pickup_token"] is None

    second = scan(client, clerk, placed["pickup_token"])
    assert second.status_code == 409 and error_code(second) == "already_fulfilled"

    entries = entries_of(app, world.household_x)
    assert [(e["kind"], e["amount"]) for e in entries] == [("earn", 100), ("redeem", -60)]
    assert entries[1]["note"] == f"清水村积分超市兑换 #{placed['id']}：香皂×2、大米 5kg×1"
    assert account_of(app, world.household_x)["available"] == 40
    assert account_of(app, world.household_x)["held"] == 0
    # Spending never lowers the score the boards rank.
    assert account_of(app, world.household_x)["earned_total"] == 100
    assert ledger_sum(app, world.household_x) == 40
    # The goods left the shelf once, at the order.
    assert stock_of(app, ids["soap"]) == 48

    passbook = client.get(f"{API}/me/ledger", headers=world.headers("villager_x")).get_json()
    assert passbook["items"][0]["kind"] == "redeem" and passbook["items"][0]["amount"] == -60
    with app.app_context():
        assert (
            db.session.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == "redemption.fulfil")
            )
            == 1
        )


def test_a_scan_retried_with_its_key_replays_the_answer(
    app: Flask, client: FlaskClient, world: World
) -> None:
    ids = shelf(app, world)
    placed = order(client, world.headers("villager_x"), world.shop_a, [(ids["soap"], 1)]).get_json()
    headers = {**world.headers("clerk_a"), "Idempotency-Key": "scan-1"}
    first = scan(client, headers, placed["pickup_token"])
    retry = scan(client, headers, placed["pickup_token"])
    assert first.status_code == retry.status_code == 200
    assert retry.get_json() == first.get_json()
    assert [e["kind"] for e in entries_of(app, world.household_x)] == ["earn", "redeem"]


def test_a_clerk_of_another_shop_cannot_scan_the_code(
    app: Flask, client: FlaskClient, world: World
) -> None:
    ids = shelf(app, world)
    shop_b = add_shop_b(app, world)
    placed = order(client, world.headers("villager_x"), world.shop_a, [(ids["rice"], 1)]).get_json()
    other = scan(client, world.headers(shop_b["clerk"]), placed["pickup_token"])
    assert other.status_code == 404
    assert (
        client.get(
            f"{API}/redemptions/{placed['id']}", headers=world.headers(shop_b["clerk"])
        ).status_code
        == 404
    )
    for who in ("villager_x", "cadre_a", "tadmin1"):
        response = scan(client, world.headers(who), placed["pickup_token"])
        assert response.status_code == 403, who
    assert account_of(app, world.household_x)["held"] == 50
    assert scan(client, world.headers("clerk_a"), placed["pickup_token"]).status_code == 200


def test_codes_that_are_not_pickup_codes_are_refused(
    app: Flask, client: FlaskClient, world: World
) -> None:
    clerk = world.headers("clerk_a")
    card = scan(client, clerk, member_token(app, world.head_x))
    assert card.status_code == 422 and error_code(card) == "qr_wrong_type"
    garbage = scan(client, clerk, "not-a-token")
    assert garbage.status_code == 422 and error_code(garbage) == "qr_invalid"


def test_a_cancelled_orders_code_is_refused_and_everything_goes_back(
    app: Flask, client: FlaskClient, world: World
) -> None:
    ids = shelf(app, world)
    villager = world.headers("villager_x")
    placed = order(client, villager, world.shop_a, [(ids["rice"], 1), (ids["soap"], 1)])
    redemption = placed.get_json()
    assert account_of(app, world.household_x)["held"] == 55

    # Not someone else's to cancel.
    assert (
        client.post(
            f"{API}/redemptions/{redemption['id']}/cancel",
            headers=world.headers("villager_y"),
            json={},
        ).status_code
        == 404
    )
    assert (
        client.post(
            f"{API}/redemptions/{redemption['id']}/cancel",
            headers=world.headers("cadre_b"),
            json={},
        ).status_code
        == 404
    )
    cancelled = client.post(
        f"{API}/redemptions/{redemption['id']}/cancel", headers=villager, json={"reason": "买多了"}
    )
    assert cancelled.status_code == 200, cancelled.get_json()
    assert cancelled.get_json()["status"] == "cancelled"
    assert cancelled.get_json()["void_reason"] == "买多了"
    assert account_of(app, world.household_x)["available"] == 100
    assert account_of(app, world.household_x)["held"] == 0
    assert (stock_of(app, ids["rice"]), stock_of(app, ids["soap"])) == (10, 50)

    refused = scan(client, world.headers("clerk_a"), redemption["pickup_token"])
    assert refused.status_code == 409 and error_code(refused) == "redemption_cancelled"
    again = client.post(f"{API}/redemptions/{redemption['id']}/cancel", headers=villager)
    assert again.status_code == 409 and error_code(again) == "redemption_cancelled"
    assert [e["kind"] for e in entries_of(app, world.household_x)] == ["earn"]


def test_staff_may_cancel_but_not_a_fulfilled_order(
    app: Flask, client: FlaskClient, world: World
) -> None:
    ids = shelf(app, world)
    villager = world.headers("villager_x")
    one = order(client, villager, world.shop_a, [(ids["soap"], 1)]).get_json()
    two = order(client, villager, world.shop_a, [(ids["soap"], 2)]).get_json()
    three = order(client, villager, world.shop_a, [(ids["soap"], 3)]).get_json()
    by_clerk = client.post(
        f"{API}/redemptions/{one['id']}/cancel",
        headers=world.headers("clerk_a"),
        json={"reason": "货已售罄"},
    )
    assert by_clerk.status_code == 200
    by_cadre = client.post(
        f"{API}/redemptions/{two['id']}/cancel", headers=world.headers("cadre_a"), json={}
    )
    assert by_cadre.status_code == 200 and by_cadre.get_json()["void_reason"] == "工作人员取消"
    assert scan(client, world.headers("clerk_a"), three["pickup_token"]).status_code == 200
    late = client.post(f"{API}/redemptions/{three['id']}/cancel", headers=villager, json={})
    assert late.status_code == 409 and error_code(late) == "already_fulfilled"
    assert account_of(app, world.household_x) == {
        "available": 85,
        "held": 0,
        "earned_total": 100,
        "entries": 2,
    }
    assert stock_of(app, ids["soap"]) == 47
    with app.app_context():
        cancels = db.session.scalars(
            select(AuditEntry.actor_id).where(AuditEntry.action == "redemption.cancel")
        ).all()
    assert sorted(cancels) == sorted([world.clerk_a, world.cadre_a])


def test_unclaimed_orders_expire_and_their_codes_are_refused(
    app: Flask, client: FlaskClient, runner: Any, world: World
) -> None:
    ids = shelf(app, world)
    with frozen(local(2026, 5, 1, 9)):
        old = order(
            client, world.headers("villager_x"), world.shop_a, [(ids["rice"], 1)]
        ).get_json()
    with frozen(local(2026, 5, 3, 9)):
        recent = order(
            client, world.headers("villager_x"), world.shop_a, [(ids["soap"], 2)]
        ).get_json()
    assert account_of(app, world.household_x)["held"] == 60

    with frozen(local(2026, 5, 4, 9, 1)):
        villager = world.headers("villager_x")
        # Past its time but not yet swept: still refused, and says why.
        early = scan(client, world.headers("clerk_a"), old["pickup_token"])
        assert early.status_code == 409 and error_code(early) == "redemption_expired"
        result = runner.invoke(args=["redemptions", "expire"])
        assert result.exit_code == 0 and "expired 1 redemption" in result.output
        again = runner.invoke(args=["redemptions", "expire"])
        assert "expired 0 redemption" in again.output
        late = scan(client, world.headers("clerk_a"), old["pickup_token"])
        assert late.status_code == 409 and error_code(late) == "redemption_expired"
        gone = client.get(f"{API}/redemptions/{old['id']}", headers=villager).get_json()
        assert gone["status"] == "expired" and gone["pickup_token"] is None
        # The other order is still within its 72 hours.
        assert scan(client, world.headers("clerk_a"), recent["pickup_token"]).status_code == 200

    assert account_of(app, world.household_x)["available"] == 90
    assert account_of(app, world.household_x)["held"] == 0
    assert stock_of(app, ids["rice"]) == 10
    assert [(e["kind"], e["amount"]) for e in entries_of(app, world.household_x)] == [
        ("earn", 100),
        ("redeem", -10),
    ]


# ---- counter redemption ---------------------------------------------------------------------


def test_counter_redemption_with_a_member_card(
    app: Flask, client: FlaskClient, world: World
) -> None:
    ids = shelf(app, world)
    card = member_token(app, world.spouse_x)  # the spouse has no phone
    response = counter(
        client, world.headers("clerk_a"), world.shop_a, card, [(ids["soap"], 2), (ids["rice"], 1)]
    )
    assert response.status_code == 201, response.get_json()
    receipt = response.get_json()
    assert receipt["status"] == "fulfilled" and receipt["source"] == "counter"
    assert receipt["member_name"] == "配偶x" and receipt["household_name"] == "x户"
    assert (receipt["total_points"], receipt["points"], receipt["cash_paid"]) == (60, 60, "0.00")
    assert receipt["available_after"] == 40 and receipt["expires_at"] is None
    entries = entries_of(app, world.household_x)
    assert [(e["kind"], e["amount"], e["member_id"]) for e in entries][-1] == (
        "redeem",
        -60,
        world.spouse_x,
    )
    assert account_of(app, world.household_x)["held"] == 0
    assert stock_of(app, ids["soap"]) == 48


def test_cash_pays_for_the_difference_on_the_receipt(
    app: Flask, client: FlaskClient, world: World
) -> None:
    install_default_catalog(app, world.township_1)
    set_policy(client, world, exchange_rate="0.5")  # a point is worth half a yuan here
    ids = shelf(app, world)
    fund(app, world.household_x, 20)  # 120 points; the oil (85) and rice (50) cost 135
    clerk = world.headers("clerk_a")
    card = member_token(app, world.head_x)
    items = [(ids["oil"], 1), (ids["rice"], 1)]

    short = counter(client, clerk, world.shop_a, card, items)
    assert short.status_code == 422 and error_code(short) == "insufficient_points"
    odd = counter(client, clerk, world.shop_a, card, items, cash="7.75")
    assert odd.status_code == 422 and error_code(odd) == "invalid_cash"
    everything = counter(client, clerk, world.shop_a, card, items, cash="67.50")
    assert everything.status_code == 422 and error_code(everything) == "invalid_cash"
    # An amount no till takes is refused with the request's shape (the document says so).
    negative = counter(client, clerk, world.shop_a, card, items, cash="-1")
    assert negative.status_code == 422 and error_code(negative) == "validation_error"
    assert set(negative.get_json()["error"]["details"]["fields"]) == {"cash_paid"}

    paid = counter(client, clerk, world.shop_a, card, items, cash=7.5)  # 15 points' worth
    assert paid.status_code == 201, paid.get_json()
    receipt = paid.get_json()
    assert (receipt["total_points"], receipt["points"]) == (135, 120)
    assert (receipt["cash_paid"], receipt["exchange_rate"], receipt["value"]) == (
        "7.50",
        "0.5",
        "60.00",
    )
    assert receipt["available_after"] == 0
    assert [e["amount"] for e in entries_of(app, world.household_x)][-1] == -120


def test_counter_refusals(app: Flask, client: FlaskClient, world: World) -> None:
    ids = shelf(app, world)
    clerk = world.headers("clerk_a")
    shop_b = add_shop_b(app, world)
    # Village B's villager at shop A: the shop does not serve their village.
    fund(app, world.household_y, 100)
    not_served = counter(
        client, clerk, world.shop_a, member_token(app, world.head_y), [(ids["soap"], 1)]
    )
    assert not_served.status_code == 422 and error_code(not_served) == "shop_not_serving"
    card = member_token(app, world.head_x)
    assert (
        counter(
            client, world.headers(shop_b["clerk"]), world.shop_a, card, [(ids["soap"], 1)]
        ).status_code
        == 404
    )
    assert (
        counter(
            client, world.headers("cadre_a"), world.shop_a, card, [(ids["soap"], 1)]
        ).status_code
        == 403
    )
    assert (
        counter(
            client, world.headers("villager_x"), world.shop_a, card, [(ids["soap"], 1)]
        ).status_code
        == 403
    )
    with app.app_context():
        pickup = qr_codec().encode(TokenType.PICKUP, (1,))
    wrong = counter(client, clerk, world.shop_a, pickup, [(ids["soap"], 1)])
    assert wrong.status_code == 422 and error_code(wrong) == "qr_wrong_type"
    unknown = counter(client, clerk, world.shop_a, member_token(app, 999999), [(ids["soap"], 1)])
    assert unknown.status_code == 404 and error_code(unknown) == "member_not_found"
    assert redemption_count(app) == 0
    assert account_of(app, world.household_x)["available"] == 100


# ---- who sees which orders ------------------------------------------------------------------


def test_each_sees_only_their_own_orders(app: Flask, client: FlaskClient, world: World) -> None:
    ids = shelf(app, world)
    neighbour = add_household(app, world.village_a, "邻居户", "王建国", openid="openid-n")
    fund(app, neighbour["household"], 100)
    shop_b = add_shop_b(app, world)
    fund(app, world.household_y, 100)
    b_soap = add_reward(app, shop_b["shop"], "香皂", 5, 10)
    mine = order(client, world.headers("villager_x"), world.shop_a, [(ids["soap"], 1)])
    theirs = order(client, world.headers(neighbour["user"]), world.shop_a, [(ids["soap"], 1)])
    in_b = order(client, world.headers("villager_y"), shop_b["shop"], [(b_soap, 1)])
    assert {mine.status_code, theirs.status_code, in_b.status_code} == {201}

    def listed(who: str | int, query: str = "") -> set[int]:
        response = client.get(f"{API}/redemptions{query}", headers=world.headers(who))
        assert response.status_code == 200
        return {r["id"] for r in response.get_json()["items"]}

    a, n, b = mine.get_json()["id"], theirs.get_json()["id"], in_b.get_json()["id"]
    assert listed("villager_x") == {a}
    assert listed(neighbour["user"]) == {n}
    assert listed("clerk_a") == {a, n}
    assert listed(shop_b["clerk"]) == {b}
    assert listed("cadre_a") == {a, n}
    assert listed("cadre_b") == {b}
    assert listed("tadmin1") == {a, n, b}
    assert listed("tadmin2") == set()
    assert listed("clerk_a", "?status=fulfilled") == set()
    assert listed("clerk_a", f"?household_id={world.household_x}") == {a}
    assert (
        client.get(f"{API}/redemptions/{n}", headers=world.headers("villager_x")).status_code == 404
    )


def test_the_supermarket_is_documented(client: FlaskClient) -> None:
    spec = client.get(f"{API}/openapi.json").get_json()
    paths = spec["paths"]
    order_op = paths["/api/v1/redemptions"]["post"]
    assert order_op["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/RedemptionOrderIn"
    )
    assert order_op["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/RedemptionOut"
    )
    assert any(p["name"] == "Idempotency-Key" for p in order_op["parameters"])
    settlement = paths["/api/v1/shops/{shop_id}/settlements"]["get"]["responses"]["200"]
    assert set(settlement["content"]) == {
        "application/json",
        "text/csv",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    }
    for path, method in [
        ("/api/v1/shops", "post"),
        ("/api/v1/shops/{shop_id}/rewards", "post"),
        ("/api/v1/redemptions/scan", "post"),
        ("/api/v1/redemptions/{redemption_id}/cancel", "post"),
        ("/api/v1/shops/{shop_id}/counter-redemptions", "post"),
        ("/api/v1/rewards/{reward_id}/stock", "post"),
        ("/api/v1/townships/{township_id}/points-report", "get"),
    ]:
        assert method in paths[path], path
    schemas = spec["components"]["schemas"]
    assert {"reward_id", "quantity"} <= set(schemas["RedemptionItemIn"]["properties"])
    assert "cash_paid" in schemas["CounterRedemptionIn"]["properties"]


def test_stock_movements_and_audit_name_the_clerk(
    app: Flask, client: FlaskClient, world: World
) -> None:
    soap = add_reward(app, world.shop_a, "香皂", 5, 0)
    response = client.post(
        f"{API}/rewards/{soap}/stock",
        headers=world.headers("clerk_a"),
        json={"kind": "restock", "change": 12, "reason": "镇里配送"},
    )
    assert response.status_code == 201
    with app.app_context():
        movement = db.session.scalars(select(StockMovement)).one()
        assert (movement.created_by, movement.reason, movement.stock_after) == (
            world.clerk_a,
            "镇里配送",
            12,
        )
        entry = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "reward.restock")
        ).one()
        assert entry.actor_id == world.clerk_a and entry.township_id == world.township_1
    # The township admin reads it in the audit log.
    audit = client.get(f"{API}/audit", headers=world.headers("tadmin1")).get_json()
    assert "reward.restock" in {row["action"] for row in audit["items"]}


def test_redemption_value_uses_the_rate_when_ordered(
    app: Flask, client: FlaskClient, world: World
) -> None:
    install_default_catalog(app, world.township_1)
    set_policy(client, world, exchange_rate="2")
    ids = shelf(app, world)
    placed = order(client, world.headers("villager_x"), world.shop_a, [(ids["soap"], 3)])
    set_policy(client, world, exchange_rate="1")
    done = scan(client, world.headers("clerk_a"), placed.get_json()["pickup_token"]).get_json()
    assert (done["exchange_rate"], done["value"]) == ("2", "30.00")
    with app.app_context():
        stored = db.session.get(Redemption, done["id"])
        assert stored is not None and stored.exchange_rate == Decimal("2")
        assert (
            db.session.scalar(
                select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "redeem")
            )
            == 1
        )


def test_expiry_is_measured_from_the_order(app: Flask, client: FlaskClient, world: World) -> None:
    ids = shelf(app, world)
    start = local(2026, 5, 1, 9)
    with frozen(start):
        placed = order(
            client, world.headers("villager_x"), world.shop_a, [(ids["soap"], 1)]
        ).get_json()
    with frozen(start + timedelta(hours=71, minutes=59)):
        assert scan(client, world.headers("clerk_a"), placed["pickup_token"]).status_code == 200


def test_the_demo_shops_have_a_shelf(app: Flask, runner: Any, client: FlaskClient) -> None:
    assert runner.invoke(args=["demo"]).exit_code == 0
    login = client.post(
        f"{API}/auth/login", json={"username": "clerk_qs", "password": DEMO_PASSWORD}
    ).get_json()
    headers = {"Authorization": f"Bearer {login['access_token']}"}
    shop_id = login["user"]["shop_id"]
    shelf_now = client.get(
        f"{API}/shops/{shop_id}/rewards?per_page=100", headers=headers
    ).get_json()
    prices = {r["name"]: r["points"] for r in shelf_now["items"]}
    assert len(prices) >= 10 and all(r["stock"] > 0 for r in shelf_now["items"])
    assert (prices["香皂"], prices["洗衣粉 1kg"], prices["玉米油 5L"]) == (5, 20, 85)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Reward)) == 2 * len(prices)
        assert db.session.scalar(select(func.count()).select_from(StockMovement)) == 2 * len(prices)


def test_an_order_priced_before_a_price_change_is_refused(app: Flask, world: World) -> None:
    """The price is read, then the stock taken on condition that the price still holds: a
    clerk repricing in between makes the order fail rather than sell at the old price."""
    soap = add_reward(app, world.shop_a, "香皂", 5, 10)
    fund(app, world.household_x, 100)
    with app.app_context():
        actor = Actor.of(db.session, db.session.get(User, world.villager_x))
        stale = db.session.get(Reward, soap)  # read at the old price, as the order does
        assert stale is not None and stale.points == 5
        db.session.execute(
            update(Reward)
            .where(Reward.id == soap)
            .values(points=6)
            .execution_options(synchronize_session=False)
        )
        with pytest.raises(redemptions.PriceChanged):
            redemptions.place_order(
                db.session,
                actor,
                shop_id=world.shop_a,
                items=[{"reward_id": soap, "quantity": 1}],
                now=datetime.now(SHANGHAI),
                tz=SHANGHAI,
                hold=timedelta(hours=72),
            )
        db.session.rollback()
    assert stock_of(app, soap) == 10
    assert account_of(app, world.household_x)["held"] == 0
