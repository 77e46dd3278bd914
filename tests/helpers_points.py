"""Set-up helpers for the claims and ledger tests.

Each helper opens an app context of its own, does its work, commits and returns plain ids,
so no test holds a context (and SQLite's write lock) while it calls the client."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from io import BytesIO
from typing import Any
from zoneinfo import ZoneInfo

import time_machine
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

import rules
from backend.extensions import db
from points import catalogs, ledger
from points.models import (
    Account,
    Claim,
    ClaimApproval,
    Household,
    LedgerEntry,
    RuleCatalog,
    RuleItem,
    User,
    Villager,
)
from points.passwords import hash_password

from .conftest import PASSWORD, World

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    """A moment in the village's time zone (Asia/Shanghai, the app's default)."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def frozen(moment: datetime) -> Any:
    """Freeze the clock at `moment` (the server's now(), JWT times, everything)."""
    return time_machine.travel(moment, tick=False)


def install_default_catalog(app: Flask, township_id: int) -> dict[str, int]:
    """The reference 积分细则 as the township's catalog; returns item ids by code."""
    with app.app_context():
        catalogs.install_catalog(db.session, None, township_id, rules.load_default_catalog())
        db.session.commit()
        catalog_id = db.session.scalar(
            select(RuleCatalog.id).where(RuleCatalog.township_id == township_id))
        items = {item.code: item.id for item in db.session.scalars(
            select(RuleItem).where(RuleItem.catalog_id == catalog_id))}
    return items


def default_items(app: Flask, world: World) -> dict[str, int]:
    """The reference catalog installed for township 1 (villages A and B), ids by code, as
    village A sees them."""
    install_default_catalog(app, world.township_1)
    with app.app_context():
        return {item.code: item.id
                for item in catalogs.effective_items(db.session, world.village_a)}


def catalog_id(app: Flask, township_id: int) -> int:
    with app.app_context():
        found = db.session.scalar(
            select(RuleCatalog.id).where(RuleCatalog.township_id == township_id))
    assert found is not None
    return found


def set_policy(client: FlaskClient, world: World, **changes: Any) -> dict[str, Any]:
    """Township 1's policy, changed through the API as its township admin."""
    response = client.patch(
        f"/api/v1/rule-catalogs/{catalog_id(world.app, world.township_1)}/policy",
        json=changes, headers=world.headers("tadmin1"),
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()["policy"]


def add_household(app: Flask, village_id: int, name: str, head: str,
                  openid: str | None = None) -> dict[str, int]:
    """A household with a head, and (with `openid`) a villager user bound to the head."""
    with app.app_context():
        household = Household(village_id=village_id, name=name, address=f"{name}门牌")
        db.session.add(household)
        db.session.flush()
        member = Villager(household_id=household.id, name=head, relation="户主",
                          gender="男", birth_year=1980)
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


def bind_user(app: Flask, villager_id: int, openid: str) -> int:
    """A WeChat villager user bound to a roster member; returns the user id."""
    with app.app_context():
        user = User(role="villager", openid=openid, villager_id=villager_id)
        db.session.add(user)
        db.session.commit()
        return user.id


def add_cadre(app: Flask, world: World, username: str, village_id: int | None = None) -> int:
    with app.app_context():
        user = User(username=username, password_hash=hash_password(PASSWORD), role="cadre",
                    township_id=world.township_1, village_id=village_id or world.village_a)
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
        {"file": FileStorage(BytesIO(jpeg_bytes()), filename="proof.jpg")})
    response = client.post("/api/v1/uploads", headers=headers, data=body,
                           content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def post_due(runner: Any) -> int:
    """`flask claims post-due`; the number it says it posted."""
    result = runner.invoke(args=["claims", "post-due"])
    assert result.exit_code == 0, result.output
    found = re.search(r"posted (\d+) claim", result.output)
    assert found, result.output
    return int(found.group(1))


def claim_count(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Claim)) or 0


def approval_count(app: Flask, claim_id: int) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(ClaimApproval)
                                 .where(ClaimApproval.claim_id == claim_id)) or 0


def account_of(app: Flask, household_id: int) -> dict[str, int]:
    """The account row as stored (zeros before the first entry)."""
    with app.app_context():
        account = db.session.scalar(
            select(Account).where(Account.household_id == household_id))
        if account is None:
            return {"available": 0, "held": 0, "earned_total": 0, "entries": 0}
        return {"available": account.available, "held": account.held,
                "earned_total": account.earned_total, "entries": account.entry_count}


def entries_of(app: Flask, household_id: int) -> list[dict[str, Any]]:
    """The household's ledger entries in chain order, as plain dicts."""
    with app.app_context():
        rows = db.session.scalars(
            select(LedgerEntry).join(Account).where(Account.household_id == household_id)
            .order_by(LedgerEntry.seq))
        return [{"id": e.id, "kind": e.kind, "amount": e.amount, "month": e.month,
                 "member_id": e.member_id, "claim_id": e.claim_id,
                 "reverses_id": e.reverses_id, "note": e.note} for e in rows]


def ledger_sum(app: Flask, household_id: int) -> int:
    with app.app_context():
        account = db.session.scalar(
            select(Account).where(Account.household_id == household_id))
        return 0 if account is None else ledger.sum_entries(db.session, account.id)


def self_report(client: FlaskClient, world: World, user: str | int, item_id: int,
                units: int | None = None, **extra: Any) -> Any:
    body: dict[str, Any] = {"rule_item_id": item_id, **extra}
    if units is not None:
        body["units"] = units
    return client.post("/api/v1/claims", json=body, headers=world.headers(user))


def approve(client: FlaskClient, world: World, user: str | int, claim_id: int,
            **headers: str) -> Any:
    return client.post(f"/api/v1/claims/{claim_id}/approve",
                       headers={**world.headers(user), **headers})


def earn_posted(client: FlaskClient, runner: Any, world: World, item_id: int, units: int,
                at: datetime, user: str = "villager_x", cadre: str = "cadre_a") -> int:
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
