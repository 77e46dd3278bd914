"""The corrections a board notes (更正说明) about months published before it.

A published board never changes. A correction made later is a reversing entry in the month
it is made (points.ledger.reverse), so it lowers or raises that later month and shows as a
note on its board; a claim of a closed month posted late (a month closed by hand before its
notice ended) is a late posting (`late_postings`), noted on the next board published after
it, whichever months were closed meanwhile; a veto (一票否决) of such a month that posted after
it closed is noted on the next board too: its bar starts with the deed's month; a veto the
township withdrew is noted in the month it is withdrawn.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    ScalarSelect,
    Select,
    SQLColumnExpression,
    bindparam,
    func,
    literal,
    select,
    union_all,
)
from sqlalchemy.orm import Session, aliased

from rules.periods import month_label

from .. import ledger
from ..models import (
    Account,
    BoardSnapshot,
    Claim,
    Household,
    HouseholdFlag,
    LatePosting,
    LedgerEntry,
    RuleItemVersion,
    VetoWithdrawal,
)
from .standings import (
    Period,
    fetch_rows,
    head_name,
    in_months,
    is_postgres,
    names_statement,
    scalar_of,
)

# What a board's correction is: an earlier month's entry reversed, points (or a veto) that
# reached a month after its board closed, a veto the township withdrew.
CORRECTION_KINDS = ("reversal", "late", "late_veto", "veto_withdrawal")

_ITEM_NAME = RuleItemVersion.data["name"].as_string()
_original = aliased(LedgerEntry)


def item_name(version_id: SQLColumnExpression[int | None]) -> ScalarSelect[str]:
    """The name of a rule item's version, as a scalar subquery."""
    return scalar_of(_ITEM_NAME, RuleItemVersion.id == version_id)


def unnoted_late(
    village_id: int | SQLColumnExpression[int], first: str | SQLColumnExpression[str]
) -> ColumnElement[bool]:
    """The village's late postings into months before `first` (a period's first month) that
    no published board has noted yet."""
    return (
        (LatePosting.village_id == village_id)
        & LatePosting.noted_in.is_(None)
        & (LatePosting.month < first)
    )


def board_corrections(
    session: Session, village_id: int, period: Period, *, late_waiting: bool
) -> list[dict[str, Any]]:
    """The notes of a board of the period: reversals and withdrawn vetoes made in it, then
    late postings (only looked for when `late_waiting`, which the board's first query
    learns), then late vetoes."""
    notes = _reversal_notes(session, village_id, period)
    if late_waiting:
        notes += _late_notes(session, village_id, period)
    return notes + _late_veto_notes(session, village_id, period)


# The period's reversals of entries of earlier months, found through the partial index on
# reversals by month (points.models.boards), then its withdrawn vetoes. A withdrawn veto's
# wipe given back is noted as the withdrawal, not as a reversal of its own.
@cache
def _reversals(single: bool) -> Select[*tuple[Any, ...]]:
    household = Account.household_id
    reversals = (
        select(
            literal("reversal").label("kind"),
            LedgerEntry.amount.label("amount"),
            LedgerEntry.note.label("note"),
            _original.month.label("month"),
            household.label("household_id"),
            item_name(_original.rule_item_version_id).label("item"),
            func.coalesce(
                head_name(household), scalar_of(Household.name, Household.id == household)
            ).label("name"),
            scalar_of(Household.group_id, Household.id == household).label("group_id"),
            LedgerEntry.id.label("seq"),
        )
        .join(_original, _original.id == LedgerEntry.reverses_id)
        .join(Account, Account.id == LedgerEntry.account_id)
        .where(
            LedgerEntry.reverses_id.isnot(None),
            in_months(LedgerEntry.month, single),
            # Only what a board scored: not a reset's expiry, not an opening balance.
            _original.month < bindparam("first"),
            _original.kind.in_(tuple(sorted(ledger.SCORE_KINDS))),
            Account.village_id == bindparam("village_id"),
        )
    )
    withdrawn = VetoWithdrawal.household_id
    withdrawals = select(
        literal("veto_withdrawal"),
        VetoWithdrawal.restored,
        VetoWithdrawal.reason,
        VetoWithdrawal.vetoed_month,
        withdrawn,
        item_name(scalar_of(Claim.rule_item_version_id, Claim.id == VetoWithdrawal.claim_id)),
        func.coalesce(head_name(withdrawn), scalar_of(Household.name, Household.id == withdrawn)),
        scalar_of(Household.group_id, Household.id == withdrawn),
        VetoWithdrawal.id,
    ).where(
        VetoWithdrawal.village_id == bindparam("village_id"),
        in_months(VetoWithdrawal.month, single),
    )
    both = union_all(reversals, withdrawals).subquery()
    return select(both).order_by(both.c.kind, both.c.seq)


def _reversal_notes(session: Session, village_id: int, period: Period) -> list[dict[str, Any]]:
    """Reversals made in the period of entries counted in an earlier month (冲正更正), and
    vetoes withdrawn in the period (一票否决撤销: `amount` the spendable points given back)."""
    rows = fetch_rows(
        session,
        _reversals(len(period.months) == 1),
        {
            "months": list(period.months),
            "month": period.first,
            "first": period.first,
            "village_id": village_id,
        },
    )
    return [
        {
            "kind": kind,
            "household_id": hid,
            "name": name or f"{hid}号户",
            "group_id": gid,
            "amount": amount,
            "month": month,
            "item": item,
            "note": month_label(month)
            + (
                "一票否决撤销，恢复评比资格"
                if kind == "veto_withdrawal"
                else f"{'加分' if amount < 0 else '扣分'}冲正"
            )
            + (f"：{note}" if note else ""),
        }
        for kind, amount, note, month, hid, item, name, gid, _ in rows
    ]


def _late_notes(session: Session, village_id: int, period: Period) -> list[dict[str, Any]]:
    """Points that reached published months before the period after they were published (a
    claim of a month closed by hand posted late), not yet noted on a published board: per
    household and month. The published boards stay; this one says so."""
    changes = [
        (hid, month, int(change))
        for month, hid, change in session.execute(
            select(LatePosting.month, LatePosting.household_id, func.sum(LatePosting.amount))
            .where(unnoted_late(village_id, period.first))
            .group_by(LatePosting.month, LatePosting.household_id)
            .order_by(LatePosting.month, LatePosting.household_id)
        )
        if change
    ]
    if not changes:
        return []
    names = _named(session, {hid for hid, _, _ in changes})
    return [
        {
            "kind": "late",
            "household_id": hid,
            "name": names.get(hid, (f"{hid}号户",))[0],
            "group_id": names.get(hid, ("", None))[1],
            "amount": change,
            "month": month,
            "item": None,
            "note": f"{month_label(month)}榜单发布后补记 {change:+d} 分（已发布榜单不变）",
        }
        for hid, month, change in changes
    ]


def _late_veto_notes(session: Session, village_id: int, period: Period) -> list[dict[str, Any]]:
    """Vetoes (一票否决) that bar households in the latest published month before this board
    but posted after it was closed, for households that board did not bar: the published
    board stays, this board says so (as `_late_notes` for points)."""
    snapshot = session.scalars(
        select(BoardSnapshot)
        .where(BoardSnapshot.village_id == village_id, BoardSnapshot.period < period.months[0])
        .order_by(BoardSnapshot.period.desc())
        .limit(1)
    ).first()
    if snapshot is None:
        return []
    month = snapshot.period
    barred = set((snapshot.data or {}).get("barred", []))
    flags = session.execute(
        select(
            HouseholdFlag.household_id,
            HouseholdFlag.from_month,
            HouseholdFlag.until_month,
            item_name(scalar_of(Claim.rule_item_version_id, Claim.id == HouseholdFlag.claim_id)),
        )
        .join(Household, Household.id == HouseholdFlag.household_id)
        .where(
            Household.village_id == village_id,
            HouseholdFlag.withdrawal_id.is_(None),
            HouseholdFlag.from_month <= month,
            HouseholdFlag.until_month >= month,
            HouseholdFlag.created_at > snapshot.created_at,
        )
        .order_by(HouseholdFlag.id)
    ).all()
    late = [(hid, first, until, item) for hid, first, until, item in flags if hid not in barred]
    if not late:
        return []
    names = _named(session, {r[0] for r in late})
    notes, seen = [], set()
    for hid, first, until, item in late:
        if hid in seen:
            continue
        seen.add(hid)
        name, gid = names.get(hid, (f"{hid}号户", None))
        notes.append(
            {
                "kind": "late_veto",
                "household_id": hid,
                "name": name,
                "group_id": gid,
                "amount": 0,
                "month": month,
                "item": item,
                "note": f"{month_label(month)}榜单发布后一票否决生效，{month_label(first)}至"
                f"{month_label(until)}不参加评比（已发布榜单不变）",
            }
        )
    return notes


def _named(session: Session, household_ids: set[int]) -> dict[int, tuple[str, int | None]]:
    """Each household's name as a correction note prints it (its head's, else "N号户") and
    its villager group."""
    return {
        hid: (name or f"{hid}号户", gid)
        for hid, name, gid in fetch_rows(
            session, names_statement(is_postgres(session)), {"households": sorted(household_ids)}
        )
    }
