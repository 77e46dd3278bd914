"""活动签到 in a real browser: a cadre creates an activity, prints its poster, opens the display
screen, watches a villager's own check-in arrive, and checks in another by their member card
with the scanner."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from playwright.sync_api import Page, expect

from backend.clock import now
from tests.browser.conftest import BrowserErrors, log_in
from tests.browser.flows.activities import (
    create_activity,
    member_card_text,
    open_display,
    open_poster,
    proxy_check_in,
    villager_checks_in,
    villagers_of,
    wait_for_checkin,
)


def test_a_cadre_runs_an_activity_check_in(
    app: Flask, page: Page, browser_errors: BrowserErrors
) -> None:
    # The second scan of the same card is refused (409) beside the field, on purpose.
    browser_errors.allow(r"status 409: POST .*/proxy-checkins")
    browser_errors.allow(r"console: Failed to load resource: .*409")
    log_in(page, "cadre_qs")
    page.click("header .menu a:has-text('活动签到')")
    expect(page.locator("h1")).to_have_text("活动签到")

    starts = now() + timedelta(minutes=5)
    activity_id = create_activity(
        page,
        "冬季消防演练",
        "参加村民大会",
        starts_at=starts,
        ends_at=starts + timedelta(hours=2),
        place="村委会广场",
    )
    expect(page.locator("#state")).to_have_text("签到中")
    expect(page.locator("#details")).to_contain_text("村委会广场")
    open_poster(page, activity_id)

    (phone_id, phone_name), (card_id, card_name) = villagers_of(app, "清水村", 2)
    villager_checks_in(app, activity_id, phone_id)
    wait_for_checkin(page, phone_name)
    expect(page.locator("#checkin-count")).to_have_text("1")

    card = member_card_text(app, card_id)
    said = proxy_check_in(page, activity_id, card)
    assert f"已为 {card_name}" in said, said
    wait_for_checkin(page, card_name)
    row = page.locator("#checkins tr.checkin", has=page.locator(".who", has_text=card_name))
    expect(row).to_contain_text("代签")

    again = proxy_check_in(page, activity_id, card)
    assert "这位村民已经签过到了" in again, again
    expect(page.locator("#checkin-count")).to_have_text("2")

    page.goto("/console/activities")
    expect(page.locator(f"#upcoming tr[data-activity-id='{activity_id}']")).to_contain_text("2")


def test_the_display_screen_opens_in_a_new_window(
    page: Page, browser_errors: BrowserErrors
) -> None:
    # The display page (the API's, activity_display.html) names no icon, so Chromium asks
    # for /favicon.ico, which the app does not serve.
    browser_errors.allow(r"status 404: GET .*/favicon\.ico$")
    browser_errors.allow(r"console: Failed to load resource: .*404")
    log_in(page, "cadre_qs")
    starts = now() + timedelta(minutes=5)
    activity_id = create_activity(
        page,
        "村道保洁",
        "参加村民大会",
        starts_at=starts,
        ends_at=starts + timedelta(hours=1),
        qr_mode="rotating",
    )
    expect(page.locator("#poster")).to_have_count(0)  # a rotating code is not printed
    screen = open_display(page, activity_id, "村道保洁")
    screen.close()
