"""The points ledger (积分存折): household accounts, chained entries, monthly totals."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, utcnow

ENTRY_KINDS = ("earn", "deduct", "redeem", "reverse", "adjust", "expire")
REVERSAL_REQUEST_STATUSES = ("pending_confirmation", "confirmed")
GENESIS_HASH = "0" * 64


class Account(Base):
    """A household's points (以户为单位). Never edited by hand: `available` and `held` move only
    with an appended entry or a hold, and `head_hash` is the head of the entry chain."""

    __tablename__ = "accounts"
    __table_args__ = (CheckConstraint("held >= 0", name="held_not_negative"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), unique=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id"), index=True)
    available: Mapped[int] = mapped_column(Integer, default=0)
    held: Mapped[int] = mapped_column(Integer, default=0)
    # Lifetime score: earnings and deductions (and their reversals); spending never lowers it.
    earned_total: Mapped[int] = mapped_column(Integer, default=0)
    entry_count: Mapped[int] = mapped_column(Integer, default=0)
    head_hash: Mapped[str] = mapped_column(String(64), default=GENESIS_HASH)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerEntry(Base):
    """One line of the passbook. Append-only: a correction is a `reverse` entry."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("account_id", "seq"),
        CheckConstraint(
            "kind IN ('earn','deduct','redeem','reverse','adjust','expire')", name="kind"
        ),
        Index("ix_ledger_entries_account_month", "account_id", "month"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    seq: Mapped[int] = mapped_column(Integer)  # position in the account's chain, from 1
    kind: Mapped[str] = mapped_column(String(10))
    amount: Mapped[int] = mapped_column(Integer)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("villagers.id"), index=True)
    rule_item_version_id: Mapped[int | None] = mapped_column(ForeignKey("rule_item_versions.id"))
    # A claim posts at most once: the database refuses a second entry for it.
    claim_id: Mapped[int | None] = mapped_column(ForeignKey("claims.id"), unique=True)
    # An entry is reversed at most once.
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id"), unique=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM in the village's time zone
    note: Mapped[str | None] = mapped_column(String(500))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class MonthTotal(Base):
    """Per household and month, written in the same transaction as each entry, so a monthly
    board reads one row per household instead of scanning the ledger."""

    __tablename__ = "month_totals"
    __table_args__ = (
        UniqueConstraint("account_id", "month"),
        Index("ix_month_totals_village_month", "village_id", "month"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"))
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id"))
    month: Mapped[str] = mapped_column(String(7))
    score: Mapped[int] = mapped_column(Integer, default=0)  # what boards rank
    earned: Mapped[int] = mapped_column(Integer, default=0)
    deducted: Mapped[int] = mapped_column(Integer, default=0)  # <= 0
    redeemed: Mapped[int] = mapped_column(Integer, default=0)  # <= 0
    expired: Mapped[int] = mapped_column(Integer, default=0)  # <= 0
    # 期初结转: points brought over from before the system (and their reversals). Spendable,
    # but never earned here: not in `score`, so no board ranks them and no qualification
    # counts them.
    opening: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class VillageMonthTotal(Base):
    """Per village and month: the sum of the village's `month_totals` rows of that month (and
    how many of them earned), so
    the township's points report reads one row per village and month instead of one per
    household. Written once per transaction, as its last write (`points.village_totals`):
    the row is shared by every posting of the village, and taken earlier it would be held
    across a batch award's account locks. `points.village_totals.verify` recomputes it."""

    __tablename__ = "village_month_totals"
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id"), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # "YYYY-MM"
    score: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    earned: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    deducted: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    redeemed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    expired: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    opening: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Households with earned > 0 in the month (参与户数): the trend's participation.
    participating: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Entries of the month that post a claim, and that fulfil a redemption: /metrics' counts.
    claims_posted: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    redemptions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Check-ins (签到) of the month, in the villages' time zone, counted as each is recorded:
    # /metrics sums them instead of counting a table that grows with every meeting.
    checkins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class VillageMonthItem(Base):
    """Per village, month, rule item version and kind (earn, deduct, or reverse of one of
    them): how many entries and their sum, so the township's statistics by category read a
    row per village and item instead of every entry of the month. Written with the village
    month totals, as the transaction's last writes (`points.village_totals`), which also
    verifies it against the ledger."""

    __tablename__ = "village_month_items"
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id"), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # "YYYY-MM"
    # 0 for an entry without an item: part of the key, and a key cannot be NULL. (So no
    # foreign key either; an entry's own column has one.)
    rule_item_version_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    entries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    amount: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class MemberMonthTotal(Base):
    """Per member and month, for boards by person."""

    __tablename__ = "member_month_totals"
    __table_args__ = (
        UniqueConstraint("member_id", "month"),
        Index("ix_member_month_totals_village_month", "village_id", "month"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("villagers.id"))
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"))
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id"))
    month: Mapped[str] = mapped_column(String(7))
    score: Mapped[int] = mapped_column(Integer, default=0)
    earned: Mapped[int] = mapped_column(Integer, default=0)
    deducted: Mapped[int] = mapped_column(Integer, default=0)


class ReversalRequest(Base):
    """A reversal (冲正) of an entry at or above the two-cadre threshold, asked for by one
    cadre and waiting for a second, different one (or the township) to confirm it: only then
    is the reversing entry posted. One per entry; its row lock makes two confirmations at
    once post one reversal."""

    __tablename__ = "reversal_requests"
    __table_args__ = (
        CheckConstraint("status IN ('pending_confirmation','confirmed')", name="status"),
        Index("ix_reversal_requests_village_status", "village_id", "status"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("ledger_entries.id"), unique=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id"))
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"))
    amount: Mapped[int] = mapped_column(Integer)  # of the entry to reverse
    reason: Mapped[str] = mapped_column(String(500))  # the reversing entry's note
    status: Mapped[str] = mapped_column(String(24), default="pending_confirmation")
    requested_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirm_note: Mapped[str | None] = mapped_column(String(500))
    reversal_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id"))
