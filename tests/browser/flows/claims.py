"""Browser steps of the review pages (审核): open the queue and a claim, approve, reject,
withdraw, resolve an objection, and check that a claim's photos load. Each step starts from
wherever the page is, asserts what the reviewer sees afterwards, and returns what a later
step needs."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

STATUS_TABS = {
    "pending": "待审核",
    "approved": "待乡镇审批",
    "in_notice": "公示中",
    "objected": "有异议",
    "posted": "已入账",
    "rejected": "已驳回",
    "withdrawn": "已撤回",
}


def open_queue(page: Page, status: str = "pending") -> list[int]:
    """Open 审核 from the menu and the tab of `status`; the claim ids listed, newest first."""
    page.goto("/console/")
    page.click("header .menu a:text-is('审核')")
    page.wait_for_url(re.compile(r"/console/claims"))
    page.click(f".tabs a[data-status='{status}']")
    expect(page.locator("#claims")).to_have_attribute("data-status", status)
    return [
        int(v)
        for v in page.locator("#claims tr[data-claim]").evaluate_all(
            "rows => rows.map(r => r.dataset.claim)"
        )
    ]


def open_claim_from_queue(page: Page, claim_id: int, status: str = "pending") -> None:
    """Find the claim in the queue's `status` tab and open it."""
    assert claim_id in open_queue(page, status), f"claim {claim_id} not in the {status} tab"
    page.click(f"#claims tr[data-claim='{claim_id}'] a:text-is('查看')")
    page.wait_for_url(re.compile(rf"/console/claims/{claim_id}$"))


def open_claim(page: Page, claim_id: int) -> None:
    if not re.search(rf"/console/claims/{claim_id}$", page.url):
        page.goto(f"/console/claims/{claim_id}")
    expect(page.locator("h1")).to_contain_text(f"申报 #{claim_id}")


def claim_status(page: Page) -> str:
    return str(page.locator("#status").get_attribute("data-status"))


def approve_claim(page: Page, claim_id: int) -> str:
    """Approve the claim (审核通过); the status it moved to (in_notice, posted, or still
    pending when a second cadre must approve)."""
    open_claim(page, claim_id)
    page.click("form#approve button[type=submit]")
    page.wait_for_url(re.compile(rf"/console/claims/{claim_id}$"))
    expect(page.locator(".refusal")).to_have_count(0)
    expect(page.locator("form#approve")).to_have_count(0)
    return claim_status(page)


def reject_claim(page: Page, claim_id: int, reason: str) -> None:
    """Reject with a reason the household reads."""
    open_claim(page, claim_id)
    page.fill("form#reject textarea[name=reason]", reason)
    page.click("form#reject button[type=submit]")
    expect(page.locator("#status")).to_have_attribute("data-status", "rejected")
    expect(page.locator("#reject-reason")).to_contain_text(reason)


def withdraw_claim(page: Page, claim_id: int, reason: str) -> None:
    """Withdraw (撤回) a claim that has not posted, with a reason the household reads."""
    open_claim(page, claim_id)
    page.click("#withdraw summary")
    page.fill("#withdraw textarea[name=reason]", reason)
    page.click("#withdraw button[type=submit]")
    expect(page.locator("#status")).to_have_attribute("data-status", "withdrawn")
    expect(page.locator("#withdraw-reason")).to_contain_text(reason)


def resolve_objection(page: Page, claim_id: int, uphold: bool, note: str = "已核实") -> str:
    """Decide the claim's first open objection: uphold the claim (异议不成立) or overturn it
    (异议成立, the claim is rejected); the claim's status afterwards."""
    open_claim(page, claim_id)
    objection = page.locator(".objection[data-status='open']").first
    objection_id = objection.get_attribute("data-objection")
    objection.locator("input[name=note]").fill(note)
    objection.locator(f"button[value={'uphold' if uphold else 'overturn'}]").click()
    page.wait_for_url(re.compile(rf"/console/claims/{claim_id}$"))
    decided = page.locator(f".objection[data-objection='{objection_id}']")
    expect(decided).to_have_attribute("data-status", "upheld" if uphold else "overturned")
    expect(decided).to_contain_text(note)
    if not uphold:
        expect(page.locator("#status")).to_have_attribute("data-status", "rejected")
    return claim_status(page)


def expect_photos_loaded(page: Page, count: int) -> None:
    """The claim's `count` thumbnails are shown (decoded, not broken images)."""
    thumbs = page.locator("#photos img")
    expect(thumbs).to_have_count(count)
    for index in range(count):
        thumb = thumbs.nth(index)
        thumb.scroll_into_view_if_needed()
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=thumb.element_handle()
        )


def expect_full_photo(page: Page, index: int = 0) -> None:
    """A thumbnail opens its photo full size in a new tab: the link answers the whole JPEG to
    this login. (Fetched rather than opened: a bare image tab asks for /favicon.ico, which
    this server does not have.)"""
    link = page.locator("#photos a").nth(index)
    expect(link).to_have_attribute("target", "_blank")
    href = link.get_attribute("href")
    assert href is not None
    answer = page.request.get(href)
    assert answer.status == 200, answer.status
    assert answer.headers["content-type"] == "image/jpeg"
    assert len(answer.body()) > 0
