"""Every console route, found in the app's url_map, refused where it must be: a visitor
without a session is sent to the login page, a POST without the session's CSRF token changes
nothing, another village's objects are 404 pages, a clerk opens no cadre's page, and every
page carries the HTML security headers. A new console route is covered here as it is added;
one whose path names an id this file cannot fill fails until `_objects` learns it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, g
from flask.testing import FlaskClient
from sqlalchemy import select

from backend.console import session as console_session
from backend.extensions import db
from points.models.base import Base
from tests.factories import (
    World,
    add_reward,
    award,
    check_in,
    counter,
    fund,
    member_token,
    object_to,
    open_activity,
    self_report,
    upload_photo,
)
from tests.support.console import console_login

# Pages a clerk (超市店员) may open in this part of the console; every other page is a
# cadre's or an admin's, which a clerk must not see.
CLERK_PAGES = {
    "console.today",
    "console.login",
    "console.login_post",
    "console.logout",
    "console.password",
}
# The clerk's own pages (积分超市店员): pickup, counter, receipts, shelf, statement.
CLERK_PAGES |= {
    "console.pickup",
    "console.counter",
    "console.counter_receipt",
    "console.shop",
    "console.shop_reward",
    "console.settlements",
    "console.settlements_download",
}
# Tables a page view may write to without changing anything anyone sees: the session's
# last-seen time.
VOLATILE = {"auth_sessions"}


def _routes(app: Flask) -> Iterator[tuple[str, str, str]]:
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("console."):
            continue
        for method in sorted((rule.methods or set()) & {"GET", "POST"}):
            yield rule.endpoint, method, rule.rule


def _snapshot(app: Flask) -> dict[str, list[tuple[Any, ...]]]:
    with app.app_context():
        found = {
            table.name: sorted(
                (tuple(str(v) for v in row) for row in db.session.execute(select(table))),
            )
            for table in Base.metadata.sorted_tables
            if table.name not in VOLATILE
        }
        db.session.rollback()
        return found


@pytest.fixture()
def objects(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int], neighbour: dict[str, int]
) -> dict[str, int]:
    """One object of each kind in village A, by the name a console path gives its id."""
    awarded = award(client, world, items["GOV-ASSEMBLY"], [{"household_id": world.household_x}])
    assert awarded.status_code == 201, awarded.get_json()
    claim_id = awarded.get_json()[0]["id"]
    objected = object_to(client, world, neighbour["user"], claim_id)
    assert objected.status_code == 201, objected.get_json()
    activity_id, token = open_activity(client, world, items["GOV-ASSEMBLY"])
    checked = check_in(client, world, token)
    assert checked.status_code == 201, checked.get_json()
    upload_id = upload_photo(client, world.headers("villager_x"))
    reported = self_report(
        client, world, "villager_x", items["PUB-VOLUNTEER"], 2, evidence=[upload_id]
    )
    assert reported.status_code == 201, reported.get_json()
    # Village A's own items (村规民约): a catalog and an item no other village sees.
    own = client.post(
        "/api/v1/rule-catalogs",
        json={"name": "清水村村规民约", "village_id": world.village_a},
        headers=world.headers("tadmin1"),
    )
    assert own.status_code == 201, own.get_json()
    own_item = client.post(
        f"/api/v1/rule-catalogs/{own.get_json()['id']}/items",
        json={
            "code": "QS-WED",
            "name": "红白喜事简办",
            "category": "乡风文明",
            "class": "bonus",
            "points": 10,
            "kind": "once",
            "applies_to": "household",
            "submit_by": ["cadre"],
        },
        headers=world.headers("tadmin1"),
    )
    assert own_item.status_code == 201, own_item.get_json()
    return {
        "claim_id": claim_id,
        "objection_id": objected.get_json()["id"],
        "activity_id": activity_id,
        "checkin_id": checked.get_json()["checkin_id"]
        if "checkin_id" in checked.get_json()
        else checked.get_json()["id"],
        "upload_id": upload_id,
        "household_id": world.household_x,
        "villager_id": world.head_x,
        "member_id": world.head_x,
        "village_id": world.village_a,
        "group_id": world.group_x,
        "item_id": own_item.get_json()["id"],
        "catalog_id": own.get_json()["id"],
        "township_id": world.township_1,
        "user_id": world.cadre_a,
        **_shop_objects(app, client, world),
    }


def _shop_objects(app: Flask, client: FlaskClient, world: World) -> dict[str, int]:
    """A reward of shop A and a counter redemption of household x there."""
    soap = add_reward(app, world.shop_a, "香皂", 5, 50)
    fund(app, world.household_x, 100)
    card = member_token(app, world.head_x)
    sold = counter(client, world.headers("clerk_a"), world.shop_a, card, [(soap, 1)])
    assert sold.status_code == 201, sold.get_json()
    return {"reward_id": soap, "redemption_id": sold.get_json()["id"]}


def _fill(rule: str, objects: dict[str, int]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(2)
        assert name in objects, f"{rule}: teach _objects the id <{name}>"
        return str(objects[name])

    return re.sub(r"<(?:(\w+):)?(\w+)>", value, rule)


def _send(client: FlaskClient, method: str, url: str, data: dict[str, str] | None = None) -> Any:
    if method == "GET":
        return client.get(url)
    return client.post(url, data=data or {})


def test_a_visitor_without_a_session_is_sent_to_the_login_and_changes_nothing(
    app: Flask, client: FlaskClient, objects: dict[str, int]
) -> None:
    before = _snapshot(app)
    for endpoint, method, rule in _routes(app):
        if endpoint in ("console.login", "console.login_post"):
            continue
        response = _send(client, method, _fill(rule, objects), {"username": "x"})
        assert response.status_code == 303, (method, rule, response.status_code)
        assert response.headers["Location"].startswith("/console/login"), (method, rule)
    assert _snapshot(app) == before


def test_no_post_changes_anything_without_the_sessions_csrf_token(
    app: Flask, client: FlaskClient, world: World, objects: dict[str, int]
) -> None:
    console_login(client, "cadre_a")
    before = _snapshot(app)
    posts = [(e, r) for e, m, r in _routes(app) if m == "POST" and e != "console.login_post"]
    assert posts  # logout at least
    for _endpoint, rule in posts:
        for token in (None, "0" * 64):
            data = {"reason": "测试", "note": "测试"}
            if token:
                data["csrf_token"] = token
            response = client.post(_fill(rule, objects), data=data)
            assert response.status_code == 403, (rule, token, response.status_code)
            assert "页面已过期或来源不明" in response.text
    assert _snapshot(app) == before


@pytest.mark.parametrize("stranger", ["cadre_b", "tadmin2"])
def test_another_villages_objects_are_not_found_and_nothing_changes(
    app: Flask, client: FlaskClient, world: World, objects: dict[str, int], stranger: str
) -> None:
    """cadre_b is of village B in the same township; tadmin2 of another township."""
    token = console_login(client, stranger)
    before = _snapshot(app)
    checked = []
    for endpoint, method, rule in _routes(app):
        if "<" not in rule:
            continue
        data = {"csrf_token": token, "reason": "测试", "note": "测试", "name": "测试"}
        response = _send(client, method, _fill(rule, objects), data)
        response.close()
        assert response.status_code in (403, 404), (stranger, method, rule, response.status_code)
        if response.mimetype == "text/html":
            assert "refusal" in response.text
        checked.append(endpoint)
    assert len(checked) >= 10, checked  # claims, activities, households, uploads, …
    assert _snapshot(app) == before


def test_a_clerk_opens_no_cadres_page(
    app: Flask, client: FlaskClient, world: World, objects: dict[str, int]
) -> None:
    console_login(client, "clerk_a")
    for endpoint, method, rule in _routes(app):
        if method != "GET" or endpoint in CLERK_PAGES:
            continue
        response = client.get(_fill(rule, objects))
        response.close()
        assert response.status_code in (403, 404), (rule, response.status_code)


def test_every_page_answers_with_the_html_security_headers(
    app: Flask, client: FlaskClient, world: World, objects: dict[str, int]
) -> None:
    console_login(client, "cadre_a")
    for endpoint, method, rule in _routes(app):
        if method != "GET" or endpoint == "console.login":
            continue
        response = client.get(_fill(rule, objects))
        response.close()  # a photo is sent from its file
        assert response.status_code < 500, (rule, response.status_code)
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        if response.mimetype == "text/html":
            policy = response.headers["Content-Security-Policy"]
            assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy, rule
            assert response.headers["X-Frame-Options"] == "DENY", rule
            assert "<script>" not in response.text, rule
            assert not re.search(r"\son[a-z]+=", response.text), rule  # no inline handler
            assert not re.search(r"\sstyle=\"", response.text), rule  # no inline style


def test_every_page_in_the_menu_has_its_place_in_the_menus_order(app: Flask) -> None:
    from backend.console import MENU, MENU_ORDER

    assert [endpoint for endpoint, _, _ in MENU if endpoint not in MENU_ORDER] == []


def test_the_csrf_token_kept_for_a_request_follows_its_session(app: Flask) -> None:
    # Drawn once per request and kept, but never for another session: a login within the
    # request changes g.session_id, and a form drawn after it must carry the new session's.
    with app.test_request_context("/console/"):
        assert console_session.csrf_token() == ""
        g.session_id = "first-session"
        first = console_session.csrf_token()
        assert first and console_session.csrf_token() == first
        g.session_id = "second-session"
        second = console_session.csrf_token()
        assert second != first
    with app.test_request_context("/console/"):
        g.session_id = "second-session"
        assert console_session.csrf_token() == second
