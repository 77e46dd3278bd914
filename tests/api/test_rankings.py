"""Rankings (GET /api/v1/rankings): equal to a brute-force count of the ledger for random
data, ties sharing a rank (1, 2, 2, 4), veto-barred households left out but shown their own
place, privacy on public views, and who may see which ranking."""

from __future__ import annotations

from collections import defaultdict
from itertools import count
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from backend.extensions import db
from points import ledger
from points.boards import standings
from points.boards.privacy import mask_name
from points.boards.standings import TIE_RULE, parse_period
from points.models import (
    Account,
    Household,
    HouseholdFlag,
    LedgerEntry,
    Township,
    Village,
    Villager,
    VillagerGroup,
)
from points.scope import COUNTY, Actor
from tests.factories import World, add_household, bar, bind_user, earn
from tests.support.clock import SHANGHAI, local
from tests.support.reads import error_code


def rankings(client: FlaskClient, headers: dict[str, str], **params: Any) -> Any:
    return client.get("/api/v1/rankings", query_string=params, headers=headers)


# ---- the property: the endpoint equals a brute-force count of the ledger ---------------------

_townships = count(1)
AMOUNTS = st.sampled_from([1, 2, 3, 5])  # few distinct values: ties are common
HOUSEHOLDS = st.lists(
    st.tuples(st.integers(0, 1), st.integers(0, 1), st.integers(1, 3), st.booleans()),
    min_size=1,
    max_size=7,
)
ENTRIES = st.lists(
    st.tuples(
        st.integers(0, 6),
        st.integers(0, 2),
        st.sampled_from(["earn", "earn", "deduct", "adjust", "redeem"]),
        AMOUNTS,
        st.integers(1, 6),
    ),
    max_size=30,
)
REVERSALS = st.lists(st.tuples(st.integers(0, 29), st.integers(0, 3)), max_size=6)
FLAGS = st.lists(st.tuples(st.integers(0, 6), st.integers(1, 6), st.integers(0, 2)), max_size=2)
PERIODS = st.tuples(st.integers(1, 6), st.integers(1, 2))


def _seed_county(
    app: Flask,
    households: list[tuple[int, int, int, bool]],
    entries: list[tuple[int, int, str, int, int]],
    reversals: list[tuple[int, int]],
    flags: list[tuple[int, int, int]],
) -> dict[str, Any]:
    """A fresh township with two villages of two groups each, the households, their entries
    (months 2026-01..06), reversals of some of them in a later month, and veto flags."""
    n = next(_townships)
    with app.app_context():
        s = db.session
        township = Township(name=f"性质镇{n}")
        s.add(township)
        s.flush()
        villages = [Village(township_id=township.id, name=f"性质{n}村{v}") for v in range(2)]
        s.add_all(villages)
        s.flush()
        groups = [
            [VillagerGroup(village_id=v.id, name=f"第{g + 1}组") for g in range(2)]
            for v in villages
        ]
        s.add_all([g for pair in groups for g in pair])
        s.flush()
        made: list[tuple[int, list[int]]] = []
        for k, (village, group, members, opted_out) in enumerate(households):
            h = Household(
                village_id=villages[village].id,
                group_id=groups[village][group].id,
                name=f"性质户{k}",
                public_board_opt_out=opted_out,
            )
            s.add(h)
            s.flush()
            people = [
                Villager(
                    household_id=h.id,
                    name=f"成员{k}{m}",
                    relation="户主" if m == 0 else "子女",
                    active=m != 2,
                )  # a third member has moved away
                for m in range(members)
            ]
            s.add_all(people)
            s.flush()
            made.append((h.id, [p.id for p in people]))
        s.commit()

        appended: list[LedgerEntry] = []
        for who, member, kind, amount, month in entries:
            hid, people = made[who % len(made)]
            signed = -amount if kind in ("deduct", "redeem") else amount
            if kind == "adjust" and month % 2:
                signed = -amount
            appended.append(
                ledger.append(
                    s,
                    household_id=hid,
                    kind=kind,
                    amount=signed,
                    when=ledger.EntryTime(SHANGHAI, at=local(2026, month, 10 + member)),
                    origin=ledger.EntryOrigin(member_id=people[member % len(people)]),
                )
            )
            s.commit()
        done: set[int] = set()
        for index, later in reversals:
            if not appended:
                break
            target = appended[index % len(appended)]
            if target.kind not in ledger.REVERSIBLE_KINDS or target.id in done:
                continue
            done.add(target.id)
            month = min(6, int(target.month[5:]) + later)
            account = s.get(Account, target.account_id)
            assert account is not None
            ledger.append(
                s,
                household_id=account.household_id,
                kind="reverse",
                amount=-target.amount,
                when=ledger.EntryTime(SHANGHAI, at=local(2026, month, 25)),
                origin=ledger.EntryOrigin(
                    member_id=target.member_id, reverses_id=target.id, note="冲正"
                ),
            )
            s.commit()
        for who, first, span in flags:
            hid, _ = made[who % len(made)]
            s.add(
                HouseholdFlag(
                    household_id=hid,
                    kind="veto",
                    from_month=f"2026-{first:02d}",
                    until_month=f"2026-{min(12, first + span):02d}",
                )
            )
        s.commit()
        return {
            "township": township.id,
            "villages": [v.id for v in villages],
            "group": groups[0][0].id,
        }


def _brute_force(
    app: Flask, ids: dict[str, Any], scope: str, period: str, by: str
) -> list[tuple[int, int, int]]:
    """(rank, id, points) recomputed from ledger_entries and the registry alone."""
    return _brute_force_all(app, ids, scope, period, by)[0]


def _brute_force_all(
    app: Flask, ids: dict[str, Any], scope: str, period: str, by: str
) -> tuple[list[tuple[int, int, int]], dict[int, int]]:
    """The ranked (rank, id, points), and the points of every subject of the scope, barred
    ones included."""
    months = set(parse_period(period).months)
    with app.app_context():
        s = db.session
        households = s.scalars(
            select(Household).where(Household.village_id.in_(ids["villages"]))
        ).all()
        if scope == "village":
            households = [h for h in households if h.village_id == ids["villages"][0]]
        elif scope == "group":
            households = [h for h in households if h.group_id == ids["group"]]
        in_scope = {h.id for h in households}
        barred = {
            f.household_id
            for f in s.scalars(select(HouseholdFlag))
            if f.household_id in in_scope
            and f.from_month <= max(months)
            and f.until_month >= min(months)
        }
        entries = s.execute(
            select(LedgerEntry, Account.household_id)
            .join(Account)
            .where(Account.household_id.in_(in_scope))
        ).all()
        by_id = {e.id: e for e, _ in entries}
        points: dict[int, int] = defaultdict(int)
        touched: set[int] = set()
        for e, hid in entries:
            # An opening balance (adjust, 期初结转) is never ranked, nor is its reversal.
            counts = e.kind in ("earn", "deduct") or (
                e.kind == "reverse" and by_id[e.reverses_id].kind in ("earn", "deduct")
            )
            if not counts or e.month not in months:
                continue
            subject = hid if by == "household" else e.member_id
            points[subject] += e.amount
            touched.add(subject)
        if by == "household":
            subjects = [(h.id, h.id) for h in households]
        else:
            people = s.scalars(select(Villager).where(Villager.household_id.in_(in_scope))).all()
            subjects = [(p.id, p.household_id) for p in people if p.active or p.id in touched]
    ranked = sorted(((-points[sid], sid) for sid, hid in subjects if hid not in barred))
    out, previous, rank = [], None, 0
    for position, (negative, sid) in enumerate(ranked, 1):
        if negative != previous:
            rank, previous = position, negative
        out.append((rank, sid, -negative))
    return out, {sid: points[sid] for sid, _ in subjects}


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(households=HOUSEHOLDS, entries=ENTRIES, reversals=REVERSALS, flags=FLAGS, periods=PERIODS)
def test_rankings_equal_a_brute_force_count_of_the_ledger(
    app: Flask,
    client: FlaskClient,
    world: World,
    households: list[tuple[int, int, int, bool]],
    entries: list[tuple[int, int, str, int, int]],
    reversals: list[tuple[int, int]],
    flags: list[tuple[int, int, int]],
    periods: tuple[int, int],
) -> None:
    ids = _seed_county(app, households, entries, reversals, flags)
    headers = world.headers("county")
    month, quarter = periods
    for period in (f"2026-{month:02d}", f"2026-Q{quarter}", "2026"):
        for scope, params in (
            ("village", {"village_id": ids["villages"][0]}),
            ("group", {"group_id": ids["group"]}),
            ("township", {"township_id": ids["township"]}),
        ):
            for by in ("household", "member"):
                response = rankings(client, headers, period=period, by=by, limit=1000, **params)
                assert response.status_code == 200, response.get_json()
                body = response.get_json()
                key = "household_id" if by == "household" else "villager_id"
                got = [(row["rank"], row[key], row["points"]) for row in body["items"]]
                assert got == _brute_force(app, ids, scope, period, by), (scope, period, by)
                assert body["total"] == len(got)
                assert body["tie_rule"] == TIE_RULE
    _check_first_rows_and_own_places(app, ids, f"2026-{month:02d}")


def _check_first_rows_and_own_places(app: Flask, ids: dict[str, Any], period: str) -> None:
    """The first rows of a short list and each subject's own place (barred ones included)
    against the brute force: the database ranks and cuts the list, so both are its work."""
    for kind in ("village", "group", "township"):
        scope_id = ids["villages"][0] if kind == "village" else ids[kind]
        for by in ("household", "member"):
            ranked, points = _brute_force_all(app, ids, kind, period, by)
            with app.app_context():
                actor = Actor(user_id=0, role=COUNTY)
                scope = standings.resolve_scope(db.session, actor, **{f"{kind}_id": scope_id})
                for own, own_points in points.items():
                    own_ids = (
                        {"own_household_id": own} if by == "household" else {"own_villager_id": own}
                    )
                    result = standings.ranking(
                        db.session, scope, parse_period(period), by=by, limit=2, **own_ids
                    )
                    got = [(s.rank, s.id, s.points) for s in result.items]
                    assert got == ranked[:2], (kind, by)
                    assert result.total == len(ranked)
                    assert result.mine is not None
                    assert result.mine["points"] == own_points
                    assert result.mine["rank"] == 1 + sum(1 for r in ranked if r[2] > own_points)
                    assert result.mine["barred"] == all(r[1] != own for r in ranked)
                    assert result.mine["total"] == len(ranked)
                db.session.rollback()


# ---- ties, barred households and the villager's own view ------------------------------------


def test_ties_share_a_rank_and_the_next_rank_is_skipped(
    app: Flask, client: FlaskClient, world: World
) -> None:
    march = local(2026, 3, 10)
    b = add_household(app, world.village_a, "b户", "李四")
    c = add_household(app, world.village_a, "c户", "王五")
    d = add_household(app, world.village_a, "d户", "赵六")
    for hid, amount in (
        (world.household_x, 10),
        (b["household"], 8),
        (c["household"], 8),
        (d["household"], 5),
    ):
        earn(app, hid, amount, march)
    earn(app, world.household_y, 50, march)  # village B: not in village A's ranking

    body = rankings(
        client, world.headers("cadre_a"), village_id=world.village_a, period="2026-03"
    ).get_json()
    assert [(r["rank"], r["name"], r["points"]) for r in body["items"]] == [
        (1, "户主x", 10),
        (2, "李四", 8),
        (2, "王五", 8),
        (4, "赵六", 5),
    ]
    assert body["tie_rule"] == TIE_RULE and "1、2、2、4" in body["tie_rule"]
    assert (body["period"], body["scope"], body["by"], body["total"]) == (
        "2026-03",
        {"kind": "village", "id": world.village_a},
        "household",
        4,
    )

    top2 = rankings(
        client, world.headers("cadre_a"), village_id=world.village_a, period="2026-03", limit=2
    ).get_json()
    assert [r["points"] for r in top2["items"]] == [10, 8] and top2["total"] == 4
    # An April with nothing: everybody shares rank 1 with 0 points.
    april = rankings(
        client, world.headers("cadre_a"), village_id=world.village_a, period="2026-04"
    ).get_json()
    assert {(r["rank"], r["points"]) for r in april["items"]} == {(1, 0)}


def test_spending_never_lowers_a_rank_and_reversals_do(
    app: Flask, client: FlaskClient, world: World
) -> None:
    march = local(2026, 3, 10)
    other = add_household(app, world.village_a, "b户", "李四")
    earned = earn(app, world.household_x, 9, march, world.head_x)
    earn(app, world.household_x, -9, march, kind="redeem")  # spent at the supermarket
    earn(app, other["household"], 6, march, other["head"])
    first = rankings(
        client, world.headers("cadre_a"), village_id=world.village_a, period="2026-03"
    ).get_json()
    assert [(r["name"], r["points"]) for r in first["items"]] == [("户主x", 9), ("李四", 6)]

    with app.app_context():
        entry = db.session.get(LedgerEntry, earned)
        assert entry is not None
        ledger.reverse(db.session, entry, reason="重复", created_by=world.cadre_a, tz=SHANGHAI)
        db.session.commit()
    # The reversal is made now (not in March): it lowers the month it is made in.
    with app.app_context():
        reversal_month = db.session.scalar(
            select(LedgerEntry.month).where(LedgerEntry.reverses_id == earned)
        )
    march_again = rankings(
        client, world.headers("cadre_a"), village_id=world.village_a, period="2026-03"
    ).get_json()
    assert [r["points"] for r in march_again["items"]] == [9, 6]
    later = rankings(
        client,
        world.headers("cadre_a"),
        village_id=world.village_a,
        period=reversal_month,
        by="member",
    ).get_json()
    assert {r["villager_id"]: r["points"] for r in later["items"]}[world.head_x] == -9


def test_barred_household_is_left_out_but_sees_its_own_rank(
    app: Flask, client: FlaskClient, world: World
) -> None:
    march = local(2026, 3, 10)
    other = add_household(app, world.village_a, "b户", "李四", openid="openid-b")
    earn(app, world.household_x, 20, march)
    earn(app, other["household"], 5, march)
    bar(app, world.household_x, "2026-02", "2026-03")

    as_villager = rankings(client, world.headers("villager_x"), period="2026-03").get_json()
    assert [(r["rank"], r["points"]) for r in as_villager["items"]] == [(1, 5)]
    assert as_villager["mine"] == {
        "rank": 1,
        "points": 20,
        "name": "户主x",
        "household_id": world.household_x,
        "villager_id": None,
        "barred": True,
        "opted_out": False,
        "total": 1,
    }
    other_view = rankings(client, world.headers(other["user"]), period="2026-03").get_json()
    assert other_view["mine"]["rank"] == 1 and other_view["mine"]["barred"] is False
    # The bar covers February and March only.
    april = local(2026, 4, 10)
    earn(app, world.household_x, 1, april)
    assert [
        r["household_id"]
        for r in rankings(
            client, world.headers("cadre_a"), village_id=world.village_a, period="2026-04"
        ).get_json()["items"]
    ] == [world.household_x, other["household"]]
    # A quarter or a year that overlaps the bar leaves the household out too.
    assert world.household_x not in [
        r["household_id"]
        for r in rankings(
            client, world.headers("cadre_a"), village_id=world.village_a, period="2026"
        ).get_json()["items"]
    ]


def test_member_ranking_and_the_villagers_own_place(
    app: Flask, client: FlaskClient, world: World
) -> None:
    march = local(2026, 3, 10)
    earn(app, world.household_x, 4, march, world.head_x)
    earn(app, world.household_x, 7, march, world.spouse_x)
    body = rankings(client, world.headers("villager_x"), period="2026-03", by="member").get_json()
    assert [(r["rank"], r["villager_id"], r["points"]) for r in body["items"]] == [
        (1, world.spouse_x, 7),
        (2, world.head_x, 4),
    ]
    assert (body["mine"]["villager_id"], body["mine"]["rank"], body["mine"]["points"]) == (
        world.head_x,
        2,
        4,
    )


# ---- privacy ----------------------------------------------------------------------------------


def test_villagers_see_masked_names_and_opted_out_households_unnamed(
    app: Flask, client: FlaskClient, world: World
) -> None:
    march = local(2026, 3, 10)
    shy = add_household(app, world.village_a, "b户", "欧阳小明", openid="openid-shy")
    earn(app, world.household_x, 9, march)
    earn(app, shy["household"], 6, march)
    hide = client.put(
        "/api/v1/me/board-privacy",
        json={"public_board_opt_out": True},
        headers=world.headers(shy["user"]),
    )
    assert hide.status_code == 200, hide.get_json()
    assert hide.get_json() == {"household_id": shy["household"], "public_board_opt_out": True}

    public = rankings(client, world.headers("villager_x"), period="2026-03").get_json()
    assert [(r["rank"], r["name"], r["household_id"]) for r in public["items"]] == [
        (1, "户*x", world.household_x),
        (2, "（不公开）", None),
    ]
    own = rankings(client, world.headers(shy["user"]), period="2026-03").get_json()
    assert own["mine"] | {"name": None} == {
        "rank": 2,
        "points": 6,
        "name": None,
        "household_id": shy["household"],
        "villager_id": None,
        "barred": False,
        "opted_out": True,
        "total": 2,
    }
    staff = rankings(
        client, world.headers("cadre_a"), village_id=world.village_a, period="2026-03"
    ).get_json()
    assert [r["name"] for r in staff["items"]] == ["户主x", "欧阳小明"]
    as_posted = rankings(
        client,
        world.headers("cadre_a"),
        village_id=world.village_a,
        period="2026-03",
        public="true",
    ).get_json()
    assert [r["name"] for r in as_posted["items"]] == ["户*x", "（不公开）"]

    # The village turns masking off: full names, but the opt-out still holds.
    off = client.put(
        f"/api/v1/villages/{world.village_a}/board-settings",
        json={"mask_names": False},
        headers=world.headers("cadre_a"),
    )
    assert off.status_code == 200, off.get_json()
    public = rankings(client, world.headers("villager_x"), period="2026-03").get_json()
    assert [r["name"] for r in public["items"]] == ["户主x", "（不公开）"]


def test_mask_name() -> None:
    assert [mask_name(n) for n in ("张", "张三", "张三丰", "欧阳小明")] == [
        "*",
        "张*",
        "张*丰",
        "欧**明",
    ]


# ---- who sees what ----------------------------------------------------------------------------


def test_ranking_scope(app: Flask, client: FlaskClient, world: World) -> None:
    a = {"village_id": world.village_a, "period": "2026-03"}

    def status(user: str | None, **params: Any) -> int:
        headers = world.headers(user) if user else {}
        return rankings(client, headers, **params).status_code

    assert status(None, **a) == 401
    for user in ("villager_x", "cadre_a", "tadmin1", "county"):
        assert status(user, **a) == 200, user
    # a clerk sees nothing of the villages their shop serves
    for user in ("villager_y", "cadre_b", "tadmin2", "clerk_a"):
        assert status(user, **a) == 404, user
    assert status("villager_x", group_id=world.group_x) == 200
    assert status("villager_x", group_id=world.group_y) == 404
    # The township-wide household ranking is for township admins.
    assert status("tadmin1", township_id=world.township_1) == 200
    assert status("county", township_id=world.township_2) == 200
    assert status("tadmin2", township_id=world.township_1) == 404
    assert status("cadre_a", township_id=world.township_1) == 403
    assert status("villager_x", township_id=world.township_1) == 403

    # an unbound villager has no village to rank: the same 403 as every villager endpoint
    unbound = rankings(client, world.headers("unbound"))
    assert unbound.status_code == 403 and error_code(unbound) == "not_bound"
    both = rankings(
        client, world.headers("cadre_a"), village_id=world.village_a, group_id=world.group_x
    )
    assert both.status_code == 422 and error_code(both) == "scope_required"
    for bad in ("2026-13", "2026-Q5", "26", "2026-3", "march"):
        response = rankings(
            client, world.headers("cadre_a"), village_id=world.village_a, period=bad
        )
        assert response.status_code == 422, bad
    for bad in ({"by": "village"}, {"limit": 0}, {"limit": 5000}):
        response = rankings(client, world.headers("cadre_a"), village_id=world.village_a, **bad)
        assert response.status_code == 422, bad


@pytest.mark.parametrize(
    "period,months",
    [
        ("2026-03", ("2026-03",)),
        ("2026-Q2", ("2026-04", "2026-05", "2026-06")),
        ("2026", tuple(f"2026-{m:02d}" for m in range(1, 13))),
    ],
)
def test_periods(period: str, months: tuple[str, ...]) -> None:
    assert parse_period(period).months == months


def test_township_ranking_spans_its_villages(app: Flask, client: FlaskClient, world: World) -> None:
    march = local(2026, 3, 10)
    earn(app, world.household_x, 3, march)
    earn(app, world.household_y, 7, march)
    earn(app, world.household_z, 99, march)  # township 2
    bind_user(app, world.spouse_x, "openid-spouse")
    body = rankings(
        client, world.headers("tadmin1"), township_id=world.township_1, period="2026-03"
    ).get_json()
    assert [
        (r["rank"], r["household_id"], r["village_id"], r["points"]) for r in body["items"]
    ] == [(1, world.household_y, world.village_b, 7), (2, world.household_x, world.village_a, 3)]
