"""The clerk's day in a real browser (积分超市店员, demo township, clerk_qs): an order picked up
by its scanned code, a counter sale with cash for the difference and its receipt, a restock
with a reason, and the month's statement downloaded, equal to the sum of the redemptions."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import select

from backend.extensions import db
from points.models import Redemption, User
from tests.browser.conftest import log_in
from tests.browser.flows.clerk import (
    card_holder_with,
    card_text,
    counter_sale,
    download_settlement,
    pick_up,
    place_villager_order,
    restock,
)


def _shop_redemptions(app: Flask, clerk: str) -> list[Redemption]:
    with app.app_context():
        shop_id = db.session.scalar(select(User.shop_id).where(User.username == clerk))
        rows = db.session.scalars(
            select(Redemption).where(
                Redemption.shop_id == shop_id, Redemption.status == "fulfilled"
            )
        ).all()
        db.session.expunge_all()
        return list(rows)


def test_the_clerks_day(page: Page, app: Flask, tmp_path: Path) -> None:
    placed = place_villager_order(app, "clerk_qs", {"香皂": 2, "食盐 500g": 1})
    log_in(page, "clerk_qs")
    expect(page.locator("nav.menu")).to_contain_text("取货核销")

    # A villager shows the order's QR code: the scanner types it and Enter.
    assert pick_up(page, placed.pickup_text) == placed.redemption_id

    # At the counter: a member card, two towels and soap, 5 yuan in cash for part of it.
    card = card_text(app, card_holder_with(app, "clerk_qs", 30))
    sale = counter_sale(page, card, {"毛巾": 2, "香皂": 1}, cash="5")
    receipt = page.locator("#receipt")
    expect(receipt.locator(".total-points")).to_have_text("25 分")
    expect(receipt.locator(".cash-paid")).to_have_text("5.00 元")
    expect(receipt.locator(".points")).to_have_text("20 分")
    expect(page.locator("button[data-print]")).to_be_visible()
    page.goto(f"/console/counter/receipts/{sale}?paper=80")
    expect(page.locator("body")).to_have_class("receipt-page paper-80")

    # Goods delivered: a restock with its reason.
    restock(page, "玉米油 5L", 6, "供货商送货")

    # The month's statement: the CSV's total is the sum of the shop's redemptions.
    path = download_settlement(page, tmp_path, "csv")
    rows = list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig"))))
    body, total = rows[1:-1], rows[-1]
    redeemed = _shop_redemptions(app, "clerk_qs")
    assert sorted(int(r[0]) for r in body) == sorted(r.id for r in redeemed)
    assert {placed.redemption_id, sale} <= {r.id for r in redeemed}
    assert int(total[9]) == sum(int(r[9]) for r in body) == sum(r.points for r in redeemed)
    expect(page.locator("#total-points")).to_have_text(str(sum(r.points for r in redeemed)))
    xlsx = download_settlement(page, tmp_path, "xlsx")
    assert xlsx.suffix == ".xlsx" and xlsx.stat().st_size > 0
