"""Village policies that act on accounts: the periodic reset of spendable points."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from rules.periods import period_key

from . import catalogs, ledger
from .models import Account, LedgerEntry, Village

CYCLE_PERIOD = {"quarterly": "quarter", "yearly": "year"}


def reset_spendable(session: Session, now: datetime, tz: ZoneInfo) -> int:
    """Expire the spendable points of villages whose policy resets them (定期清零), once per
    period: the entry's note names the period, and a second run in it finds that entry.
    Points held by orders not yet picked up stay. Commits per account."""
    done = 0
    for village_id in list(session.scalars(select(Village.id).order_by(Village.id))):
        cycle = catalogs.effective_policy(session, village_id).reset_cycle
        if cycle not in CYCLE_PERIOD:
            continue
        note = f"定期清零 {period_key(CYCLE_PERIOD[cycle], now.astimezone(tz))}"
        household_ids = list(session.scalars(
            select(Account.household_id).where(Account.village_id == village_id)
            .order_by(Account.id)))
        for household_id in household_ids:
            account = ledger.account_for(session, household_id, lock=True)
            already = session.scalar(select(LedgerEntry.id).where(
                LedgerEntry.account_id == account.id, LedgerEntry.kind == "expire",
                LedgerEntry.note == note))
            if not already and account.available > 0:
                ledger.append(session, household_id=household_id, kind="expire",
                              amount=-account.available, tz=tz, note=note, at=now)
                done += 1
            session.commit()
    return done
