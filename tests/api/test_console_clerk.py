"""The clerk's console pages (积分超市店员): pickup by code or scan, counter redemption with cash
for the difference and its receipt, the shelf and its stock, and the month's statement: the
same services as the shop API, refused the same way, and nothing written twice."""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from openpyxl import load_workbook
from sqlalchemy import select

from backend.extensions import db
from points.models import AuditEntry, Redemption, StockMovement
from tests.factories import (
    API,
    World,
    add_reward,
    add_shop_b,
    counter,
    fund,
    install_default_catalog,
    jpeg_bytes,
    member_token,
    order,
    set_policy,
    shelf,
)
from tests.support.clock import SHANGHAI, frozen, local
from tests.support.console import console_login, csrf_in
from tests.support.reads import account_of, count, stock_of

_KEY = re.compile(r'name="idempotency_key" value="([^"]*)"')


def _form_keys(html: str) -> dict[str, str]:
    found = _KEY.search(html)
    assert found, "no idempotency_key on the page"
    return {"csrf_token": csrf_in(html), "idempotency_key": found.group(1)}


def _placed(app: Flask, client: FlaskClient, world: World, points: int = 10) -> dict[str, Any]:
    rice = add_reward(app, world.shop_a, "大米", points, 50)
    fund(app, world.household_x, 100)
    response = order(client, world.headers("villager_x"), world.shop_a, [(rice, 1)])
    assert response.status_code == 201, response.get_json()
    placed: dict[str, Any] = response.get_json()
    placed["reward_id"] = rice
    return placed


def _redemption(app: Flask, redemption_id: int) -> tuple[str, int | None]:
    with app.app_context():
        r = db.session.get(Redemption, redemption_id)
        assert r is not None
        return r.status, r.ledger_entry_id


def _find(client: FlaskClient, csrf: str, code: str) -> Any:
    return client.post("/console/pickup/find", data={"csrf_token": csrf, "code": code})


def _fulfil(client: FlaskClient, code: str) -> Any:
    """交付, as the button under a found order sends it (a new form each time)."""
    csrf = csrf_in(client.get("/console/pickup").text)
    keys = {"csrf_token": csrf, "idempotency_key": uuid.uuid4().hex}
    return client.post("/console/pickup/fulfil", data={**keys, "code": code})


# ---- 取货核销 ---------------------------------------------------------------------------------


def test_a_pickup_number_shows_the_order_and_hands_it_out_once(
    app: Flask, client: FlaskClient, world: World
) -> None:
    placed = _placed(app, client, world)
    csrf = console_login(client, "clerk_a")
    waiting = client.get("/console/pickup").text
    assert '<td class="goods">大米×1</td>' in waiting  # the open orders, without their codes
    assert placed["pickup_code"] not in waiting
    found = _find(client, csrf, placed["pickup_code"])
    assert found.status_code == 200, found.text
    assert f'data-redemption="{placed["id"]}"' in found.text
    assert "x户" in found.text and "大米" in found.text and "交付" in found.text
    assert _redemption(app, placed["id"])[0] == "reserved"  # looking hands nothing out

    done = _fulfil(client, placed["pickup_code"])
    assert done.status_code == 303
    assert done.headers["Location"].endswith(f"/console/pickup?done={placed['id']}")
    assert "已交付" in client.get(done.headers["Location"]).text
    status, entry = _redemption(app, placed["id"])
    assert status == "fulfilled" and entry is not None
    assert (
        account_of(app, world.household_x)["available"],
        account_of(app, world.household_x)["held"],
    ) == (90, 0)

    # Scanned again: nothing to hand out, and why, beside the field.
    again = _find(client, csrf, placed["pickup_code"])
    assert again.status_code == 404
    assert "没有这个取货号的待取订单" in again.text
    twice = _fulfil(client, placed["pickup_code"])
    assert twice.status_code == 404 and "没有这个取货号的待取订单" in twice.text
    assert account_of(app, world.household_x)["available"] == 90


def test_the_scanned_qr_hands_out_and_a_second_scan_says_already_picked_up(
    app: Flask, client: FlaskClient, world: World
) -> None:
    placed = _placed(app, client, world)
    console_login(client, "clerk_a")
    scanned = placed["pickup_url"]  # what a scanner types: the code's whole URL
    assert _fulfil(client, scanned).status_code == 303
    csrf = csrf_in(client.get("/console/pickup").text)
    again = _find(client, csrf, scanned)
    assert again.status_code == 409 and "该兑换单已经领取过了" in again.text
    assert 'data-code="already_fulfilled"' in again.text
    assert _fulfil(client, scanned).status_code == 409
    assert account_of(app, world.household_x)["available"] == 90


def test_cancelled_expired_and_other_shops_orders_are_refused_and_nothing_changes(
    app: Flask, client: FlaskClient, world: World
) -> None:
    rice = add_reward(app, world.shop_a, "大米", 10, 50)
    fund(app, world.household_x, 100)
    shop_b = add_shop_b(app, world)
    with frozen(local(2026, 5, 10, 9)):
        villager = world.headers("villager_x")
        cancelled = order(client, villager, world.shop_a, [(rice, 1)]).get_json()
        late = order(client, villager, world.shop_a, [(rice, 1)]).get_json()
        client.post(f"{API}/redemptions/{cancelled['id']}/cancel", headers=villager, json={})
        csrf = console_login(client, "clerk_a")
        refused = _find(client, csrf, cancelled["pickup_url"])
        assert refused.status_code == 409 and "该兑换单已取消" in refused.text
        # The field keeps what was scanned, beside the refusal.
        assert cancelled["pickup_url"] in refused.text
        by_number = _find(client, csrf, cancelled["pickup_code"])
        assert by_number.status_code == 404 and "没有这个取货号的待取订单" in by_number.text
        assert _fulfil(client, cancelled["pickup_url"]).status_code == 409

        other = FlaskClient(app, app.response_class, use_cookies=True)
        other_csrf = console_login(other, "clerk_b")
        assert shop_b["clerk"]
        for code in (late["pickup_url"], late["pickup_code"]):
            response = _find(other, other_csrf, code)
            assert response.status_code == 404 and 'class="refusal"' in response.text
            assert _fulfil(other, code).status_code == 404
    with frozen(local(2026, 5, 13, 10)):  # past the 72-hour hold, before the expiry run
        csrf = console_login(client, "clerk_a")
        for code in (late["pickup_url"], late["pickup_code"]):
            response = _find(client, csrf, code)
            assert response.status_code == 409 and "已超过领取期限" in response.text
            assert _fulfil(client, code).status_code == 409
    assert _redemption(app, late["id"]) == ("reserved", None)
    assert account_of(app, world.household_x)["held"] == 10


def test_typed_pickup_numbers_count_against_the_apis_limit_and_scans_do_not(
    app: Flask, client: FlaskClient, world: World
) -> None:
    placed = _placed(app, client, world)
    saved = app.config["PICKUP_CODE_RATE_LIMIT"]
    app.config["PICKUP_CODE_RATE_LIMIT"] = "3 per minute"
    try:
        csrf = console_login(client, "clerk_a")
        wrong = "000000" if placed["pickup_code"] != "000000" else "000001"
        for _ in range(3):
            assert _find(client, csrf, wrong).status_code == 404
        blocked = _fulfil(client, placed["pickup_code"])
        assert blocked.status_code == 429 and "操作太频繁" in blocked.text
        assert _redemption(app, placed["id"])[0] == "reserved"
        # The QR code is signed, not guessed: scanning it is not counted (as the API's scan).
        assert _find(client, csrf, placed["pickup_url"]).status_code == 200
        # One count with the API's: typing through both gets no more tries than through one.
        api = client.post(
            f"{API}/redemptions/pickup-code",
            headers=world.headers("clerk_a"),
            json={"pickup_code": placed["pickup_code"]},
        )
        assert api.status_code == 429
    finally:
        app.config["PICKUP_CODE_RATE_LIMIT"] = saved


def test_a_cadre_cannot_open_the_pickup_page(client: FlaskClient, world: World) -> None:
    console_login(client, "cadre_a")
    for path in ("/console/pickup", "/console/counter", "/console/shop"):
        response = client.get(path)
        assert response.status_code == 403, path
        assert "没有权限" in response.text
    assert "/console/pickup" not in client.get("/console/").text  # nor is it offered


# ---- 柜台兑换 ---------------------------------------------------------------------------------


def test_a_counter_sale_with_cash_is_the_apis_redemption_and_prints_a_receipt(
    app: Flask, client: FlaskClient, world: World
) -> None:
    install_default_catalog(app, world.township_1)
    set_policy(client, world, exchange_rate="0.5")  # a point is worth half a yuan here
    ids = shelf(app, world)
    fund(app, world.household_x, 20)  # 120 points; the oil (85) and rice (50) cost 135
    card = member_token(app, world.head_x)
    csrf = console_login(client, "clerk_a")

    audits = count(app, AuditEntry)
    holder = client.post("/console/counter/card", data={"csrf_token": csrf, "member_token": card})
    assert holder.status_code == 200, holder.text
    assert "户主x" in holder.text and "x户" in holder.text and "120" in holder.text
    assert "已达合格线" in holder.text
    basket = {
        **_form_keys(holder.text),
        "member_token": card,
        f"qty-{ids['oil']}": "1",
        f"qty-{ids['rice']}": "1",
        f"qty-{ids['soap']}": "0",
    }
    # 试算: the service's own figures, and its refusals, with nothing kept.
    short = client.post("/console/counter/quote", data=basket)
    assert short.status_code == 200 and "积分不足" in short.text
    odd = client.post("/console/counter/quote", data={**basket, "cash_paid": "7.75"})
    assert "现金补差应为" in odd.text
    quote = client.post("/console/counter/quote", data={**basket, "cash_paid": "7.50"})
    assert 'class="points figure">120 分' in quote.text and "135 分" in quote.text
    assert account_of(app, world.household_x)["available"] == 120
    assert stock_of(app, ids["oil"]) == 2
    assert count(app, Redemption) == 0 and count(app, AuditEntry) == audits  # nothing kept

    refused = client.post("/console/counter/sale", data=basket)
    assert refused.status_code == 422 and "积分不足" in refused.text
    assert "户主x" in refused.text  # the card holder stays on the page

    sold = client.post(
        "/console/counter/sale",
        data={**basket, **_form_keys(holder.text), "cash_paid": "7.50"},
    )
    assert sold.status_code == 303, sold.text
    receipt_path = sold.headers["Location"]
    redemption_id = int(receipt_path.rsplit("/", 1)[1])
    api = client.get(
        f"{API}/redemptions/{redemption_id}", headers=world.headers("clerk_a")
    ).get_json()
    assert (api["source"], api["status"], api["member_name"]) == ("counter", "fulfilled", "户主x")
    assert (api["total_points"], api["points"], api["cash_paid"], api["value"]) == (
        135,
        120,
        "7.50",
        "60.00",
    )
    account = account_of(app, world.household_x)
    assert (account["available"], account["held"]) == (0, 0)

    page = client.get(receipt_path)
    assert page.status_code == 200
    assert "清水村积分超市" in page.text and "玉米油 5L" in page.text
    assert "7.50 元" in page.text and "120 分" in page.text and "data-print" in page.text
    assert 'class="receipt-page paper-58"' in page.text
    wide = client.get(receipt_path + "?paper=80")
    assert 'class="receipt-page paper-80"' in wide.text
    assert app.static_folder
    css = (Path(app.static_folder) / "console" / "clerk.css").read_text()
    assert "@page receipt-58 { size: 58mm 297mm; margin: 0; }" in css
    assert "@page receipt-80 { size: 80mm 297mm; margin: 0; }" in css
    assert "/static/console/clerk.js" in page.text  # makes the page as long as the slip

    # The same form sent again (a double click) sells nothing more.
    again = client.post(
        "/console/counter/sale", data={**basket, **_form_keys(holder.text), "cash_paid": "7.50"}
    )
    assert again.status_code == 303 and again.headers["Location"] == receipt_path
    with app.app_context():
        assert len(db.session.scalars(select(Redemption)).all()) == 1


def test_a_card_of_a_village_the_shop_does_not_serve_is_refused_beside_the_field(
    app: Flask, client: FlaskClient, world: World
) -> None:
    csrf = console_login(client, "clerk_a")
    response = client.post(
        "/console/counter/card",
        data={"csrf_token": csrf, "member_token": member_token(app, world.head_y)},
    )
    assert response.status_code == 422 and "本超市不服务该村民所在的村" in response.text
    garbage = client.post("/console/counter/card", data={"csrf_token": csrf, "member_token": "x"})
    assert garbage.status_code == 422 and 'class="refusal"' in garbage.text


# ---- 商品库存 ---------------------------------------------------------------------------------


def test_restock_with_a_reason_and_the_shelf_warns_of_low_stock(
    app: Flask, client: FlaskClient, world: World
) -> None:
    oil = add_reward(app, world.shop_a, "玉米油 5L", 85, 2)
    console_login(client, "clerk_a")
    shelf_page = client.get("/console/shop")
    assert shelf_page.status_code == 200
    assert "玉米油 5L" in shelf_page.text and "库存低" in shelf_page.text

    page = client.get(f"/console/shop/rewards/{oil}")
    restocked = client.post(
        f"/console/shop/rewards/{oil}/stock",
        data={**_form_keys(page.text), "kind": "restock", "change": "10", "reason": "供货商送货"},
    )
    assert restocked.status_code == 303
    assert stock_of(app, oil) == 12
    after = client.get(f"/console/shop/rewards/{oil}").text
    assert "供货商送货" in after and "+10" in after and "进货" in after

    no_reason = client.post(
        f"/console/shop/rewards/{oil}/stock",
        data={**_form_keys(after), "kind": "restock", "change": "3", "reason": ""},
    )
    assert no_reason.status_code == 422 and "原因" in no_reason.text
    too_many = client.post(
        f"/console/shop/rewards/{oil}/stock",
        data={**_form_keys(after), "kind": "out", "change": "20", "reason": "损坏"},
    )
    assert too_many.status_code == 409 and "库存只有 12" in too_many.text
    taken = client.post(
        f"/console/shop/rewards/{oil}/stock",
        data={**_form_keys(after), "kind": "out", "change": "2", "reason": "包装破损"},
    )
    assert taken.status_code == 303 and stock_of(app, oil) == 10
    with app.app_context():
        moves = db.session.scalars(
            select(StockMovement).where(StockMovement.reward_id == oil).order_by(StockMovement.id)
        ).all()
        assert [(m.kind, m.change, m.reason) for m in moves] == [
            ("restock", 10, "供货商送货"),
            ("correction", -2, "包装破损"),
        ]


def test_a_reward_is_put_on_the_shelf_edited_and_given_a_picture(
    app: Flask, client: FlaskClient, world: World
) -> None:
    console_login(client, "clerk_a")
    page = client.get("/console/shop")
    created = client.post(
        "/console/shop/rewards",
        data={**_form_keys(page.text), "name": "毛巾", "points": "10", "stock": "20"},
    )
    assert created.status_code == 303, created.text
    reward_path = created.headers["Location"]
    reward_id = int(reward_path.rsplit("/", 1)[1])
    duplicate = client.post(
        "/console/shop/rewards",
        data={**_form_keys(client.get("/console/shop").text), "name": "毛巾", "points": "10"},
    )
    assert duplicate.status_code == 409 and "本超市已有同名商品" in duplicate.text

    edit = client.get(reward_path)
    updated = client.post(
        reward_path, data={**_form_keys(edit.text), "name": "毛巾（大）", "points": "12"}
    )
    assert updated.status_code == 303
    api = client.get(f"{API}/rewards/{reward_id}", headers=world.headers("clerk_a")).get_json()
    assert (api["name"], api["points"], api["active"], api["stock"]) == (
        "毛巾（大）",
        12,
        False,
        20,
    )

    edit = client.get(reward_path)
    not_a_photo = client.post(
        f"{reward_path}/image",
        data={**_form_keys(edit.text), "file": (io.BytesIO(b"not an image"), "x.jpg")},
        content_type="multipart/form-data",
    )
    assert not_a_photo.status_code == 422 and 'class="refusal"' in not_a_photo.text
    uploaded = client.post(
        f"{reward_path}/image",
        data={**_form_keys(edit.text), "file": (io.BytesIO(jpeg_bytes()), "towel.jpg")},
        content_type="multipart/form-data",
    )
    assert uploaded.status_code == 303
    image = re.search(r'<img class="picture" src="([^"]+)"', client.get(reward_path).text)
    assert image and image.group(1).startswith(f"/api/v1/rewards/{reward_id}/image?v=")
    picture = client.get(image.group(1))
    assert picture.status_code == 200 and picture.mimetype == "image/jpeg"
    picture.close()


# ---- 月度对账 ---------------------------------------------------------------------------------


def test_the_months_statement_sums_the_redemptions_in_csv_and_xlsx(
    app: Flask, client: FlaskClient, world: World
) -> None:
    ids = shelf(app, world)
    card = member_token(app, world.head_x)
    clerk = world.headers("clerk_a")
    month = datetime.now(SHANGHAI).strftime("%Y-%m")
    for items in ([(ids["soap"], 2)], [(ids["rice"], 1)], [(ids["soap"], 1)]):
        assert counter(client, clerk, world.shop_a, card, items).status_code == 201
    console_login(client, "clerk_a")
    page = client.get(f"/console/settlements?month={month}")
    assert page.status_code == 200
    assert 'id="total-points">65<' in page.text and 'id="total-redemptions">3<' in page.text

    downloaded = client.get(f"/console/settlements/download?month={month}&format=csv")
    assert downloaded.status_code == 200 and downloaded.mimetype == "text/csv"
    assert "attachment" in downloaded.headers["Content-Disposition"]
    api = client.get(
        f"{API}/shops/{world.shop_a}/settlements?month={month}&format=csv", headers=clerk
    )
    assert downloaded.data == api.data  # the same export code
    rows = list(csv.reader(io.StringIO(downloaded.data.decode("utf-8-sig"))))
    body, total = rows[1:-1], rows[-1]
    with app.app_context():
        redeemed = db.session.scalars(
            select(Redemption.points).where(Redemption.shop_id == world.shop_a)
        ).all()
    assert sum(int(r[9]) for r in body) == int(total[9]) == sum(redeemed) == 65

    xlsx = client.get(f"/console/settlements/download?month={month}&format=xlsx")
    assert xlsx.status_code == 200
    sheet = load_workbook(io.BytesIO(xlsx.data))["兑换明细"]
    values = [row for row in sheet.iter_rows(min_row=3, values_only=True)]
    assert values[-1][0] == "合计" and values[-1][9] == 65
    assert Decimal(str(values[-1][11])) == Decimal("65") * Decimal("1")
    assert client.get(f"/console/settlements/download?month={month}&format=json").status_code == (
        422
    )


def test_a_township_admin_picks_the_shop_of_the_statement(
    app: Flask, client: FlaskClient, world: World
) -> None:
    shop_b = add_shop_b(app, world)
    console_login(client, "tadmin1")
    page = client.get(f"/console/settlements?shop_id={shop_b['shop']}&month=2026-05")
    assert page.status_code == 200 and "桃源村积分超市" in page.text
    assert 'id="shop-picker"' in page.text
    console_login(client, "tadmin2")
    assert client.get(f"/console/settlements?shop_id={world.shop_a}").status_code == 404


# ---- CSRF --------------------------------------------------------------------------------------


def test_no_clerk_form_changes_anything_without_the_csrf_token(
    app: Flask, client: FlaskClient, world: World
) -> None:
    placed = _placed(app, client, world)
    card = member_token(app, world.head_x)
    console_login(client, "clerk_a")
    reward = placed["reward_id"]
    posts = {
        "/console/pickup/fulfil": {"code": placed["pickup_code"]},
        "/console/counter/sale": {"member_token": card, f"qty-{reward}": "1"},
        "/console/shop/rewards": {"name": "新商品", "points": "3"},
        f"/console/shop/rewards/{reward}": {"name": "改名", "points": "3"},
        f"/console/shop/rewards/{reward}/stock": {
            "kind": "restock",
            "change": "5",
            "reason": "进货",
        },
    }
    for path, data in posts.items():
        for token in (None, "0" * 64):
            sent = {**data, "idempotency_key": f"k-{path}"}
            if token:
                sent["csrf_token"] = token
            response = client.post(path, data=sent)
            assert response.status_code == 403, path
            assert "页面已过期或来源不明" in response.text
    assert _redemption(app, placed["id"]) == ("reserved", None)
    assert stock_of(app, reward) == 49
    api = client.get(f"{API}/rewards/{reward}", headers=world.headers("clerk_a")).get_json()
    assert api["name"] == "大米"
