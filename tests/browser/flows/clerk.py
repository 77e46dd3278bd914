"""The supermarket clerk's steps in the console (积分超市店员), reusable by any browser test:
each takes the page (logged in as the shop's clerk) and what to do, asserts what the clerk
sees, and returns the ids it made. Setting-up steps that are a villager's (an order placed
on a phone) or a card's (what its QR carries) go through the domain, as the phone would."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import select

from backend.caller import qr_codec
from backend.clock import now, village_tz
from backend.extensions import db
from backend.qr import token_url
from points.models import Household, Reward, Shop, User, Villager
from points.scope import Actor
from points.shop import counter
from points.shop import redemption as redemptions
from points.tokens import TokenType
from tests.factories import fund


@dataclass(frozen=True)
class PlacedOrder:
    redemption_id: int
    pickup_code: str  # the 6 digits on the villager's phone
    pickup_text: str  # what a scanner types for the order's QR code


def card_text(app: Flask, villager_id: int) -> str:
    """What a USB scanner types for a villager's member card (积分卡): the card's URL."""
    with app.app_context():
        token = qr_codec().encode(TokenType.MEMBER_CARD, (villager_id,))
        return token_url(app.config["PUBLIC_BASE_URL"], token)


def card_holder_with(app: Flask, clerk: str, points: int) -> int:
    """A villager of the clerk's shop whose household qualifies and has `points` available,
    as the counter's member lookup finds them. The demo's two months of awards leave every
    household below the qualification line (60 in twelve months), so the first household
    that does not qualify yet is given what it needs, as a posted award would (`fund`)."""
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == clerk))
        assert user is not None and user.shop_id is not None
        actor = Actor.of(db.session, user)
        shop = db.session.get(Shop, user.shop_id)
        assert shop is not None
        villagers = db.session.scalars(
            select(Villager)
            .join(Household)
            .where(Household.village_id.in_([v.id for v in shop.villages]), Villager.active)
            .order_by(Villager.id)
        ).all()
        codec = qr_codec()
        for villager in villagers:
            token = codec.encode(TokenType.MEMBER_CARD, (villager.id,))
            holder = counter.card_holder(
                db.session, actor, codec, shop.id, member_token=token, now=now(), tz=village_tz()
            )
            if holder.qualifies and holder.available >= points:
                db.session.rollback()
                return villager.id
        villager_id, household_id = villagers[0].id, villagers[0].household_id
        db.session.rollback()
    fund(app, household_id, 60 + points)
    return villager_id


def place_villager_order(
    app: Flask, clerk: str, items: dict[str, int], points: int = 30
) -> PlacedOrder:
    """A villager of the clerk's shop orders on their phone (the API's service), binding a
    WeChat user to them first if the demo has none."""
    villager_id = card_holder_with(app, clerk, points)
    with app.app_context():
        clerk_user = db.session.scalar(select(User).where(User.username == clerk))
        assert clerk_user is not None and clerk_user.shop_id is not None
        user = db.session.scalar(select(User).where(User.villager_id == villager_id))
        if user is None:
            user = User(role="villager", openid=f"browser-{villager_id}", villager_id=villager_id)
            db.session.add(user)
            db.session.flush()
        rewards = dict(
            db.session.execute(
                select(Reward.name, Reward.id).where(Reward.shop_id == clerk_user.shop_id)
            ).all()
        )
        redemption = redemptions.place_order(
            db.session,
            Actor.of(db.session, user),
            shop_id=clerk_user.shop_id,
            items=[{"reward_id": rewards[name], "quantity": q} for name, q in items.items()],
            now=now(),
            tz=village_tz(),
            hold=timedelta(hours=app.config["REDEMPTION_HOLD_HOURS"]),
        )
        token = qr_codec().encode(
            TokenType.PICKUP, (redemption.id,), expires_at=redemption.expires_at
        )
        placed = PlacedOrder(
            redemption.id,
            redemption.pickup_code or "",
            token_url(app.config["PUBLIC_BASE_URL"], token),
        )
        db.session.commit()
        return placed


def pick_up(page: Page, scanned: str) -> int:
    """取货核销: the scanner types the order's code and Enter; the clerk checks the order and
    presses 交付. Returns the redemption's id."""
    page.goto("/console/pickup")
    field = page.locator("#pickup-code")
    expect(field).to_be_focused()  # the scanner types into the focused field
    field.fill(scanned)
    field.press("Enter")
    order = page.locator("#pickup-order")
    expect(order).to_be_visible()
    redemption_id = int(order.get_attribute("data-redemption") or 0)
    page.click("#fulfil")
    expect(page.locator("#pickup-done")).to_contain_text(f"#{redemption_id}")
    return redemption_id


def counter_sale(page: Page, card: str, quantities: dict[str, int], cash: str = "") -> int:
    """柜台兑换: scan the member card, pick the goods, type the cash for the difference, see
    the service's figures, confirm; lands on the receipt. Returns the redemption's id."""
    page.goto("/console/counter")
    field = page.locator("#counter-card")
    field.fill(card)
    field.press("Enter")
    expect(page.locator("#card-holder")).to_be_visible()
    for name, quantity in quantities.items():
        row = page.locator("#basket tr", has_text=name)
        row.locator("input[type=number]").fill(str(quantity))
    if cash:
        page.fill("#basket input[name=cash_paid]", cash)
    page.locator("#basket input[name=cash_paid]").dispatch_event("change")
    # The service's figures for what was typed last (queued behind a quote in flight).
    figures = page.locator("#quote-figures")
    expect(figures).to_be_visible()
    if cash:
        expect(figures.locator(".cash-paid")).to_contain_text(f"{Decimal(cash):.2f} 元")
    page.click("#confirm-sale")
    page.wait_for_url(re.compile(r"/console/counter/receipts/\d+"))
    expect(page.locator("#receipt")).to_be_visible()
    return int(page.url.split("?")[0].rsplit("/", 1)[1])


def restock(page: Page, reward: str, change: int, reason: str) -> int:
    """进货 with a reason, from the shelf; returns the reward's stock after it."""
    page.goto("/console/shop")
    page.locator("table.shelf tr", has_text=reward).get_by_role("link").click()
    before = int(page.locator("#stock").inner_text())
    form = page.locator("#stock-form")
    form.locator("select[name=kind]").select_option("restock")
    form.locator("input[name=change]").fill(str(change))
    form.locator("input[name=reason]").fill(reason)
    form.locator("button[type=submit]").click()
    expect(page.locator("#stock")).to_have_text(str(before + change))
    expect(page.locator("#movements tbody tr").first).to_contain_text(reason)
    return before + change


def download_settlement(page: Page, tmp: Path, fmt: str = "csv", month: str = "") -> Path:
    """月度对账: the month's statement on screen, downloaded as CSV or XLSX."""
    page.goto("/console/settlements" + (f"?month={month}" if month else ""))
    expect(page.locator("#settlement-totals")).to_be_visible()
    with page.expect_download() as info:
        page.click(f"#download-{fmt}")
    target = tmp / info.value.suggested_filename
    info.value.save_as(target)
    return target
