"""The one home of what makes test data: the small county every API test starts from
(`World`, `build_world`), households, members, users and their logins, rule items, funded
accounts, rewards, claims, orders and activities.

Each factory opens an app context of its own, does its work, commits and returns plain ids,
so no test holds a context (and SQLite's write lock) while it calls the client. Pytest
fixtures that call these live in tests/conftest.py."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from io import BytesIO
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import select
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

import rules
from backend.caller import qr_codec, token_settings
from backend.clock import now
from backend.extensions import db
from points import catalogs, ledger, sessions
from points.models import (
    Household,
    HouseholdFlag,
    Reward,
    RuleCatalog,
    RuleItem,
    Shop,
    Township,
    User,
    Village,
    Villager,
    VillagerGroup,
)
from points.passwords import hash_password
from points.tokens import TokenType
from tests.support.clock import SHANGHAI, frozen
from tests.support.reads import catalog_id

SECRET = "test-secret-key-that-is-long-enough-0123456789"
PASSWORD = "correct-horse-battery"
API = "/api/v1"


@dataclass
class World:
    """A small county: township T1 (villages A and B) and T2 (village C), a household in each
    village, and one account per role. Attributes are ids; `headers(name)` logs one in."""

    app: Flask
    ids: dict[str, int] = field(default_factory=dict)

    def __getattr__(self, name: str) -> int:
        try:
            return self.ids[name]
        except KeyError as exc:
            raise AttributeError(name) from exc

    def headers(self, user: str | int) -> dict[str, str]:
        user_id = self.ids[user] if isinstance(user, str) else user
        with self.app.app_context():
            pair = sessions.login(db.session, token_settings(), db.session.get(User, user_id))
            db.session.commit()
        return {"Authorization": f"Bearer {pair.access_token}"}

    def tokens(self, user: str) -> sessions.TokenPair:
        with self.app.app_context():
            pair = sessions.login(
                db.session, token_settings(), db.session.get(User, self.ids[user])
            )
            db.session.commit()
        return pair


def build_world(app: Flask) -> World:
    world = World(app)
    ids = world.ids
    with app.app_context():
        s = db.session
        t1, t2 = Township(name="青石镇", code="T1"), Township(name="白沙镇", code="T2")
        s.add_all([t1, t2])
        s.flush()
        a = Village(township_id=t1.id, name="清水村")
        b = Village(township_id=t1.id, name="桃源村")
        c = Village(township_id=t2.id, name="白沙村")
        s.add_all([a, b, c])
        s.flush()
        households = {}
        for key, village in (("x", a), ("y", b), ("z", c)):
            group = VillagerGroup(village_id=village.id, name="第一村民小组")
            s.add(group)
            s.flush()
            h = Household(
                village_id=village.id,
                group_id=group.id,
                name=f"{key}户",
                address=f"{village.name}1号",
            )
            s.add(h)
            s.flush()
            head = Villager(
                household_id=h.id,
                name=f"户主{key}",
                relation="户主",
                phone=f"1380000000{len(households)}",
                gender="男",
                birth_year=1970,
            )
            spouse = Villager(
                household_id=h.id,
                name=f"配偶{key}",
                relation="配偶",
                phone=None,
                gender="女",
                birth_year=1972,
            )
            s.add_all([head, spouse])
            s.flush()
            households[key] = h
            ids.update(
                {
                    f"village_{key}": village.id,
                    f"group_{key}": group.id,
                    f"household_{key}": h.id,
                    f"head_{key}": head.id,
                    f"spouse_{key}": spouse.id,
                }
            )
        shop_a = Shop(township_id=t1.id, name="清水村积分超市", villages=[a])
        s.add(shop_a)
        s.flush()
        pw = hash_password(PASSWORD)
        users = {
            "county": User(username="county", password_hash=pw, role="county_admin"),
            "tadmin1": User(
                username="tadmin1", password_hash=pw, role="township_admin", township_id=t1.id
            ),
            "tadmin2": User(
                username="tadmin2", password_hash=pw, role="township_admin", township_id=t2.id
            ),
            "cadre_a": User(
                username="cadre_a",
                password_hash=pw,
                role="cadre",
                township_id=t1.id,
                village_id=a.id,
            ),
            "cadre_b": User(
                username="cadre_b",
                password_hash=pw,
                role="cadre",
                township_id=t1.id,
                village_id=b.id,
            ),
            "clerk_a": User(
                username="clerk_a",
                password_hash=pw,
                role="clerk",
                township_id=t1.id,
                shop_id=shop_a.id,
            ),
            "villager_x": User(
                role="villager", openid="openid-x", villager_id=ids["head_x"], name="户主x"
            ),
            "villager_y": User(
                role="villager", openid="openid-y", villager_id=ids["head_y"], name="户主y"
            ),
            "unbound": User(role="villager", openid="openid-unbound"),
        }
        s.add_all(users.values())
        s.commit()
        ids.update(
            {
                "township_1": t1.id,
                "township_2": t2.id,
                "village_a": a.id,
                "village_b": b.id,
                "village_c": c.id,
                "shop_a": shop_a.id,
            }
        )
        ids.update({name: u.id for name, u in users.items()})
    # the "x/y/z" keys name households; "a/b/c" name their villages
    return world


# ---- rule items, households, users ---------------------------------------------------------


def install_default_catalog(app: Flask, township_id: int) -> dict[str, int]:
    """The reference 积分细则 as the township's catalog; returns item ids by code."""
    with app.app_context():
        catalogs.install_catalog(db.session, None, township_id, rules.load_default_catalog())
        db.session.commit()
        catalog_id = db.session.scalar(
            select(RuleCatalog.id).where(RuleCatalog.township_id == township_id)
        )
        items = {
            item.code: item.id
            for item in db.session.scalars(
                select(RuleItem).where(RuleItem.catalog_id == catalog_id)
            )
        }
    return items


def default_items(app: Flask, world: World) -> dict[str, int]:
    """The reference catalog installed for township 1 (villages A and B), ids by code, as
    village A sees them."""
    install_default_catalog(app, world.township_1)
    with app.app_context():
        return {
            item.code: item.id for item in catalogs.effective_items(db.session, world.village_a)
        }


def set_policy(client: FlaskClient, world: World, **changes: Any) -> dict[str, Any]:
    """Township 1's policy, changed through the API as its township admin."""
    response = client.patch(
        f"/api/v1/rule-catalogs/{catalog_id(world.app, world.township_1)}/policy",
        json=changes,
        headers=world.headers("tadmin1"),
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()["policy"]


def add_household(
    app: Flask, village_id: int, name: str, head: str, openid: str | None = None
) -> dict[str, int]:
    """A household with a head, and (with `openid`) a villager user bound to the head."""
    with app.app_context():
        household = Household(village_id=village_id, name=name, address=f"{name}门牌")
        db.session.add(household)
        db.session.flush()
        member = Villager(
            household_id=household.id, name=head, relation="户主", gender="男", birth_year=1980
        )
        db.session.add(member)
        db.session.flush()
        ids = {"household": household.id, "head": member.id}
        if openid is not None:
            user = User(role="villager", openid=openid, villager_id=member.id, name=head)
            db.session.add(user)
            db.session.flush()
            ids["user"] = user.id
        db.session.commit()
    return ids


def add_village(app: Flask, township_id: int, name: str, head: str) -> dict[str, int]:
    """A village of the township with one household (its head named `head`) and a shop
    serving it."""
    with app.app_context():
        village = Village(township_id=township_id, name=name)
        db.session.add(village)
        db.session.flush()
        shop = Shop(township_id=township_id, name=f"{name}积分超市", villages=[village])
        db.session.add(shop)
        db.session.commit()
        ids = {"village": village.id, "shop": shop.id}
    return {**ids, **add_household(app, ids["village"], f"{head}户", head)}


def bind_user(app: Flask, villager_id: int, openid: str) -> int:
    """A WeChat villager user bound to a roster member; returns the user id."""
    with app.app_context():
        user = User(role="villager", openid=openid, villager_id=villager_id)
        db.session.add(user)
        db.session.commit()
        return user.id


def add_cadre(app: Flask, world: World, username: str, village_id: int | None = None) -> int:
    with app.app_context():
        user = User(
            username=username,
            password_hash=hash_password(PASSWORD),
            role="cadre",
            township_id=world.township_1,
            village_id=village_id or world.village_a,
        )
        db.session.add(user)
        db.session.commit()
        return user.id


def link_staff_to_villager(app: Flask, user_id: int, villager_id: int) -> None:
    """Staff who are villagers themselves carry their roster entry (bars self-approval)."""
    with app.app_context():
        user = db.session.get(User, user_id)
        assert user is not None
        user.villager_id = villager_id
        db.session.commit()


def jpeg_bytes() -> bytes:
    out = BytesIO()
    Image.new("RGB", (32, 24), (30, 160, 60)).save(out, "JPEG")
    return out.getvalue()


def upload_photo(client: FlaskClient, headers: dict[str, str]) -> int:
    boundary, body = encode_multipart(
        {"file": FileStorage(BytesIO(jpeg_bytes()), filename="proof.jpg")}
    )
    response = client.post(
        "/api/v1/uploads",
        headers=headers,
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def post_due(runner: Any) -> int:
    """`flask claims post-due`; the number it says it posted."""
    result = runner.invoke(args=["claims", "post-due"])
    assert result.exit_code == 0, result.output
    found = re.search(r"posted (\d+) claim", result.output)
    assert found, result.output
    return int(found.group(1))


def self_report(
    client: FlaskClient,
    world: World,
    user: str | int,
    item_id: int,
    units: int | None = None,
    **extra: Any,
) -> Any:
    body: dict[str, Any] = {"rule_item_id": item_id, **extra}
    if units is not None:
        body["units"] = units
    return client.post("/api/v1/claims", json=body, headers=world.headers(user))


def award(
    client: FlaskClient,
    world: World,
    item_id: int,
    targets: list[dict[str, int]],
    user: str | int = "cadre_a",
    **extra: Any,
) -> Any:
    """A cadre's award or deduction (直接录入) to each target: `{"household_id": …}` or
    `{"member_id": …}`."""
    return client.post(
        f"{API}/awards",
        json={"rule_item_id": item_id, "targets": targets, **extra},
        headers=world.headers(user),
    )


def approve(
    client: FlaskClient, world: World, user: str | int, claim_id: int, **headers: str
) -> Any:
    return client.post(
        f"/api/v1/claims/{claim_id}/approve", headers={**world.headers(user), **headers}
    )


def earn_posted(
    client: FlaskClient,
    runner: Any,
    world: World,
    item_id: int,
    units: int,
    at: datetime,
    user: str = "villager_x",
    cadre: str = "cadre_a",
) -> int:
    """A self-report made at `at`, approved, and posted after its 5-day notice; returns the
    claim id. The clock is left where it was."""
    with frozen(at):
        response = self_report(client, world, user, item_id, units)
        assert response.status_code == 201, response.get_json()
        claim_id = response.get_json()["id"]
        approved = approve(client, world, cadre, claim_id)
        assert approved.get_json()["status"] == "in_notice", approved.get_json()
    with frozen(at + timedelta(days=6)):
        assert post_due(runner) == 1
    return claim_id


# ---- shop (积分超市) ---------------------------------------------------------------------------


def fund(
    app: Flask, household_id: int, points: int, at: datetime | None = None, kind: str = "earn"
) -> None:
    """Points earned by the household through the ledger, as a posted claim would give."""
    with app.app_context():
        ledger.append(
            db.session,
            household_id=household_id,
            kind=kind,
            amount=points,
            when=ledger.EntryTime(SHANGHAI, at=at),
            origin=ledger.EntryOrigin(note="测试入账"),
        )
        db.session.commit()


def add_reward(
    app: Flask, shop_id: int, name: str, points: int, stock: int, active: bool = True
) -> int:
    with app.app_context():
        reward = Reward(shop_id=shop_id, name=name, points=points, stock=stock, active=active)
        db.session.add(reward)
        db.session.commit()
        return reward.id


def member_token(app: Flask, villager_id: int) -> str:
    """What the member card (积分卡) of a villager carries."""
    with app.app_context():
        return qr_codec().encode(TokenType.MEMBER_CARD, (villager_id,))


def order(
    client: FlaskClient,
    headers: dict[str, str],
    shop_id: int,
    items: list[tuple[int, int]],
    **extra: str,
) -> Any:
    return client.post(
        f"{API}/redemptions",
        headers={**headers, **extra},
        json={"shop_id": shop_id, "items": [{"reward_id": r, "quantity": q} for r, q in items]},
    )


def scan(client: FlaskClient, headers: dict[str, str], token: str) -> Any:
    return client.post(f"{API}/redemptions/scan", headers=headers, json={"pickup_token": token})


def add_shop_b(app: Flask, world: World) -> dict[str, int]:
    """A second shop, serving village B only, with its own clerk."""
    with app.app_context():
        village_b = db.session.get(Village, world.village_b)
        shop = Shop(township_id=world.township_1, name="桃源村积分超市", villages=[village_b])
        db.session.add(shop)
        db.session.flush()
        clerk = User(
            username="clerk_b",
            password_hash=hash_password(PASSWORD),
            role="clerk",
            township_id=world.township_1,
            shop_id=shop.id,
        )
        db.session.add(clerk)
        db.session.commit()
        return {"shop": shop.id, "clerk": clerk.id}


def shelf(app: Flask, world: World) -> dict[str, int]:
    """Shop A's shelf (prices as in the demo shop), household x funded with 100 points."""
    ids = {
        "soap": add_reward(app, world.shop_a, "香皂", 5, 50),
        "rice": add_reward(app, world.shop_a, "大米 5kg", 50, 10),
        "oil": add_reward(app, world.shop_a, "玉米油 5L", 85, 2),
    }
    fund(app, world.household_x, 100)
    return ids


def counter(
    client: FlaskClient,
    headers: dict[str, str],
    shop_id: int,
    token: str,
    items: list[tuple[int, int]],
    cash: str | float | None = None,
) -> Any:
    body: dict[str, Any] = {
        "member_token": token,
        "items": [{"reward_id": r, "quantity": q} for r, q in items],
    }
    if cash is not None:
        body["cash_paid"] = cash
    return client.post(f"{API}/shops/{shop_id}/counter-redemptions", headers=headers, json=body)


# ---- ledger entries and flags, straight through the ledger ---------------------------------


def earn(
    app: Flask,
    household_id: int,
    amount: int,
    at: datetime,
    member_id: int | None = None,
    kind: str | None = None,
) -> int:
    """An entry straight through the ledger (the claims flow is tested elsewhere)."""
    with app.app_context():
        entry = ledger.append(
            db.session,
            household_id=household_id,
            kind=kind or ("earn" if amount > 0 else "deduct"),
            amount=amount,
            when=ledger.EntryTime(SHANGHAI, at=at),
            origin=ledger.EntryOrigin(member_id=member_id, note="测试"),
        )
        db.session.commit()
        return entry.id


def bar(app: Flask, household_id: int, from_month: str, until_month: str) -> None:
    with app.app_context():
        db.session.add(
            HouseholdFlag(
                household_id=household_id,
                kind="veto",
                from_month=from_month,
                until_month=until_month,
                note="一票否决",
            )
        )
        db.session.commit()


# ---- activities and check-in ---------------------------------------------------------------


def open_activity(
    client: FlaskClient, world: World, item_id: int, **changes: Any
) -> tuple[int, str]:
    """An activity of village A open for check-in now, and its code."""
    current = now()
    body = {
        "village_id": world.village_a,
        "title": "村民大会",
        "rule_item_id": item_id,
        "starts_at": (current - timedelta(minutes=10)).isoformat(),
        "ends_at": (current + timedelta(hours=2)).isoformat(),
        "qr_mode": "static",
        **changes,
    }
    cadre = world.headers("cadre_a")
    created = client.post(f"{API}/activities", json=body, headers=cadre)
    assert created.status_code == 201, created.get_json()
    activity_id = created.get_json()["id"]
    shown = client.get(f"{API}/activities/{activity_id}/qr-token", headers=cadre)
    return activity_id, shown.get_json()["token"]


def bound_villagers(app: Flask, village_id: int, n: int) -> list[int]:
    """n households of the village, each head bound to a WeChat user; the user ids."""
    with app.app_context():
        users = []
        for i in range(n):
            household = Household(village_id=village_id, name=f"并发{i}户")
            db.session.add(household)
            db.session.flush()
            head = Villager(household_id=household.id, name=f"村民{i}", relation="户主")
            db.session.add(head)
            db.session.flush()
            user = User(role="villager", openid=f"openid-concurrent-{i}", villager_id=head.id)
            db.session.add(user)
            users.append(user)
        db.session.commit()
        return [u.id for u in users]


def check_in(
    client: FlaskClient,
    world: World,
    token: str,
    user: str | int = "villager_x",
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Any:
    """A villager scanning an activity's code to check in."""
    return client.post(
        f"{API}/checkins",
        json={"token": token, **extra},
        headers={**world.headers(user), **(headers or {})},
    )


# ---- objections ----------------------------------------------------------------------------


def object_to(
    client: FlaskClient,
    world: World,
    user: str | int,
    claim_id: int,
    reason: str = "那天他不在村里",
) -> Any:
    return client.post(
        f"/api/v1/claims/{claim_id}/objections",
        json={"reason": reason},
        headers=world.headers(user),
    )


def resolve(
    client: FlaskClient, world: World, objection_id: int, outcome: str, note: str = "已核实"
) -> Any:
    return client.post(
        f"/api/v1/objections/{objection_id}/resolve",
        json={"outcome": outcome, "note": note},
        headers=world.headers("cadre_a"),
    )


# ---- claims and awards through the API ----------------------------------------------------


def volunteer(client: FlaskClient, world: World, item_id: int, hours: int) -> Any:
    """villager_x's volunteer hours (2 points an hour), approved by cadre_a."""
    reported = self_report(client, world, "villager_x", item_id, hours)
    assert reported.status_code == 201, reported.get_json()
    approved = approve(client, world, "cadre_a", reported.get_json()["id"])
    assert approved.status_code == 200, approved.get_json()
    return approved.get_json()


def award_veto(
    client: FlaskClient, world: World, item_id: int, user: str | int = "cadre_a"
) -> dict[str, Any]:
    photo = upload_photo(client, world.headers(user))
    response = client.post(
        f"{API}/awards",
        json={
            "rule_item_id": item_id,
            "note": "婚礼收取彩礼20万元",
            "evidence": [photo],
            "targets": [{"household_id": world.household_x}],
        },
        headers=world.headers(user),
    )
    assert response.status_code == 201, response.get_json()
    [claim] = response.get_json()
    return claim
