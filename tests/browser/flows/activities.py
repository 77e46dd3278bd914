"""Browser steps of 活动签到, to chain into longer stories: create an activity, open its poster
and display screen, check a villager in by their member card (代签), wait for a check-in to
arrive in the live list. Each step asserts what the cadre sees and returns what the next
step needs.

Two helpers act outside the browser, on the served app's database: a villager checking in
from their phone (the mini-program's POST /api/v1/checkins) and the text a scanner reads
from a member card."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import select

from backend.caller import qr_codec, token_settings
from backend.clock import now
from backend.extensions import db
from backend.qr import token_url
from points import cards, sessions
from points.activities.codes import issue_code
from points.models import Activity, Household, User, Village, Villager
from tests.support.clock import SHANGHAI


def local_field(moment: datetime) -> str:
    """A moment as a datetime-local field takes it: the village's clock, to the minute."""
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M")


def create_activity(
    page: Page,
    title: str,
    item_text: str,
    *,
    starts_at: datetime,
    ends_at: datetime,
    qr_mode: str = "static",
    place: str | None = None,
    capacity: int | None = None,
) -> int:
    """Fill in 新建活动 on /console/activities (the first item whose label has `item_text`)
    and land on the new activity's page; its id."""
    page.goto("/console/activities")
    form = page.locator("#create-form")
    form.locator("input[name=title]").fill(title)
    option = form.locator("select[name=rule_item_id] option", has_text=item_text).first
    value = option.get_attribute("value")
    assert value, f"no check-in item like {item_text!r}"
    form.locator("select[name=rule_item_id]").select_option(value=value)
    form.locator("input[name=starts_at]").fill(local_field(starts_at))
    form.locator("input[name=ends_at]").fill(local_field(ends_at))
    form.locator(f"input[name=qr_mode][value={qr_mode}]").check()
    if place:
        form.locator("input[name=place]").fill(place)
    if capacity:
        form.locator("input[name=capacity]").fill(str(capacity))
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"/console/activities/\d+$"))
    expect(page.locator("h1")).to_contain_text(title)
    found = re.search(r"/console/activities/(\d+)$", page.url)
    assert found
    return int(found.group(1))


def open_activity_page(page: Page, activity_id: int) -> None:
    if not page.url.endswith(f"/console/activities/{activity_id}"):
        page.goto(f"/console/activities/{activity_id}")


def open_poster(page: Page, activity_id: int) -> bytes:
    """打印海报: the link opens the poster PDF in a new window; fetched here with the page's
    login (a headless browser saves a PDF rather than showing it). The PDF's bytes."""
    open_activity_page(page, activity_id)
    link = page.locator("#poster")
    expect(link).to_have_text("打印海报")
    expect(link).to_have_attribute("target", "_blank")
    href = link.get_attribute("href")
    assert href == f"/console/activities/{activity_id}/poster.pdf"
    response = page.request.get(href)
    assert response.status == 200
    assert response.headers["content-type"] == "application/pdf"
    body = response.body()
    assert body.startswith(b"%PDF")
    return body


def open_display(page: Page, activity_id: int, title: str) -> Page:
    """打开大屏: a new window with the full-screen code, showing the activity's title."""
    open_activity_page(page, activity_id)
    with page.expect_popup() as opened:
        page.locator("#display button").click()
    screen = opened.value
    screen.wait_for_url(re.compile(rf"/activities/{activity_id}/display#key="))
    expect(screen.locator("#title")).to_have_text(title)
    expect(screen.locator("#code svg")).to_be_visible()
    return screen


def proxy_check_in(page: Page, activity_id: int, card_text: str) -> str:
    """代签: a USB scanner types the card's text and Enter into the focused scanner field.
    The line beside the field (who was checked in, or the refusal); the field is left empty
    and focused for the next card."""
    open_activity_page(page, activity_id)
    field = page.locator("#member-card")
    field.click()
    page.eval_on_selector("#proxy", "el => el.setAttribute('data-stale', '')")
    page.keyboard.type(card_text)
    page.keyboard.press("Enter")
    page.wait_for_selector("#proxy:not([data-stale])")
    field = page.locator("#member-card")
    expect(field).to_have_value("")
    expect(field).to_be_focused()
    result = page.locator("#proxy-result")
    expect(result).not_to_be_empty()
    return result.inner_text().strip()


def wait_for_checkin(page: Page, name: str) -> None:
    """The live list (polled every 3 s) shows `name` checked in."""
    row = page.locator("#checkins tr.checkin", has=page.locator(".who", has_text=name))
    expect(row.first).to_be_visible(timeout=10_000)


# ---- outside the browser: the villager's phone, the member card ------------------------------


def villagers_of(app: Flask, village_name: str, count: int) -> list[tuple[int, str]]:
    """The first `count` villagers of a village (id, name), in roster order."""
    with app.app_context():
        rows = db.session.execute(
            select(Villager.id, Villager.name)
            .join(Household, Household.id == Villager.household_id)
            .join(Village, Village.id == Household.village_id)
            .where(Village.name == village_name, Villager.active.is_(True))
            .order_by(Villager.id)
            .limit(count)
        ).all()
        return [(villager_id, name) for villager_id, name in rows]


def member_card_text(app: Flask, villager_id: int) -> str:
    """What a scanner reads from the villager's member card: its whole link."""
    with app.app_context():
        villager = db.session.get(Villager, villager_id)
        assert villager is not None
        return token_url(app.config["PUBLIC_BASE_URL"], cards.card_token(qr_codec(), villager))


def villager_checks_in(app: Flask, activity_id: int, villager_id: int) -> dict[str, Any]:
    """The villager, bound to WeChat, scans the activity's code on their phone (POST
    /api/v1/checkins, as the mini-program sends it); the check-in's answer."""
    with app.app_context():
        user = db.session.scalar(select(User).where(User.villager_id == villager_id))
        if user is None:
            user = User(
                role="villager", openid=f"openid-browser-{villager_id}", villager_id=villager_id
            )
            db.session.add(user)
            db.session.flush()
        pair = sessions.login(db.session, token_settings(), user)
        activity = db.session.get(Activity, activity_id)
        assert activity is not None
        code = issue_code(qr_codec(), activity, now())
        db.session.commit()
        scanned = token_url(app.config["PUBLIC_BASE_URL"], code.token)
    response = app.test_client().post(
        "/api/v1/checkins",
        json={"token": scanned},
        headers={
            "Authorization": f"Bearer {pair.access_token}",
            "X-Device-Id": f"phone-{villager_id}",
        },
    )
    assert response.status_code == 201, response.get_json()
    answer: dict[str, Any] = response.get_json()
    return answer
