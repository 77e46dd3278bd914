"""The village's time zone and the current time, read in one place."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import current_app


def village_tz() -> ZoneInfo:
    return ZoneInfo(current_app.config["APP_TIMEZONE"])


def now() -> datetime:
    return datetime.now(UTC)
