"""The monthly budget's counter (本月已发放, `MonthlyIssued`): whose month a claim counts in,
and taking a counted claim off it.

What it counts: a village's positive claims in notice, objected or posted whose entry was
not reversed, each in the month of its deed (village time). Counting claims in as they are
decided, and checking it, is `points.claims` (`_issue`, `verify_issued`); taking one off is
here, because a reversal in the ledger (`points.ledger.reverse`) takes an award off too, and
the ledger sits below the claims.
"""

from __future__ import annotations

import logging
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlalchemy.orm import Session

from rules.periods import month_key

from .db import core
from .models.claims import Claim, MonthlyIssued
from .models.ledger import LedgerEntry

log = logging.getLogger(__name__)

ISSUED_STATUSES = ("in_notice", "objected", "posted")


def budget_month(claim: Claim, tz: ZoneInfo) -> str:
    """The month whose budget a claim draws on: its deed's (`occurred_at`), as for its caps
    and its board, whenever it is decided. One claim, one month: work done on 31 March and
    approved (or checked out) on 1 April is March's on the board, so it is March's points
    that the budget limits, and a village cannot pass a month's budget by deciding that
    month's claims after it ends."""
    return month_key(claim.occurred_at.astimezone(tz))


def unissue(session: Session, claim: Claim, points: int, tz: ZoneInfo) -> None:
    """`points` of a counted claim no longer count (rejected after its notice, lowered when
    posted, or its entry reversed): taken off its month (`budget_month`). A month that does
    not hold them has drifted: logged, and left for `flask ledger verify` to report and
    `flask ledger rebuild-issued` to mend, rather than failing the villager's objection, the
    posting or the correction."""
    if points <= 0 or claim.decided_at is None:
        return
    month = budget_month(claim, tz)
    taken = core(session).execute(
        update(MonthlyIssued)
        .where(MonthlyIssued.village_id == claim.village_id, MonthlyIssued.month == month,
               MonthlyIssued.issued >= points)
        .values(issued=MonthlyIssued.issued - points)).rowcount
    if taken != 1:
        log.error("monthly issued points of village %s %s do not hold the %s points of claim "
                  "%s; run `flask ledger verify`", claim.village_id, month, points, claim.id)


def give_back_reversed(session: Session, entry: LedgerEntry, tz: ZoneInfo) -> None:
    """A reversed award (冲正) gives its points back to its month's budget, as it gives its
    room under the item's caps back (claims.REVERSED_CLAIMS). The budget limits the points
    a village's month hands out, and an award corrected as a mistake hands out none: kept
    counted, it would send the right award that follows the correction to the township. A
    reversed deduction changes nothing here: deductions never drew on the budget."""
    if entry.claim_id is None:
        return
    claim = session.get(Claim, entry.claim_id)
    if claim is not None and claim.status in ISSUED_STATUSES:
        unissue(session, claim, claim.points, tz)
