"""The county's steps in the console, for any test to chain: set up townships and villages,
create staff accounts, reset a password, and the first login of someone whose password an
admin chose (sent to 修改密码 until they set their own)."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect


def _row_id(page: Page, table: str, name: str, attribute: str) -> int:
    row = page.locator(f"#{table} tbody tr", has=page.locator("td.name", has_text=name))
    expect(row).to_have_count(1)
    value = row.get_attribute(attribute)
    assert value is not None
    return int(value)


def create_township(page: Page, name: str, code: str = "") -> int:
    """A county admin creates a township; its id."""
    page.goto("/console/townships")
    form = page.locator("#new-township form")
    form.locator("input[name=name]").fill(name)
    form.locator("input[name=code]").fill(code)
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"/console/townships$"))
    return _row_id(page, "townships", name, "data-township")


def rename_township(page: Page, township_id: int, name: str) -> None:
    page.goto("/console/townships")
    form = page.locator(f'#townships tr[data-township="{township_id}"] form')
    form.locator("input[name=name]").fill(name)
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"/console/townships$"))
    row = page.locator(f'#townships tr[data-township="{township_id}"] td.name')
    expect(row).to_have_text(name)


def create_village(page: Page, name: str, township: str | None = None) -> int:
    """A county or township admin creates a village (in `township`, by name, when the admin
    has several); its id."""
    page.goto("/console/villages")
    form = page.locator("#new-village form")
    if township is not None:
        form.locator("select[name=township_id]").select_option(label=township)
    form.locator("input[name=name]").fill(name)
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"/console/villages$"))
    return _row_id(page, "villages", name, "data-village")


def rename_village(page: Page, village_id: int, name: str) -> None:
    page.goto("/console/villages")
    form = page.locator(f'#villages tr[data-village="{village_id}"] form')
    form.locator("input[name=name]").fill(name)
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"/console/villages$"))
    expect(page.locator(f'#villages tr[data-village="{village_id}"] td.name')).to_have_text(name)


def create_staff(
    page: Page,
    username: str,
    password: str,
    role: str,
    *,
    name: str = "",
    place: str | None = None,
) -> int:
    """An admin creates a staff account: `role` is cadre, clerk, township_admin or
    county_admin; `place` the label of the village (as the picker shows it: "青石镇 清水村"),
    shop or township the role needs. Lands on the account's page; its id."""
    page.goto("/console/users")
    form = page.locator("#new-user form")
    form.locator("input[name=username]").fill(username)
    form.locator("input[name=name]").fill(name)
    form.locator("input[name=password]").fill(password)
    form.locator("select[name=role]").select_option(role)
    picker = {"township_admin": "township_id", "cadre": "village_id", "clerk": "shop_id"}
    if role in picker:
        select = form.locator(f"select[name={picker[role]}]")
        expect(select).to_be_visible()  # only the picker the role needs is shown
        if place is not None:
            select.select_option(label=place)
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"/console/users/\d+$"))
    expect(page.locator("h1")).to_have_text(f"账号 {username}")
    expect(page.locator("#state")).to_contain_text("待本人改密码")
    return int(page.url.rsplit("/", 1)[1])


def reset_password(page: Page, user_id: int, password: str) -> None:
    """An admin sets a temporary password; the holder must change it at the next login."""
    page.goto(f"/console/users/{user_id}")
    form = page.locator("#reset form")
    form.locator("input[name=password]").fill(password)
    form.locator("button[type=submit]").click()
    expect(page.locator("#reset-done")).to_be_visible()


def first_login(page: Page, username: str, password: str) -> None:
    """Log in with a password an admin chose: the console shows 修改密码 first."""
    page.goto("/console/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/console/password$"))
    expect(page.locator("#must-change")).to_be_visible()


def change_password(page: Page, current: str, new: str) -> None:
    """Set one's own password on 修改密码; lands on 今日."""
    if not page.url.endswith("/console/password"):
        page.goto("/console/password")
    form = page.locator("#password form")
    form.locator("input[name=current_password]").fill(current)
    form.locator("input[name=new_password]").fill(new)
    form.locator("input[name=new_password_again]").fill(new)
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"/console/$"))
    expect(page.locator("h1")).to_have_text("今日待办")
