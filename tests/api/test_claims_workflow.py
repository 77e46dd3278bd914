"""Claims from proof to points through the HTTP API: self-report, review, public notice (公示),
objections, posting by `flask claims post-due`, cadre awards and deductions, caps, budgets,
the two-cadre rule, idempotent retries and the 一票否决 veto."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select

from backend.extensions import db
from points.models import Claim, HouseholdFlag
from tests.factories import (
    World,
    add_cadre,
    add_household,
    approve,
    award,
    bind_user,
    earn_posted,
    install_default_catalog,
    link_staff_to_villager,
    object_to,
    post_due,
    resolve,
    self_report,
    set_policy,
    upload_photo,
)
from tests.support.clock import frozen, local
from tests.support.reads import account_of, approval_count, claim_count, entries_of, error_code

MARCH_10 = local(2026, 3, 10)


def in_notice_claim(
    client: FlaskClient, world: World, items: dict[str, int], units: int = 3
) -> dict[str, Any]:
    """villager_x's volunteer hours, approved by cadre_a: now in notice. Call frozen."""
    response = self_report(client, world, "villager_x", items["PUB-VOLUNTEER"], units)
    assert response.status_code == 201, response.get_json()
    approved = approve(client, world, "cadre_a", response.get_json()["id"])
    assert approved.status_code == 200, approved.get_json()
    assert approved.get_json()["status"] == "in_notice"
    return approved.get_json()


def get_claim(client: FlaskClient, world: World, user: str | int, claim_id: int) -> Any:
    return client.get(f"/api/v1/claims/{claim_id}", headers=world.headers(user))


def notice_of(client: FlaskClient, world: World, user: str | int) -> Any:
    return client.get(f"/api/v1/villages/{world.village_a}/notices", headers=world.headers(user))


# ---- the whole road: report, review, notice, post -------------------------------------------


def test_self_report_is_reviewed_shown_in_notice_and_posted_after_it(
    app: Flask, client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> None:
    spouse_user = bind_user(app, world.spouse_x, "openid-spouse-x")
    deed = local(2026, 3, 30, 9)  # the notice runs into April; the points count in March
    with frozen(deed):
        reported = self_report(
            client, world, "villager_x", items["PUB-VOLUNTEER"], 3, note="清扫村委会广场"
        )
        assert reported.status_code == 201, reported.get_json()
        claim = reported.get_json()
        assert claim["status"] == "pending"
        assert (claim["points"], claim["units"], claim["capped"]) == (6, 3, False)
        assert claim["reason"] == "按细则每小时计 2 分，3 小时共计 6 分"
        assert claim["member_name"] == "户主x"
        assert claim["rule_item"]["code"] == "PUB-VOLUNTEER"

        approved = approve(client, world, "cadre_a", claim["id"])
        assert approved.status_code == 200, approved.get_json()
        body = approved.get_json()
        assert body["status"] == "in_notice"
        assert body["approvals"] == 1
        # The default notice is 5 days, shown in the village's time (+08:00).
        assert body["notice_ends_at"] == "2026-04-04T09:00:00+08:00"
        ends = datetime.fromisoformat(body["notice_ends_at"])
        assert ends == deed + timedelta(days=5)

        # 公示: every villager of village A sees it; village B does not.
        for viewer in ("villager_x", spouse_user):
            shown = notice_of(client, world, viewer)
            assert shown.status_code == 200, shown.get_json()
            assert [
                (n["claim_id"], n["points"], n["member_name"], n["rule_item"], n["status"])
                for n in shown.get_json()["items"]
            ] == [(claim["id"], 6, "户主x", "志愿服务", "in_notice")]
        assert notice_of(client, world, "villager_y").status_code == 404

    with frozen(ends - timedelta(seconds=1)):
        assert post_due(runner) == 0
        mine = client.get("/api/v1/me/account", headers=world.headers("villager_x"))
        assert mine.get_json()["available"] == 0

    with frozen(ends):
        assert post_due(runner) == 1
    with frozen(ends + timedelta(hours=1)):
        headers = world.headers("villager_x")
        passbook = client.get("/api/v1/me/ledger", headers=headers)
        assert passbook.status_code == 200
        lines = passbook.get_json()["items"]
        assert len(lines) == 1
        line = lines[0]
        assert (
            line["kind"],
            line["amount"],
            line["member_name"],
            line["rule_item_name"],
            line["month"],
            line["claim_id"],
        ) == ("earn", 6, "户主x", "志愿服务", "2026-03", claim["id"])
        account = client.get("/api/v1/me/account", headers=headers).get_json()
        assert (account["available"], account["held"], account["earned_total"]) == (6, 0, 6)
        assert account["this_month"] == 0  # April: the deed was in March
        # Points are the household's: the spouse sees the same account.
        spouse_account = client.get(
            "/api/v1/me/account", headers=world.headers(spouse_user)
        ).get_json()
        assert spouse_account["available"] == 6
        assert get_claim(client, world, "villager_x", claim["id"]).get_json()["status"] == "posted"
        assert notice_of(client, world, "villager_x").get_json()["items"] == []

        assert post_due(runner) == 0
    assert account_of(app, world.household_x)["available"] == 6
    assert len(entries_of(app, world.household_x)) == 1


# ---- objections (公示期异议) --------------------------------------------------------------


def test_upheld_objection_holds_the_claim_then_it_posts(
    app: Flask,
    client: FlaskClient,
    runner: Any,
    world: World,
    items: dict[str, int],
    neighbour: dict[str, int],
) -> None:
    with frozen(MARCH_10):
        claim = in_notice_claim(client, world, items)
    with frozen(MARCH_10 + timedelta(days=2)):
        objected = object_to(client, world, neighbour["user"], claim["id"])
        assert objected.status_code == 201, objected.get_json()
        objection = objected.get_json()
        assert (objection["claim_id"], objection["status"]) == (claim["id"], "open")
        seen = get_claim(client, world, "villager_x", claim["id"]).get_json()
        assert seen["status"] == "objected"
        assert [o["reason"] for o in seen["objections"]] == ["那天他不在村里"]
        shown = notice_of(client, world, "villager_x").get_json()["items"]
        assert shown[0]["status"] == "objected"
        # One objection per villager per claim.
        again = object_to(client, world, neighbour["user"], claim["id"])
        assert again.status_code == 409 and error_code(again) == "already_objected"

    with frozen(MARCH_10 + timedelta(days=6)):
        assert post_due(runner) == 0  # an objected claim waits for the cadre
        resolved = resolve(client, world, objection["id"], "uphold")
        assert resolved.status_code == 200, resolved.get_json()
        assert resolved.get_json()["status"] == "upheld"
        assert get_claim(client, world, "cadre_a", claim["id"]).get_json()["status"] == "in_notice"
        again = resolve(client, world, objection["id"], "overturn")
        assert again.status_code == 409 and error_code(again) == "objection_resolved"
        assert post_due(runner) == 1
    assert account_of(app, world.household_x)["available"] == 6


def test_upheld_during_notice_posts_at_notice_end(
    app: Flask,
    client: FlaskClient,
    runner: Any,
    world: World,
    items: dict[str, int],
    neighbour: dict[str, int],
) -> None:
    with frozen(MARCH_10):
        claim = in_notice_claim(client, world, items)
    with frozen(MARCH_10 + timedelta(days=1)):
        objection = object_to(client, world, neighbour["user"], claim["id"]).get_json()
        assert resolve(client, world, objection["id"], "uphold").status_code == 200
        assert post_due(runner) == 0  # notice not over yet
    with frozen(MARCH_10 + timedelta(days=5)):
        assert post_due(runner) == 1
    assert [e["amount"] for e in entries_of(app, world.household_x)] == [6]


def test_overturned_objection_rejects_the_claim_and_posts_nothing(
    app: Flask,
    client: FlaskClient,
    runner: Any,
    world: World,
    items: dict[str, int],
    neighbour: dict[str, int],
) -> None:
    with frozen(MARCH_10):
        claim = in_notice_claim(client, world, items)
        objection = object_to(client, world, neighbour["user"], claim["id"]).get_json()
        resolved = resolve(
            client, world, objection["id"], "overturn", note="经核实当天未参加志愿服务"
        )
        assert resolved.status_code == 200, resolved.get_json()
        assert resolved.get_json()["status"] == "overturned"
        seen = get_claim(client, world, "villager_x", claim["id"]).get_json()
        assert seen["status"] == "rejected"
        assert seen["reject_reason"] == "经核实当天未参加志愿服务"
        assert notice_of(client, world, "villager_x").get_json()["items"] == []
    with frozen(MARCH_10 + timedelta(days=10)):
        assert post_due(runner) == 0
    assert entries_of(app, world.household_x) == []
    assert account_of(app, world.household_x)["available"] == 0


def test_objection_refusals(
    app: Flask,
    client: FlaskClient,
    runner: Any,
    world: World,
    items: dict[str, int],
    neighbour: dict[str, int],
) -> None:
    spouse_user = bind_user(app, world.spouse_x, "openid-spouse-x")
    with frozen(MARCH_10):
        claim = in_notice_claim(client, world, items)
        own = object_to(client, world, spouse_user, claim["id"])
        assert own.status_code == 403 and error_code(own) == "own_claim"
        other_village = object_to(client, world, "villager_y", claim["id"])
        assert other_village.status_code == 404
        cadre = object_to(client, world, "cadre_a", claim["id"])
        assert cadre.status_code == 403
        no_reason = client.post(
            f"/api/v1/claims/{claim['id']}/objections",
            json={},
            headers=world.headers(neighbour["user"]),
        )
        assert no_reason.status_code == 422
        missing = object_to(client, world, neighbour["user"], claim["id"] + 1000)
        assert missing.status_code == 404
    with frozen(MARCH_10 + timedelta(days=5, minutes=1)):
        late = object_to(client, world, neighbour["user"], claim["id"])
        assert late.status_code == 409 and error_code(late) == "not_in_notice"
        assert get_claim(client, world, "villager_x", claim["id"]).get_json()["objections"] == []
        assert post_due(runner) == 1


def test_several_villagers_object_to_one_claim_until_its_notice_ends(
    app: Flask,
    client: FlaskClient,
    runner: Any,
    world: World,
    items: dict[str, int],
    neighbour: dict[str, int],
) -> None:
    """A claim under review after one objection takes the objections of other villagers
    (each once) while its notice runs; the claim posts only once each one is decided."""
    third = add_household(app, world.village_a, "v户", "户主v", openid="openid-v")
    late = add_household(app, world.village_a, "u户", "户主u", openid="openid-u")
    with frozen(MARCH_10):
        claim = in_notice_claim(client, world, items)
    with frozen(MARCH_10 + timedelta(days=1)):
        first = object_to(client, world, neighbour["user"], claim["id"])
        assert first.status_code == 201, first.get_json()
        # The notice still lists it, and another villager may still object.
        row = notice_of(client, world, third["user"]).get_json()["items"][0]
        assert (row["status"], row["objection_count"], row["can_object"]) == ("objected", 1, True)
        second = object_to(client, world, third["user"], claim["id"], reason="分数报多了")
        assert second.status_code == 201, second.get_json()
        again = object_to(client, world, third["user"], claim["id"])
        assert again.status_code == 409 and error_code(again) == "already_objected"
        row = notice_of(client, world, third["user"]).get_json()["items"][0]
        assert (row["objection_count"], row["objected_by_me"], row["can_object"]) == (
            2,
            True,
            False,
        )
        seen = get_claim(client, world, "cadre_a", claim["id"]).get_json()
        assert [o["reason"] for o in seen["objections"]] == ["那天他不在村里", "分数报多了"]
        # Upholding one objection leaves the claim under review while the other waits.
        assert resolve(client, world, first.get_json()["id"], "uphold").status_code == 200
        assert get_claim(client, world, "cadre_a", claim["id"]).get_json()["status"] == "objected"
    with frozen(MARCH_10 + timedelta(days=5, minutes=1)):
        ended = object_to(client, world, late["user"], claim["id"])
        assert ended.status_code == 409 and error_code(ended) == "not_in_notice"
        assert post_due(runner) == 0  # the second objection still waits
        assert resolve(client, world, second.get_json()["id"], "uphold").status_code == 200
        assert post_due(runner) == 1
    assert account_of(app, world.household_x)["available"] == 6


def test_overturning_a_claim_decides_every_open_objection(
    app: Flask,
    client: FlaskClient,
    world: World,
    items: dict[str, int],
    neighbour: dict[str, int],
) -> None:
    third = add_household(app, world.village_a, "v户", "户主v", openid="openid-v")
    with frozen(MARCH_10):
        claim = in_notice_claim(client, world, items)
        first = object_to(client, world, neighbour["user"], claim["id"]).get_json()
        assert object_to(client, world, third["user"], claim["id"]).status_code == 201
        assert resolve(client, world, first["id"], "overturn").status_code == 200
        seen = get_claim(client, world, "cadre_a", claim["id"]).get_json()
        assert seen["status"] == "rejected"
        assert [o["status"] for o in seen["objections"]] == ["overturned", "overturned"]


def test_the_notice_shows_what_a_villager_needs_to_object(
    app: Flask,
    client: FlaskClient,
    world: World,
    items: dict[str, int],
    neighbour: dict[str, int],
) -> None:
    with frozen(local(2026, 3, 10, 23, 30)):  # 15:30 UTC: the deed's day is the village's
        response = self_report(
            client, world, "villager_x", items["PUB-VOLUNTEER"], 3, note="清扫村委会广场"
        )
        claim = approve(client, world, "cadre_a", response.get_json()["id"]).get_json()
        own = notice_of(client, world, "villager_x").get_json()
        assert (own["page"], own["per_page"], own["total"]) == (1, 20, 1)
        row = own["items"][0]
        assert (
            row["claim_id"],
            row["note"],
            row["deed_date"],
            row["evidence"],
            row["objection_count"],
            row["objected_by_me"],
            row["can_object"],
        ) == (claim["id"], "清扫村委会广场", "2026-03-10", [], 0, False, False)  # own claim
        other = notice_of(client, world, neighbour["user"]).get_json()["items"][0]
        assert other["can_object"] is True
        one = client.get(f"/api/v1/notices/{claim['id']}", headers=world.headers(neighbour["user"]))
        assert one.status_code == 200 and one.get_json() == other
        assert (
            client.get(
                f"/api/v1/notices/{claim['id'] + 99}", headers=world.headers(neighbour["user"])
            ).status_code
            == 404
        )
        assert (
            client.get(
                f"/api/v1/notices/{claim['id']}", headers=world.headers("villager_y")
            ).status_code
            == 404
        )
        paged = client.get(
            f"/api/v1/villages/{world.village_a}/notices?page=2&per_page=1",
            headers=world.headers(neighbour["user"]),
        ).get_json()
        assert (paged["items"], paged["total"]) == ([], 1)
    with frozen(local(2026, 3, 16)):  # the notice has ended, not yet posted
        row = notice_of(client, world, neighbour["user"]).get_json()["items"][0]
        assert row["can_object"] is False


def test_only_the_villages_cadres_resolve_objections(
    client: FlaskClient, world: World, items: dict[str, int], neighbour: dict[str, int]
) -> None:
    with frozen(MARCH_10):
        claim = in_notice_claim(client, world, items)
        objection = object_to(client, world, neighbour["user"], claim["id"]).get_json()
        url = f"/api/v1/objections/{objection['id']}/resolve"
        body = {"outcome": "overturn", "note": "x"}
        assert client.post(url, json=body, headers=world.headers("cadre_b")).status_code == 404
        assert (
            client.post(url, json=body, headers=world.headers(neighbour["user"])).status_code == 404
        )
        assert client.post(url, json=body, headers=world.headers("villager_x")).status_code == 403
        bad = client.post(url, json={"outcome": "maybe"}, headers=world.headers("cadre_a"))
        assert bad.status_code == 422
        missing = client.post(
            "/api/v1/objections/99999/resolve", json=body, headers=world.headers("cadre_a")
        )
        assert missing.status_code == 404
        seen = get_claim(client, world, "cadre_a", claim["id"]).get_json()
        assert seen["status"] == "objected"
        assert [o["status"] for o in seen["objections"]] == ["open"]


def test_objecting_to_a_pending_claim_is_refused(
    client: FlaskClient, world: World, items: dict[str, int], neighbour: dict[str, int]
) -> None:
    with frozen(MARCH_10):
        claim = self_report(client, world, "villager_x", items["PUB-VOLUNTEER"], 2).get_json()
        refused = object_to(client, world, neighbour["user"], claim["id"])
        assert refused.status_code == 409 and error_code(refused) == "not_in_notice"
        assert get_claim(client, world, "villager_x", claim["id"]).get_json()["status"] == "pending"


# ---- review: reject, self-approval, two cadres, budget -----------------------------------


def test_reject_needs_a_reason_the_villager_can_read(
    app: Flask, client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> None:
    with frozen(MARCH_10):
        claim = self_report(client, world, "villager_x", items["PUB-VOLUNTEER"], 2).get_json()
        url = f"/api/v1/claims/{claim['id']}/reject"
        missing = client.post(url, json={}, headers=world.headers("cadre_a"))
        assert missing.status_code == 422
        empty = client.post(url, json={"reason": ""}, headers=world.headers("cadre_a"))
        assert empty.status_code == 422
        assert get_claim(client, world, "villager_x", claim["id"]).get_json()["status"] == "pending"
        by_villager = client.post(url, json={"reason": "x"}, headers=world.headers("villager_x"))
        assert by_villager.status_code == 403

        rejected = client.post(
            url, json={"reason": "照片不清楚，请重新申报"}, headers=world.headers("cadre_a")
        )
        assert rejected.status_code == 200, rejected.get_json()
        seen = get_claim(client, world, "villager_x", claim["id"]).get_json()
        assert (seen["status"], seen["reject_reason"]) == ("rejected", "照片不清楚，请重新申报")
        again = client.post(url, json={"reason": "再次"}, headers=world.headers("cadre_a"))
        assert again.status_code == 409 and error_code(again) == "claim_not_pending"
        late_approval = approve(client, world, "cadre_a", claim["id"])
        assert late_approval.status_code == 409
        assert error_code(late_approval) == "claim_not_pending"

    posted = earn_posted(client, runner, world, items["PUB-VOLUNTEER"], 1, MARCH_10)
    with frozen(MARCH_10 + timedelta(days=7)):
        refused = client.post(
            f"/api/v1/claims/{posted}/reject",
            json={"reason": "撤销"},
            headers=world.headers("cadre_a"),
        )
        assert refused.status_code == 409 and error_code(refused) == "claim_not_pending"
    assert account_of(app, world.household_x)["available"] == 2


def test_cadre_cannot_approve_their_own_household(
    app: Flask,
    client: FlaskClient,
    world: World,
    items: dict[str, int],
    neighbour: dict[str, int],
) -> None:
    # cadre_a lives in household x (as its spouse on the roster).
    link_staff_to_villager(app, world.cadre_a, world.spouse_x)
    with frozen(MARCH_10):
        claim = self_report(client, world, "villager_x", items["PUB-VOLUNTEER"], 2).get_json()
        refused = approve(client, world, "cadre_a", claim["id"])
        assert refused.status_code == 403 and error_code(refused) == "self_approval"
        seen = get_claim(client, world, "cadre_a", claim["id"]).get_json()
        assert (seen["status"], seen["approvals"]) == ("pending", 0)
        assert approval_count(app, claim["id"]) == 0

        # Nor award points to their own household.
        before = claim_count(app)
        own_award = award(client, world, items["GOV-ASSEMBLY"], [{"villager_id": world.head_x}])
        assert own_award.status_code == 403 and error_code(own_award) == "self_approval"
        assert claim_count(app) == before

        # Another household's claim: fine, and they keep their village scope.
        other = self_report(client, world, neighbour["user"], items["PUB-VOLUNTEER"], 2)
        assert (
            approve(client, world, "cadre_a", other.get_json()["id"]).get_json()["status"]
            == "in_notice"
        )


def kept_approvals(app: Flask, claim_id: int) -> int:
    """The claim's own count of its approvals (what 今日 tells its two lists apart by)."""
    with app.app_context():
        claim = db.session.get(Claim, claim_id)
        assert claim is not None
        count = claim.approvals
        db.session.rollback()
        return count


def test_two_cadres_approve_at_or_above_the_threshold(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    assert set_policy(client, world, two_cadre_threshold=10)["two_cadre_threshold"] == 10
    second_cadre = add_cadre(app, world, "cadre_a2")
    with frozen(MARCH_10):
        big = self_report(client, world, "villager_x", items["PUB-VOLUNTEER"], 5).get_json()
        assert big["points"] == 10
        first = approve(client, world, "cadre_a", big["id"])
        assert first.status_code == 200, first.get_json()
        assert (first.get_json()["status"], first.get_json()["approvals"]) == ("pending", 1)
        twice = approve(client, world, "cadre_a", big["id"])
        assert twice.status_code == 409 and error_code(twice) == "already_approved"
        assert approval_count(app, big["id"]) == 1
        assert kept_approvals(app, big["id"]) == 1  # the refused second try counted nothing
        second = approve(client, world, second_cadre, big["id"])
        assert second.status_code == 200, second.get_json()
        assert (second.get_json()["status"], second.get_json()["approvals"]) == ("in_notice", 2)
        assert kept_approvals(app, big["id"]) == 2

        small = self_report(client, world, "villager_x", items["PUB-VOLUNTEER"], 4).get_json()
        assert small["points"] == 8
        assert approve(client, world, "cadre_a", small["id"]).get_json()["status"] == "in_notice"


def test_awards_past_the_monthly_budget_wait_for_the_township(
    app: Flask, client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> None:
    set_policy(client, world, monthly_budget=10)
    with frozen(MARCH_10):
        within = self_report(client, world, "villager_x", items["PUB-VOLUNTEER"], 4).get_json()
        assert approve(client, world, "cadre_a", within["id"]).get_json()["status"] == "in_notice"
        over = self_report(client, world, "villager_x", items["PUB-VOLUNTEER"], 2).get_json()
        approved = approve(client, world, "cadre_a", over["id"])
        assert approved.status_code == 200, approved.get_json()
        assert approved.get_json()["status"] == "approved"
        shown = notice_of(client, world, "villager_x").get_json()
        assert [n["claim_id"] for n in shown["items"]] == [within["id"]]
        assert shown["total"] == 1

        again = approve(client, world, "cadre_a", over["id"])
        assert again.status_code == 403 and error_code(again) == "needs_township_approval"
        by_township = approve(client, world, "tadmin1", over["id"])
        assert by_township.status_code == 200, by_township.get_json()
        assert by_township.get_json()["status"] == "in_notice"
        assert by_township.get_json()["notice_ends_at"] == "2026-03-15T10:00:00+08:00"
    with frozen(MARCH_10 + timedelta(days=5)):
        assert post_due(runner) == 2
    assert account_of(app, world.household_x)["available"] == 12


# ---- caps and units -------------------------------------------------------------------------


def test_monthly_point_cap_counts_open_claims_and_resets_next_month(
    client: FlaskClient, world: World, items: dict[str, int], neighbour: dict[str, int]
) -> None:
    volunteer = items["PUB-VOLUNTEER"]  # 2 points an hour, at most 8 hours, 40 a month
    with frozen(MARCH_10):
        got = []
        for _ in range(3):
            response = self_report(client, world, "villager_x", volunteer, 8)
            assert response.status_code == 201, response.get_json()
            got.append(response.get_json())
        assert [c["points"] for c in got] == [16, 16, 8]
        assert [c["capped"] for c in got] == [False, False, True]
        assert got[2]["reason"].endswith("本月最多计 40 分，已计 32 分，本次只计 8 分")
        for _ in range(2):
            refused = self_report(client, world, "villager_x", volunteer, 8)
            assert refused.status_code == 422 and error_code(refused) == "no_points"
            assert refused.get_json()["error"]["message"] == "本月已达上限 40 分，本次不计分"

        # A rejected claim frees its share of the cap.
        rejected = client.post(
            f"/api/v1/claims/{got[1]['id']}/reject",
            json={"reason": "重复申报"},
            headers=world.headers("cadre_a"),
        )
        assert rejected.status_code == 200
        after = self_report(client, world, "villager_x", volunteer, 8)
        assert after.status_code == 201 and after.get_json()["points"] == 16

        # Caps are per member: another villager starts from zero.
        assert (
            self_report(client, world, neighbour["user"], volunteer, 8).get_json()["points"] == 16
        )

        # More hours than one report may count: cut to 8, and said so.
        long_day = self_report(client, world, neighbour["user"], volunteer, 10).get_json()
        assert (long_day["units"], long_day["points"], long_day["capped"]) == (8, 16, True)
        assert "每次最多计 8 小时，申报 10 小时，按 8 小时计" in long_day["reason"]

    # Half past midnight on 1 April in the village is still 31 March in UTC: a new month.
    with frozen(local(2026, 4, 1, 0, 30)):
        april = self_report(client, world, "villager_x", volunteer, 8)
        assert april.status_code == 201 and april.get_json()["points"] == 16
    with frozen(local(2026, 3, 31, 23, 30)):
        march = self_report(client, world, "villager_x", volunteer, 8)
        assert march.status_code == 422 and error_code(march) == "no_points"


def test_once_item_counts_once_and_big_awards_need_two_cadres(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    second_cadre = add_cadre(app, world, "cadre_a2")
    wedding = items["CIV-WEDDING"]  # +200, once per household, photo, 7 days of notice
    with frozen(MARCH_10):
        photo = upload_photo(client, world.headers("villager_x"))
        first = self_report(client, world, "villager_x", wedding, evidence=[photo])
        assert first.status_code == 201, first.get_json()
        assert first.get_json()["points"] == 200
        again = self_report(client, world, "villager_x", wedding, evidence=[photo])
        assert again.status_code == 422 and error_code(again) == "no_points"
        assert "只计一次" in again.get_json()["error"]["message"]

        claim_id = first.get_json()["id"]
        one = approve(client, world, "cadre_a", claim_id).get_json()
        assert (one["status"], one["approvals"]) == ("pending", 1)  # 200 >= 50: two cadres
        two = approve(client, world, second_cadre, claim_id).get_json()
        assert (two["status"], two["notice_ends_at"]) == ("in_notice", "2026-03-17T10:00:00+08:00")
    with frozen(local(2027, 1, 5)):
        photo = upload_photo(client, world.headers("villager_x"))
        next_year = self_report(client, world, "villager_x", wedding, evidence=[photo])
        assert next_year.status_code == 422 and error_code(next_year) == "no_points"


def test_units_are_required_for_an_hourly_item(
    client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    with frozen(MARCH_10):
        missing = self_report(client, world, "villager_x", items["PUB-VOLUNTEER"])
        assert missing.status_code == 422 and error_code(missing) == "invalid_units"
        zero = self_report(client, world, "villager_x", items["PUB-VOLUNTEER"], 0)
        assert zero.status_code == 422


def test_evidence_must_be_the_villagers_own_upload(
    app: Flask,
    client: FlaskClient,
    world: World,
    items: dict[str, int],
    neighbour: dict[str, int],
) -> None:
    with frozen(MARCH_10):
        bare = self_report(client, world, "villager_x", items["FAM-ELDER"])
        assert bare.status_code == 422 and error_code(bare) == "evidence_required"
        someone_elses = upload_photo(client, world.headers(neighbour["user"]))
        borrowed = self_report(
            client, world, "villager_x", items["FAM-ELDER"], evidence=[someone_elses]
        )
        assert borrowed.status_code == 422 and error_code(borrowed) == "invalid_evidence"
        assert claim_count(app) == 0
        mine = upload_photo(client, world.headers("villager_x"))
        proved = self_report(client, world, "villager_x", items["FAM-ELDER"], evidence=[mine])
        assert proved.status_code == 201, proved.get_json()
        assert (proved.get_json()["evidence"], proved.get_json()["points"]) == ([mine], 5)


# ---- cadre awards and deductions (积分录入) --------------------------------------------------


def test_an_award_that_posts_at_once_is_a_dozen_statements(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    """An award that posts at once (bench/ledger_post.py posts them by the ten thousand): the
    claim inserted posted, not inserted and updated; the household, item and policies, and
    the account's head each read by one query; the audit filed without reading the village."""
    set_policy(client, world, notice_days=0)
    with app.app_context():
        engine = db.engine
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(" ".join(args[2].split()))

    with frozen(MARCH_10):
        first = award(client, world, items["GOV-ASSEMBLY"], [{"villager_id": world.head_x}])
        assert first.status_code == 201, first.get_json()
    with frozen(MARCH_10 + timedelta(days=1)):  # once a day
        event.listen(engine, "before_cursor_execute", count)
        try:
            second = award(client, world, items["GOV-ASSEMBLY"], [{"villager_id": world.head_x}])
        finally:
            event.remove(engine, "before_cursor_execute", count)
    assert second.status_code == 201, second.get_json()
    assert second.get_json()[0]["status"] == "posted"
    assert account_of(app, world.household_x)["available"] == 6
    assert not [s for s in statements if s.startswith(("UPDATE claims", "SELECT claims."))]
    assert len([s for s in statements if "FROM accounts" in s]) == 1, statements
    assert not [s for s in statements if s.startswith("SELECT villages.township_id")]
    # The request's own included: the caller's login and session, the answer's reads.
    assert len(statements) <= MAX_AWARD_STATEMENTS[engine.dialect.name], statements
    if engine.dialect.name == "postgresql":
        # The claim with its approval and its account's row lock, and the entry with its
        # account's move and its month totals, each one statement
        # (points.claims._reviewed_statement, points.ledger._append_statement).
        separate = (
            "INSERT INTO claim_approvals",
            "SELECT accounts.",
            "UPDATE accounts",
            "INSERT INTO month_totals",
        )
        assert not [s for s in statements if s.startswith(separate)], statements
        # The village's rows written at commit (its month, the month by item, and a village
        # without a budget its budget counter) are one statement too
        # (points.village_totals._all_at_once).
        village_rows = [s for s in statements if "INSERT INTO village_month" in s]
        assert len(village_rows) == 1, village_rows
        assert "INSERT INTO village_month_items" in village_rows[0], village_rows


# On 2026-12-04, the request's own included, with the village month by item written at
# commit: SQLite 25 (BEGIN IMMEDIATE among them; 26 before the target and its item were read
# together, 36 before that); PostgreSQL 18, the award itself 9 of them (24 before its writes
# were merged); on 2026-12-05 PostgreSQL 17, the village's rows at commit one statement.
MAX_AWARD_STATEMENTS = {"sqlite": 25, "postgresql": 17}


def test_an_award_names_what_is_not_found_whether_the_target_or_the_item(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    """One target's item is read with the target (points.claims._target_and_item): a target
    the cadre may not see is not found as before, and an item its village may not use is
    not found as the item, by a household as by a villager."""
    other_township = install_default_catalog(app, world.township_2)
    with frozen(MARCH_10):
        for target in ({"villager_id": world.head_x}, {"household_id": world.household_x}):
            foreign_item = award(client, world, other_township["GOV-ASSEMBLY"], [target])
            assert foreign_item.status_code == 404
            assert error_code(foreign_item) == "rule_item_not_found"
        for target in ({"villager_id": world.head_y}, {"household_id": world.household_y}):
            foreign_target = award(client, world, items["GOV-ASSEMBLY"], [target])
            assert foreign_target.status_code == 404
            assert error_code(foreign_target) != "rule_item_not_found"
            both = award(client, world, other_township["GOV-ASSEMBLY"], [target])
            assert both.status_code == 404 and error_code(both) != "rule_item_not_found"
        by_household = award(
            client, world, items["GOV-ASSEMBLY"], [{"household_id": world.household_x}]
        )
        assert by_household.status_code == 201, by_household.get_json()
        assert by_household.get_json()[0]["member_id"] == world.head_x  # the head
    assert claim_count(app) == 1


def test_cadre_awards_a_batch(
    app: Flask,
    client: FlaskClient,
    runner: Any,
    world: World,
    items: dict[str, int],
    neighbour: dict[str, int],
) -> None:
    with frozen(MARCH_10):
        created = award(
            client,
            world,
            items["GOV-ASSEMBLY"],
            [{"villager_id": world.head_x}, {"villager_id": neighbour["head"]}],
        )
        assert created.status_code == 201, created.get_json()
        claims = created.get_json()
        assert len(claims) == 2
        assert {(c["household_id"], c["member_id"]) for c in claims} == {
            (world.household_x, world.head_x),
            (neighbour["household"], neighbour["head"]),
        }
        assert all(
            (c["points"], c["source"], c["status"], c["approvals"]) == (3, "cadre", "in_notice", 1)
            for c in claims
        )

        by_villager = award(
            client, world, items["GOV-ASSEMBLY"], [{"villager_id": world.head_x}], user="villager_x"
        )
        assert by_villager.status_code == 403
        assert claim_count(app) == 2
    with frozen(MARCH_10 + timedelta(days=5)):
        assert post_due(runner) == 2
    assert account_of(app, world.household_x)["available"] == 3
    assert account_of(app, neighbour["household"])["available"] == 3


def test_batch_is_all_or_nothing(
    app: Flask,
    client: FlaskClient,
    world: World,
    items: dict[str, int],
    neighbour: dict[str, int],
) -> None:
    with frozen(MARCH_10):
        before = claim_count(app)
        foreign = award(
            client,
            world,
            items["GOV-ASSEMBLY"],
            [{"villager_id": world.head_x}, {"villager_id": world.head_y}],
        )
        assert foreign.status_code == 404
        foreign_household = award(
            client,
            world,
            items["ENV-YARD"],
            [{"household_id": world.household_x}, {"household_id": world.household_y}],
        )
        assert foreign_household.status_code == 404
        assert claim_count(app) == before

        # 庭院整洁 once a month: household x already has it, so a batch naming x refuses
        # entirely — the neighbour's claim made before x in the same batch is not kept.
        yard = award(client, world, items["ENV-YARD"], [{"household_id": world.household_x}])
        assert yard.status_code == 201, yard.get_json()
        both = award(
            client,
            world,
            items["ENV-YARD"],
            [{"household_id": neighbour["household"]}, {"household_id": world.household_x}],
        )
        assert both.status_code == 422 and error_code(both) == "no_points"
        assert claim_count(app) == before + 1

        duplicate = award(
            client,
            world,
            items["GOV-ASSEMBLY"],
            [{"villager_id": world.head_x}, {"villager_id": world.head_x}],
        )
        assert duplicate.status_code == 422 and error_code(duplicate) == "duplicate_target"
        assert claim_count(app) == before + 1


def test_deduction_needs_note_and_cadre_photo_and_can_go_below_zero(
    app: Flask,
    client: FlaskClient,
    runner: Any,
    world: World,
    items: dict[str, int],
) -> None:
    straw = items["ENV-STRAW"]  # -5, cadres only, photo required
    target = [{"household_id": world.household_x}]
    with frozen(MARCH_10):
        no_note = award(client, world, straw, target)
        assert no_note.status_code == 422 and error_code(no_note) == "note_required"
        blank_note = award(client, world, straw, target, note="   ")
        assert blank_note.status_code == 422 and error_code(blank_note) == "note_required"
        no_photo = award(client, world, straw, target, note="3月9日田间焚烧秸秆")
        assert no_photo.status_code == 422 and error_code(no_photo) == "evidence_required"
        villagers_photo = upload_photo(client, world.headers("villager_x"))
        not_theirs = award(
            client, world, straw, target, note="3月9日田间焚烧秸秆", evidence=[villagers_photo]
        )
        assert not_theirs.status_code == 422 and error_code(not_theirs) == "invalid_evidence"
        assert claim_count(app) == 0

        photo = upload_photo(client, world.headers("cadre_a"))
        created = award(client, world, straw, target, note="3月9日田间焚烧秸秆", evidence=[photo])
        assert created.status_code == 201, created.get_json()
        [claim] = created.get_json()
        assert (claim["points"], claim["evidence"], claim["note"], claim["member_id"]) == (
            -5,
            [photo],
            "3月9日田间焚烧秸秆",
            world.head_x,
        )
        assert claim["reason"] == "按细则扣 5 分"
    with frozen(MARCH_10 + timedelta(days=5)):
        assert post_due(runner) == 1
        account = client.get(
            f"/api/v1/households/{world.household_x}/account", headers=world.headers("cadre_a")
        ).get_json()
        assert (account["available"], account["earned_total"], account["this_month"]) == (
            -5,
            -5,
            -5,
        )
        lines = client.get("/api/v1/me/ledger", headers=world.headers("villager_x")).get_json()
        assert [(e["kind"], e["amount"], e["note"]) for e in lines["items"]] == [
            ("deduct", -5, "3月9日田间焚烧秸秆")
        ]


def test_self_report_refusals(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    other_township = install_default_catalog(app, world.township_2)
    with frozen(MARCH_10):
        cadre_only = self_report(client, world, "villager_x", items["ENV-YARD"])
        assert cadre_only.status_code == 403 and error_code(cadre_only) == "not_self_reportable"
        checkin_only = self_report(client, world, "villager_x", items["GOV-ASSEMBLY"])
        assert checkin_only.status_code == 403
        assert error_code(checkin_only) == "not_self_reportable"
        unbound = self_report(client, world, "unbound", items["PUB-VOLUNTEER"], 2)
        assert unbound.status_code == 403 and error_code(unbound) == "not_bound"
        foreign = self_report(client, world, "villager_x", other_township["PUB-VOLUNTEER"], 2)
        assert foreign.status_code == 404 and error_code(foreign) == "rule_item_not_found"
        cadre = self_report(client, world, "cadre_a", items["PUB-VOLUNTEER"], 2)
        assert cadre.status_code == 403
        unknown = self_report(client, world, "villager_x", items["PUB-VOLUNTEER"], 2, points=100)
        assert unknown.status_code == 422 and error_code(unknown) == "unknown_fields"
    assert claim_count(app) == 0


# ---- idempotent retries ---------------------------------------------------------------------


def test_idempotency_key_replays_the_first_claim(
    app: Flask,
    client: FlaskClient,
    world: World,
    items: dict[str, int],
    neighbour: dict[str, int],
) -> None:
    body = {"rule_item_id": items["PUB-VOLUNTEER"], "units": 3}
    with frozen(MARCH_10):
        headers = {**world.headers("villager_x"), "Idempotency-Key": "report-0310"}
        first = client.post("/api/v1/claims", json=body, headers=headers)
        assert first.status_code == 201, first.get_json()
        assert "Idempotent-Replayed" not in first.headers
        retry = client.post("/api/v1/claims", json=body, headers=headers)
        assert retry.status_code == 201
        assert retry.headers.get("Idempotent-Replayed") == "true"
        assert retry.get_json() == first.get_json()
        assert claim_count(app) == 1

        changed = client.post("/api/v1/claims", json={**body, "units": 4}, headers=headers)
        assert changed.status_code == 409 and error_code(changed) == "idempotency_conflict"
        assert claim_count(app) == 1

        # Keys are per user: the neighbour's identical key is a request of its own.
        theirs = client.post(
            "/api/v1/claims",
            json=body,
            headers={**world.headers(neighbour["user"]), "Idempotency-Key": "report-0310"},
        )
        assert theirs.status_code == 201
        assert "Idempotent-Replayed" not in theirs.headers
        assert theirs.get_json()["id"] != first.get_json()["id"]
        assert claim_count(app) == 2


def test_idempotent_approval_retry_approves_once(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    set_policy(client, world, two_cadre_threshold=5)  # so a second approval would count
    with frozen(MARCH_10):
        claim_id = self_report(client, world, "villager_x", items["PUB-VOLUNTEER"], 3).get_json()[
            "id"
        ]
        approval = approve(client, world, "cadre_a", claim_id, **{"Idempotency-Key": "ok-1"})
        assert approval.status_code == 200, approval.get_json()
        assert approval.get_json()["approvals"] == 1
        retry = approve(client, world, "cadre_a", claim_id, **{"Idempotency-Key": "ok-1"})
        assert retry.status_code == 200
        assert retry.headers.get("Idempotent-Replayed") == "true"
        assert retry.get_json() == approval.get_json()
        assert approval_count(app, claim_id) == 1
        # Without the key, the same cadre again is a new request, refused by state.
        plain = approve(client, world, "cadre_a", claim_id)
        assert plain.status_code == 409 and error_code(plain) == "already_approved"


def test_refused_request_is_not_kept_under_its_key(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    with frozen(MARCH_10):
        headers = {**world.headers("villager_x"), "Idempotency-Key": "k-units"}
        body = {"rule_item_id": items["PUB-VOLUNTEER"]}  # hours missing
        refused = client.post("/api/v1/claims", json=body, headers=headers)
        assert refused.status_code == 422 and error_code(refused) == "invalid_units"
        again = client.post("/api/v1/claims", json=body, headers=headers)
        assert again.status_code == 422 and "Idempotent-Replayed" not in again.headers
        assert claim_count(app) == 0


# ---- 一票否决 ------------------------------------------------------------------------------


def test_veto_wipes_spendable_points_and_bars_the_household(
    app: Flask, client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> None:
    earn_posted(client, runner, world, items["PUB-VOLUNTEER"], 3, MARCH_10)
    assert account_of(app, world.household_x)["available"] == 6

    when = local(2026, 4, 10)
    with frozen(when):
        photo = upload_photo(client, world.headers("cadre_a"))
        target = [{"household_id": world.household_x}]
        no_note = award(client, world, items["CIV-LAVISH"], target, evidence=[photo])
        assert no_note.status_code == 422 and error_code(no_note) == "note_required"
        created = award(
            client, world, items["CIV-LAVISH"], target, evidence=[photo], note="婚礼收取彩礼20万元"
        )
        assert created.status_code == 201, created.get_json()
        [claim] = created.get_json()
        # A veto needs a second reviewer whatever its points; the township is one.
        assert (claim["points"], claim["status"]) == (0, "pending")
        claim = approve(client, world, "tadmin1", claim["id"]).get_json()
        assert (claim["points"], claim["status"]) == (0, "in_notice")
        assert claim["notice_ends_at"] == "2026-04-17T10:00:00+08:00"  # the item's 7 days
        assert claim["reason"].startswith("一票否决")
    with frozen(when + timedelta(days=6)):
        assert post_due(runner) == 0
    with frozen(when + timedelta(days=7)):
        assert post_due(runner) == 1
        assert post_due(runner) == 0
        account = client.get("/api/v1/me/account", headers=world.headers("villager_x")).get_json()
        assert (account["available"], account["held"], account["earned_total"]) == (0, 0, 6)
        lines = client.get("/api/v1/me/ledger", headers=world.headers("villager_x")).get_json()
        assert [(e["kind"], e["amount"]) for e in lines["items"]] == [("expire", -6), ("earn", 6)]
        assert get_claim(client, world, "villager_x", claim["id"]).get_json()["status"] == "posted"
    with app.app_context():
        flags = db.session.scalars(select(HouseholdFlag)).all()
        assert [
            (f.household_id, f.kind, f.claim_id, f.from_month, f.until_month) for f in flags
        ] == [(world.household_x, "veto", claim["id"], "2026-04", "2027-03")]


# ---- scope -----------------------------------------------------------------------------------


def test_claims_are_seen_and_reviewed_only_within_scope(
    app: Flask,
    client: FlaskClient,
    world: World,
    items: dict[str, int],
    neighbour: dict[str, int],
) -> None:
    with frozen(MARCH_10):
        mine = self_report(client, world, "villager_x", items["PUB-VOLUNTEER"], 1).get_json()
        theirs = self_report(client, world, neighbour["user"], items["PUB-VOLUNTEER"], 1).get_json()
        village_b = self_report(client, world, "villager_y", items["PUB-VOLUNTEER"], 1).get_json()

        assert get_claim(client, world, "villager_y", mine["id"]).status_code == 404
        assert get_claim(client, world, "villager_x", theirs["id"]).status_code == 404
        assert get_claim(client, world, "cadre_b", mine["id"]).status_code == 404
        cross = approve(client, world, "cadre_b", mine["id"])
        assert cross.status_code == 404
        cross_reject = client.post(
            f"/api/v1/claims/{mine['id']}/reject",
            json={"reason": "x"},
            headers=world.headers("cadre_b"),
        )
        assert cross_reject.status_code == 404
        own = approve(client, world, "villager_x", mine["id"])
        assert own.status_code == 403
        assert approve(client, world, "villager_x", theirs["id"]).status_code == 404
        other_township = approve(client, world, "tadmin2", mine["id"])
        assert other_township.status_code == 404

        def listed(user: str | int, query: str = "") -> list[int]:
            response = client.get(f"/api/v1/claims{query}", headers=world.headers(user))
            assert response.status_code == 200, response.get_json()
            return sorted(c["id"] for c in response.get_json()["items"])

        assert listed("villager_x") == [mine["id"]]
        assert listed("villager_x", f"?household_id={neighbour['household']}") == []
        assert listed("cadre_a") == sorted([mine["id"], theirs["id"]])
        assert listed("cadre_b") == [village_b["id"]]
        assert listed("tadmin1") == sorted([mine["id"], theirs["id"], village_b["id"]])
        assert listed("tadmin2") == []
        assert listed("cadre_a", "?status=in_notice") == []

    with app.app_context():
        statuses = set(db.session.scalars(select(Claim.status)))
    assert statuses == {"pending"}


# ---- posting re-decides the points -----------------------------------------------------------


def test_posting_never_gives_more_than_the_notice_showed(
    app: Flask, client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> None:
    volunteer = items["PUB-VOLUNTEER"]
    with frozen(MARCH_10):
        first, second, third = (
            self_report(client, world, "villager_x", volunteer, 8).get_json() for _ in range(3)
        )
        assert [c["points"] for c in (first, second, third)] == [16, 16, 8]
        assert (
            client.post(
                f"/api/v1/claims/{second['id']}/reject",
                json={"reason": "重复"},
                headers=world.headers("cadre_a"),
            ).status_code
            == 200
        )
        for claim in (first, third):
            assert (
                approve(client, world, "cadre_a", claim["id"]).get_json()["status"] == "in_notice"
            )
        shown = {
            n["claim_id"]: n["points"]
            for n in notice_of(client, world, "villager_x").get_json()["items"]
        }
        assert shown == {first["id"]: 16, third["id"]: 8}
    with frozen(MARCH_10 + timedelta(days=5)):
        assert post_due(runner) == 2
    # What the village saw in 公示 is what is posted.
    assert sorted(e["amount"] for e in entries_of(app, world.household_x)) == [8, 16]


def test_a_reversed_award_frees_its_cap(
    app: Flask, client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> None:
    """A cadre's mistake corrected by a reversal (冲正) must not keep using up the cap."""
    volunteer = items["PUB-VOLUNTEER"]
    for _ in range(3):  # 16 + 16 + 8: the 40-point monthly cap
        earn_posted(client, runner, world, volunteer, 8, MARCH_10)
    with frozen(MARCH_10 + timedelta(hours=1)):
        refused = self_report(client, world, "villager_x", volunteer, units=8)
        assert refused.status_code == 422 and error_code(refused) == "no_points"
        first = entries_of(app, world.household_x)[0]
        reversed_ = client.post(
            f"/api/v1/ledger/{first['id']}/reverse",
            json={"reason": "录入错误"},
            headers=world.headers("cadre_a"),
        )
        assert reversed_.status_code == 201
        again = self_report(client, world, "villager_x", volunteer, units=8)
        assert again.status_code == 201, again.get_json()
        assert again.get_json()["points"] == first["amount"] == 16
