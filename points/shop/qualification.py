"""Who may redeem at all: the qualification line (合格线) of the village's policy.

The line is read as: the household's score (points earned less deductions; spending never
lowers it) over the last twelve months, this month included, must reach the line, else
`not_qualified`; a reversal (冲正) counts there in the month of the entry it corrects.
Twelve rolling months rather than the calendar year, so that nobody is barred every
January.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

import rules
from rules.periods import add_months, month_key

from .. import ledger
from ..errors import DomainError
from ..models import Account, LedgerEntry, MonthTotal

QUALIFYING_MONTHS = 12


class NotQualified(DomainError):
    status = 422
    code = "not_qualified"
    message = "近 12 个月得分未达到合格线，暂不能兑换"


def qualifying_score(session: Session, account: Account, now: datetime, tz: ZoneInfo) -> int:
    """What the household earned within the last twelve months, this month included.

    A correction counts here in the month of what it corrects: an award of March reversed
    in May is neither earned nor taken back in a window that starts in April. The monthly
    totals (at most twelve rows) book a reversal in the month it was made, as boards must (a
    closed month never changes; the next board notes the correction), so the reversals made
    in the window of entries counted before it are taken back out: a few rows, found through
    the account's entries by month."""
    first = add_months(month_key(now.astimezone(tz)), -(QUALIFYING_MONTHS - 1))
    booked = (
        session.scalar(
            select(func.coalesce(func.sum(MonthTotal.score), 0)).where(
                MonthTotal.account_id == account.id, MonthTotal.month >= first
            )
        )
        or 0
    )
    corrected = aliased(LedgerEntry)
    before_window = (
        session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.amount), 0))
            .join(corrected, corrected.id == LedgerEntry.reverses_id)
            .where(
                LedgerEntry.account_id == account.id,
                LedgerEntry.month >= first,
                corrected.month < first,
                corrected.kind.in_(ledger.SCORE_KINDS),
            )
        )
        or 0
    )
    return booked - before_window


def qualification(
    session: Session, policy: rules.Policy, account: Account | None, now: datetime, tz: ZoneInfo
) -> tuple[bool, int | None]:
    """Whether the household may redeem under the policy's qualification line (合格线), and
    its score when there is a line to reach (None otherwise). No account yet: no score."""
    if policy.qualification_line <= 0:
        return True, None
    score = qualifying_score(session, account, now, tz) if account is not None else 0
    return score >= policy.qualification_line, score
