"""红黑榜 in the browser: print a month's board (and its PNG and PDF), close a month (结榜).

Plain functions over a logged-in page, for the tests and for the end-to-end day."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect


def open_board(page: Page, month: str, village: str | None = None) -> None:
    """The 红黑榜 page of `month` (YYYY-MM); `village` (its name) picked by an admin."""
    page.goto(f"/console/boards?month={month}")
    if village is not None:
        page.select_option("form.picker select[name=village_id]", label=village)
        page.click("form.picker button[type=submit]")
        page.wait_for_url(re.compile(rf"month={month}"))
    expect(page.locator("#board")).to_be_visible()


def _download(page: Page, label: str) -> bytes:
    with page.expect_download() as info:
        page.click(f"#downloads a:has-text('{label}')")
    return Path(info.value.path()).read_bytes()


def print_board(page: Page, month: str, village: str | None = None) -> list[str]:
    """Open the month's board, print the page (the menu and forms hidden on paper), and
    download its PNG and PDF on A4 and A3. Returns the names on the red list."""
    open_board(page, month, village)
    # Headless Chromium has no print dialog: count the calls instead. (A function, since
    # Playwright calls a function that an expression evaluates to.)
    page.evaluate("() => { window.__printed = 0; window.print = () => window.__printed++; }")
    page.locator("#downloads button[data-print]").click()
    printed = page.evaluate("window.__printed")
    assert printed == 1, printed
    page.emulate_media(media="print")
    try:
        expect(page.locator("header.top")).to_be_hidden()
        expect(page.locator("form.picker")).to_be_hidden()
        expect(page.locator("#board")).to_be_visible()
        expect(page.locator("#notices")).to_be_visible()
    finally:
        page.emulate_media(media="screen")
    for paper in ("A4", "A3"):
        assert _download(page, f"PNG（{paper}）").startswith(b"\x89PNG\r\n\x1a\n")
        assert _download(page, f"PDF（{paper}）").startswith(b"%PDF")
    return page.locator("#red-list tbody tr td:nth-child(2)").all_inner_texts()


def close_month(page: Page, month: str, village: str | None = None) -> str:
    """结算本月: close the month's board, confirming the question; returns the board's
    fingerprint (公示指纹) as the page shows it."""
    open_board(page, month, village)
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#close button[type=submit]")
    page.wait_for_url(re.compile(rf"/console/boards\?village_id=\d+&month={month}$"))
    expect(page.locator("#board-status")).to_contain_text("已结榜")
    expect(page.locator("#close")).to_have_count(0)
    return page.locator(".fingerprint strong").inner_text()
