"""What a supermarket clerk (店员) may read: their shop, its shelf and its orders, and at the
counter, after scanning a member card, the card holder's name, household, available points
and whether the household qualifies. Nothing of the villages' records: households, members,
passbooks, claims, photos, activities, check-ins, boards and statistics are "not found"
(404) to a clerk, or refused by role (403) where no clerk may ever act.

Every GET route of the app is classified here (a new one fails until it is), and called as
the clerk of shop A, whose shop serves village A, in a village A full of records."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from backend.extensions import db
from points.models import Account, PublicLink, RuleItemVersion
from points.shop.counter import CardHolder
from tests.factories import (
    World,
    add_household,
    add_reward,
    default_items,
    fund,
    member_token,
    open_activity,
    order,
    scan,
    self_report,
    set_policy,
    upload_photo,
)
from tests.support.reads import account_of, catalog_id, error_code
from tests.support.scope import database_state

API = "/api/v1"

# Text only village A's records carry (household x, its claim, its check-in's activity):
# none of it may reach the clerk. Household w's names are on its order at shop A, which
# the clerk handles, so they are not here.
SECRETS = ["户主x", "配偶x", "x户", "清水村1号", "13800000000", "秘申报x", "秘大会a", "秘细节"]
CARD_HOLDER_KEYS = {"villager_name", "household_id", "household_name", "available", "qualifies"}


def build_village_a(app: Flask, client: FlaskClient, world: World) -> dict[str, Any]:
    """Village A with a passbook, a claim with a photo, an activity with a check-in, a
    public plate and a board link, and household w's orders at shop A (one picked up)."""
    items = default_items(app, world)
    set_policy(client, world, qualification_line=0)
    fund(app, world.household_x, 100)
    photo = upload_photo(client, world.headers("villager_x"))
    claim = self_report(
        client, world, "villager_x", items["PUB-VOLUNTEER"], 2, note="秘申报x", evidence=[photo]
    )
    assert claim.status_code == 201, claim.get_json()
    activity, code = open_activity(
        client, world, items["GOV-ASSEMBLY"], title="秘大会a", note="秘细节"
    )
    checkin = client.post(
        f"{API}/checkins", json={"token": code}, headers=world.headers("villager_x")
    )
    assert checkin.status_code == 201, checkin.get_json()
    plate = client.post(
        f"{API}/households/{world.household_x}/plate/renew", headers=world.headers("cadre_a")
    )
    assert plate.status_code == 201, plate.get_json()
    board = client.get(
        f"{API}/villages/{world.village_a}/board.png", headers=world.headers("cadre_a")
    )
    assert board.status_code == 200

    w = add_household(app, world.village_a, "邻居w户", "店里顾客", openid="openid-w")
    fund(app, w["household"], 100)
    soap = add_reward(app, world.shop_a, "香皂", 5, 50)
    buyer = world.headers(w["user"])
    picked = order(client, buyer, world.shop_a, [(soap, 1)])
    assert picked.status_code == 201, picked.get_json()
    assert (
        scan(client, world.headers("clerk_a"), picked.get_json()["pickup_token"]).status_code == 200
    )
    waiting = order(client, buyer, world.shop_a, [(soap, 2)])
    assert waiting.status_code == 201, waiting.get_json()
    with app.app_context():
        tokens = dict(db.session.execute(select(PublicLink.kind, PublicLink.token)).all())
        version = db.session.scalar(
            select(RuleItemVersion.id).where(RuleItemVersion.item_id == items["PUB-VOLUNTEER"])
        )
    return {
        "township": world.township_1,
        "village": world.village_a,
        "group": world.group_x,
        "household": world.household_x,
        "villager": world.head_x,
        "claim": claim.get_json()["id"],
        "upload": photo,
        "activity": activity,
        "checkin": checkin.get_json()["checkin_id"],
        "shop": world.shop_a,
        "reward": soap,
        "redemption": waiting.get_json()["id"],
        "picked": picked.get_json()["id"],
        "catalog": catalog_id(app, world.township_1),
        "item": items["PUB-VOLUNTEER"],
        "version": version,
        "plate_token": tokens["plate"],
        "board_token": tokens["board"],
        "month": picked.get_json()["created_at"][:7],
    }


# endpoint -> (url, status for the clerk of shop A, "empty" when a 200 list must be empty)
CLERK_GETS: dict[str, tuple[str, int, str | None]] = {
    # the counter's own: the shop, its shelf, its orders, its statement
    "shop.list_shops": ("/shops", 200, None),
    "shop.get_shop": ("/shops/{shop}", 200, None),
    "shop.list_rewards": ("/shops/{shop}/rewards", 200, None),
    "shop.get_reward": ("/rewards/{reward}", 200, None),
    # a shelf picture is public; the scene's reward has none
    "shop.reward_image": ("/rewards/{reward}/image", 404, None),
    "shop.stock_movements": ("/rewards/{reward}/stock-movements", 200, None),
    "shop.list_redemptions": ("/redemptions", 200, None),
    "shop.get_redemption": ("/redemptions/{picked}", 200, None),
    "shop.pickup_png": ("/redemptions/{redemption}/pickup.png", 404, None),  # the villager's
    "shop.settlement": ("/shops/{shop}/settlements?month={month}", 200, None),
    # their own account, township and its rules (the exchange rate for cash at the counter)
    "auth.me": ("/me", 200, None),
    "registry.list_townships": ("/townships", 200, None),
    "registry.get_township": ("/townships/{township}", 200, None),
    "rules.list_catalogs": ("/rule-catalogs", 200, None),
    "rules.get_catalog": ("/rule-catalogs/{catalog}", 200, None),
    "rules.export_catalog": ("/rule-catalogs/{catalog}/export", 200, None),
    "rules.list_items": ("/rule-catalogs/{catalog}/items", 200, None),
    "rules.get_item": ("/rule-items/{item}", 200, None),
    "rules.list_versions": ("/rule-items/{item}/versions", 200, None),
    "rules.get_version": ("/rule-item-versions/{version}", 200, None),
    # public, for anyone
    "boards.plate": ("/plates/{plate_token}", 200, None),
    "api-docs.openapi_json": ("/openapi.json", 200, None),
    "pages.docs": ("/docs", 200, None),
    # the villages' records: not found, or empty lists
    "registry.list_villages": ("/villages", 200, "empty"),
    "registry.get_village": ("/villages/{village}", 404, None),
    "registry.list_groups": ("/villages/{village}/groups", 404, None),
    "registry.list_households": ("/villages/{village}/households", 404, None),
    "registry.get_household": ("/households/{household}", 404, None),
    "registry.get_villager": ("/villagers/{villager}", 404, None),
    "registry.member_card": ("/villagers/{villager}/card.png", 404, None),
    "registry.village_cards": ("/villages/{village}/cards.pdf", 404, None),
    "registry.member_card_link": ("/villagers/{villager}/card-link", 404, None),
    "points.household_account": ("/households/{household}/account", 404, None),
    "points.household_ledger": ("/households/{household}/ledger", 404, None),
    "claims.list_claims": ("/claims", 200, "empty"),
    "points.reversal_requests": ("/reversal-requests", 200, "empty"),
    "claims.get_claim": ("/claims/{claim}", 404, None),
    "claims.notices": ("/villages/{village}/notices", 404, None),
    "claims.notice": ("/notices/{claim}", 404, None),
    "uploads.get_photo": ("/uploads/{upload}", 404, None),
    "uploads.photo_link": ("/uploads/{upload}/link", 404, None),
    "activities.list_activities": ("/activities", 200, "empty"),
    "activities.get_activity": ("/activities/{activity}", 404, None),
    "activities.list_checkins": ("/activities/{activity}/checkins", 404, None),
    "activities.qr_token": ("/activities/{activity}/qr-token", 404, None),
    "activities.poster_png": ("/activities/{activity}/qr.png", 404, None),
    "activities.poster_svg": ("/activities/{activity}/qr.svg", 404, None),
    "activities.poster_pdf": ("/activities/{activity}/poster.pdf", 404, None),
    "activities.get_checkin": ("/checkins/{checkin}", 404, None),
    "boards.get_rankings": ("/rankings?village_id={village}", 404, None),
    "boards.get_board": ("/villages/{village}/board", 404, None),
    "boards.board_png": ("/villages/{village}/board.png", 404, None),
    "boards.board_pdf": ("/villages/{village}/board.pdf", 404, None),
    "boards.village_settings": ("/villages/{village}/board-settings", 404, None),
    "boards.village_stats": ("/villages/{village}/stats", 404, None),
    "boards.village_stats_png": ("/villages/{village}/stats.png", 404, None),
    "boards.plate_png": ("/households/{household}/plate.png", 404, None),
    "boards.month_proof": ("/households/{household}/month-proof?period=2026-03", 404, None),
    # public (no login, no names); no month of the scene is closed
    "boards.month_root": ("/villages/{village}/month-root?period=2026-03", 404, None),
    "boards.township_month_root": ("/townships/{township}/month-root?period=2026-03", 404, None),
    "rules.village_items": ("/villages/{village}/rule-items", 404, None),
    "rules.my_items": ("/rule-items", 422, None),  # of no village: names one (village_id)
    # no household of their own; what only admins may do
    "points.my_account": ("/me/account", 403, None),
    "points.my_ledger": ("/me/ledger", 403, None),
    "points.my_home": ("/me/home", 403, None),
    "boards.my_privacy": ("/me/board-privacy", 403, None),
    "boards.township_settings": ("/townships/{township}/board-settings", 403, None),
    "boards.township_stats": ("/townships/{township}/stats", 403, None),
    "boards.township_month_report": (
        "/townships/{township}/month-report.pdf?period=2026-03",
        403,
        None,
    ),
    "shop.points_report": ("/townships/{township}/points-report", 403, None),
    "users.list_users": ("/users", 403, None),
    "users.list_audit": ("/audit", 403, None),
}
# The same records reached by a filter rather than a path.
CLERK_FILTERED_GETS = [
    ("/rankings?group_id={group}", 404),
    ("/rankings?township_id={township}", 403),
    ("/claims?village_id={village}", 200),
    ("/claims?household_id={household}", 200),
    ("/activities?village_id={village}", 200),
    ("/villages?township_id={township}", 200),
    ("/rule-items?village_id={village}", 404),
]
# Pages outside /api/v1 that show no record (tested in test_html_headers.py), and Flask's.
NOT_API = {
    "activity_pages.display_page",
    "board_pages.board_page",
    "board_pages.plate_page",
    "pages.healthz",
    "pages.index",
    "pages.qr_landing",
    "static",
    "metrics.metrics",
}  # Prometheus's, not a login's


def _get_endpoints(app: Flask) -> set[str]:
    # The console's pages (console.*) are checked for every role in
    # tests/api/test_console_security.py.
    return {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if "GET" in (rule.methods or set()) and not rule.endpoint.startswith("console.")
    }


def test_every_get_route_is_classified_for_a_clerk(app: Flask) -> None:
    """A new GET route must say here what a clerk gets from it."""
    routes = _get_endpoints(app) - NOT_API
    assert routes - set(CLERK_GETS) == set(), "classify for a clerk in CLERK_GETS"
    assert set(CLERK_GETS) - routes == set(), "CLERK_GETS names routes that are gone"


def _fill(url: str, ids: dict[str, Any]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(ids[m.group(1)]), url)


def test_a_clerk_reads_the_counter_and_nothing_of_the_village(
    app: Flask, client: FlaskClient, world: World
) -> None:
    ids = build_village_a(app, client, world)
    clerk = world.headers("clerk_a")
    before = database_state(app)
    failures = []
    cases = [(url, status, check) for url, status, check in CLERK_GETS.values()]
    cases += [
        (url, status, "empty" if status == 200 else None) for url, status in CLERK_FILTERED_GETS
    ]
    for url, status, check in cases:
        path = API + _fill(url, ids)
        response = client.get(path, headers=clerk)
        text = response.get_data(as_text=True)
        response.close()
        leaked = [s for s in SECRETS if s in text]
        if response.status_code != status or leaked:
            failures.append(f"{path}: {response.status_code} (want {status}) {leaked} {text[:200]}")
            continue
        if status >= 400:
            expected = {403: "forbidden", 404: "not_found", 422: "village_required"}[status]
            if error_code(response) not in (
                expected,
                "not_bound",
                "no_pickup_code",
                "no_image",
                "no_month_root",
            ):
                failures.append(f"{path}: {response.get_json()}")
        elif check == "empty" and response.get_json()["items"] != []:
            failures.append(f"{path}: lists {response.get_json()['items']}")
    assert not failures, "\n".join(failures)
    assert database_state(app) == before

    # what the counter does see: its orders, with the household that placed them
    orders = client.get(f"{API}/redemptions", headers=clerk).get_json()["items"]
    assert {o["household_name"] for o in orders} == {"邻居w户"} and len(orders) == 2
    statement = client.get(
        f"{API}/shops/{world.shop_a}/settlements?month={ids['month']}", headers=clerk
    ).get_json()
    assert statement["redemptions"] == 1


def test_member_lookup_shows_the_card_holder_and_nothing_more(
    app: Flask, client: FlaskClient, world: World
) -> None:
    default_items(app, world)
    set_policy(client, world, qualification_line=30)
    fund(app, world.household_x, 40)
    card = member_token(app, world.spouse_x)  # the spouse has no phone
    clerk = world.headers("clerk_a")
    before = database_state(app)
    url = f"{API}/shops/{world.shop_a}/member-lookup"

    bare = client.post(url, json={"member_token": card}, headers=clerk)
    scanned = client.post(
        url, json={"member_token": f"https://jf.example.gov.cn/q/{card}\n"}, headers=clerk
    )

    assert bare.status_code == 200, bare.get_json()
    assert bare.get_json() == {
        "villager_name": "配偶x",
        "household_id": world.household_x,
        "household_name": "x户",
        "available": 40,
        "qualifies": True,
    }
    assert scanned.status_code == 200 and scanned.get_json() == bare.get_json()
    assert database_state(app) == before  # a look-up writes nothing

    set_policy(client, world, qualification_line=41)
    below = client.post(url, json={"member_token": card}, headers=clerk).get_json()
    assert (below["available"], below["qualifies"]) == (40, False)


def test_member_lookup_qualifies_as_counter_redemption_does(
    app: Flask, client: FlaskClient, world: World
) -> None:
    """The look-up's answer and the counter's refusal agree, on either side of the line."""
    default_items(app, world)
    soap = add_reward(app, world.shop_a, "香皂", 5, 10)
    fund(app, world.household_x, 30)
    card = member_token(app, world.head_x)
    clerk = world.headers("clerk_a")
    for line, qualifies in ((31, False), (30, True)):
        set_policy(client, world, qualification_line=line)
        found = client.post(
            f"{API}/shops/{world.shop_a}/member-lookup", json={"member_token": card}, headers=clerk
        ).get_json()
        sold = client.post(
            f"{API}/shops/{world.shop_a}/counter-redemptions",
            headers=clerk,
            json={"member_token": card, "items": [{"reward_id": soap, "quantity": 1}]},
        )
        assert found["qualifies"] is qualifies
        assert (sold.status_code == 201) is qualifies, sold.get_json()
        if not qualifies:
            # whether it qualifies, not the household's score
            assert error_code(sold) == "not_qualified"
            assert sold.get_json()["error"]["details"] == {"line": 31}
            assert "30" not in sold.get_json()["error"]["message"]
    # the counter sale still works for a clerk who cannot read the household
    assert account_of(app, world.household_x)["available"] == 25
    assert (
        client.get(f"{API}/households/{world.household_x}/account", headers=clerk).status_code
        == 404
    )


def test_member_lookup_of_a_household_without_an_account_creates_none(
    app: Flask, client: FlaskClient, world: World
) -> None:
    new = add_household(app, world.village_a, "新户", "新来的")
    before = database_state(app)
    found = client.post(
        f"{API}/shops/{world.shop_a}/member-lookup",
        json={"member_token": member_token(app, new["head"])},
        headers=world.headers("clerk_a"),
    )
    assert found.status_code == 200, found.get_json()
    # no catalog: the default policy's line of 60 points stands
    assert found.get_json() == {
        "villager_name": "新来的",
        "household_id": new["household"],
        "household_name": "新户",
        "available": 0,
        "qualifies": False,
    }
    assert database_state(app) == before
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Account)) == 0


@pytest.mark.parametrize(
    ("who", "shop", "card", "status", "code"),
    [
        ("clerk_a", "shop_a", "head_y", 422, "shop_not_serving"),  # village B is not served
        ("clerk_a", "shop_a", "garbage", 422, "qr_invalid"),
        ("cadre_a", "shop_a", "head_x", 403, "forbidden"),  # may see the shop, not work it
        ("villager_x", "shop_a", "head_x", 403, "forbidden"),
        ("tadmin1", "shop_a", "head_x", 403, "forbidden"),
        ("cadre_b", "shop_a", "head_x", 404, "not_found"),  # shop A serves no village of theirs
    ],
)
def test_member_lookup_refusals(
    app: Flask,
    client: FlaskClient,
    world: World,
    who: str,
    shop: str,
    card: str,
    status: int,
    code: str,
) -> None:
    fund(app, world.household_y, 50)
    token = "not-a-card" if card == "garbage" else member_token(app, world.ids[card])
    response = client.post(
        f"{API}/shops/{world.ids[shop]}/member-lookup",
        json={"member_token": token},
        headers=world.headers(who),
    )
    assert response.status_code == status, response.get_json()
    assert error_code(response) == code
    text = response.get_data(as_text=True)
    assert "户主y" not in text and "50" not in text and "y户" not in text


def test_member_lookup_is_rate_limited_like_counter_sales(
    app: Flask, client: FlaskClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "COUNTER_REDEMPTION_RATE_LIMIT", "2 per minute")
    clerk = world.headers("clerk_a")
    url = f"{API}/shops/{world.shop_a}/member-lookup"
    card = member_token(app, world.head_x)
    for _ in range(2):
        assert client.post(url, json={"member_token": card}, headers=clerk).status_code == 200
    blocked = client.post(url, json={"member_token": card}, headers=clerk)
    assert blocked.status_code == 429 and error_code(blocked) == "rate_limited"
    assert int(blocked.headers["Retry-After"]) >= 1


def test_member_lookup_is_in_the_openapi_document(client: FlaskClient) -> None:
    spec = client.get(f"{API}/openapi.json").get_json()
    operation = spec["paths"][f"{API}/shops/{{shop_id}}/member-lookup"]["post"]
    assert {"200", "403", "404", "422", "429"} <= set(operation["responses"])
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    name = schema["$ref"].rsplit("/", 1)[-1]
    assert set(spec["components"]["schemas"][name]["properties"]) == CARD_HOLDER_KEYS
    assert set(CardHolder.__dataclass_fields__) == CARD_HOLDER_KEYS
