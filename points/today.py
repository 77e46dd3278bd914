"""What waits for a staff member today (今日待办): the console's first page.

Everything is read through the caller's scope (`points.scope.visible`), so a cadre sees their
village, a township admin their township and a clerk their shop's orders; each list is cut to
its newest few, with the count beside it (exact up to TODAY_CAP, then "1000+": a county's
queue is counted without reading all of it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, exists
from sqlalchemy.orm import Session

from rules.claim_status import ClaimStatus
from rules.periods import month_key

from .budget import VillageBudget, village_budgets
from .counting import Count, capped_count
from .models import Activity, Claim, ClaimApproval, Objection, Redemption
from .scope import Actor, visible

SHOWN = 10  # rows of each list; the count says how many there are in all
# The counts stop here ("1000+"): more than a day's work is as much as this page needs to say,
# and the review queue (审核) counts and pages the rest.
TODAY_CAP = 1_000


@dataclass
class Listing:
    """The newest rows of one list and how many there are in all."""

    rows: list[Any] = field(default_factory=list)
    total: Count = field(default_factory=lambda: Count(0))


@dataclass
class Today:
    month: str
    waiting: Listing  # claims waiting for a review that I may give
    second: Listing  # claims one cadre approved, waiting for a second (双人审核)
    objections: Listing  # open objections (公示异议) to claims in my scope
    notices_ending: Listing  # claims whose notice (公示) ends within the week
    activities: Listing  # activities of today
    orders: Listing  # orders waiting to be picked up (待取货)
    budgets: list[VillageBudget]


def _listing(session: Session, stmt: Select[Any], order: Any) -> Listing:
    total = capped_count(session, stmt, TODAY_CAP)
    rows = list(session.scalars(stmt.order_by(order).limit(SHOWN))) if total else []
    return Listing(rows, total)


def _review_listings(
    session: Session, actor: Actor, pending: Select[Any]
) -> tuple[Listing, Listing]:
    """The pending claims waiting for a first review, and those one reviewer approved that
    wait for a second one not by me (双人审核): told apart by the claim's count of
    approvals, which an index holds with its status, so neither list probes the approvals
    of every pending claim of a county."""
    mine = exists().where(
        ClaimApproval.claim_id == Claim.id, ClaimApproval.user_id == actor.user_id
    )
    waiting = _listing(session, pending.where(Claim.approvals == 0), Claim.id.desc())
    second = _listing(session, pending.where(Claim.approvals > 0, ~mine), Claim.id.desc())
    return waiting, second


def staff_day(session: Session, actor: Actor, now: datetime, tz: ZoneInfo) -> Today:
    local = now.astimezone(tz)
    month = month_key(local)
    orders = _listing(
        session, visible(actor, Redemption).where(Redemption.status == "reserved"), Redemption.id
    )
    if not actor.can("claim.review"):  # a clerk: the counter's orders and nothing else
        empty = Listing()
        return Today(month, empty, empty, empty, empty, empty, orders, [])
    pending = visible(actor, Claim).where(Claim.status == ClaimStatus.PENDING)
    waiting, second = _review_listings(session, actor, pending)
    objections = visible(actor, Objection).where(Objection.status == "open")
    notices = visible(actor, Claim).where(
        Claim.status == ClaimStatus.IN_NOTICE,
        Claim.notice_ends_at >= now,
        Claim.notice_ends_at < now + timedelta(days=7),
    )
    day_start = datetime.combine(local.date(), time(), tzinfo=tz)
    activities = visible(actor, Activity).where(
        Activity.starts_at < day_start + timedelta(days=1),
        Activity.ends_at >= day_start,
        Activity.status != "cancelled",
    )
    return Today(
        month=month,
        waiting=waiting,
        second=second,
        objections=_listing(session, objections, Objection.id.desc()),
        notices_ending=_listing(session, notices, Claim.notice_ends_at),
        activities=_listing(session, activities, Activity.starts_at),
        orders=orders,
        budgets=village_budgets(session, actor, month, limit=SHOWN),
    )
