"""Village statistics for cadres (participation per villager group, points by category, the
top items, a 12-month trend) and the township's comparison of its villages."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rules.periods import add_months, months_between
from rules.ranking import competition_ranks

from ..models import (
    Household,
    MonthTotal,
    RuleItemVersion,
    Village,
    VillageMonthItem,
    VillageMonthTotal,
    VillagerGroup,
)
from ..village_totals import NO_ITEM
from .standings import Period, Scope, household_standings

MAX_TREND_MONTHS = 12


def village_stats(session: Session, village_id: int, period: Period) -> dict[str, Any]:
    """Participation (households with any earning) per villager group, points by category,
    the top items and a 12-month trend."""
    scope = Scope("village", village_id, (village_id,))
    standings = household_standings(session, scope, period)
    groups = dict(
        session.execute(
            select(VillagerGroup.id, VillagerGroup.name).where(
                VillagerGroup.village_id == village_id
            )
        ).all()
    )
    per_group: dict[int | None, list[int]] = defaultdict(lambda: [0, 0])
    for s in standings:
        per_group[s.group_id][0] += 1
        per_group[s.group_id][1] += s.earned > 0
    participation = [
        {
            "group_id": gid,
            "group": groups.get(gid) if gid else "未分组",
            "households": n,
            "participating": p,
            "rate": round(p / n, 4) if n else 0.0,
        }
        for gid, (n, p) in sorted(per_group.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))
    ]
    participating = sum(1 for s in standings if s.earned > 0)

    categories, items = _categories_and_items(session, (village_id,), period)
    top = sorted(items.values(), key=lambda i: (-i["count"], -abs(i["points"]), i["code"]))
    return {
        "village_id": village_id,
        "period": period.key,
        "households": len(standings),
        "participating": participating,
        "participation_rate": round(participating / len(standings), 4) if standings else 0.0,
        "points": sum(s.points for s in standings),
        "participation_by_group": participation,
        "points_by_category": categories,
        "top_items": top[:10],
        "trend": trend(session, (village_id,), period.last),
    }


def points_by_category(
    session: Session, village_ids: Sequence[int], period: Period
) -> list[dict[str, Any]]:
    """The villages' points of the period by category (earned, deducted, corrected, net),
    most earned first: one query for all of them, as each village's statistics would sum."""
    return _categories_and_items(session, village_ids, period)[0]


def _categories_and_items(
    session: Session, village_ids: Sequence[int], period: Period
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], dict[str, Any]]]:
    if not village_ids:
        return [], {}
    # The kept sums per village, month, item and kind (points.village_totals): a row per
    # village and item of the period, however many entries the month has. Reversals count
    # only where they correct a score: a reversed opening balance (期初) or expiry was never
    # a category's points.
    kept = VillageMonthItem
    rows = [
        (None if version_id == NO_ITEM else version_id, kind, count, amount)
        for version_id, kind, count, amount in session.execute(
            select(
                kept.rule_item_version_id, kept.kind, func.sum(kept.entries), func.sum(kept.amount)
            )
            .where(kept.village_id.in_(village_ids), kept.month.in_(period.months))
            .group_by(kept.rule_item_version_id, kept.kind)
        )
    ]
    versions = _version_names(session, [r[0] for r in rows])
    categories: dict[str, dict[str, int]] = defaultdict(
        lambda: {"earned": 0, "deducted": 0, "corrected": 0, "net": 0}
    )
    items: dict[tuple[str, str], dict[str, Any]] = {}
    for version_id, kind, count, amount in rows:
        data = versions.get(version_id, {}) if version_id is not None else {}
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
            item = items.setdefault(
                key, {"code": key[0], "name": key[1], "category": category, "count": 0, "points": 0}
            )
            item["count"] += int(count)
            item["points"] += amount
    by_category = [
        {"category": c, **v}
        for c, v in sorted(categories.items(), key=lambda kv: (-kv[1]["earned"], kv[0]))
    ]
    return by_category, items


def trend(session: Session, village_ids: Sequence[int], last: str) -> list[dict[str, Any]]:
    """The 12 months ending with `last`: points, earned, deducted and households earning, of
    these villages together (one query, those 12 months only)."""
    months = months_between(add_months(last, -(MAX_TREND_MONTHS - 1)), last)
    if not village_ids:
        return [
            {"month": m, "points": 0, "earned": 0, "deducted": 0, "participating": 0}
            for m in months
        ]
    # The kept village months (points.village_totals): a row per village and month.
    total = VillageMonthTotal
    rows = {
        m: (score, earned, deducted, active)
        for m, score, earned, deducted, active in session.execute(
            select(
                total.month,
                func.sum(total.score),
                func.sum(total.earned),
                func.sum(total.deducted),
                func.sum(total.participating),
            )
            .where(total.village_id.in_(village_ids), total.month.in_(months))
            .group_by(total.month)
        )
    }
    return [
        {
            "month": m,
            "points": int(rows.get(m, (0,))[0] or 0),
            "earned": int(rows.get(m, (0, 0))[1] or 0),
            "deducted": int(rows.get(m, (0, 0, 0))[2] or 0),
            "participating": int(rows.get(m, (0, 0, 0, 0))[3] or 0),
        }
        for m in months
    ]


def township_stats(session: Session, township_id: int, period: Period) -> list[dict[str, Any]]:
    """Each village's participation rate and points per household, ranked by participation
    (ties share a rank), with its rank by points per household beside it."""
    villages = dict(
        session.execute(
            select(Village.id, Village.name).where(Village.township_id == township_id)
        ).all()
    )
    if not villages:
        return []
    per_village: dict[int, tuple[int, int, int]] = {vid: (0, 0, 0) for vid in villages}
    per_village.update(village_figures(session, sorted(villages), period))
    rows = []
    for vid, (households, participating, points) in per_village.items():
        rows.append(
            {
                "village_id": vid,
                "village": villages[vid],
                "households": households,
                "participating": participating,
                "participation_rate": round(participating / households, 4) if households else 0.0,
                "points": points,
                "points_per_household": round(points / households, 2) if households else 0.0,
            }
        )
    _competition(rows, "participation_rate", "rank")
    _competition(rows, "points_per_household", "points_rank")
    rows.sort(key=lambda r: (r["rank"], r["village_id"]))
    return rows


def village_figures(
    session: Session, village_ids: Sequence[int], period: Period
) -> dict[int, tuple[int, int, int]]:
    """Per village: its households, those that earned in the period, and their points, as
    `household_standings` would add them up, summed by the database: a township's figures
    are one row a village, not one a household. For one month, from the kept village month
    (`VillageMonthTotal`: its score and its households that earned), whose rows do not grow
    with the month's activity; over several, a household earning in any of them counts once,
    which monthly counts cannot tell, so from the households' month totals."""
    if len(period.months) == 1:
        households = session.execute(
            select(Household.village_id, func.count())
            .where(Household.village_id.in_(village_ids))
            .group_by(Household.village_id)
        ).all()
        kept = {
            vid: (int(participating), int(score))
            for vid, participating, score in session.execute(
                select(
                    VillageMonthTotal.village_id,
                    VillageMonthTotal.participating,
                    VillageMonthTotal.score,
                ).where(
                    VillageMonthTotal.village_id.in_(village_ids),
                    VillageMonthTotal.month == period.months[0],
                )
            )
        }
        return {vid: (int(n), *kept.get(vid, (0, 0))) for vid, n in households}
    totals = (
        select(
            MonthTotal.household_id,
            func.sum(MonthTotal.score).label("score"),
            func.sum(MonthTotal.earned).label("earned"),
        )
        .where(MonthTotal.village_id.in_(village_ids), MonthTotal.month.in_(period.months))
        .group_by(MonthTotal.household_id)
        .subquery()
    )
    rows = session.execute(
        select(
            Household.village_id,
            func.count(),
            func.count().filter(totals.c.earned > 0),
            func.coalesce(func.sum(totals.c.score), 0),
        )
        .outerjoin(totals, totals.c.household_id == Household.id)
        .where(Household.village_id.in_(village_ids))
        .group_by(Household.village_id)
    )
    return {vid: (int(n), int(p), int(points)) for vid, n, p, points in rows}


def _competition(rows: list[dict[str, Any]], key: str, rank_key: str) -> None:
    """Rank the rows by `key`, best first, ties sharing a rank (1, 2, 2, 4)."""
    ordered = sorted(rows, key=lambda r: (-r[key], r["village_id"]))
    for row, rank in zip(ordered, competition_ranks([r[key] for r in ordered]), strict=True):
        row[rank_key] = rank


def _version_names(
    session: Session, version_ids: Iterable[int | None]
) -> dict[int, dict[str, Any]]:
    ids = {v for v in version_ids if v is not None}
    if not ids:
        return {}
    return {
        vid: data
        for vid, data in session.execute(
            select(RuleItemVersion.id, RuleItemVersion.data).where(RuleItemVersion.id.in_(ids))
        )
    }
