"""The supermarket under real concurrency (docs/DESIGN.md, The ledger: a concurrency claim
is proven on PostgreSQL with real threads). Every thread has its own test client, so its own
request and database session; all start together behind a barrier. The autouse check in
conftest then verifies available + held == sum(entries) and every hash chain.

SQLite serialises writers (BEGIN IMMEDIATE), which proves little about races, but the same
scenarios run there with 16 threads to show queued writers wait instead of handing a client
"database is locked"."""

from __future__ import annotations

from collections import Counter
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from backend.extensions import db
from points import ledger
from points.models import Account, LedgerEntry, Redemption
from points.shop import redemption as redemptions
from tests.factories import World, add_household, add_reward, fund
from tests.support.clock import SHANGHAI, frozen, local
from tests.support.concurrency import (
    Reply,
    assert_no_server_errors,
    on_postgres,
    post_together,
    together,
)
from tests.support.reads import account_of, stock_of

API = "/api/v1"


def orders_from_one_household(app: Flask, world: World, n: int) -> tuple[list[Reply], int]:
    """n orders at once of a 100-point item against a household holding 1,000 points."""
    fund(app, world.household_x, 600)
    fund(app, world.household_x, 400)
    item = add_reward(app, world.shop_a, "电饭煲", 100, 1000)
    headers = world.headers("villager_x")
    body = {"shop_id": world.shop_a, "items": [{"reward_id": item, "quantity": 1}]}
    replies = post_together(app, n, f"{API}/redemptions", lambda _: headers, lambda _: body)
    return replies, item


def assert_exactly_ten_reservations(
    app: Flask, world: World, replies: list[Reply], item: int
) -> None:
    n = len(replies)
    assert_no_server_errors(replies)
    outcomes = Counter((r.status, r.code) for r in replies)
    assert outcomes == {(201, None): 10, (422, "insufficient_points"): n - 10}, outcomes
    assert {r.body["status"] for r in replies if r.status == 201} == {"reserved"}
    account = account_of(app, world.household_x)
    assert (account["available"], account["held"]) == (0, 1000)
    with app.app_context():
        row = db.session.scalar(select(Account).where(Account.household_id == world.household_x))
        assert row is not None
        assert row.available + row.held == ledger.sum_entries(db.session, row.id) == 1000
        assert db.session.scalar(select(func.count()).select_from(Redemption)) == 10
        # Holding is not spending: no redeem entry until the clerk scans.
        assert (
            db.session.scalar(
                select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "redeem")
            )
            == 0
        )
    assert stock_of(app, item) == 990


@on_postgres
def test_two_hundred_orders_against_a_thousand_points_make_ten(app: Flask, world: World) -> None:
    replies, item = orders_from_one_household(app, world, 200)
    assert_exactly_ten_reservations(app, world, replies, item)


def test_sixteen_orders_against_a_thousand_points_on_sqlite_too(app: Flask, world: World) -> None:
    replies, item = orders_from_one_household(app, world, 16)
    assert not [r for r in replies if "locked" in str(r.body)], "database is locked reached"
    assert_exactly_ten_reservations(app, world, replies, item)


def orders_for_scarce_stock(app: Flask, world: World, n: int) -> tuple[list[Reply], int]:
    """n funded households order at once an item of which five are left."""
    households = [
        add_household(app, world.village_a, f"抢购{i}户", f"村民{i}", openid=f"openid-rush-{i}")
        for i in range(n)
    ]
    with app.app_context():
        for h in households:
            ledger.append(
                db.session,
                household_id=h["household"],
                kind="earn",
                amount=100,
                when=ledger.EntryTime(SHANGHAI),
                origin=ledger.EntryOrigin(note="测试入账"),
            )
        db.session.commit()
    item = add_reward(app, world.shop_a, "玉米油 5L", 85, 5)
    headers = [world.headers(h["user"]) for h in households]
    body = {"shop_id": world.shop_a, "items": [{"reward_id": item, "quantity": 1}]}
    replies = post_together(app, n, f"{API}/redemptions", lambda i: headers[i], lambda _: body)
    return replies, item


def assert_exactly_five_reservations(app: Flask, replies: list[Reply], item: int) -> None:
    n = len(replies)
    assert_no_server_errors(replies)
    outcomes = Counter((r.status, r.code) for r in replies)
    assert outcomes == {(201, None): 5, (409, "out_of_stock"): n - 5}, outcomes
    assert stock_of(app, item) == 0
    with app.app_context():
        holds = db.session.scalars(select(Account.held).where(Account.held > 0)).all()
        assert sorted(holds) == [85] * 5
        # The losers' points were never touched.
        assert (
            db.session.scalar(
                select(func.count()).select_from(Account).where(Account.available == 100)
            )
            == n - 5
        )


@on_postgres
def test_a_hundred_households_make_five_reservations_of_five_in_stock(
    app: Flask, world: World
) -> None:
    replies, item = orders_for_scarce_stock(app, world, 100)
    assert_exactly_five_reservations(app, replies, item)


def test_sixteen_households_and_five_in_stock_on_sqlite_too(app: Flask, world: World) -> None:
    replies, item = orders_for_scarce_stock(app, world, 16)
    assert not [r for r in replies if "locked" in str(r.body)], "database is locked reached"
    assert_exactly_five_reservations(app, replies, item)


# ---- phase two under concurrency ------------------------------------------------------------


def one_reserved_order(app: Flask, world: World) -> dict[str, Any]:
    fund(app, world.household_x, 100)
    item = add_reward(app, world.shop_a, "大米 5kg", 50, 10)
    response = app.test_client().post(
        f"{API}/redemptions",
        headers=world.headers("villager_x"),
        json={"shop_id": world.shop_a, "items": [{"reward_id": item, "quantity": 1}]},
    )
    assert response.status_code == 201, response.get_json()
    return {**response.get_json(), "item": item}


@on_postgres
def test_twenty_scans_of_one_code_fulfil_it_once(app: Flask, world: World) -> None:
    placed = one_reserved_order(app, world)
    headers = world.headers("clerk_a")
    replies = post_together(
        app,
        20,
        f"{API}/redemptions/scan",
        lambda _: headers,
        lambda _: {"pickup_token": placed["pickup_token"]},
    )
    assert_no_server_errors(replies)
    outcomes = Counter((r.status, r.code) for r in replies)
    assert outcomes == {(200, None): 1, (409, "already_fulfilled"): 19}, outcomes
    with app.app_context():
        entries = db.session.scalars(
            select(LedgerEntry.amount).where(LedgerEntry.kind == "redeem")
        ).all()
        assert entries == [-50]
    assert account_of(app, world.household_x) == {
        "available": 50,
        "held": 0,
        "earned_total": 100,
        "entries": 2,
    }


@on_postgres
def test_scans_and_cancels_racing_settle_on_one_outcome(app: Flask, world: World) -> None:
    placed = one_reserved_order(app, world)
    clerk, villager = world.headers("clerk_a"), world.headers("villager_x")
    clients = [app.test_client() for _ in range(20)]

    def act(i: int) -> Reply:
        if i % 2:
            response = clients[i].post(
                f"{API}/redemptions/{placed['id']}/cancel", headers=villager, json={}
            )
        else:
            response = clients[i].post(
                f"{API}/redemptions/scan",
                headers=clerk,
                json={"pickup_token": placed["pickup_token"]},
            )
        return Reply(response.status_code, response.get_json(), False)

    replies = together(20, act)
    assert_no_server_errors(replies)
    assert [r.status for r in replies].count(200) == 1, Counter(r.code for r in replies)
    winner = next(r for r in replies if r.status == 200).body["status"]
    refusals = {r.code for r in replies if r.status != 200}
    assert refusals == (
        {"already_fulfilled"} if winner == "fulfilled" else {"redemption_cancelled"}
    ), refusals
    account = account_of(app, world.household_x)
    assert account["held"] == 0
    assert account["available"] == (50 if winner == "fulfilled" else 100)
    assert stock_of(app, placed["item"]) == (9 if winner == "fulfilled" else 10)


@on_postgres
def test_two_expiry_runs_at_once_void_each_order_once(app: Flask, world: World) -> None:
    fund(app, world.household_x, 1000)
    item = add_reward(app, world.shop_a, "香皂", 5, 100)
    with frozen(local(2026, 5, 1, 9)):
        headers = world.headers("villager_x")
        client = app.test_client()
        for _ in range(30):
            response = client.post(
                f"{API}/redemptions",
                headers=headers,
                json={"shop_id": world.shop_a, "items": [{"reward_id": item, "quantity": 2}]},
            )
            assert response.status_code == 201
    assert account_of(app, world.household_x)["held"] == 300

    def run(_: int) -> int:
        with app.app_context():
            return redemptions.expire_due(db.session, local(2026, 5, 5), SHANGHAI)

    counts = together(2, run)
    assert sum(counts) == 30, counts
    assert account_of(app, world.household_x)["available"] == 1000
    assert account_of(app, world.household_x)["held"] == 0
    assert stock_of(app, item) == 100
    with app.app_context():
        statuses = Counter(db.session.scalars(select(Redemption.status)))
    assert statuses == {"expired": 30}
