"""Standings: every household's (or member's) points in a month, quarter or year, and the
ranked lists of a village, villager group (村民小组) or township.

Everything here reads the period tables (`month_totals`, `member_month_totals`), written in
the same transaction as each ledger entry, so a village's standings cost O(households of the
village) and never grow with the ledger.

Ties share a rank (standard competition ranking, 1, 2, 2, 4: rules.ranking); within a tie rows
are listed by id, so the order is stable from one request to the next.

The statement pieces the board's own queries share (points.boards.board and .corrections)
live here too: the veto bar, lists of ids, months, the head's name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, TypeVar, TypeVarTuple

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Integer,
    Row,
    ScalarSelect,
    Select,
    SQLColumnExpression,
    Subquery,
    any_,
    bindparam,
    case,
    exists,
    func,
    not_,
    select,
)
from sqlalchemy.orm import Session

from rules.periods import month_label
from rules.ranking import competition_ranks

from ..errors import Invalid, NotBound
from ..models import (
    HEAD,
    Household,
    HouseholdFlag,
    MemberMonthTotal,
    MonthTotal,
    Township,
    Village,
    Villager,
    VillagerGroup,
)
from ..scope import VILLAGER, Actor, authorize, get_visible
from .privacy import BoardPrefs, board_prefs

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

TIE_RULE = "同分同名次：积分相同者名次并列，其后名次顺延（1、2、2、4）；并列者按编号先后排列"
# Who a ranking ranks: households, or their members one by one.
RANK_BY = ("household", "member")


# ---- periods --------------------------------------------------------------------------------

_PERIOD = re.compile(r"^(\d{4})(?:-(0[1-9]|1[0-2])|-Q([1-4]))?$")


@dataclass(frozen=True)
class Period:
    """A month (2026-03), a quarter (2026-Q1) or a year (2026) as the months it covers."""

    key: str
    kind: str
    months: tuple[str, ...]

    @property
    def first(self) -> str:
        return self.months[0]

    @property
    def last(self) -> str:
        return self.months[-1]


def parse_period(text: str) -> Period:
    found = _PERIOD.match(text or "")
    if found is None or not 2000 <= int(found.group(1)) <= 2999:
        raise Invalid(
            "时段格式为 YYYY-MM、YYYY-Qn 或 YYYY", code="invalid_period", details={"period": text}
        )
    year, month, quarter = found.groups()
    if month:
        return Period(text, "month", (text,))
    if quarter:
        first = 3 * (int(quarter) - 1) + 1
        return Period(text, "quarter", tuple(f"{year}-{m:02d}" for m in range(first, first + 3)))
    return Period(text, "year", tuple(f"{year}-{m:02d}" for m in range(1, 13)))


def period_label(period: Period) -> str:
    if period.kind == "month":
        return month_label(period.key)
    if period.kind == "quarter":
        return f"{period.key[:4]}年第{period.key[-1]}季度"
    return f"{period.key}年"


# ---- standings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """Whose households are ranked: a village, a villager group (村民小组) or a township."""

    kind: str  # village|group|township
    id: int
    village_ids: tuple[int, ...]


def resolve_scope(
    session: Session,
    actor: Actor,
    *,
    village_id: int | None = None,
    group_id: int | None = None,
    township_id: int | None = None,
) -> Scope:
    given = [
        (k, v)
        for k, v in (("village", village_id), ("group", group_id), ("township", township_id))
        if v is not None
    ]
    if not given and actor.role == VILLAGER:
        if actor.village_id is None:
            raise NotBound()  # a villager's ranking is their village's; they have none yet
        given = [("village", actor.village_id)]
    if len(given) != 1:
        raise Invalid("请指定 village_id、group_id 或 township_id 之一", code="scope_required")
    kind, object_id = given[0]
    if kind == "village":
        village = get_visible(session, actor, Village, object_id)
        authorize(actor, "board.read")
        return Scope("village", village.id, (village.id,))
    if kind == "group":
        group = get_visible(session, actor, VillagerGroup, object_id)
        authorize(actor, "board.read")
        return Scope("group", group.id, (group.village_id,))
    township = get_visible(session, actor, Township, object_id)
    authorize(actor, "ranking.township")
    ids = tuple(
        session.scalars(
            select(Village.id).where(Village.township_id == township.id).order_by(Village.id)
        )
    )
    return Scope("township", township.id, ids)


@dataclass(slots=True)
class Standing:
    """One household's (or member's) points in a period and where it stands."""

    id: int  # household id, or villager id when ranking members
    household_id: int
    village_id: int
    group_id: int | None
    name: str
    points: int
    earned: int = 0
    deducted: int = 0
    barred: bool = False  # 一票否决: not ranked, no honours
    opted_out: bool = False
    rank: int | None = None


# The hot statements are built once, with bound parameters, so a board pays for executing
# them and not for constructing them (SQLAlchemy's compiled cache does the rest).


def _household_filter(kind: str) -> ColumnElement[bool]:
    if kind == "group":
        return Household.group_id == bindparam("scope_id")
    if kind == "village":
        return Household.village_id == bindparam("scope_id")
    return Household.village_id.in_(bindparam("village_ids", expanding=True))


def _totals_filter(column: SQLColumnExpression[int], kind: str) -> ColumnElement[bool]:
    if kind == "township":
        return column.in_(bindparam("village_ids", expanding=True))
    return column == bindparam("village_id")


# 一票否决: a flag for any month of the period, unless the township withdrew its veto. A
# correlated EXISTS (and below, the head's name) is an index probe per household, however
# many villages the county has.
BARRED = exists().where(
    HouseholdFlag.household_id == Household.id,
    HouseholdFlag.withdrawal_id.is_(None),
    HouseholdFlag.from_month <= bindparam("last"),
    HouseholdFlag.until_month >= bindparam("first"),
)


def among(
    column: SQLColumnExpression[int | None], name: str, postgres: bool
) -> ColumnElement[bool]:
    # A list of ids: one array parameter on PostgreSQL, so the statement text stays the same
    # from call to call (and is prepared once); an expanded IN list on SQLite.
    if postgres:
        return column == any_(bindparam(name, type_=ARRAY(Integer)))
    return column.in_(bindparam(name, expanding=True))


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def in_months(column: SQLColumnExpression[str], single: bool) -> ColumnElement[bool]:
    # One month (every monthly board) binds one value: an expanding IN list would make
    # SQLAlchemy render the statement again on every call.
    return (
        column == bindparam("month") if single else column.in_(bindparam("months", expanding=True))
    )


@cache
def _household_statement(kind: str, single: bool = False) -> Select[*tuple[Any, ...]]:
    totals = (
        select(
            MonthTotal.household_id,
            func.sum(MonthTotal.score).label("score"),
            func.sum(MonthTotal.earned).label("earned"),
            func.sum(MonthTotal.deducted).label("deducted"),
        )
        .where(_totals_filter(MonthTotal.village_id, kind), in_months(MonthTotal.month, single))
        .group_by(MonthTotal.household_id)
        .subquery()
    )
    return (
        select(
            Household.id,
            Household.village_id,
            Household.group_id,
            Household.name,
            Household.public_board_opt_out,
            totals.c.score,
            totals.c.earned,
            totals.c.deducted,
            BARRED.label("barred"),
        )
        .outerjoin(totals, totals.c.household_id == Household.id)
        .where(_household_filter(kind))
    )


@cache
def _member_statement(kind: str, single: bool = False) -> Select[*tuple[Any, ...]]:
    totals = (
        select(MemberMonthTotal.member_id, func.sum(MemberMonthTotal.score).label("score"))
        .where(
            _totals_filter(MemberMonthTotal.village_id, kind),
            in_months(MemberMonthTotal.month, single),
        )
        .group_by(MemberMonthTotal.member_id)
        .subquery()
    )
    return (
        select(
            Villager.id,
            Villager.name,
            Villager.household_id,
            Household.village_id,
            Household.group_id,
            Household.public_board_opt_out,
            totals.c.score,
            BARRED.label("barred"),
        )
        .join(Household, Household.id == Villager.household_id)
        .outerjoin(totals, totals.c.member_id == Villager.id)
        .where(
            _household_filter(kind), (Villager.active.is_(True)) | (totals.c.member_id.isnot(None))
        )
    )


def fetch_rows(
    session: Session, statement: Select[*Ts], params: dict[str, Any]
) -> Sequence[Row[*Ts]]:
    """Run a Core statement on the session's connection (and transaction), skipping the ORM's
    result machinery: these rows are tuples, not entities."""
    return session.connection().execute(statement, params).all()


def _params(scope: Scope, period: Period) -> dict[str, Any]:
    return {
        "scope_id": scope.id,
        "village_id": scope.village_ids[0],
        "village_ids": list(scope.village_ids),
        "months": list(period.months),
        "month": period.first,
        "first": period.first,
        "last": period.last,
    }


def household_standings(session: Session, scope: Scope, period: Period) -> list[Standing]:
    """Every household of the scope with its score in the period (0 with no entries). The
    name is the household's; `name_households` puts the head's on the few that are shown."""
    if not scope.village_ids:
        return []
    rows = fetch_rows(
        session, _household_statement(scope.kind, len(period.months) == 1), _params(scope, period)
    )
    return [
        Standing(
            id=hid,
            household_id=hid,
            village_id=vid,
            group_id=gid,
            name=name or f"{hid}号户",
            points=int(score or 0),
            earned=int(earned or 0),
            deducted=int(deducted or 0),
            barred=bool(barred),
            opted_out=bool(opt_out),
        )
        for hid, vid, gid, name, opt_out, score, earned, deducted, barred in rows
    ]


def name_households(session: Session, standings: Iterable[Standing]) -> None:
    """Name these households by their head (户主), as boards and rankings list them."""
    by_id = {s.household_id: s for s in standings}
    if not by_id:
        return
    for hid, name, _ in fetch_rows(
        session, names_statement(is_postgres(session)), {"households": sorted(by_id)}
    ):
        if name:
            by_id[hid].name = name


def group_names(session: Session, standings: Iterable[Standing]) -> dict[int, str]:
    """The villager groups (村民小组) of these rows by id, in one query."""
    ids = {s.group_id for s in standings if s.group_id is not None}
    if not ids:
        return {}
    return dict(
        session.execute(
            select(VillagerGroup.id, VillagerGroup.name).where(VillagerGroup.id.in_(ids))
        ).all()
    )


def member_standings(session: Session, scope: Scope, period: Period) -> list[Standing]:
    """Every active member of the scope, and any member with points in the period."""
    if not scope.village_ids:
        return []
    rows = fetch_rows(
        session, _member_statement(scope.kind, len(period.months) == 1), _params(scope, period)
    )
    return [
        Standing(
            id=vid,
            household_id=hid,
            village_id=village,
            group_id=gid,
            name=name,
            points=int(score or 0),
            barred=bool(barred),
            opted_out=bool(opt_out),
        )
        for vid, name, hid, village, gid, opt_out, score, barred in rows
    ]


def assign_ranks(standings: Iterable[Standing]) -> list[Standing]:
    """The ranked list: barred rows left out, ties sharing a rank (1, 2, 2, 4)."""
    ranked = sorted((s for s in standings if not s.barred), key=lambda s: (-s.points, s.id))
    for standing, rank in zip(ranked, competition_ranks([s.points for s in ranked]), strict=True):
        standing.rank = rank
    return ranked


@dataclass
class Ranking:
    period: Period
    scope: Scope
    by: str
    items: list[Standing]
    total: int
    mine: dict[str, Any] | None = None
    tie_rule: str = TIE_RULE
    prefs: dict[int, BoardPrefs] = field(default_factory=dict)


# A ranking lists its first `limit` rows, out of thousands in a township: the database ranks
# them (rank() is standard competition ranking, as rules.ranking), so only those rows and the
# caller's own come back. The ranks are those `assign_ranks` gives the full list (the boards'
# own); a property test holds them to a brute-force count of the ledger on both databases.


def _standing_rows(by: str, kind: str, single: bool) -> Subquery:
    return (_household_statement if by == "household" else _member_statement)(
        kind, single
    ).subquery("standing")


def _listed_name(by: str, rows: Subquery) -> ColumnElement[str]:
    # Households are listed by their head's name (户主), looked up for the rows returned only.
    return rows.c.name if by == "member" else func.coalesce(head_name(rows.c.id), rows.c.name)


@cache
def _ranked_statement(by: str, kind: str, single: bool) -> Select[*tuple[Any, ...]]:
    """The first `limit` ranked rows of the scope: (id, household, village, group, name,
    opted out, points, rank, how many are ranked, how many ranked stand above `own_points`)."""
    standing = _standing_rows(by, kind, single)
    points = func.coalesce(standing.c.score, 0)
    first = (
        select(
            standing.c.id,
            standing.c.household_id if by == "member" else standing.c.id.label("household_id"),
            standing.c.village_id,
            standing.c.group_id,
            standing.c.name,
            standing.c.public_board_opt_out.label("opted_out"),
            points.label("points"),
            func.rank().over(order_by=points.desc()).label("rank"),
            func.count().over().label("ranked"),
            func.sum(case((points > bindparam("own_points"), 1), else_=0)).over().label("above"),
        )
        .where(not_(standing.c.barred))
        .order_by(points.desc(), standing.c.id)
        .limit(bindparam("limit"))
        .subquery("first")
    )
    return select(
        first.c.id,
        first.c.household_id,
        first.c.village_id,
        first.c.group_id,
        _listed_name(by, first),
        first.c.opted_out,
        first.c.points,
        first.c.rank,
        first.c.ranked,
        first.c.above,
    ).order_by(first.c.rank, first.c.id)


@cache
def _own_statement(by: str, kind: str, single: bool) -> Select[*tuple[Any, ...]]:
    """The caller's own row in the scope, barred or not: (id, household, village, group,
    name, opted out, points, barred)."""
    standing = _standing_rows(by, kind, single)
    return select(
        standing.c.id,
        standing.c.household_id if by == "member" else standing.c.id,
        standing.c.village_id,
        standing.c.group_id,
        _listed_name(by, standing),
        standing.c.public_board_opt_out,
        func.coalesce(standing.c.score, 0),
        standing.c.barred,
    ).where(standing.c.id == bindparam("own_id"))


def ranking(
    session: Session,
    scope: Scope,
    period: Period,
    *,
    by: str = "household",
    limit: int = 50,
    own_household_id: int | None = None,
    own_villager_id: int | None = None,
) -> Ranking:
    """A ranked list for a scope and period; `mine` is where the caller's own household (or
    self, by member) stands, even when it is barred or not in the list."""
    if not scope.village_ids:
        return Ranking(period, scope, by, [], 0)
    single = len(period.months) == 1
    params = _params(scope, period)
    own_id = own_household_id if by == "household" else own_villager_id
    own = None
    if own_id is not None:
        found = fetch_rows(
            session, _own_statement(by, scope.kind, single), params | {"own_id": own_id}
        )
        if found:
            oid, hid, vid, gid, name, opt_out, points, barred = found[0]
            own = Standing(
                oid,
                hid,
                vid,
                gid,
                name or f"{hid}号户",
                int(points),
                barred=bool(barred),
                opted_out=bool(opt_out),
            )
    rows = fetch_rows(
        session,
        _ranked_statement(by, scope.kind, single),
        params | {"limit": limit, "own_points": own.points if own is not None else None},
    )
    items = [
        Standing(
            id=sid,
            household_id=hid,
            village_id=vid,
            group_id=gid,
            name=name or f"{hid}号户",
            points=int(points),
            opted_out=bool(opt_out),
            rank=int(rank),
        )
        for sid, hid, vid, gid, name, opt_out, points, rank, _, _ in rows
    ]
    total = int(rows[0][8]) if rows else 0
    above = int(rows[0][9]) if rows else 0
    mine = None
    if own is not None:
        # 1 + how many ranked rows have more points: the own rank when ranked (ties share
        # it), and where a barred household's points would stand when not.
        mine = {
            "rank": above + 1,
            "points": own.points,
            "name": own.name,
            "household_id": own.household_id,
            "villager_id": own.id if by == "member" else None,
            "barred": own.barred,
            "opted_out": own.opted_out,
            "total": total,
        }
    return Ranking(
        period, scope, by, items, total, mine, prefs=board_prefs(session, scope.village_ids)
    )


# ---- statement pieces the board's queries share ----------------------------------------------


def head_name(household_id: SQLColumnExpression[int | None]) -> ScalarSelect[str]:
    """The name of the household's head (户主), as a scalar subquery."""
    return (
        select(Villager.name)
        .where(Villager.household_id == household_id, Villager.relation == HEAD)
        .scalar_subquery()
    )


def scalar_of(column: SQLColumnExpression[T], condition: ColumnElement[bool]) -> ScalarSelect[T]:
    return select(column).where(condition).scalar_subquery()


@cache
def names_statement(postgres: bool) -> Select[int, str, int | None]:
    """The head's name (else the household's) and villager group of the `households`."""
    return select(
        Household.id, func.coalesce(head_name(Household.id), Household.name), Household.group_id
    ).where(among(Household.id, "households", postgres))
