"""Reviewing claims in the console in a real browser: a villager's self-report with a photo
is approved from the queue by the village's cadre, its photo shows, and the objection a
neighbour then raises in the public notice (公示) is decided."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import select

from backend.clock import now, village_tz
from backend.downloads import upload_dir
from backend.extensions import db
from points import catalogs, claims, uploads
from points.models import Household, User, Village
from points.scope import Actor
from tests.browser.conftest import BrowserErrors, log_in
from tests.browser.flows.claims import (
    approve_claim,
    expect_full_photo,
    expect_photos_loaded,
    open_claim_from_queue,
    open_queue,
    reject_claim,
    resolve_objection,
)
from tests.factories import jpeg_bytes


@dataclass(frozen=True)
class Villagers:
    reporter: int  # user ids of two villagers of 清水村, of different households
    neighbour: int


def villagers_of_qingshui(app: Flask) -> Villagers:
    """Two villagers of 清水村 logged in to the mini-program (bound users)."""
    with app.app_context():
        village = db.session.scalars(select(Village).where(Village.name == "清水村")).one()
        households = db.session.scalars(
            select(Household).where(Household.village_id == village.id).order_by(Household.id)
        ).all()
        users = [
            User(role="villager", openid=f"openid-browser-{n}", villager_id=h.members[0].id)
            for n, h in enumerate(households[:2])
        ]
        db.session.add_all(users)
        db.session.commit()
        return Villagers(users[0].id, users[1].id)


def self_report_with_photo(app: Flask, user_id: int, hours: int = 2) -> int:
    """A villager's volunteer hours with a photo, as the mini-program sends them."""
    with app.app_context():
        actor = Actor.of(db.session, db.session.get_one(User, user_id))
        assert actor.village_id is not None
        photo = uploads.store_photo(db.session, actor, jpeg_bytes(), upload_dir())
        item = next(
            i
            for i in catalogs.effective_items(db.session, actor.village_id)
            if i.code == "PUB-VOLUNTEER"
        )
        claim = claims.submit(
            db.session,
            actor,
            rule_item_id=item.id,
            units=hours,
            note="打扫村委会广场",
            evidence=[photo.id],
            tz=village_tz(),
            now=now(),
        )
        db.session.commit()
        return claim.id


def object_to(app: Flask, user_id: int, claim_id: int, reason: str) -> None:
    with app.app_context():
        actor = Actor.of(db.session, db.session.get_one(User, user_id))
        claims.object_to(db.session, actor, claim_id, reason, now())
        db.session.commit()


def test_a_self_report_with_a_photo_is_approved_from_the_queue_and_its_objection_decided(
    app: Flask, page: Page
) -> None:
    people = villagers_of_qingshui(app)
    claim_id = self_report_with_photo(app, people.reporter)

    log_in(page, "cadre_qs")
    open_claim_from_queue(page, claim_id, "pending")
    expect(page.locator("#reason")).to_contain_text("共计 4 分")
    expect(page.locator("#note")).to_have_text("打扫村委会广场")
    expect_photos_loaded(page, 1)
    expect_full_photo(page)

    assert approve_claim(page, claim_id) == "in_notice"
    expect(page.locator("#approvals")).to_contain_text("清水村村干部")
    assert claim_id in open_queue(page, "in_notice")

    object_to(app, people.neighbour, claim_id, "那天他不在村里")
    open_claim_from_queue(page, claim_id, "objected")
    expect(page.locator(".objection")).to_contain_text("那天他不在村里")
    assert resolve_objection(page, claim_id, uphold=True, note="有照片为证") == "in_notice"


def test_a_claim_rejected_with_a_reason_leaves_the_pending_tab(app: Flask, page: Page) -> None:
    people = villagers_of_qingshui(app)
    claim_id = self_report_with_photo(app, people.reporter, hours=1)
    log_in(page, "cadre_qs")
    open_claim_from_queue(page, claim_id, "pending")
    reject_claim(page, claim_id, "照片与申报内容不符")
    assert claim_id not in open_queue(page, "pending")
    assert claim_id in open_queue(page, "rejected")


def test_another_villages_cadre_gets_a_not_found_page(
    app: Flask, page: Page, browser_errors: BrowserErrors
) -> None:
    browser_errors.allow(r"status 404: GET .*/console/claims/\d+$")
    browser_errors.allow(r"console: Failed to load resource: .*404")
    people = villagers_of_qingshui(app)
    claim_id = self_report_with_photo(app, people.reporter)
    log_in(page, "cadre_ty")
    assert claim_id not in open_queue(page, "pending")
    response = page.goto(f"/console/claims/{claim_id}")
    assert response is not None and response.status == 404
    expect(page.locator("h1")).to_have_text("没有找到")
