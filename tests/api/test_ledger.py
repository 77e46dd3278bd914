"""The ledger (积分存折): reversals, the hash chain and `flask ledger verify`, monthly totals,
the periodic reset of spendable points, and a property test of `ledger.append`."""

from __future__ import annotations

import gc
import warnings
from collections import defaultdict
from datetime import datetime, timedelta
from itertools import count
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from backend.extensions import db
from points import ledger
from points.models import (
    Account,
    Household,
    LedgerEntry,
    MemberMonthTotal,
    MonthTotal,
    Villager,
)
from tests.factories import World, add_household, earn_posted, post_due, set_policy
from tests.support.clock import SHANGHAI, frozen, local
from tests.support.reads import account_of, entries_of, error_code

MARCH_10 = local(2026, 3, 10)


def reverse(
    client: FlaskClient,
    world: World,
    user: str | int,
    entry_id: int,
    body: dict[str, Any] | None = None,
) -> Any:
    return client.post(
        f"/api/v1/ledger/{entry_id}/reverse",
        json={"reason": "重复记分"} if body is None else body,
        headers=world.headers(user),
    )


def verify(runner: Any) -> Any:
    return runner.invoke(args=["ledger", "verify"])


def execute(app: Flask, sql: str, **params: Any) -> None:
    with app.app_context():
        db.session.execute(text(sql), params)
        db.session.commit()


def month_totals(app: Flask, household_id: int) -> dict[str, tuple[int, int, int, int]]:
    """month → (score, earned, deducted, expired) for one household."""
    with app.app_context():
        rows = db.session.scalars(select(MonthTotal).where(MonthTotal.household_id == household_id))
        return {r.month: (r.score, r.earned, r.deducted, r.expired) for r in rows}


def member_totals(app: Flask, member_id: int) -> dict[str, int]:
    with app.app_context():
        rows = db.session.scalars(
            select(MemberMonthTotal).where(MemberMonthTotal.member_id == member_id)
        )
        return {r.month: r.score for r in rows}


# ---- reversal (冲正) -------------------------------------------------------------------------


def test_cadre_reverses_a_posted_entry(
    app: Flask, client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> None:
    claim_id = earn_posted(client, runner, world, items["PUB-VOLUNTEER"], 3, MARCH_10)
    [earned] = entries_of(app, world.household_x)
    assert (earned["kind"], earned["amount"], earned["claim_id"]) == ("earn", 6, claim_id)

    with frozen(local(2026, 3, 20)):
        no_reason = reverse(client, world, "cadre_a", earned["id"], {})
        assert no_reason.status_code == 422
        blank = reverse(client, world, "cadre_a", earned["id"], {"reason": ""})
        assert blank.status_code == 422
        by_villager = reverse(client, world, "villager_x", earned["id"])
        assert by_villager.status_code == 403
        assert reverse(client, world, "cadre_b", earned["id"]).status_code == 404
        assert reverse(client, world, "tadmin2", earned["id"]).status_code == 404
        assert reverse(client, world, "villager_y", earned["id"]).status_code == 404
        assert reverse(client, world, "cadre_a", earned["id"] + 1000).status_code == 404
        assert len(entries_of(app, world.household_x)) == 1

        done = reverse(client, world, "cadre_a", earned["id"], {"reason": "志愿时长登记重复"})
        assert done.status_code == 201, done.get_json()
        reversal = done.get_json()
        assert (
            reversal["kind"],
            reversal["amount"],
            reversal["reverses_id"],
            reversal["note"],
            reversal["member_name"],
            reversal["rule_item_name"],
            reversal["month"],
            reversal["created_by"],
        ) == (
            "reverse",
            -6,
            earned["id"],
            "志愿时长登记重复",
            "户主x",
            "志愿服务",
            "2026-03",
            world.cadre_a,
        )

        account = client.get("/api/v1/me/account", headers=world.headers("villager_x"))
        assert account.get_json()["available"] == 0
        assert account.get_json()["earned_total"] == 0  # a reversed award is no score
        passbook = client.get("/api/v1/me/ledger", headers=world.headers("villager_x"))
        assert [(e["kind"], e["amount"]) for e in passbook.get_json()["items"]] == [
            ("reverse", -6),
            ("earn", 6),
        ]

        again = reverse(client, world, "cadre_a", earned["id"])
        assert again.status_code == 409 and error_code(again) == "already_reversed"
        of_reversal = reverse(client, world, "cadre_a", reversal["id"])
        assert of_reversal.status_code == 409 and error_code(of_reversal) == "not_reversible"
        # The township may correct too.
        township = reverse(client, world, "tadmin1", earned["id"])
        assert township.status_code == 409 and error_code(township) == "already_reversed"
    assert [e["kind"] for e in entries_of(app, world.household_x)] == ["earn", "reverse"]
    assert account_of(app, world.household_x)["available"] == 0


def test_expiry_is_not_reversible(
    app: Flask, client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> None:
    earn_posted(client, runner, world, items["PUB-VOLUNTEER"], 3, MARCH_10)
    set_policy(client, world, reset_cycle="quarterly")
    with frozen(local(2026, 3, 20)):  # the village's resets start: 2025-Q4 is recorded
        assert "reset 0 account" in runner.invoke(args=["points", "reset"]).output
    with frozen(local(2026, 4, 1, 0, 5)):
        assert "reset 1 account" in runner.invoke(args=["points", "reset"]).output
    expired = entries_of(app, world.household_x)[-1]
    assert expired["kind"] == "expire"
    with frozen(local(2026, 4, 1)):
        refused = reverse(client, world, "cadre_a", expired["id"])
        assert refused.status_code == 409 and error_code(refused) == "not_reversible"


def test_accounts_and_passbooks_are_seen_within_scope(
    app: Flask, client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> None:
    earn_posted(client, runner, world, items["PUB-VOLUNTEER"], 3, MARCH_10)
    with frozen(local(2026, 3, 20)):
        for path in (
            f"/api/v1/households/{world.household_x}/account",
            f"/api/v1/households/{world.household_x}/ledger",
        ):
            for user in ("villager_y", "cadre_b", "tadmin2"):
                assert client.get(path, headers=world.headers(user)).status_code == 404
            for user in ("villager_x", "cadre_a", "tadmin1", "county"):
                assert client.get(path, headers=world.headers(user)).status_code == 200
        unbound = client.get("/api/v1/me/account", headers=world.headers("unbound"))
        assert unbound.status_code == 403 and error_code(unbound) == "not_bound"
        empty = client.get("/api/v1/me/account", headers=world.headers("villager_y")).get_json()
        assert (empty["available"], empty["held"], empty["earned_total"]) == (0, 0, 0)


# ---- the hash chain and `flask ledger verify` -------------------------------------------


def test_verify_names_a_tampered_entry(
    app: Flask, client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> None:
    earn_posted(client, runner, world, items["PUB-VOLUNTEER"], 3, MARCH_10)
    earn_posted(client, runner, world, items["PUB-VOLUNTEER"], 2, local(2026, 3, 11))
    first, second = entries_of(app, world.household_x)

    clean = verify(runner)
    assert clean.exit_code == 0, clean.output
    assert "OK: 1 accounts, 2 entries verified" in clean.output

    # An amount edited behind the ledger's back.
    execute(app, "UPDATE ledger_entries SET amount = 999 WHERE id = :id", id=first["id"])
    broken = verify(runner)
    assert broken.exit_code != 0
    assert f"entry {first['id']} (seq 1)" in broken.output
    assert "内容与哈希不符" in broken.output
    assert f"entry {second['id']}" not in broken.output  # the first break is named
    execute(
        app,
        "UPDATE ledger_entries SET amount = :amount WHERE id = :id",
        amount=first["amount"],
        id=first["id"],
    )
    assert verify(runner).exit_code == 0

    # A note rewritten: the passbook's wording is signed too.
    execute(app, "UPDATE ledger_entries SET note = '补记' WHERE id = :id", id=second["id"])
    broken = verify(runner)
    assert broken.exit_code != 0
    assert f"entry {second['id']} (seq 2)" in broken.output
    execute(
        app,
        "UPDATE ledger_entries SET note = :note WHERE id = :id",
        note=second["note"],
        id=second["id"],
    )

    # A balance edited without an entry.
    execute(
        app,
        "UPDATE accounts SET available = available + 100 WHERE household_id = :h",
        h=world.household_x,
    )
    broken = verify(runner)
    assert broken.exit_code != 0
    assert f"household {world.household_x}" in broken.output
    execute(
        app,
        "UPDATE accounts SET available = available - 100 WHERE household_id = :h",
        h=world.household_x,
    )

    restored = verify(runner)
    assert restored.exit_code == 0, restored.output
    assert "OK: 1 accounts, 2 entries verified" in restored.output


def test_verify_closes_its_cursor_after_a_break(
    app: Flask, client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> None:
    earn_posted(client, runner, world, items["PUB-VOLUNTEER"], 3, MARCH_10)
    earn_posted(client, runner, world, items["PUB-VOLUNTEER"], 2, local(2026, 3, 11))
    first, _ = entries_of(app, world.household_x)
    execute(app, "UPDATE ledger_entries SET amount = 999 WHERE id = :id", id=first["id"])
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with app.app_context():
                report = ledger.verify_all(db.session)
                db.session.rollback()
            gc.collect()
    finally:
        execute(
            app,
            "UPDATE ledger_entries SET amount = :amount WHERE id = :id",
            amount=first["amount"],
            id=first["id"],
        )
    assert [b.entry_id for b in report.breaks] == [first["id"]]
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_verify_on_an_empty_ledger(app: Flask, runner: Any, world: World) -> None:
    result = verify(runner)
    assert result.exit_code == 0, result.output
    assert "OK: 0 accounts, 0 entries verified" in result.output


# ---- monthly totals ---------------------------------------------------------------------------


def test_month_totals_follow_the_deed_and_reversals_the_month_they_are_made(
    app: Flask, client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> None:
    earn_posted(client, runner, world, items["PUB-VOLUNTEER"], 3, MARCH_10)
    # Half past midnight on 1 April in the village (still 31 March in UTC) is April.
    earn_posted(client, runner, world, items["PUB-VOLUNTEER"], 4, local(2026, 4, 1, 0, 30))
    with frozen(local(2026, 4, 12)):
        assembly = client.post(
            "/api/v1/awards",
            json={
                "rule_item_id": items["GOV-ASSEMBLY"],
                "targets": [{"villager_id": world.spouse_x}],
            },
            headers=world.headers("cadre_a"),
        )
        assert assembly.status_code == 201, assembly.get_json()
    with frozen(local(2026, 4, 17)):
        assert post_due(runner) == 1

    march_entry = entries_of(app, world.household_x)[0]
    assert march_entry["month"] == "2026-03"
    with frozen(local(2026, 5, 5)):
        assert reverse(client, world, "cadre_a", march_entry["id"]).status_code == 201
        account = client.get(
            f"/api/v1/households/{world.household_x}/account", headers=world.headers("cadre_a")
        ).get_json()
        assert (account["available"], account["earned_total"], account["this_month"]) == (
            11,
            11,
            -6,
        )
        april = client.get(
            "/api/v1/me/ledger?month=2026-04", headers=world.headers("villager_x")
        ).get_json()
        assert sorted(e["amount"] for e in april["items"]) == [3, 8]
        bad_month = client.get(
            "/api/v1/me/ledger?month=2026-13", headers=world.headers("villager_x")
        )
        assert bad_month.status_code == 422

    # A published March board is never changed: the reversal shows in May.
    assert month_totals(app, world.household_x) == {
        "2026-03": (6, 6, 0, 0),
        "2026-04": (11, 11, 0, 0),
        "2026-05": (-6, 0, 0, 0),
    }
    assert member_totals(app, world.head_x) == {"2026-03": 6, "2026-04": 8, "2026-05": -6}
    assert member_totals(app, world.spouse_x) == {"2026-04": 3}
    assert [e["member_id"] for e in entries_of(app, world.household_x)] == [
        world.head_x,
        world.head_x,
        world.spouse_x,
        world.head_x,
    ]


# ---- periodic reset (定期清零) --------------------------------------------------------------


def reset(runner: Any) -> int:
    result = runner.invoke(args=["points", "reset"])
    assert result.exit_code == 0, result.output
    return int(result.output.split("reset ")[1].split()[0])


def test_quarterly_reset_expires_spendable_points_once_a_quarter(
    app: Flask, client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> None:
    earn_posted(client, runner, world, items["PUB-VOLUNTEER"], 3, MARCH_10)
    owing = add_household(app, world.village_a, "w户", "户主w")
    with frozen(MARCH_10):
        late = client.post(
            "/api/v1/awards",
            json={
                "rule_item_id": items["GOV-LATE"],
                "note": "村民大会迟到",
                "targets": [{"villager_id": owing["head"]}],
            },
            headers=world.headers("cadre_a"),
        )
        assert late.status_code == 201, late.get_json()
    with frozen(MARCH_10 + timedelta(days=6)):
        assert post_due(runner) == 1
        assert reset(runner) == 0  # the default policy never resets

    assert set_policy(client, world, reset_cycle="quarterly")["reset_cycle"] == "quarterly"
    with frozen(MARCH_10 + timedelta(days=6)):
        assert reset(runner) == 0  # the first run records 2025-Q4, where the resets start
    with frozen(local(2026, 3, 31, 23, 59)):
        assert reset(runner) == 0  # the quarter has not ended
    with frozen(local(2026, 4, 1, 0, 30)):
        assert reset(runner) == 1
        assert reset(runner) == 0  # the same quarter: nothing more
    with frozen(local(2026, 4, 1, 23, 59)):
        assert reset(runner) == 0
    lines = entries_of(app, world.household_x)
    assert [(e["kind"], e["amount"]) for e in lines] == [("earn", 6), ("expire", -6)]
    assert "2026-Q1" in lines[-1]["note"]
    assert account_of(app, world.household_x) | {"entries": 0} == {
        "available": 0,
        "held": 0,
        "earned_total": 6,
        "entries": 0,
    }
    # A negative balance is not "reset" upwards.
    assert account_of(app, owing["household"])["available"] == -1
    assert [e["kind"] for e in entries_of(app, owing["household"])] == ["deduct"]
    assert month_totals(app, world.household_x)["2026-03"] == (6, 6, 0, -6)

    earn_posted(client, runner, world, items["PUB-VOLUNTEER"], 2, local(2026, 4, 10))
    assert account_of(app, world.household_x)["available"] == 4
    with frozen(local(2026, 7, 1, 0, 30)):
        assert reset(runner) == 1
        assert reset(runner) == 0
    assert account_of(app, world.household_x)["available"] == 0
    assert account_of(app, world.household_x)["earned_total"] == 10
    assert [e["amount"] for e in entries_of(app, world.household_x)] == [6, -6, 4, -4]


# ---- a property of ledger.append ----------------------------------------------------------

SIGNED = {"earn": 1, "deduct": -1, "redeem": -1, "expire": -1}
MOVES = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(sorted(SIGNED)), st.integers(1, 500), st.integers(0, 400)),
        st.tuples(st.just("adjust"), st.integers(-500, 500).filter(bool), st.integers(0, 400)),
        st.tuples(st.just("reverse"), st.integers(0, 50), st.just(0)),
    ),
    max_size=20,
)
BASE = datetime(2026, 1, 1, 0, 0, tzinfo=SHANGHAI)
_households = count(1)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(moves=MOVES)
def test_balance_chain_and_totals_hold_for_any_sequence(
    app: Flask, world: World, moves: list[tuple[str, int, int]]
) -> None:
    with app.app_context():
        session = db.session
        household = Household(village_id=world.village_a, name=f"p{next(_households)}户")
        session.add(household)
        session.flush()
        member = Villager(household_id=household.id, name="户主p", relation="户主")
        session.add(member)
        session.commit()

        appended: list[LedgerEntry] = []
        for kind, value, hours in moves:
            if kind == "reverse":
                open_entries = [
                    e
                    for e in appended
                    if e.kind in ledger.REVERSIBLE_KINDS
                    and not any(r.reverses_id == e.id for r in appended)
                ]
                if not open_entries:
                    continue
                target = open_entries[value % len(open_entries)]
                entry = ledger.reverse(
                    session, target, reason="冲正", created_by=world.cadre_a, tz=SHANGHAI
                )
            else:
                amount = value * SIGNED.get(kind, 1)
                at = BASE + timedelta(hours=hours * 23)
                entry = ledger.append(
                    session,
                    household_id=household.id,
                    kind=kind,
                    amount=amount,
                    when=ledger.EntryTime(SHANGHAI, at=at),
                    origin=ledger.EntryOrigin(member_id=member.id, note=f"{kind} {amount}"),
                )
                assert entry.month == at.astimezone(SHANGHAI).strftime("%Y-%m")
            appended.append(entry)
            session.commit()

        account = session.scalar(select(Account).where(Account.household_id == household.id))
        stored = (
            list(
                session.scalars(
                    select(LedgerEntry)
                    .where(LedgerEntry.account_id == account.id)
                    .order_by(LedgerEntry.seq)
                )
            )
            if account is not None
            else []
        )
        assert [e.id for e in stored] == [e.id for e in appended]
        assert [e.seq for e in stored] == list(range(1, len(stored) + 1))
        if account is None:
            return
        amounts = [e.amount for e in stored]
        assert account.available + account.held == sum(amounts)
        assert account.held == 0
        assert account.available == sum(amounts)

        by_id = {e.id: e for e in stored}
        scores = [
            e
            for e in stored
            if e.kind in ledger.SCORE_KINDS
            or (e.kind == "reverse" and by_id[e.reverses_id].kind in ledger.SCORE_KINDS)
        ]
        assert account.earned_total == sum(e.amount for e in scores)

        expected: dict[str, int] = defaultdict(int)
        for e in scores:
            expected[e.month] += e.amount
        household_months = {
            r.month: r.score
            for r in session.scalars(select(MonthTotal).where(MonthTotal.account_id == account.id))
        }
        assert {m: s for m, s in household_months.items() if s} == {
            m: s for m, s in expected.items() if s
        }
        member_months = {
            r.month: r.score
            for r in session.scalars(
                select(MemberMonthTotal).where(MemberMonthTotal.member_id == member.id)
            )
        }
        assert {m: s for m, s in member_months.items() if s} == {
            m: s for m, s in expected.items() if s
        }

        checked, problem = ledger.verify_account(session, account)
        assert problem is None
        assert checked == len(stored)
        session.rollback()
