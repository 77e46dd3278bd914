"""Reversals (冲正) reviewed like awards.

A cadre corrects an entry by a reversing entry (points.ledger.reverse). The same rules hold
as for awards: not for one's own household, and at or above the township's two-cadre
threshold (on the entry's amount, either sign) a second, different reviewer — another cadre
of the village or an admin of its township or county — must agree. The first asks (a pending
`ReversalRequest`, listed for the second to find); the second makes the same call, and only
then is the reversing entry posted. Below the threshold it is posted at once, as before.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit, catalogs, ledger
from .db import upsert_insert
from .errors import Conflict
from .models import Account, LedgerEntry, ReversalRequest
from .scope import Actor, authorize, get_visible, refuse_own_household


def reverse(
    session: Session,
    actor: Actor,
    entry_id: int,
    reason: str,
    *,
    tz: ZoneInfo,
    now: datetime,
) -> LedgerEntry | ReversalRequest:
    """Reverse an entry, ask for its reversal, or confirm another reviewer's request: the
    reversing entry when it was posted, else the pending request."""
    entry = get_visible(session, actor, LedgerEntry, entry_id)
    authorize(actor, "ledger.reverse")
    account = session.get(Account, entry.account_id)
    assert account is not None
    refuse_own_household(session, actor, account.household_id, "不能冲正自己家庭的积分")
    if entry.kind == ledger.OPENING_KIND:
        # Whoever may enter opening balances (期初积分) corrects them: a village's cadres set
        # neither their households' opening points nor their correction.
        authorize(actor, "opening_balance.import")
    ledger.check_reversible(session, entry)
    request = _locked_request(session, entry.id)
    if request is None:
        policy = catalogs.effective_policy(session, account.village_id)
        if not policy.takes_two_reviewers(entry.amount):
            return _post(session, actor, entry, account, reason, tz)
        request = _ask(session, actor, entry, account, reason, now)
        if request.requested_by == actor.user_id:
            audit.record(
                session, actor, "ledger.reverse_request", request, village_id=account.village_id
            )
            return request
        # Another reviewer asked at the same moment: this call is the second review.
    return _confirm(session, actor, entry, account, request, reason, tz, now)


def _locked_request(session: Session, entry_id: int) -> ReversalRequest | None:
    """The entry's request, row-locked until the commit: two reviewers confirming at once
    queue here, and the second finds it confirmed."""
    return session.scalar(
        select(ReversalRequest)
        .where(ReversalRequest.entry_id == entry_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _ask(
    session: Session, actor: Actor, entry: LedgerEntry, account: Account, reason: str, now: datetime
) -> ReversalRequest:
    """Insert the request unless another reviewer's came first (the second insert waits for
    the first's commit and then does nothing); the request either way, locked."""
    insert = upsert_insert(session.get_bind().dialect.name)
    session.execute(
        insert(ReversalRequest)
        .values(
            entry_id=entry.id,
            village_id=account.village_id,
            household_id=account.household_id,
            amount=entry.amount,
            reason=reason,
            status="pending_confirmation",
            requested_by=actor.user_id,
            requested_at=now,
        )
        .on_conflict_do_nothing(index_elements=["entry_id"])
    )
    request = _locked_request(session, entry.id)
    assert request is not None
    return request


def _post(
    session: Session, actor: Actor, entry: LedgerEntry, account: Account, reason: str, tz: ZoneInfo
) -> LedgerEntry:
    reversal = ledger.reverse(session, entry, reason=reason, created_by=actor.user_id, tz=tz)
    audit.record(session, actor, "ledger.reverse", reversal, village_id=account.village_id)
    return reversal


def _confirm(
    session: Session,
    actor: Actor,
    entry: LedgerEntry,
    account: Account,
    request: ReversalRequest,
    note: str,
    tz: ZoneInfo,
    now: datetime,
) -> LedgerEntry:
    if request.status != "pending_confirmation":
        raise ledger.AlreadyReversed()
    if request.requested_by == actor.user_id:
        raise Conflict("您已经申请冲正这条记录，需要另一位村干部确认", code="already_approved")
    before = audit.snapshot(request)
    # The entry's note is the reason the first reviewer gave; the second's is kept with the
    # request.
    reversal = _post(session, actor, entry, account, request.reason, tz)
    request.status, request.confirmed_by, request.confirmed_at = "confirmed", actor.user_id, now
    request.confirm_note, request.reversal_id = note, reversal.id
    audit.record(
        session,
        actor,
        "ledger.reverse_confirm",
        request,
        before=before,
        village_id=account.village_id,
    )
    return reversal
