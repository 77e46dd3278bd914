"""Per village and month totals (`village_month_totals`), kept equal to the sum of the
village's household month totals in the same transaction as the entries.

The (village, month) row is shared by every posting of a village. Upserted by each
`ledger.append`, it would be locked in the middle of long transactions: a batch award holds
the village's budget row and then locks many accounts in order, a redemption or a
cancellation holds its account. A batch award waiting for account B while holding the
village month, and a redemption holding B and waiting for the village month, would
deadlock. So `record` only adds the entry's amounts to the session (`Session.info`, per
transaction and savepoint), and the `before_commit` event registered here writes them: one
upsert per (village, month), in sorted order, as the transaction's last writes (on
PostgreSQL, with the rows below and the deferred budget counters, in one statement). No caller
can forget it: every session commits through the event; a rollback (of the transaction or
of a savepoint) drops what it recorded.

The same way, `village_month_items` keeps per village, month, rule item version and kind
the count and sum of the entries that make a score (awards, deductions and their
reversals): what the township's statistics sum by category (分类积分), one row per village
and item instead of every entry of the month.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Select,
    and_,
    bindparam,
    delete,
    event,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session, SessionTransaction, aliased, scoped_session

from .db import core, lock_exclusive, upsert_insert
from .models.activities import CheckIn
from .models.claims import MonthlyIssued
from .models.ledger import Account, LedgerEntry, MonthTotal, VillageMonthItem, VillageMonthTotal
from .time_zone import by_village_month

# Sums of the households' month totals ...
SUMS = ("score", "earned", "deducted", "redeemed", "expired", "opening")
# ... the count of those that earned in the month (参与户数, earned > 0) ...
COUNTS = ("participating",)
# ... and of the month's entries that carry a claim (入账: a claim enters the ledger once at
# most, `ledger_entries.claim_id` is unique; a veto that only bars a household, scoring 0 and
# wiping nothing, is posted without one) and that fulfil a redemption (兑换; one per
# fulfilled order, which never changes status again): `/metrics` sums these instead of
# counting ever-growing tables at every scrape.
EVENTS = ("claims_posted", "redemptions")
# What the ledger's entries add (`record`) ...
LEDGER_COUNTERS = (*SUMS, *COUNTS, *EVENTS)
# ... and the month's check-ins (签到, in the villages' time zone; `record_checkin`), which
# need not score: `/metrics` sums these too, where counting `checkins` grows with every
# meeting a county ever held.
COUNTERS = (*LEDGER_COUNTERS, "checkins")
_CHECKINS = COUNTERS.index("checkins")
_PENDING = "village_month_totals.pending"

NO_ITEM = 0  # `village_month_items.rule_item_version_id` of an entry without one


def _month_row() -> list[int]:
    return [0] * len(COUNTERS)


@dataclass
class Deltas:
    """What one transaction or savepoint recorded, not yet written."""

    # (village, month) -> COUNTERS
    months: defaultdict[tuple[int, str], list[int]] = field(
        default_factory=lambda: defaultdict(_month_row)
    )
    # (village, month, rule item version or NO_ITEM, kind) -> [entries, amount]
    items: defaultdict[tuple[int, str, int, str], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0])
    )
    # (village, month) -> points counted against the month's budget counter
    # (`monthly_issued`) of a village without a budget (`defer_issue`)
    issued: defaultdict[tuple[int, str], int] = field(default_factory=lambda: defaultdict(int))

    def add(self, other: Deltas) -> None:
        for source, into in ((other.months, self.months), (other.items, self.items)):
            for key, values in source.items():
                row = into[key]  # type: ignore[index]
                for n, value in enumerate(values):
                    row[n] += value
        for key, points in other.issued.items():
            self.issued[key] += points


def _pending(session: Session) -> dict[SessionTransaction, Deltas]:
    pending: dict[SessionTransaction, Deltas] = session.info.setdefault(_PENDING, {})
    return pending


def _current(session: Session) -> Deltas:
    """What the session's innermost transaction (or savepoint) has recorded so far."""
    if isinstance(session, scoped_session):  # the app's: the thread's session behind it
        session = session()
    transaction = session.get_nested_transaction() or session.get_transaction()
    assert transaction is not None, "totals are recorded inside a transaction"
    deltas = _pending(session).get(transaction)
    if deltas is None:
        deltas = _pending(session)[transaction] = Deltas()
    return deltas


def defer_issue(session: Session, village_id: int, month: str, points: int) -> None:
    """Add `points` (taken back: negative) to a village's month on its budget counter when
    the transaction commits, with the village's other rows. For a village without a budget
    only: nothing is decided on the counter then, so its row need not be locked from the
    decision to the commit, which made every award of a village wait for the one before it
    to commit."""
    _current(session).issued[(village_id, month)] += points


def record(
    session: Session,
    village_id: int,
    month: str,
    increments: dict[str, int],
    item: tuple[int | None, str, int] | None = None,
) -> None:
    """Add an entry's counters (`COUNTERS`, as `ledger.append` adds them to its household's
    month) to its village's month, and for an entry that makes a score its (rule item
    version, kind, amount) to the village's month by item; written when the transaction
    commits."""
    deltas = _current(session)
    row = deltas.months[(village_id, month)]
    for n, name in enumerate(LEDGER_COUNTERS):
        row[n] += increments[name]
    if item is not None:
        version_id, kind, amount = item
        counted = deltas.items[(village_id, month, version_id or NO_ITEM, kind)]
        counted[0] += 1
        counted[1] += amount


def record_checkin(session: Session, village_id: int, month: str) -> None:
    """Count a check-in just recorded in its village's `month` ("YYYY-MM" of the moment, in
    the villages' time zone); written when the transaction commits, and gone if it rolls
    back, as an entry's counters are."""
    _current(session).months[(village_id, month)][_CHECKINS] += 1


MONTH_KEY = ("village_id", "month")
ITEM_KEY = ("village_id", "month", "rule_item_version_id", "kind")
ITEM_COUNTS = ("entries", "amount")


def _adding(stmt: Any, key: Sequence[str], added: Sequence[str]) -> Any:
    """An INSERT (`upsert_insert`) whose row, when its `key` exists, adds its `added`
    columns to the existing row's instead."""
    table = stmt.table
    return stmt.on_conflict_do_update(
        index_elements=list(key), set_={name: table.c[name] + stmt.excluded[name] for name in added}
    )


@lru_cache(maxsize=4)
def _upsert(dialect: str) -> Any:
    stmt = upsert_insert(dialect)(VillageMonthTotal.__table__).values(
        {name: bindparam(f"v_{name}") for name in (*MONTH_KEY, *COUNTERS)}
    )
    return _adding(stmt, MONTH_KEY, COUNTERS)


@lru_cache(maxsize=4)
def _item_upsert(dialect: str) -> Any:
    stmt = upsert_insert(dialect)(VillageMonthItem.__table__).values(
        {name: bindparam(f"v_{name}") for name in (*ITEM_KEY, *ITEM_COUNTS)}
    )
    return _adding(stmt, ITEM_KEY, ITEM_COUNTS)


def write_pending(session: Session) -> int:
    """Write what the session's outermost transaction recorded: its budget counters (for
    villages without a budget), then one row per (village, month), then one per (village,
    month, item, kind), each in sorted order (every transaction takes these rows in the same
    order); the number of rows written. Run by the `before_commit` event."""
    transaction = session.get_transaction()
    deltas = _pending(session).pop(transaction, None) if transaction is not None else None
    if not deltas:
        return 0
    dialect = session.get_bind().dialect.name
    connection = core(session)  # flushes the transaction's other writes first: these are last
    issued = [(key, points) for key, points in sorted(deltas.issued.items()) if points]
    months = [
        (village_id, month, *values)
        for (village_id, month), values in sorted(deltas.months.items())
    ]
    items = [(*key, entries, amount) for key, (entries, amount) in sorted(deltas.items.items())]
    if not (issued or months or items):  # counted and taken back: nothing to write
        return 0
    if dialect == "postgresql" and all(points > 0 for _, points in issued):
        # One statement, one round trip: an award's commit wrote three rows in three.
        shape = (len(issued), len(months), len(items))
        params: dict[str, Any] = {}
        for table, rows in (("i", [(*key, p) for key, p in issued]), ("m", months), ("t", items)):
            for n, row in enumerate(rows):
                params |= {f"{table}{n}_{k}": value for k, value in enumerate(row)}
        connection.execute(_all_at_once(shape), params)
        return sum(shape)
    if issued:
        # First, as a budgeted village's award takes it first (before any account). Imported
        # here: the budget module defers its writes through this one.
        from .budget import write_deferred

        write_deferred(connection, issued)
    stmt = _upsert(dialect)
    for village_id, month, *values in months:
        connection.execute(
            stmt,
            {
                "v_village_id": village_id,
                "v_month": month,
                **{f"v_{name}": value for name, value in zip(COUNTERS, values, strict=True)},
            },
        )
    stmt = _item_upsert(dialect)
    for *key, entries, amount in items:
        connection.execute(
            stmt,
            {
                **{f"v_{name}": value for name, value in zip(ITEM_KEY, key, strict=True)},
                **{
                    f"v_{name}": value
                    for name, value in zip(ITEM_COUNTS, (entries, amount), strict=True)
                },
            },
        )
    return len(months) + len(items) + len(issued)


@lru_cache(maxsize=32)
def _all_at_once(shape: tuple[int, int, int]) -> Any:
    """PostgreSQL: `write_pending`'s upserts as one statement of writable CTEs, for `shape`
    (how many budget counters, village months and item rows; added to only, never taken
    off), row n of part p bound as `<p><n>_<column index>`. Each part reads the one before
    it (`count(*)`), so each has written all its rows before the next writes any: the rows
    are locked in the order the separate statements took them, budget counters first,
    every part's rows sorted."""
    parts = [
        ("i", MonthlyIssued.__table__, MONTH_KEY, ("issued",), shape[0]),
        ("m", VillageMonthTotal.__table__, MONTH_KEY, COUNTERS, shape[1]),
        ("t", VillageMonthItem.__table__, ITEM_KEY, ITEM_COUNTS, shape[2]),
    ]
    before = None
    for prefix, table, key, added, count in parts:
        if not count:
            continue
        columns = [*key, *added]
        # Each row a SELECT of its bound values (not a VALUES list, which SQLAlchemy does
        # not cache: compiled again at every commit, it cost more than the round trips saved).
        rows = [
            select(
                *(
                    bindparam(f"{prefix}{n}_{k}", type_=table.c[name].type).label(name)
                    for k, name in enumerate(columns)
                )
            )
            for n in range(count)
        ]
        source = select(
            union_all(*rows).subquery(f"{prefix}_rows")
            if count > 1
            else rows[0].subquery(f"{prefix}_rows")
        )
        if before is not None:
            source = source.where(select(func.count()).select_from(before).scalar_subquery() >= 0)
        stmt = _adding(upsert_insert("postgresql")(table).from_select(columns, source), key, added)
        before = stmt.returning(literal_column("1")).cte(prefix)
    assert before is not None, "nothing to write"
    return select(func.count()).select_from(before)


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
        into = pending.get(transaction.parent)
        if into is None:
            into = pending[transaction.parent] = Deltas()
        into.add(deltas)


def _month_sums() -> Select[*tuple[Any, ...]]:
    """(village, month, SUMS..., participating) summed from the households' month totals."""
    return select(
        MonthTotal.village_id,
        MonthTotal.month,
        *(func.sum(getattr(MonthTotal, name)) for name in SUMS),
        func.count().filter(MonthTotal.earned > 0),
    ).group_by(MonthTotal.village_id, MonthTotal.month)


def _month_events() -> Select[*tuple[Any, ...]]:
    """(village, month, EVENTS...) counted from the ledger's entries."""
    return (
        select(
            Account.village_id,
            LedgerEntry.month,
            func.count(LedgerEntry.claim_id),
            func.count().filter(LedgerEntry.kind == "redeem"),
        )
        .join(Account, Account.id == LedgerEntry.account_id)
        .group_by(Account.village_id, LedgerEntry.month)
    )


def _item_sums() -> Select[*tuple[Any, ...]]:
    """(village, month, rule item version or None, kind, entries, amount) of every score
    entry, summed from the ledger itself."""
    from .ledger import SCORE_KINDS  # (the ledger imports this module)

    corrected = aliased(LedgerEntry)
    key = (Account.village_id, LedgerEntry.month, LedgerEntry.rule_item_version_id)
    return (
        select(*key, LedgerEntry.kind, func.count(), func.sum(LedgerEntry.amount))
        .join(Account, Account.id == LedgerEntry.account_id)
        .outerjoin(corrected, corrected.id == LedgerEntry.reverses_id)
        .where(
            or_(
                LedgerEntry.kind.in_(SCORE_KINDS),
                and_(LedgerEntry.kind == "reverse", corrected.kind.in_(SCORE_KINDS)),
            )
        )
        .group_by(*key, LedgerEntry.kind)
    )


def _checkin_counts(session: Session, tz: ZoneInfo) -> Counter[tuple[int, str]]:
    """(village, month) → its check-ins, each in the month of its moment in `tz`."""
    return by_village_month(
        session, select(CheckIn.village_id, CheckIn.checked_in_at, literal(1)), tz
    )


def rebuild(session: Session, tz: ZoneInfo) -> None:
    """Write every village month and village month item afresh from the households' month
    totals, the ledger and the check-ins, months in `tz` (what `verify` compares them with):
    after `verify` named one that drifted (`flask ledger rebuild-counts`), or for a database
    whose entries were loaded in bulk rather than appended one by one (`bench/scale.py`).
    Replaces what is kept; the caller commits. Locks both tables first, so that an award or
    a check-in committing meanwhile adds to the rebuilt rows (which leave it out) and not
    to the rows being replaced."""
    lock_exclusive(session, "village_month_totals", "village_month_items")
    sums = _month_sums().subquery()
    events = _month_events().subquery()
    joined = and_(events.c[0] == sums.c[0], events.c[1] == sums.c[1])
    session.execute(delete(VillageMonthTotal))
    session.execute(
        insert(VillageMonthTotal).from_select(
            [*MONTH_KEY, *LEDGER_COUNTERS],
            select(
                *sums.c,
                *(func.coalesce(events.c[2 + n], 0) for n in range(len(EVENTS))),
            ).outerjoin(events, joined),
        )
    )
    # Added to the month's row, or a row of its own for a month of check-ins that scored
    # nothing.
    zeros = {f"v_{name}": 0 for name in LEDGER_COUNTERS}
    counted = [
        {"v_village_id": village_id, "v_month": month, **zeros, "v_checkins": n}
        for (village_id, month), n in sorted(_checkin_counts(session, tz).items())
    ]
    if counted:  # one statement, many rows (executemany)
        session.execute(_upsert(session.get_bind().dialect.name), counted)
    items = _item_sums().subquery()
    session.execute(delete(VillageMonthItem))
    session.execute(
        insert(VillageMonthItem).from_select(
            [*ITEM_KEY, *ITEM_COUNTS],
            select(
                items.c[0],
                items.c[1],
                func.coalesce(items.c[2], NO_ITEM),
                *items.c[3:],
            ),
        )
    )


def verify(session: Session, tz: ZoneInfo) -> list[str]:
    """Every (village, month) whose kept totals differ from the sum of its households' month
    totals (and its counts of posting and redeeming entries from the ledger's, and of
    check-ins, months in `tz`), or that one side has and the other not, then every item
    total that differs from the ledger (`verify_items`); empty: all agree."""
    sums = {
        (village_id, month): tuple(int(v) for v in values)
        for village_id, month, *values in session.execute(_month_sums())
    }
    events = {
        (village_id, month): tuple(int(v) for v in values)
        for village_id, month, *values in session.execute(_month_events())
    }
    checkins = _checkin_counts(session, tz)
    none = (0,) * (len(SUMS) + len(COUNTS))
    summed = {
        key: sums.get(key, none) + events.get(key, (0,) * len(EVENTS)) + (checkins[key],)
        for key in set(sums) | set(checkins)
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
    ] + verify_items(session)


def verify_items(session: Session) -> list[str]:
    """Every (village, month, item, kind) whose kept count and sum differ from the ledger's
    score entries (empty: all agree)."""
    summed = {
        (village_id, month, version_id or NO_ITEM, kind): (int(n), int(amount or 0))
        for village_id, month, version_id, kind, n, amount in session.execute(_item_sums())
    }
    kept = {
        (row.village_id, row.month, row.rule_item_version_id, row.kind): (row.entries, row.amount)
        for row in session.scalars(select(VillageMonthItem))
    }
    return [
        f"村 {key[0]} {key[1]} 项目版本 {key[2]} {key[3]} 分项合计记为 {_pair(kept.get(key))}，"
        f"按台账应为 {_pair(summed.get(key))}"
        for key in sorted(set(summed) | set(kept))
        if kept.get(key) != summed.get(key)
    ]


def _pair(values: tuple[int, int] | None) -> str:
    return "（无）" if values is None else f"{values[0]} 笔 {values[1]} 分"


def _show(values: tuple[int, ...] | None) -> str:
    if values is None:
        return "（无）"
    return " ".join(f"{name}={value}" for name, value in zip(COUNTERS, values, strict=True))
