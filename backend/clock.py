"""The village's time zone and the current time, read in one place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app


def village_tz() -> ZoneInfo:
    return ZoneInfo(current_app.config["APP_TIMEZONE"])


def now() -> datetime:
    return datetime.now(UTC)


def clock_skew() -> timedelta:
    """How far apart the app servers' clocks may be (QR_CLOCK_SKEW_SECONDS): one may show a
    rotating code that another checks."""
    return timedelta(seconds=current_app.config["QR_CLOCK_SKEW_SECONDS"])
