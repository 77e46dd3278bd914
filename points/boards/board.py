"""The board (红黑榜) of a village for a month, quarter or year: the red list (示范户, the top
of the period), the black list (限期整改户, serious deductions and vetoes, with their items),
star households (星级文明户) and the corrections it notes; and a closed month's board as it
was published (`board_snapshots`), which never changes.

Everything comes from the period tables, so a village's monthly board costs O(households of
the village) and never grows with the ledger. Only the few households on the black list and
the month's reversals are read from `ledger_entries`, through indexes bounded by the month.
"""

from __future__ import annotations

from collections import defaultdict
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Boolean,
    Integer,
    ScalarSelect,
    Select,
    SQLColumnExpression,
    String,
    Subquery,
    bindparam,
    case,
    cast,
    func,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import Session, aliased

from rules.catalog import stars
from rules.ranking import rank_among

from .. import catalogs
from ..errors import NotFound
from ..models import (
    Account,
    BoardSnapshot,
    Claim,
    Household,
    HouseholdFlag,
    LedgerEntry,
    MonthTotal,
    RuleCatalog,
    RuleItemVersion,
    Village,
    VillagerGroup,
)
from ..models.boards import BoardSettings, LatePosting
from .corrections import board_corrections, item_name, unnoted_late
from .privacy import layered_prefs
from .standings import (
    BARRED,
    TIE_RULE,
    Period,
    among,
    fetch_rows,
    head_name,
    in_months,
    is_postgres,
    period_label,
    scalar_of,
)

_ITEM_BLACK_LIST = RuleItemVersion.data["black_list"].as_boolean()
_reversal = aliased(LedgerEntry)

# A monthly board is four queries, whatever the size of the ledger:
# 1. the village, its settings, its policy, and whether late postings wait for a board;
# 2. every household's score in the period, with names only for those the board may list;
# 3. the items of the black-listed households (flags and deductions);
# 4. the period's reversals of earlier months' entries and withdrawn vetoes (correction
#    notes: points.boards.corrections).


# Scalar subqueries rather than five outer joins: PostgreSQL plans this in half the time, and
# a board's statements are planned on every request (psycopg forgets prepared statements at
# each rollback, which ends every read-only request).
_OWN_TOWNSHIP = BoardSettings.township_id == Village.township_id
_OWN_VILLAGE = BoardSettings.village_id == Village.id
_VILLAGE = select(
    Village.name,
    Village.township_id,
    scalar_of(BoardSettings.mask_names, _OWN_TOWNSHIP),
    scalar_of(BoardSettings.red_list_size, _OWN_TOWNSHIP),
    scalar_of(BoardSettings.mask_names, _OWN_VILLAGE),
    scalar_of(BoardSettings.red_list_size, _OWN_VILLAGE),
    scalar_of(RuleCatalog.policy, RuleCatalog.village_id == Village.id),
    scalar_of(RuleCatalog.policy, RuleCatalog.township_id == Village.township_id),
    select(LatePosting.id)
    .where(unnoted_late(Village.id, bindparam("first")))
    .limit(1)
    .scalar_subquery(),
).where(Village.id == bindparam("village_id"))


def _period_totals(single: bool) -> Subquery:
    """Each household's score, earned and deducted in the period. A month is one row per
    household already (month_totals is unique by account and month): no grouping."""
    columns = (MonthTotal.household_id, MonthTotal.score, MonthTotal.earned, MonthTotal.deducted)
    if single:
        return (
            select(*columns)
            .where(
                MonthTotal.village_id == bindparam("village_id"),
                MonthTotal.month == bindparam("month"),
            )
            .subquery()
        )
    return (
        select(
            MonthTotal.household_id,
            func.sum(MonthTotal.score).label("score"),
            func.sum(MonthTotal.earned).label("earned"),
            func.sum(MonthTotal.deducted).label("deducted"),
        )
        .where(
            MonthTotal.village_id == bindparam("village_id"), in_months(MonthTotal.month, single)
        )
        .group_by(MonthTotal.household_id)
        .subquery()
    )


@cache
def _board_rows(single: bool) -> Select[*tuple[Any, ...]]:
    """The households a board may list (vetoed, deducted, in the top `size`, over the
    qualification line, or the caller's own `me`), ranked among the village's eligible
    households (ties share a rank), with the village's counts on every row. The database
    ranks the village's rows; only these few come back."""
    totals = _period_totals(single)
    scores = (
        select(
            Household.id,
            Household.name,
            Household.group_id,
            func.coalesce(totals.c.score, 0).label("score"),
            totals.c.earned,
            totals.c.deducted,
            BARRED.label("barred"),
        )
        .outerjoin(totals, totals.c.household_id == Household.id)
        .where(Household.village_id == bindparam("village_id"))
        .cte("scores")
    )
    ranked = select(
        scores,
        func.rank().over(partition_by=scores.c.barred, order_by=scores.c.score.desc()).label("rnk"),
    ).subquery("ranked")
    others = scores.alias("others")
    counts = scores.alias("counts")
    households = select(func.count()).select_from(counts).scalar_subquery()
    participating = (
        select(func.count()).select_from(counts).where(counts.c.earned > 0).scalar_subquery()
    )
    # The caller's own place counts the eligible households above it, barred or not itself.
    above = (
        select(func.count())
        .select_from(others)
        .where(~others.c.barred, others.c.score > ranked.c.score)
        .scalar_subquery()
    )
    groups = (
        select(VillagerGroup.id, VillagerGroup.name)
        .where(VillagerGroup.village_id == bindparam("village_id"))
        .subquery()
    )
    me = ranked.c.id == bindparam("me")
    return (
        select(
            ranked.c.id,
            ranked.c.score,
            ranked.c.deducted,
            ranked.c.barred,
            ranked.c.rnk,
            households,
            participating,
            func.coalesce(head_name(ranked.c.id), ranked.c.name),
            ranked.c.group_id,
            groups.c.name,
            case((me, above)),
        )
        .outerjoin(groups, groups.c.id == ranked.c.group_id)
        .where(
            ranked.c.barred
            | (ranked.c.deducted < 0)
            | (ranked.c.rnk <= bindparam("size"))
            | (ranked.c.score >= bindparam("line"))
            | me
        )
        .order_by(ranked.c.barred, ranked.c.rnk, ranked.c.id)
    )


@cache
def _all_scores(single: bool) -> Select[int, int]:
    """Every household's score in the period (for the published snapshot)."""
    totals = _period_totals(single)
    return (
        select(Household.id, func.coalesce(totals.c.score, 0))
        .outerjoin(totals, totals.c.household_id == Household.id)
        .where(Household.village_id == bindparam("village_id"))
    )


def _item_black_list(version_id: SQLColumnExpression[int | None]) -> ScalarSelect[bool]:
    return scalar_of(_ITEM_BLACK_LIST, RuleItemVersion.id == version_id)


# These statements use scalar subqueries rather than outer joins for the same reason as
# _VILLAGE: planning a many-way join costs more than running it for a few rows.
@cache
def _black_items(single: bool, postgres: bool) -> Select[*tuple[Any, ...]]:
    """The veto flags and the deductions (with the item, the day of the deed and whether a
    reversal undid it) of the black-listed households: index probes per household."""
    deductions = (
        select(
            Account.household_id,
            literal("deduct").label("kind"),
            LedgerEntry.amount,
            LedgerEntry.note,
            LedgerEntry.created_at,
            scalar_of(Claim.occurred_at, Claim.id == LedgerEntry.claim_id).label("occurred_at"),
            item_name(LedgerEntry.rule_item_version_id).label("item"),
            scalar_of(_reversal.id, _reversal.reverses_id == LedgerEntry.id).label("undone"),
            cast(null(), String).label("until_month"),
            LedgerEntry.id.label("seq"),
            _item_black_list(LedgerEntry.rule_item_version_id).label("black_list"),
        )
        .join(Account, Account.id == LedgerEntry.account_id)
        .where(
            among(Account.household_id, "households", postgres),
            in_months(LedgerEntry.month, single),
            LedgerEntry.kind == "deduct",
        )
    )
    flags = select(
        HouseholdFlag.household_id,
        literal("veto"),
        cast(null(), Integer),
        HouseholdFlag.note,
        HouseholdFlag.created_at,
        HouseholdFlag.created_at,
        item_name(scalar_of(Claim.rule_item_version_id, Claim.id == HouseholdFlag.claim_id)),
        cast(null(), Integer),
        HouseholdFlag.until_month,
        HouseholdFlag.id,
        cast(null(), Boolean),
    ).where(
        among(HouseholdFlag.household_id, "households", postgres),
        HouseholdFlag.withdrawal_id.is_(None),
        HouseholdFlag.from_month <= bindparam("last"),
        HouseholdFlag.until_month >= bindparam("first"),
    )
    both = union_all(deductions, flags).subquery()
    return select(both).order_by(both.c.kind.desc(), both.c.created_at, both.c.seq)


def _black_list(
    session: Session,
    candidates: list[int],
    barred: list[int],
    points: dict[int, int],
    period: Period,
    tz: ZoneInfo,
    min_deduction: int,
) -> list[dict[str, Any]]:
    """Households named on the black list (黑榜), each with its items: a veto flag, or
    deductions in the period that still stand coming to at least `min_deduction` points
    (the policy's black_list_min_deduction), or one of an item marked `black_list`. What
    villages post there are serious deductions and vetoes: a household with a single −1 for
    lateness, third on the red list, is not named on the black list as well. Reads the
    ledger of those few households only."""
    if not candidates:
        return []
    params = {
        "households": sorted(candidates),
        "months": list(period.months),
        "month": period.first,
        "first": period.first,
        "last": period.last,
    }
    items: dict[int, list[dict[str, Any]]] = defaultdict(list)
    standing: set[int] = set()
    deducted: dict[int, int] = defaultdict(int)
    for (
        hid,
        kind,
        amount,
        note,
        created_at,
        occurred_at,
        item,
        reversed_by,
        until_month,
        _,
        black_item,
    ) in fetch_rows(session, _black_items(len(period.months) == 1, is_postgres(session)), params):
        if kind == "veto":
            standing.add(hid)
            items[hid].append(
                {
                    "kind": "veto",
                    "item": item or "一票否决",
                    "points": None,
                    "note": note,
                    "date": None,
                    "until_month": until_month,
                    "reversed": False,
                }
            )
            continue
        if reversed_by is None:
            deducted[hid] -= amount
            if black_item:
                standing.add(hid)
        items[hid].append(
            {
                "kind": "deduct",
                "item": item or "扣分",
                "points": amount,
                "note": note,
                # The day of the deed (a claim posts after its notice), else of the entry.
                "date": (occurred_at or created_at).astimezone(tz).date().isoformat(),
                "until_month": None,
                "reversed": reversed_by is not None,
            }
        )
    standing |= {hid for hid, total in deducted.items() if total >= min_deduction}
    vetoed = set(barred)
    rows = [
        {"household_id": hid, "points": points[hid], "vetoed": hid in vetoed, "items": items[hid]}
        for hid in standing
    ]
    rows.sort(key=lambda r: (not r["vetoed"], r["points"], r["household_id"]))
    return rows


def build_board(
    session: Session,
    village_id: int,
    period: Period,
    tz: ZoneInfo,
    *,
    household_id: int | None = None,
    full: bool = False,
) -> dict[str, Any]:
    """The village's board for a period computed now, with full names (the internal form).
    `mine` is the place of `household_id` (the caller's own household) if it is of the
    village. `full` adds every household's score (`totals`), kept in a published snapshot.

    The hot path of every board: four queries (above) and objects only for the households
    the board lists."""
    found = fetch_rows(session, _VILLAGE, {"village_id": village_id, "first": period.first})
    if not found:
        raise NotFound()
    (
        village_name,
        _,
        township_mask,
        township_size,
        own_mask,
        own_size,
        own_policy,
        township_policy,
        late_waiting,
    ) = found[0]
    prefs = layered_prefs((township_mask, township_size), (own_mask, own_size))
    policy = catalogs.policy_of(own_policy, township_policy)
    single = len(period.months) == 1
    rows = fetch_rows(
        session,
        _board_rows(single),
        {
            "village_id": village_id,
            "month": period.first,
            "months": list(period.months),
            "first": period.first,
            "last": period.last,
            "size": prefs.red_list_size,
            "line": policy.qualification_line,
            "me": household_id,
        },
    )

    households, participating = (rows[0][5], rows[0][6] or 0) if rows else (0, 0)
    points: dict[int, int] = {}
    listed: dict[int, tuple[str, int | None, str | None]] = {}
    red, starred, barred, candidates = [], [], [], []
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
                starred.append((hid, earned_stars))
        if above is not None:
            mine = {
                "household_id": hid,
                "points": score,
                "rank": above + 1,
                "barred": bool(is_barred),
                "stars": earned_stars,
            }

    def row(hid: int, **fields: Any) -> dict[str, Any]:
        name, gid, group = listed[hid]
        return {
            "household_id": hid,
            "name": name,
            "group_id": gid,
            "group": group,
            "points": points[hid],
            **fields,
        }

    black = [
        row(r["household_id"], vetoed=r["vetoed"], items=r["items"])
        for r in _black_list(
            session, candidates, barred, points, period, tz, policy.black_list_min_deduction
        )
    ]
    corrections = board_corrections(
        session, village_id, period, late_waiting=late_waiting is not None
    )
    if mine is not None:
        mine.update(
            total=households - len(barred),
            on_black_list=any(r["household_id"] == mine["household_id"] for r in black),
        )
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
        "stars": sorted(
            (row(hid, stars=n) for hid, n in starred),
            key=lambda r: (-r["stars"], -r["points"], r["household_id"]),
        ),
        "corrections": corrections,
        "barred": sorted(barred),
        "mine": mine,
        # What the printed board commits to: set when the month is closed (points.notice).
        "month_root": None,
        "month_leaves": None,
    }
    if full:
        board["totals"] = dict(
            fetch_rows(
                session,
                _all_scores(single),
                {"village_id": village_id, "month": period.first, "months": list(period.months)},
            )
        )
    return board


def snapshot_of(session: Session, village_id: int, month: str) -> BoardSnapshot | None:
    return session.scalar(
        select(BoardSnapshot).where(
            BoardSnapshot.village_id == village_id, BoardSnapshot.period == month
        )
    )


def village_board(
    session: Session,
    village_id: int,
    period: Period,
    tz: ZoneInfo,
    *,
    household_id: int | None = None,
) -> dict[str, Any]:
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
    data.update(
        status="closed",
        closed_at=snapshot.created_at,
        closed_by=snapshot.closed_by,
        mine=None,
        month_root=snapshot.month_root,
        month_leaves=snapshot.month_leaves,
    )
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
    on_black = any(row["household_id"] == household_id for row in board["black"])
    # The line and levels the board was closed with, not today's policy.
    earned_stars = stars(
        points, board["qualification_line"], board["star_levels"], barred=household_id in barred
    )
    return {
        "household_id": household_id,
        "points": points,
        "rank": rank_among(points, eligible),
        "total": len(eligible),
        "barred": household_id in barred,
        "stars": earned_stars,
        "on_black_list": on_black,
    }
