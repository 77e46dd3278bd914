"""The monthly budget's counter (本月已发放, `monthly_issued`): what a village has decided to
award each month, kept as claims are decided and taken back when a counted claim is
rejected after its notice. The autouse check in conftest compares it with the claims after
every test; here: that it moves at the right steps, in the right month, that the budget
holds when check-ins race for its last points, and that `flask ledger verify` names a
month that drifted."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, select, update

from backend.extensions import db
from points import village_totals
from points.models import Claim, LedgerEntry, MonthlyIssued, RuleItem, User
from tests.factories import (
    World,
    add_household,
    approve,
    bound_villagers,
    default_items,
    object_to,
    open_activity,
    post_due,
    resolve,
    set_policy,
    volunteer,
)
from tests.support.clock import frozen, local
from tests.support.concurrency import assert_no_server_errors, on_postgres, post_together
from tests.support.reads import issued

API = "/api/v1"


def test_an_overturned_objection_gives_its_points_back_to_the_budget(
    app: Flask, client: FlaskClient, world: World
) -> None:
    items = default_items(app, world)
    set_policy(client, world, monthly_budget=10)
    neighbour = add_household(app, world.village_a, "w户", "户主w", openid="openid-w")
    with frozen(local(2026, 3, 10)):
        first = volunteer(client, world, items["PUB-VOLUNTEER"], 3)
        assert (first["status"], first["points"]) == ("in_notice", 6)
        over = volunteer(client, world, items["PUB-VOLUNTEER"], 3)
        assert over["status"] == "approved"  # 6 + 6 > 10: the township decides
        assert issued(app) == {(world.village_a, "2026-03"): 6}

        objection = object_to(client, world, neighbour["user"], first["id"]).get_json()
        overturned = resolve(client, world, objection["id"], "overturn")
        assert overturned.status_code == 200, overturned.get_json()
        assert issued(app) == {(world.village_a, "2026-03"): 0}

        # The budget the rejected claim held is free again.
        again = volunteer(client, world, items["PUB-VOLUNTEER"], 4)
        assert (again["status"], again["points"]) == ("in_notice", 8)
        assert issued(app) == {(world.village_a, "2026-03"): 8}


def test_an_upheld_objection_keeps_the_points_counted(
    app: Flask, client: FlaskClient, world: World
) -> None:
    items = default_items(app, world)
    neighbour = add_household(app, world.village_a, "w户", "户主w", openid="openid-w")
    with frozen(local(2026, 3, 10)):
        claim = volunteer(client, world, items["PUB-VOLUNTEER"], 3)
        objection = object_to(client, world, neighbour["user"], claim["id"]).get_json()
        assert issued(app) == {(world.village_a, "2026-03"): 6}  # objected still counts
        upheld = resolve(client, world, objection["id"], "uphold")
        assert upheld.status_code == 200, upheld.get_json()
        assert issued(app) == {(world.village_a, "2026-03"): 6}


def test_the_budget_month_follows_village_time(
    app: Flask, client: FlaskClient, world: World
) -> None:
    """23:30 on 31 March in the village is still March (15:30 UTC); half past midnight is
    April, with a budget of its own, though UTC still says 31 March."""
    items = default_items(app, world)
    set_policy(client, world, monthly_budget=10)
    with frozen(local(2026, 3, 31, 23, 30)):
        assert volunteer(client, world, items["PUB-VOLUNTEER"], 4)["status"] == "in_notice"
    with frozen(local(2026, 4, 1, 0, 30)):
        assert volunteer(client, world, items["PUB-VOLUNTEER"], 4)["status"] == "in_notice"
        assert volunteer(client, world, items["PUB-VOLUNTEER"], 2)["status"] == "approved"
    assert issued(app) == {(world.village_a, "2026-03"): 8, (world.village_a, "2026-04"): 8}


def test_the_township_may_pass_the_budget_and_it_counts(
    app: Flask, client: FlaskClient, world: World
) -> None:
    items = default_items(app, world)
    set_policy(client, world, monthly_budget=10)
    with frozen(local(2026, 3, 10)):
        volunteer(client, world, items["PUB-VOLUNTEER"], 4)
        over = volunteer(client, world, items["PUB-VOLUNTEER"], 2)
        assert over["status"] == "approved"
        passed = approve(client, world, "tadmin1", over["id"])
        assert passed.get_json()["status"] == "in_notice"
        assert issued(app) == {(world.village_a, "2026-03"): 12}


def shift(app: Flask, by: int) -> None:
    """Make every village month drift by `by` (as a bug or a hand edit would)."""
    with app.app_context():
        db.session.execute(update(MonthlyIssued).values(issued=MonthlyIssued.issued + by))
        db.session.commit()


def test_ledger_verify_names_a_village_month_that_drifted_and_rebuild_mends_it(
    app: Flask, client: FlaskClient, runner: Any, world: World
) -> None:
    items = default_items(app, world)
    with frozen(local(2026, 3, 10)):
        volunteer(client, world, items["PUB-VOLUNTEER"], 3)
    assert runner.invoke(args=["ledger", "verify"]).exit_code == 0
    assert "rebuilt 0 village month(s)" in runner.invoke(args=["ledger", "rebuild-issued"]).output

    shift(app, 5)
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code != 0
    assert f"村 {world.village_a} 2026-03 本月已发放记为 11，按申报合计应为 6" in result.output
    assert "rebuild-issued" in result.output

    rebuilt = runner.invoke(args=["ledger", "rebuild-issued"])
    assert rebuilt.exit_code == 0 and "rebuilt 1 village month(s)" in rebuilt.output
    assert issued(app) == {(world.village_a, "2026-03"): 6}
    assert runner.invoke(args=["ledger", "verify"]).exit_code == 0


def test_a_drifted_month_does_not_stop_an_objection_from_being_overturned(
    app: Flask, client: FlaskClient, world: World, caplog: Any
) -> None:
    """Taking points off a month that does not hold them logs the drift; the villager's
    objection is still decided (verify reports the month, rebuild mends it)."""
    items = default_items(app, world)
    neighbour = add_household(app, world.village_a, "w户", "户主w", openid="openid-w")
    with frozen(local(2026, 3, 10)):
        claim = volunteer(client, world, items["PUB-VOLUNTEER"], 3)
        objection = object_to(client, world, neighbour["user"], claim["id"]).get_json()
        shift(app, -6)  # the month lost the claim's points somehow
        overturned = resolve(client, world, objection["id"], "overturn")
    assert overturned.status_code == 200, overturned.get_json()
    assert "do not hold the 6 points" in caplog.text
    assert issued(app) == {(world.village_a, "2026-03"): 0}  # already what the claims say


def stand_in_for_a_race(app: Flask, world: World, item_id: int, points: int, at: datetime) -> None:
    """A posted claim of villager_x for the item that a concurrent approval decided without
    seeing the claim in notice (as two cadres approving at the same moment would): counted
    in its month, as its own approval would have."""
    with app.app_context():
        cadre = db.session.scalar(select(User.id).where(User.username == "cadre_a"))
        version = db.session.scalar(
            select(RuleItem.current_version_id).where(RuleItem.id == item_id)
        )
        db.session.add(
            Claim(
                village_id=world.village_a,
                household_id=world.household_x,
                member_id=world.head_x,
                rule_item_id=item_id,
                rule_item_version_id=version,
                source="cadre",
                units=points // 2,
                points=points,
                reason="并发审核",
                status="posted",
                occurred_at=at,
                submitted_by=cadre,
                created_at=at,
                decided_at=at,
                posted_at=at,
                evidence=[],
            )
        )
        db.session.execute(update(MonthlyIssued).values(issued=MonthlyIssued.issued + points))
        db.session.commit()


def test_a_claim_cut_at_posting_gives_the_cut_back_to_the_month_it_was_decided_in(
    app: Flask, client: FlaskClient, runner: Any, world: World
) -> None:
    """Decided on 28 March, posted on 2 April, cut from 16 to 8 by the 40-a-month cap that a
    racing claim used up: March gives back 8; April is not touched."""
    items = default_items(app, world)
    with frozen(local(2026, 3, 28)):
        claim = volunteer(client, world, items["PUB-VOLUNTEER"], 8)
        assert (claim["status"], claim["points"]) == ("in_notice", 16)
    stand_in_for_a_race(app, world, items["PUB-VOLUNTEER"], 32, local(2026, 3, 27))
    assert issued(app) == {(world.village_a, "2026-03"): 48}
    with frozen(local(2026, 4, 2, 12)):
        assert post_due(runner) == 1
        posted = client.get(f"{API}/claims/{claim['id']}", headers=world.headers("cadre_a"))
    assert (posted.get_json()["status"], posted.get_json()["points"]) == ("posted", 8)
    assert issued(app) == {(world.village_a, "2026-03"): 40}


def test_a_claim_rejected_at_posting_gives_all_its_points_back(
    app: Flask, client: FlaskClient, runner: Any, world: World
) -> None:
    items = default_items(app, world)
    with frozen(local(2026, 3, 10)):
        claim = volunteer(client, world, items["PUB-VOLUNTEER"], 8)
    stand_in_for_a_race(app, world, items["PUB-VOLUNTEER"], 40, local(2026, 3, 9))
    with frozen(local(2026, 3, 16)):
        assert post_due(runner) == 0
        rejected = client.get(f"{API}/claims/{claim['id']}", headers=world.headers("cadre_a"))
    assert rejected.get_json()["status"] == "rejected"
    assert issued(app) == {(world.village_a, "2026-03"): 40}


@on_postgres
def test_check_ins_racing_for_the_last_of_the_budget_cannot_all_pass(
    app: Flask, client: FlaskClient, world: World
) -> None:
    """40 villagers at once, 3 points each, a budget of 30: exactly 10 claims go into
    notice and 30 wait for the township. Summing the month's claims under READ COMMITTED
    let concurrent check-ins each see room that the others were taking."""
    items = default_items(app, world)
    set_policy(client, world, monthly_budget=30)
    _, token = open_activity(client, world, items["GOV-ASSEMBLY"])
    users = bound_villagers(app, world.village_a, 40)
    headers = [world.headers(user_id) for user_id in users]

    replies = post_together(
        app, 40, f"{API}/checkins", lambda i: headers[i], lambda i: {"token": token}
    )

    assert_no_server_errors(replies)
    assert Counter(r.status for r in replies) == {201: 40}
    assert Counter(r.body["status"] for r in replies) == {"in_notice": 10, "approved": 30}
    with app.app_context():
        in_notice = db.session.scalars(
            select(Claim.points).where(Claim.status == "in_notice")
        ).all()
    assert sum(in_notice) == 30
    assert list(issued(app).values()) == [30]


def test_a_claim_past_the_whole_budget_is_never_counted(
    app: Flask, client: FlaskClient, world: World
) -> None:
    items = default_items(app, world)
    set_policy(client, world, monthly_budget=5)
    with frozen(local(2026, 3, 10) + timedelta(hours=1)):
        assert volunteer(client, world, items["PUB-VOLUNTEER"], 3)["status"] == "approved"
    assert issued(app) == {}


def test_a_village_without_a_budget_writes_its_count_as_it_commits(
    app: Flask, world: World, caplog: Any
) -> None:
    """A village without a budget counts its awards, and takes back points, as the
    transaction commits (`village_totals.defer_issue`): net per month, a savepoint rolled
    back dropping what it deferred; a net take-back its month does not hold is logged as a
    drift and changes nothing, as `unissue` does at once for a budgeted village."""
    with app.app_context():
        session = db.session
        assert session.scalars(select(MonthlyIssued)).all() == []
        village_totals.defer_issue(session, world.village_a, "2026-03", 10)
        with session.begin_nested():
            village_totals.defer_issue(session, world.village_a, "2026-03", -4)
        savepoint = session.begin_nested()
        village_totals.defer_issue(session, world.village_a, "2026-03", -3)
        savepoint.rollback()
        village_totals.defer_issue(session, world.village_b, "2026-03", -1)
        assert session.scalars(select(MonthlyIssued)).all() == []  # written as it commits
        session.commit()
    assert issued(app) == {(world.village_a, "2026-03"): 6}
    assert f"village {world.village_b} 2026-03 do not hold the 1 points" in caplog.text
    with app.app_context():  # no claim holds these points: the end-of-test check would object
        db.session.execute(delete(MonthlyIssued))
        db.session.commit()


def test_a_transaction_whose_counts_cancel_out_writes_nothing_and_commits(
    app: Flask, world: World
) -> None:
    """Points counted and taken back in one transaction (nothing else recorded): nothing to
    write at commit, and the commit goes through (on PostgreSQL the rows at commit are one
    statement, which has no part to write then)."""
    with app.app_context():
        session = db.session()  # the scoped session's own, as the commit event passes it
        assert session.scalars(select(MonthlyIssued)).all() == []  # (begins the transaction)
        village_totals.defer_issue(session, world.village_a, "2026-03", 5)
        village_totals.defer_issue(session, world.village_a, "2026-03", -5)
        assert village_totals.write_pending(session) == 0
        village_totals.defer_issue(session, world.village_a, "2026-03", 2)
        village_totals.defer_issue(session, world.village_a, "2026-03", -2)
        session.commit()
    assert issued(app) == {}


def test_a_reversal_in_a_village_without_a_budget_gives_its_points_back_as_it_commits(
    app: Flask, client: FlaskClient, world: World
) -> None:
    """An award reversed (冲正) in a village without a budget: its points leave the counter
    (written as the reversal commits, after the account, as the award's were)."""
    items = default_items(app, world)
    set_policy(client, world, monthly_budget=None, notice_days=0)
    award = client.post(
        f"{API}/awards",
        headers=world.headers("cadre_a"),
        json={
            "rule_item_id": items["GOV-ASSEMBLY"],
            "targets": [{"household_id": world.household_x}],
        },
    )
    assert award.status_code == 201, award.get_json()
    [claim] = award.get_json()
    assert claim["status"] == "posted"
    assert list(issued(app).values()) == [claim["points"]]
    with app.app_context():
        entry_id = db.session.scalar(
            select(LedgerEntry.id).where(LedgerEntry.claim_id == claim["id"])
        )
    reversal = client.post(
        f"{API}/ledger/{entry_id}/reverse",
        headers=world.headers("cadre_a"),
        json={"reason": "登记错了户"},
    )
    assert reversal.status_code == 201, reversal.get_json()
    assert reversal.get_json()["amount"] == -claim["points"]
    assert list(issued(app).values()) == [0]
