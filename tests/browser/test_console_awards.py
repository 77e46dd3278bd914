"""积分录入 in a real browser: a cadre awards an item to a whole villager group after the
preview, sees the cap in a second preview, then enters a deduction with its reason."""

from __future__ import annotations

from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import select

from backend.extensions import db
from points.models import Claim, Household, VillagerGroup
from tests.browser.conftest import log_in
from tests.browser.flows.awards import (
    batch_award,
    choose_item,
    deduct,
    open_awards,
    preview,
    tick_group,
)


def _group_households(app: Flask, group_name: str) -> int:
    with app.app_context():
        group_id = db.session.scalar(
            select(VillagerGroup.id).where(VillagerGroup.name == group_name)
        )
        return len(
            db.session.scalars(select(Household.id).where(Household.group_id == group_id)).all()
        )


def test_a_cadre_awards_a_group_then_deducts_with_a_note(page: Page, app: Flask) -> None:
    log_in(page, "cadre_qs")
    page.click("nav.menu a:text('积分录入')")
    expect(page.locator("h1")).to_have_text("积分录入")

    ids = batch_award(page, "垃圾分类", "第二村民小组", category="生态宜居")
    assert len(ids) == _group_households(app, "第二村民小组")
    with app.app_context():
        claims = db.session.scalars(select(Claim).where(Claim.id.in_(ids))).all()
        assert {c.points for c in claims} == {10} and {c.source for c in claims} == {"cadre"}

    # The same item for the same group again: the engine's monthly cap shows in the preview.
    open_awards(page)
    choose_item(page, "垃圾分类")
    tick_group(page, "第二村民小组")
    rows = preview(page)
    expect(rows.first).to_contain_text("受上限限制")
    expect(rows.first).to_contain_text("本月已达上限 1 次")

    with app.app_context():
        household = db.session.scalar(select(Household).where(Household.address == "清水村1号"))
        assert household is not None and household.name
        name = household.name
    [claim_id] = deduct(page, name, "开会迟到", "村民大会迟到半小时")
    with app.app_context():
        claim = db.session.get(Claim, claim_id)
        assert claim is not None
        assert claim.points == -1 and claim.note == "村民大会迟到半小时"
