"""Rankings, boards (红黑榜), star households (星级文明户), village statistics and closing a month.

Everything here reads the period tables (`month_totals`, `member_month_totals`), written in
the same transaction as each ledger entry, so a village's monthly board costs O(households of
the village) and never grows with the ledger. Only the few households on the black list and
the month's reversals are read from `ledger_entries`, through indexes bounded by the month.

Ties share a rank (standard competition ranking, 1, 2, 2, 4); within a tie rows are listed by
id, so the order is stable from one request to the next.

Closing a month (结榜) freezes the village's board as published (`board_snapshots`): by hand
(`flask rankings close YYYY-MM`, or a cadre's POST …/board/close), and by the cron
`flask rankings close-due`, run after `flask claims post-due`, which closes every ended month
whose claims are all decided (none pending, awaiting the township, in notice or objected, and
no per-hour check-in of the month waiting for its check-out while its activity runs).
A correction made later is a reversing entry in the month it is made (points.ledger.reverse),
so it lowers or raises that later month and shows as a note on its board; a claim of a closed
month posted late (a month closed by hand before its notice ended) is a late posting
(`late_postings`), noted on the next board published after it, whichever months were closed
meanwhile; a veto (一票否决) of such a month that posted after it closed is noted on the next
board too: its bar starts with the deed's month. The closed board never changes.
"""

from __future__ import annotations

import re
import secrets
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ARRAY,
    Boolean,
    Integer,
    String,
    and_,
    any_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal,
    null,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

import rules
from rules.periods import month_key

from . import audit, catalogs, ledger, notice
from .activities.checkin import worked_from
from .errors import Conflict, DomainError, Forbidden, Invalid, NotBound, NotFound
from .models import (
    HEAD,
    Account,
    Claim,
    Household,
    HouseholdFlag,
    LatePosting,
    LedgerEntry,
    MemberMonthTotal,
    MonthTotal,
    RuleCatalog,
    RuleItemVersion,
    Township,
    VetoWithdrawal,
    Village,
    Villager,
    VillagerGroup,
)
from .models.activities import Activity, CheckIn
from .models.boards import BoardSettings, BoardSnapshot, PublicLink
from .scope import VILLAGER, Actor, authorize, get_visible

TIE_RULE = "同分同名次：积分相同者名次并列，其后名次顺延（1、2、2、4）；并列者按编号先后排列"
HIDDEN_NAME = "（不公开）"
DEFAULT_MASK_NAMES = True
DEFAULT_RED_LIST_SIZE = 10
# Claims in these states may still add to (or take from) the month they happened in.
UNDECIDED = ("pending", "approved", "in_notice", "objected")
# Who a ranking ranks: households, or their members one by one.
RANK_BY = ("household", "member")
# What a board's correction is: an earlier month's entry reversed, points (or a veto) that
# reached a month after its board closed, a veto the township withdrew.
CORRECTION_KINDS = ("reversal", "late", "late_veto", "veto_withdrawal")
MAX_TREND_MONTHS = 12


class MonthNotOver(DomainError):
    status = 422
    code = "month_not_over"
    message = "这个月还没有结束，不能结榜"


class ClaimsUndecided(DomainError):
    status = 409
    code = "claims_undecided"
    message = "本月还有申报在审核或公示中，或有按小时计分的签到尚未签退，暂不能结榜"


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
        raise Invalid("时段格式为 YYYY-MM、YYYY-Qn 或 YYYY", code="invalid_period",
                      details={"period": text})
    year, month, quarter = found.groups()
    if month:
        return Period(text, "month", (text,))
    if quarter:
        first = 3 * (int(quarter) - 1) + 1
        return Period(text, "quarter", tuple(f"{year}-{m:02d}" for m in range(first, first + 3)))
    return Period(text, "year", tuple(f"{year}-{m:02d}" for m in range(1, 13)))


def add_months(month: str, count: int) -> str:
    index = int(month[:4]) * 12 + int(month[5:]) - 1 + count
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def months_between(first: str, last: str) -> list[str]:
    out, month = [], first
    while month <= last:
        out.append(month)
        month = add_months(month, 1)
    return out


def this_month(now: datetime, tz: ZoneInfo) -> str:
    return month_key(now.astimezone(tz))


# ---- names and privacy ----------------------------------------------------------------------

def mask_name(name: str) -> str:
    """张三 → 张*, 张三丰 → 张*丰, 欧阳小明 → 欧**明: the surname and the last character."""
    if len(name) <= 1:
        return "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def public_name(name: str, *, mask: bool, opted_out: bool) -> str:
    if opted_out:
        return HIDDEN_NAME
    return mask_name(name) if mask else name


@dataclass(frozen=True)
class BoardPrefs:
    mask_names: bool = DEFAULT_MASK_NAMES
    red_list_size: int = DEFAULT_RED_LIST_SIZE


def board_prefs(session: Session, village_ids: Iterable[int],
                townships: dict[int, int] | None = None) -> dict[int, BoardPrefs]:
    """Each village's effective settings: its own, else its township's, else the defaults.
    `townships` (village id → township id), when the caller has it, saves a query."""
    ids = sorted(set(village_ids))
    if not ids:
        return {}
    if townships is None:
        townships = dict(session.execute(
            select(Village.id, Village.township_id).where(Village.id.in_(ids))).all())
    rows = session.scalars(select(BoardSettings).where(
        (BoardSettings.village_id.in_(ids))
        | (BoardSettings.township_id.in_(set(townships.values())))))
    by_village, by_township = {}, {}
    for row in rows:
        if row.village_id is not None:
            by_village[row.village_id] = row
        else:
            by_township[row.township_id] = row
    return {village_id: layered_prefs(settings_layer(by_township.get(townships.get(village_id))),
                                      settings_layer(by_village.get(village_id)))
            for village_id in ids}


def layered_prefs(*layers: tuple[bool | None, int | None]) -> BoardPrefs:
    """The defaults, overridden in turn by each layer's non-null (mask_names,
    red_list_size): a township's settings, then a village's."""
    prefs = BoardPrefs()
    for mask, size in layers:
        if mask is not None:
            prefs = replace(prefs, mask_names=mask)
        if size is not None:
            prefs = replace(prefs, red_list_size=size)
    return prefs


def settings_layer(row: BoardSettings | None) -> tuple[bool | None, int | None]:
    """A settings row as a layer of `layered_prefs` (no row: nothing set)."""
    return (None, None) if row is None else (row.mask_names, row.red_list_size)


def settings_row(session: Session, *, village_id: int | None = None,
                 township_id: int | None = None) -> BoardSettings | None:
    if village_id is not None:
        return session.scalar(select(BoardSettings).where(BoardSettings.village_id == village_id))
    return session.scalar(select(BoardSettings).where(BoardSettings.township_id == township_id))


def update_settings(
    session: Session, actor: Actor, changes: dict[str, Any], now: datetime, *,
    village_id: int | None = None, township_id: int | None = None,
) -> BoardSettings:
    """Set a village's (cadres and admins) or a township's (admins) board settings."""
    if village_id is not None:
        owner: Any = get_visible(session, actor, Village, village_id)
        authorize(actor, "board.settings")
        audit_village = owner.id
    else:
        owner = get_visible(session, actor, Township, township_id)  # type: ignore[arg-type]
        authorize(actor, "board.township_settings")
        audit_village = None
    row = settings_row(session, village_id=village_id, township_id=township_id)
    if row is None:
        row = BoardSettings(village_id=village_id, township_id=township_id, updated_at=now)
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:  # created meanwhile by another request: update that one
            row = settings_row(session, village_id=village_id, township_id=township_id)
            assert row is not None
    before = audit.snapshot(row)
    for key, value in changes.items():
        setattr(row, key, value)
    row.updated_at = now
    audit.record(session, actor, "board_settings.update", row, before=before,
                 village_id=audit_village,
                 township_id=owner.id if audit_village is None else None)
    return row


def set_opt_out(session: Session, actor: Actor, value: bool) -> Household:
    """A villager's own choice to keep their household off public boards."""
    if actor.role != VILLAGER:
        # A staff account linked to its roster entry has a household too, but the choice
        # is the villagers' own, made from the mini-program.
        raise Forbidden("只有村民本人可以设置是否上榜", code="villager_only")
    if actor.household_id is None:
        raise NotBound()
    household = get_visible(session, actor, Household, actor.household_id)
    before = audit.snapshot(household)
    household.public_board_opt_out = value
    audit.record(session, actor, "household.board_privacy", household, before=before,
                 village_id=household.village_id)
    return household


# ---- standings ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scope:
    """Whose households are ranked: a village, a villager group (村民小组) or a township."""

    kind: str  # village|group|township
    id: int
    village_ids: tuple[int, ...]


def resolve_scope(session: Session, actor: Actor, *, village_id: int | None = None,
                  group_id: int | None = None, township_id: int | None = None) -> Scope:
    given = [(k, v) for k, v in (("village", village_id), ("group", group_id),
                                 ("township", township_id)) if v is not None]
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
    ids = tuple(session.scalars(
        select(Village.id).where(Village.township_id == township.id).order_by(Village.id)))
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

def _household_filter(kind: str) -> Any:
    if kind == "group":
        return Household.group_id == bindparam("scope_id")
    if kind == "village":
        return Household.village_id == bindparam("scope_id")
    return Household.village_id.in_(bindparam("village_ids", expanding=True))


def _totals_filter(column: Any, kind: str) -> Any:
    if kind == "township":
        return column.in_(bindparam("village_ids", expanding=True))
    return column == bindparam("village_id")


# 一票否决: a flag for any month of the period, unless the township withdrew its veto. A
# correlated EXISTS (and below, the head's name) is an index probe per household, however
# many villages the county has.
_BARRED = exists().where(HouseholdFlag.household_id == Household.id,
                         HouseholdFlag.withdrawal_id.is_(None),
                         HouseholdFlag.from_month <= bindparam("last"),
                         HouseholdFlag.until_month >= bindparam("first"))


def _among(column: Any, name: str, postgres: bool) -> Any:
    # A list of ids: one array parameter on PostgreSQL, so the statement text stays the same
    # from call to call (and is prepared once); an expanded IN list on SQLite.
    if postgres:
        return column == any_(bindparam(name, type_=ARRAY(Integer)))
    return column.in_(bindparam(name, expanding=True))


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _in_months(column: Any, single: bool) -> Any:
    # One month (every monthly board) binds one value: an expanding IN list would make
    # SQLAlchemy render the statement again on every call.
    return column == bindparam("month") if single else column.in_(
        bindparam("months", expanding=True))


@cache
def _household_statement(kind: str, single: bool = False) -> Any:
    totals = (
        select(MonthTotal.household_id,
               func.sum(MonthTotal.score).label("score"),
               func.sum(MonthTotal.earned).label("earned"),
               func.sum(MonthTotal.deducted).label("deducted"))
        .where(_totals_filter(MonthTotal.village_id, kind),
               _in_months(MonthTotal.month, single))
        .group_by(MonthTotal.household_id)
        .subquery()
    )
    return (
        select(Household.id, Household.village_id, Household.group_id, Household.name,
               Household.public_board_opt_out, totals.c.score, totals.c.earned,
               totals.c.deducted, _BARRED)
        .outerjoin(totals, totals.c.household_id == Household.id)
        .where(_household_filter(kind))
    )


@cache
def _member_statement(kind: str, single: bool = False) -> Any:
    totals = (
        select(MemberMonthTotal.member_id, func.sum(MemberMonthTotal.score).label("score"))
        .where(_totals_filter(MemberMonthTotal.village_id, kind),
               _in_months(MemberMonthTotal.month, single))
        .group_by(MemberMonthTotal.member_id)
        .subquery()
    )
    return (
        select(Villager.id, Villager.name, Villager.household_id, Household.village_id,
               Household.group_id, Household.public_board_opt_out, totals.c.score, _BARRED)
        .join(Household, Household.id == Villager.household_id)
        .outerjoin(totals, totals.c.member_id == Villager.id)
        .where(_household_filter(kind),
               (Villager.active.is_(True)) | (totals.c.member_id.isnot(None)))
    )


def _rows(session: Session, statement: Any, params: dict[str, Any]) -> Any:
    """Run a Core statement on the session's connection (and transaction), skipping the ORM's
    result machinery: these rows are tuples, not entities."""
    return session.connection().execute(statement, params).all()


def _params(scope: Scope, period: Period) -> dict[str, Any]:
    return {"scope_id": scope.id, "village_id": scope.village_ids[0],
            "village_ids": list(scope.village_ids), "months": list(period.months),
            "month": period.first, "first": period.first, "last": period.last}


def household_standings(session: Session, scope: Scope, period: Period) -> list[Standing]:
    """Every household of the scope with its score in the period (0 with no entries). The
    name is the household's; `name_households` puts the head's on the few that are shown."""
    if not scope.village_ids:
        return []
    rows = _rows(session, _household_statement(scope.kind, len(period.months) == 1),
                 _params(scope, period))
    return [
        Standing(id=hid, household_id=hid, village_id=vid, group_id=gid,
                 name=name or f"{hid}号户", points=int(score or 0), earned=int(earned or 0),
                 deducted=int(deducted or 0), barred=bool(barred), opted_out=bool(opt_out))
        for hid, vid, gid, name, opt_out, score, earned, deducted, barred in rows
    ]


def name_households(session: Session, standings: Iterable[Standing]) -> None:
    """Name these households by their head (户主), as boards and rankings list them."""
    by_id = {s.household_id: s for s in standings}
    if not by_id:
        return
    for hid, name, _ in _rows(session, _names(_postgres(session)),
                              {"households": sorted(by_id)}):
        if name:
            by_id[hid].name = name


def group_names(session: Session, standings: Iterable[Standing]) -> dict[int, str]:
    """The villager groups (村民小组) of these rows by id, in one query."""
    ids = {s.group_id for s in standings if s.group_id is not None}
    if not ids:
        return {}
    return dict(session.execute(select(VillagerGroup.id, VillagerGroup.name)
                                .where(VillagerGroup.id.in_(ids))).all())


def member_standings(session: Session, scope: Scope, period: Period) -> list[Standing]:
    """Every active member of the scope, and any member with points in the period."""
    if not scope.village_ids:
        return []
    rows = _rows(session, _member_statement(scope.kind, len(period.months) == 1),
                 _params(scope, period))
    return [
        Standing(id=vid, household_id=hid, village_id=village, group_id=gid, name=name,
                 points=int(score or 0), barred=bool(barred), opted_out=bool(opt_out))
        for vid, name, hid, village, gid, opt_out, score, barred in rows
    ]


def assign_ranks(standings: Iterable[Standing]) -> list[Standing]:
    """The ranked list: barred rows left out, ties sharing a rank (1, 2, 2, 4)."""
    ranked = sorted((s for s in standings if not s.barred), key=lambda s: (-s.points, s.id))
    previous: int | None = None
    for position, standing in enumerate(ranked, 1):
        if standing.points != previous:
            rank, previous = position, standing.points
        standing.rank = rank
    return ranked


def rank_of(points: int, ranked: Sequence[Standing]) -> int:
    """Where these points stand among the ranked rows (for a household that is not listed)."""
    return 1 + sum(1 for s in ranked if s.points > points)


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


def rankings(
    session: Session, scope: Scope, period: Period, *, by: str = "household", limit: int = 50,
    own_household_id: int | None = None, own_villager_id: int | None = None,
) -> Ranking:
    """A ranked list for a scope and period; `mine` is where the caller's own household (or
    self, by member) stands, even when it is barred or not in the list."""
    standings = (household_standings if by == "household" else member_standings)(
        session, scope, period)
    ranked = assign_ranks(standings)
    own_id = own_household_id if by == "household" else own_villager_id
    own = next((s for s in standings if s.id == own_id), None) if own_id is not None else None
    if by == "household":
        name_households(session, ranked[:limit] + ([own] if own is not None else []))
    mine = None
    if own_id is not None:
        if own is not None:
            mine = {"rank": own.rank if own.rank is not None else rank_of(own.points, ranked),
                    "points": own.points, "name": own.name, "household_id": own.household_id,
                    "villager_id": own.id if by == "member" else None,
                    "barred": own.barred, "opted_out": own.opted_out, "total": len(ranked)}
    return Ranking(period, scope, by, ranked[:limit], len(ranked), mine,
                   prefs=board_prefs(session, scope.village_ids))


# ---- the board (红黑榜) ------------------------------------------------------------------------

def _version_names(
    session: Session, version_ids: Iterable[int | None]
) -> dict[int, dict[str, Any]]:
    ids = {v for v in version_ids if v is not None}
    if not ids:
        return {}
    return {vid: data for vid, data in session.execute(
        select(RuleItemVersion.id, RuleItemVersion.data).where(RuleItemVersion.id.in_(ids)))}


_ITEM_NAME = RuleItemVersion.data["name"].as_string()
_ITEM_BLACK_LIST = RuleItemVersion.data["black_list"].as_boolean()
_reversal = aliased(LedgerEntry)
_original = aliased(LedgerEntry)

# A monthly board is four queries, whatever the size of the ledger:
# 1. the village, its settings, its policy, and whether late postings wait for a board;
# 2. every household's score in the period, with names only for those the board may list;
# 3. the items of the black-listed households (flags and deductions);
# 4. the period's reversals of earlier months' entries and withdrawn vetoes (correction
#    notes).


def _head_name(household_id: Any) -> Any:
    return (select(Villager.name)
            .where(Villager.household_id == household_id, Villager.relation == HEAD)
            .scalar_subquery())


def fingerprint(totals: dict[int, int]) -> str:
    """count:sum:Σ id·score:Σ id²·score of a board's non-zero totals at closing."""
    scored = [(hid, points) for hid, points in totals.items() if points]
    return ":".join(str(n) for n in (
        len(scored), sum(p for _, p in scored), sum(h * p for h, p in scored),
        sum(h * h * p for h, p in scored)))


def _unnoted_late(village_id: Any, first: Any) -> Any:
    """The village's late postings into months before `first` (a period's first month) that
    no published board has noted yet."""
    return ((LatePosting.village_id == village_id) & LatePosting.noted_in.is_(None)
            & (LatePosting.month < first))


def _one(column: Any, condition: Any) -> Any:
    return select(column).where(condition).scalar_subquery()


# Scalar subqueries rather than five outer joins: PostgreSQL plans this in half the time, and
# a board's statements are planned on every request (psycopg forgets prepared statements at
# each rollback, which ends every read-only request).
_VILLAGE = (
    select(Village.name, Village.township_id,
           _one(BoardSettings.mask_names, BoardSettings.township_id == Village.township_id),
           _one(BoardSettings.red_list_size, BoardSettings.township_id == Village.township_id),
           _one(BoardSettings.mask_names, BoardSettings.village_id == Village.id),
           _one(BoardSettings.red_list_size, BoardSettings.village_id == Village.id),
           _one(RuleCatalog.policy, RuleCatalog.village_id == Village.id),
           _one(RuleCatalog.policy, RuleCatalog.township_id == Village.township_id),
           select(LatePosting.id).where(_unnoted_late(Village.id, bindparam("first")))
           .limit(1).scalar_subquery())
    .where(Village.id == bindparam("village_id"))
)


def _period_totals(single: bool) -> Any:
    """Each household's score, earned and deducted in the period. A month is one row per
    household already (month_totals is unique by account and month): no grouping."""
    columns = (MonthTotal.household_id, MonthTotal.score, MonthTotal.earned,
               MonthTotal.deducted)
    if single:
        return (select(*columns)
                .where(MonthTotal.village_id == bindparam("village_id"),
                       MonthTotal.month == bindparam("month"))
                .subquery())
    return (
        select(MonthTotal.household_id, func.sum(MonthTotal.score).label("score"),
               func.sum(MonthTotal.earned).label("earned"),
               func.sum(MonthTotal.deducted).label("deducted"))
        .where(MonthTotal.village_id == bindparam("village_id"),
               _in_months(MonthTotal.month, single))
        .group_by(MonthTotal.household_id)
        .subquery()
    )


@cache
def _board_rows(single: bool) -> Any:
    """The households a board may list (vetoed, deducted, in the top `size`, over the
    qualification line, or the caller's own `me`), ranked among the village's eligible
    households (ties share a rank), with the village's counts on every row. The database
    ranks the village's rows; only these few come back."""
    totals = _period_totals(single)
    scores = (
        select(Household.id, Household.name, Household.group_id,
               func.coalesce(totals.c.score, 0).label("score"), totals.c.earned,
               totals.c.deducted, _BARRED.label("barred"))
        .outerjoin(totals, totals.c.household_id == Household.id)
        .where(Household.village_id == bindparam("village_id"))
        .cte("scores")
    )
    ranked = select(
        scores, func.rank().over(partition_by=scores.c.barred,
                                 order_by=scores.c.score.desc()).label("rnk"),
    ).subquery("ranked")
    others = scores.alias("others")
    counts = scores.alias("counts")
    households = select(func.count()).select_from(counts).scalar_subquery()
    participating = (select(func.count()).select_from(counts)
                     .where(counts.c.earned > 0).scalar_subquery())
    # The caller's own place counts the eligible households above it, barred or not itself.
    above = (select(func.count()).select_from(others)
             .where(~others.c.barred, others.c.score > ranked.c.score)
             .scalar_subquery())
    groups = (select(VillagerGroup.id, VillagerGroup.name)
              .where(VillagerGroup.village_id == bindparam("village_id")).subquery())
    me = ranked.c.id == bindparam("me")
    return (
        select(ranked.c.id, ranked.c.score, ranked.c.deducted, ranked.c.barred, ranked.c.rnk,
               households, participating,
               func.coalesce(_head_name(ranked.c.id), ranked.c.name), ranked.c.group_id,
               groups.c.name, case((me, above)))
        .outerjoin(groups, groups.c.id == ranked.c.group_id)
        .where(ranked.c.barred | (ranked.c.deducted < 0) | (ranked.c.rnk <= bindparam("size"))
               | (ranked.c.score >= bindparam("line")) | me)
        .order_by(ranked.c.barred, ranked.c.rnk, ranked.c.id)
    )


@cache
def _all_scores(single: bool) -> Any:
    """Every household's score in the period (for the published snapshot)."""
    totals = _period_totals(single)
    return (select(Household.id, func.coalesce(totals.c.score, 0))
            .outerjoin(totals, totals.c.household_id == Household.id)
            .where(Household.village_id == bindparam("village_id")))


def _item_name(version_id: Any) -> Any:
    return _one(_ITEM_NAME, RuleItemVersion.id == version_id)


def _item_black_list(version_id: Any) -> Any:
    return _one(_ITEM_BLACK_LIST, RuleItemVersion.id == version_id)


# These statements use scalar subqueries rather than outer joins for the same reason as
# _VILLAGE: planning a many-way join costs more than running it for a few rows.
@cache
def _black_items(single: bool, postgres: bool) -> Any:
    """The veto flags and the deductions (with the item, the day of the deed and whether a
    reversal undid it) of the black-listed households: index probes per household."""
    deductions = (
        select(Account.household_id, literal("deduct").label("kind"), LedgerEntry.amount,
               LedgerEntry.note, LedgerEntry.created_at,
               _one(Claim.occurred_at, Claim.id == LedgerEntry.claim_id).label("occurred_at"),
               _item_name(LedgerEntry.rule_item_version_id).label("item"),
               _one(_reversal.id, _reversal.reverses_id == LedgerEntry.id).label("undone"),
               cast(null(), String).label("until_month"), LedgerEntry.id.label("seq"),
               _item_black_list(LedgerEntry.rule_item_version_id).label("black_list"))
        .join(Account, Account.id == LedgerEntry.account_id)
        .where(_among(Account.household_id, "households", postgres),
               _in_months(LedgerEntry.month, single), LedgerEntry.kind == "deduct")
    )
    flags = (
        select(HouseholdFlag.household_id, literal("veto"), cast(null(), Integer),
               HouseholdFlag.note, HouseholdFlag.created_at, HouseholdFlag.created_at,
               _item_name(_one(Claim.rule_item_version_id,
                               Claim.id == HouseholdFlag.claim_id)),
               cast(null(), Integer), HouseholdFlag.until_month, HouseholdFlag.id,
               cast(null(), Boolean))
        .where(_among(HouseholdFlag.household_id, "households", postgres),
               HouseholdFlag.withdrawal_id.is_(None),
               HouseholdFlag.from_month <= bindparam("last"),
               HouseholdFlag.until_month >= bindparam("first"))
    )
    both = union_all(deductions, flags).subquery()
    return select(both).order_by(both.c.kind.desc(), both.c.created_at, both.c.seq)


# The period's reversals of entries of earlier months, found through the partial index on
# reversals by month (points.models.boards), then its withdrawn vetoes. A withdrawn veto's
# wipe given back is noted as the withdrawal, not as a reversal of its own.
@cache
def _reversals(single: bool) -> Any:
    household = Account.household_id
    reversals = (
        select(literal("reversal").label("kind"), LedgerEntry.amount.label("amount"),
               LedgerEntry.note.label("note"), _original.month.label("month"),
               household.label("household_id"),
               _item_name(_original.rule_item_version_id).label("item"),
               func.coalesce(_head_name(household),
                             _one(Household.name, Household.id == household)).label("name"),
               _one(Household.group_id, Household.id == household).label("group_id"),
               LedgerEntry.id.label("seq"))
        .join(_original, _original.id == LedgerEntry.reverses_id)
        .join(Account, Account.id == LedgerEntry.account_id)
        .where(LedgerEntry.reverses_id.isnot(None), _in_months(LedgerEntry.month, single),
               # Only what a board scored: not a reset's expiry, not an opening balance.
               _original.month < bindparam("first"),
               _original.kind.in_(tuple(sorted(ledger.SCORE_KINDS))),
               Account.village_id == bindparam("village_id"))
    )
    withdrawn = VetoWithdrawal.household_id
    withdrawals = (
        select(literal("veto_withdrawal"), VetoWithdrawal.restored, VetoWithdrawal.reason,
               VetoWithdrawal.vetoed_month, withdrawn,
               _item_name(_one(Claim.rule_item_version_id,
                               Claim.id == VetoWithdrawal.claim_id)),
               func.coalesce(_head_name(withdrawn),
                             _one(Household.name, Household.id == withdrawn)),
               _one(Household.group_id, Household.id == withdrawn), VetoWithdrawal.id)
        .where(VetoWithdrawal.village_id == bindparam("village_id"),
               _in_months(VetoWithdrawal.month, single))
    )
    both = union_all(reversals, withdrawals).subquery()
    return select(both).order_by(both.c.kind, both.c.seq)


@cache
def _names(postgres: bool) -> Any:
    return (
        select(Household.id, func.coalesce(_head_name(Household.id), Household.name),
               Household.group_id)
        .where(_among(Household.id, "households", postgres))
    )


def _black_list(
    session: Session, candidates: list[int], barred: list[int], points: dict[int, int],
    period: Period, tz: ZoneInfo, min_deduction: int,
) -> list[dict[str, Any]]:
    """Households named on the black list (黑榜), each with its items: a veto flag, or
    deductions in the period that still stand coming to at least `min_deduction` points
    (the policy's black_list_min_deduction), or one of an item marked `black_list`. What
    villages post there are serious deductions and vetoes: a household with a single −1 for
    lateness, third on the red list, is not named on the black list as well. Reads the
    ledger of those few households only."""
    if not candidates:
        return []
    params = {"households": sorted(candidates), "months": list(period.months),
              "month": period.first, "first": period.first, "last": period.last}
    items: dict[int, list[dict[str, Any]]] = defaultdict(list)
    standing: set[int] = set()
    deducted: dict[int, int] = defaultdict(int)
    for (hid, kind, amount, note, created_at, occurred_at, item, reversed_by, until_month,
         _, black_item) in _rows(
            session, _black_items(len(period.months) == 1, _postgres(session)), params):
        if kind == "veto":
            standing.add(hid)
            items[hid].append({"kind": "veto", "item": item or "一票否决", "points": None,
                               "note": note, "date": None, "until_month": until_month,
                               "reversed": False})
            continue
        if reversed_by is None:
            deducted[hid] -= amount
            if black_item:
                standing.add(hid)
        items[hid].append({
            "kind": "deduct", "item": item or "扣分", "points": amount, "note": note,
            # The day of the deed (a claim posts after its notice), else of the entry.
            "date": (occurred_at or created_at).astimezone(tz).date().isoformat(),
            "until_month": None, "reversed": reversed_by is not None,
        })
    standing |= {hid for hid, total in deducted.items() if total >= min_deduction}
    vetoed = set(barred)
    rows = [{"household_id": hid, "points": points[hid], "vetoed": hid in vetoed,
             "items": items[hid]} for hid in standing]
    rows.sort(key=lambda r: (not r["vetoed"], r["points"], r["household_id"]))
    return rows


def _reversal_notes(session: Session, village_id: int, period: Period
                    ) -> list[dict[str, Any]]:
    """Reversals made in the period of entries counted in an earlier month (冲正更正), and
    vetoes withdrawn in the period (一票否决撤销: `amount` the spendable points given back)."""
    rows = _rows(session, _reversals(len(period.months) == 1),
                 {"months": list(period.months), "month": period.first,
                  "first": period.first, "village_id": village_id})
    return [{
        "kind": kind, "household_id": hid, "name": name or f"{hid}号户",
        "group_id": gid, "amount": amount, "month": month, "item": item,
        "note": _month_label(month) + (
            "一票否决撤销，恢复评比资格" if kind == "veto_withdrawal"
            else f"{'加分' if amount < 0 else '扣分'}冲正") + (f"：{note}" if note else ""),
    } for kind, amount, note, month, hid, item, name, gid, _ in rows]


def _late_notes(session: Session, village_id: int, period: Period) -> list[dict[str, Any]]:
    """Points that reached published months before the period after they were published (a
    claim of a month closed by hand posted late), not yet noted on a published board: per
    household and month. The published boards stay; this one says so."""
    changes = [(hid, month, int(change)) for month, hid, change in session.execute(
        select(LatePosting.month, LatePosting.household_id, func.sum(LatePosting.amount))
        .where(_unnoted_late(village_id, period.first))
        .group_by(LatePosting.month, LatePosting.household_id)
        .order_by(LatePosting.month, LatePosting.household_id)) if change]
    if not changes:
        return []
    names = {hid: (name or f"{hid}号户", gid) for hid, name, gid in _rows(
        session, _names(_postgres(session)),
        {"households": sorted({hid for hid, _, _ in changes})})}
    return [{
        "kind": "late", "household_id": hid, "name": names.get(hid, (f"{hid}号户",))[0],
        "group_id": names.get(hid, ("", None))[1], "amount": change, "month": month,
        "item": None,
        "note": f"{_month_label(month)}榜单发布后补记 {change:+d} 分（已发布榜单不变）",
    } for hid, month, change in changes]


def _late_veto_notes(session: Session, village_id: int, period: Period
                     ) -> list[dict[str, Any]]:
    """Vetoes (一票否决) that bar households in the latest published month before this board
    but posted after it was closed, for households that board did not bar: the published
    board stays, this board says so (as `_late_notes` for points)."""
    snapshot = session.scalars(
        select(BoardSnapshot).where(BoardSnapshot.village_id == village_id,
                                    BoardSnapshot.period < period.months[0])
        .order_by(BoardSnapshot.period.desc()).limit(1)).first()
    if snapshot is None:
        return []
    month = snapshot.period
    barred = set((snapshot.data or {}).get("barred", []))
    flags = session.execute(
        select(HouseholdFlag.household_id, HouseholdFlag.from_month, HouseholdFlag.until_month,
               _item_name(_one(Claim.rule_item_version_id,
                               Claim.id == HouseholdFlag.claim_id)))
        .join(Household, Household.id == HouseholdFlag.household_id)
        .where(Household.village_id == village_id, HouseholdFlag.withdrawal_id.is_(None),
               HouseholdFlag.from_month <= month, HouseholdFlag.until_month >= month,
               HouseholdFlag.created_at > snapshot.created_at)
        .order_by(HouseholdFlag.id)).all()
    late = [(hid, first, until, item) for hid, first, until, item in flags
            if hid not in barred]
    if not late:
        return []
    names = {hid: (name or f"{hid}号户", gid) for hid, name, gid in _rows(
        session, _names(_postgres(session)), {"households": sorted({r[0] for r in late})})}
    notes, seen = [], set()
    for hid, first, until, item in late:
        if hid in seen:
            continue
        seen.add(hid)
        name, gid = names.get(hid, (f"{hid}号户", None))
        notes.append({
            "kind": "late_veto", "household_id": hid, "name": name, "group_id": gid,
            "amount": 0, "month": month, "item": item,
            "note": f"{_month_label(month)}榜单发布后一票否决生效，{_month_label(first)}至"
                    f"{_month_label(until)}不参加评比（已发布榜单不变）",
        })
    return notes


def _month_label(month: str) -> str:
    return f"{int(month[:4])}年{int(month[5:])}月"


def period_label(period: Period) -> str:
    if period.kind == "month":
        return _month_label(period.key)
    if period.kind == "quarter":
        return f"{period.key[:4]}年第{period.key[-1]}季度"
    return f"{period.key}年"


def build_board(session: Session, village_id: int, period: Period, tz: ZoneInfo, *,
                household_id: int | None = None, full: bool = False) -> dict[str, Any]:
    """The village's board for a period computed now, with full names (the internal form).
    `mine` is the place of `household_id` (the caller's own household) if it is of the
    village. `full` adds every household's score (`totals`), kept in a published snapshot.

    The hot path of every board: four queries (above) and objects only for the households
    the board lists."""
    found = _rows(session, _VILLAGE, {"village_id": village_id, "first": period.first})
    if not found:
        raise NotFound()
    (village_name, _, township_mask, township_size, own_mask, own_size, own_policy,
     township_policy, late_waiting) = found[0]
    prefs = layered_prefs((township_mask, township_size), (own_mask, own_size))
    policy = catalogs.policy_of(own_policy, township_policy)
    single = len(period.months) == 1
    rows = _rows(session, _board_rows(single), {
        "village_id": village_id, "month": period.first, "months": list(period.months),
        "first": period.first, "last": period.last, "size": prefs.red_list_size,
        "line": policy.qualification_line, "me": household_id})

    households, participating = (rows[0][5], rows[0][6] or 0) if rows else (0, 0)
    points: dict[int, int] = {}
    listed: dict[int, tuple[str, int | None, str | None]] = {}
    red, stars, barred, candidates = [], [], [], []
    mine = None
    for hid, score, deducted, is_barred, rank, _, _, name, gid, group, above in rows:
        points[hid] = score
        listed[hid] = (name or f"{hid}号户", gid, group)
        earned_stars = policy.stars(score, barred=bool(is_barred))
        if is_barred or (deducted is not None and deducted < 0):
            candidates.append(hid)
        if is_barred:
            barred.append(hid)
        else:
            if rank <= prefs.red_list_size and score > 0:
                red.append((hid, rank, earned_stars))
            if earned_stars:
                stars.append((hid, earned_stars))
        if above is not None:
            mine = {"household_id": hid, "points": score, "rank": above + 1,
                    "barred": bool(is_barred), "stars": earned_stars}

    def row(hid: int, **fields: Any) -> dict[str, Any]:
        name, gid, group = listed[hid]
        return {"household_id": hid, "name": name, "group_id": gid, "group": group,
                "points": points[hid], **fields}

    black = [row(r["household_id"], vetoed=r["vetoed"], items=r["items"])
             for r in _black_list(session, candidates, barred, points, period, tz,
                                  policy.black_list_min_deduction)]
    corrections = _reversal_notes(session, village_id, period)
    if late_waiting is not None:
        corrections += _late_notes(session, village_id, period)
    corrections += _late_veto_notes(session, village_id, period)
    if mine is not None:
        mine.update(total=households - len(barred),
                    on_black_list=any(r["household_id"] == mine["household_id"]
                                      for r in black))
    board = {
        "village_id": village_id,
        "village_name": village_name,
        "period": period.key,
        "period_label": period_label(period),
        "status": "open",
        "closed_at": None,
        "closed_by": None,
        "tie_rule": TIE_RULE,
        "red_list_size": prefs.red_list_size,
        "qualification_line": policy.qualification_line,
        "star_levels": list(policy.star_levels),
        "households": households,
        "participating": participating,
        "red": [row(hid, rank=rank, stars=n) for hid, rank, n in red],
        "black": black,
        "stars": sorted((row(hid, stars=n) for hid, n in stars),
                        key=lambda r: (-r["stars"], -r["points"], r["household_id"])),
        "corrections": corrections,
        "barred": sorted(barred),
        "mine": mine,
        # What the printed board commits to: set when the month is closed (points.notice).
        "month_root": None,
        "month_leaves": None,
    }
    if full:
        board["totals"] = dict(_rows(session, _all_scores(single),
                                     {"village_id": village_id, "month": period.first,
                                      "months": list(period.months)}))
    return board


def snapshot_of(session: Session, village_id: int, month: str) -> BoardSnapshot | None:
    return session.scalar(select(BoardSnapshot).where(
        BoardSnapshot.village_id == village_id, BoardSnapshot.period == month))


def village_board(session: Session, village_id: int, period: Period, tz: ZoneInfo, *,
                  household_id: int | None = None) -> dict[str, Any]:
    """The published board of a closed month, else the board as it stands now; `mine` is
    the place of `household_id` on it."""
    if period.kind == "month":
        published = snapshot_of(session, village_id, period.key)
        if published is not None:
            board = published_board(published)
            board["mine"] = own_standing(board, household_id)
            return board
    return build_board(session, village_id, period, tz, household_id=household_id)


def published_board(snapshot: BoardSnapshot) -> dict[str, Any]:
    data = dict(snapshot.data)
    data.update(status="closed", closed_at=snapshot.created_at, closed_by=snapshot.closed_by,
                mine=None, month_root=snapshot.month_root, month_leaves=snapshot.month_leaves)
    return data


def own_standing(board: dict[str, Any], household_id: int | None) -> dict[str, Any] | None:
    """A household's own place on a published board, barred or hidden or not (the
    villager's view), from the scores the snapshot keeps."""
    if household_id is None:
        return None
    totals = {int(k): v for k, v in board["totals"].items()}
    if household_id not in totals:
        return None
    barred = set(board["barred"])
    points = totals[household_id]
    eligible = [p for hid, p in totals.items() if hid not in barred]
    rank = 1 + sum(1 for p in eligible if p > points)
    on_black = any(row["household_id"] == household_id for row in board["black"])
    stars = rules.stars(points, board["qualification_line"], board["star_levels"],
                        barred=household_id in barred)
    return {"household_id": household_id, "points": points, "rank": rank,
            "total": len(eligible), "barred": household_id in barred, "stars": stars,
            "on_black_list": on_black}


def public_board(board: dict[str, Any], prefs: BoardPrefs,
                 opted_out: set[int]) -> dict[str, Any]:
    """The board as posted on the wall: names masked when the village says so, households
    that opted out shown without a name."""
    def name(row: dict[str, Any]) -> dict[str, Any]:
        hidden = row["household_id"] in opted_out
        return {**row, "name": public_name(row["name"], mask=prefs.mask_names,
                                           opted_out=hidden),
                "household_id": None if hidden else row["household_id"]}

    out = {**board}
    for key in ("red", "black", "stars", "corrections"):
        out[key] = [name(row) for row in board[key]]
    out["masked"] = prefs.mask_names
    return out


def opted_out_among(session: Session, board: dict[str, Any]) -> set[int]:
    ids = {row["household_id"] for key in ("red", "black", "stars", "corrections")
           for row in board[key]}
    if not ids:
        return set()
    return set(session.scalars(select(Household.id).where(
        Household.id.in_(ids), Household.public_board_opt_out.is_(True))))


# ---- closing a month (结榜) --------------------------------------------------------------------

def undecided_months(session: Session, village_id: int, now: datetime, tz: ZoneInfo
                     ) -> dict[str, int]:
    """Months with claims still in review, budget approval, notice or objection, each by its
    deed's month. A per-hour check-in not yet checked out counts as the claim it will make,
    in the month its work began (activities.worked_from), until the activity ends: an
    evening's work that runs past the month's last midnight holds that month back until it
    is scored. After the end a forgotten check-out no longer holds the village's board; the
    claim it makes later shows on the next board as a late note."""
    counts: dict[str, int] = defaultdict(int)
    for occurred in session.scalars(select(Claim.occurred_at).where(
            Claim.village_id == village_id, Claim.status.in_(UNDECIDED))):
        counts[month_key(occurred.astimezone(tz))] += 1
    # No claim and no reason yet: only a per-hour check-in waits for its check-out so.
    for checked_in_at, starts_at in session.execute(
        select(CheckIn.checked_in_at, Activity.starts_at)
        .join(Activity, Activity.id == CheckIn.activity_id)
        .where(Activity.village_id == village_id, Activity.ends_at > now,
               CheckIn.checked_out_at.is_(None), CheckIn.claim_id.is_(None),
               CheckIn.reason.is_(None))
    ):
        counts[month_key(worked_from(checked_in_at, starts_at).astimezone(tz))] += 1
    return counts


def close_month(
    session: Session, village_id: int, month: str, *, now: datetime, tz: ZoneInfo,
    closed_by: int | None = None, force: bool = False,
) -> tuple[BoardSnapshot, bool]:
    """Freeze the village's board of `month` (结榜); the existing snapshot if already closed.
    Refused while the month runs, and (without `force`) while claims of it are undecided
    (a per-hour check-in of it not yet checked out counting as one: `undecided_months`).
    The late postings it notes are marked as noted by it. Under the village's row lock, as a
    late posting is decided (points.ledger): the board reads the month's totals and the late
    postings with no posting half-way between them."""
    period = parse_period(month)
    if period.kind != "month":
        raise Invalid("只能按月结榜", code="invalid_period", details={"period": month})
    session.execute(select(Village.id).where(Village.id == village_id)
                    .with_for_update(key_share=True))
    existing = snapshot_of(session, village_id, month)
    if existing is not None:
        return existing, False
    if month >= this_month(now, tz):
        raise MonthNotOver(details={"period": month})
    pending = undecided_months(session, village_id, now, tz).get(month, 0)
    if pending and not force:
        raise ClaimsUndecided(details={"period": month, "claims": pending})
    data = build_board(session, village_id, period, tz, full=True)
    data.pop("mine")
    snapshot = BoardSnapshot(
        village_id=village_id, period=month, data=data, created_at=now, closed_by=closed_by,
        fingerprint=fingerprint(data["totals"]))
    notice.commit_month(session, snapshot, tz)
    try:
        with session.begin_nested():
            session.add(snapshot)
    except IntegrityError:  # closed by a concurrent run: that board is the published one
        existing = snapshot_of(session, village_id, month)
        assert existing is not None
        return existing, False
    session.execute(
        update(LatePosting).where(_unnoted_late(village_id, month))
        .values(noted_in=snapshot.id).execution_options(synchronize_session=False))
    return snapshot, True


def close_board(session: Session, actor: Actor, village_id: int, month: str, *,
                now: datetime, tz: ZoneInfo, force: bool = False) -> BoardSnapshot:
    """A cadre publishes the month's board."""
    village = get_visible(session, actor, Village, village_id)
    authorize(actor, "board.close")
    snapshot, created = close_month(session, village.id, month, now=now, tz=tz,
                                    closed_by=actor.user_id, force=force)
    if not created:
        raise Conflict("这个月的榜单已经发布", code="board_closed",
                       details={"period": month})
    audit.record(session, actor, "board.close", snapshot,
                 after={"period": month, "force": force}, village_id=village.id)
    return snapshot


def close_all(session: Session, month: str, *, now: datetime, tz: ZoneInfo,
              village_id: int | None = None, force: bool = False
              ) -> list[tuple[int, str]]:
    """`flask rankings close YYYY-MM`: every village (or one); (village id, outcome) each.
    Commits per village, so one refusal does not hold back the others."""
    ids = [village_id] if village_id is not None else list(
        session.scalars(select(Village.id).order_by(Village.id)))
    outcomes = []
    for vid in ids:
        if session.get(Village, vid) is None:
            raise NotFound("没有这个村", code="village_not_found")
        try:
            _, created = close_month(session, vid, month, now=now, tz=tz, force=force)
        except ClaimsUndecided as exc:
            session.rollback()
            outcomes.append((vid, f"skipped: {exc.details['claims']} claim(s) undecided"))
            continue
        session.commit()
        outcomes.append((vid, "closed" if created else "already closed"))
    return outcomes


def close_due(session: Session, now: datetime, tz: ZoneInfo) -> list[tuple[int, str]]:
    """Close every ended month whose claims are all decided (the notice is over), for every
    village, from its first month with points. Run by cron after `flask claims post-due`."""
    last = add_months(this_month(now, tz), -1)
    closed = []
    for village_id in list(session.scalars(select(Village.id).order_by(Village.id))):
        first = session.scalar(select(func.min(MonthTotal.month)).where(
            MonthTotal.village_id == village_id))
        if first is None or first > last:
            continue
        done = set(session.scalars(select(BoardSnapshot.period).where(
            BoardSnapshot.village_id == village_id)))
        waiting = undecided_months(session, village_id, now, tz)
        for month in months_between(first, last):
            if month in done or waiting.get(month):
                continue
            _, created = close_month(session, village_id, month, now=now, tz=tz)
            session.commit()
            if created:
                closed.append((village_id, month))
    return closed


# ---- statistics -----------------------------------------------------------------------------

def village_stats(session: Session, village_id: int, period: Period) -> dict[str, Any]:
    """Participation (households with any earning) per villager group, points by category,
    the top items and a 12-month trend."""
    scope = Scope("village", village_id, (village_id,))
    standings = household_standings(session, scope, period)
    groups = dict(session.execute(select(VillagerGroup.id, VillagerGroup.name).where(
        VillagerGroup.village_id == village_id)).all())
    per_group: dict[int | None, list[int]] = defaultdict(lambda: [0, 0])
    for s in standings:
        per_group[s.group_id][0] += 1
        per_group[s.group_id][1] += s.earned > 0
    participation = [
        {"group_id": gid, "group": groups.get(gid) if gid else "未分组",
         "households": n, "participating": p, "rate": round(p / n, 4) if n else 0.0}
        for gid, (n, p) in sorted(per_group.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))
    ]
    participating = sum(1 for s in standings if s.earned > 0)

    # Entries of the period only, through (account, month): bounded by the period's activity.
    # Corrections count only where they correct a score: a reversed opening balance (期初)
    # or expiry was never a category's points.
    corrected = aliased(LedgerEntry)
    scores = tuple(sorted(ledger.SCORE_KINDS))
    rows = session.execute(
        select(LedgerEntry.rule_item_version_id, LedgerEntry.kind,
               func.count(), func.sum(LedgerEntry.amount))
        .join(Account, Account.id == LedgerEntry.account_id)
        .outerjoin(corrected, corrected.id == LedgerEntry.reverses_id)
        .where(Account.village_id == village_id, LedgerEntry.month.in_(period.months),
               or_(LedgerEntry.kind.in_(scores),
                   and_(LedgerEntry.kind == "reverse", corrected.kind.in_(scores))))
        .group_by(LedgerEntry.rule_item_version_id, LedgerEntry.kind)
    ).all()
    versions = _version_names(session, [r[0] for r in rows])
    categories: dict[str, dict[str, int]] = defaultdict(
        lambda: {"earned": 0, "deducted": 0, "corrected": 0, "net": 0})
    items: dict[tuple[str, str], dict[str, Any]] = {}
    for version_id, kind, count, amount in rows:
        data = versions.get(version_id, {})
        category = data.get("category") or "其他"
        amount = int(amount or 0)
        bucket = categories[category]
        bucket["net"] += amount
        if kind == "earn":
            bucket["earned"] += amount
        elif kind == "deduct":
            bucket["deducted"] += amount
        else:
            bucket["corrected"] += amount
        if kind in ("earn", "deduct") and version_id is not None:
            key = (data.get("code") or str(version_id), data.get("name") or "")
            item = items.setdefault(key, {"code": key[0], "name": key[1],
                                          "category": category, "count": 0, "points": 0})
            item["count"] += int(count)
            item["points"] += amount
    top = sorted(items.values(), key=lambda i: (-i["count"], -abs(i["points"]), i["code"]))
    return {
        "village_id": village_id,
        "period": period.key,
        "households": len(standings),
        "participating": participating,
        "participation_rate": round(participating / len(standings), 4) if standings else 0.0,
        "points": sum(s.points for s in standings),
        "participation_by_group": participation,
        "points_by_category": [{"category": c, **v} for c, v in sorted(
            categories.items(), key=lambda kv: -kv[1]["earned"])],
        "top_items": top[:10],
        "trend": trend(session, village_id, period.last),
    }


def trend(session: Session, village_id: int, last: str) -> list[dict[str, Any]]:
    """The 12 months ending with `last`: points, earned, deducted and households earning."""
    months = months_between(add_months(last, -(MAX_TREND_MONTHS - 1)), last)
    rows = {m: (score, earned, deducted, active) for m, score, earned, deducted, active in
            session.execute(
                select(MonthTotal.month, func.sum(MonthTotal.score), func.sum(MonthTotal.earned),
                       func.sum(MonthTotal.deducted),
                       func.count().filter(MonthTotal.earned > 0))
                .where(MonthTotal.village_id == village_id, MonthTotal.month.in_(months))
                .group_by(MonthTotal.month))}
    return [{"month": m, "points": int(rows.get(m, (0,))[0] or 0),
             "earned": int(rows.get(m, (0, 0))[1] or 0),
             "deducted": int(rows.get(m, (0, 0, 0))[2] or 0),
             "participating": int(rows.get(m, (0, 0, 0, 0))[3] or 0)} for m in months]


def township_stats(session: Session, township_id: int, period: Period) -> list[dict[str, Any]]:
    """Each village's participation rate and points per household, ranked by participation
    (ties share a rank), with its rank by points per household beside it."""
    villages = dict(session.execute(select(Village.id, Village.name).where(
        Village.township_id == township_id)).all())
    if not villages:
        return []
    scope = Scope("township", township_id, tuple(sorted(villages)))
    standings = household_standings(session, scope, period)
    per_village: dict[int, list[int]] = {vid: [0, 0, 0] for vid in villages}
    for s in standings:
        counts = per_village[s.village_id]
        counts[0] += 1
        counts[1] += s.earned > 0
        counts[2] += s.points
    rows = []
    for vid, (households, participating, points) in per_village.items():
        rows.append({
            "village_id": vid, "village": villages[vid], "households": households,
            "participating": participating,
            "participation_rate": round(participating / households, 4) if households else 0.0,
            "points": points,
            "points_per_household": round(points / households, 2) if households else 0.0,
        })
    _competition(rows, "participation_rate", "rank")
    _competition(rows, "points_per_household", "points_rank")
    rows.sort(key=lambda r: (r["rank"], r["village_id"]))
    return rows


def _competition(rows: list[dict[str, Any]], key: str, rank_key: str) -> None:
    ordered = sorted(rows, key=lambda r: (-r[key], r["village_id"]))
    previous = None
    for position, row in enumerate(ordered, 1):
        if row[key] != previous:
            rank, previous = position, row[key]
        row[rank_key] = rank


# ---- public links: plates (门牌) and the online board ------------------------------------------

def existing_link(session: Session, *, household_id: int | None = None,
                  village_id: int | None = None) -> PublicLink | None:
    if household_id is not None:
        return session.scalar(select(PublicLink).where(PublicLink.household_id == household_id))
    return session.scalar(select(PublicLink).where(PublicLink.village_id == village_id))


def public_link(session: Session, *, household_id: int | None = None,
                village_id: int | None = None) -> PublicLink:
    """The household's plate link or the village's board link, made on first use."""
    link = existing_link(session, household_id=household_id, village_id=village_id)
    if link is not None:
        return link
    kind = "plate" if household_id is not None else "board"
    link = PublicLink(token=secrets.token_urlsafe(16), kind=kind, household_id=household_id,
                      village_id=village_id)
    try:
        with session.begin_nested():
            session.add(link)
    except IntegrityError:  # made meanwhile by another request
        link = existing_link(session, household_id=household_id, village_id=village_id)
        assert link is not None
    return link


def renew_plate(session: Session, actor: Actor, household_id: int) -> PublicLink:
    """A new plate token: the old printed plate stops opening the page."""
    household = get_visible(session, actor, Household, household_id)
    authorize(actor, "plate.renew")
    link = public_link(session, household_id=household.id)
    before = audit.snapshot(link)
    link.token = secrets.token_urlsafe(16)
    audit.record(session, actor, "plate.renew", link, before=before,
                 village_id=household.village_id)
    return link


def resolve_link(session: Session, token: str, kind: str) -> PublicLink:
    link = session.scalar(select(PublicLink).where(PublicLink.token == token,
                                                   PublicLink.kind == kind))
    if link is None:
        raise NotFound("二维码已失效或不存在", code="link_not_found")
    return link


def plate_view(session: Session, household_id: int, now: datetime, tz: ZoneInfo
               ) -> dict[str, Any]:
    """What the household's plate page shows: this year's stars, this month's points and
    rank in the village, under the village's privacy settings."""
    household = session.get(Household, household_id)
    if household is None:
        raise NotFound()
    village = session.get(Village, household.village_id)
    assert village is not None
    prefs = board_prefs(session, [village.id])[village.id]
    scope = Scope("village", village.id, (village.id,))
    month = parse_period(this_month(now, tz))
    standings = household_standings(session, scope, month)
    ranked = assign_ranks(standings)
    own = next(s for s in standings if s.household_id == household_id)
    name_households(session, [own])
    year = parse_period(month.key[:4])
    year_points = next(s for s in household_standings(session, scope, year)
                       if s.household_id == household_id)
    policy = catalogs.effective_policy(session, village.id)
    # A household that keeps off the public boards shows only that it exists: not even
    # whether a veto (一票否决) bars it, nor how many it would be ranked among.
    hidden = household.public_board_opt_out
    return {
        "village": village.name,
        "name": public_name(own.name, mask=prefs.mask_names, opted_out=hidden),
        "opted_out": hidden,
        "month": month.key,
        "month_label": period_label(month),
        "points": None if hidden else own.points,
        # A rank needs points to stand on: with the whole village at 0 in the first days of
        # a month every household would read "全村第 1 名". Ranked from the first point, as
        # the red list is.
        "rank": None if hidden or own.barred or own.points <= 0 else own.rank,
        "households": None if hidden else len(ranked),
        "barred": None if hidden else own.barred,
        "year": year.key,
        "stars": None if hidden else policy.stars(year_points.points,
                                                  barred=year_points.barred),
        "year_points": None if hidden else year_points.points,
    }
