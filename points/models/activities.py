"""Activities (村级活动) and check-ins (签到): the proof of being there that becomes a claim."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, utcnow

QR_MODES = ("static", "rotating")
GEOFENCE_MODES = ("refuse", "flag")
ACTIVITY_STATES = ("scheduled", "cancelled")


class Activity(Base):
    """A meeting, clean-up or volunteer shift of one village, tied to one rule item.

    With a capacity, `places_taken` is raised by a conditional UPDATE in the check-in's own
    transaction, so the capacity holds under any number of concurrent scans. Without one it
    stays 0: an open activity takes no row lock per check-in (its count is read from
    check-ins)."""

    __tablename__ = "activities"
    __table_args__ = (
        CheckConstraint("qr_mode IN ('static','rotating')", name="qr_mode"),
        CheckConstraint("status IN ('scheduled','cancelled')", name="status"),
        CheckConstraint(
            "geofence_mode IS NULL OR geofence_mode IN ('refuse','flag')", name="geofence_mode"
        ),
        CheckConstraint(
            "places_taken >= 0 AND (capacity IS NULL OR places_taken <= capacity)", name="capacity"
        ),
        CheckConstraint(
            "starts_at < ends_at AND checkin_opens_at < checkin_closes_at", name="times"
        ),
        Index("ix_activities_village_closes", "village_id", "checkin_closes_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id"))
    title: Mapped[str] = mapped_column(String(100))
    place: Mapped[str | None] = mapped_column(String(100))  # where, for the printed poster
    rule_item_id: Mapped[int] = mapped_column(ForeignKey("rule_items.id"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    checkin_opens_at: Mapped[datetime] = mapped_column(UTCDateTime)
    checkin_closes_at: Mapped[datetime] = mapped_column(UTCDateTime)
    qr_mode: Mapped[str] = mapped_column(String(10))
    # Kept per activity: a later change of QR_ROTATE_SECONDS must not void a running screen.
    qr_step_seconds: Mapped[int] = mapped_column(Integer)
    lat: Mapped[float | None] = mapped_column(Float)
    lng: Mapped[float | None] = mapped_column(Float)
    radius_m: Mapped[int | None] = mapped_column(Integer)
    geofence_mode: Mapped[str | None] = mapped_column(String(10))
    capacity: Mapped[int | None] = mapped_column(Integer)
    places_taken: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(12), default="scheduled")
    note: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    cancel_reason: Mapped[str | None] = mapped_column(String(500))


class CheckIn(Base):  # 签到
    """One person at one activity: the unique constraint, not a read, makes it one."""

    __tablename__ = "checkins"
    __table_args__ = (
        UniqueConstraint("activity_id", "villager_id"),
        Index("ix_checkins_household", "household_id", "checked_in_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id"))
    villager_id: Mapped[int] = mapped_column(ForeignKey("villagers.id"))
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"))
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id"))
    # The villager's own account when they scanned; None for a proxy check-in.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # The cadre who scanned the villager's member card (代签), else None.
    proxy_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    checked_in_at: Mapped[datetime] = mapped_column(UTCDateTime)
    checked_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    checked_out_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    device_id: Mapped[str | None] = mapped_column(String(64))
    lat: Mapped[float | None] = mapped_column(Float)
    lng: Mapped[float | None] = mapped_column(Float)
    distance_m: Mapped[int | None] = mapped_column(Integer)
    # Recorded at check-in: out_of_area, no_location (geofence set to flag), own_household
    # (a cadre checking in their own family). Device and burst signals are computed on read.
    flags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    claim_id: Mapped[int | None] = mapped_column(ForeignKey("claims.id"))
    # What the check-in earned: the claim's points when it was made, 0 without a claim.
    points: Mapped[int] = mapped_column(Integer, default=0)
    # Why there is no claim (a cap reached, under an hour), shown to the villager.
    reason: Mapped[str | None] = mapped_column(String(300))
