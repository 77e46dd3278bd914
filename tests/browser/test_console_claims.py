"""Reviewing claims in the console in a real browser: a villager's self-report with a photo
is approved from the queue by the village's cadre, its photo shows, and the objection a
neighbour then raises in the public notice (公示) is decided."""

from __future__ import annotations

from flask import Flask
from playwright.sync_api import Page, expect

from tests.browser.conftest import BrowserErrors, log_in
from tests.browser.flows.claims import (
    approve_claim,
    expect_full_photo,
    expect_photos_loaded,
    object_to,
    open_claim_from_queue,
    open_queue,
    reject_claim,
    resolve_objection,
    self_report_with_photo,
    villagers_of_qingshui,
)


def test_a_self_report_with_a_photo_is_approved_from_the_queue_and_its_objection_decided(
    app: Flask, page: Page
) -> None:
    people = villagers_of_qingshui(app)
    claim_id = self_report_with_photo(app, people.reporter)

    log_in(page, "cadre_qs")
    open_claim_from_queue(page, claim_id, "pending")
    expect(page.locator("#reason")).to_contain_text("共计 4 分")
    expect(page.locator("#note")).to_have_text("打扫村委会广场")
    expect_photos_loaded(page, 1)
    expect_full_photo(page)

    assert approve_claim(page, claim_id) == "in_notice"
    expect(page.locator("#approvals")).to_contain_text("清水村村干部")
    assert claim_id in open_queue(page, "in_notice")

    object_to(app, people.neighbour, claim_id, "那天他不在村里")
    open_claim_from_queue(page, claim_id, "objected")
    expect(page.locator(".objection")).to_contain_text("那天他不在村里")
    assert resolve_objection(page, claim_id, uphold=True, note="有照片为证") == "in_notice"


def test_a_claim_rejected_with_a_reason_leaves_the_pending_tab(app: Flask, page: Page) -> None:
    people = villagers_of_qingshui(app)
    claim_id = self_report_with_photo(app, people.reporter, hours=1)
    log_in(page, "cadre_qs")
    open_claim_from_queue(page, claim_id, "pending")
    reject_claim(page, claim_id, "照片与申报内容不符")
    assert claim_id not in open_queue(page, "pending")
    assert claim_id in open_queue(page, "rejected")


def test_another_villages_cadre_gets_a_not_found_page(
    app: Flask, page: Page, browser_errors: BrowserErrors
) -> None:
    browser_errors.allow(r"status 404: GET .*/console/claims/\d+$")
    browser_errors.allow(r"console: Failed to load resource: .*404")
    people = villagers_of_qingshui(app)
    claim_id = self_report_with_photo(app, people.reporter)
    log_in(page, "cadre_ty")
    assert claim_id not in open_queue(page, "pending")
    response = page.goto(f"/console/claims/{claim_id}")
    assert response is not None and response.status == 404
    expect(page.locator("h1")).to_have_text("没有找到")
