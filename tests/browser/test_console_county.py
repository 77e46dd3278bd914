"""The county's pages in a real browser: the county admin sets up a village and its cadre,
who logs in (a browser of their own), must change the password an admin chose, and then sees
今日待办."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import DESKTOP, BrowserErrors, log_in
from tests.browser.flows import county

CHOSEN = "chosen-by-the-admin"
OWN = "my-very-own-password"


@pytest.fixture()
def second(chromium: Browser, console_url: str) -> Iterator[BrowserContext]:
    """Another person's browser."""
    ctx = chromium.new_context(viewport=DESKTOP, locale="zh-CN", base_url=console_url)
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


def test_the_county_sets_up_a_village_and_its_cadre_who_changes_the_password(
    page: Page, second: BrowserContext, browser_errors: BrowserErrors
) -> None:
    log_in(page, "county_admin")
    village_id = county.create_village(page, "柳树村", township="青石镇")
    county.rename_village(page, village_id, "柳荫村")
    user_id = county.create_staff(
        page, "liu_cadre", CHOSEN, "cadre", name="柳干部", place="青石镇 柳荫村"
    )

    cadre = second.new_page()
    browser_errors.watch(cadre)
    county.first_login(cadre, "liu_cadre", CHOSEN)
    cadre.goto("/console/")  # no other page opens before the change
    expect(cadre).to_have_url(re.compile(r"/console/password$"))
    county.change_password(cadre, CHOSEN, OWN)

    page.goto("/console/users")
    row = page.locator('#users tr[data-username="liu_cadre"]')
    expect(row).to_contain_text("柳荫村")
    expect(row).not_to_contain_text("待本人改密码")

    # a reset by the admin ends the cadre's login and asks for a change again
    county.reset_password(page, user_id, CHOSEN)
    cadre.goto("/console/")
    expect(cadre).to_have_url(re.compile(r"/console/login"))
    county.first_login(cadre, "liu_cadre", CHOSEN)


def test_the_county_creates_and_renames_a_township(page: Page) -> None:
    log_in(page, "county_admin")
    township_id = county.create_township(page, "新河镇", code="XH")
    county.rename_township(page, township_id, "新河乡")


def test_a_township_admin_is_offered_only_their_township_and_the_roles_pickers(
    page: Page,
) -> None:
    log_in(page, "township_admin")
    page.goto("/console/villages")
    expect(page.locator("#villages")).to_contain_text("清水村")
    # only their own township is offered
    expect(page.locator("#new-village select[name=township_id] option")).to_have_count(1)
    page.goto("/console/users")
    expect(page.locator("#new-user select[name=role] option[value=county_admin]")).to_have_count(0)
    # the pickers follow the role
    page.locator("#new-user select[name=role]").select_option("clerk")
    expect(page.locator("#new-user select[name=shop_id]")).to_be_visible()
    expect(page.locator("#new-user select[name=village_id]")).to_be_hidden()
