"""A security review of the whole API, written as tests.

1. Object-level authorisation: every route with an id in its path (found in the app's url_map,
   so a new one fails here until it is classified) is called by a villager of household x
   (village A), by the cadre of village A and by the clerk of shop A (which serves village A)
   with the ids of other villages', townships' and households' objects; the clerk also with
   village A's, since a clerk sees nothing of any village but their shop's orders. The
   answer must be 403 or 404 in our error shape, must not describe the object, and must
   leave the database as it was. test_scope_matrix.py holds the registry matrix for the
   other roles; this file covers every route for these three callers.
2. Mass assignment: fields a client may not set (points, status, household_id, role, ...) are
   refused with 422 naming them, and nothing changes; a cadre cannot move scope or escalate.
3. Oversized bodies and uploads: 413 in our shape, nothing stored.
4. Secrets (passwords, their hashes, access and refresh tokens, the WeChat session_key and
   secret, SECRET_KEY) appear in no response body and no log record.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select
from werkzeug.datastructures import FileStorage
from werkzeug.routing import IntegerConverter
from werkzeug.test import encode_multipart

from backend import create_app
from backend.extensions import db
from points.models import (
    Account,
    LedgerEntry,
    RefreshToken,
    Reward,
    RuleItem,
    RuleItemVersion,
    Shop,
    User,
    Village,
)
from points.passwords import hash_password
from points.uploads import MAX_BYTES
from tests.factories import (
    PASSWORD,
    SECRET,
    World,
    add_household,
    approve,
    bind_user,
    fund,
    install_default_catalog,
    jpeg_bytes,
    member_token,
    self_report,
    upload_photo,
)
from tests.support.clock import frozen, local
from tests.support.fake_wechat import FakeWeChat
from tests.support.reads import catalog_id
from tests.support.scope import ROSTER_CSV, database_state

API = "/api/v1"
OPENING_CSV = "户编号,积分\n1,10\n".encode()
BEFORE = local(2026, 11, 30, 15, 0)  # activities are set up the afternoon before
START = local(2026, 12, 1, 9, 0)
END = local(2026, 12, 1, 11, 0)
DURING = local(2026, 12, 1, 9, 5)  # the scene's claims, check-ins and orders
NOW = local(2026, 12, 1, 9, 30)  # when the attacks are made
# The clock is frozen only to fix the scene's times, at no boundary: one run is enough.
pytestmark = pytest.mark.any_server_zone

VILLAGE_ITEM = {
    "code": "TY-DOG",
    "name": "桃源文明养犬",
    "category": "乡风文明",
    "class": "bonus",
    "points": 2,
    "kind": "fixed",
    "applies_to": "household",
    "submit_by": ["cadre"],
}


# ---- the scene: objects of households w (village A), y (B), z (C) and of villages B, C ----


@dataclass
class Scene:
    world: World
    # kind -> owner key -> id. Owner keys: "w", "y", "z" for household objects (w lives in
    # village A beside x), "b", "c" for village objects, "t2" for township 2's.
    objects: dict[str, dict[str, int]] = field(default_factory=dict)
    # Objects of village A that x and the cadre of A may reach but the clerk of shop A may
    # not (kind -> owner "a" -> id).
    served: dict[str, dict[str, int]] = field(default_factory=dict)
    # Text that only the other objects carry: no refusal may contain any of it.
    markers: list[str] = field(default_factory=list)
    users: dict[str, int] = field(default_factory=dict)

    def put(self, kind: str, owner: str, object_id: int) -> None:
        self.objects.setdefault(kind, {})[owner] = object_id

    def headers(self, user: str) -> dict[str, str]:
        if user in self.users:
            return self.world.headers(self.users[user])
        return self.world.headers(user)


def _ok(response: Any, status: int = 201) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def _staff(
    app: Flask,
    username: str,
    role: str,
    township_id: int,
    *,
    village_id: int | None = None,
    shop_id: int | None = None,
) -> int:
    with app.app_context():
        user = User(
            username=username,
            password_hash=hash_password(PASSWORD),
            role=role,
            township_id=township_id,
            village_id=village_id,
            shop_id=shop_id,
        )
        db.session.add(user)
        db.session.commit()
        return user.id


def _shop(app: Flask, township_id: int, village_id: int, name: str) -> int:
    with app.app_context():
        village = db.session.get(Village, village_id)
        shop = Shop(township_id=township_id, name=name, villages=[village])
        db.session.add(shop)
        db.session.commit()
        return shop.id


def build_scene(app: Flask, client: FlaskClient, world: World) -> Scene:
    scene = Scene(world)
    w = world
    t1_items = install_default_catalog(app, w.township_1)
    t2_items = install_default_catalog(app, w.township_2)
    scene.put("catalog", "t2", catalog_id(app, w.township_2))

    # people: a neighbour household w in village A, villager users in y and z, and a
    # second household in B and C whose villagers raise objections
    hw = add_household(app, w.village_a, "邻居w户", "秘邻居", openid="openid-w")
    hv = add_household(app, w.village_b, "桃源v户", "秘桃源", openid="openid-v")
    hu = add_household(app, w.village_c, "白沙u户", "秘白沙", openid="openid-u")
    scene.users.update(
        user_w=hw["user"],
        user_v=hv["user"],
        user_u=hu["user"],
        user_y=w.villager_y,
        user_z=bind_user(app, w.head_z, "openid-z"),
    )
    scene.users["cadre_c"] = _staff(app, "cadre_c", "cadre", w.township_2, village_id=w.village_c)
    for owner, household, head in (
        ("w", hw["household"], hw["head"]),
        ("y", w.household_y, w.head_y),
        ("z", w.household_z, w.head_z),
    ):
        scene.put("household", owner, household)
        scene.put("villager", owner, head)
    scene.put("user", "w", hw["user"])
    scene.put("user", "y", w.villager_y)
    scene.put("user", "b", w.cadre_b)
    scene.put("user", "t2", w.tadmin2)
    scene.put("village", "b", w.village_b)
    scene.put("village", "c", w.village_c)
    scene.put("township", "t2", w.township_2)
    scene.markers += [
        "秘邻居",
        "秘桃源",
        "秘白沙",
        "邻居w户",
        "桃源v户",
        "白沙u户",
        "户主y",
        "户主z",
        "配偶y",
        "配偶z",
        "y户",
        "z户",
        "桃源村",
        "白沙村",
        "白沙镇",
        "13800000001",
        "13800000002",
    ]

    # village B's own rules (村规民约), made by its cadre
    own = _ok(
        client.post(
            f"{API}/rule-catalogs",
            json={"name": "桃源村村规民约", "village_id": w.village_b},
            headers=w.headers("cadre_b"),
        )
    )
    scene.put("catalog", "b", own["id"])
    item_b = _ok(
        client.post(
            f"{API}/rule-catalogs/{own['id']}/items",
            json=VILLAGE_ITEM,
            headers=w.headers("cadre_b"),
        )
    )
    scene.put("rule_item", "b", item_b["id"])
    scene.put("rule_item", "t2", t2_items["ENV-YARD"])
    with app.app_context():
        for owner, item in scene.objects["rule_item"].items():
            version = db.session.scalar(
                select(RuleItemVersion.id).where(RuleItemVersion.item_id == item)
            )
            assert version is not None
            scene.put("rule_version", owner, version)
    scene.markers += ["桃源村村规民约", "桃源文明养犬", "TY-DOG"]

    # shops B (village B) and C (township 2), their clerks and shelves; shop A's shelf too
    shop_b = _shop(app, w.township_1, w.village_b, "秘桃源超市")
    shop_c = _shop(app, w.township_2, w.village_c, "秘白沙超市")
    scene.put("shop", "b", shop_b)
    scene.put("shop", "c", shop_c)
    scene.users["clerk_b"] = _staff(app, "clerk_b", "clerk", w.township_1, shop_id=shop_b)
    scene.users["clerk_c"] = _staff(app, "clerk_c", "clerk", w.township_2, shop_id=shop_c)
    rewards = {}
    for owner, shop, clerk in (
        ("a", w.shop_a, "clerk_a"),
        ("b", shop_b, "clerk_b"),
        ("c", shop_c, "clerk_c"),
    ):
        rewards[owner] = _ok(
            client.post(
                f"{API}/shops/{shop}/rewards",
                json={"name": f"秘奖品{owner}", "points": 5, "stock": 20},
                headers=scene.headers(clerk),
            )
        )["id"]
    scene.put("reward", "b", rewards["b"])
    scene.put("reward", "c", rewards["c"])
    scene.markers += ["秘桃源超市", "秘白沙超市", "秘奖品b", "秘奖品c"]

    # points in every household, so there are ledger entries and orders can be placed
    for owner, household in scene.objects["household"].items():
        fund(app, household, 100)
        with app.app_context():
            entry = db.session.scalar(
                select(LedgerEntry.id).join(Account).where(Account.household_id == household)
            )
        assert entry is not None
        scene.put("ledger_entry", owner, entry)

    # proof photos, each by its household's villager
    for owner in ("w", "y", "z"):
        scene.put("upload", owner, upload_photo(client, scene.headers(f"user_{owner}")))

    # activities of each village, created the afternoon before by the village's cadre
    activities = {}
    with frozen(BEFORE):
        for village, cadre, item in (
            ("a", "cadre_a", t1_items["GOV-ASSEMBLY"]),
            ("b", "cadre_b", t1_items["GOV-ASSEMBLY"]),
            ("c", "cadre_c", t2_items["GOV-ASSEMBLY"]),
        ):
            activities[village] = _ok(
                client.post(
                    f"{API}/activities",
                    json={
                        "village_id": getattr(w, f"village_{village}"),
                        "title": f"秘大会{village}",
                        "rule_item_id": item,
                        "starts_at": START.isoformat(),
                        "ends_at": END.isoformat(),
                        "qr_mode": "static",
                    },
                    headers=scene.headers(cadre),
                )
            )["id"]
    scene.put("activity", "b", activities["b"])
    scene.put("activity", "c", activities["c"])
    scene.served["activity"] = {"a": activities["a"]}
    scene.served["village"] = {"a": w.village_a}
    scene.markers += ["秘大会b", "秘大会c"]

    with frozen(DURING):
        # check-ins, one per household, at its village's activity
        for owner, village, cadre in (
            ("w", "a", "cadre_a"),
            ("y", "b", "cadre_b"),
            ("z", "c", "cadre_c"),
        ):
            token = _ok(
                client.get(
                    f"{API}/activities/{activities[village]}/qr-token", headers=scene.headers(cadre)
                ),
                200,
            )["token"]
            checkin = _ok(
                client.post(
                    f"{API}/checkins", json={"token": token}, headers=scene.headers(f"user_{owner}")
                )
            )
            scene.put("checkin", owner, checkin["checkin_id"])
        # claims: one left pending, one approved into notice and objected to
        for owner, cadre, objector, items in (
            ("w", "cadre_a", "villager_x", t1_items),
            ("y", "cadre_b", "user_v", t1_items),
            ("z", "cadre_c", "user_u", t2_items),
        ):
            user = scene.users[f"user_{owner}"]
            pending = _ok(
                self_report(client, w, user, items["PUB-VOLUNTEER"], 2, note=f"秘申报{owner}")
            )
            scene.put("claim", owner, pending["id"])
            notice = _ok(self_report(client, w, user, items["PUB-VOLUNTEER"], 1))
            _ok(approve(client, w, scene.users.get(cadre) or cadre, notice["id"]), 200)
            scene.put("notice_claim", owner, notice["id"])
            objection = _ok(
                client.post(
                    f"{API}/claims/{notice['id']}/objections",
                    json={"reason": f"秘异议{owner}"},
                    headers=scene.headers(objector),
                )
            )
            scene.put("objection", owner, objection["id"])
        # orders waiting to be picked up
        for owner, shop, reward in (
            ("w", w.shop_a, rewards["a"]),
            ("y", shop_b, rewards["b"]),
            ("z", shop_c, rewards["c"]),
        ):
            order = _ok(
                client.post(
                    f"{API}/redemptions",
                    json={"shop_id": shop, "items": [{"reward_id": reward, "quantity": 1}]},
                    headers=scene.headers(f"user_{owner}"),
                )
            )
            scene.put("redemption", owner, order["id"])
    scene.markers += ["秘申报w", "秘申报y", "秘申报z", "秘异议y", "秘异议z"]
    return scene


@pytest.fixture()
def scene(app: Flask, client: FlaskClient, world: World) -> Scene:
    return build_scene(app, client, world)


# ---- which object each id in a path names ----------------------------------------------------

# Kinds whose objects belong to a household: a villager may not reach a neighbour's (w, in
# their own village); a cadre of village A may (w), so only y and z are foreign to a cadre.
HOUSEHOLD_KINDS = {
    "household",
    "villager",
    "claim",
    "notice_claim",
    "objection",
    "ledger_entry",
    "upload",
    "checkin",
    "redemption",
    "user",
}

MEMBER_CARD_X = object()  # replaced by household x's head's member card


@dataclass(frozen=True)
class Route:
    kind: str  # what the path's id names; "public" for pages that show nothing
    body: Any = None  # a valid body, so that a refusal is about scope, not shape
    # a villager of village A may legitimately reach village A objects of this kind
    # through this route, so only other villages' count (objections are public in notice)
    village_level_for_villager: bool = False
    query: str = ""


# Every route with an <int:...> in its path, by endpoint and method.
ROUTES: dict[tuple[str, str], Route] = {
    ("activities.get_activity", "GET"): Route("activity"),
    ("activities.cancel_activity", "POST"): Route("activity", {"reason": "取消"}),
    ("activities.list_checkins", "GET"): Route("activity"),
    ("activities.display_link", "POST"): Route("activity"),
    ("activities.proxy_check_in", "POST"): Route("activity", {"member_token": MEMBER_CARD_X}),
    ("activities.qr_token", "GET"): Route("activity"),
    ("activities.poster_png", "GET"): Route("activity"),
    ("activities.poster_svg", "GET"): Route("activity"),
    ("activities.poster_pdf", "GET"): Route("activity"),
    # the display page holds no data: it fetches the code with the key in its fragment
    ("activity_pages.display_page", "GET"): Route("public"),
    ("activities.get_checkin", "GET"): Route("checkin"),
    ("activities.check_out", "POST"): Route("checkin"),
    ("claims.get_claim", "GET"): Route("claim"),
    ("claims.approve", "POST"): Route("claim"),
    ("claims.reject", "POST"): Route("claim", {"reason": "不符合"}),
    ("claims.withdraw", "POST"): Route("claim", {"reason": "撤回"}),
    ("claims.object_to", "POST"): Route(
        "notice_claim", {"reason": "有异议"}, village_level_for_villager=True
    ),
    ("claims.notice", "GET"): Route("notice_claim", village_level_for_villager=True),
    ("claims.resolve", "POST"): Route("objection", {"outcome": "overturn", "note": "核实"}),
    ("claims.withdraw_veto", "POST"): Route("claim", {"reason": "核实有误"}),
    ("registry.get_household", "GET"): Route("household"),
    ("registry.update_household", "PATCH"): Route("household", {"address": "篡改地址"}),
    ("points.household_account", "GET"): Route("household"),
    ("points.household_ledger", "GET"): Route("household"),
    ("registry.add_member", "POST"): Route("household", {"name": "混入者", "relation": "子女"}),
    ("boards.plate_png", "GET"): Route("household"),
    ("boards.renew_plate", "POST"): Route("household"),
    ("points.reverse", "POST"): Route("ledger_entry", {"reason": "冲正"}),
    ("shop.get_redemption", "GET"): Route("redemption"),
    ("shop.cancel", "POST"): Route("redemption", {"reason": "不要了"}),
    ("shop.pickup_png", "GET"): Route("redemption"),
    ("shop.get_reward", "GET"): Route("reward"),
    ("shop.upload_reward_image", "POST"): Route("reward"),
    # A reward's picture is public (test_reward_images.py); the scene's rewards have none,
    # so every caller is answered 404 `no_image`.
    ("shop.reward_image", "GET"): Route("reward"),
    ("shop.update_reward", "PATCH"): Route("reward", {"points": 1}),
    ("shop.adjust_stock", "POST"): Route(
        "reward", {"kind": "correction", "change": -20, "reason": "盘点"}
    ),
    ("shop.stock_movements", "GET"): Route("reward"),
    ("rules.get_catalog", "GET"): Route("catalog"),
    ("rules.export_catalog", "GET"): Route("catalog"),
    ("rules.list_items", "GET"): Route("catalog"),
    ("rules.add_item", "POST"): Route("catalog", {**VILLAGE_ITEM, "code": "EVIL-1"}),
    ("rules.set_policy", "PATCH"): Route("catalog", {"notice_days": 0}),
    ("rules.get_version", "GET"): Route("rule_version"),
    ("rules.get_item", "GET"): Route("rule_item"),
    ("rules.edit_item", "PATCH"): Route("rule_item", {"points": 99}),
    ("rules.retire_item", "POST"): Route("rule_item"),
    ("rules.list_versions", "GET"): Route("rule_item"),
    ("shop.get_shop", "GET"): Route("shop"),
    ("shop.counter_redemption", "POST"): Route(
        "shop", {"member_token": MEMBER_CARD_X, "items": [{"reward_id": 1, "quantity": 1}]}
    ),
    ("shop.list_rewards", "GET"): Route("shop"),
    ("shop.member_lookup", "POST"): Route("shop", {"member_token": MEMBER_CARD_X}),
    ("shop.create_reward", "POST"): Route("shop", {"name": "假货", "points": 1, "stock": 1}),
    ("shop.settlement", "GET"): Route("shop", query="?month=2026-12"),
    ("registry.get_township", "GET"): Route("township"),
    ("registry.update_township", "PATCH"): Route("township", {"name": "篡改镇"}),
    ("boards.township_settings", "GET"): Route("township"),
    ("boards.set_township_settings", "PUT"): Route("township", {"mask_names": False}),
    ("shop.points_report", "GET"): Route("township"),
    ("boards.township_stats", "GET"): Route("township"),
    ("boards.township_month_report", "GET"): Route("township", query="?period=2026-03"),
    ("uploads.get_photo", "GET"): Route("upload"),
    ("uploads.photo_link", "GET"): Route("upload"),
    ("users.update_user", "PATCH"): Route("user", {"disabled": True}),
    ("registry.get_villager", "GET"): Route("villager"),
    ("registry.update_villager", "PATCH"): Route("villager", {"name": "篡改"}),
    ("registry.create_binding_token", "POST"): Route("villager"),
    ("registry.member_card", "GET"): Route("villager"),
    ("registry.reissue_card", "POST"): Route("villager"),
    ("registry.village_cards", "GET"): Route("village"),
    ("registry.member_card_link", "GET"): Route("villager"),
    ("registry.get_village", "GET"): Route("village"),
    ("registry.update_village", "PATCH"): Route("village", {"name": "篡改村"}),
    ("boards.get_board", "GET"): Route("village"),
    ("boards.village_settings", "GET"): Route("village"),
    ("boards.set_village_settings", "PUT"): Route("village", {"mask_names": False}),
    ("boards.board_pdf", "GET"): Route("village"),
    # Public, but no month of the scene is closed: every village's answers 404 no_month_root.
    ("boards.month_root", "GET"): Route("village", query="?period=2026-03"),
    ("boards.township_month_root", "GET"): Route("township", query="?period=2026-03"),
    ("boards.month_proof", "GET"): Route("household", query="?period=2026-03"),
    ("boards.board_png", "GET"): Route("village"),
    ("boards.close_board", "POST"): Route("village", {"period": "2026-11", "force": True}),
    ("registry.list_groups", "GET"): Route("village"),
    ("registry.create_group", "POST"): Route("village", {"name": "混入小组"}),
    ("registry.list_households", "GET"): Route("village"),
    ("registry.create_household", "POST"): Route("village", {"name": "混入户"}),
    ("claims.notices", "GET"): Route("village"),
    ("registry.import_roster", "POST"): Route("village", ROSTER_CSV),
    ("points.opening_balances", "POST"): Route("village", OPENING_CSV),
    ("rules.village_items", "GET"): Route("village"),
    ("boards.village_stats", "GET"): Route("village"),
    ("boards.village_stats_png", "GET"): Route("village"),
}


def _id_routes() -> list[tuple[str, str, str]]:
    """(endpoint, method, rule) of every route with an integer in its path."""
    app = create_app(
        {
            "TESTING": True,
            "APP_ENV": "testing",
            "SECRET_KEY": SECRET,
            "SQLALCHEMY_DATABASE_URI": "sqlite://",
        }
    )
    found = []
    for rule in app.url_map.iter_rules():
        converters = getattr(rule, "_converters", {})
        if rule.endpoint.startswith("console."):
            continue  # cookie sessions, not tokens: tests/api/test_console_security.py
        if not any(isinstance(c, IntegerConverter) for c in converters.values()):
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((rule.endpoint, method, rule.rule))
    return sorted(found)


ID_ROUTES = _id_routes()
ATTACKERS = ("villager_x", "cadre_a", "clerk_a")


def test_every_route_with_an_id_is_classified() -> None:
    """A new route with an id in its path must be added to ROUTES (and so be attacked)."""
    unclassified = [
        f"{method} {rule} ({endpoint})"
        for endpoint, method, rule in ID_ROUTES
        if (endpoint, method) not in ROUTES
    ]
    assert not unclassified, "classify in ROUTES: " + "; ".join(unclassified)
    stale = set(ROUTES) - {(endpoint, method) for endpoint, method, _ in ID_ROUTES}
    assert not stale, f"ROUTES names routes that no longer exist: {stale}"
    assert len(ID_ROUTES) >= 70


def _targets(scene: Scene, route: Route, attacker: str) -> dict[str, int]:
    """The objects this attacker must not reach through this route, by owner."""
    if route.kind == "public":
        return {owner: i for owner, i in scene.objects["activity"].items()}
    found = dict(scene.objects[route.kind])
    if attacker == "clerk_a":
        # A clerk reaches their shop, its shelf and its orders (w's order is at shop A),
        # and nothing of any village, village A's included.
        found.update(scene.served.get(route.kind, {}))
        if route.kind == "redemption":
            found.pop("w", None)
        return found
    own_village_ok = attacker == "cadre_a" or route.village_level_for_villager
    if route.kind in HOUSEHOLD_KINDS and own_village_ok:
        found.pop("w", None)
    return found


def _url(rule: str, object_id: int) -> str:
    return re.sub(r"<int:\w+>", str(object_id), rule, count=1)


def _send(
    client: FlaskClient, method: str, url: str, body: Any, headers: dict[str, str], card_x: str
) -> Any:
    if body is ROSTER_CSV or body is OPENING_CSV:
        return client.open(url, method=method, data=body, headers=headers, content_type="text/csv")
    if isinstance(body, dict):
        body = {k: (card_x if v is MEMBER_CARD_X else v) for k, v in body.items()}
        return client.open(url, method=method, json=body, headers=headers)
    return client.open(url, method=method, headers=headers)


KINDS = sorted({route.kind for route in ROUTES.values()})


# One scene per kind of object (building one takes a while), every route naming that kind.
@pytest.mark.parametrize("kind", KINDS)
def test_other_villages_and_households_objects_are_out_of_reach(
    app: Flask,
    client: FlaskClient,
    scene: Scene,
    kind: str,
) -> None:
    card_x = member_token(app, scene.world.head_x)
    failures = []
    checked = 0
    with frozen(NOW):
        headers = {attacker: scene.headers(attacker) for attacker in ATTACKERS}
        for endpoint, method, rule in ID_ROUTES:
            route = ROUTES[(endpoint, method)]
            if route.kind != kind:
                continue
            for attacker in ATTACKERS:
                for owner, object_id in _targets(scene, route, attacker).items():
                    failures += _attack(
                        client,
                        app,
                        scene,
                        route,
                        attacker,
                        method,
                        _url(rule, object_id),
                        owner,
                        headers[attacker],
                        card_x,
                    )
                    checked += 1
    assert checked >= 2
    assert not failures, "\n".join(failures)


def _attack(
    client: FlaskClient,
    app: Flask,
    scene: Scene,
    route: Route,
    attacker: str,
    method: str,
    url: str,
    owner: str,
    headers: dict[str, str],
    card_x: str,
) -> list[str]:
    """One call on another's object; what was wrong with the answer."""
    before = database_state(app)
    response = _send(client, method, url + route.query, route.body, headers, card_x)
    text = response.get_data(as_text=True)
    response.close()  # a sent file stays open until then
    after = database_state(app)
    case = f"{attacker} {method} {url} ({route.kind} of {owner})"
    leaked = [m for m in scene.markers if m in text]
    if route.kind == "public":
        return (
            [f"{case}: {response.status_code} {leaked}"]
            if response.status_code != 200 or leaked
            else []
        )
    if response.status_code not in (403, 404):
        return [f"{case}: {response.status_code} {text[:300]}"]
    failures = []
    body = response.get_json(silent=True)
    if not (isinstance(body, dict) and set(body) == {"error"}):
        failures.append(f"{case}: not our error shape: {text[:300]}")
    if leaked:
        failures.append(f"{case}: the refusal names {leaked}")
    if after != before:
        changed = [t for t in before if before[t] != after[t]]
        failures.append(f"{case}: a refused request changed {changed}")
    return failures


# Reads that prove the scene's objects are real and reachable by their own people, so the
# refusals above are about scope and not about a broken fixture.
OWNER_READS = [
    ("cadre_b", "/activities/{activity.b}"),
    ("cadre_b", "/claims/{claim.y}"),
    ("cadre_b", "/rule-catalogs/{catalog.b}"),
    ("cadre_b", "/rule-items/{rule_item.b}"),
    ("cadre_b", "/rule-item-versions/{rule_version.b}"),
    ("cadre_b", "/uploads/{upload.y}"),
    ("cadre_b", "/checkins/{checkin.y}"),
    ("cadre_b", "/redemptions/{redemption.y}"),
    ("cadre_a", "/claims/{claim.w}"),
    ("cadre_a", "/checkins/{checkin.w}"),
    ("cadre_a", "/uploads/{upload.w}"),
    ("cadre_a", "/redemptions/{redemption.w}"),
    ("cadre_a", "/households/{household.w}/ledger"),
    ("user_y", "/redemptions/{redemption.y}/pickup.png"),
    ("user_z", "/households/{household.z}/account"),
    ("user_w", "/claims/{claim.w}"),
    ("tadmin2", "/rule-catalogs/{catalog.t2}"),
    ("tadmin2", "/rule-items/{rule_item.t2}"),
    ("tadmin2", "/shops/{shop.c}/rewards"),
    ("tadmin2", "/rewards/{reward.c}/stock-movements"),
    ("tadmin2", "/townships/{township.t2}/stats"),
    ("tadmin1", "/rewards/{reward.b}"),
    ("county", "/ledger/{ledger_entry.z}/reverse"),
]


def test_the_scenes_objects_are_reachable_by_their_own_people(
    client: FlaskClient, scene: Scene
) -> None:
    def fill(path: str) -> str:
        return re.sub(
            r"\{(\w+)\.(\w+)\}", lambda m: str(scene.objects[m.group(1)][m.group(2)]), path
        )

    with frozen(NOW):
        for user, path in OWNER_READS:
            if path.endswith("/reverse"):
                response = client.post(
                    API + fill(path), json={"reason": "核对"}, headers=scene.headers(user)
                )
                # 202: at the two-cadre threshold the reversal waits for a second reviewer.
                assert response.status_code in (201, 202), (user, path, response.get_json())
                continue
            response = client.get(API + fill(path), headers=scene.headers(user))
            response.close()
            assert response.status_code == 200, (user, path, response.get_data(as_text=True))


# ---- mass assignment ------------------------------------------------------------------------

# {name} placeholders are scene objects ("{household.y}") or World ids ("{household_x}").
SMUGGLED = {
    "points": 9999,
    "status": "posted",
    "household_id": "{household_y}",
    "villager_id": "{head_y}",
    "created_by": "{county}",
    "available": 9999,
}

# (who, method, path, body, the fields a refusal must name)
MASS_ASSIGNMENT: list[Any] = [
    (
        "villager_x",
        "POST",
        "/claims",
        {"rule_item_id": "{item}", "units": 2, **SMUGGLED},
        set(SMUGGLED),
    ),
    (
        "villager_x",
        "POST",
        "/claims",
        {
            "rule_item_id": "{item}",
            "units": 2,
            "member_id": "{spouse_y}",
            "source": "cadre",
            "village_id": "{village_b}",
        },
        {"member_id", "source", "village_id"},
    ),
    (
        "villager_x",
        "POST",
        "/redemptions",
        {
            "shop_id": "{shop_a}",
            "items": [{"reward_id": "{reward_a}", "quantity": 1}],
            "total_points": 0,
            "status": "fulfilled",
            "household_id": "{household_y}",
            "cash_paid": 100,
        },
        {"total_points", "status", "household_id", "cash_paid"},
    ),
    (
        "villager_x",
        "POST",
        "/redemptions",
        {"shop_id": "{shop_a}", "items": [{"reward_id": "{reward_a}", "quantity": 1, "points": 0}]},
        {"items.0.points"},
    ),
    (
        "villager_x",
        "POST",
        "/checkins",
        {
            "token": "{activity_code}",
            "villager_id": "{head_y}",
            "household_id": "{household_y}",
            "points": 50,
            "proxy_by": "{cadre_a}",
        },
        {"villager_id", "household_id", "points", "proxy_by"},
    ),
    (
        "villager_x",
        "PUT",
        "/me/board-privacy",
        {"public_board_opt_out": True, "household_id": "{household_y}"},
        {"household_id"},
    ),
    (
        "unbound",
        "POST",
        "/auth/bind",
        {
            "village_id": "{village_a}",
            "name": "配偶x",
            "phone": "13800000000",
            "villager_id": "{head_y}",
            "role": "county_admin",
        },
        {"villager_id", "role"},
    ),
    (
        "villager_x",
        "PATCH",
        "/villagers/{head_x}",
        {"name": "改名", "household_id": "{household_y}", "points": 1},
        {"household_id", "points"},
    ),
    (
        "cadre_a",
        "PATCH",
        "/villagers/{head_x}",
        {"household_id": "{household_y}", "village_id": "{village_b}"},
        {"household_id", "village_id"},
    ),
    (
        "cadre_a",
        "PATCH",
        "/households/{household_x}",
        {"village_id": "{village_b}", "available": 9999, "held": 0},
        {"village_id", "available", "held"},
    ),
    (
        "cadre_a",
        "PATCH",
        "/users/{cadre_a}",
        {"role": "county_admin", "village_id": "{village_b}", "township_id": None},
        {"role", "village_id", "township_id"},
    ),
    (
        "tadmin1",
        "PATCH",
        "/users/{cadre_b}",
        {
            "role": "township_admin",
            "village_id": "{village_a}",
            "township_id": "{township_2}",
            "password_hash": "x",
        },
        {"role", "village_id", "township_id", "password_hash"},
    ),
    # villager_id is a field of PATCH /users (a staff account's own roster entry); a WeChat
    # user's binding is refused there (not_staff, test_review_rules).
    (
        "tadmin1",
        "PATCH",
        "/users/{villager_x}",
        {"villager_id": "{head_y}", "openid": "openid-y"},
        {"openid"},
    ),
    (
        "clerk_a",
        "PATCH",
        "/rewards/{reward_a}",
        {"stock": 9999, "shop_id": "{shop.b}"},
        {"stock", "shop_id"},
    ),
    (
        "clerk_a",
        "POST",
        "/shops/{shop_a}/rewards",
        {"name": "香皂", "points": 5, "shop_id": "{shop.b}", "created_by": 1},
        {"shop_id", "created_by"},
    ),
    (
        "cadre_a",
        "POST",
        "/ledger/{ledger_entry.w}/reverse",
        {"reason": "冲正", "amount": 9999, "household_id": "{household_y}"},
        {"amount", "household_id"},
    ),
]


def _fill_ids(value: Any, scene: Scene, extra: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return {k: _fill_ids(v, scene, extra) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_ids(v, scene, extra) for v in value]
    if not (isinstance(value, str) and value.startswith("{") and value.endswith("}")):
        return value
    name = value[1:-1]
    if name in extra:
        return extra[name]
    if "." in name:
        kind, owner = name.split(".")
        return scene.objects[kind][owner]
    return scene.world.ids[name]


def _fill_path(path: str, scene: Scene, extra: dict[str, Any]) -> str:
    return re.sub(r"\{[\w.]+\}", lambda m: str(_fill_ids(m.group(0), scene, extra)), path)


def _extra_ids(app: Flask, client: FlaskClient, scene: Scene) -> dict[str, Any]:
    """Ids the mass-assignment bodies need beyond the scene: an item, shop A's reward and a
    code of village A's activity valid now."""
    w = scene.world
    with app.app_context():
        item = db.session.scalar(
            select(RuleItem.id).where(
                RuleItem.catalog_id == catalog_id(app, w.township_1),
                RuleItem.code == "PUB-VOLUNTEER",
            )
        )
        reward_a = db.session.scalar(select(Reward.id).where(Reward.shop_id == w.shop_a))
    activity_a = _ok(
        client.get(f"{API}/activities?village_id={w.village_a}", headers=w.headers("cadre_a")), 200
    )["items"][0]["id"]
    code = _ok(
        client.get(f"{API}/activities/{activity_a}/qr-token", headers=w.headers("cadre_a")), 200
    )["token"]
    return {"item": item, "reward_a": reward_a, "activity_code": code}


def test_fields_a_client_may_not_set_are_refused_and_change_nothing(
    app: Flask, client: FlaskClient, scene: Scene
) -> None:
    failures = []
    with frozen(NOW):
        extra = _extra_ids(app, client, scene)
        for who, method, path, body, named in MASS_ASSIGNMENT:
            headers = scene.headers(who)
            before = database_state(app)
            response = client.open(
                API + _fill_path(path, scene, extra),
                method=method,
                json=_fill_ids(body, scene, extra),
                headers=headers,
            )
            case = f"{who} {method} {path} {sorted(named)}"
            error = (response.get_json(silent=True) or {}).get("error") or {}
            if response.status_code != 422 or error.get("code") != "unknown_fields":
                failures.append(f"{case}: {response.status_code} {error}")
            elif not (
                named <= set(error["details"]["fields"])
                and all(name in error["message"] for name in named)
            ):
                failures.append(f"{case}: does not name them all: {error}")
            if database_state(app) != before:
                failures.append(f"{case}: a refused request changed the database")
    assert not failures, "\n".join(failures)


def test_a_body_sent_to_a_route_without_one_is_ignored(
    app: Flask, client: FlaskClient, scene: Scene
) -> None:
    """Approve takes no body: whatever a client adds decides nothing."""
    claim = scene.objects["claim"]["w"]
    with frozen(NOW):
        response = client.post(
            f"{API}/claims/{claim}/approve",
            json={"points": 9999, "status": "posted", "units": 100},
            headers=scene.headers("cadre_a"),
        )
    assert response.status_code == 200, response.get_json()
    assert (
        response.get_json()["points"],
        response.get_json()["status"],
        response.get_json()["units"],
    ) == (4, "in_notice", 2)


# Fields a caller may set, pointed at another village's or household's objects: refused
# (403/404/409/422), nothing changes. (who, method, path, body)
SCOPE_MOVES: list[Any] = [
    ("cadre_a", "PATCH", "/households/{household_x}", {"group_id": "{group_y}"}),
    ("cadre_a", "POST", "/villages/{village_a}/households", {"group_id": "{group_z}"}),
    (
        "cadre_a",
        "POST",
        "/awards",
        {"rule_item_id": "{item}", "units": 1, "targets": [{"household_id": "{household_y}"}]},
    ),
    (
        "cadre_a",
        "POST",
        "/awards",
        {"rule_item_id": "{item}", "units": 1, "targets": [{"villager_id": "{head_z}"}]},
    ),
    (
        "cadre_a",
        "POST",
        "/activities",
        {
            "village_id": "{village_b}",
            "title": "越界活动",
            "rule_item_id": "{item}",
            "starts_at": START.isoformat(),
            "ends_at": END.isoformat(),
            "qr_mode": "static",
        },
    ),
    ("cadre_a", "POST", "/rule-catalogs", {"name": "越界细则", "village_id": "{village_b}"}),
    (
        "cadre_a",
        "POST",
        "/users",
        {
            "username": "sneaky",
            "password": "long-enough-pw",
            "role": "cadre",
            "village_id": "{village_a}",
        },
    ),
    (
        "tadmin1",
        "POST",
        "/users",
        {
            "username": "sneaky",
            "password": "long-enough-pw",
            "role": "cadre",
            "village_id": "{village_c}",
        },
    ),
    (
        "tadmin1",
        "POST",
        "/users",
        {"username": "sneaky", "password": "long-enough-pw", "role": "county_admin"},
    ),
    (
        "tadmin1",
        "POST",
        "/users",
        {
            "username": "sneaky",
            "password": "long-enough-pw",
            "role": "township_admin",
            "township_id": "{township_2}",
        },
    ),
    (
        "tadmin1",
        "POST",
        "/shops",
        {"name": "越界超市", "township_id": "{township_1}", "village_ids": ["{village_c}"]},
    ),
    (
        "villager_x",
        "POST",
        "/claims",
        {"rule_item_id": "{item}", "units": 1, "evidence": ["{upload.y}"]},
    ),
    (
        "villager_x",
        "POST",
        "/claims",
        {"rule_item_id": "{item}", "units": 1, "evidence": ["{upload.w}"]},
    ),
    ("villager_x", "POST", "/claims", {"rule_item_id": "{rule_item.t2}"}),
    (
        "villager_x",
        "POST",
        "/redemptions",
        {"shop_id": "{shop.b}", "items": [{"reward_id": "{reward.b}", "quantity": 1}]},
    ),
    (
        "villager_x",
        "POST",
        "/redemptions",
        {"shop_id": "{shop_a}", "items": [{"reward_id": "{reward.b}", "quantity": 1}]},
    ),
    (
        "villager_x",
        "POST",
        "/auth/bind",
        {"village_id": "{village_b}", "name": "户主y", "phone": "13800000001"},
    ),
    (
        "villager_x",
        "POST",
        "/rules/evaluate",
        {"item_id": "{item}", "villager_id": "{head_y}", "units": 1},
    ),
    (
        "cadre_a",
        "POST",
        "/rules/evaluate",
        {"item_id": "{item}", "villager_id": "{head_y}", "units": 1},
    ),
    (
        "cadre_a",
        "POST",
        "/rules/evaluate",
        {"item_id": "{rule_item.b}", "villager_id": "{head_x}", "units": 1},
    ),
    (
        "clerk_a",
        "POST",
        "/shops/{shop_a}/counter-redemptions",
        {"member_token": "{card_y}", "items": [{"reward_id": "{reward_a}", "quantity": 1}]},
    ),
]


def test_ids_in_bodies_cannot_reach_out_of_scope(
    app: Flask, client: FlaskClient, scene: Scene
) -> None:
    failures = []
    with frozen(NOW):
        extra = _extra_ids(app, client, scene)
        extra["card_y"] = member_token(app, scene.world.head_y)
        for who, method, path, body in SCOPE_MOVES:
            headers = scene.headers(who)
            before = database_state(app)
            response = client.open(
                API + _fill_path(path, scene, extra),
                method=method,
                json=_fill_ids(body, scene, extra),
                headers=headers,
            )
            text = response.get_data(as_text=True)
            case = f"{who} {method} {path} {sorted(body)}"
            if response.status_code not in (403, 404, 409, 422) or set(
                response.get_json() or {}
            ) != {"error"}:
                failures.append(f"{case}: {response.status_code} {text[:300]}")
            if [m for m in scene.markers if m in text]:
                failures.append(f"{case}: the refusal describes the object: {text[:300]}")
            if database_state(app) != before:
                failures.append(f"{case}: a refused request changed the database")
    assert not failures, "\n".join(failures)


W_MARKERS = {"秘邻居", "邻居w户", "秘申报w"}  # household w lives in village A, beside x
# What village A's own people see and the clerk of shop A must not: x's names, village A's
# activity, the objection x raised.
CLERK_MARKERS = {"户主x", "配偶x", "秘大会a", "秘异议w"}
# ... except the names on an order placed at shop A (w's), which the clerk hands out.
ORDER_MARKERS = {"秘邻居", "邻居w户"}

# Lists and /me routes take no id in the path but filter by one: a filter naming another
# village, township or household narrows what the caller may see, it never widens it.
FILTERED_READS = [
    "/me?user_id={villager_y}",
    "/me/account?household_id={household_y}",
    "/me/ledger?household_id={household_z}",
    "/me/board-privacy?household_id={household_y}",
    "/claims?village_id={village_b}",
    "/claims?household_id={household_y}",
    "/claims?village_id={village_a}",
    "/activities?village_id={village_a}",
    "/claims?household_id={household.w}",
    "/claims?status=pending",
    "/redemptions?household_id={household_y}",
    "/redemptions?shop_id={shop.c}",
    "/redemptions",
    "/activities?village_id={village_b}",
    "/activities?village_id={village_c}",
    "/activities?status=open",
    "/rule-catalogs?village_id={village_b}",
    "/rule-catalogs?township_id={township_2}",
    "/shops",
    "/villages?township_id={township_2}",
    "/villages",
    "/townships",
    "/users",
    "/users?role=villager",
    "/audit",
    "/audit?village_id={village_b}",
    "/rankings?village_id={village_b}",
    "/rankings?township_id={township_2}",
    "/rankings?township_id={township_1}",
    "/rankings?village_id={village_a}&by=member",
]


@pytest.mark.parametrize("attacker", ATTACKERS)
def test_filters_naming_other_objects_never_widen_a_list(
    app: Flask, client: FlaskClient, scene: Scene, attacker: str
) -> None:
    markers = [m for m in scene.markers if not (attacker == "cadre_a" and m in W_MARKERS)]
    if attacker == "clerk_a":
        markers += sorted(CLERK_MARKERS)
    failures = []
    with frozen(NOW):
        headers = scene.headers(attacker)
        for path in FILTERED_READS:
            url = API + _fill_path(path, scene, {})
            response = client.get(url, headers=headers)
            text = response.get_data(as_text=True)
            leaked = [
                m
                for m in markers
                if m in text
                and not (
                    attacker == "clerk_a" and path.startswith("/redemptions") and m in ORDER_MARKERS
                )
            ]
            if response.status_code not in (200, 403, 404) or leaked:
                failures.append(f"{url}: {response.status_code} {leaked} {text[:200]}")
            if attacker == "villager_x" and path.startswith("/me") and response.status_code == 200:
                body = response.get_json()
                own = body.get("household_id", (body.get("scope") or {}).get("household_id"))
                if own is not None and own != scene.world.household_x:
                    failures.append(f"{url}: answered for household {own}")
    assert not failures, "\n".join(failures)


# ---- oversized bodies and uploads -----------------------------------------------------------


def _stored_files(app: Flask) -> list[str]:
    directory = Path(app.config["UPLOAD_DIR"])
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


def _too_large(response: Any, code: str = "payload_too_large") -> None:
    assert response.status_code == 413, response.get_data(as_text=True)[:300]
    error = response.get_json()["error"]
    assert error["code"] == code
    assert re.search(r"[\u4e00-\u9fff]", error["message"]), error  # a Chinese message


def _multipart(data: bytes) -> tuple[bytes, str]:
    boundary, body = encode_multipart({"file": FileStorage(io.BytesIO(data), filename="big.jpg")})
    return body, f"multipart/form-data; boundary={boundary}"


def test_a_body_over_the_limit_is_413_and_changes_nothing(
    app: Flask, client: FlaskClient, world: World
) -> None:
    """At the configured MAX_CONTENT_LENGTH (not a lowered one): JSON, a roster and a photo;
    with a Content-Length, and streamed without one (chunked, as gunicorn passes it on)."""
    limit = app.config["MAX_CONTENT_LENGTH"]
    villager, cadre = world.headers("villager_x"), world.headers("cadre_a")
    note = "长" * (limit // 3 + 10)  # three bytes each in UTF-8
    big_json = ('{"rule_item_id": 1, "note": "' + note + '"}').encode()
    assert len(big_json) > limit
    photo, photo_type = _multipart(jpeg_bytes() + b"\0" * limit)
    roster = ROSTER_CSV + b"R9,,,,,,,\n" * (limit // 10)
    assert len(roster) > limit
    before = database_state(app)
    files = _stored_files(app)

    cases = [
        (f"{API}/claims", big_json, "application/json", villager),
        (f"{API}/villages/{world.village_a}/roster", roster, "text/csv", cadre),
        (f"{API}/uploads", photo, photo_type, villager),
    ]
    for url, data, content_type, headers in cases:
        _too_large(client.post(url, data=data, content_type=content_type, headers=headers))
        # streamed: no Content-Length, so only reading the body can find it too large
        streamed = client.post(
            url,
            input_stream=io.BytesIO(data),
            content_type=content_type,
            headers={**headers, "Transfer-Encoding": "chunked", "Idempotency-Key": "k1"},
            environ_overrides={"wsgi.input_terminated": True},
        )
        _too_large(streamed)

    assert database_state(app) == before
    assert _stored_files(app) == files


def test_a_photo_over_the_upload_limit_is_413_and_nothing_is_stored(
    app: Flask, client: FlaskClient, world: World
) -> None:
    before = database_state(app)
    files = _stored_files(app)
    body, content_type = _multipart(jpeg_bytes() + b"\0" * MAX_BYTES)
    response = client.post(
        f"{API}/uploads", data=body, content_type=content_type, headers=world.headers("villager_x")
    )
    _too_large(response, "file_too_large")
    assert database_state(app) == before
    assert _stored_files(app) == files


def test_a_chunked_body_under_the_limit_still_works(
    app: Flask, client: FlaskClient, world: World
) -> None:
    """The middleware that sizes chunked bodies must not break them."""
    data = b'{"address": "\xe6\xb8\x85\xe6\xb0\xb4\xe6\x9d\x91\xe5\x8d\x81\xe5\x8f\xb7"}'
    response = client.patch(
        f"{API}/households/{world.household_x}",
        input_stream=io.BytesIO(data),
        content_type="application/json",
        headers={**world.headers("cadre_a"), "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["address"] == "清水村十号"
    body, content_type = _multipart(jpeg_bytes())
    upload = client.post(
        f"{API}/uploads",
        input_stream=io.BytesIO(body),
        content_type=content_type,
        headers={**world.headers("villager_x"), "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert upload.status_code == 201, upload.get_json()


# ---- secrets in responses and logs ----------------------------------------------------------

NEW_PASSWORD = "fresh-staff-password-42"
RESET_PASSWORD = "reset-staff-password-77"


@pytest.fixture()
def fake_wechat(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeWeChat]:
    with FakeWeChat() as server:
        for key, value in (
            ("WECHAT_APPID", server.appid),
            ("WECHAT_SECRET", server.secret),
            ("WECHAT_API_BASE", server.base_url),
            ("WECHAT_TIMEOUT", 2.0),
        ):
            monkeypatch.setitem(app.config, key, value)
        yield server


def test_no_secret_in_any_response_or_log_line(
    app: Flask,
    client: FlaskClient,
    world: World,
    fake_wechat: FakeWeChat,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Logins (password and WeChat), refresh, bind, staff creation, password reset and their
    error paths, logged at DEBUG everywhere (werkzeug included): a password, a hash, a token,
    the session_key, the WeChat secret or SECRET_KEY shows in no log record, and a token only
    in the one answer that hands it out."""
    caplog.set_level(logging.DEBUG)
    for name in ("werkzeug", "backend", "points", app.logger.name, "flask_limiter"):
        caplog.set_level(logging.DEBUG, logger=name)
    responses: list[tuple[str, Any]] = []
    issued: list[tuple[str, str]] = []  # (token, the label of the answer that issued it)

    def call(label: str, method: str, path: str, **kwargs: Any) -> Any:
        response = client.open(API + path, method=method, **kwargs)
        responses.append((label, response))
        body = response.get_json(silent=True) or {}
        for key in ("access_token", "refresh_token"):
            if isinstance(body, dict) and body.get(key):
                issued.append((body[key], label))
        return response

    def bearer(response: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {response.get_json()['access_token']}"}

    # staff: password login, a wrong password, an unknown user, refresh, a spent refresh
    login = call("login", "POST", "/auth/login", json={"username": "tadmin1", "password": PASSWORD})
    assert login.status_code == 200
    admin = bearer(login)
    assert (
        call(
            "wrong", "POST", "/auth/login", json={"username": "tadmin1", "password": PASSWORD + "x"}
        ).status_code
        == 401
    )
    assert (
        call(
            "unknown", "POST", "/auth/login", json={"username": "nobody", "password": PASSWORD}
        ).status_code
        == 401
    )
    refresh_token = login.get_json()["refresh_token"]
    refreshed = call("refresh", "POST", "/auth/refresh", json={"refresh_token": refresh_token})
    assert refreshed.status_code == 200
    # past the grace in which a repeat answers the same pair again (test_refresh_grace)
    grace = app.config["REFRESH_REUSE_GRACE_SECONDS"]
    app.config["REFRESH_REUSE_GRACE_SECONDS"] = 0
    try:
        assert (
            call(
                "spent", "POST", "/auth/refresh", json={"refresh_token": refresh_token}
            ).status_code
            == 401
        )
    finally:
        app.config["REFRESH_REUSE_GRACE_SECONDS"] = grace
    assert (
        call(
            "bad refresh", "POST", "/auth/refresh", json={"refresh_token": "not-a-token"}
        ).status_code
        == 401
    )
    admin = bearer(
        call(
            "login again", "POST", "/auth/login", json={"username": "tadmin1", "password": PASSWORD}
        )
    )
    assert (
        call("bad token", "GET", "/me", headers={"Authorization": "Bearer " + "x" * 40}).status_code
        == 401
    )
    assert (
        call(
            "forged", "GET", "/me", headers={"Authorization": admin["Authorization"][:-4] + "AAAA"}
        ).status_code
        == 401
    )

    # an admin creates a cadre, resets its password; the cadre logs in with each
    created = call(
        "create user",
        "POST",
        "/users",
        headers=admin,
        json={
            "username": "new_cadre",
            "password": NEW_PASSWORD,
            "role": "cadre",
            "village_id": world.village_a,
        },
    )
    assert created.status_code == 201, created.get_json()
    assert (
        call(
            "weak",
            "POST",
            "/users",
            headers=admin,
            json={
                "username": "weak_cadre",
                "password": "short",
                "role": "cadre",
                "village_id": world.village_a,
            },
        ).status_code
        == 422
    )
    assert (
        call(
            "new login",
            "POST",
            "/auth/login",
            json={"username": "new_cadre", "password": NEW_PASSWORD},
        ).status_code
        == 200
    )
    user_id = created.get_json()["id"]
    assert (
        call(
            "reset", "PATCH", f"/users/{user_id}", headers=admin, json={"password": RESET_PASSWORD}
        ).status_code
        == 200
    )
    assert (
        call(
            "old password",
            "POST",
            "/auth/login",
            json={"username": "new_cadre", "password": NEW_PASSWORD},
        ).status_code
        == 401
    )
    cadre = bearer(
        call(
            "reset login",
            "POST",
            "/auth/login",
            json={"username": "new_cadre", "password": RESET_PASSWORD},
        )
    )
    assert call("audit", "GET", "/audit", headers=admin).status_code == 200
    assert call("users", "GET", "/users", headers=admin).status_code == 200

    # a villager: WeChat login (and its refusals), a binding code, bind, /me, logout
    wechat = call("wechat", "POST", "/auth/wechat", json={"code": "ok-eve"})
    assert wechat.status_code == 200, wechat.get_json()
    for code in ("ok-eve", "bad", "noopenid", "boom", "garbage"):
        assert (
            call(f"wechat {code}", "POST", "/auth/wechat", json={"code": code}).status_code >= 400
        )
    binding = call(
        "binding code", "POST", f"/villagers/{world.spouse_x}/binding-token", headers=cadre
    )
    assert binding.status_code == 201, binding.get_json()
    villager = bearer(wechat)
    assert (
        call(
            "bind",
            "POST",
            "/auth/bind",
            headers=villager,
            json={"token": binding.get_json()["token"]},
        ).status_code
        == 200
    )
    assert (
        call(
            "bind again",
            "POST",
            "/auth/bind",
            headers=villager,
            json={"token": binding.get_json()["token"]},
        ).status_code
        >= 400
    )
    assert call("me", "GET", "/me", headers=villager).status_code == 200
    assert call("logout", "POST", "/auth/logout", headers=villager).status_code == 204
    assert call("after logout", "GET", "/me", headers=villager).status_code == 401

    with app.app_context():
        hashes = [h for h in db.session.scalars(select(User.password_hash)) if h]
        token_hashes = list(db.session.scalars(select(RefreshToken.token_hash)))
    assert hashes and token_hashes and fake_wechat.issued_session_keys
    secrets = {
        "password": PASSWORD,
        "new password": NEW_PASSWORD,
        "reset password": RESET_PASSWORD,
        "wechat secret": fake_wechat.secret,
        "SECRET_KEY": SECRET,
        "wechat code": "ok-eve",
        **{f"password hash {i}": h for i, h in enumerate(hashes)},
        **{f"refresh token hash {i}": h for i, h in enumerate(token_hashes)},
        **{f"session_key {i}": k for i, k in enumerate(fake_wechat.issued_session_keys)},
    }
    logged = caplog.text + "\n".join(
        f"{r.getMessage()} {r.args!r} {r.exc_text or ''} {r.__dict__!r}" for r in caplog.records
    )
    found = [name for name, value in secrets.items() if value in logged]
    found += [f"token from {label}" for token, label in issued if token in logged]
    for label, response in responses:
        text = response.get_data(as_text=True)
        found += [
            f"{name} in the answer to {label}" for name, value in secrets.items() if value in text
        ]
        # (an access token minted in the same second for the same session is the same JWT,
        # so a token counts as issued by every answer that handed it out)
        found += [
            f"token from {issuer} in the answer to {label}"
            for token, issuer in issued
            if token in text and (token, label) not in issued
        ]
        assert "session_key" not in text and "password_hash" not in text, label
    assert not found, found


def test_a_database_failure_logs_no_hash_or_token(
    app: Flask,
    client: FlaskClient,
    world: World,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unexpected database error is logged with its traceback; the statement's parameters
    (a new password's hash, a refresh token's hash) must not be in it."""
    caplog.set_level(logging.DEBUG)
    login = client.post(f"{API}/auth/login", json={"username": "tadmin1", "password": PASSWORD})
    admin = {"Authorization": f"Bearer {login.get_json()['access_token']}"}
    refresh_token = login.get_json()["refresh_token"]

    def break_writes(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool
    ) -> tuple[str, Any]:
        # a table that is not there: the database itself fails, as on a broken disk
        for table in ("users", "refresh_tokens"):
            statement = re.sub(
                rf"^(INSERT INTO|UPDATE) {table}\b", rf"\1 missing_{table}", statement
            )
        return statement, params

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", break_writes, retval=True)
    try:
        created = client.post(
            f"{API}/users",
            headers=admin,
            json={
                "username": "new_cadre",
                "password": NEW_PASSWORD,
                "role": "cadre",
                "village_id": world.village_a,
            },
        )
        refreshed = client.post(f"{API}/auth/refresh", json={"refresh_token": refresh_token})
    finally:
        event.remove(engine, "before_cursor_execute", break_writes)
    assert created.status_code == refreshed.status_code == 500
    assert "unhandled error" in caplog.text  # the failure is logged, with its traceback
    logged = caplog.text + "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert "scrypt$" not in logged, "a password hash was logged"
    assert hashlib.sha256(refresh_token.encode()).hexdigest() not in logged
    assert NEW_PASSWORD not in logged and refresh_token not in logged
    for response in (created, refreshed):
        assert "scrypt$" not in response.get_data(as_text=True)
