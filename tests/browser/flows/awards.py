"""积分录入 in the browser, as steps other browser tests chain (the cadre's day): find an
item, tick targets, preview, send; each step asserts what the page shows."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

NEW = "/console/awards/new"


def open_awards(page: Page, village_name: str | None = None) -> None:
    """The 积分录入 page; a township or county admin picks the village first."""
    page.goto(NEW)
    expect(page.locator("h1")).to_have_text("积分录入")
    if village_name is not None:
        page.select_option(".village-pick select[name=village_id]", label=village_name)
        page.click(".village-pick button[type=submit]")
    expect(page.locator("#award-form")).to_be_visible()


def choose_item(page: Page, item_text: str, category: str | None = None) -> None:
    """Pick the item whose code or name is `item_text` (optionally within a category)."""
    if category is not None:
        with page.expect_response(re.compile(r"/console/awards/items")):
            page.select_option("select[name=category]", label=category)
    with page.expect_response(re.compile(r"/console/awards/items")):
        page.fill("input[name=q]", item_text)
    item = page.locator("#item-list .award-item", has_text=item_text).first
    item.locator("input[name=rule_item_id]").check()
    expect(item.locator("input[name=rule_item_id]")).to_be_checked()


def _find_targets(page: Page, *, group: str | None = None, search: str | None = None) -> None:
    if group is not None:
        with page.expect_response(re.compile(r"/console/awards/targets")):
            page.select_option("select[name=group]", label=group)
    if search is not None:
        with page.expect_response(re.compile(r"/console/awards/targets")):
            page.fill("input[name=tq]", search)


def tick_group(page: Page, group_name: str) -> None:
    """Tick a whole villager group."""
    _find_targets(page, group=group_name)
    page.locator(".whole-group", has_text=group_name).locator("input").check()


def tick_household(page: Page, household_name: str) -> None:
    """Find a household by its name and tick it whole (a member item goes to its head)."""
    _find_targets(page, search=household_name)
    row = page.locator("table.targets tbody tr", has_text=household_name).first
    row.locator("input[value^='h:']").check()


def fill_details(page: Page, *, units: int | None = None, note: str | None = None) -> None:
    if units is not None:
        page.fill("input[name=units]", str(units))
    if note is not None:
        page.fill("textarea[name=note]", note)


def preview(page: Page) -> Locator:
    """The dry run: the preview's rows, one per target."""
    with page.expect_response(re.compile(r"/console/awards/preview")):
        page.click("button.preview-button")
    expect(page.locator("#preview table.preview")).to_be_visible()
    return page.locator("#preview table.preview tbody tr")


def submit(page: Page, expected: int | None = None) -> list[int]:
    """Send the award; the ids of the claims it made, from the result's links."""
    page.click("#award-form button[type=submit]")
    page.wait_for_url(re.compile(r"/console/awards/new\?.*done="))
    done = page.locator("#done")
    if expected is not None:
        expect(done.locator("h2")).to_have_text(f"已录入 {expected} 条")
    links = done.locator("a[href^='/console/claims/']")
    hrefs = [links.nth(i).get_attribute("href") or "" for i in range(links.count())]
    return [int(href.rsplit("/", 1)[1]) for href in hrefs]


def batch_award(
    page: Page,
    item_text: str,
    group_name: str,
    *,
    category: str | None = None,
    units: int | None = None,
    note: str | None = None,
    village_name: str | None = None,
) -> list[int]:
    """Award an item to every household of a villager group, after the preview shows one
    row per household; returns the claim ids."""
    open_awards(page, village_name)
    choose_item(page, item_text, category)
    tick_group(page, group_name)
    fill_details(page, units=units, note=note)
    rows = preview(page)
    households = rows.count()
    assert households > 0
    ids = submit(page, households)
    assert len(ids) == households
    return ids


def deduct(
    page: Page,
    household_name: str,
    item_text: str,
    note: str,
    *,
    village_name: str | None = None,
) -> list[int]:
    """A deduction for one household, with its reason; returns the claim id in a list."""
    open_awards(page, village_name)
    choose_item(page, item_text)
    tick_household(page, household_name)
    fill_details(page, note=note)
    rows = preview(page)
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(household_name)
    ids = submit(page, 1)
    expect(page.locator("#done")).to_contain_text("-")
    return ids
