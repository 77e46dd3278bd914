"""The periodic reset of spendable points (定期清零): one row per village and period reset,
and the supermarket holds a reset found open, whose points it could not expire then."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, utcnow


class PeriodReset(Base):
    """A village's period (季度 or 年度) has been reset: written once, in the same transaction
    as the village's expire entries, so a second run (or two at once) finds it and does
    nothing. `baseline`: the first period the village was seen under this cycle, recorded
    as where its resets start; nothing was expired for it."""

    __tablename__ = "period_resets"
    __table_args__ = (
        UniqueConstraint("village_id", "period"),
        CheckConstraint("cycle IN ('quarterly','yearly')", name="cycle"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id"))
    period: Mapped[str] = mapped_column(String(8))  # 2026-Q1 or 2026, in the village's zone
    cycle: Mapped[str] = mapped_column(String(10))
    period_end: Mapped[datetime] = mapped_column(UTCDateTime)  # the village's midnight
    baseline: Mapped[bool] = mapped_column(Boolean, default=False)
    accounts: Mapped[int] = mapped_column(Integer, default=0)  # accounts with points expired
    points: Mapped[int] = mapped_column(Integer, default=0)  # expired, as a positive number
    ran_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PeriodResetHold(Base):
    """Points of the reset period held by an open order when the reset ran: they expire when
    the order is cancelled or expires instead of being picked up."""

    __tablename__ = "period_reset_holds"
    __table_args__ = (
        UniqueConstraint("reset_id", "redemption_id"),
        CheckConstraint("points > 0", name="points_positive"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    reset_id: Mapped[int] = mapped_column(ForeignKey("period_resets.id"))
    redemption_id: Mapped[int] = mapped_column(ForeignKey("redemptions.id"), index=True)
    points: Mapped[int] = mapped_column(Integer)
