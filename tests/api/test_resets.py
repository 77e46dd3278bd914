"""The periodic reset of spendable points (定期清零, `flask points reset`): each village's period
once, run daily; what the ended period left, whenever the run happens; points held by an
open order expire when they come back; a claim in notice at the end posts into the new
period. Moments are aware datetimes, so they mean the same whatever zone the clock is
frozen in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from backend.extensions import db
from points import policies
from points.models import Account, LedgerEntry, PeriodReset, PeriodResetHold, User
from tests.factories import (
    World,
    add_household,
    add_reward,
    approve,
    bound_villagers,
    earn,
    fund,
    order,
    post_due,
    self_report,
    set_policy,
)
from tests.support.clock import SHANGHAI, frozen, local
from tests.support.concurrency import on_postgres, together
from tests.support.reads import account_of, entries_of

pytestmark = pytest.mark.usefixtures("items")

API = "/api/v1"


# ---- helpers ---------------------------------------------------------------------------------


def reset(runner: Any) -> int:
    """`flask points reset`; the number of accounts it says it expired points in."""
    result = runner.invoke(args=["points", "reset"])
    assert result.exit_code == 0, result.output
    return int(result.output.rsplit("reset ", 1)[1].split()[0])


def reset_at(runner: Any, moment: datetime) -> int:
    with frozen(moment):
        return reset(runner)


def quarterly(
    client: FlaskClient, runner: Any, world: World, first_run: datetime, **policy: Any
) -> None:
    """Village A (and B) reset quarterly, and the daily run has started: its first run
    records the quarter before `first_run`'s as where the resets start."""
    set_policy(client, world, reset_cycle="quarterly", **policy)
    assert reset_at(runner, first_run) == 0


def expiries(app: Flask, household_id: int) -> list[tuple[int, str, str]]:
    """(amount, month, note) of the household's expire entries, in order."""
    return [
        (e["amount"], e["month"], e["note"])
        for e in entries_of(app, household_id)
        if e["kind"] == "expire"
    ]


def recorded(app: Flask, village_id: int) -> list[tuple[str, bool, int, int]]:
    with app.app_context():
        return [
            (r.period, r.baseline, r.accounts, r.points)
            for r in db.session.scalars(
                select(PeriodReset)
                .where(PeriodReset.village_id == village_id)
                .order_by(PeriodReset.id)
            )
        ]


def available(app: Flask, household_id: int) -> int:
    return account_of(app, household_id)["available"]


def assert_books_balance(client: FlaskClient, runner: Any, world: World) -> None:
    """`flask ledger verify` passes, and the township's points report adds up: issued =
    balances + redeemed + expired, the expired being every expire entry."""
    verified = runner.invoke(args=["ledger", "verify"])
    assert verified.exit_code == 0, verified.output
    body = client.get(
        f"{API}/townships/{world.township_1}/points-report", headers=world.headers("tadmin1")
    ).get_json()
    for row in [*body["villages"], body["totals"]]:
        assert row["issued"] == row["outstanding"] + row["redeemed"] + row["expired"], row
        assert row["outstanding"] == row["available"] + row["held"], row
    village_a = next(v for v in body["villages"] if v["village_id"] == world.village_a)
    with world.app.app_context():
        expired = db.session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.amount), 0))
            .join(Account, Account.id == LedgerEntry.account_id)
            .where(Account.village_id == world.village_a, LedgerEntry.kind == "expire")
        )
    assert village_a["expired"] == -expired


# ---- once per village and period, only periods that have ended --------------------------------


def test_a_yearly_village_run_daily_loses_nothing_on_1_april(
    app: Flask, client: FlaskClient, runner: Any, world: World
) -> None:
    set_policy(client, world, reset_cycle="yearly")
    earn(app, world.household_x, 40, local(2025, 6, 1))
    assert reset_at(runner, local(2025, 12, 20)) == 0  # the resets start: 2024 is recorded
    assert reset_at(runner, local(2026, 1, 1, 0, 5)) == 1  # 2025 ends
    newcomer = add_household(app, world.village_a, "w户", "户主w")["household"]
    earn(app, world.household_x, 9, local(2026, 1, 15))
    earn(app, newcomer, 12, local(2026, 2, 3))  # nothing at all when 2025 was reset
    for moment in (
        local(2026, 1, 2, 0, 5),
        local(2026, 3, 31, 23, 59),
        local(2026, 4, 1, 0, 5),
        local(2026, 4, 1, 0, 5),
        local(2026, 7, 1, 0, 5),
        local(2026, 10, 1, 0, 5),
        local(2026, 12, 31, 23, 59),
    ):
        assert reset_at(runner, moment) == 0, moment
    assert (available(app, world.household_x), available(app, newcomer)) == (9, 12)
    assert expiries(app, world.household_x) == [(-40, "2025-12", "定期清零 2025")]
    assert expiries(app, newcomer) == []
    assert recorded(app, world.village_a) == [("2024", True, 0, 0), ("2025", False, 1, 40)]

    assert reset_at(runner, local(2027, 1, 1, 0, 5)) == 2
    assert expiries(app, newcomer) == [(-12, "2026-12", "定期清零 2026")]
    assert available(app, world.household_x) == 0


def test_a_quarterly_village_run_twice_in_a_quarter_keeps_the_quarters_points(
    app: Flask, client: FlaskClient, runner: Any, world: World
) -> None:
    quarterly(client, runner, world, local(2026, 2, 1))
    earn(app, world.household_x, 30, local(2026, 2, 10))
    assert reset_at(runner, local(2026, 4, 1, 0, 5)) == 1
    earn(app, world.household_x, 8, local(2026, 4, 10))
    assert reset_at(runner, local(2026, 4, 11)) == 0  # the same quarter, again
    assert reset_at(runner, local(2026, 6, 30, 23)) == 0
    assert available(app, world.household_x) == 8
    assert expiries(app, world.household_x) == [(-30, "2026-03", "定期清零 2026-Q1")]

    assert reset_at(runner, local(2026, 7, 1, 0, 5)) == 1
    assert expiries(app, world.household_x)[-1] == (-8, "2026-06", "定期清零 2026-Q2")


def test_an_account_with_nothing_at_the_reset_keeps_what_it_earns_after(
    app: Flask, client: FlaskClient, runner: Any, world: World
) -> None:
    quarterly(client, runner, world, local(2026, 2, 1))
    earn(app, world.household_x, 5, local(2026, 2, 10))
    fund(app, world.household_x, -5, at=local(2026, 3, 2), kind="redeem")  # all spent
    assert reset_at(runner, local(2026, 4, 1, 0, 5)) == 0  # nothing left to expire
    earn(app, world.household_x, 14, local(2026, 4, 20))
    for day in range(21, 31):
        assert reset_at(runner, local(2026, 4, day, 0, 5)) == 0
    assert available(app, world.household_x) == 14
    assert expiries(app, world.household_x) == []
    assert recorded(app, world.village_a)[-1] == ("2026-Q1", False, 0, 0)


def test_switching_a_village_to_resets_wipes_nothing_at_once_then_older_points_go_too(
    app: Flask, client: FlaskClient, runner: Any, world: World
) -> None:
    """Decided: the first run under a cycle records the last ended period as where the
    resets start (the policy was not in force through it), and the first period end after
    that takes every point left from before it, older ones included."""
    earn(app, world.household_x, 25, local(2025, 5, 1))  # under the old "none" policy
    set_policy(client, world, reset_cycle="quarterly")
    assert reset_at(runner, local(2026, 2, 14)) == 0
    assert available(app, world.household_x) == 25
    assert recorded(app, world.village_a) == [("2025-Q4", True, 0, 0)]
    earn(app, world.household_x, 6, local(2026, 3, 1))
    assert reset_at(runner, local(2026, 4, 1, 0, 5)) == 1
    assert expiries(app, world.household_x) == [(-31, "2026-03", "定期清零 2026-Q1")]

    # Back to yearly in May: 2025 was never reset under that cycle, so it is only recorded.
    set_policy(client, world, reset_cycle="yearly")
    earn(app, world.household_x, 7, local(2026, 5, 10))
    assert reset_at(runner, local(2026, 5, 11)) == 0
    assert recorded(app, world.village_a)[-1] == ("2025", True, 0, 0)
    assert reset_at(runner, local(2026, 7, 1, 0, 5)) == 0  # no quarter ends under yearly
    assert available(app, world.household_x) == 7


# ---- what the ended period left, whenever the run happens ------------------------------------


@pytest.mark.parametrize(
    "run",
    [
        datetime(2026, 4, 1, 0, 5, tzinfo=UTC),  # 00:05 on a UTC server: 08:05 in the village
        local(2026, 4, 20, 9),  # a missed run, caught up weeks later
    ],
    ids=["utc-cron", "missed-run"],
)
def test_a_late_run_expires_what_the_ended_quarter_left_and_names_it(
    app: Flask, client: FlaskClient, runner: Any, world: World, run: datetime
) -> None:
    quarterly(client, runner, world, local(2026, 1, 10))
    earn(app, world.household_x, 50, local(2026, 2, 10))
    fund(app, world.household_x, -15, at=local(2026, 3, 20), kind="redeem")  # spent in Q1
    earn(app, world.household_x, -5, local(2026, 4, 1, 3))  # a deduction of the new quarter
    earn(app, world.household_x, 12, local(2026, 4, 1, 7))  # earned at 07:00 on 1 April
    assert reset_at(runner, run) == 1
    # Q1 left 35; they go, named Q1 and counted in March. The new quarter keeps its 12 less
    # its deduction, as a run at the stroke of midnight would have left it.
    assert expiries(app, world.household_x) == [(-35, "2026-03", "定期清零 2026-Q1")]
    assert available(app, world.household_x) == 7
    assert reset_at(runner, run + timedelta(hours=1)) == 0
    march = client.get(
        f"{API}/townships/{world.township_1}/points-report?month=2026-03",
        headers=world.headers("tadmin1"),
    ).get_json()
    village_a = next(v for v in march["villages"] if v["village_id"] == world.village_a)
    assert (village_a["month_expired"], village_a["outstanding"]) == (35, 0)
    assert_books_balance(client, runner, world)


def test_a_late_run_after_new_spending_takes_the_oldest_points_first(
    app: Flask, client: FlaskClient, runner: Any, world: World
) -> None:
    quarterly(client, runner, world, local(2026, 1, 10))
    earn(app, world.household_x, 10, local(2026, 3, 10))
    earn(app, world.household_x, 20, local(2026, 4, 1, 2))
    fund(app, world.household_x, -16, at=local(2026, 4, 1, 6), kind="redeem")
    assert reset_at(runner, datetime(2026, 4, 1, 0, 5, tzinfo=UTC)) == 0
    # The 16 spent took Q1's 10 first, then 6 of April's: nothing of Q1 is left.
    assert expiries(app, world.household_x) == []
    assert available(app, world.household_x) == 14


# ---- points held by an open order ----------------------------------------------------------


@pytest.fixture()
def shelf(app: Flask, client: FlaskClient, runner: Any, world: World) -> int:
    """Quarterly resets under way, anyone may redeem, and a 20-point reward on the shelf."""
    quarterly(client, runner, world, local(2026, 1, 10), qualification_line=0)
    return add_reward(app, world.shop_a, "洗衣粉", 20, 10)


def place(client: FlaskClient, world: World, reward: int, at: datetime) -> int:
    with frozen(at):
        response = order(client, world.headers("villager_x"), world.shop_a, [(reward, 1)])
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def cancel(client: FlaskClient, world: World, redemption_id: int, at: datetime) -> Any:
    with frozen(at):
        return client.post(
            f"{API}/redemptions/{redemption_id}/cancel",
            json={},
            headers=world.headers("villager_x"),
        )


def test_points_held_at_the_reset_expire_when_the_order_is_cancelled(
    app: Flask, client: FlaskClient, runner: Any, world: World, shelf: int
) -> None:
    earn(app, world.household_x, 50, local(2026, 3, 1))
    held = place(client, world, shelf, local(2026, 3, 31, 20))
    assert reset_at(runner, local(2026, 4, 1, 0, 5)) == 1
    assert expiries(app, world.household_x) == [(-30, "2026-03", "定期清零 2026-Q1")]
    earn(app, world.household_x, 12, local(2026, 4, 1, 7))

    cancelled = cancel(client, world, held, local(2026, 4, 1, 9))
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    assert account_of(app, world.household_x) | {"entries": 0} == {
        "available": 12,
        "held": 0,
        "earned_total": 62,
        "entries": 0,
    }
    assert expiries(app, world.household_x)[-1] == (
        -20,
        "2026-04",
        f"定期清零 2026-Q1：兑换单 #{held} 未领取，冻结的积分到期",
    )

    assert_books_balance(client, runner, world)


def test_points_held_at_the_reset_expire_when_the_order_is_not_picked_up(
    app: Flask, client: FlaskClient, runner: Any, world: World, shelf: int
) -> None:
    earn(app, world.household_x, 45, local(2026, 3, 1))
    held = place(client, world, shelf, local(2026, 3, 31, 20))  # held 72 hours
    assert reset_at(runner, local(2026, 4, 1, 0, 5)) == 1
    earn(app, world.household_x, 30, local(2026, 4, 2))
    later = place(client, world, shelf, local(2026, 4, 2, 12))  # the new quarter's points
    with frozen(local(2026, 4, 6)):
        result = runner.invoke(args=["redemptions", "expire"])
    assert result.exit_code == 0 and "expired 2 redemption" in result.output, result.output
    assert expiries(app, world.household_x) == [
        (-25, "2026-03", "定期清零 2026-Q1"),
        (-20, "2026-04", f"定期清零 2026-Q1：兑换单 #{held} 未领取，冻结的积分到期"),
    ]
    assert account_of(app, world.household_x)["available"] == 30
    with app.app_context():
        held_rows = db.session.scalars(select(PeriodResetHold.redemption_id)).all()
    assert held_rows == [held] and later not in held_rows
    assert_books_balance(client, runner, world)


def test_an_order_between_the_end_and_a_late_run_holds_the_quarters_points_first(
    app: Flask, client: FlaskClient, runner: Any, world: World, shelf: int
) -> None:
    earn(app, world.household_x, 5, local(2026, 3, 1))  # what Q1 leaves
    earn(app, world.household_x, 16, local(2026, 4, 1, 2))
    held = place(client, world, shelf, local(2026, 4, 1, 3))  # 5 of Q1's, 15 of April's
    assert reset_at(runner, datetime(2026, 4, 1, 0, 5, tzinfo=UTC)) == 0
    assert cancel(client, world, held, local(2026, 4, 1, 9)).status_code == 200
    assert expiries(app, world.household_x) == [
        (-5, "2026-04", f"定期清零 2026-Q1：兑换单 #{held} 未领取，冻结的积分到期")
    ]
    assert available(app, world.household_x) == 16
    assert_books_balance(client, runner, world)


# ---- a claim in public notice (公示) when its quarter ends --------------------------------------


def test_a_claim_in_notice_at_the_end_posts_into_the_new_quarter(
    app: Flask, client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> None:
    """Decided: its points were never spendable in the ended quarter, so that quarter's
    reset leaves them; they post spendable and go with the new quarter's reset."""
    quarterly(client, runner, world, local(2026, 1, 10))
    earn(app, world.household_x, 10, local(2026, 3, 2))
    with frozen(local(2026, 3, 29)):
        claim = self_report(client, world, "villager_x", items["PUB-VOLUNTEER"], 3)
        assert claim.status_code == 201, claim.get_json()
        approved = approve(client, world, "cadre_a", claim.get_json()["id"]).get_json()
        assert approved["status"] == "in_notice", approved
    assert reset_at(runner, local(2026, 4, 1, 0, 5)) == 1
    assert expiries(app, world.household_x) == [(-10, "2026-03", "定期清零 2026-Q1")]
    with frozen(local(2026, 4, 3, 11)):
        assert post_due(runner) == 1
    points = approved["points"]
    assert points > 0 and available(app, world.household_x) == points
    assert reset_at(runner, local(2026, 4, 4, 0, 5)) == 0
    assert reset_at(runner, local(2026, 7, 1, 0, 5)) == 1
    assert expiries(app, world.household_x)[-1] == (-points, "2026-06", "定期清零 2026-Q2")
    assert_books_balance(client, runner, world)


# ---- two runs at once ------------------------------------------------------------------------


@on_postgres
def test_two_resets_at_once_expire_once(
    app: Flask, client: FlaskClient, runner: Any, world: World
) -> None:
    quarterly(client, runner, world, local(2026, 1, 10))
    households = [world.household_x] + [
        add_household(app, world.village_a, f"并发{i}户", f"户主{i}")["household"] for i in range(8)
    ]
    for i, household in enumerate(households):
        earn(app, household, 10 + i, local(2026, 2, 1))
    moment = local(2026, 4, 1, 0, 5)

    def run(_: int) -> list[policies.VillageReset]:
        with app.app_context():
            return policies.reset_spendable(db.session, moment, SHANGHAI)

    outcomes = together(2, run)
    # Villages A and B are reset once each, by whichever runner got to each first.
    reset = sorted(r.village_id for outcome in outcomes for r in outcome)
    assert reset == sorted([world.village_a, world.village_b]), outcomes
    for i, household in enumerate(households):
        assert expiries(app, household) == [(-(10 + i), "2026-03", "定期清零 2026-Q1")]
        assert available(app, household) == 0
    assert recorded(app, world.village_a)[-1] == (
        "2026-Q1",
        False,
        len(households),
        sum(10 + i for i in range(len(households))),
    )
    assert_books_balance(client, runner, world)


@on_postgres
def test_a_reset_and_cancels_at_once_expire_the_held_points_once(
    app: Flask, client: FlaskClient, runner: Any, world: World, shelf: int
) -> None:
    users = bound_villagers(app, world.village_a, 6)
    with app.app_context():
        households = [db.session.get(User, u).villager.household_id for u in users]
    orders = []
    for user, household in zip(users, households, strict=True):
        earn(app, household, 30, local(2026, 3, 1))
        with frozen(local(2026, 3, 31, 20)):
            placed = order(client, world.headers(user), world.shop_a, [(shelf, 1)])
        assert placed.status_code == 201, placed.get_json()
        orders.append(placed.get_json()["id"])
    moment = local(2026, 4, 1, 0, 5)
    clients = [app.test_client() for _ in users]

    def work(i: int) -> Any:
        if i == 0:
            with app.app_context():
                return policies.reset_spendable(db.session, moment, SHANGHAI)
        return (
            clients[i - 1]
            .post(f"{API}/redemptions/{orders[i - 1]}/cancel", json={}, headers=headers[i - 1])
            .status_code
        )

    with frozen(moment):  # the clock is the process's: frozen around every thread
        headers = [world.headers(user) for user in users]
        outcomes = together(len(users) + 1, work)
    assert outcomes[1:] == [200] * len(users)
    for household in households:
        # Whichever came first, the 30 of Q1 expired once: 10 at the reset and 20 as the
        # order gave them back, or all 30 at the reset after the cancel.
        done = expiries(app, household)
        assert sum(amount for amount, _, _ in done) == -30, done
        assert all(note.startswith("定期清零 2026-Q1") for _, _, note in done), done
        assert account_of(app, household) | {"entries": 0} == {
            "available": 0,
            "held": 0,
            "earned_total": 30,
            "entries": 0,
        }
    assert recorded(app, world.village_a)[-1][:2] == ("2026-Q1", False)
    assert_books_balance(client, runner, world)
