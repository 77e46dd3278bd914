"""红黑榜 in a real browser: the demo village's last month printed, downloaded and closed."""

from __future__ import annotations

from flask import Flask
from playwright.sync_api import Page, ViewportSize, expect

from backend.clock import now, village_tz
from rules.periods import add_months, month_key
from tests.browser.conftest import PHONE, log_in
from tests.browser.flows.boards import close_month, open_board, print_board


def _months(app: Flask) -> tuple[str, str]:
    """(this month, last month) on the village's clock; the demo posted last month's awards."""
    with app.app_context():
        this = month_key(now().astimezone(village_tz()))
    return this, add_months(this, -1)


def test_a_cadre_prints_last_months_board_and_closes_it(
    app: Flask, page: Page, demo_history: None
) -> None:
    _, last = _months(app)
    log_in(page, "cadre_qs")
    page.click("header .menu a:has-text('红黑榜')")
    expect(page.locator("#board h2")).to_have_text("清水村积分红黑榜")
    red = print_board(page, last)
    assert red, "the demo's last month has households on the red list"
    fingerprint = close_month(page, last)
    assert len(fingerprint.replace(" ", "")) == 16
    # The closed board is the one printed now: the same names in the same order.
    assert print_board(page, last) == red


def test_declining_the_confirmation_closes_nothing(
    app: Flask, page: Page, demo_history: None
) -> None:
    _, last = _months(app)
    log_in(page, "cadre_ty")
    open_board(page, last)
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("#close button[type=submit]")
    expect(page.locator("#board-status")).to_contain_text("未结榜")
    expect(page.locator("#close button[type=submit]")).to_be_visible()


def test_a_township_admin_picks_the_village(app: Flask, page: Page, demo_history: None) -> None:
    this, last = _months(app)
    log_in(page, "township_admin")
    open_board(page, last, village="桃源村")
    expect(page.locator("#board h2")).to_have_text("桃源村积分红黑榜")
    assert close_month(page, last, village="桃源村")
    # The running month cannot be closed yet: the page says so instead of offering it.
    open_board(page, this, village="桃源村")
    expect(page.locator("#close")).to_contain_text("本月结束后才能结榜")


def test_the_board_reads_on_a_phone(app: Flask, page: Page, demo_history: None) -> None:
    _, last = _months(app)
    page.set_viewport_size(ViewportSize(width=PHONE["width"], height=PHONE["height"]))
    log_in(page, "cadre_qs")
    open_board(page, last)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"] + 1, width


def test_printing_the_notice_leaves_the_board_off_the_paper(
    app: Flask, page: Page, demo_history: None
) -> None:
    this, _ = _months(app)
    log_in(page, "cadre_qs")
    open_board(page, this)
    page.evaluate("() => { window.print = () => { window.__printed = true; }; }")
    page.click("#notices button[data-print]")
    assert page.evaluate("window.__printed") is True
    page.emulate_media(media="print")
    expect(page.locator("#board")).to_be_hidden()
    expect(page.locator("#notices")).to_be_visible()
    page.evaluate("() => window.dispatchEvent(new Event('afterprint'))")
    expect(page.locator("#board")).to_be_visible()
