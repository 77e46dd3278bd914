"""The last run of each scheduled command (cron / systemd timer), one row per command."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime


class JobRun(Base):
    """How a scheduled command (`flask claims post-due`, `flask ledger verify`, `flask
    backup`…) last ended, and how often it ran and failed. Kept in the database, not in the
    process: each run is a process of its own and may run on any of several app servers,
    while /metrics is answered by whichever worker is asked."""

    __tablename__ = "job_runs"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)  # "claims post-due"
    runs: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_ok: Mapped[bool | None] = mapped_column(Boolean)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_message: Mapped[str | None] = mapped_column(String(500))  # the failure's one line
