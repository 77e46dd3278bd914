"""Concurrency, with real threads against the real app (docs/DESIGN.md, The ledger: a
concurrency claim is proven on PostgreSQL, not only SQLite).

Every thread gets its own test client, or its own app context and so its own session; all
start together behind a barrier and are joined with a timeout. No app context is open in the
test's own thread while the threads run, and the database is checked afterwards in a fresh
one. The autouse check in conftest then verifies every account's balance and hash chain.

SQLite serialises writers (BEGIN IMMEDIATE), so it proves little about races; one test runs
there anyway, to show that queued writers wait rather than hand a client "database is
locked"."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import time_machine
from flask import Flask
from sqlalchemy import func, select

import rules
from backend.clock import now as clock_now
from backend.clock import village_tz
from backend.extensions import db
from points import budget, catalogs, claims, ledger
from points.models import (
    Account,
    Claim,
    ClaimApproval,
    Household,
    IdempotencyKey,
    LedgerEntry,
    MemberMonthTotal,
    MonthTotal,
    User,
    Villager,
)
from points.scope import Actor
from tests.factories import World, add_household
from tests.support.concurrency import (
    JOIN_TIMEOUT,
    Reply,
    assert_no_server_errors,
    on_postgres,
    post_together,
    together,
)
from tests.support.reads import issued

API = "/api/v1"


# ---- helpers: setup (each opens and closes its own app context) -----------------------------


def install_default_catalog(app: Flask, world: World) -> dict[str, int]:
    """The reference 积分细则 for township 1; item ids by code, as village A sees them."""
    with app.app_context():
        catalogs.install_catalog(db.session, None, world.township_1, rules.load_default_catalog())
        db.session.commit()
        return {
            item.code: item.id for item in catalogs.effective_items(db.session, world.village_a)
        }


def set_township_policy(app: Flask, world: World, **changes: Any) -> None:
    with app.app_context():
        catalog = catalogs.township_catalog(db.session, world.township_1)
        assert catalog is not None
        admin = db.session.get(User, world.tadmin1)
        assert admin is not None
        catalogs.set_policy(db.session, Actor.of(db.session, admin), catalog.id, changes)
        db.session.commit()


def submit_pending_claim(app: Flask, world: World, item_id: int, units: int = 2) -> int:
    """A villager's self-report that needs review: a pending claim for household x."""
    response = app.test_client().post(
        f"{API}/claims",
        headers=world.headers("villager_x"),
        json={"rule_item_id": item_id, "units": units},
    )
    assert response.status_code == 201, response.get_json()
    claim = response.get_json()
    assert claim["status"] == "pending"
    return claim["id"]


def add_cadres(app: Flask, world: World, n: int) -> list[int]:
    """n more cadres of village A (none of them on the roster, so none approves for their own
    household)."""
    with app.app_context():
        users = [
            User(
                username=f"cadre_extra_{i}",
                password_hash="unused",
                role="cadre",
                township_id=world.township_1,
                village_id=world.village_a,
                name=f"网格员{i}",
            )
            for i in range(n)
        ]
        db.session.add_all(users)
        db.session.commit()
        return [u.id for u in users]


def add_members(app: Flask, world: World, households: int, per_household: int) -> list[int]:
    """Households of village A with several members each; the members' ids."""
    relations = ["户主", "配偶", "子女", "父母", "其他"]
    assert per_household <= len(relations)
    with app.app_context():
        members = []
        for h in range(households):
            household = Household(
                village_id=world.village_a,
                group_id=world.group_x,
                name=f"新{h}户",
                address=f"清水村新{h}号",
            )
            db.session.add(household)
            db.session.flush()
            for m in range(per_household):
                member = Villager(
                    household_id=household.id, name=f"村民{h}-{m}", relation=relations[m]
                )
                db.session.add(member)
                members.append(member)
        db.session.commit()
        return [m.id for m in members]


# ---- 1. approvals ---------------------------------------------------------------------------


@on_postgres
def test_fifty_approvals_by_one_cadre_record_one_approval(app: Flask, world: World) -> None:
    items = install_default_catalog(app, world)
    claim_id = submit_pending_claim(app, world, items["PUB-VOLUNTEER"])
    headers = world.headers("cadre_a")

    replies = post_together(app, 50, f"{API}/claims/{claim_id}/approve", lambda _: headers)

    assert_no_server_errors(replies)
    statuses = Counter(r.status for r in replies)
    assert statuses == {200: 1, 409: 49}, statuses
    assert {r.code for r in replies if r.status == 409} <= {"already_approved", "claim_not_pending"}
    with app.app_context():
        approvals = db.session.scalar(
            select(func.count())
            .select_from(ClaimApproval)
            .where(ClaimApproval.claim_id == claim_id)
        )
        claim = db.session.get(Claim, claim_id)
        assert claim is not None
        assert approvals == 1
        # Default policy: 5 days of 公示 before it counts, so nothing is posted yet.
        assert claim.status == "in_notice"
        assert db.session.scalar(select(func.count()).select_from(LedgerEntry)) == 0


@on_postgres
def test_fifty_cadres_approving_at_once_post_the_claim_once(app: Flask, world: World) -> None:
    items = install_default_catalog(app, world)
    set_township_policy(app, world, notice_days=0)  # approval posts at once
    claim_id = submit_pending_claim(app, world, items["PUB-VOLUNTEER"], units=2)
    cadres = add_cadres(app, world, 50)
    headers = [world.headers(user_id) for user_id in cadres]

    replies = post_together(app, 50, f"{API}/claims/{claim_id}/approve", lambda i: headers[i])

    assert_no_server_errors(replies)
    statuses = Counter(r.status for r in replies)
    assert statuses == {200: 1, 409: 49}, statuses
    assert {r.code for r in replies if r.status == 409} <= {"already_approved", "claim_not_pending"}
    winner = next(r for r in replies if r.status == 200)
    assert winner.body["status"] == "posted"
    with app.app_context():
        claim = db.session.get(Claim, claim_id)
        assert claim is not None
        assert claim.status == "posted" and claim.points == 4
        entries = db.session.scalars(
            select(LedgerEntry).where(LedgerEntry.claim_id == claim_id)
        ).all()
        assert len(entries) == 1 and entries[0].amount == 4
        account = db.session.scalar(
            select(Account).where(Account.household_id == world.household_x)
        )
        assert account is not None
        assert (account.available, account.held, account.entry_count) == (4, 0, 1)
        assert (
            db.session.scalar(
                select(func.count())
                .select_from(ClaimApproval)
                .where(ClaimApproval.claim_id == claim_id)
            )
            == 1
        )


# ---- 2. post-due runs ---------------------------------------------------------------------


@on_postgres
def test_two_post_due_runs_at_once_post_each_claim_once(app: Flask, world: World) -> None:
    items = install_default_catalog(app, world)
    members = add_members(app, world, households=10, per_household=3)
    response = app.test_client().post(
        f"{API}/awards",
        headers=world.headers("cadre_a"),
        json={
            "rule_item_id": items["PUB-VOLUNTEER"],
            "units": 1,
            "targets": [{"villager_id": m} for m in members],
        },
    )
    assert response.status_code == 201, response.get_json()
    awarded = response.get_json()
    assert len(awarded) == 30 and {c["status"] for c in awarded} == {"in_notice"}
    claim_ids = sorted(c["id"] for c in awarded)
    notice_ends = max(datetime.fromisoformat(c["notice_ends_at"]) for c in awarded)

    def run(_: int) -> tuple[int, datetime]:
        with app.app_context():
            seen = clock_now()
            return claims.post_due(db.session, seen, village_tz()), seen

    # time_machine patches the clock process-wide, so threads started inside see it too.
    with time_machine.travel(notice_ends + timedelta(days=1), tick=True):
        runs = together(2, run)

    assert all(seen > notice_ends for _, seen in runs), runs
    assert sum(posted for posted, _ in runs) == 30, runs
    with app.app_context():
        statuses = Counter(db.session.scalars(select(Claim.status).where(Claim.id.in_(claim_ids))))
        assert statuses == {"posted": 30}
        per_claim = dict(
            db.session.execute(
                select(LedgerEntry.claim_id, func.count())
                .where(LedgerEntry.claim_id.is_not(None))
                .group_by(LedgerEntry.claim_id)
            ).all()
        )
        assert per_claim == {claim_id: 1 for claim_id in claim_ids}
        # Ten households, three members each at 2 points.
        balances = db.session.scalars(
            select(Account.available).where(Account.village_id == world.village_a)
        ).all()
        assert sorted(balances) == [6] * 10


# ---- 3. idempotent retries ------------------------------------------------------------------


def _claim_count(app: Flask, household_id: int) -> int:
    with app.app_context():
        return (
            db.session.scalar(
                select(func.count()).select_from(Claim).where(Claim.household_id == household_id)
            )
            or 0
        )


def _assert_one_claim_many_replays(app: Flask, world: World, replies: list[Reply]) -> None:
    assert_no_server_errors(replies)
    assert {r.status for r in replies} == {201}, Counter(r.code for r in replies)
    assert len({r.body["id"] for r in replies}) == 1
    assert [r.replayed for r in replies].count(False) == 1
    assert _claim_count(app, world.household_x) == 1
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(IdempotencyKey)) == 1


@on_postgres
def test_fifty_retries_with_one_key_create_one_claim(app: Flask, world: World) -> None:
    items = install_default_catalog(app, world)
    headers = {**world.headers("villager_x"), "Idempotency-Key": "submit-volunteer-1"}
    body = {"rule_item_id": items["PUB-VOLUNTEER"], "units": 2}

    replies = post_together(app, 50, f"{API}/claims", lambda _: headers, lambda _: body)

    _assert_one_claim_many_replays(app, world, replies)


@on_postgres
def test_fifty_retries_with_one_key_and_two_bodies(app: Flask, world: World) -> None:
    items = install_default_catalog(app, world)
    headers = {**world.headers("villager_x"), "Idempotency-Key": "submit-volunteer-2"}
    bodies = [
        {"rule_item_id": items["PUB-VOLUNTEER"], "units": 2},
        {"rule_item_id": items["PUB-VOLUNTEER"], "units": 3},
    ]

    replies = post_together(app, 50, f"{API}/claims", lambda _: headers, lambda i: bodies[i % 2])

    assert_no_server_errors(replies)
    assert _claim_count(app, world.household_x) == 1
    first = [r for r in replies if r.status == 201 and not r.replayed]
    assert len(first) == 1
    units = first[0].body["units"]
    claim_id = first[0].body["id"]
    # Whoever won decides: the same body replays, the other is refused.
    for i, reply in enumerate(replies):
        if bodies[i % 2]["units"] == units:
            assert reply.status == 201 and reply.body["id"] == claim_id, reply
        else:
            assert reply.status == 409 and reply.code == "idempotency_conflict", reply
    with app.app_context():
        claim = db.session.get(Claim, claim_id)
        assert claim is not None and claim.units == units


def test_retries_with_one_key_queue_on_sqlite_too(app: Flask, world: World) -> None:
    """Also on SQLite: writers wait for the write lock (BEGIN IMMEDIATE, busy timeout)
    instead of reaching a client as "database is locked"."""
    items = install_default_catalog(app, world)
    headers = {**world.headers("villager_x"), "Idempotency-Key": "submit-volunteer-3"}
    body = {"rule_item_id": items["PUB-VOLUNTEER"], "units": 2}

    replies = post_together(app, 8, f"{API}/claims", lambda _: headers, lambda _: body)

    _assert_one_claim_many_replays(app, world, replies)


# ---- 4. ledger appends --------------------------------------------------------------------


@on_postgres
def test_thirty_appends_to_one_household_chain_without_gaps(app: Flask, world: World) -> None:
    # No account yet: the first appends also race to create it.
    def append(i: int) -> int:
        with app.app_context():
            entry = ledger.append(
                db.session,
                household_id=world.household_x,
                kind="earn",
                amount=i + 1,
                when=ledger.EntryTime(village_tz()),
                origin=ledger.EntryOrigin(member_id=world.head_x, note=f"并发测试 {i}"),
            )
            db.session.commit()
            return entry.seq

    seqs = together(30, append)

    total = sum(range(1, 31))
    assert sorted(seqs) == list(range(1, 31))
    with app.app_context():
        account = db.session.scalar(
            select(Account).where(Account.household_id == world.household_x)
        )
        assert account is not None
        assert (account.available, account.held, account.earned_total) == (total, 0, total)
        assert account.entry_count == 30
        assert ledger.sum_entries(db.session, account.id) == total
        stored = db.session.scalars(
            select(LedgerEntry.seq)
            .where(LedgerEntry.account_id == account.id)
            .order_by(LedgerEntry.seq)
        ).all()
        assert stored == list(range(1, 31))
        report = ledger.verify_all(db.session)
        assert report.breaks == [] and report.entries == 30
        # Monthly totals match the entries month by month (a run across midnight at the end
        # of a month splits them).
        by_month: Counter[str] = Counter()
        for month, amount in db.session.execute(
            select(LedgerEntry.month, LedgerEntry.amount).where(
                LedgerEntry.account_id == account.id
            )
        ):
            by_month[month] += amount
        totals = db.session.scalars(
            select(MonthTotal).where(MonthTotal.account_id == account.id)
        ).all()
        assert {t.month: (t.score, t.earned) for t in totals} == {
            month: (amount, amount) for month, amount in by_month.items()
        }
        members = db.session.scalars(
            select(MemberMonthTotal).where(MemberMonthTotal.member_id == world.head_x)
        ).all()
        assert {t.month: t.score for t in members} == dict(by_month)
        assert sum(by_month.values()) == total


# ---- 5. award batches that cross ------------------------------------------------------------


@on_postgres
def test_award_batches_naming_households_in_different_orders_do_not_deadlock(
    app: Flask, world: World
) -> None:
    """Items that post at once (no notice) lock each target's account as its claim posts.
    Batches naming the same households in different orders, at once, must all post: found by
    bench/crash.py's reasoning — crossing batches deadlocked, and PostgreSQL answered one of
    them with a 500."""
    items = install_default_catalog(app, world)
    set_township_policy(app, world, notice_days=0)
    households, per_household = 4, 5
    members = add_members(app, world, households=households, per_household=per_household)
    codes = ["GOV-ASSEMBLY", "GOV-DELIBERATE", "GOV-ONTIME", "GOV-NIGHTSCHOOL", "IND-TRAINING"]
    with app.app_context():
        points = {
            item.id: item.current_version.rule.points  # type: ignore[union-attr]
            for item in catalogs.effective_items(db.session, world.village_a)
        }

    def targets(thread: int) -> list[dict[str, int]]:
        # Member `thread` of every household (each member's day cap allows one per item),
        # the households rotated, and reversed for every other thread.
        order = [(thread + h) % households for h in range(households)]
        if thread % 2:
            order.reverse()
        return [{"villager_id": members[h * per_household + thread]} for h in order]

    replies: list[Reply] = []
    for code in codes:
        replies += post_together(
            app,
            per_household,
            f"{API}/awards",
            lambda _: world.headers("cadre_a"),
            lambda i, code=code: {"rule_item_id": items[code], "targets": targets(i)},
        )

    assert_no_server_errors(replies)
    assert {r.status for r in replies} == {201}, Counter(r.code for r in replies)
    for reply in replies:
        assert [c["status"] for c in reply.body] == ["posted"] * households
    with app.app_context():
        earned = dict(
            db.session.execute(
                select(LedgerEntry.member_id, func.sum(LedgerEntry.amount))
                .where(LedgerEntry.member_id.in_(members))
                .group_by(LedgerEntry.member_id)
            ).all()
        )
    each = sum(points[items[code]] for code in codes)
    assert earned == {member: each for member in members}


@on_postgres
def test_township_award_batches_across_villages_do_not_deadlock(app: Flask, world: World) -> None:
    """Each award counts against its village's monthly budget row, locked until the commit.
    A township's batch may name households of several villages: taken in village order,
    two batches whose households interleave villages queue instead of each holding one
    village's row and waiting for the other's."""
    items = install_default_catalog(app, world)
    threads = 6
    with app.app_context():
        heads: list[list[int]] = []
        for thread in range(threads):
            # Even threads' households: village A's first; odd threads': village B's first.
            villages = [world.village_a, world.village_b]
            if thread % 2:
                villages.reverse()
            pair = []
            for village_id in villages:
                household = Household(village_id=village_id, name=f"跨村{thread}-{village_id}")
                db.session.add(household)
                db.session.flush()
                head = Villager(
                    household_id=household.id, name=f"户主{thread}-{village_id}", relation="户主"
                )
                db.session.add(head)
                db.session.flush()
                pair.append(head.id)
            heads.append(pair)
        db.session.commit()

    replies: list[Reply] = []
    for code in ("GOV-ASSEMBLY", "GOV-DELIBERATE", "GOV-ONTIME"):
        replies += post_together(
            app,
            threads,
            f"{API}/awards",
            lambda _: world.headers("tadmin1"),
            lambda i, code=code: {
                "rule_item_id": items[code],
                "targets": [{"villager_id": v} for v in heads[i]],
            },
        )

    assert_no_server_errors(replies)
    assert {r.status for r in replies} == {201}, Counter(r.code for r in replies)
    with app.app_context():
        assert budget.verify_issued(db.session, village_tz()) == []


@on_postgres
def test_a_village_without_a_budget_does_not_queue_its_awards_behind_each_other(
    app: Flask, world: World
) -> None:
    """Without a monthly budget nothing is decided on the village's counter, so an award adds
    to it as it commits: a cadre's award open in one transaction must not hold up another
    household's award in the same village (each used to wait for the one before it to
    commit). Both count once the first commits. (The default catalog has a budget: a
    budgeted village's awards still queue, as they must, to decide on the same total.)"""
    items = install_default_catalog(app, world)
    set_township_policy(app, world, notice_days=0, monthly_budget=None)
    other = add_household(app, world.village_a, "不排队户", "不排队户主")["household"]
    awarded, release = threading.Event(), threading.Event()

    def open_award() -> None:
        with app.app_context():
            cadre = db.session.get(User, world.cadre_a)
            assert cadre is not None
            claims.award(
                db.session,
                Actor.of(db.session, cadre),
                rule_item_id=items["GOV-ASSEMBLY"],
                units=None,
                note=None,
                evidence=[],
                targets=[{"household_id": world.household_x}],
                tz=village_tz(),
                now=clock_now(),
            )
            db.session.flush()
            awarded.set()
            assert release.wait(JOIN_TIMEOUT)
            db.session.commit()

    first = threading.Thread(target=open_award, daemon=True)
    first.start()
    try:
        assert awarded.wait(30), "the first award did not reach its commit"
        [reply] = together(
            1,
            lambda _: app.test_client().post(
                f"{API}/awards",
                headers=world.headers("cadre_a"),
                json={"rule_item_id": items["GOV-ASSEMBLY"], "targets": [{"household_id": other}]},
            ),
            timeout=10,
        )
        assert reply.status_code == 201, reply.get_json()
    finally:
        release.set()
        first.join(JOIN_TIMEOUT)
    assert not first.is_alive()
    with app.app_context():
        assert budget.verify_issued(db.session, village_tz()) == []
        counted = db.session.scalars(
            select(Claim.points).where(Claim.household_id.in_([world.household_x, other]))
        ).all()
    assert len(counted) == 2
    assert list(issued(app).values()) == [sum(counted)]


@on_postgres
def test_reversals_and_awards_of_one_household_at_once_do_not_deadlock(
    app: Flask, world: World
) -> None:
    """In a village without a budget both an award and a reversal change the counter as
    they commit, after the household's account; taking it before the account (as a
    budgeted village's reversal does) could deadlock with an award of the same household
    holding the account. Each round reverses a household's award while awarding it again."""
    items = install_default_catalog(app, world)
    set_township_policy(app, world, notice_days=0, monthly_budget=None)
    headers = world.headers("cadre_a")
    rounds = 6
    households = [
        add_household(app, world.village_a, f"冲正{n}户", f"冲正户主{n}")["household"]
        for n in range(rounds)
    ]

    def award(client: Any, code: str, household_id: int) -> Any:
        return client.post(
            f"{API}/awards",
            headers=headers,
            json={"rule_item_id": items[code], "targets": [{"household_id": household_id}]},
        )

    replies: list[Reply] = []
    for household_id in households:
        first = award(app.test_client(), "GOV-ASSEMBLY", household_id)
        assert first.status_code == 201, first.get_json()
        with app.app_context():
            entry_id = db.session.scalar(
                select(LedgerEntry.id).where(LedgerEntry.claim_id == first.get_json()[0]["id"])
            )

        def send(i: int, entry_id: Any = entry_id, household_id: int = household_id) -> Reply:
            client = app.test_client()  # each thread its own, and so its own session
            if i == 0:
                response = client.post(
                    f"{API}/ledger/{entry_id}/reverse", headers=headers, json={"reason": "录错"}
                )
            else:
                response = award(client, "GOV-DELIBERATE", household_id)
            return Reply(response.status_code, response.get_json(), False)

        replies += together(2, send)

    assert_no_server_errors(replies)
    assert {r.status for r in replies} == {201}, Counter(r.code for r in replies)
    with app.app_context():
        assert budget.verify_issued(db.session, village_tz()) == []
        deliberate = db.session.scalar(
            select(func.sum(Claim.points)).where(
                Claim.household_id.in_(households), Claim.rule_item_id == items["GOV-DELIBERATE"]
            )
        )
    assert list(issued(app).values()) == [deliberate]
