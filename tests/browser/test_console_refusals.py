"""What the console refuses, in a real browser: a form sent without its CSRF token changes
nothing; another village's household is a 404 page; a villager's login is refused; a name
written as markup is shown as text; a clerk cannot open the rules, a cadre the budget, and a
township admin sees no other township's villages; and every page each role can reach from
its menu loads with no browser error or failed request."""

from __future__ import annotations

import re

from flask import Flask
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import func, select

from backend.extensions import db
from points.models import Household, Township, User, Village, Villager
from points.passwords import hash_password
from tests.browser.conftest import DESKTOP, PASSWORD, BrowserErrors, log_in

XSS = "<img src=x onerror=alert(1)>"


def _household_of(app: Flask, village: str) -> int:
    with app.app_context():
        found = db.session.scalar(
            select(Household.id)
            .join(Village, Village.id == Household.village_id)
            .where(Village.name == village)
            .order_by(Household.id)
            .limit(1)
        )
        assert found is not None
        return found


def _members(app: Flask, household_id: int) -> int:
    with app.app_context():
        return (
            db.session.scalar(
                select(func.count())
                .select_from(Villager)
                .where(Villager.household_id == household_id)
            )
            or 0
        )


def test_a_form_sent_without_its_csrf_token_changes_nothing(
    app: Flask, page: Page, browser_errors: BrowserErrors
) -> None:
    browser_errors.allow(r"status 403: POST .*/console/households/\d+/members")
    browser_errors.allow(r"console: Failed to load resource: .*403")
    household_id = _household_of(app, "清水村")
    before = _members(app, household_id)
    log_in(page, "cadre_qs")
    page.goto(f"/console/households/{household_id}")
    form = page.locator("#add-member form")
    form.locator("input[name=name]").fill("不该加上的人")
    # What a forged form from another site would lack: the session's token.
    form.locator("input[name=csrf_token]").evaluate("input => input.remove()")
    form.locator("button[type=submit]").click()
    expect(page.locator(".refusal")).to_contain_text("页面已过期或来源不明")
    assert _members(app, household_id) == before


def test_another_villages_household_is_a_not_found_page(
    app: Flask, page: Page, browser_errors: BrowserErrors
) -> None:
    browser_errors.allow(r"status 404: GET .*/console/households/\d+$")
    browser_errors.allow(r"console: Failed to load resource: .*404")
    household_id = _household_of(app, "清水村")
    log_in(page, "cadre_ty")
    response = page.goto(f"/console/households/{household_id}")
    assert response is not None and response.status == 404
    expect(page.locator("h1")).to_have_text("没有找到")
    expect(page.locator("body")).not_to_contain_text("清水村")


def test_a_villagers_login_is_refused(
    app: Flask, page: Page, browser_errors: BrowserErrors
) -> None:
    browser_errors.allow(r"status 401: POST .*/console/login")
    browser_errors.allow(r"console: Failed to load resource: .*401")
    with app.app_context():
        villager = db.session.scalars(select(Villager).order_by(Villager.id).limit(1)).one()
        db.session.add(
            User(
                role="villager",
                openid="openid-console-try",
                villager_id=villager.id,
                username="villager_try",
                password_hash=hash_password(PASSWORD),
            )
        )
        db.session.commit()
    page.goto("/console/login")
    page.fill("input[name=username]", "villager_try")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator(".refusal")).to_have_text("用户名或密码错误")
    page.goto("/console/")
    expect(page).to_have_url(re.compile(r"/console/login"))


def test_a_name_written_as_markup_is_shown_as_text(app: Flask, page: Page) -> None:
    household_id = _household_of(app, "清水村")
    with app.app_context():
        household = db.session.get_one(Household, household_id)
        household.name = XSS
        db.session.commit()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    log_in(page, "cadre_qs")
    page.goto("/console/households")
    expect(page.locator("#households")).to_contain_text(XSS)
    page.goto(f"/console/households/{household_id}")
    expect(page.locator("#household-name")).to_contain_text(XSS)
    assert page.locator("img[src=x]").count() == 0
    assert dialogs == []


def test_each_role_is_refused_the_pages_of_another(
    app: Flask, chromium: Browser, console_url: str, browser_errors: BrowserErrors
) -> None:
    browser_errors.allow(r"status 403: GET .*/console/(rules|budget)$")
    browser_errors.allow(r"console: Failed to load resource: .*403")
    for username, path in (("clerk_qs", "/console/rules"), ("cadre_qs", "/console/budget")):
        context = chromium.new_context(viewport=DESKTOP, base_url=console_url)
        tab = context.new_page()
        browser_errors.watch(tab)
        log_in(tab, username)
        assert path.rsplit("/", 1)[1] not in tab.locator("header .menu").inner_html()
        response = tab.goto(path)
        assert response is not None and response.status == 403, (username, path)
        expect(tab.locator("h1")).to_have_text("没有权限")
        context.close()
    assert browser_errors.seen == []


def test_a_township_admin_sees_no_other_townships_villages(app: Flask, page: Page) -> None:
    with app.app_context():
        other = Township(name="白沙镇", code="T-OTHER")
        db.session.add(other)
        db.session.flush()
        db.session.add(Village(township_id=other.id, name="白沙村"))
        db.session.commit()
    log_in(page, "township_admin")
    for path in ("/console/villages", "/console/stats", "/console/audit", "/console/households"):
        page.goto(path)
        expect(page.locator("main")).not_to_contain_text("白沙村")
    page.goto("/console/villages")
    expect(page.locator("main")).to_contain_text("清水村")


def test_every_menu_page_of_every_role_loads_without_a_browser_error(
    chromium: Browser, console_url: str, browser_errors: BrowserErrors
) -> None:
    for username in ("cadre_qs", "clerk_qs", "township_admin", "county_admin"):
        context = chromium.new_context(viewport=DESKTOP, base_url=console_url)
        tab = context.new_page()
        browser_errors.watch(tab)
        log_in(tab, username)
        links = tab.locator("header .menu a")
        paths = [links.nth(i).get_attribute("href") or "" for i in range(links.count())]
        assert len(paths) >= 5, (username, paths)
        for path in paths:
            response = tab.goto(path)
            assert response is not None and response.status == 200, (username, path)
        context.close()
    assert browser_errors.seen == []
