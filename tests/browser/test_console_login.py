"""Logging in and out of the console in a real browser."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.conftest import BrowserErrors, log_in


def test_a_cadre_logs_in_sees_today_and_logs_out(page: Page) -> None:
    log_in(page, "cadre_qs")
    expect(page.locator("h1")).to_have_text("今日待办")
    expect(page.locator("header .who")).to_contain_text("村干部")
    page.click("form.logout button")
    page.wait_for_url(re.compile(r"/console/login"))
    page.goto("/console/")
    expect(page).to_have_url(re.compile(r"/console/login\?next="))


def test_a_wrong_password_is_refused_beside_the_form_which_keeps_the_name(
    page: Page, browser_errors: BrowserErrors
) -> None:
    browser_errors.allow(r"status 401: POST .*/console/login")
    browser_errors.allow(r"console: Failed to load resource: .*401")
    page.goto("/console/login")
    page.fill("input[name=username]", "cadre_qs")
    page.fill("input[name=password]", "not-the-password")
    page.click("button[type=submit]")
    expect(page.locator(".refusal")).to_have_text("用户名或密码错误")
    expect(page.locator("input[name=username]")).to_have_value("cadre_qs")
