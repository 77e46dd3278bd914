"""农户档案 and 花名册导入 in a real browser, as cadre_qs of 清水村 uses them."""

from __future__ import annotations

from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import select

from backend.extensions import db
from points.models import Household, Village, Villager
from tests.browser.conftest import BrowserErrors, log_in
from tests.browser.flows import households as flows

HEADER = "户编号,村民小组,地址,姓名,与户主关系,手机号,性别,出生年份"
BAD_ROSTER = "\n".join(
    [
        HEADER,
        "QS-101,第一村民小组,清水村101号,孙有田,户主,13712340001,男,1970",
        "QS-101,第一村民小组,清水村101号,周桂芝,配偶,12345,女,1972",
    ]
)
GOOD_ROSTER = "\n".join(
    [
        HEADER,
        "QS-101,第一村民小组,清水村101号,孙有田,户主,13712340001,男,1970",
        "QS-101,第一村民小组,清水村101号,周桂芝,配偶,13712340002,女,1972",
        "QS-102,第二村民小组,清水村102号,吴长顺,户主,,男,1948",
    ]
)


def _first_household(app: Flask) -> tuple[str, str]:
    """The name and address of 清水村's first household in the demo township."""
    with app.app_context():
        household = db.session.scalars(
            select(Household)
            .join(Village, Village.id == Household.village_id)
            .where(Village.name == "清水村")
            .order_by(Household.id)
        ).first()
        assert household is not None and household.name and household.address
        return household.name, household.address


def test_a_cadre_finds_a_household_adds_a_member_and_imports_a_roster(
    app: Flask, page: Page, browser_errors: BrowserErrors
) -> None:
    name, address = _first_household(app)
    log_in(page, "cadre_qs")
    page.click("nav.menu a:text('农户档案')")
    expect(page.locator("h1")).to_have_text("农户档案")

    assert len(flows.search_households(page, address)) == 1
    household_id = flows.open_household(page, name)
    expect(page.locator("#household-name")).to_have_text(name)

    member_id = flows.add_member(page, household_id, "测试新成员", phone="13712349999")
    with app.app_context():
        member = db.session.get(Villager, member_id)
        assert member is not None and member.household_id == household_id
    assert flows.search_households(page, "13712349999") == [household_id]

    browser_errors.allow(r"status 422: POST .*/console/roster/import")
    browser_errors.allow(r"console: Failed to load resource: .*422")
    errors = flows.import_roster_refused(page, "花名册.csv", BAD_ROSTER.encode())
    assert errors == [(3, "手机号")]
    assert flows.search_households(page, "孙有田") == []

    imported = flows.import_roster(page, "花名册.csv", GOOD_ROSTER.encode())
    assert (imported.households, imported.members) == (2, 3)
    assert len(imported.household_ids) == 2
    assert flows.open_household(page, "孙有田") in imported.household_ids


def test_a_cadre_prints_cards_the_plate_and_a_binding_code_and_deactivates_a_member(
    app: Flask, page: Page
) -> None:
    name, _ = _first_household(app)
    log_in(page, "cadre_qs")
    household_id = flows.open_household(page, name)
    member_id = flows.add_member(page, household_id, "待绑定成员")
    url = flows.binding_code(page, household_id, member_id)
    assert "/q/" in url
    assert flows.print_cards(page, household_id)
    flows.print_plate(page, household_id)
    flows.deactivate_member(page, household_id, member_id)
