"""The township office's pages in a real browser, as the demo township's admin: an item
edited into a new version while the awards made under the old one keep it, the policy
changed, a claim past a village's lowered budget approved, and the statistics drawn."""

from __future__ import annotations

from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from backend.extensions import db
from points.models import Claim, RuleItem, RuleItemVersion
from tests.browser.conftest import log_in
from tests.browser.flows import township


def _claims_by_version(app: Flask, code: str) -> dict[int, int]:
    with app.app_context():
        return dict(
            db.session.execute(
                select(RuleItemVersion.version, func.count(Claim.id))
                .join(Claim, Claim.rule_item_version_id == RuleItemVersion.id)
                .join(RuleItem, RuleItem.id == RuleItemVersion.item_id)
                .where(RuleItem.code == code)
                .group_by(RuleItemVersion.version)
            ).all()
        )


def test_an_edited_item_has_a_new_version_and_old_awards_keep_theirs(
    app: Flask, page: Page, demo_history: None
) -> None:
    before = _claims_by_version(app, "ENV-YARD")
    assert set(before) == {1} and before[1] > 0  # the demo's history was awarded under v1
    log_in(page, "township_admin")
    version = township.edit_item(page, "ENV-YARD", points="4")
    assert version == 2
    expect(page.locator("#history .version[data-version='2'] td.after")).to_have_text("4")
    assert township.recorded_under(page, 1) == before[1]
    assert township.recorded_under(page, 2) == 0
    assert _claims_by_version(app, "ENV-YARD") == before

    # A new award is made under the new version.
    township.award_in_village(app, "cadre_qs", "ENV-YARD")
    township.open_item(page, "ENV-YARD")
    assert township.recorded_under(page, 2) == 1
    assert township.recorded_under(page, 1) == before[1]


def test_the_policy_is_changed(page: Page) -> None:
    log_in(page, "township_admin")
    township.set_policy(page, notice_days="7", star_levels="60,75,90", exchange_rate="0.5")
    page.reload()
    expect(page.locator("#policy [name='notice_days']")).to_have_value("7")


def test_a_claim_past_a_lowered_budget_is_approved_by_the_township(app: Flask, page: Page) -> None:
    log_in(page, "township_admin")
    township.set_policy(page, monthly_budget="1")
    [claim_id] = township.award_in_village(app, "cadre_qs", "ENV-YARD")
    assert claim_id in township.open_budget(page)
    status = township.approve_over_budget(page, claim_id)
    assert status in ("in_notice", "posted")
    with app.app_context():
        claim = db.session.get(Claim, claim_id)
        assert claim is not None and claim.status == status

    [other] = township.award_in_village(app, "cadre_ty", "ENV-YARD")
    township.reject_over_budget(page, other, "本月额度已用完，下月再报")


def test_the_stats_reports_and_audit_draw_without_a_script_error(
    page: Page, demo_history: None
) -> None:
    log_in(page, "township_admin")
    assert township.open_stats(page) > 0
    page.fill("input[name=period]", "2026-01")
    page.click("form.actions button[type=submit]")
    expect(page.locator("#villages svg.chart").first).to_be_visible()
    township.open_reports(page)
    assert township.open_audit(page) > 0
