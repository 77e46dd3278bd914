"""A cadre's whole working day in the console, end to end in a real browser, on the demo
township: log in; create an activity and open its poster; villagers check in through the API
and the cadre sees them arrive; a villager without a phone is checked in by typing their
member card's scanned text into the scanner field; a self-report with a photo is approved;
a villager group gets a batch award after the preview; a household a deduction with a note;
an objection is decided; last month's board is printed and the month closed. After it, every
household's balance equals the sum of its passbook."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from backend.clock import now, village_tz
from backend.extensions import db
from points.ledger import verify_all
from points.models import Account, Claim, Household, LedgerEntry
from rules.periods import add_months, month_key
from tests.browser.conftest import BrowserErrors, log_in
from tests.browser.flows.activities import (
    create_activity,
    member_card_text,
    open_poster,
    proxy_check_in,
    villager_checks_in,
    villagers_of,
    wait_for_checkin,
)
from tests.browser.flows.awards import batch_award, deduct
from tests.browser.flows.boards import close_month, print_board
from tests.browser.flows.claims import (
    approve_claim,
    expect_photos_loaded,
    object_to,
    open_claim_from_queue,
    resolve_objection,
    self_report_with_photo,
    villagers_of_qingshui,
)


def test_a_cadres_day(
    app: Flask, page: Page, browser_errors: BrowserErrors, demo_history: None
) -> None:
    with app.app_context():
        last_month = add_months(month_key(now().astimezone(village_tz())), -1)

    log_in(page, "cadre_qs")
    expect(page.locator("h1")).to_have_text("今日待办")

    # The morning's meeting: an activity, its poster, villagers arriving.
    starts = now() + timedelta(minutes=5)
    activity_id = create_activity(
        page,
        "村民代表大会",
        "参加村民大会",
        starts_at=starts,
        ends_at=starts + timedelta(hours=2),
        place="村委会会议室",
    )
    assert open_poster(page, activity_id).startswith(b"%PDF")
    (phone_id, phone_name), (card_id, card_name) = villagers_of(app, "清水村", 2)
    villager_checks_in(app, activity_id, phone_id)
    wait_for_checkin(page, phone_name)
    said = proxy_check_in(page, activity_id, member_card_text(app, card_id))
    assert f"已为 {card_name}" in said, said
    wait_for_checkin(page, card_name)

    # A villager's self-report with a photo, waiting on 今日 and approved from the queue.
    people = villagers_of_qingshui(app)
    claim_id = self_report_with_photo(app, people.reporter)
    page.goto("/console/")
    expect(page.locator("#waiting")).to_contain_text(f"#{claim_id}")
    open_claim_from_queue(page, claim_id, "pending")
    expect_photos_loaded(page, 1)
    assert approve_claim(page, claim_id) == "in_notice"

    # A batch award to a villager group after the preview; a deduction with its reason.
    awarded = batch_award(page, "垃圾分类", "第二村民小组", category="生态宜居")
    assert awarded
    with app.app_context():
        claim = db.session.get_one(Claim, claim_id)
        household_name = db.session.get_one(Household, claim.household_id).name
    [deduction] = deduct(page, household_name, "开会迟到", "村民大会迟到半小时")

    # A neighbour objects during the notice (公示); the cadre decides it.
    object_to(app, people.neighbour, claim_id, "那天他不在村里")
    page.goto("/console/")
    expect(page.locator("#objections")).to_contain_text(f"#{claim_id}")
    open_claim_from_queue(page, claim_id, "objected")
    assert resolve_objection(page, claim_id, uphold=True, note="有照片为证") == "in_notice"

    # Last month's board printed for the square, then the month closed.
    red = print_board(page, last_month)
    assert red
    assert close_month(page, last_month)

    assert browser_errors.seen == []
    with app.app_context():
        claims = db.session.scalars(select(Claim).where(Claim.id.in_([*awarded, deduction])))
        assert {c.status for c in claims} <= {"in_notice", "posted"}
        # Every balance is the sum of its passbook, and every chain verifies.
        sums = dict(
            db.session.execute(
                select(LedgerEntry.account_id, func.sum(LedgerEntry.amount)).group_by(
                    LedgerEntry.account_id
                )
            ).all()
        )
        accounts = db.session.scalars(select(Account)).all()
        assert accounts
        for account in accounts:
            assert account.available + account.held == sums.get(account.id, 0)
        assert verify_all(db.session).breaks == []
