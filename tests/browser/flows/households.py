"""Steps in 农户档案 and 花名册导入, for the browser tests to chain: each takes the page (logged
in as staff of the village), does what a cadre does, checks what the page then shows, and
returns the ids it made or found."""

from __future__ import annotations

import re
from typing import NamedTuple

from playwright.sync_api import Page, expect

CSV = "text/csv"


class Imported(NamedTuple):
    households: int  # added by the import
    members: int
    household_ids: list[int]  # the new households the page lists


def search_households(page: Page, query: str) -> list[int]:
    """Search 农户档案 by a name, a phone number or an address; the households listed."""
    page.goto("/console/households")
    page.fill("form.search input[name=q]", query)
    page.click("form.search button[type=submit]")
    page.wait_for_url(re.compile(r"/console/households\?"))
    rows = page.locator("#households tbody tr[data-household]")
    return [int(rows.nth(i).get_attribute("data-household") or 0) for i in range(rows.count())]


def open_household(page: Page, name: str) -> int:
    """Find the household named `name` (or with a member, phone or address of that text)
    and open it; its id."""
    found = search_households(page, name)
    assert found, f"no household found for {name}"
    page.click(f'#households tr[data-household="{found[0]}"] td:first-child a')
    page.wait_for_url(re.compile(rf"/console/households/{found[0]}$"))
    expect(page.locator("#household-name")).to_be_visible()
    return found[0]


def _at_household(page: Page, household_id: int) -> None:
    if not re.search(rf"/console/households/{household_id}(#.*)?$", page.url):
        page.goto(f"/console/households/{household_id}")


def member_row(page: Page, name: str) -> int:
    """The id of the member named `name` on the household page."""
    row = page.locator(
        "#members tr[data-member]", has=page.locator("td.member-name", has_text=name)
    )
    expect(row).to_have_count(1)
    return int(row.get_attribute("data-member") or 0)


def add_member(
    page: Page, household_id: int, name: str, phone: str = "", relation: str = "子女"
) -> int:
    """Add a member to the household; the new member's id."""
    _at_household(page, household_id)
    form = page.locator("#add-member form")
    form.locator("input[name=name]").fill(name)
    form.locator("select[name=relation]").select_option(relation)
    form.locator("input[name=phone]").fill(phone)
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(rf"/console/households/{household_id}$"))
    member_id = member_row(page, name)
    row = page.locator(f'#members tr[data-member="{member_id}"]')
    expect(row.locator(".member-state")).to_have_text("在册")
    if phone:
        expect(row.locator(".member-phone")).to_have_text(phone)
    return member_id


def deactivate_member(page: Page, household_id: int, member_id: int) -> None:
    """停用 a member (moved away, deceased), answering the page's question with yes."""
    _at_household(page, household_id)
    page.once("dialog", lambda dialog: dialog.accept())
    row = page.locator(f'#members tr[data-member="{member_id}"]')
    row.locator("button.danger", has_text="停用").click()
    page.wait_for_load_state()
    expect(page.locator(f'#members tr[data-member="{member_id}"] .member-state')).to_have_text(
        "已停用"
    )


def binding_code(page: Page, household_id: int, member_id: int) -> str:
    """Make a member's binding code (绑定码); the link its QR carries."""
    _at_household(page, household_id)
    page.locator(f'#members tr[data-member="{member_id}"] button', has_text="绑定码").click()
    expect(page.locator("#binding-code img.binding-qr")).to_be_visible()
    loaded = page.locator("#binding-code img.binding-qr").evaluate("img => img.naturalWidth")
    assert loaded > 0
    return page.locator("#binding-code .token-url").inner_text()


def print_cards(page: Page, household_id: int) -> bytes:
    """The household's member cards as the print link gives them: an A4 PDF."""
    _at_household(page, household_id)
    href = page.locator("#print-cards").get_attribute("href")
    assert href
    response = page.request.get(href)
    assert response.status == 200
    assert response.headers["content-type"] == "application/pdf"
    data = response.body()
    assert data.startswith(b"%PDF")
    return data


def print_plate(page: Page, household_id: int) -> None:
    """Open the household's plate (门牌) page and check its picture is drawn."""
    _at_household(page, household_id)
    page.click("#print-plate")
    page.wait_for_url(re.compile(rf"/console/households/{household_id}/plate$"))
    plate = page.locator("img.plate")
    expect(plate).to_be_visible()
    page.wait_for_function("() => document.querySelector('img.plate').naturalWidth > 0")


def _upload(page: Page, filename: str, data: bytes, create_groups: bool) -> None:
    page.goto("/console/roster/import")
    page.set_input_files(
        "#roster-form input[name=file]",
        files=[{"name": filename, "mimeType": CSV, "buffer": data}],
    )
    if create_groups:
        page.check("#roster-form input[name=create_groups]")
    page.click("#roster-form button[type=submit]")
    page.wait_for_load_state()


def import_roster_refused(
    page: Page, filename: str, data: bytes, create_groups: bool = False
) -> list[tuple[int, str]]:
    """Upload a roster that has errors: nothing is imported, and the page lists each error;
    (row, column) of each. The answer is a 422: the test allows it in `browser_errors`."""
    _upload(page, filename, data, create_groups)
    expect(page.locator(".refusal")).to_have_attribute("data-code", "roster_invalid")
    rows = page.locator("#roster-errors tbody tr")
    found = []
    for i in range(rows.count()):
        cells = rows.nth(i).locator("td")
        found.append((int(cells.nth(0).inner_text()), cells.nth(1).inner_text()))
    return found


def import_roster(page: Page, filename: str, data: bytes, create_groups: bool = False) -> Imported:
    """Upload a good roster; what it added, as the page says."""
    _upload(page, filename, data, create_groups)
    page.wait_for_url(re.compile(r"/console/roster/import\?done="))
    expect(page.locator("#imported")).to_be_visible()
    links = page.locator("#new-households a")
    ids = [
        int((links.nth(i).get_attribute("href") or "").rsplit("/", 1)[1])
        for i in range(links.count())
    ]
    return Imported(
        int(page.locator("#count-households").inner_text()),
        int(page.locator("#count-members").inner_text()),
        ids,
    )
