"""Monthly settlement per shop (对账) in JSON, CSV and XLSX, and the township's report of
outstanding points (the liability): the figures must equal what actually happened."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openpyxl import load_workbook
from sqlalchemy import select

from backend.extensions import db
from points import ledger
from points.models import LedgerEntry, Shop, User
from points.scope import Actor
from points.shop import reconciliation
from tests.factories import (
    World,
    add_household,
    add_reward,
    fund,
    install_default_catalog,
    member_token,
    order,
    scan,
    set_policy,
)
from tests.support.clock import SHANGHAI, frozen, local
from tests.support.reads import account_of, error_code

API = "/api/v1"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def ordered_and_scanned(
    client: FlaskClient,
    world: World,
    villager: str | int,
    clerk: str | int,
    shop_id: int,
    items: list[tuple[int, int]],
    ordered: datetime,
    scanned: datetime,
) -> dict[str, Any]:
    with frozen(ordered):
        placed = order(client, world.headers(villager), shop_id, items)
        assert placed.status_code == 201, placed.get_json()
    with frozen(scanned):
        done = scan(client, world.headers(clerk), placed.get_json()["pickup_token"])
        assert done.status_code == 200, done.get_json()
    return done.get_json()


@pytest.fixture()
def month_of_trade(app: Flask, client: FlaskClient, world: World) -> dict[str, Any]:
    """Township 1 at half a yuan a point; shop A and a centre shop serving A and B; a month of
    orders, scans, a counter redemption with cash, a cancel and an expiry, around May 2026."""
    install_default_catalog(app, world.township_1)
    set_policy(client, world, exchange_rate="0.5")
    centre = client.post(
        f"{API}/shops",
        headers=world.headers("tadmin1"),
        json={
            "name": "青石镇中心超市",
            "township_id": world.township_1,
            "village_ids": [world.village_a, world.village_b],
        },
    )
    assert centre.status_code == 201
    centre_id = centre.get_json()["id"]
    clerk_c = client.post(
        f"{API}/users",
        headers=world.headers("tadmin1"),
        json={
            "username": "clerk_centre",
            "password": "correct-horse-battery",
            "role": "clerk",
            "shop_id": centre_id,
        },
    )
    assert clerk_c.status_code == 201
    clerk_centre = clerk_c.get_json()["id"]
    neighbour = add_household(app, world.village_a, "邻居户", "王建国", openid="openid-n")
    for household in (world.household_x, neighbour["household"], world.household_y):
        fund(app, household, 500, at=local(2026, 4, 2))
    soap = add_reward(app, world.shop_a, "香皂", 5, 100)
    rice = add_reward(app, world.shop_a, "大米 5kg", 50, 20)
    oil = add_reward(app, world.shop_a, "玉米油 5L", 85, 5)
    towel = add_reward(app, centre_id, "毛巾", 12, 30)

    done = {
        # April: not in May's statement.
        "april": ordered_and_scanned(
            client,
            world,
            "villager_x",
            "clerk_a",
            world.shop_a,
            [(soap, 1)],
            local(2026, 4, 28),
            local(2026, 4, 28, 11),
        ),
        "may": ordered_and_scanned(
            client,
            world,
            "villager_x",
            "clerk_a",
            world.shop_a,
            [(soap, 2), (rice, 1)],
            local(2026, 5, 3),
            local(2026, 5, 3, 15),
        ),
        # Ordered in May, picked up just after midnight on 1 June (village time): June's.
        "june": ordered_and_scanned(
            client,
            world,
            "villager_x",
            "clerk_a",
            world.shop_a,
            [(rice, 1)],
            local(2026, 5, 31, 23),
            local(2026, 6, 1, 0, 30),
        ),
        # The same village's household at the centre shop: the centre's statement, not A's.
        "centre_a": ordered_and_scanned(
            client,
            world,
            "villager_x",
            clerk_centre,
            centre_id,
            [(towel, 2)],
            local(2026, 5, 12),
            local(2026, 5, 12, 9),
        ),
        "centre_b": ordered_and_scanned(
            client,
            world,
            "villager_y",
            clerk_centre,
            centre_id,
            [(towel, 1)],
            local(2026, 5, 13),
            local(2026, 5, 13, 9),
        ),
    }
    with frozen(local(2026, 5, 15, 10)):
        counter = client.post(
            f"{API}/shops/{world.shop_a}/counter-redemptions",
            headers=world.headers("clerk_a"),
            json={
                "member_token": member_token(app, neighbour["head"]),
                "items": [{"reward_id": oil, "quantity": 1}],
                "cash_paid": "5.00",
            },
        )
        assert counter.status_code == 201, counter.get_json()
        done["counter"] = counter.get_json()
    with frozen(local(2026, 5, 20)):
        cancelled = order(client, world.headers("villager_x"), world.shop_a, [(oil, 1)])
        assert (
            client.post(
                f"{API}/redemptions/{cancelled.get_json()['id']}/cancel",
                headers=world.headers("villager_x"),
                json={},
            ).status_code
            == 200
        )
    with frozen(local(2026, 5, 10)):
        assert (
            order(client, world.headers(neighbour["user"]), world.shop_a, [(rice, 2)]).status_code
            == 201
        )
    with frozen(local(2026, 5, 14)):
        result = app.test_cli_runner().invoke(args=["redemptions", "expire"])
        assert "expired 1 redemption" in result.output
    with frozen(local(2026, 5, 25)):  # still reserved at the month's end: not settled
        assert (
            order(client, world.headers(neighbour["user"]), world.shop_a, [(soap, 3)]).status_code
            == 201
        )
    return {"centre": centre_id, "clerk_centre": clerk_centre, "neighbour": neighbour, "done": done}


def fulfilled_in(
    client: FlaskClient, world: World, clerk: str | int, month: str
) -> list[dict[str, Any]]:
    """The clerk's own list of fulfilled redemptions, narrowed to a month in village time."""
    rows = client.get(
        f"{API}/redemptions?status=fulfilled&per_page=100", headers=world.headers(clerk)
    ).get_json()["items"]
    return [
        r
        for r in rows
        if datetime.fromisoformat(r["fulfilled_at"]).astimezone(SHANGHAI).strftime("%Y-%m") == month
    ]


def settlement(
    client: FlaskClient,
    world: World,
    who: str | int,
    shop_id: int,
    month: str,
    fmt: str | None = None,
) -> Any:
    query = f"?month={month}" + (f"&format={fmt}" if fmt else "")
    return client.get(f"{API}/shops/{shop_id}/settlements{query}", headers=world.headers(who))


def test_a_months_settlement_equals_its_fulfilled_redemptions(
    client: FlaskClient, world: World, month_of_trade: dict[str, Any]
) -> None:
    may = fulfilled_in(client, world, "clerk_a", "2026-05")
    assert {r["id"] for r in may} == {
        month_of_trade["done"]["may"]["id"],
        month_of_trade["done"]["counter"]["id"],
    }
    response = settlement(client, world, "clerk_a", world.shop_a, "2026-05")
    assert response.status_code == 200
    body = response.get_json()
    assert body["month"] == "2026-05" and body["shop_name"] == "清水村积分超市"
    assert body["redemptions"] == len(may)
    assert body["points"] == sum(r["points"] for r in may) == 60 + 75
    assert body["goods_points"] == sum(r["total_points"] for r in may) == 60 + 85
    assert Decimal(body["cash_paid"]) == Decimal("5.00")
    # Half a yuan a point: what the township reimburses the shop.
    assert Decimal(body["value"]) == sum(Decimal(r["value"]) for r in may) == Decimal("67.50")
    assert [r["redemption_id"] for r in body["rows"]] == sorted(r["id"] for r in may)
    assert {(line["name"], line["quantity"], line["points"]) for line in body["lines"]} == {
        ("香皂", 2, 10),
        ("大米 5kg", 1, 50),
        ("玉米油 5L", 1, 85),
    }
    assert sum(line["points"] for line in body["lines"]) == body["goods_points"]
    counter_row = next(r for r in body["rows"] if r["source"] == "counter")
    assert (counter_row["household"], counter_row["member"], counter_row["cash_paid"]) == (
        "邻居户",
        "王建国",
        "5.00",
    )

    june = settlement(client, world, "clerk_a", world.shop_a, "2026-06").get_json()
    assert [r["redemption_id"] for r in june["rows"]] == [month_of_trade["done"]["june"]["id"]]
    centre = settlement(client, world, "tadmin1", month_of_trade["centre"], "2026-05").get_json()
    assert centre["points"] == 24 + 12 and Decimal(centre["value"]) == Decimal("18.00")
    empty = settlement(client, world, "clerk_a", world.shop_a, "2026-07").get_json()
    assert (empty["redemptions"], empty["points"], empty["value"]) == (0, 0, "0.00")


def test_the_townships_shop_totals_are_each_shops_settlement(
    app: Flask, world: World, month_of_trade: dict[str, Any]
) -> None:
    """The points report's page totals every shop of the township from one query: the same
    figures as each shop's own settlement, month by month."""
    with app.app_context():
        actor = Actor.of(db.session, db.session.get(User, world.tadmin1))
        shops = db.session.scalars(
            select(Shop).where(Shop.township_id == world.township_1).order_by(Shop.id)
        ).all()
        assert [s.id for s in shops] == [world.shop_a, month_of_trade["centre"]]
        found = {}
        for month in ("2026-04", "2026-05", "2026-06", "2026-07"):
            totals = reconciliation.settlement_totals(db.session, actor, shops, month)
            for shop, total in zip(shops, totals, strict=True):
                full = reconciliation.settlement(db.session, actor, shop.id, month)
                figures = ("redemptions", "goods_points", "cash_paid", "points", "value")
                assert (total.shop_id, total.shop_name) == (shop.id, shop.name)
                for key in figures:
                    assert getattr(total, key) == getattr(full, key), (month, shop.name, key)
                found[(shop.id, month)] = (total.redemptions, total.points, total.value)
        db.session.rollback()
    assert found[(world.shop_a, "2026-05")] == (2, 60 + 75, Decimal("67.50"))
    assert found[(month_of_trade["centre"], "2026-05")] == (2, 24 + 12, Decimal("18.00"))
    assert found[(world.shop_a, "2026-07")] == (0, 0, Decimal("0.00"))


def test_the_csv_statement_reads_back_to_the_same_figures(
    client: FlaskClient, world: World, month_of_trade: dict[str, Any]
) -> None:
    body = settlement(client, world, "clerk_a", world.shop_a, "2026-05").get_json()
    response = settlement(client, world, "clerk_a", world.shop_a, "2026-05", "csv")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="settlement-shop')
    assert "filename*=UTF-8''" in disposition
    assert response.data.startswith("\ufeff".encode())  # Excel needs the BOM for Chinese
    rows = list(csv.DictReader(io.StringIO(response.data.decode("utf-8-sig"))))
    *lines, total = rows
    assert list(rows[0]) == [
        "兑换单号",
        "领取时间",
        "方式",
        "村",
        "户",
        "兑换人",
        "商品明细",
        "商品积分",
        "现金补差(元)",
        "实扣积分",
        "兑换比例(元/分)",
        "折合金额(元)",
    ]
    assert [int(r["兑换单号"]) for r in lines] == [r["redemption_id"] for r in body["rows"]]
    assert sum(int(r["实扣积分"]) for r in lines) == body["points"]
    assert sum(Decimal(r["折合金额(元)"]) for r in lines) == Decimal(body["value"])
    assert sum(Decimal(r["现金补差(元)"]) for r in lines) == Decimal(body["cash_paid"])
    assert total["兑换单号"] == "合计"
    assert int(total["实扣积分"]) == body["points"]
    assert Decimal(total["折合金额(元)"]) == Decimal(body["value"])
    assert int(total["商品积分"]) == body["goods_points"]
    first = lines[0]
    assert first["领取时间"] == "2026-05-03 15:00" and first["方式"] == "线上下单"
    assert first["商品明细"] == "香皂×2、大米 5kg×1" and first["村"] == "清水村"


def test_the_xlsx_statement_reads_back_to_the_same_figures(
    client: FlaskClient, world: World, month_of_trade: dict[str, Any]
) -> None:
    body = settlement(client, world, "tadmin1", world.shop_a, "2026-05").get_json()
    response = settlement(client, world, "tadmin1", world.shop_a, "2026-05", "xlsx")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == XLSX
    assert response.headers["Content-Disposition"].startswith(
        'attachment; filename="settlement-shop'
    )
    book = load_workbook(io.BytesIO(response.data), read_only=True)
    try:
        assert book.sheetnames == ["兑换明细", "商品汇总"]
        detail = list(book["兑换明细"].iter_rows(values_only=True))
        summary = list(book["商品汇总"].iter_rows(values_only=True))
    finally:
        book.close()
    assert detail[0][0] == "青石镇 清水村积分超市 2026-05 积分兑换结算单"
    headers, *lines, total = detail[1:]
    assert headers[0] == "兑换单号" and headers[9] == "实扣积分" and headers[11] == "折合金额(元)"
    assert [row[0] for row in lines] == [r["redemption_id"] for r in body["rows"]]
    assert sum(row[9] for row in lines) == body["points"]
    assert sum(Decimal(str(row[11])) for row in lines) == Decimal(body["value"])
    assert total[0] == "合计" and total[9] == body["points"]
    assert Decimal(str(total[11])) == Decimal(body["value"])
    assert Decimal(str(total[8])) == Decimal(body["cash_paid"])
    goods_header, *goods, goods_total = summary
    assert goods_header == ("商品编号", "商品名称", "单价(积分)", "数量", "积分小计")
    assert {(row[1], row[3], row[4]) for row in goods} == {
        (line["name"], line["quantity"], line["points"]) for line in body["lines"]
    }
    assert goods_total[0] == "合计" and goods_total[4] == body["goods_points"]


def test_who_may_read_a_settlement(
    client: FlaskClient, world: World, month_of_trade: dict[str, Any]
) -> None:
    assert settlement(client, world, "clerk_a", world.shop_a, "2026-05").status_code == 200
    assert settlement(client, world, "county", world.shop_a, "2026-05").status_code == 200
    assert (
        settlement(
            client, world, month_of_trade["clerk_centre"], world.shop_a, "2026-05"
        ).status_code
        == 404
    )
    assert settlement(client, world, "tadmin2", world.shop_a, "2026-05").status_code == 404
    assert settlement(client, world, "cadre_a", world.shop_a, "2026-05").status_code == 403
    assert settlement(client, world, "villager_x", world.shop_a, "2026-05").status_code == 403
    bad = settlement(client, world, "clerk_a", world.shop_a, "2026-13")
    assert bad.status_code == 422
    assert settlement(client, world, "clerk_a", world.shop_a, "2026-05", "pdf").status_code == 422
    missing = client.get(
        f"{API}/shops/{world.shop_a}/settlements", headers=world.headers("clerk_a")
    )
    assert missing.status_code == 422


# ---- the township's report ------------------------------------------------------------------


def report(
    client: FlaskClient, world: World, who: str, township_id: int, month: str | None = None
) -> Any:
    query = f"?month={month}" if month else ""
    return client.get(
        f"{API}/townships/{township_id}/points-report{query}", headers=world.headers(who)
    )


def assert_adds_up(body: dict[str, Any]) -> None:
    for row in [*body["villages"], body["totals"]]:
        assert row["issued"] == row["outstanding"] + row["redeemed"] + row["expired"], row
        assert row["issued"] == row["earned"] + row["deducted"] + row["adjusted"], row


def test_issued_equals_balances_plus_redeemed_plus_expired(
    app: Flask, client: FlaskClient, world: World, month_of_trade: dict[str, Any]
) -> None:
    neighbour = month_of_trade["neighbour"]["household"]
    # A deduction, a reversal and a reset, so every kind of entry is in the sums.
    fund(app, neighbour, -20, at=local(2026, 5, 6), kind="deduct")
    fund(app, world.household_y, 100, at=local(2026, 5, 7))
    with app.app_context():
        entry = db.session.query(LedgerEntry).filter_by(amount=100).one()
        ledger.reverse(db.session, entry, reason="误录", created_by=world.cadre_b, tz=SHANGHAI)
        db.session.commit()
    fund(app, world.household_x, -50, at=local(2026, 5, 30), kind="expire")
    fund(app, world.household_z, 70, at=local(2026, 5, 2))  # township 2: not in this report

    now = report(client, world, "tadmin1", world.township_1)
    assert now.status_code == 200
    body = now.get_json()
    assert_adds_up(body)
    villages = {v["name"]: v for v in body["villages"]}
    a, b = villages["清水村"], villages["桃源村"]
    balances_a = [account_of(app, h) for h in (world.household_x, neighbour)]
    # Outstanding today is read from the accounts: available plus what orders hold.
    assert a["outstanding"] == sum(x["available"] + x["held"] for x in balances_a)
    assert (a["available"], a["held"]) == (
        sum(x["available"] for x in balances_a),
        sum(x["held"] for x in balances_a),
    )
    assert a["held"] == 15  # the order still waiting to be picked up
    assert (a["earned"], a["deducted"], a["adjusted"]) == (1000, -20, 0)
    # x: 5 + 60 + 50 (June) + 24 at the centre; the neighbour 75 at the counter.
    assert (a["redeemed"], a["expired"]) == (5 + 60 + 50 + 24 + 75, 50)
    assert (b["issued"], b["adjusted"], b["redeemed"]) == (500, -100, 12)
    assert b["earned"] == 600 and b["outstanding"] == 488
    assert a["exchange_rate"] == "0.5"
    assert Decimal(a["outstanding_value"]) == Decimal(a["outstanding"]) / 2
    totals = body["totals"]
    assert totals["outstanding"] == a["outstanding"] + b["outstanding"]
    assert Decimal(totals["outstanding_value"]) == (
        Decimal(a["outstanding_value"]) + Decimal(b["outstanding_value"])
    )

    may = report(client, world, "tadmin1", world.township_1, "2026-05").get_json()
    assert_adds_up(may)
    a_may = {v["name"]: v for v in may["villages"]}["清水村"]
    assert a_may["available"] is None and a_may["held"] is None
    assert (a_may["month_issued"], a_may["month_expired"]) == (-20, 50)
    # The township's May redemptions are exactly what its shops settle for May.
    settled = sum(
        settlement(client, world, "tadmin1", shop, "2026-05").get_json()["points"]
        for shop in (world.shop_a, month_of_trade["centre"])
    )
    assert may["totals"]["month_redeemed"] == settled
    april = report(client, world, "tadmin1", world.township_1, "2026-04").get_json()
    assert_adds_up(april)
    a_april = {v["name"]: v for v in april["villages"]}["清水村"]
    assert (a_april["issued"], a_april["redeemed"], a_april["outstanding"]) == (1000, 5, 995)
    # Each month's flows carry one month's cumulative figures to the next.
    for key in ("issued", "redeemed", "expired"):
        assert a_may[key] == a_april[key] + a_may[f"month_{key}"]


def test_who_may_read_the_township_report(client: FlaskClient, world: World) -> None:
    assert report(client, world, "tadmin1", world.township_1).status_code == 200
    assert report(client, world, "county", world.township_1).status_code == 200
    assert report(client, world, "tadmin2", world.township_1).status_code == 404
    for who in ("cadre_a", "clerk_a", "villager_x"):
        response = report(client, world, who, world.township_1)
        assert response.status_code == 403 and error_code(response) == "forbidden", who
    empty = report(client, world, "tadmin2", world.township_2).get_json()
    assert_adds_up(empty)
    assert empty["totals"]["outstanding"] == 0
