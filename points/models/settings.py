"""Settings the database keeps about itself (one row)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, utcnow


class AppSettings(Base):
    """The one row of settings that must not change under the data. `time_zone`: the
    villages' zone (APP_TIMEZONE) the stored months were cut in — a ledger entry's month is
    signed into its hash chain and a published board is frozen, so they cannot follow a new
    setting; the service refuses to start under another one (points.time_zone)."""

    __tablename__ = "app_settings"
    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    time_zone: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
