"""一票否决 (veto): two reviewers whatever its points, and a way back — the township withdraws
a posted veto: the points it wiped are given back by an entry reversing its wipe, its bar
from boards ends, and the next board notes it. Once, audited, within scope."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from backend.extensions import db
from points import claims, ledger
from points.models import AuditEntry, Claim, HouseholdFlag, RuleItem
from tests.factories import (
    World,
    add_cadre,
    approve,
    award_veto,
    earn_posted,
    post_due,
)
from tests.support.clock import SHANGHAI, frozen, local
from tests.support.reads import account_of, board, entries_of, error_code
from tests.support.scope import database_state

API = "/api/v1"
MARCH_10 = local(2026, 3, 10)
APRIL_10 = local(2026, 4, 10)
MAY_5 = local(2026, 5, 5)
REASON = "复核认定彩礼系亲友代收，撤销否决"


def withdraw(
    client: FlaskClient,
    world: World,
    user: str | int,
    claim_id: int,
    body: dict[str, Any] | None = None,
) -> Any:
    return client.post(
        f"{API}/claims/{claim_id}/veto-withdrawal",
        json={"reason": REASON} if body is None else body,
        headers=world.headers(user),
    )


def ranked(client: FlaskClient, world: World) -> list[int]:
    """The households ranked in village A for 2026 (a barred one is left out)."""
    response = client.get(
        f"{API}/rankings",
        headers=world.headers("cadre_a"),
        query_string={"village_id": world.village_a, "period": "2026"},
    )
    assert response.status_code == 200, response.get_json()
    return [r["household_id"] for r in response.get_json()["items"]]


def posted_veto(client: FlaskClient, runner: Any, world: World, items: dict[str, int]) -> int:
    """Household x earns 6 points in March; a veto awarded on 10 April by two cadres posts
    when its 7-day notice ends, wiping them. Returns the veto's claim id."""
    earn_posted(client, runner, world, items["PUB-VOLUNTEER"], 3, MARCH_10)
    second = add_cadre(world.app, world, "cadre_a2")
    with frozen(APRIL_10):
        claim = award_veto(client, world, items["CIV-LAVISH"])
        approved = approve(client, world, second, claim["id"])
        assert approved.get_json()["status"] == "in_notice", approved.get_json()
    with frozen(APRIL_10 + timedelta(days=7)):
        assert post_due(runner) == 1
    assert account_of(world.app, world.household_x)["available"] == 0
    return int(claim["id"])


# ---- two reviewers ---------------------------------------------------------------------------


def test_a_veto_needs_two_different_cadres_whatever_its_points(
    app: Flask, client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> None:
    second = add_cadre(app, world, "cadre_a2")
    with frozen(APRIL_10):
        claim = award_veto(client, world, items["CIV-LAVISH"])
        # Zero points, under any threshold: still waiting for a second reviewer.
        assert (claim["points"], claim["status"], claim["approvals"]) == (0, "pending", 1)
        again = approve(client, world, "cadre_a", claim["id"])
        assert again.status_code == 409 and error_code(again) == "already_approved"
        assert post_due(runner) == 0
        approved = approve(client, world, second, claim["id"])
        assert approved.status_code == 200, approved.get_json()
        assert (approved.get_json()["status"], approved.get_json()["approvals"]) == ("in_notice", 2)
    with app.app_context():
        assert db.session.scalars(select(HouseholdFlag)).all() == []  # not before posting


# ---- withdrawal ------------------------------------------------------------------------------


def test_the_township_withdraws_a_posted_veto_once(
    app: Flask, client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> None:
    veto = posted_veto(client, runner, world, items)
    [_, wipe] = entries_of(app, world.household_x)
    assert (wipe["kind"], wipe["amount"], wipe["claim_id"]) == ("expire", -6, veto)
    with frozen(local(2026, 4, 20)):
        april = board(client, world, "2026-04")
        assert ranked(client, world) == []
    assert [(r["name"], r["vetoed"]) for r in april["black"]] == [("户主x", True)]

    with frozen(MAY_5):
        before = database_state(app)
        assert withdraw(client, world, "cadre_a", veto).status_code == 403
        assert withdraw(client, world, "villager_x", veto).status_code == 403
        assert withdraw(client, world, "cadre_b", veto).status_code == 404
        assert withdraw(client, world, "tadmin2", veto).status_code == 404
        assert withdraw(client, world, "tadmin1", veto, {}).status_code == 422
        assert withdraw(client, world, "tadmin1", veto, {"reason": ""}).status_code == 422
        assert database_state(app) == before

        done = withdraw(client, world, "tadmin1", veto)
        assert done.status_code == 200, done.get_json()
        claim = done.get_json()
        assert claim["status"] == "posted"
        withdrawal = claim["veto_withdrawal"]
        assert (
            withdrawal["restored"],
            withdrawal["reason"],
            withdrawal["vetoed_month"],
            withdrawal["month"],
            withdrawal["withdrawn_by"],
        ) == (6, REASON, "2026-04", "2026-05", world.tadmin1)

        # The wipe is given back by an entry reversing it; the score never moved.
        given = entries_of(app, world.household_x)[-1]
        assert (given["kind"], given["amount"], given["reverses_id"], given["month"]) == (
            "reverse",
            6,
            wipe["id"],
            "2026-05",
        )
        assert given["note"] == f"撤销一票否决：{REASON}"
        assert account_of(app, world.household_x) | {"entries": 0} == {
            "available": 6,
            "held": 0,
            "earned_total": 6,
            "entries": 0,
        }

        before = database_state(app)
        again = withdraw(client, world, "county", veto)
        assert again.status_code == 409 and error_code(again) == "veto_withdrawn"
        assert database_state(app) == before

        # The bar has ended: the household is ranked, and May's board notes the withdrawal.
        assert ranked(client, world) == [world.household_x]
        may = board(client, world, "2026-05")
        april = board(client, world, "2026-04")
    assert may["black"] == []
    assert [
        (c["kind"], c["name"], c["amount"], c["month"], c["note"]) for c in may["corrections"]
    ] == [
        ("veto_withdrawal", "户主x", 6, "2026-04", f"2026年4月一票否决撤销，恢复评比资格：{REASON}")
    ]
    assert april["black"] == []  # an open month reads the flags as they stand
    with app.app_context():
        [flag] = db.session.scalars(select(HouseholdFlag)).all()
        assert flag.withdrawal_id is not None
        assert db.session.scalars(
            select(AuditEntry.action).where(AuditEntry.action == "veto.withdraw")
        ).all() == ["veto.withdraw"]

    with frozen(MAY_5):
        report = client.get(
            f"{API}/townships/{world.township_1}/points-report", headers=world.headers("tadmin1")
        ).get_json()
    [village] = [v for v in report["villages"] if v["village_id"] == world.village_a]
    # What was expired and given back is no longer expired: the liability still adds up.
    assert (village["issued"], village["expired"], village["outstanding"]) == (6, 0, 6)
    assert village["issued"] == village["outstanding"] + village["redeemed"] + village["expired"]


def test_only_a_posted_veto_is_withdrawn(
    app: Flask, client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> None:
    award = earn_posted(client, runner, world, items["PUB-VOLUNTEER"], 3, MARCH_10)
    with frozen(APRIL_10):
        waiting = award_veto(client, world, items["CIV-LAVISH"])
        before = database_state(app)
        for claim_id in (award, waiting["id"]):
            refused = withdraw(client, world, "tadmin1", claim_id)
            assert refused.status_code == 409 and error_code(refused) == "not_posted_veto"
        assert withdraw(client, world, "tadmin1", waiting["id"] + 100).status_code == 404
        assert database_state(app) == before


def test_a_veto_whose_wipe_was_written_without_its_claim_is_withdrawn_too(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    """A veto posted before the wipe carried its claim: the wipe is the expiry posted with
    it, at its moment, for its item."""
    posted_at = local(2026, 4, 17)
    with app.app_context():
        ledger.append(
            db.session,
            household_id=world.household_x,
            kind="earn",
            amount=9,
            when=ledger.EntryTime(SHANGHAI, at=MARCH_10),
        )
        item = db.session.get(RuleItem, items["CIV-LAVISH"])
        assert item is not None and item.current_version_id is not None
        veto = Claim(
            village_id=world.village_a,
            household_id=world.household_x,
            rule_item_id=item.id,
            rule_item_version_id=item.current_version_id,
            source="cadre",
            points=0,
            reason="一票否决",
            status="posted",
            occurred_at=APRIL_10,
            submitted_by=world.cadre_a,
            created_at=APRIL_10,
            decided_at=APRIL_10,
            posted_at=posted_at,
        )
        db.session.add(veto)
        db.session.flush()
        ledger.append(
            db.session,
            household_id=world.household_x,
            kind="expire",
            amount=-9,
            when=ledger.EntryTime(SHANGHAI, at=posted_at),
            origin=ledger.EntryOrigin(
                rule_item_version_id=item.current_version_id,
                created_by=world.cadre_a,
                note=claims.VETO_WIPE_NOTE,
            ),
        )
        db.session.add(
            HouseholdFlag(
                household_id=world.household_x,
                kind="veto",
                claim_id=veto.id,
                from_month="2026-04",
                until_month="2027-03",
                note="一票否决",
            )
        )
        db.session.commit()
        veto_id = veto.id
    with frozen(MAY_5):
        done = withdraw(client, world, "county", veto_id)
        assert done.status_code == 200, done.get_json()
        assert done.get_json()["veto_withdrawal"]["restored"] == 9
        assert ranked(client, world) == [world.household_x]
    assert [(e["kind"], e["amount"]) for e in entries_of(app, world.household_x)] == [
        ("earn", 9),
        ("expire", -9),
        ("reverse", 9),
    ]
    assert account_of(app, world.household_x)["available"] == 9
