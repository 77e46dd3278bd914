"""Village month totals (`village_month_totals`): the sum of the village's household month
totals, written once per transaction as its last write (points.village_totals), which the
township's points report reads. Every test here also ends with the suite's invariant check
(tests/conftest.py), which compares every village month with its households' months."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from backend.extensions import db
from points import claims, ledger, time_zone, village_totals
from points.models import (
    Account,
    LedgerEntry,
    Redemption,
    RuleItemVersion,
    User,
    VillageMonthItem,
    VillageMonthTotal,
    Villager,
)
from rules.periods import month_key
from tests.factories import (
    World,
    add_reward,
    award,
    bound_villagers,
    check_in,
    default_items,
    fund,
    open_activity,
    order,
    set_policy,
)
from tests.support.clock import SHANGHAI, frozen, local
from tests.support.concurrency import JOIN_TIMEOUT, on_postgres, together

API = "/api/v1"
MARCH = local(2026, 3, 10)


def village_months(app: Flask, village_id: int) -> dict[str, tuple[int, ...]]:
    with app.app_context():
        return {
            row.month: tuple(getattr(row, name) for name in village_totals.SUMS)
            for row in db.session.scalars(
                select(VillageMonthTotal).where(VillageMonthTotal.village_id == village_id)
            )
        }


def participating(app: Flask, village_id: int) -> dict[str, int]:
    """Households that earned, by month, as kept for the village (参与户数)."""
    with app.app_context():
        return {
            row.month: row.participating
            for row in db.session.scalars(
                select(VillageMonthTotal).where(VillageMonthTotal.village_id == village_id)
            )
        }


def events(app: Flask, village_id: int) -> dict[str, tuple[int, int]]:
    """Entries that posted a claim and that fulfilled an order, by month, kept for the
    village (what /metrics sums)."""
    with app.app_context():
        return {
            row.month: (row.claims_posted, row.redemptions)
            for row in db.session.scalars(
                select(VillageMonthTotal).where(VillageMonthTotal.village_id == village_id)
            )
        }


def village_items(app: Flask, village_id: int) -> dict[tuple[str, int, str], tuple[int, int]]:
    """(month, rule item version or 0, kind) -> (entries, amount) kept for the village."""
    with app.app_context():
        return {
            (row.month, row.rule_item_version_id, row.kind): (row.entries, row.amount)
            for row in db.session.scalars(
                select(VillageMonthItem).where(VillageMonthItem.village_id == village_id)
            )
        }


def _append(session: Session, household_id: int, kind: str, amount: int, **origin: Any) -> Any:
    return ledger.append(
        session,
        household_id=household_id,
        kind=kind,
        amount=amount,
        when=ledger.EntryTime(SHANGHAI, at=MARCH),
        origin=ledger.EntryOrigin(note="测试", **origin),
    )


def test_every_kind_of_entry_adds_to_its_village_month(
    app: Flask, world: World, neighbour: dict[str, int]
) -> None:
    with app.app_context():
        s = db.session
        earned = _append(s, world.household_x, "earn", 10)
        _append(s, neighbour["household"], "earn", 7)
        _append(s, world.household_x, "deduct", -3)
        _append(s, world.household_x, "adjust", 20)  # an opening balance (期初结转)
        _append(s, world.household_x, "redeem", -4)
        _append(s, world.household_x, "expire", -5)
        s.commit()
        # Nothing is written until the commit: one row, the sum of the transaction's entries.
        ledger.reverse(s, earned, reason="重复记分", created_by=world.cadre_a, tz=SHANGHAI)
        s.commit()
        _append(s, world.household_y, "earn", 2)  # village B's own row
        s.commit()
    # score, earned, deducted, redeemed, expired, opening; the reversal counts in the month
    # it is made, in the score only (as in month_totals).
    months = village_months(app, world.village_a)
    this_month = month_key(datetime.now(SHANGHAI))
    assert months == {"2026-03": (17 - 3, 17, -3, -4, -5, 20), this_month: (-10, 0, 0, 0, 0, 0)}
    assert list(village_months(app, world.village_b).values()) == [(2, 2, 0, 0, 0, 0)]
    # Two households earned in March; a reversal earns nothing.
    assert participating(app, world.village_a) == {"2026-03": 2, this_month: 0}
    assert participating(app, world.village_b) == {"2026-03": 1}
    with app.app_context():
        assert village_totals.verify(db.session, SHANGHAI) == []


def test_score_entries_add_to_their_village_month_by_item_and_kind(
    app: Flask, world: World, items: dict[str, int]
) -> None:
    """What the township's statistics by category read: awards, deductions and their
    reversals, counted and summed per item and kind; an opening balance, a redemption, an
    expiry and the reversal of an opening balance make no score and are not there."""
    with app.app_context():
        s = db.session
        version = s.scalar(select(func.min(RuleItemVersion.id)))
        assert version is not None
        earned = _append(s, world.household_x, "earn", 10, rule_item_version_id=version)
        _append(s, world.household_x, "earn", 4, rule_item_version_id=version)
        _append(s, world.household_x, "deduct", -3)  # no item: kept under 0
        opening = _append(s, world.household_x, "adjust", 20)
        _append(s, world.household_x, "redeem", -4)
        _append(s, world.household_x, "expire", -5)
        s.commit()
        ledger.reverse(s, earned, reason="重复记分", created_by=world.cadre_a, tz=SHANGHAI)
        ledger.reverse(s, opening, reason="期初录错", created_by=world.cadre_a, tz=SHANGHAI)
        s.commit()
        reversal_item = s.scalar(
            select(LedgerEntry.rule_item_version_id).where(LedgerEntry.reverses_id == earned.id)
        )
        assert village_totals.verify(s, SHANGHAI) == []
    this_month = month_key(datetime.now(SHANGHAI))
    assert village_items(app, world.village_a) == {
        ("2026-03", version, "earn"): (2, 14),
        ("2026-03", 0, "deduct"): (1, -3),
        (this_month, reversal_item or 0, "reverse"): (1, -10),
    }
    assert village_items(app, world.village_b) == {}


def test_a_rolled_back_transaction_or_savepoint_leaves_nothing(app: Flask, world: World) -> None:
    with app.app_context():
        s = db.session
        _append(s, world.household_x, "earn", 10)
        s.rollback()
        _append(s, world.household_x, "earn", 1)
        with s.begin_nested() as savepoint:
            _append(s, world.household_x, "earn", 100)
            savepoint.rollback()
        with s.begin_nested():
            _append(s, world.household_x, "earn", 1000)  # released: counts
        s.commit()
    assert list(village_months(app, world.village_a).values()) == [(1001, 1001, 0, 0, 0, 0)]
    assert list(village_items(app, world.village_a).values()) == [(2, 1001)]
    assert participating(app, world.village_a) == {"2026-03": 1}


def test_committing_with_a_savepoint_still_open_is_refused_and_rolls_back(
    app: Flask, world: World
) -> None:
    # The outer transaction's commit event comes before the open savepoint is released:
    # its totals would be lost, so the commit is refused and nothing is kept.
    with app.app_context():
        entries = db.session.scalar(select(func.count()).select_from(LedgerEntry))
        db.session.rollback()  # (SQLite: one writer; this session's read would hold it)
        with pytest.raises(village_totals.OpenSavepoint):
            with Session(db.engine) as s, s.begin():
                _append(s, world.household_x, "earn", 7)
                s.begin_nested()
                _append(s, world.household_x, "earn", 70)
        assert db.session.scalar(select(func.count()).select_from(LedgerEntry)) == entries
        db.session.rollback()
        # Closing the savepoint first is the way, and the session's commit() does it.
        with Session(db.engine) as s:
            _append(s, world.household_x, "earn", 7)
            s.begin_nested()
            _append(s, world.household_x, "earn", 70)
            s.commit()
    assert list(village_months(app, world.village_a).values()) == [(77, 77, 0, 0, 0, 0)]


def test_an_award_and_its_redemption_through_the_api_keep_the_village_exact(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    set_policy(client, world, notice_days=0)  # an award posts at once
    fund(app, world.household_x, 60, at=MARCH)  # the score a household needs to redeem
    with frozen(MARCH):
        awarded = award(client, world, items["GOV-ASSEMBLY"], [{"villager_id": world.head_x}])
        assert awarded.status_code == 201, awarded.get_json()
        rice = add_reward(app, world.shop_a, "大米", 2, 10)
        placed = order(client, world.headers("villager_x"), world.shop_a, [(rice, 1)])
        assert placed.status_code == 201, placed.get_json()
        done = client.post(
            f"{API}/redemptions/pickup-code",
            headers=world.headers("clerk_a"),
            json={"pickup_code": placed.get_json()["pickup_code"]},
        )
        assert done.status_code == 200, done.get_json()
    assert list(village_months(app, world.village_a).values()) == [(63, 63, 0, -2, 0, 0)]
    # x earned in two transactions (funded, then awarded): one household taking part.
    assert participating(app, world.village_a) == {"2026-03": 1}
    # The award posted a claim (funding posts none), and one order was fulfilled.
    assert events(app, world.village_a) == {"2026-03": (1, 1)}


def test_rebuild_writes_the_same_village_months_and_items_from_the_ledger(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    """What a bulk load writes instead of appending entry by entry (bench/scale.py): the
    rows `rebuild` sums from the households' months and the ledger are the ones kept as the
    entries were appended, counts of claims and orders included."""
    set_policy(client, world, notice_days=0)
    fund(app, world.household_x, 60, at=MARCH)
    fund(app, world.household_y, 5, at=MARCH)  # village B
    with frozen(MARCH):
        awarded = award(client, world, items["GOV-ASSEMBLY"], [{"villager_id": world.head_x}])
        assert awarded.status_code == 201, awarded.get_json()
        rice = add_reward(app, world.shop_a, "大米", 2, 10)
        placed = order(client, world.headers("villager_x"), world.shop_a, [(rice, 1)])
        done = client.post(
            f"{API}/redemptions/pickup-code",
            headers=world.headers("clerk_a"),
            json={"pickup_code": placed.get_json()["pickup_code"]},
        )
        assert done.status_code == 200, done.get_json()
    kept = [
        (village_months(app, v), participating(app, v), events(app, v), village_items(app, v))
        for v in (world.village_a, world.village_b)
    ]
    assert kept[0][2] == {"2026-03": (1, 1)} and kept[0][3], kept
    with app.app_context():
        # Wrong and missing rows alike are replaced.
        db.session.execute(text("UPDATE village_month_totals SET score = score + 100"))
        db.session.execute(text("DELETE FROM village_month_items"))
        assert village_totals.verify(db.session, SHANGHAI)
        village_totals.rebuild(db.session, SHANGHAI)
        db.session.commit()
        assert village_totals.verify(db.session, SHANGHAI) == []
    assert [
        (village_months(app, v), participating(app, v), events(app, v), village_items(app, v))
        for v in (world.village_a, world.village_b)
    ] == kept


def checkins_by_month(app: Flask, village_id: int) -> dict[str, tuple[int, int]]:
    """(check-ins, score) of each month kept for the village."""
    with app.app_context():
        return {
            row.month: (row.checkins, row.score)
            for row in db.session.scalars(
                select(VillageMonthTotal).where(VillageMonthTotal.village_id == village_id)
            )
        }


def test_a_check_in_counts_in_its_village_month_in_the_villages_time_zone(
    app: Flask, client: FlaskClient, world: World
) -> None:
    """Counted in the month of its moment in the villages' time zone (01:30 on 1 November
    there is still 31 October in UTC), as it commits, before its claim scores anything (in
    notice: no entry yet, so the month has a row for its check-ins alone); a refused repeat
    counts nothing; verify agrees, and rebuild writes the same from the check-ins."""
    items = default_items(app, world)
    (neighbour,) = bound_villagers(app, world.village_a, 1)
    with frozen(local(2026, 11, 1, 1, 30)):
        _, code = open_activity(client, world, items["GOV-ASSEMBLY"])
        first = check_in(client, world, code)
        again = check_in(client, world, code)
        other = check_in(client, world, code, user=neighbour)
    assert first.status_code == 201, first.get_json()
    assert first.get_json()["status"] == "in_notice"
    assert again.status_code == 409, again.get_json()
    assert other.status_code == 201, other.get_json()
    assert checkins_by_month(app, world.village_a) == {"2026-11": (2, 0)}
    assert checkins_by_month(app, world.village_b) == {}
    with app.app_context():
        assert village_totals.verify(db.session, SHANGHAI) == []
        db.session.execute(text("DELETE FROM village_month_totals"))
        problems = village_totals.verify(db.session, SHANGHAI)
        village_totals.rebuild(db.session, SHANGHAI)
        db.session.commit()
        assert village_totals.verify(db.session, SHANGHAI) == []
    assert len(problems) == 1 and "2026-11" in problems[0] and "checkins=2" in problems[0]
    assert checkins_by_month(app, world.village_a) == {"2026-11": (2, 0)}
    # Counted in another zone, the same check-ins fall in October: verify tells.
    with app.app_context():
        assert village_totals.verify(db.session, ZoneInfo("UTC"))
        db.session.rollback()


def test_a_check_in_that_has_no_claim_yet_counts_and_holds_the_zone(
    app: Flask, client: FlaskClient, world: World
) -> None:
    """A per-hour item's check-in makes no claim until check-out, but it counts in its
    village's month all the same, so the villages' time zone can no longer be changed."""
    items = default_items(app, world)
    with app.app_context():
        before = time_zone.holds_months(db.session)
        db.session.rollback()
    with frozen(local(2026, 11, 10, 9, 30)):
        _, code = open_activity(client, world, items["PUB-VOLUNTEER"])
        checked = check_in(client, world, code)
    assert checked.status_code == 201, checked.get_json()
    assert (checked.get_json()["status"], checked.get_json()["claim_id"]) == ("checked_in", None)
    assert checkins_by_month(app, world.village_a) == {"2026-11": (1, 0)}
    with app.app_context():
        after = time_zone.holds_months(db.session)
        db.session.rollback()
    assert (before, after) == (False, True)


def test_verify_names_a_tampered_village_month(app: Flask, world: World, runner: Any) -> None:
    fund(app, world.household_x, 10, at=MARCH)
    with app.app_context():
        assert village_totals.verify(db.session, SHANGHAI) == []
        db.session.execute(text("UPDATE village_month_totals SET redeemed = redeemed - 1"))
        problems = village_totals.verify(db.session, SHANGHAI)
        db.session.commit()
    assert len(problems) == 1 and "2026-03" in problems[0], problems
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code != 0
    assert "BROKEN village month totals" in result.output, result.output
    assert "`flask ledger rebuild-counts`" in result.output
    # A row missing altogether is named too.
    with app.app_context():
        db.session.execute(text("DELETE FROM village_month_totals"))
        assert len(village_totals.verify(db.session, SHANGHAI)) == 1
        db.session.commit()
    # The repair writes it again from the ledger; verify passes after it.
    rebuilt = runner.invoke(args=["ledger", "rebuild-counts"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert runner.invoke(args=["ledger", "verify"]).exit_code == 0
    with app.app_context():
        assert village_totals.verify(db.session, SHANGHAI) == []


@pytest.mark.parametrize("column", ["participating", "claims_posted", "redemptions", "checkins"])
def test_verify_names_a_tampered_count(app: Flask, world: World, column: str) -> None:
    fund(app, world.household_x, 10, at=MARCH)
    with app.app_context():
        db.session.execute(text(f"UPDATE village_month_totals SET {column} = {column} + 1"))
        problems = village_totals.verify(db.session, SHANGHAI)
        db.session.rollback()
    assert len(problems) == 1 and f"{column}=" in problems[0], problems


def test_verify_names_a_tampered_or_missing_item_total(
    app: Flask, world: World, runner: Any
) -> None:
    fund(app, world.household_x, 10, at=MARCH)
    with app.app_context():
        db.session.execute(text("UPDATE village_month_items SET amount = amount + 1"))
        problems = village_totals.verify(db.session, SHANGHAI)
        db.session.rollback()
        db.session.execute(text("DELETE FROM village_month_items"))
        missing = village_totals.verify(db.session, SHANGHAI)
        db.session.commit()
    assert len(problems) == 1 and "2026-03" in problems[0] and "分项合计" in problems[0]
    assert len(missing) == 1 and "（无）" in missing[0], missing
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code != 0
    assert "BROKEN village month totals" in result.output, result.output
    with app.app_context():  # put back, for the suite's own end-of-test check
        db.session.execute(
            text(
                "INSERT INTO village_month_items (village_id, month, rule_item_version_id, "
                "kind, entries, amount) VALUES (:v, '2026-03', 0, 'earn', 1, 10)"
            ),
            {"v": world.village_a},
        )
        db.session.commit()
    assert runner.invoke(args=["ledger", "verify"]).exit_code == 0


@on_postgres
def test_a_batch_and_a_redemption_interleaved_do_not_deadlock(
    app: Flask, world: World, neighbour: dict[str, int]
) -> None:
    """A batch posts to household x, then to the neighbour; meanwhile a redemption posts to
    the neighbour and commits. Had each entry upserted the village's month at once, the
    batch would hold that row, the redemption would wait for it while holding the
    neighbour's account, and the batch would then wait for that account: a deadlock (or, as
    here, the redemption never getting past its entry)."""
    fund(app, neighbour["household"], 50, at=MARCH)
    batch_started = threading.Event()
    redemption_posted = threading.Event()

    def batch() -> None:
        with app.app_context():
            _append(db.session, world.household_x, "earn", 3)
            batch_started.set()
            assert redemption_posted.wait(JOIN_TIMEOUT / 4), "the redemption never posted"
            _append(db.session, neighbour["household"], "earn", 3)
            db.session.commit()

    def redemption() -> None:
        assert batch_started.wait(JOIN_TIMEOUT / 4)
        with app.app_context():
            _append(db.session, neighbour["household"], "redeem", -20)
            redemption_posted.set()
            db.session.commit()

    together(2, lambda i: (batch, redemption)[i]())
    assert list(village_months(app, world.village_a).values()) == [(56, 56, 0, -20, 0, 0)]


@on_postgres
def test_batch_awards_and_pickups_at_once_keep_the_village_exact(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    """Through the API, on threads released together: two batch awards naming every
    household (each locks the village's budget row, then the accounts in order) and every
    household's order picked up (each locks its account). No deadlock, no error, and the
    village's month is the sum of its households' months afterwards."""
    set_policy(client, world, notice_days=0)  # an award posts at once
    users = bound_villagers(app, world.village_a, 8)
    with app.app_context():
        heads = [db.session.get(User, user_id).villager_id for user_id in users]  # type: ignore[union-attr]
        households = [db.session.get(Villager, v).household_id for v in heads]  # type: ignore[union-attr]
    rice = add_reward(app, world.shop_a, "大米", 2, 100)
    codes = []
    for user_id, household_id in zip(users, households, strict=True):
        fund(app, household_id, 60, at=MARCH)  # the score needed to redeem
        with frozen(MARCH):
            placed = order(client, world.headers(user_id), world.shop_a, [(rice, 1)])
        assert placed.status_code == 201, placed.get_json()
        codes.append(placed.get_json()["pickup_code"])
    batches = [("GOV-ASSEMBLY", 1), ("GOV-DELIBERATE", -1), ("GOV-LATE", 1)]  # +3, +2, -1
    clients = [app.test_client() for _ in range(len(batches) + len(codes))]
    targets = [{"villager_id": v} for v in heads]

    def work(i: int) -> int:
        if i < len(batches):
            code, step = batches[i]
            reply = award(clients[i], world, items[code], targets[::step], note="大会记分")
            return int(reply.status_code)
        return int(
            clients[i]
            .post(
                f"{API}/redemptions/pickup-code",
                headers=world.headers("clerk_a"),
                json={"pickup_code": codes[i - len(batches)]},
            )
            .status_code
        )

    with frozen(MARCH + timedelta(hours=1)):
        statuses = together(len(batches) + len(codes), work)
    assert Counter(statuses) == {201: len(batches), 200: len(codes)}, statuses
    with app.app_context():
        assert village_totals.verify(db.session, SHANGHAI) == []
        fulfilled = db.session.scalars(select(Redemption.status)).all()
        entries = db.session.scalar(select(func.count()).select_from(LedgerEntry))
        balances = db.session.scalar(select(func.sum(Account.available)))
    assert set(fulfilled) == {"fulfilled"}
    assert entries == 8 * (1 + 1 + len(batches))  # funded, picked up, each batch
    assert balances == 8 * (60 - 2 + 3 + 2 - 1)
    [values] = village_months(app, world.village_a).values()
    assert values == (8 * 64, 8 * 65, -8, -16, 0, 0)


@on_postgres
def test_rebuilding_while_awards_post_leaves_the_village_exact(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    """`flask ledger rebuild-counts` with the service up: batch awards that post at once,
    released together with rebuilds of the village totals and recounts of approvals. No
    error, no deadlock; afterwards every village month and item agrees with the ledger."""
    set_policy(client, world, notice_days=0)  # an award posts at once
    heads = []
    with app.app_context():
        for user_id in bound_villagers(app, world.village_a, 6):
            heads.append(db.session.get(User, user_id).villager_id)  # type: ignore[union-attr]
    batches = [("GOV-ASSEMBLY", 1), ("GOV-DELIBERATE", -1), ("GOV-LATE", 1)]
    clients = [app.test_client() for _ in batches]
    targets = [{"villager_id": v} for v in heads]
    rebuilds = 2

    def work(i: int) -> int:
        if i < len(batches):
            code, step = batches[i]
            reply = award(clients[i], world, items[code], targets[::step], note="大会记分")
            assert reply.status_code == 201, reply.get_json()
            return int(reply.status_code)
        with app.app_context():
            for _ in range(3):
                # As `flask ledger rebuild-counts` does: each in a transaction of its own.
                village_totals.rebuild(db.session, SHANGHAI)
                db.session.commit()
                claims.recount_approvals(db.session)
                db.session.commit()
        return 0

    with frozen(MARCH):
        statuses = together(len(batches) + rebuilds, work)
    assert Counter(statuses) == {201: len(batches), 0: rebuilds}, statuses
    with app.app_context():
        assert village_totals.verify(db.session, SHANGHAI) == []
        assert claims.verify_approvals(db.session) == []
        posted = db.session.scalar(select(func.count()).select_from(LedgerEntry))
    assert posted == 6 * len(batches)
