"""The villager's home screen (首页) in one read: the household's points (spendable, held by
orders, in public notice), this month's score and rank, its stars (星级), whether it reaches
the qualification line (合格线), and what needs its attention.

Each figure is the one the screen's own page shows (the account, the notice, the rankings,
the plate, the supermarket), computed by the same functions: a dozen queries, none per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rules.claim_status import ClaimStatus
from rules.periods import month_key

from . import catalogs
from .boards.standings import (
    Scope,
    assign_ranks,
    household_standings,
    parse_period,
    period_label,
)
from .claims import IN_NOTICE
from .models import (
    Account,
    Claim,
    Household,
    Objection,
    Redemption,
    RedemptionLine,
    RuleItemVersion,
    Shop,
    Village,
    Villager,
)
from .scope import Actor
from .shop import qualification

# Rejected claims stay on the home screen this long after their decision.
REJECTED_SHOWN_DAYS = 30
# An order waiting for pickup is flagged this long before it expires.
EXPIRY_WARNING = timedelta(hours=24)


@dataclass(frozen=True)
class Bound:
    household_id: int
    village_id: int


def bound(actor: Actor) -> Bound:
    """The caller's household, or 403 `not_bound` (as every /me read answers)."""
    household_id = actor.require_household()
    # A household is always of a village, so a bound actor has one.
    assert actor.village_id is not None
    return Bound(household_id, actor.village_id)


def home(session: Session, actor: Actor, now: datetime, tz: ZoneInfo) -> dict[str, Any]:
    me = bound(actor)
    village_name, household_name, villager_name = session.execute(
        select(Village.name, Household.name, Villager.name)
        .select_from(Household)
        .join(Village, Village.id == Household.village_id)
        .outerjoin(Villager, Villager.id == actor.villager_id)
        .where(Household.id == me.household_id)
    ).one()
    account = session.scalar(select(Account).where(Account.household_id == me.household_id))
    in_notice, in_notice_count = session.execute(
        select(func.coalesce(func.sum(Claim.points), 0), func.count()).where(
            Claim.household_id == me.household_id, Claim.status.in_(IN_NOTICE)
        )
    ).one()

    scope = Scope("village", me.village_id, (me.village_id,))
    month = parse_period(month_key(now.astimezone(tz)))
    standings = household_standings(session, scope, month)
    ranked = assign_ranks(standings)
    own = next((s for s in standings if s.household_id == me.household_id), None)
    points = own.points if own is not None else 0
    barred = own.barred if own is not None else False
    year = parse_period(month.key[:4])
    year_own = next(
        (s for s in household_standings(session, scope, year) if s.household_id == me.household_id),
        None,
    )
    year_points = year_own.points if year_own is not None else 0

    policy = catalogs.effective_policy(session, me.village_id)
    line = policy.qualification_line
    score = qualification.qualifying_score(session, account, now, tz) if account else 0
    return {
        "village_id": me.village_id,
        "village_name": village_name,
        "household_id": me.household_id,
        "household_name": household_name,
        "villager_name": villager_name,
        "points": {
            "available": account.available if account else 0,
            "held": account.held if account else 0,
            "in_notice": int(in_notice),
            "in_notice_count": int(in_notice_count),
        },
        "month": {
            "period": month.key,
            "label": period_label(month),
            "points": points,
            # No place at 0 points (nothing done yet is not "last of 120"), nor when a veto
            # bars the household from the board.
            "rank": None if points == 0 or barred or own is None else own.rank,
            "households": len(ranked),
            "barred": barred,
        },
        "stars": {
            "year": year.key,
            "points": year_points,
            "stars": policy.stars(
                year_points, barred=year_own.barred if year_own is not None else False
            ),
            "levels": list(policy.star_levels),
        },
        "qualification": {
            "line": line,
            "score": score,
            "gap": max(0, line - score),
            "qualified": line <= 0 or score >= line,
            "months": qualification.QUALIFYING_MONTHS,
        },
        "attention": attention(session, me.household_id, now),
    }


def attention(session: Session, household_id: int, now: datetime) -> list[dict[str, Any]]:
    """What the household should look at: objections to its claims waiting for a decision,
    claims rejected lately, orders to pick up before they expire. Newest first within each
    kind; four queries."""
    items: list[dict[str, Any]] = []
    for objection_id, claim_id, data, reason, at in session.execute(
        select(Objection.id, Claim.id, RuleItemVersion.data, Objection.reason, Objection.created_at)
        .join(Claim, Claim.id == Objection.claim_id)
        .join(RuleItemVersion, RuleItemVersion.id == Claim.rule_item_version_id)
        .where(Claim.household_id == household_id, Objection.status == "open")
        .order_by(Objection.id.desc())
    ):
        items.append(
            {
                "kind": "objection",
                "claim_id": claim_id,
                "objection_id": objection_id,
                "redemption_id": None,
                "title": (data or {}).get("name"),
                "points": None,
                "reason": reason,
                "at": at,
                "expires_at": None,
            }
        )
    since = now - timedelta(days=REJECTED_SHOWN_DAYS)
    decided = func.coalesce(Claim.decided_at, Claim.created_at)
    for claim_id, data, points, reason, at in session.execute(
        select(Claim.id, RuleItemVersion.data, Claim.points, Claim.reject_reason, decided)
        .join(RuleItemVersion, RuleItemVersion.id == Claim.rule_item_version_id)
        .where(
            Claim.household_id == household_id,
            Claim.status == ClaimStatus.REJECTED,
            decided >= since,
        )
        .order_by(Claim.id.desc())
    ):
        items.append(
            {
                "kind": "rejected",
                "claim_id": claim_id,
                "objection_id": None,
                "redemption_id": None,
                "title": (data or {}).get("name"),
                "points": points,
                "reason": reason,
                "at": at,
                "expires_at": None,
            }
        )
    orders = session.execute(
        select(
            Redemption.id,
            Redemption.points,
            Redemption.created_at,
            Redemption.expires_at,
            Shop.name,
        )
        .join(Shop, Shop.id == Redemption.shop_id)
        .where(
            Redemption.household_id == household_id,
            Redemption.status == "reserved",
            Redemption.expires_at.is_not(None),
            Redemption.expires_at > now,
            Redemption.expires_at <= now + EXPIRY_WARNING,
        )
        .order_by(Redemption.expires_at, Redemption.id)
    ).all()
    goods: dict[int, list[str]] = {}
    if orders:
        for redemption_id, name in session.execute(
            select(RedemptionLine.redemption_id, RedemptionLine.name)
            .where(RedemptionLine.redemption_id.in_([o[0] for o in orders]))
            .order_by(RedemptionLine.id)
        ):
            goods.setdefault(redemption_id, []).append(name)
    for redemption_id, points, at, expires_at, shop in orders:
        items.append(
            {
                "kind": "order_expiring",
                "claim_id": None,
                "objection_id": None,
                "redemption_id": redemption_id,
                "title": f"{'、'.join(goods.get(redemption_id, []))}（{shop}）",
                "points": points,
                "reason": None,
                "at": at,
                "expires_at": expires_at,
            }
        )
    return items
