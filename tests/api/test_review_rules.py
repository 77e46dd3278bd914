"""The review rules in real use: staff linked to their own roster entry never decide their
household's points; a village's own items (村规民约) stay under the township's policy; staff
withdraw a claim before it posts; one objection per villager per claim."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from backend.extensions import db
from points.models import AuditEntry, MonthlyIssued, Objection, User
from tests.factories import (
    PASSWORD,
    World,
    add_cadre,
    approve,
    award,
    earn,
    link_staff_to_villager,
    object_to,
    open_activity,
    post_due,
    resolve,
    self_report,
    set_policy,
)
from tests.support.clock import frozen, local
from tests.support.concurrency import assert_no_server_errors, on_postgres, post_together
from tests.support.reads import catalog_id, entries_of, error_code

API = "/api/v1"
MARCH_10 = local(2026, 3, 10)


def patch_user(client: FlaskClient, world: World, user_id: int, by: str, **body: Any) -> Any:
    return client.patch(f"{API}/users/{user_id}", json=body, headers=world.headers(by))


def get_claim(client: FlaskClient, world: World, user: str | int, claim_id: int) -> Any:
    return client.get(f"{API}/claims/{claim_id}", headers=world.headers(user))


def withdraw(
    client: FlaskClient,
    world: World,
    user: str | int,
    claim_id: int,
    reason: str = "录入有误，核实后重新录入",
    **headers: str,
) -> Any:
    return client.post(
        f"{API}/claims/{claim_id}/withdraw",
        json={"reason": reason},
        headers={**world.headers(user), **headers},
    )


def reported(client: FlaskClient, world: World, item_id: int, units: int = 3) -> int:
    """villager_x's self-report, pending; its id."""
    response = self_report(client, world, "villager_x", item_id, units)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def in_notice(
    client: FlaskClient, world: World, items: dict[str, int], cadre: str | int, units: int = 3
) -> int:
    """villager_x's volunteer hours (2 points an hour), approved: in notice; its id."""
    claim_id = reported(client, world, items["PUB-VOLUNTEER"], units)
    approved = approve(client, world, cadre, claim_id)
    assert approved.get_json()["status"] == "in_notice", approved.get_json()
    return claim_id


def issued(app: Flask, village_id: int, month: str) -> int:
    with app.app_context():
        return (
            db.session.scalar(
                select(MonthlyIssued.issued).where(
                    MonthlyIssued.village_id == village_id, MonthlyIssued.month == month
                )
            )
            or 0
        )


def audited(app: Flask, action: str) -> list[AuditEntry]:
    with app.app_context():
        rows = list(
            db.session.scalars(
                select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
            )
        )
        db.session.expunge_all()
        return rows


# ---- a staff account linked to its holder's roster entry ------------------------------------


def test_admin_links_a_cadre_to_their_roster_entry_and_it_bars_self_approval(
    app: Flask,
    client: FlaskClient,
    world: World,
    items: dict[str, int],
    neighbour: dict[str, int],
) -> None:
    linked = patch_user(client, world, world.cadre_a, "tadmin1", villager_id=world.spouse_x)
    assert linked.status_code == 200, linked.get_json()
    assert (linked.get_json()["villager_id"], linked.get_json()["villager_name"]) == (
        world.spouse_x,
        "配偶x",
    )

    listed = client.get(f"{API}/users?role=cadre", headers=world.headers("tadmin1")).get_json()
    shown = {u["username"]: (u["villager_id"], u["villager_name"]) for u in listed["items"]}
    assert shown["cadre_a"] == (world.spouse_x, "配偶x")
    assert shown["cadre_b"] == (None, None)

    [entry] = audited(app, "user.update")
    assert (entry.actor_id, entry.object_id) == (world.tadmin1, str(world.cadre_a))
    assert entry.before is not None and entry.after is not None
    assert (entry.before["villager_id"], entry.after["villager_id"]) == (None, world.spouse_x)

    with frozen(MARCH_10):
        own = reported(client, world, items["PUB-VOLUNTEER"])
        refused = approve(client, world, "cadre_a", own)
        assert refused.status_code == 403 and error_code(refused) == "self_approval"
        assert get_claim(client, world, "cadre_a", own).get_json()["status"] == "pending"
        # The cadre keeps their village: another household's claim is theirs to review.
        other = self_report(client, world, neighbour["user"], items["PUB-VOLUNTEER"], 2)
        assert approve(client, world, "cadre_a", other.get_json()["id"]).status_code == 200
    me = client.get(f"{API}/me", headers=world.headers("cadre_a")).get_json()
    assert (me["scope"]["village_id"], me["scope"]["household_id"]) == (
        world.village_a,
        world.household_x,
    )

    # Unlinked (null), the cadre may review the household again.
    unlinked = patch_user(client, world, world.cadre_a, "county", villager_id=None)
    assert unlinked.status_code == 200 and unlinked.get_json()["villager_id"] is None
    with frozen(MARCH_10):
        assert approve(client, world, "cadre_a", own).status_code == 200


def test_link_stays_within_the_admins_and_the_accounts_scope(
    app: Flask,
    client: FlaskClient,
    world: World,
) -> None:
    # A villager of another village of the admin's township: not the cadre's village.
    other_village = patch_user(client, world, world.cadre_a, "tadmin1", villager_id=world.head_y)
    assert other_village.status_code == 422
    assert error_code(other_village) == "villager_out_of_scope"
    # Another township's villager, or another township's account: not found.
    assert (
        patch_user(client, world, world.cadre_a, "tadmin1", villager_id=world.head_z).status_code
        == 404
    )
    assert (
        patch_user(client, world, world.cadre_a, "tadmin2", villager_id=world.spouse_x).status_code
        == 404
    )
    # A township admin may be linked to a villager anywhere in the township.
    assert (
        patch_user(client, world, world.tadmin1, "county", villager_id=world.head_y).status_code
        == 200
    )
    # Only admins link; nobody links their own account; a WeChat user binds itself.
    by_cadre = patch_user(client, world, world.cadre_a, "cadre_a", villager_id=world.spouse_x)
    assert by_cadre.status_code == 403
    own = patch_user(client, world, world.tadmin1, "tadmin1", villager_id=world.spouse_x)
    assert own.status_code == 403 and error_code(own) == "cannot_link_self"
    wechat = patch_user(client, world, world.unbound, "county", villager_id=world.spouse_x)
    assert wechat.status_code == 422 and error_code(wechat) == "not_staff"
    with app.app_context():
        links = dict(
            db.session.execute(
                select(User.username, User.villager_id).where(User.role != "villager")
            ).all()
        )
    assert links == {
        "county": None,
        "tadmin1": world.head_y,
        "tadmin2": None,
        "cadre_a": None,
        "cadre_b": None,
        "clerk_a": None,
    }


def test_staff_link_and_wechat_binding_of_one_villager_do_not_collide(
    app: Flask,
    client: FlaskClient,
    world: World,
) -> None:
    # head_x is bound to villager_x's WeChat; the same person's cadre account links to it.
    assert (
        patch_user(client, world, world.cadre_a, "tadmin1", villager_id=world.head_x).status_code
        == 200
    )
    # And a cadre linked first does not keep their own WeChat user from binding.
    linked_first = add_cadre(app, world, "cadre_a2")
    assert (
        patch_user(client, world, linked_first, "tadmin1", villager_id=world.spouse_x).status_code
        == 200
    )
    token = client.post(
        f"{API}/villagers/{world.spouse_x}/binding-token", headers=world.headers("cadre_a")
    ).get_json()["token"]
    bound = client.post(f"{API}/auth/bind", json={"token": token}, headers=world.headers("unbound"))
    assert bound.status_code == 200, bound.get_json()
    household = client.get(
        f"{API}/households/{world.household_x}", headers=world.headers("cadre_a")
    ).get_json()
    assert {m["id"]: m["bound"] for m in household["members"]} == {
        world.head_x: True,
        world.spouse_x: True,
    }
    # Two WeChat users still cannot bind one villager: the database says so too.
    with app.app_context():
        db.session.add(User(role="villager", openid="openid-second", villager_id=world.head_x))
        with pytest.raises(IntegrityError):
            db.session.flush()
        db.session.rollback()


def test_cli_creates_a_cadre_linked_to_their_roster_entry(
    app: Flask,
    runner: Any,
    world: World,
) -> None:
    base = [
        "users",
        "create",
        "--role",
        "cadre",
        "--password",
        PASSWORD,
        "--village-id",
        str(world.village_a),
    ]
    made = runner.invoke(
        args=[*base, "--username", "cadre_qs2", "--villager-id", str(world.spouse_x)]
    )
    assert made.exit_code == 0, made.output
    elsewhere = runner.invoke(
        args=[*base, "--username", "cadre_qs3", "--villager-id", str(world.head_y)]
    )
    assert elsewhere.exit_code != 0 and "花名册" in elsewhere.output
    with app.app_context():
        users = dict(
            db.session.execute(
                select(User.username, User.villager_id).where(
                    User.username.in_(["cadre_qs2", "cadre_qs3"])
                )
            ).all()
        )
    assert users == {"cadre_qs2": world.spouse_x}


def test_linked_staff_decide_nothing_for_their_own_household(
    app: Flask,
    client: FlaskClient,
    runner: Any,
    world: World,
    items: dict[str, int],
    neighbour: dict[str, int],
) -> None:
    """Award, approval (also the township's past the budget), objection, withdrawal and
    reversal all make the one own-household check."""
    second = add_cadre(app, world, "cadre_a2")
    link_staff_to_villager(app, world.cadre_a, world.spouse_x)
    link_staff_to_villager(app, world.tadmin1, world.head_x)
    with frozen(MARCH_10):
        own_award = award(
            client, world, items["GOV-ASSEMBLY"], [{"household_id": world.household_x}]
        )
        assert own_award.status_code == 403 and error_code(own_award) == "self_approval"

        claim_id = in_notice(client, world, items, second)
        objection = object_to(client, world, neighbour["user"], claim_id).get_json()
        refused = resolve(client, world, objection["id"], "overturn")
        assert refused.status_code == 403 and error_code(refused) == "self_approval"
        assert get_claim(client, world, "cadre_a", claim_id).get_json()["status"] == "objected"

        not_own = withdraw(client, world, "cadre_a", claim_id)
        assert not_own.status_code == 403 and error_code(not_own) == "self_approval"

        entry = earn(app, world.household_x, 5, MARCH_10)
        reversal = client.post(
            f"{API}/ledger/{entry}/reverse",
            json={"reason": "录错"},
            headers=world.headers("cadre_a"),
        )
        assert reversal.status_code == 403 and error_code(reversal) == "self_approval"
        assert [e["kind"] for e in entries_of(app, world.household_x)] == ["earn"]

        # Past the village's budget only the township approves: not for its own household.
        set_policy(client, world, monthly_budget=1)
        over = reported(client, world, items["PUB-VOLUNTEER"], 2)
        assert approve(client, world, second, over).get_json()["status"] == "approved"
        by_township = approve(client, world, "tadmin1", over)
        assert by_township.status_code == 403 and error_code(by_township) == "self_approval"
        assert get_claim(client, world, "cadre_a", over).get_json()["status"] == "approved"


# ---- a village's own items under the township's policy --------------------------------------


def village_item(**changes: Any) -> dict[str, Any]:
    return {
        "code": "QS-HELP",
        "name": "帮扶邻里",
        "category": "热心公益",
        "class": "bonus",
        "points": 49,
        "kind": "fixed",
        "applies_to": "household",
        "submit_by": ["villager", "cadre"],
        **changes,
    }


def village_catalog(client: FlaskClient, world: World) -> int:
    created = client.post(
        f"{API}/rule-catalogs",
        json={"name": "清水村村规民约", "village_id": world.village_a},
        headers=world.headers("cadre_a"),
    )
    assert created.status_code == 201, created.get_json()
    return created.get_json()["id"]


def add_village_item(client: FlaskClient, world: World, catalog: int, **item: Any) -> Any:
    return client.post(
        f"{API}/rule-catalogs/{catalog}/items",
        json=village_item(**item),
        headers=world.headers("cadre_a"),
    )


def problem_fields(response: Any) -> list[str]:
    return [p["field"] for p in response.get_json()["error"]["details"]["problems"]]


def test_a_village_item_cannot_be_written_below_the_township_policy(
    client: FlaskClient,
    world: World,
    items: dict[str, int],
) -> None:
    catalog = village_catalog(client, world)
    # 49 points at once, no review, no 公示: refused, naming each field.
    bypass = add_village_item(client, world, catalog, notice_days=0, requires_review=False)
    assert bypass.status_code == 422 and error_code(bypass) == "catalog_invalid"
    assert problem_fields(bypass) == ["notice_days", "requires_review"]

    added = add_village_item(client, world, catalog, notice_days=7)
    assert added.status_code == 201, added.get_json()
    lowered = client.patch(
        f"{API}/rule-items/{added.get_json()['id']}",
        json={"notice_days": 4},
        headers=world.headers("cadre_a"),
    )
    assert lowered.status_code == 422 and problem_fields(lowered) == ["notice_days"]

    # The township may let its villages' items skip review; the notice floor stays.
    set_policy(client, world, village_items_skip_review=True)
    unreviewed = add_village_item(client, world, catalog, code="QS-2", requires_review=False)
    assert unreviewed.status_code == 201, unreviewed.get_json()
    # A township's own catalog has no floor of its own.
    township_item = client.patch(
        f"{API}/rule-items/{items['ENV-YARD']}",
        json={"notice_days": 0},
        headers=world.headers("tadmin1"),
    )
    assert township_item.status_code == 200, township_item.get_json()


def test_claims_on_village_items_are_decided_under_the_floor_in_force(
    app: Flask,
    client: FlaskClient,
    runner: Any,
    world: World,
    items: dict[str, int],
) -> None:
    """Written while the township allowed 2 days and no review; the township then raises
    its floor: awards, self-reports and check-ins on the item follow the new floor."""
    set_policy(client, world, notice_days=2, village_items_skip_review=True)
    catalog = village_catalog(client, world)
    help_item = add_village_item(client, world, catalog, notice_days=2, requires_review=False)
    assert help_item.status_code == 201, help_item.get_json()
    meeting = add_village_item(
        client,
        world,
        catalog,
        code="QS-MEET",
        name="村民小组会",
        points=2,
        applies_to="member",
        submit_by=["checkin"],
        notice_days=2,
        requires_review=False,
    )
    assert meeting.status_code == 201, meeting.get_json()
    set_policy(client, world, notice_days=5, village_items_skip_review=False)

    with frozen(MARCH_10):
        awarded = award(
            client, world, help_item.get_json()["id"], [{"household_id": world.household_x}]
        )
        assert awarded.status_code == 201, awarded.get_json()
        [claim] = awarded.get_json()
        assert claim["status"] == "in_notice"
        assert datetime.fromisoformat(claim["notice_ends_at"]) == MARCH_10 + timedelta(days=5)

        reported_claim = self_report(client, world, "villager_x", help_item.get_json()["id"])
        assert reported_claim.status_code == 201, reported_claim.get_json()
        assert reported_claim.get_json()["status"] == "pending"

        _activity, token = open_activity(client, world, meeting.get_json()["id"])
        scanned = client.post(
            f"{API}/checkins", json={"token": token}, headers=world.headers("villager_x")
        )
        assert scanned.status_code == 201, scanned.get_json()
        assert scanned.get_json()["status"] == "pending"
    with frozen(MARCH_10 + timedelta(days=3)):
        assert post_due(runner) == 0  # 2 days would have posted the award by now
    with frozen(MARCH_10 + timedelta(days=5, minutes=1)):
        assert post_due(runner) == 1


def test_skip_review_policy_is_in_the_catalog_file_and_the_api(
    client: FlaskClient,
    world: World,
    items: dict[str, int],
) -> None:
    catalog = catalog_id(client.application, world.township_1)
    assert set_policy(client, world)["village_items_skip_review"] is False
    assert (
        set_policy(client, world, village_items_skip_review=True)["village_items_skip_review"]
        is True
    )
    exported = client.get(f"{API}/rule-catalogs/{catalog}/export", headers=world.headers("tadmin1"))
    assert exported.status_code == 200
    text = exported.get_data(as_text=True)
    assert yaml.safe_load(text)["policy"]["village_items_skip_review"] is True
    wrong = client.patch(
        f"{API}/rule-catalogs/{catalog}/policy",
        json={"village_items_skip_review": "yes"},
        headers=world.headers("tadmin1"),
    )
    assert wrong.status_code == 422
    spec = client.get(f"{API}/openapi.json").get_json()["components"]["schemas"]
    assert "village_items_skip_review" in spec["PolicyPatch"]["properties"]
    assert "village_items_skip_review" in spec["PolicyOut"]["properties"]


# ---- withdrawing a claim before it posts (撤回) ------------------------------------------------


def test_cadre_withdraws_a_claim_in_notice_and_the_budget_gets_its_points_back(
    app: Flask,
    client: FlaskClient,
    runner: Any,
    world: World,
    items: dict[str, int],
) -> None:
    with frozen(MARCH_10):
        claim_id = in_notice(client, world, items, "cadre_a")
        assert issued(app, world.village_a, "2026-03") == 6
        taken = withdraw(client, world, "cadre_a", claim_id, reason="志愿时长记错了")
        assert taken.status_code == 200, taken.get_json()
        assert (taken.get_json()["status"], taken.get_json()["withdraw_reason"]) == (
            "withdrawn",
            "志愿时长记错了",
        )
        assert issued(app, world.village_a, "2026-03") == 0
        # The household reads why.
        seen = get_claim(client, world, "villager_x", claim_id).get_json()
        assert (seen["status"], seen["withdraw_reason"]) == ("withdrawn", "志愿时长记错了")
        assert seen["withdrawn_at"] is not None
        listed = client.get(
            f"{API}/claims?status=withdrawn", headers=world.headers("villager_x")
        ).get_json()
        assert [c["id"] for c in listed["items"]] == [claim_id]
    with frozen(MARCH_10 + timedelta(days=6)):
        assert post_due(runner) == 0
    assert entries_of(app, world.household_x) == []
    [entry] = audited(app, "claim.withdraw")
    assert entry.actor_id == world.cadre_a and entry.before is not None
    assert (entry.before["status"], entry.after["status"]) == ("in_notice", "withdrawn")


def test_what_can_be_withdrawn_and_by_whom(
    app: Flask,
    client: FlaskClient,
    runner: Any,
    world: World,
    items: dict[str, int],
    neighbour: dict[str, int],
) -> None:
    with frozen(MARCH_10):
        pending = reported(client, world, items["PUB-VOLUNTEER"])
        assert withdraw(client, world, "villager_x", pending).status_code == 403
        assert withdraw(client, world, "cadre_b", pending).status_code == 404
        assert withdraw(client, world, "tadmin2", pending).status_code == 404
        assert withdraw(client, world, "tadmin1", pending).get_json()["status"] == "withdrawn"
        again = withdraw(client, world, "cadre_a", pending)
        assert again.status_code == 409 and error_code(again) == "claim_not_withdrawable"

        # Waiting for the township past the budget: nothing was counted, nothing to give back.
        set_policy(client, world, monthly_budget=1)
        over = reported(client, world, items["PUB-VOLUNTEER"])
        assert approve(client, world, "cadre_a", over).get_json()["status"] == "approved"
        assert withdraw(client, world, "cadre_a", over).get_json()["status"] == "withdrawn"
        set_policy(client, world, monthly_budget=None)

        # Objected: the waiting objection is settled for the objector.
        objected = in_notice(client, world, items, "cadre_a")
        objection = object_to(client, world, neighbour["user"], objected).get_json()
        taken = withdraw(client, world, "cadre_a", objected, reason="村民反映属实")
        assert taken.status_code == 200, taken.get_json()
        [settled] = taken.get_json()["objections"]
        assert (settled["id"], settled["status"]) == (objection["id"], "overturned")
        assert settled["resolution_note"] == "申报已撤回：村民反映属实"

        posted_claim = in_notice(client, world, items, "cadre_a", units=1)
    with frozen(MARCH_10 + timedelta(days=6)):
        assert post_due(runner) == 1
        posted = withdraw(client, world, "cadre_a", posted_claim)
        assert posted.status_code == 409 and error_code(posted) == "claim_not_withdrawable"
        assert get_claim(client, world, "cadre_a", posted_claim).get_json()["status"] == "posted"
    assert issued(app, world.village_a, "2026-03") == 2  # only the posted claim counts


def test_withdraw_retried_with_its_key_withdraws_once(
    app: Flask,
    client: FlaskClient,
    world: World,
    items: dict[str, int],
) -> None:
    with frozen(MARCH_10):
        claim_id = in_notice(client, world, items, "cadre_a")
        first = withdraw(client, world, "cadre_a", claim_id, **{"Idempotency-Key": "w-1"})
        retry = withdraw(client, world, "cadre_a", claim_id, **{"Idempotency-Key": "w-1"})
    assert first.status_code == retry.status_code == 200
    assert retry.headers.get("Idempotent-Replayed") == "true"
    assert retry.get_json() == first.get_json()
    assert len(audited(app, "claim.withdraw")) == 1


# ---- one objection per villager per claim ---------------------------------------------------


def test_a_villager_objects_to_a_claim_once(
    app: Flask,
    client: FlaskClient,
    runner: Any,
    world: World,
    items: dict[str, int],
    neighbour: dict[str, int],
) -> None:
    with frozen(MARCH_10):
        claim_id = in_notice(client, world, items, "cadre_a")
    with frozen(MARCH_10 + timedelta(days=1)):
        first = object_to(client, world, neighbour["user"], claim_id)
        assert first.status_code == 201
        assert resolve(client, world, first.get_json()["id"], "uphold").status_code == 200
        again = object_to(client, world, neighbour["user"], claim_id, reason="我还是不同意")
        assert again.status_code == 409 and error_code(again) == "already_objected"
        assert get_claim(client, world, "cadre_a", claim_id).get_json()["status"] == "in_notice"
    with frozen(MARCH_10 + timedelta(days=5, minutes=1)):
        assert post_due(runner) == 1  # not held back forever
    with app.app_context():
        reasons = list(db.session.scalars(select(Objection.reason)))
        db.session.add(Objection(claim_id=claim_id, user_id=neighbour["user"], reason="直接写入"))
        with pytest.raises(IntegrityError):
            db.session.flush()  # the database holds the rule too
        db.session.rollback()
    assert reasons == ["那天他不在村里"]


@on_postgres
def test_objections_sent_at_once_by_one_villager_give_one_objection(
    app: Flask,
    world: World,
    items: dict[str, int],
    neighbour: dict[str, int],
) -> None:
    with frozen(MARCH_10):
        claim_id = in_notice(app.test_client(), world, items, "cadre_a")
    with frozen(MARCH_10 + timedelta(days=1)):
        headers = world.headers(neighbour["user"])
        replies = post_together(
            app,
            8,
            f"{API}/claims/{claim_id}/objections",
            lambda i: headers,
            lambda i: {"reason": f"异议{i}"},
        )
    assert_no_server_errors(replies)
    assert sorted(r.status for r in replies) == [201] + [409] * 7
    with app.app_context():
        assert len(list(db.session.scalars(select(Objection.id)))) == 1
