"""Closing a month (结榜): the village's board frozen as published (`board_snapshots`).

By hand (`flask rankings close YYYY-MM`, or a cadre's POST …/board/close), and by the cron
`flask rankings close-due`, run after `flask claims post-due`, which closes every ended month
whose claims are all decided (none pending, awaiting the township, in notice or objected, and
no per-hour check-in of the month waiting for its check-out while its activity runs). What
changes a closed month later is noted on a later board (points.boards.corrections); the
closed board never changes.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rules.claim_status import UNDECIDED
from rules.periods import add_months, month_key, months_between

from .. import audit, notice
from ..activities.checkin import worked_from
from ..errors import Conflict, DomainError, Invalid, NotFound
from ..models import Claim, LatePosting, MonthTotal, Village
from ..models.activities import Activity, CheckIn
from ..models.boards import BoardSnapshot
from ..scope import Actor, authorize, get_visible
from .board import build_board, snapshot_of
from .corrections import unnoted_late
from .standings import parse_period


class MonthNotOver(DomainError):
    status = 422
    code = "month_not_over"
    message = "这个月还没有结束，不能结榜"


class ClaimsUndecided(DomainError):
    status = 409
    code = "claims_undecided"
    message = "本月还有申报在审核或公示中，或有按小时计分的签到尚未签退，暂不能结榜"


def fingerprint(totals: dict[int, int]) -> str:
    """count:sum:Σ id·score:Σ id²·score of a board's non-zero totals at closing."""
    scored = [(hid, points) for hid, points in totals.items() if points]
    return ":".join(
        str(n)
        for n in (
            len(scored),
            sum(p for _, p in scored),
            sum(h * p for h, p in scored),
            sum(h * h * p for h, p in scored),
        )
    )


def undecided_months(
    session: Session, village_id: int, now: datetime, tz: ZoneInfo
) -> dict[str, int]:
    """Months with claims still in review, budget approval, notice or objection, each by its
    deed's month. A per-hour check-in not yet checked out counts as the claim it will make,
    in the month its work began (activities.worked_from), until the activity ends: an
    evening's work that runs past the month's last midnight holds that month back until it
    is scored. After the end a forgotten check-out no longer holds the village's board; the
    claim it makes later shows on the next board as a late note."""
    counts: dict[str, int] = defaultdict(int)
    for occurred in session.scalars(
        select(Claim.occurred_at).where(Claim.village_id == village_id, Claim.status.in_(UNDECIDED))
    ):
        counts[month_key(occurred.astimezone(tz))] += 1
    # No claim and no reason yet: only a per-hour check-in waits for its check-out so.
    for checked_in_at, starts_at in session.execute(
        select(CheckIn.checked_in_at, Activity.starts_at)
        .join(Activity, Activity.id == CheckIn.activity_id)
        .where(
            Activity.village_id == village_id,
            Activity.ends_at > now,
            CheckIn.checked_out_at.is_(None),
            CheckIn.claim_id.is_(None),
            CheckIn.reason.is_(None),
        )
    ):
        counts[month_key(worked_from(checked_in_at, starts_at).astimezone(tz))] += 1
    return counts


def close_month(
    session: Session,
    village_id: int,
    month: str,
    *,
    now: datetime,
    tz: ZoneInfo,
    closed_by: int | None = None,
    force: bool = False,
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
    session.execute(
        select(Village.id).where(Village.id == village_id).with_for_update(key_share=True)
    )
    existing = snapshot_of(session, village_id, month)
    if existing is not None:
        return existing, False
    if month >= month_key(now.astimezone(tz)):
        raise MonthNotOver(details={"period": month})
    pending = undecided_months(session, village_id, now, tz).get(month, 0)
    if pending and not force:
        raise ClaimsUndecided(details={"period": month, "claims": pending})
    data = build_board(session, village_id, period, tz, full=True)
    data.pop("mine")
    snapshot = BoardSnapshot(
        village_id=village_id,
        period=month,
        data=data,
        created_at=now,
        closed_by=closed_by,
        fingerprint=fingerprint(data["totals"]),
    )
    notice.commit_month(session, snapshot, tz)
    try:
        with session.begin_nested():
            session.add(snapshot)
    except IntegrityError:  # closed by a concurrent run: that board is the published one
        existing = snapshot_of(session, village_id, month)
        assert existing is not None
        return existing, False
    session.execute(
        update(LatePosting)
        .where(unnoted_late(village_id, month))
        .values(noted_in=snapshot.id)
        .execution_options(synchronize_session=False)
    )
    return snapshot, True


def close_board(
    session: Session,
    actor: Actor,
    village_id: int,
    month: str,
    *,
    now: datetime,
    tz: ZoneInfo,
    force: bool = False,
) -> BoardSnapshot:
    """A cadre publishes the month's board."""
    village = get_visible(session, actor, Village, village_id)
    authorize(actor, "board.close")
    snapshot, created = close_month(
        session, village.id, month, now=now, tz=tz, closed_by=actor.user_id, force=force
    )
    if not created:
        raise Conflict("这个月的榜单已经发布", code="board_closed", details={"period": month})
    audit.record(
        session,
        actor,
        "board.close",
        snapshot,
        after={"period": month, "force": force},
        village_id=village.id,
    )
    return snapshot


def close_all(
    session: Session,
    month: str,
    *,
    now: datetime,
    tz: ZoneInfo,
    village_id: int | None = None,
    force: bool = False,
) -> list[tuple[int, str]]:
    """`flask rankings close YYYY-MM`: every village (or one); (village id, outcome) each.
    Commits per village, so one refusal does not hold back the others."""
    ids = (
        [village_id]
        if village_id is not None
        else list(session.scalars(select(Village.id).order_by(Village.id)))
    )
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
    last = add_months(month_key(now.astimezone(tz)), -1)
    closed = []
    for village_id in list(session.scalars(select(Village.id).order_by(Village.id))):
        first = session.scalar(
            select(func.min(MonthTotal.month)).where(MonthTotal.village_id == village_id)
        )
        if first is None or first > last:
            continue
        done = set(
            session.scalars(
                select(BoardSnapshot.period).where(BoardSnapshot.village_id == village_id)
            )
        )
        waiting = undecided_months(session, village_id, now, tz)
        for month in months_between(first, last):
            if month in done or waiting.get(month):
                continue
            _, created = close_month(session, village_id, month, now=now, tz=tz)
            session.commit()
            if created:
                closed.append((village_id, month))
    return closed
