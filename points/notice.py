"""The verifiable public notice (公示可验证): a closed month's board commits to every
household's month with a Merkle root (rules.merkle), so a household can prove its month is
part of what was printed, and a township's and the county's roots roll the villages' up.

A household's month (one leaf), recomputed from the ledger alone, so that it is the same
whenever it is computed after closing and on any database:
- the households: every household of the village at closing, by id ascending (with or
  without an account; one without entries shows 0 points, balance 0 and the genesis head).
  A recomputation takes the first `month_leaves` of the village's households by id: ids
  only grow, so households added after the closing are not in the month.
- points: what the board counted that month: the score entries (awards, deductions and
  their reversals) of the month, less those that reached it after it was closed (late
  postings, noted on a later board).
- head_hash and available: the chain head at the month's end (the last entry made before
  midnight of the month's last day, village time) and the ledger balance up to it (the
  entries' sum; a supermarket hold moves no entry and is not in it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from rules import merkle

from .boards.page import FontSpec, Page, pngs_to_pdf
from .errors import Conflict, NotFound
from .ledger import SCORE_KINDS, balance_through
from .models import BoardSnapshot, Household, LatePosting, Township, Village
from .models.ledger import GENESIS_HASH, Account, LedgerEntry


class MonthNotClosed(Conflict):
    code = "month_not_closed"
    message = "这个月还没有结榜"


class NoMonthRoot(NotFound):
    code = "no_month_root"
    message = "这个月结榜时还没有公示指纹"


class MonthRootMismatch(Conflict):
    code = "month_root_mismatch"
    message = "账本与公示的指纹不符，请联系乡镇核查"


@dataclass(frozen=True)
class HouseholdMonth:
    household_id: int
    period: str
    points: int
    available: int
    head_hash: str

    def data(self) -> bytes:
        return merkle.household_leaf(
            self.household_id, self.period, self.points, self.available, self.head_hash
        )


def month_end(period: str, tz: ZoneInfo) -> datetime:
    """Midnight at the start of the next month, village time, as UTC."""
    year, month = int(period[:4]), int(period[5:7])
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return datetime(year, month, 1, tzinfo=tz).astimezone(UTC)


def village_month_leaves(
    session: Session, village_id: int, period: str, tz: ZoneInfo, size: int | None = None
) -> list[HouseholdMonth]:
    """Every household's month (see the module's docstring), by household id; `size`: the
    first so many households (the leaf count kept at closing). Four queries, whatever the
    number of households."""
    households = (
        select(Household.id).where(Household.village_id == village_id).order_by(Household.id)
    )
    if size is not None:
        households = households.limit(size)
    ids = list(session.scalars(households))
    if not ids:
        return []
    last = ids[-1]
    accounts = (
        select(Account.id)
        .join(Household, Household.id == Account.household_id)
        .where(Household.village_id == village_id, Household.id <= last)
    )
    account_of = dict(
        session.execute(
            select(Account.id, Account.household_id).where(Account.id.in_(accounts))
        ).all()
    )

    end = month_end(period, tz)
    # The head at the month's end: the account's last entry made before it, found walking
    # back from the newest (only the entries made since are passed over, not the account's
    # whole history).
    head_seq = (
        select(LedgerEntry.seq)
        .where(LedgerEntry.account_id == Account.id, LedgerEntry.created_at < end)
        .order_by(LedgerEntry.seq.desc())
        .limit(1)
        .correlate(Account)
        .scalar_subquery()
    )
    head = (
        select(
            Account.id,
            Account.entry_count,
            (Account.available + Account.held).label("total"),
            head_seq.label("seq"),
        )
        .where(Account.id.in_(accounts))
        .subquery()
    )
    # The balance of the chain up to the head, in one statement: the account row's snapshot.
    balance = balance_through(head.c.id, head.c.seq, head.c.entry_count, head.c.total)
    heads: dict[int, tuple[int, str]] = {
        account_of[account_id]: (int(balance_ or 0), hash_)
        for account_id, hash_, balance_ in session.execute(
            select(head.c.id, LedgerEntry.hash, balance).join(
                LedgerEntry,
                (LedgerEntry.account_id == head.c.id) & (LedgerEntry.seq == head.c.seq),
            )
        )
    }

    reversed_ = aliased(LedgerEntry)
    late = select(LatePosting.entry_id).where(
        LatePosting.village_id == village_id, LatePosting.month == period
    )
    scores = {
        account_of[account_id]: int(total or 0)
        for account_id, total in session.execute(
            select(LedgerEntry.account_id, func.sum(LedgerEntry.amount))
            .outerjoin(reversed_, reversed_.id == LedgerEntry.reverses_id)
            .where(
                LedgerEntry.account_id.in_(accounts),
                LedgerEntry.month == period,
                LedgerEntry.kind.in_(SCORE_KINDS)
                | ((LedgerEntry.kind == "reverse") & reversed_.kind.in_(SCORE_KINDS)),
                LedgerEntry.id.not_in(late),
            )
            .group_by(LedgerEntry.account_id)
        )
    }
    return [
        HouseholdMonth(hid, period, scores.get(hid, 0), *heads.get(hid, (0, GENESIS_HASH)))
        for hid in ids
    ]


def month_root(leaves: Sequence[HouseholdMonth]) -> str:
    return merkle.root([leaf.data() for leaf in leaves]).hex()


def commit_month(session: Session, snapshot: BoardSnapshot, tz: ZoneInfo) -> None:
    """Set the root of a month being closed on its snapshot (before it is written)."""
    leaves = village_month_leaves(session, snapshot.village_id, snapshot.period, tz)
    snapshot.month_root = month_root(leaves)
    snapshot.month_leaves = len(leaves)


def _snapshot(session: Session, village_id: int, period: str) -> BoardSnapshot:
    snapshot = session.scalar(
        select(BoardSnapshot).where(
            BoardSnapshot.village_id == village_id, BoardSnapshot.period == period
        )
    )
    if snapshot is None:
        raise MonthNotClosed(details={"period": period})
    if snapshot.month_root is None or snapshot.month_leaves is None:
        raise NoMonthRoot(details={"period": period})
    return snapshot


def checked_leaves(session: Session, snapshot: BoardSnapshot, tz: ZoneInfo) -> list[HouseholdMonth]:
    """The month's leaves recomputed from the ledger; refused when they no longer give the
    root printed (a proof is never handed out for another root)."""
    leaves = village_month_leaves(
        session, snapshot.village_id, snapshot.period, tz, snapshot.month_leaves
    )
    if len(leaves) != snapshot.month_leaves or month_root(leaves) != snapshot.month_root:
        raise MonthRootMismatch(
            details={"village_id": snapshot.village_id, "period": snapshot.period}
        )
    return leaves


def _hex(hashes: Sequence[bytes]) -> list[str]:
    return [h.hex() for h in hashes]


def _roots_of(session: Session, period: str, township_id: int) -> list[tuple[int, str, int]]:
    """(village id, root, size) of the township's villages whose month is closed with a
    root, by village id. A root and its size are set together (`commit_month`)."""
    return [
        (vid, root, size)
        for vid, root, size in session.execute(
            select(BoardSnapshot.village_id, BoardSnapshot.month_root, BoardSnapshot.month_leaves)
            .join(Village, Village.id == BoardSnapshot.village_id)
            .where(
                Village.township_id == township_id,
                BoardSnapshot.period == period,
                BoardSnapshot.month_root.is_not(None),
            )
            .order_by(BoardSnapshot.village_id)
        )
        if root is not None and size is not None
    ]


@dataclass(frozen=True)
class TownshipMonth:
    township_id: int
    period: str
    villages: list[tuple[int, str, int]]  # (village id, root, size)
    root: str

    @property
    def size(self) -> int:
        return len(self.villages)

    def leaves(self) -> list[bytes]:
        return [
            merkle.village_leaf(vid, self.period, root, size) for vid, root, size in self.villages
        ]


def township_root(session: Session, township_id: int, period: str) -> TownshipMonth:
    """The township's root of the month over its villages' roots (those closed so far, by
    village id): computed on demand, it grows as villages close the month."""
    villages = _roots_of(session, period, township_id)
    leaves = [merkle.village_leaf(vid, period, root, size) for vid, root, size in villages]
    return TownshipMonth(township_id, period, villages, merkle.root(leaves).hex())


def county_root(session: Session, period: str) -> tuple[str, list[TownshipMonth]]:
    """The county's root of the month over its townships' roots, by township id."""
    townships = [
        township_root(session, tid, period)
        for tid in session.scalars(select(Township.id).order_by(Township.id))
    ]
    leaves = [merkle.township_leaf(t.township_id, period, t.root, t.size) for t in townships]
    return merkle.root(leaves).hex(), townships


def village_in_township(session: Session, village_id: int, period: str) -> dict[str, Any]:
    """The village root's inclusion in its township's root (the Proof JSON's `village`)."""
    township_id = session.scalar(select(Village.township_id).where(Village.id == village_id))
    if township_id is None:
        raise NotFound()
    township = township_root(session, township_id, period)
    index = next(i for i, (vid, _, _) in enumerate(township.villages) if vid == village_id)
    return {
        "village_id": village_id,
        "township_id": township_id,
        "index": index,
        "size": township.size,
        "proof": _hex(merkle.inclusion_proof(township.leaves(), index)),
        "township_root": township.root,
        "township_fingerprint": merkle.fingerprint(township.root),
    }


def township_month(session: Session, township_id: int, period: str) -> dict[str, Any]:
    """The public view of a township's month root: the roots of its villages closed so far
    (no names), and the township root's inclusion in the county's root, so that a printed
    township report can be checked against the county's as a village's against its
    township's."""
    if session.get(Township, township_id) is None:
        raise NotFound()
    county, townships = county_root(session, period)
    index = next(i for i, t in enumerate(townships) if t.township_id == township_id)
    township = townships[index]
    if not township.villages:  # no village of it has closed the month with a root
        raise NoMonthRoot(details={"period": period})
    leaves = [merkle.township_leaf(t.township_id, period, t.root, t.size) for t in townships]
    return {
        "township_id": township_id,
        "period": period,
        "root": township.root,
        "fingerprint": merkle.fingerprint(township.root),
        "size": township.size,
        "villages": [
            {"village_id": vid, "root": root, "size": size} for vid, root, size in township.villages
        ],
        "county": {
            "index": index,
            "size": len(townships),
            "proof": _hex(merkle.inclusion_proof(leaves, index)),
            "county_root": county,
            "county_fingerprint": merkle.fingerprint(county),
        },
    }


def village_month(session: Session, village_id: int, period: str) -> dict[str, Any]:
    """The public view of a village's month root: no names, no households. A month not
    closed has no root yet, as one closed before roots were kept: both answer NoMonthRoot
    (the page is public; whether a month is closed is the board's to say)."""
    if session.get(Village, village_id) is None:
        raise NotFound()
    try:
        snapshot = _snapshot(session, village_id, period)
    except MonthNotClosed:
        raise NoMonthRoot(details={"period": period}) from None
    assert snapshot.month_root is not None
    return {
        "village_id": village_id,
        "period": period,
        "root": snapshot.month_root,
        "fingerprint": merkle.fingerprint(snapshot.month_root),
        "size": snapshot.month_leaves,
        "township": village_in_township(session, village_id, period),
    }


def household_month_proof(
    session: Session, household: Household, period: str, tz: ZoneInfo
) -> dict[str, Any]:
    """The Proof JSON: the household's leaf, its inclusion in the village's root printed on
    the board, and the village's inclusion in the township's root."""
    snapshot = _snapshot(session, household.village_id, period)
    leaves = checked_leaves(session, snapshot, tz)
    index = next((i for i, leaf in enumerate(leaves) if leaf.household_id == household.id), None)
    if index is None:  # a household made after the closing: not in that month
        raise NotFound("这户不在这个月的榜单里", code="not_in_month", details={"period": period})
    root = snapshot.month_root
    assert root is not None
    return {
        "period": period,
        "leaf": asdict(leaves[index]),
        "index": index,
        "size": len(leaves),
        "proof": _hex(merkle.inclusion_proof([leaf.data() for leaf in leaves], index)),
        "root": root,
        "fingerprint": merkle.fingerprint(root),
        "village": village_in_township(session, household.village_id, period),
    }


@dataclass(frozen=True)
class RootDrift:
    village_id: int
    period: str
    stored: str
    recomputed: str


def verify_month_roots(session: Session, tz: ZoneInfo) -> list[RootDrift]:
    """Every closed month's root recomputed from the ledger; those that no longer match."""
    drifts = []
    for snapshot in session.scalars(
        select(BoardSnapshot)
        .where(BoardSnapshot.month_root.is_not(None))
        .order_by(BoardSnapshot.village_id, BoardSnapshot.period)
    ):
        leaves = village_month_leaves(
            session, snapshot.village_id, snapshot.period, tz, snapshot.month_leaves
        )
        recomputed = month_root(leaves)
        if len(leaves) != snapshot.month_leaves or recomputed != snapshot.month_root:
            assert snapshot.month_root is not None
            drifts.append(
                RootDrift(snapshot.village_id, snapshot.period, snapshot.month_root, recomputed)
            )
    return drifts


REPORT_DPI = 150
A4 = (1240, 1754)  # at REPORT_DPI
BLACK, SOFT = (0, 0, 0), (0x44, 0x44, 0x44)


@dataclass(frozen=True)
class TownshipReport:
    """What the township's month report shows: its name, each village's line (id, name,
    fingerprint or why there is none) and the township's root over them. Everything drawn
    comes from here, so it also names the drawing in the render cache."""

    township: str
    period: str
    villages: tuple[tuple[int, str, str], ...]
    size: int
    root: str


def township_report(session: Session, township_id: int, period: str) -> TownshipReport:
    """The township's month report: each village with its month's fingerprint (or that it
    is not closed / has none), then the township's root."""
    township = session.get(Township, township_id)
    if township is None:
        raise NotFound()
    rolled = township_root(session, township_id, period)
    roots = {vid: root for vid, root, _ in rolled.villages}
    closed = set(
        session.scalars(
            select(BoardSnapshot.village_id)
            .join(Village, Village.id == BoardSnapshot.village_id)
            .where(Village.township_id == township_id, BoardSnapshot.period == period)
        )
    )
    villages = session.execute(
        select(Village.id, Village.name)
        .where(Village.township_id == township_id)
        .order_by(Village.id)
    ).all()
    lines = []
    for vid, name in villages:
        if vid in roots:
            shown = merkle.fingerprint(roots[vid])
        else:
            shown = "（结榜早于指纹）" if vid in closed else "（未结榜）"
        lines.append((vid, name, shown))
    return TownshipReport(township.name, period, tuple(lines), rolled.size, rolled.root)


def township_report_pdf(report: TownshipReport, font: FontSpec) -> bytes:
    """One A4 page of the report, to print for the township's notice board."""

    # Drawn on a recorded page (points.boards.page.Page), a strip at a time as its PNG is
    # written, not as an 8.7 MB image; the report's places and sizes are in pixels.
    page = Page(*A4, font)

    def write(x: int, y: int, text: str, size: int, fill: tuple[int, int, int]) -> None:
        page.text(x / page.u, y / page.u, text, size / page.u, fill)

    year, month = report.period.split("-")
    write(90, 90, f"{report.township} {year}年{int(month)}月 榜单公示指纹", 44, BLACK)
    write(90, 160, "各村红黑榜所印指纹，可用于核对本户当月积分是否在公示之中", 24, SOFT)
    y = 230
    # A long township lists as many villages as fit the page; the root covers them all.
    for vid, name, shown in report.villages[:40]:
        write(90, y, f"{vid:>4}  {name}", 26, BLACK)
        write(700, y, shown, 26, BLACK)
        y += 32
    y = max(y + 30, 1450)
    write(90, y, f"乡镇指纹（{report.size} 个村）：{merkle.fingerprint(report.root)}", 34, BLACK)
    write(90, y + 60, report.root, 22, SOFT)
    return pngs_to_pdf([page.png()], REPORT_DPI, title=f"{report.township}{report.period}公示指纹")


__all__ = [
    "HouseholdMonth",
    "MonthNotClosed",
    "MonthRootMismatch",
    "NoMonthRoot",
    "RootDrift",
    "TownshipMonth",
    "TownshipReport",
    "commit_month",
    "county_root",
    "household_month_proof",
    "month_end",
    "month_root",
    "township_report",
    "township_report_pdf",
    "township_root",
    "verify_month_roots",
    "village_month",
    "village_month_leaves",
]
