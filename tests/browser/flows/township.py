"""Browser steps of the township office's pages: open an item of the catalog and edit it
(a new version), change the policy, approve or reject a claim past a village's budget, and
open the statistics, the audit log and the points report. Each step starts from wherever the
page is, asserts what the township admin sees afterwards, and returns what a later step
needs."""

from __future__ import annotations

import re

from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import select

from backend.clock import now, village_tz
from backend.extensions import db
from points import claims
from points.models import Household, RuleItem, User
from points.scope import Actor


def open_rules(page: Page) -> None:
    """Open 积分细则 from the menu."""
    page.goto("/console/")
    page.click("header .menu a[href='/console/rules']")
    page.wait_for_url(re.compile(r"/console/rules"))
    expect(page.locator("#catalog")).to_be_visible()


def open_item(page: Page, code: str) -> int:
    """Open an item of the catalog shown by its code; its id."""
    open_rules(page)
    page.click(f"#catalog tr[data-code='{code}'] a")
    page.wait_for_url(re.compile(r"/console/rules/items/\d+"))
    found = re.search(r"/items/(\d+)", page.url)
    assert found
    return int(found.group(1))


def current_version(page: Page) -> int:
    text = page.locator("#current-version").inner_text()
    found = re.search(r"\d+", text)
    assert found, text
    return int(found.group(0))


def recorded_under(page: Page, version: int) -> int:
    """How many claims the item page says were decided under `version`."""
    text = page.locator(f"#history .version[data-version='{version}'] p.muted").first.inner_text()
    found = re.search(r"按此版本记分 (\d+) 条", text)
    assert found, text
    return int(found.group(1))


def edit_item(page: Page, code: str, **fields: str) -> int:
    """Open the item, type `fields` (form names: points, name, notice_days …) over its
    form and save; the new version's number, whose changes the history lists by field."""
    open_item(page, code)
    before = current_version(page)
    for name, value in fields.items():
        page.fill(f"#edit [name='{name}']", value)
    page.click("#edit button[type=submit]")
    expect(page.locator("p.done")).to_contain_text("已保存")
    version = current_version(page)
    assert version == before + 1, (before, version)
    changed = page.locator(f"#history .version[data-version='{version}'] tr[data-field]")
    assert sorted(changed.evaluate_all("rows => rows.map(r => r.dataset.field)")) == sorted(fields)
    return version


POLICY_FLAGS = ("allow_village_items", "village_items_skip_review")


def set_policy(page: Page, **fields: str | bool) -> None:
    """Open 积分政策, type `fields` (a text per field, True/False for a check box) and
    save; the page says it is saved and shows what was typed."""
    page.goto("/console/")
    page.click("header .menu a[href='/console/policy']")
    page.wait_for_url(re.compile(r"/console/policy"))
    for name, value in fields.items():
        box = page.locator(f"#policy [name='{name}']")
        if name in POLICY_FLAGS:
            box.set_checked(bool(value))
        elif name == "reset_cycle":
            box.select_option(str(value))
        else:
            box.fill(str(value))
    page.click("#policy button[type=submit]")
    expect(page.locator("#saved")).to_be_visible()
    for name, value in fields.items():
        if name not in POLICY_FLAGS and name != "reset_cycle":
            expect(page.locator(f"#policy [name='{name}']")).to_have_value(str(value))


def award_in_village(app: Flask, cadre: str, code: str) -> list[int]:
    """A cadre's award of `code` to the first household of their village, through the
    claims service as POST /awards makes it (no page of this area awards); the claim ids."""
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == cadre))
        assert user is not None and user.village_id is not None
        household = db.session.scalar(
            select(Household.id)
            .where(Household.village_id == user.village_id)
            .order_by(Household.id)
        )
        item_id = db.session.scalar(select(RuleItem.id).where(RuleItem.code == code))
        assert household is not None and item_id is not None
        made = claims.award(
            db.session,
            Actor.of(db.session, user),
            rule_item_id=item_id,
            units=None,
            note="乡镇测试",
            evidence=[],
            targets=[{"household_id": household}],
            tz=village_tz(),
            now=now(),
        )
        db.session.commit()
        return [c.id for c in made]


def open_budget(page: Page) -> list[int]:
    """Open 额度审批 from the menu; the claims waiting for the township, oldest first."""
    page.goto("/console/")
    page.click("header .menu a[href='/console/budget']")
    page.wait_for_url(re.compile(r"/console/budget"))
    return [
        int(v)
        for v in page.locator("#waiting article[data-claim]").evaluate_all(
            "rows => rows.map(r => r.dataset.claim)"
        )
    ]


def approve_over_budget(page: Page, claim_id: int) -> str:
    """Let a claim past its village's budget; the status it moved to (in_notice or posted)."""
    assert claim_id in open_budget(page), f"claim {claim_id} is not waiting for the township"
    page.click(f"#claim-{claim_id} button.primary")
    done = page.locator("#done")
    expect(done).to_contain_text(f"#{claim_id}")
    expect(page.locator(f"#claim-{claim_id}")).to_have_count(0)
    return str(done.get_attribute("data-status"))


def reject_over_budget(page: Page, claim_id: int, reason: str) -> None:
    assert claim_id in open_budget(page), f"claim {claim_id} is not waiting for the township"
    page.fill(f"#claim-{claim_id} input[name=reason]", reason)
    page.click(f"#claim-{claim_id} button.danger")
    expect(page.locator("#done")).to_have_attribute("data-status", "rejected")


def open_stats(page: Page) -> int:
    """Open 统计; the bars drawn (one per village and chart, one per category)."""
    page.goto("/console/")
    page.click("header .menu a[href='/console/stats']")
    page.wait_for_url(re.compile(r"/console/stats"))
    expect(page.locator("#villages svg.chart").first).to_be_visible()
    expect(page.locator("#trend svg.chart polyline").first).to_be_visible()
    return page.locator("svg.bars rect").count()


def open_audit(page: Page, **filters: str) -> int:
    """Open 操作日志 with `filters` chosen (village, person, action by value; since, until
    as dates); the entries listed on the first page."""
    page.goto("/console/audit")
    for name, value in filters.items():
        field = page.locator(f"#filters [name='{name}']")
        if name in ("since", "until"):
            field.fill(value)
        else:
            field.select_option(value)
    if filters:
        page.click("#filters button[type=submit]")
        page.wait_for_url(re.compile(r"/console/audit\?"))
    return page.locator("table.log tr[data-entry]").count()


def open_reports(page: Page) -> None:
    """Open 积分报表; it checks that issued = outstanding + redeemed + expired."""
    page.goto("/console/")
    page.click("header .menu a[href='/console/reports']")
    page.wait_for_url(re.compile(r"/console/reports"))
    expect(page.locator("#balance-check")).to_have_class(re.compile(r"\bgood\b"))
