"""The audit log of staff writes: append-only (services only ever insert)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, utcnow


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        # A village's log, newest first, and its count, with the township a township admin's
        # scope adds and the moment a time filter reads (PostgreSQL's INCLUDE; migration 0027).
        Index("ix_audit_log_village", "village_id", "id", postgresql_include=["township_id", "at"]),
        # A township's log, newest first (migration 0020).
        Index("ix_audit_log_township", "township_id", "id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    action: Mapped[str] = mapped_column(String(60))
    object_type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[str | None] = mapped_column(String(40))
    # Indexed by ix_audit_log_township (township_id, id).
    township_id: Mapped[int | None] = mapped_column(ForeignKey("townships.id"))
    village_id: Mapped[int | None] = mapped_column(ForeignKey("villages.id"))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
