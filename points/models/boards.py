"""Published ranking boards (红黑榜), their privacy settings and the public links printed on
plates (门牌) and boards."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, utcnow
from .ledger import LedgerEntry


class BoardSnapshot(Base):
    """A village's board for one month as published when the month was closed. Frozen: later
    corrections show as notes on a later board, this row is never updated."""

    __tablename__ = "board_snapshots"
    # One published board per village and month: two closings at once publish one.
    __table_args__ = (UniqueConstraint("village_id", "period"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id"))
    period: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    # The board as published (red and black lists, stars, notes), plus each household's
    # score of the month, against which later changes to that month are noted.
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    # count:sum:Σ id·score:Σ id²·score of the month's non-zero scores at closing: a checksum
    # of the published totals (what reached the month later is in late_postings).
    fingerprint: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The staff member who closed it; None when the cron closed it after the notice ended.
    closed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Merkle root (hex) over every household's month (points.notice), and its leaf count:
    # what the printed board commits to. None for months closed before roots were kept.
    month_root: Mapped[str | None] = mapped_column(String(64))
    month_leaves: Mapped[int | None] = mapped_column(Integer)


class LatePosting(Base):
    """Points that reached a month after its board was published: a claim of a month closed
    by hand (--force) posted when its notice or objection ended. Written with the ledger
    entry (points.ledger.append). The published board stays as it is; the next board
    published after the posting notes the points (补记), whichever month that board is, and
    `noted_in` is set to it when it is published, so no other board notes them again."""

    __tablename__ = "late_postings"
    __table_args__ = (Index("ix_late_postings_village_noted", "village_id", "noted_in"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("ledger_entries.id"), unique=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id"))
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"))
    month: Mapped[str] = mapped_column(String(7))  # the published month it counts in
    amount: Mapped[int] = mapped_column(Integer)  # what it adds to that month's score
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    noted_in: Mapped[int | None] = mapped_column(ForeignKey("board_snapshots.id"))


class BoardSettings(Base):
    """Board settings of a township (for all its villages) or of one village (overriding the
    township's); a None value inherits."""

    __tablename__ = "board_settings"
    __table_args__ = (
        CheckConstraint("(township_id IS NULL) <> (village_id IS NULL)", name="one_owner"),
        CheckConstraint(
            "red_list_size IS NULL OR red_list_size BETWEEN 1 AND 100", name="red_list_size"
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    township_id: Mapped[int | None] = mapped_column(ForeignKey("townships.id"), unique=True)
    village_id: Mapped[int | None] = mapped_column(ForeignKey("villages.id"), unique=True)
    # Public boards show 张*三 instead of 张某三's full name.
    mask_names: Mapped[bool | None] = mapped_column(Boolean)
    red_list_size: Mapped[int | None] = mapped_column(Integer)  # N of the red list (示范户)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PublicLink(Base):
    """A random token behind a printed QR that opens a page without login: a household's plate
    (门牌) or a village's online board. Renewing replaces the token, so an old print stops
    working."""

    __tablename__ = "public_links"
    __table_args__ = (
        CheckConstraint("kind IN ('plate','board')", name="kind"),
        CheckConstraint("(household_id IS NULL) <> (village_id IS NULL)", name="one_target"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(10))
    household_id: Mapped[int | None] = mapped_column(ForeignKey("households.id"), unique=True)
    village_id: Mapped[int | None] = mapped_column(ForeignKey("villages.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# The corrections a board notes are the reversals made in its month. Reversals are rare, so
# this partial index finds a month's reversals county-wide in a few rows, however long the
# ledger grows.
Index(
    "ix_ledger_entries_reversal_month",
    LedgerEntry.month,
    postgresql_where=LedgerEntry.reverses_id.isnot(None),
    sqlite_where=LedgerEntry.reverses_id.isnot(None),
)
