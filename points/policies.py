"""Village policies that act on accounts: the periodic reset of spendable points (定期清零).

A village whose policy resets quarterly or yearly lets households spend a period's points
until the period ends (the village's midnight); then what the period left spendable expires.
What that is, precisely, for the period ending at `end`:

- Points are dated by when they became spendable, the entry's `created_at`: a claim's points
  when it posted after its public notice (公示), not the day of the deed. A claim of the
  ended period still in notice at its end was never spendable in it: it posts into the new
  period and goes with the new period's reset.
- Spending takes the oldest points first (先得先用); an order takes them when it holds them.
- Awards, deductions and corrections dated at or after `end` (earn, deduct, adjust, reverse)
  belong to the new period, whatever they correct. So the ended period left
  max(0, available - their sum): a run at 08:00 expires what a run at midnight would have,
  except what was spent in between, and a deduction made since does not eat the expiring
  points (it is the new period's, as it would have been after a midnight run).
- The reset takes everything older than `end`, older periods' points too: a household does
  not keep a stock of points that never expires while its neighbours' do. So that switching
  a village to a reset never wipes points at once, a village's first ended period under a
  cycle (no reset recorded for the period before it) is recorded as a baseline and expires
  nothing; its resets start with the next period's end.
- Points an open order holds at the reset cannot be expired then; the reset records how many
  of them are the period's (all of them if the order came before `end`; of an order placed
  after `end`, before a late run, its share of what the period left, oldest first), and they
  expire when the order is cancelled or expires instead of being picked up.

Each village's period is reset once: a `PeriodReset` row, unique per village and period,
written in the transaction of the village's expire entries; a run resets only the last
period that has ended and is not recorded, so running it daily is safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from rules.periods import period_key, period_start

from . import catalogs, ledger
from .db import upsert_insert
from .models import (
    Account,
    LedgerEntry,
    PeriodReset,
    PeriodResetHold,
    Redemption,
    Village,
)

CYCLE_PERIOD = {"quarterly": "quarter", "yearly": "year"}
# Entries that belong to the period they are dated in; spending and expiry take the oldest
# points instead.
NEW_PERIOD_KINDS = ("earn", "deduct", "adjust", "reverse")
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class VillageReset:
    village_id: int
    period: str
    baseline: bool  # recorded as where the village's resets start: nothing expired
    accounts: int
    points: int


@dataclass(frozen=True)
class EndedPeriod:
    key: str  # 2026-Q1, 2026
    end: datetime  # the village's midnight that ended it
    previous: str  # the key of the period before it


def reset_note(period: str) -> str:
    return f"定期清零 {period}"


def ended_period(cycle: str, now: datetime, tz: ZoneInfo) -> EndedPeriod:
    """The village's last period of `cycle` that has ended by `now`."""
    period = CYCLE_PERIOD[cycle]
    end = period_start(period, now.astimezone(tz))
    last = end - _TICK
    return EndedPeriod(
        period_key(period, last), end, period_key(period, period_start(period, last) - _TICK)
    )


def reset_spendable(session: Session, now: datetime, tz: ZoneInfo) -> list[VillageReset]:
    """Reset, in every village whose policy says so, its last ended period if not yet
    recorded; each village in a transaction of its own (its record and its expire entries
    commit together). Safe to run daily, twice, or twice at once."""
    done = []
    for village_id in list(session.scalars(select(Village.id).order_by(Village.id))):
        session.rollback()
        outcome = reset_village(session, village_id, now, tz)
        session.commit()
        if outcome is not None:
            done.append(outcome)
    return done


def reset_village(
    session: Session, village_id: int, now: datetime, tz: ZoneInfo
) -> VillageReset | None:
    """The village's last ended period, reset in the caller's transaction; None when its
    policy does not reset, or the period is already recorded (by an earlier run, or by one
    running at the same time: the unique row makes the second wait, then find it)."""
    cycle = catalogs.effective_policy(session, village_id).reset_cycle
    if cycle not in CYCLE_PERIOD:
        return None
    ended = ended_period(cycle, now, tz)
    recorded = set(
        session.scalars(
            select(PeriodReset.period).where(
                PeriodReset.village_id == village_id,
                PeriodReset.period.in_((ended.key, ended.previous)),
            )
        )
    )
    if ended.key in recorded:
        return None
    baseline = ended.previous not in recorded
    insert = upsert_insert(session.get_bind().dialect.name)
    reset_id = session.scalar(
        insert(PeriodReset)
        .values(
            village_id=village_id,
            period=ended.key,
            cycle=cycle,
            period_end=ended.end,
            baseline=baseline,
            accounts=0,
            points=0,
            ran_at=now,
        )
        .on_conflict_do_nothing(index_elements=["village_id", "period"])
        .returning(PeriodReset.id)
    )
    if reset_id is None:
        return None
    accounts = points = 0
    if not baseline:
        accounts, points = _expire_village(session, reset_id, village_id, ended, now, tz)
        session.execute(
            update(PeriodReset)
            .where(PeriodReset.id == reset_id)
            .values(accounts=accounts, points=points)
            .execution_options(synchronize_session=False)
        )
    return VillageReset(village_id, ended.key, baseline, accounts, points)


def _expire_village(
    session: Session,
    reset_id: int,
    village_id: int,
    ended: EndedPeriod,
    now: datetime,
    tz: ZoneInfo,
) -> tuple[int, int]:
    """Expire what the period left in each account of the village, and record the period's
    points in open orders. Every account is locked first (in id order, as one transaction
    takes them), so an order, a cancel or a posting waits and is seen whole or not at all."""
    locked = list(
        session.scalars(
            select(Account)
            .where(Account.village_id == village_id)
            .order_by(Account.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    )
    since: dict[int, int] = {
        account_id: int(total)
        for account_id, total in session.execute(
            select(LedgerEntry.account_id, func.sum(LedgerEntry.amount))
            .join(Account, Account.id == LedgerEntry.account_id)
            .where(
                Account.village_id == village_id,
                LedgerEntry.created_at >= ended.end,
                LedgerEntry.kind.in_(NEW_PERIOD_KINDS),
            )
            .group_by(LedgerEntry.account_id)
        )
    }
    holds: dict[int, list[Redemption]] = {}
    for hold in session.scalars(
        select(Redemption)
        .where(Redemption.village_id == village_id, Redemption.status == "reserved")
        .order_by(Redemption.created_at, Redemption.id)
    ):
        holds.setdefault(hold.household_id, []).append(hold)

    accounts = points = 0
    for account in locked:
        available, fresh = account.available, since.get(account.id, 0)
        left = max(0, available - fresh)
        if left:
            ledger.append(
                session,
                household_id=account.household_id,
                kind="expire",
                amount=-left,
                # counted in the period's last month
                when=ledger.EntryTime(tz, at=now, counts_for=ended.end - _TICK),
                origin=ledger.EntryOrigin(note=reset_note(ended.key)),
            )
            accounts, points = accounts + 1, points + left
        mine = holds.get(account.household_id, [])
        # Orders placed since the end took the period's points first, as far as they went.
        later = sum(h.points for h in mine if h.created_at >= ended.end)
        share = min(later, max(0, available + later - fresh))
        for hold in mine:
            part = hold.points if hold.created_at < ended.end else min(hold.points, share)
            if hold.created_at >= ended.end:
                share -= part
            if part:
                session.add(PeriodResetHold(reset_id=reset_id, redemption_id=hold.id, points=part))
    session.flush()
    return accounts, points


def expire_returned_hold(
    session: Session, redemption: Redemption, now: datetime, tz: ZoneInfo
) -> LedgerEntry | None:
    """An order voided (cancelled, or not picked up in time) after a reset found it open: the
    points of the reset period it gave back expire now, in the transaction that gave them
    back, named after that period. Called once the return has locked the account's row, so
    a reset that committed meanwhile is seen (and one that had not yet locked it sees the
    points back in `available` and expires them itself)."""
    found = session.execute(
        select(PeriodResetHold.points, PeriodReset.period)
        .join(PeriodReset, PeriodReset.id == PeriodResetHold.reset_id)
        .where(PeriodResetHold.redemption_id == redemption.id)
        .order_by(PeriodReset.period_end.desc(), PeriodReset.id.desc())
        .limit(1)
    ).first()
    if found is None:
        return None
    return ledger.append(
        session,
        household_id=redemption.household_id,
        kind="expire",
        amount=-found.points,
        when=ledger.EntryTime(tz, at=now),
        origin=ledger.EntryOrigin(
            note=f"{reset_note(found.period)}：兑换单 #{redemption.id} 未领取，冻结的积分到期"
        ),
    )
