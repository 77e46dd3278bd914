"""Claims (申报) from proof to points, their approvals and objections, uploads, veto flags and
their withdrawals, and idempotency keys."""

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

from rules.claim_status import ClaimStatus

from .base import Base, UTCDateTime, utcnow

CLAIM_STATUSES = tuple(ClaimStatus)
CLAIM_SOURCES = ("villager", "cadre", "checkin")
OBJECTION_STATUSES = ("open", "upheld", "overturned")


class Claim(Base):
    """`pending → (approved) → in_notice (公示) → posted`, or `rejected`; `objected` while a
    villager's objection waits for a cadre. `approved` means approved by the village but
    over its monthly budget, waiting for the township. `withdrawn`: taken back by staff
    before it posted, with a reason the household reads."""

    __tablename__ = "claims"
    __table_args__ = (
        CheckConstraint(
            "status IN (" + ",".join(f"'{status}'" for status in ClaimStatus) + ")",
            name="status",
        ),
        CheckConstraint("source IN ('villager','cadre','checkin')", name="source"),
        Index("ix_claims_due", "status", "notice_ends_at"),
        # The claim lists, newest first (migration 0020): a household's, a village's (of a
        # status), the county's of a status; each page's keys read from the index alone.
        # A household's carries the village (PostgreSQL's INCLUDE; SQLite ignores it): a
        # township admin's list of one household checks each claim's village in the index
        # alone, where the planner otherwise intersected it with every village's index or
        # joined the villages to the table, its choice changing with the statistics (0.3 ms
        # against 1.5-9 ms at 10M ledger entries; migration 0024).
        Index("ix_claims_household", "household_id", "id", postgresql_include=["village_id"]),
        Index("ix_claims_village", "village_id", "id"),
        Index("ix_claims_village_status_id", "village_id", "status", "id"),
        # The county's list of a status; it carries the village and the points, so that the
        # budget page sums the points waiting for the township village by village from the
        # index alone (6-14 ms from the table at 10M; migration 0026).
        Index("ix_claims_status", "status", "id", postgresql_include=["village_id", "points"]),
        # 今日's two review lists: pending without an approval, pending with one (双人审核).
        Index("ix_claims_status_approvals", "status", "approvals", "id"),
        Index("ix_claims_item_household", "rule_item_id", "household_id", "occurred_at"),
        Index("ix_claims_item_member", "rule_item_id", "member_id", "occurred_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id"))
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"))  # ix_claims_household
    member_id: Mapped[int | None] = mapped_column(ForeignKey("villagers.id"))
    rule_item_id: Mapped[int] = mapped_column(ForeignKey("rule_items.id"))
    rule_item_version_id: Mapped[int] = mapped_column(ForeignKey("rule_item_versions.id"))
    source: Mapped[str] = mapped_column(String(10))
    units: Mapped[int | None] = mapped_column(Integer)
    points: Mapped[int] = mapped_column(Integer)  # as the engine decided (again at posting)
    capped: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(String(300))  # the engine's explanation
    note: Mapped[str | None] = mapped_column(String(500))
    evidence: Mapped[list[Any]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(12))
    # How many cadres approved it so far (its `claim_approvals` rows, kept with them): a
    # pending claim waits for a first review at 0 and for a second one at 1, and the
    # console's lists find either through an index instead of probing each claim's approvals.
    approvals: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    submitted_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    notice_ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    posted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reject_reason: Mapped[str | None] = mapped_column(String(500))
    rejected_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    withdraw_reason: Mapped[str | None] = mapped_column(String(500))
    withdrawn_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MonthlyIssued(Base):
    """The points a village has decided to award for a month (本月已发放), against its
    monthly budget: kept, as claims are decided, equal to the sum of its positive claims in
    notice, objected or posted whose deed (`occurred_at`) is in that month (village time)
    and whose entry was not reversed (`points.budget`). Checked and added to in one
    conditional statement, so two approvals at once cannot both spend the last of a budget,
    and read in O(1): summing the month's claims on every check-in cost a busy village more
    with every claim. `points.budget.verify_issued` recomputes it."""

    __tablename__ = "monthly_issued"
    __table_args__ = (
        CheckConstraint("issued >= 0", name="issued_not_negative"),
        # The month's rows of many villages (the budget page, 今日), found without passing
        # every month before (300 rows more a month in a county; migration 0025). Neither
        # column changes once written: adding to `issued` still updates the row in place.
        Index("ix_monthly_issued_month", "month", "village_id"),
    )
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id"), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # "YYYY-MM"
    issued: Mapped[int] = mapped_column(Integer)


class ClaimApproval(Base):
    __tablename__ = "claim_approvals"
    # The same cadre approving twice counts once (and a retry cannot double-approve).
    __table_args__ = (UniqueConstraint("claim_id", "user_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Objection(Base):  # 公示期异议
    __tablename__ = "objections"
    __table_args__ = (
        CheckConstraint("status IN ('open','upheld','overturned')", name="status"),
        # One objection per villager per claim: objecting again after each decision would
        # hold a claim back forever.
        UniqueConstraint("claim_id", "user_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(12), default="open")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution_note: Mapped[str | None] = mapped_column(String(500))


class Upload(Base):
    """A photo, re-encoded without EXIF and stored under UPLOAD_DIR by a random name."""

    __tablename__ = "uploads"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    village_id: Mapped[int | None] = mapped_column(ForeignKey("villages.id"), index=True)
    stored_name: Mapped[str] = mapped_column(String(64), unique=True)
    content_type: Mapped[str] = mapped_column(String(40))
    size: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class HouseholdFlag(Base):
    """A veto (一票否决) bar from boards and honours for a span of months, from a posted claim.
    A flag whose veto the township withdrew (`withdrawal_id`) bars nothing: every reader
    asks for `withdrawal_id IS NULL`."""

    __tablename__ = "household_flags"
    id: Mapped[int] = mapped_column(primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    claim_id: Mapped[int | None] = mapped_column(ForeignKey("claims.id"))
    from_month: Mapped[str] = mapped_column(String(7))
    until_month: Mapped[str] = mapped_column(String(7))  # inclusive
    note: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    withdrawal_id: Mapped[int | None] = mapped_column(ForeignKey("veto_withdrawals.id"))


class VetoWithdrawal(Base):
    """A posted veto (一票否决) withdrawn by the township (撤销): what it wiped given back by
    entries that reverse its own, its bar lifted, noted on the board of `month`. Once per
    claim."""

    __tablename__ = "veto_withdrawals"
    __table_args__ = (Index("ix_veto_withdrawals_village_month", "village_id", "month"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"), unique=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id"))
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"))
    reason: Mapped[str] = mapped_column(String(500))
    restored: Mapped[int] = mapped_column(Integer)  # spendable points given back
    # The month its bar started: the deed's (the claim's occurred_at), village time.
    vetoed_month: Mapped[str] = mapped_column(String(7))
    month: Mapped[str] = mapped_column(String(7))  # when it was withdrawn, village time
    withdrawn_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    withdrawn_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IdempotencyKey(Base):
    """The first answer to a write, replayed for a retry with the same key and body."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    key: Mapped[str] = mapped_column(String(100))
    endpoint: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[Any | None] = mapped_column(JSON)  # None until the write commits
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
