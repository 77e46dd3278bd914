"""The ledger: the only code that moves points (docs/DESIGN.md, The ledger).

- A balance moves only with an appended entry (or a hold, in the supermarket).
- `available + held == sum(entries)` per account, at every commit.
- Each entry is chained: hash = sha256(prev_hash || canonical entry), the head on the
  account row, updated in the same transaction under the account's row lock.
- Monthly totals per household and member are written in the same transaction.
- An entry that counts in a month whose board is already published is recorded as a late
  posting (补记) in the same transaction, for the next board published to note.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Generator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Select,
    Subquery,
    bindparam,
    case,
    func,
    insert,
    literal,
    null,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased
from sqlalchemy.orm.util import identity_key

from rules.periods import month_key

from . import village_totals
from .budget import give_back_reversed
from .db import (
    column_values,
    core,
    insert_as_loaded,
    join_as_loaded,
    new_for_insert,
    upsert_insert,
)
from .errors import Conflict, DomainError, NotFound
from .models import (
    Base,
    BoardSnapshot,
    Claim,
    ClaimApproval,
    Household,
    LatePosting,
    User,
    Village,
    Villager,
)
from .models.ledger import GENESIS_HASH, Account, LedgerEntry, MemberMonthTotal, MonthTotal

# Kinds that count towards the score boards rank (spending and expiry never lower it). An
# `adjust` is an opening balance (期初结转): points earned before the system, spendable but
# not earned in any month here, so neither ranked nor counted for qualification
# (MonthTotal.opening keeps them for the points report).
SCORE_KINDS = frozenset({"earn", "deduct"})
OPENING_KIND = "adjust"
REVERSIBLE_KINDS = frozenset({"earn", "deduct", "adjust"})


class NotReversible(DomainError):
    status = 409
    code = "not_reversible"
    message = "这条记录不能冲正"


class AlreadyReversed(DomainError):
    status = 409
    code = "already_reversed"
    message = "这条记录已经冲正过了"


def canonical(entry: LedgerEntry) -> str:
    """The bytes the chain signs: every field that gives the entry its meaning."""
    created = entry.created_at.astimezone(UTC).isoformat(timespec="microseconds")
    return json.dumps(
        {
            "account_id": entry.account_id,
            "seq": entry.seq,
            "kind": entry.kind,
            "amount": entry.amount,
            "member_id": entry.member_id,
            "rule_item_version_id": entry.rule_item_version_id,
            "claim_id": entry.claim_id,
            "reverses_id": entry.reverses_id,
            "created_by": entry.created_by,
            "created_at": created,
            "month": entry.month,
            "note": entry.note,
        },
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )


def chain_hash(prev_hash: str, entry: LedgerEntry) -> str:
    return hashlib.sha256((prev_hash + canonical(entry)).encode()).hexdigest()


def account_for(session: Session, household_id: int, *, lock: bool = False) -> Account:
    """The household's account, created on first use; with `lock`, row-locked until commit so
    appends to one chain are serialised (SQLite's BEGIN IMMEDIATE already serialises writers)."""
    stmt = select(Account).where(Account.household_id == household_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    account = session.scalar(stmt)
    if account is not None:
        return account
    _create_account(session, household_id)
    account = session.scalar(stmt)
    if account is None:
        raise NotFound()  # no such household
    return account


INCREMENTS = ("score", "earned", "deducted", "redeemed", "expired", "opening")
MEMBER_INCREMENTS = ("score", "earned", "deducted")


def _totals_statement(
    dialect: str,
    model: type[Base],
    keys: dict[str, str],
    increments: tuple[str, ...],
    returning: tuple[str, ...] = (),
) -> Any:
    """INSERT … ON CONFLICT DO UPDATE adding to the counters of a totals row: `keys` (column:
    parameter) and the counters (`v_<counter>`) bound by name, returning the `returning`
    columns' new values. Built once per statement (the callers cache it): building the
    statement and its cache key cost more CPU than running it, and every entry runs one or
    two."""
    table = model.__table__
    stmt = upsert_insert(dialect)(table).values(
        {
            **{column: bindparam(name) for column, name in keys.items()},
            **{name: bindparam(f"v_{name}") for name in increments},
        }
    )
    upsert = stmt.on_conflict_do_update(
        index_elements=list(keys)[:1] + ["month"],
        set_={name: table.c[name] + stmt.excluded[name] for name in increments},
    )
    return upsert.returning(*(table.c[name] for name in returning)) if returning else upsert


@lru_cache(maxsize=4)
def _month_total_statement(dialect: str, earned: bool) -> Any:
    """The household's month (MonthTotal), every counter added to; with `earned`, returning
    its new `earned`."""
    keys = {name: f"v_{name}" for name in ("account_id", "household_id", "village_id", "month")}
    return _totals_statement(dialect, MonthTotal, keys, INCREMENTS, ("earned",) if earned else ())


@lru_cache(maxsize=2)
def _member_total_statement(dialect: str) -> Any:
    """The member's month (MemberMonthTotal), for an entry that scores: its score, earned and
    deducted, the same as its household's month."""
    keys = {"member_id": "m_member_id"}
    keys |= {name: f"v_{name}" for name in ("household_id", "village_id", "month")}
    return _totals_statement(dialect, MemberMonthTotal, keys, MEMBER_INCREMENTS)


@lru_cache(maxsize=64)
def _append_statement(
    columns: tuple[str, ...], from_hold: bool, scores: bool, member: bool, earned: bool
) -> Any:
    """PostgreSQL: the entry (its `columns` bound as `e_<column>`), the account's move
    (`_move_statement`), the household's month and, with `member`, the member's month, in
    one statement; it returns the entry's id, how many accounts moved (1, or 0 when the
    head was not the one read) and, with `earned`, the household month's new `earned`
    (else NULL). Data-modifying CTEs all run to completion, referenced or not, and see the
    same snapshot; none of them touches a row another one does."""
    entry = (
        insert(LedgerEntry)
        .values({name: bindparam(f"e_{name}") for name in columns})
        .returning(LedgerEntry.id)
        .cte("entry")
    )
    moved = _move_statement(from_hold, scores).returning(Account.id).cte("moved")
    month = _month_total_statement("postgresql", earned).cte("month_total")
    ctes = [month]
    if member:
        ctes.append(_member_total_statement("postgresql").cte("member_total"))
    return select(
        select(entry.c.id).scalar_subquery(),
        select(func.count()).select_from(moved).scalar_subquery(),
        select(month.c.earned).scalar_subquery() if earned else null(),
    ).add_cte(*ctes)


@dataclass(frozen=True)
class EntryOrigin:
    """What an entry is about: the member it is for, the rule item version it was scored
    under, the claim it posts, the entry it reverses, the user who made it, and its note."""

    member_id: int | None = None
    rule_item_version_id: int | None = None
    claim_id: int | None = None
    reverses_id: int | None = None
    created_by: int | None = None
    note: str | None = None


@dataclass(frozen=True)
class EntryTime:
    """When an entry is made (`at`, else now) and the moment whose month it counts in
    (`counts_for`: a claim's deed, posted after its notice; else `at`), months read in the
    village's time zone `tz`."""

    tz: ZoneInfo
    at: datetime | None = None
    counts_for: datetime | None = None


def append(
    session: Session,
    *,
    household_id: int,
    kind: str,
    amount: int,
    when: EntryTime,
    origin: EntryOrigin | None = None,
    from_hold: bool = False,
    locked: Head | None = None,
) -> LedgerEntry:
    """Append one entry and move the balance with it. `from_hold` (a fulfilled redemption)
    takes the amount out of `held` instead of `available`. If the month the entry counts in
    (`when`) has its board published already, the entry is a late posting
    (`_record_if_late`). `locked`: the household's account row as the caller locked and read
    it in this transaction (`lock_head_columns`), else it is locked and read here."""
    origin = origin or EntryOrigin()
    tz = when.tz
    account_id, village_id, count, head = locked or _lock_head(session, household_id)
    created_at = when.at or datetime.now(UTC)
    entry = new_for_insert(
        LedgerEntry,
        account_id=account_id,
        seq=count + 1,
        kind=kind,
        amount=amount,
        member_id=origin.member_id,
        rule_item_version_id=origin.rule_item_version_id,
        claim_id=origin.claim_id,
        reverses_id=origin.reverses_id,
        created_by=origin.created_by,
        created_at=created_at,
        month=month_key((when.counts_for or created_at).astimezone(tz)),
        note=origin.note,
        prev_hash=head,
    )
    entry.hash = chain_hash(head, entry)

    # A reversal counts where the entry it reverses counted: an award's in the score, a
    # withdrawn veto's wipe in the expired points (so issued = balances + redeemed + expired
    # still holds in the points report).
    reversed_kind = _kind_of(session, origin.reverses_id) if kind == "reverse" else None
    scores = kind in SCORE_KINDS or reversed_kind in SCORE_KINDS
    increments = {
        "score": amount if scores else 0,
        "earned": amount if kind == "earn" else 0,
        "deducted": amount if kind == "deduct" else 0,
        "redeemed": amount if kind == "redeem" else 0,
        "expired": amount if "expire" in (kind, reversed_kind) else 0,
        "opening": amount if OPENING_KIND in (kind, reversed_kind) else 0,
    }
    member = origin.member_id is not None and scores
    # The household month's new `earned`, read back when the entry earns (`participating`).
    earns = increments["earned"] > 0
    # The account's new head and balance, guarded by the chain head we read under the lock:
    # a concurrent append cannot slip in.
    move = {
        "account_id": account_id,
        "read_head": head,
        "amount": amount,
        "entry_count": entry.seq,
        "head_hash": entry.hash,
    }
    totals = {
        "v_account_id": account_id,
        "v_household_id": household_id,
        "v_village_id": village_id,
        "v_month": entry.month,
        **{f"v_{name}": value for name, value in increments.items()},
    }
    if member:
        totals["m_member_id"] = origin.member_id
    values = column_values(entry)
    earned = None
    if session.get_bind().dialect.name == "postgresql":
        # The entry, the account's move and the month totals in one statement (one round trip
        # instead of three or four), each as it is written apart below.
        connection = core(session)
        entry_id, moved, earned = connection.execute(
            _append_statement(tuple(values), from_hold, scores, member, earns),
            {**{f"e_{name}": value for name, value in values.items()}, **move, **totals},
        ).one()
        join_as_loaded(session, entry, entry_id)
    else:
        # One INSERT … RETURNING id; the entry joins the session as loaded.
        insert_as_loaded(session, entry)
        moved = core(session).execute(_move_statement(from_hold, scores), move).rowcount
        if moved == 1:
            month = core(session).execute(_month_total_statement("sqlite", earns), totals)
            earned = month.scalar_one() if earns else None
            if member:
                core(session).execute(_member_total_statement("sqlite"), totals)
    if moved != 1:
        # Cannot happen under the row lock taken above; if it does, the entry (and on
        # PostgreSQL its month totals) is already written: the error must end the
        # transaction, which every caller does (none catches it inside a savepoint).
        raise Conflict("账户正在被其他操作修改，请重试", code="account_busy")
    # An Account the session holds is stale now: read again if used.
    loaded = session.identity_map.get(identity_key(Account, account_id))
    if loaded is not None:
        session.expire(loaded)
    # The household's first earning of the month (earned only grows): one more household
    # taking part in its village's month (参与户数).
    participating = int(earned is not None and earned == increments["earned"])
    village_totals.record(
        session,
        village_id,
        entry.month,
        {
            **increments,
            "participating": participating,
            "claims_posted": int(origin.claim_id is not None),
            "redemptions": int(kind == "redeem"),
        },
        (entry.rule_item_version_id, kind, amount) if scores else None,
    )
    if scores and amount and entry.month < month_key(created_at.astimezone(tz)):
        _record_if_late(session, village_id, household_id, entry)
    return entry


class Head(NamedTuple):
    """An account row as an append needs it, locked until commit: its id, village, entry
    count and chain head."""

    account_id: int
    village_id: int
    entry_count: int
    head_hash: str


# Built once (every entry runs them): the account's row locked with what the next entry needs.
_LOCK_HEAD = (
    select(Account.id, Account.village_id, Account.entry_count, Account.head_hash)
    .where(Account.household_id == bindparam("household_id"))
    .with_for_update()
)


def lock_head_columns(household_id: Any) -> Subquery:
    """`_lock_head`'s statement as a subquery (`household_id` a column or a bound parameter),
    for a caller that locks the account row within a statement of its own and passes what it
    read to `append` (`Head`): one round trip less. Its columns: account_id, village_id,
    entry_count, head_hash; no row when the household has no account yet."""
    return (
        select(
            Account.id.label("account_id"),
            Account.village_id,
            Account.entry_count,
            Account.head_hash,
        )
        .where(Account.household_id == household_id)
        .with_for_update()
        .subquery("head")
    )


def _lock_head(session: Session, household_id: int) -> Head:
    """The household's account row locked until commit (created on first use, as
    `account_for`): its id, village, entry count and chain head."""
    row = core(session).execute(_LOCK_HEAD, {"household_id": household_id}).first()
    if row is None:
        return open_account(session, household_id)
    account_id, village_id, count, head = row
    return Head(account_id, village_id, count, head)


def open_account(session: Session, household_id: int) -> Head:
    """`_lock_head` of a household found without an account: its account created (unless
    another transaction just did) and locked. On PostgreSQL one statement: the insert's
    conflict with a row created meanwhile waits for it and locks it by a no-op update, and
    either way the row comes back; on SQLite (a single writer) the insert, then the read."""
    connection = core(session)
    params = {"household_id": household_id, "created_at": datetime.now(UTC)}
    if connection.dialect.name == "postgresql":
        row = connection.execute(_open_statement(), params).first()
    else:
        connection.execute(_create_statement(connection.dialect.name), params)
        row = connection.execute(_LOCK_HEAD, {"household_id": household_id}).first()
    if row is None:
        raise NotFound()  # no such household
    account_id, village_id, count, head = row
    return Head(account_id, village_id, count, head)


@lru_cache(maxsize=1)
def _open_statement() -> Any:
    """PostgreSQL: a household's empty account, or the one it has, locked and returned."""
    table = Account.__table__
    stmt = upsert_insert("postgresql")(table).from_select(*_new_account())
    return stmt.on_conflict_do_update(
        index_elements=["household_id"], set_={"household_id": stmt.excluded.household_id}
    ).returning(table.c.id, table.c.village_id, table.c.entry_count, table.c.head_hash)


def _create_account(session: Session, household_id: int) -> None:
    """The household's empty account, unless it has one (or there is no such household):
    two first entries at once create one row (ON CONFLICT DO NOTHING), then queue on it."""
    connection = core(session)
    connection.execute(
        _create_statement(connection.dialect.name),
        {"household_id": household_id, "created_at": datetime.now(UTC)},
    )


@lru_cache(maxsize=2)
def _create_statement(dialect: str) -> Any:
    """A household's empty account, unless it has one."""
    return (
        upsert_insert(dialect)(Account.__table__)
        .from_select(*_new_account())
        .on_conflict_do_nothing(index_elements=["household_id"])
    )


def _new_account() -> tuple[list[str], Select[*tuple[Any, ...]]]:
    """The columns of a household's empty account and the SELECT of their values (no row
    when there is no such household)."""
    columns = ["household_id", "village_id", "available", "held", "earned_total"]
    columns += ["entry_count", "head_hash", "created_at"]
    household = select(
        Household.id,
        Household.village_id,
        literal(0),
        literal(0),
        literal(0),
        literal(0),
        literal(GENESIS_HASH),
        bindparam("created_at", type_=Account.__table__.c.created_at.type),
    ).where(Household.id == bindparam("household_id"))
    return columns, household


@lru_cache(maxsize=4)
def _move_statement(from_hold: bool, scores: bool) -> Any:
    """The account's new head and balance, only if its head is still the one read."""
    values: dict[str, Any] = {
        "entry_count": bindparam("entry_count"),
        "head_hash": bindparam("head_hash"),
    }
    if from_hold:
        values["held"] = Account.held + bindparam("amount")
    else:
        values["available"] = Account.available + bindparam("amount")
    if scores:
        values["earned_total"] = Account.earned_total + bindparam("amount")
    return (
        update(Account)
        .where(Account.id == bindparam("account_id"), Account.head_hash == bindparam("read_head"))
        .values(values)
    )


def _record_if_late(
    session: Session, village_id: int, household_id: int, entry: LedgerEntry
) -> None:
    """An entry counted in an earlier month whose board is published: a late posting, which
    the next board published notes (the published one never changes). Decided under the
    village's row lock, which closing a month takes as well (points.boards.closing.close_month), so
    the entry and the closing of its month are one before the other: either the board counts
    the entry or the entry finds the board. Only back-dated entries take the lock; NO KEY
    UPDATE leaves the foreign-key checks of other writes to the village alone."""
    session.execute(
        select(Village.id).where(Village.id == village_id).with_for_update(key_share=True)
    )
    published = session.scalar(
        select(BoardSnapshot.id).where(
            BoardSnapshot.village_id == village_id, BoardSnapshot.period == entry.month
        )
    )
    if published is None:
        return
    session.add(
        LatePosting(
            entry_id=entry.id,
            village_id=village_id,
            household_id=household_id,
            month=entry.month,
            amount=entry.amount,
            created_at=entry.created_at,
        )
    )
    session.flush()


def _kind_of(session: Session, entry_id: int | None) -> str | None:
    if entry_id is None:
        return None
    return session.scalar(select(LedgerEntry.kind).where(LedgerEntry.id == entry_id))


def check_reversible(
    session: Session, entry: LedgerEntry, kinds: frozenset[str] = REVERSIBLE_KINDS
) -> None:
    """Refuse an entry of another kind, or one already reversed."""
    if entry.kind not in kinds:
        raise NotReversible()
    if session.scalar(select(LedgerEntry.id).where(LedgerEntry.reverses_id == entry.id)):
        raise AlreadyReversed()


def reverse(
    session: Session,
    entry: LedgerEntry,
    *,
    reason: str,
    created_by: int,
    tz: ZoneInfo,
    kinds: frozenset[str] = REVERSIBLE_KINDS,
) -> LedgerEntry:
    """A correction: an entry of the opposite amount, in the month it is made (a published
    board is never changed silently; the reversal shows on the next one). `kinds`: what may
    be reversed; a cadre corrects awards and deductions, and an expiry is given back only
    with the veto that wiped it (claims.withdraw_veto). A reversed award's points go back
    to its month's budget (budget.give_back_reversed), as its room under the caps does."""
    check_reversible(session, entry, kinds)
    account = session.get(Account, entry.account_id)
    assert account is not None
    # The budget's row before the account's, in the order an approval that posts at once
    # takes them: the other order could deadlock with it.
    give_back_reversed(session, entry, tz)
    return append(
        session,
        household_id=account.household_id,
        kind="reverse",
        amount=-entry.amount,
        when=EntryTime(tz),
        origin=EntryOrigin(
            member_id=entry.member_id,
            rule_item_version_id=entry.rule_item_version_id,
            reverses_id=entry.id,
            created_by=created_by,
            note=reason,
        ),
    )


@dataclass(frozen=True)
class ChainBreak:
    account_id: int
    household_id: int
    entry_id: int | None
    seq: int | None
    problem: str


@dataclass(frozen=True)
class VerifyReport:
    accounts: int
    entries: int
    breaks: list[ChainBreak]


def _entries(session: Session, account_id: int) -> Generator[LedgerEntry]:
    # A server-side cursor on PostgreSQL: closed even when the walk stops at a break.
    with session.scalars(
        select(LedgerEntry)
        .where(LedgerEntry.account_id == account_id)
        .order_by(LedgerEntry.seq)
        .execution_options(yield_per=1000)
    ) as result:
        yield from result


def verify_account(session: Session, account: Account) -> tuple[int, ChainBreak | None]:
    """Walk one chain; the first entry that does not match, or a balance that disagrees."""
    prev, count, total = GENESIS_HASH, 0, 0
    entries = _entries(session, account.id)
    for entry in entries:
        count += 1
        problem = None
        if entry.seq != count:
            problem = f"序号应为 {count}，实为 {entry.seq}"
        elif entry.prev_hash != prev:
            problem = "前一条哈希不符（记录被删除或插入）"
        elif chain_hash(prev, entry) != entry.hash:
            problem = "内容与哈希不符（记录被改动）"
        if problem:
            entries.close()  # runs the generator's `with`, closing the cursor now
            return count, ChainBreak(account.id, account.household_id, entry.id, entry.seq, problem)
        prev = entry.hash
        total += entry.amount
    if prev != account.head_hash or count != account.entry_count:
        return count, ChainBreak(
            account.id, account.household_id, None, None, "账户记录的链头与流水不符"
        )
    if account.available + account.held != total:
        return count, ChainBreak(
            account.id,
            account.household_id,
            None,
            None,
            f"余额 {account.available}+冻结 {account.held} ≠ 流水合计 {total}",
        )
    return count, None


def verify_all(session: Session) -> VerifyReport:
    accounts = entries = 0
    breaks: list[ChainBreak] = []
    for account in session.scalars(select(Account).order_by(Account.id)):
        accounts += 1
        count, problem = verify_account(session, account)
        entries += count
        if problem:
            breaks.append(problem)
    return VerifyReport(accounts, entries, breaks)


@dataclass(frozen=True)
class AccountView:
    household_id: int
    available: int
    held: int
    earned_total: int
    this_month: int


def account_view(session: Session, household_id: int, tz: ZoneInfo) -> AccountView:
    account = session.scalar(select(Account).where(Account.household_id == household_id))
    if account is None:
        return AccountView(household_id, 0, 0, 0, 0)
    month = month_key(datetime.now(tz))
    this_month = session.scalar(
        select(MonthTotal.score).where(
            MonthTotal.account_id == account.id, MonthTotal.month == month
        )
    )
    return AccountView(
        household_id, account.available, account.held, account.earned_total, this_month or 0
    )


def _passbook_lines() -> Select[LedgerEntry, str, datetime]:
    """Entries with who posted each and its claim's deed (the balance is read apart,
    `_balances_after`): narrowed by the caller to one page before anything is joined."""
    creator = aliased(Villager)  # a villager's own user may carry no name of its own
    return (
        select(
            LedgerEntry, func.coalesce(User.name, creator.name, User.username), Claim.occurred_at
        )
        .outerjoin(User, User.id == LedgerEntry.created_by)
        .outerjoin(creator, creator.id == User.villager_id)
        .outerjoin(Claim, Claim.id == LedgerEntry.claim_id)
    )


def balance_through(
    account_id: Any, seq: Any, entry_count: Any, balance: Any
) -> ColumnElement[int]:
    """The sum of an account's entries up to `seq` (SQL, its arguments columns or values):
    the entries up to it summed, or, when fewer came after it, the account's `balance`
    (available + held, the sum of all its entries at every commit) less those after it.
    `entry_count` is the account's; the entries are numbered 1, 2, 3 … without a gap."""
    entry = aliased(LedgerEntry)
    summed = func.coalesce(func.sum(entry.amount), 0)
    after = select(summed).where(entry.account_id == account_id, entry.seq > seq)
    up_to = select(summed).where(entry.account_id == account_id, entry.seq <= seq)
    return case(
        (entry_count - seq < seq, balance - after.scalar_subquery()),
        else_=up_to.scalar_subquery(),
    )


def _balances_after(session: Session, account_id: int, first: int, last: int) -> dict[int, int]:
    """The account's balance after each of its entries `first`..`last` (by `seq`): the sum
    of its entries up to it, as a paper passbook prints it. One statement: the balance after
    `last` (`balance_through`, reading whichever side of it holds fewer entries), then each
    line before `last` is the one after it less its amount. The balance
    after an entry never changes (entries are only appended), so the lines a caller read in
    another statement get the balances they had."""
    # In the account row's snapshot: a concurrent append counts in both or in neither.
    at_last = (
        select(
            balance_through(account_id, last, Account.entry_count, Account.available + Account.held)
        )
        .where(Account.id == account_id)
        .scalar_subquery()
    )
    rows = session.execute(
        select(LedgerEntry.seq, LedgerEntry.amount, at_last)
        .where(
            LedgerEntry.account_id == account_id,
            LedgerEntry.seq >= first,
            LedgerEntry.seq <= last,
        )
        .order_by(LedgerEntry.seq.desc())
    ).all()
    balances: dict[int, int] = {}
    balance = int(rows[0][2]) if rows else 0
    for seq, amount, _ in rows:
        balances[seq] = balance
        balance -= amount
    return balances


PassbookLine = tuple[LedgerEntry, int, str | None, datetime | None]


@dataclass(frozen=True)
class PassbookPage:
    rows: list[PassbookLine]
    total: int


def passbook_page(
    session: Session, household_id: int, *, month: str | None, page: int, per_page: int
) -> PassbookPage:
    """A page of the passbook, newest first: each entry with the balance after it (余额, the
    running sum of the account's entries up to it, as a paper passbook prints it), the name
    of who posted it, and its deed's moment when a claim made it. The balance is that of the
    whole account, so a line shows the same balance on any page and under any month.

    What it reads does not grow with the account: the page's lines are found by `seq` (an
    account's entries are numbered 1, 2, 3 … without a gap, so the page ending `offset`
    lines below the newest starts at `entry_count - offset`) or, for a month, among that
    month's entries; their balances by `_balances_after`."""
    account = session.execute(
        select(Account.id, Account.entry_count).where(Account.household_id == household_id)
    ).first()
    if account is None:
        return PassbookPage([], 0)
    account_id, entry_count = account
    offset = (page - 1) * per_page
    stmt = _passbook_lines().where(LedgerEntry.account_id == account_id)
    if month is None:
        total = entry_count
        stmt = stmt.where(LedgerEntry.seq <= entry_count - offset)
    else:
        total = (
            session.scalar(
                select(func.count()).where(
                    LedgerEntry.account_id == account_id, LedgerEntry.month == month
                )
            )
            or 0
        )
        stmt = stmt.where(LedgerEntry.month == month).offset(offset)
    found = session.execute(stmt.order_by(LedgerEntry.seq.desc()).limit(per_page)).all()
    if not found:
        return PassbookPage([], total)
    balances = _balances_after(session, account_id, found[-1][0].seq, found[0][0].seq)
    return PassbookPage([(e, balances[e.seq], name, deed) for e, name, deed in found], total)


def passbook_line(session: Session, entry: LedgerEntry) -> PassbookLine:
    """One entry as its passbook page shows it (a reversal just posted)."""
    e, name, deed = session.execute(_passbook_lines().where(LedgerEntry.id == entry.id)).one()
    balance = _balances_after(session, e.account_id, e.seq, e.seq)[e.seq]
    return e, balance, name, deed


def approver_names(session: Session, claim_ids: set[int]) -> dict[int, list[str]]:
    """Who approved each claim (审核人), in the order they did: one query."""
    names: dict[int, list[str]] = {}
    if not claim_ids:
        return names
    for claim_id, user_id, name, username in session.execute(
        select(ClaimApproval.claim_id, User.id, User.name, User.username)
        .join(User, User.id == ClaimApproval.user_id)
        .where(ClaimApproval.claim_id.in_(claim_ids))
        .order_by(ClaimApproval.id)
    ):
        names.setdefault(claim_id, []).append(name or username or f"用户{user_id}")
    return names


def member_names(session: Session, ids: set[int]) -> dict[int, tuple[str, str]]:
    if not ids:
        return {}
    rows = session.execute(
        select(Villager.id, Villager.name, Villager.relation).where(Villager.id.in_(ids))
    )
    return {r.id: (r.name, r.relation) for r in rows}


def sum_entries(session: Session, account_id: int) -> int:
    return (
        session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
                LedgerEntry.account_id == account_id
            )
        )
        or 0
    )
