"""Per village and month totals (`village_month_totals`), kept equal to the sum of the
village's household month totals in the same transaction as the entries.

The (village, month) row is shared by every posting of a village. Upserted by each
`ledger.append`, it would be locked in the middle of long transactions: a batch award holds
the village's budget row and then locks many accounts in order, a redemption or a
cancellation holds its account. A batch award waiting for account B while holding the
village month, and a redemption holding B and waiting for the village month, would
deadlock. So `record` only adds the entry's amounts to the session (`Session.info`, per
transaction and savepoint), and the `before_commit` event registered here writes them: one
upsert per (village, month), in sorted order, as the transaction's last writes. No caller
can forget it: every session commits through the event; a rollback (of the transaction or
of a savepoint) drops what it recorded.
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, event, func, select
from sqlalchemy.orm import Session, SessionTransaction, scoped_session

from .db import core, upsert_insert
from .models.ledger import MonthTotal, VillageMonthTotal

COUNTERS = ("score", "earned", "deducted", "redeemed", "expired", "opening")
_PENDING = "village_month_totals.pending"

Deltas = dict[tuple[int, str], list[int]]


def _pending(session: Session) -> dict[SessionTransaction, Deltas]:
    pending: dict[SessionTransaction, Deltas] = session.info.setdefault(_PENDING, {})
    return pending


def record(session: Session, village_id: int, month: str, increments: dict[str, int]) -> None:
    """Add an entry's counters (`COUNTERS`, as `ledger.append` adds them to its household's
    month) to its village's month, written when the transaction commits."""
    if isinstance(session, scoped_session):  # the app's: the thread's session behind it
        session = session()
    transaction = session.get_nested_transaction() or session.get_transaction()
    assert transaction is not None, "an entry is appended inside a transaction"
    deltas = _pending(session).setdefault(transaction, defaultdict(lambda: [0] * len(COUNTERS)))
    row = deltas[(village_id, month)]
    for n, name in enumerate(COUNTERS):
        row[n] += increments[name]


@lru_cache(maxsize=4)
def _upsert(dialect: str) -> Any:
    table = VillageMonthTotal.__table__
    stmt = upsert_insert(dialect)(table).values(
        {name: bindparam(f"v_{name}") for name in ("village_id", "month", *COUNTERS)}
    )
    return stmt.on_conflict_do_update(
        index_elements=["village_id", "month"],
        set_={name: table.c[name] + stmt.excluded[name] for name in COUNTERS},
    )


def write_pending(session: Session) -> int:
    """Write what the session's outermost transaction recorded: one upsert per (village,
    month), in sorted order; the number of rows written. Run by the `before_commit` event."""
    transaction = session.get_transaction()
    deltas = _pending(session).pop(transaction, None) if transaction is not None else None
    if not deltas:
        return 0
    stmt = _upsert(session.get_bind().dialect.name)
    connection = core(session)  # flushes the transaction's other writes first: these are last
    for (village_id, month), values in sorted(deltas.items()):
        connection.execute(
            stmt,
            {
                "v_village_id": village_id,
                "v_month": month,
                **{f"v_{name}": value for name, value in zip(COUNTERS, values, strict=True)},
            },
        )
    return len(deltas)


_RELEASING = "village_month_totals.releasing"


class OpenSavepoint(RuntimeError):
    """The transaction was committed while a savepoint in it was still open."""


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    nested = session.get_nested_transaction()
    if nested is None:
        write_pending(session)
        return
    # A savepoint being released: its parent commits later. The same event also comes when
    # the outer transaction is committed (`with session.begin():` ending) with the savepoint
    # still open, and then again as the savepoint is released on the way: told apart by that
    # second call. The outer transaction's event has already passed, so the savepoint's
    # totals would never be written: refused, and the transaction rolls back.
    if session.info.get(_RELEASING) is nested:
        raise OpenSavepoint(
            "a transaction that posts ledger entries was committed with a savepoint still "
            "open: close the savepoint (`with session.begin_nested():`) first"
        )
    session.info[_RELEASING] = nested


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    # The database rolled back the innermost savepoint, else the transaction (still the
    # session's current ones here): what it recorded is gone with its entries. (Dropped
    # here, as `after_transaction_end`, which comes first, would pass a savepoint's up.)
    rolled_back = session.get_nested_transaction() or session.get_transaction()
    session.info.get(_PENDING, {}).pop(rolled_back, None)


@event.listens_for(Session, "after_transaction_end")
def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if session.info.get(_RELEASING) is transaction:
        del session.info[_RELEASING]
    pending = session.info.get(_PENDING)
    if not pending:
        return
    deltas = pending.pop(transaction, None)
    if deltas and transaction.nested and transaction.parent is not None:
        # A savepoint released (a rolled-back one's were dropped by `_after_rollback`): its
        # parent's now.
        into = pending.setdefault(transaction.parent, defaultdict(lambda: [0] * len(COUNTERS)))
        for key, values in deltas.items():
            row = into[key]
            for n, value in enumerate(values):
                row[n] += value


def verify(session: Session) -> list[str]:
    """Every (village, month) whose kept totals differ from the sum of its households' month
    totals, or that one side has and the other not (empty: all agree)."""
    summed = {
        (village_id, month): tuple(int(v) for v in values)
        for village_id, month, *values in session.execute(
            select(
                MonthTotal.village_id,
                MonthTotal.month,
                *(func.sum(getattr(MonthTotal, name)) for name in COUNTERS),
            ).group_by(MonthTotal.village_id, MonthTotal.month)
        )
    }
    kept = {
        (village_id, month): tuple(values)
        for village_id, month, *values in session.execute(
            select(
                VillageMonthTotal.village_id,
                VillageMonthTotal.month,
                *(getattr(VillageMonthTotal, name) for name in COUNTERS),
            )
        )
    }
    return [
        f"村 {village_id} {month} 村月合计记为 {_show(kept.get(key))}，"
        f"按户月合计应为 {_show(summed.get(key))}"
        for key in sorted(set(summed) | set(kept))
        if kept.get(key) != summed.get(key)
        for village_id, month in (key,)
    ]


def _show(values: tuple[int, ...] | None) -> str:
    if values is None:
        return "（无）"
    return " ".join(f"{name}={value}" for name, value in zip(COUNTERS, values, strict=True))
