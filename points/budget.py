"""The monthly budget (本月发放额度) and its counter (本月已发放, `MonthlyIssued`): whose
month a claim counts in, counting it in when it is decided (`issue`), taking it off again
(`unissue`, `give_back_reversed`), and checking or rebuilding the counter from the claims
(`verify_issued`, `rebuild_issued`).

What it counts: a village's positive claims in notice, objected or posted whose entry was
not reversed, each in the month of its deed (village time). The claims workflow
(`points.claims`) decides when a claim counts; a reversal in the ledger
(`points.ledger.reverse`) takes an award off too, so this module sits below both. See
docs/DESIGN.md, The monthly budget.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, aliased

from rules.claim_status import ClaimStatus
from rules.periods import month_key

from . import catalogs, village_totals
from .db import core, lock_exclusive, upsert_insert
from .models.claims import Claim, MonthlyIssued
from .models.ledger import LedgerEntry
from .models.registry import Village
from .scope import Actor, visible
from .time_zone import by_village_month

log = logging.getLogger(__name__)

# What the counter holds: claims decided within the budget (in notice, under objection, or
# posted).
ISSUED_STATUSES: tuple[ClaimStatus, ...] = (
    ClaimStatus.IN_NOTICE,
    ClaimStatus.OBJECTED,
    ClaimStatus.POSTED,
)

# A posted claim whose entry was reversed (冲正) no longer counts: neither against the
# budget nor under its item's caps (`points.claims.history`). Built once: it is part of
# every claim's history query.
_reversal = aliased(LedgerEntry)
REVERSED_CLAIMS = (
    select(LedgerEntry.claim_id)
    .join(_reversal, _reversal.reverses_id == LedgerEntry.id)
    .where(LedgerEntry.claim_id.is_not(None))
)


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
    if catalogs.effective_policy(session, claim.village_id).monthly_budget is None:
        # As its awards add (`issue`): as the transaction commits, after every account.
        village_totals.defer_issue(session, claim.village_id, month, -points)
        return
    _take_off(core(session), claim.village_id, month, points, f"claim {claim.id}")


def _take_off(connection: Connection, village_id: int, month: str, points: int, what: str) -> None:
    taken = connection.execute(
        update(MonthlyIssued)
        .where(
            MonthlyIssued.village_id == village_id,
            MonthlyIssued.month == month,
            MonthlyIssued.issued >= points,
        )
        .values(issued=MonthlyIssued.issued - points)
    ).rowcount
    if taken != 1:
        log.error(
            "monthly issued points of village %s %s do not hold the %s points of %s; run "
            "`flask ledger verify`",
            village_id,
            month,
            points,
            what,
        )


def write_deferred(connection: Connection, changes: list[tuple[tuple[int, str], int]]) -> None:
    """Write what villages without a budget counted and took back in a transaction
    (`village_totals.defer_issue`), net per (village, month), in the order given; run as
    it commits."""
    stmt = issue_statement(connection.dialect.name, bounded=False)
    for (village_id, month), points in changes:
        if points > 0:
            connection.execute(stmt, {"village_id": village_id, "month": month, "points": points})
        elif points < 0:
            _take_off(connection, village_id, month, -points, "claims taken back")


def give_back_reversed(session: Session, entry: LedgerEntry, tz: ZoneInfo) -> None:
    """A reversed award (冲正) gives its points back to its month's budget, as it gives its
    room under the item's caps back (REVERSED_CLAIMS). The budget limits the points
    a village's month hands out, and an award corrected as a mistake hands out none: kept
    counted, it would send the right award that follows the correction to the township. A
    reversed deduction changes nothing here: deductions never drew on the budget."""
    if entry.claim_id is None:
        return
    claim = session.get(Claim, entry.claim_id)
    if claim is not None and claim.status in ISSUED_STATUSES:
        unissue(session, claim, claim.points, tz)


# ---- counting a decided claim in, and checking the counter ----------------------------------


@lru_cache(maxsize=4)
def issue_statement(dialect: str, bounded: bool) -> Any:
    """Add `points` to the village's month, creating its row; `bounded`: only while the total
    stays within `budget` (no row returned: it would not). One statement, so the check and
    the addition cannot be split by another approval: the row's lock makes the second wait,
    and it then sees the first one's total."""
    table = MonthlyIssued.__table__
    stmt = upsert_insert(dialect)(table).values(
        village_id=bindparam("village_id"), month=bindparam("month"), issued=bindparam("points")
    )
    total = table.c.issued + stmt.excluded.issued
    return stmt.on_conflict_do_update(
        index_elements=["village_id", "month"],
        set_={"issued": total},
        where=total <= bindparam("budget") if bounded else None,
    ).returning(table.c.issued)


def issue(
    session: Session, claim: Claim, month: str, budget: int | None, *, unbudgeted: bool = False
) -> bool:
    """Count the claim's points against the village's month; with a `budget`, only if the
    month stays within it (False: it would not, and nothing was counted). `unbudgeted`: the
    village has no budget at all, so the row is added to as the transaction commits
    (`village_totals.defer_issue`) instead of locked from now until then. Not for a
    township's approval past a budget: a budgeted village's awards lock the row before any
    account, and one locking it after an account could deadlock with them."""
    if unbudgeted:
        village_totals.defer_issue(session, claim.village_id, month, claim.points)
        return True
    if budget is not None and claim.points > budget:
        return False
    stmt = issue_statement(session.get_bind().dialect.name, budget is not None)
    return (
        core(session)
        .execute(
            stmt,
            {
                "village_id": claim.village_id,
                "month": month,
                "points": claim.points,
                "budget": budget,
            },
        )
        .first()
        is not None
    )


def _drift(session: Session, tz: ZoneInfo) -> list[tuple[int, str, int, int]]:
    """Each village month whose kept total differs from what its claims count: (village,
    month, kept, counted), in order."""
    counted = by_village_month(
        session,
        select(Claim.village_id, Claim.occurred_at, Claim.points).where(
            Claim.points > 0,
            Claim.status.in_(ISSUED_STATUSES),
            Claim.decided_at.is_not(None),
            Claim.id.not_in(REVERSED_CLAIMS),
        ),
        tz,
    )
    # Columns, not objects: the rows change by Core statements, which loaded objects miss.
    kept = {
        (village_id, month): issued
        for village_id, month, issued in session.execute(
            select(MonthlyIssued.village_id, MonthlyIssued.month, MonthlyIssued.issued)
        )
    }
    return [
        (village_id, month, kept.get((village_id, month), 0), counted.get((village_id, month), 0))
        for village_id, month in sorted(set(counted) | set(kept))
        if kept.get((village_id, month), 0) != counted.get((village_id, month), 0)
    ]


def verify_issued(session: Session, tz: ZoneInfo) -> list[str]:
    """Every village's month as counted against the claims it counts (empty: all agree)."""
    return [
        f"村 {village_id} {month} 本月已发放记为 {kept}，按申报合计应为 {counted}"
        for village_id, month, kept, counted in _drift(session, tz)
    ]


def rebuild_issued(session: Session, tz: ZoneInfo) -> int:
    """Set every village's months to what its claims count (after a drift `verify_issued`
    named); the number of village months changed. Locks the table so that no approval
    counts meanwhile."""
    lock_exclusive(session, "monthly_issued")
    drift = _drift(session, tz)
    for village_id, month, _kept, counted in drift:
        session.execute(
            delete(MonthlyIssued).where(
                MonthlyIssued.village_id == village_id, MonthlyIssued.month == month
            )
        )
        if counted:
            session.add(MonthlyIssued(village_id=village_id, month=month, issued=counted))
    session.flush()
    return len(drift)


# ---- reading the months ---------------------------------------------------------------------


@dataclass(frozen=True)
class VillageBudget:
    village_id: int
    village: str
    issued: int  # 本月已发放
    budget: int | None  # None: the village has no monthly budget


def village_budgets(
    session: Session, actor: Actor, month: str, *, limit: int | None = None
) -> list[VillageBudget]:
    """The month's points decided against each visible village's budget, in village order
    (the first `limit` villages): three queries, whatever the number of villages."""
    villages = session.execute(
        visible(actor, Village)
        .with_only_columns(Village.id, Village.name, Village.township_id)
        .order_by(Village.id)
        .limit(limit)
    ).all()
    policies = catalogs.effective_policies(session, {v.id: v.township_id for v in villages})
    issued = dict(
        session.execute(
            select(MonthlyIssued.village_id, MonthlyIssued.issued).where(
                MonthlyIssued.month == month,
                MonthlyIssued.village_id.in_([v.id for v in villages]),
            )
        ).all()
    )
    return [
        VillageBudget(v.id, v.name, issued.get(v.id, 0), policies[v.id].monthly_budget)
        for v in villages
    ]
