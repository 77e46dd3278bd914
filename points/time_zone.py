"""The villages' time zone (APP_TIMEZONE) as the database keeps it.

Months are cut in the villages' zone, and many are stored: a ledger entry's month (signed
into its hash chain), the monthly totals that boards rank, the published boards (frozen),
the monthly budget's counter, veto bars and withdrawals, a redemption's month. Moving them
all to another zone would rewrite signed entries and published boards, which the ledger and
the boards promise never to do; counting new data in one zone next to old data cut in
another would make boards and caps disagree. So the zone is stored with the data (on the
first migration or start, `app_settings`), the service refuses to start under another
setting, and it can be changed only while nothing month-stamped is stored yet.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Select, exists, inspect, select
from sqlalchemy.orm import Session

from rules.periods import month_key

from .db import upsert_insert
from .errors import Conflict, Invalid
from .models import AppSettings, BoardSnapshot, CheckIn, Claim, HouseholdFlag, LedgerEntry

# What holds a month cut in the villages' zone, or a moment that one will be cut from into a
# stored month (a claim: the budget's counter, its entry's month).
# Check-ins count in their village's month (`village_totals.record_checkin`), also those
# that have no claim yet (a per-hour item's, until check-out).
MONTH_STAMPED = (LedgerEntry, Claim, BoardSnapshot, HouseholdFlag, CheckIn)


def moment_text(moment: datetime, zone: ZoneInfo) -> str:
    """The API's one spelling of a moment: in the village's zone, with its offset, to the
    second (2026-11-29T19:40:00+08:00). A client parses one format, and a moment shown to a
    villager never carries microseconds no one can read."""
    return moment.astimezone(zone).replace(microsecond=0).isoformat()


def by_village_month(
    session: Session, rows: Select[int, datetime, int], zone: ZoneInfo
) -> Counter[tuple[int, str]]:
    """The amounts of `rows` (village id, moment, amount) summed by village and the month of
    the moment in `zone`: what `flask ledger verify` checks a kept monthly count against.
    Read row by row, streamed: the month of a moment in a zone is computed alike on every
    database."""
    summed: Counter[tuple[int, str]] = Counter()
    for village_id, moment, amount in session.execute(rows.execution_options(yield_per=10_000)):
        summed[(village_id, month_key(moment.astimezone(zone)))] += amount
    return summed


def _has_table(session: Session) -> bool:
    """Whether the table exists: not before `flask db upgrade` created it."""
    return inspect(session.connection()).has_table(AppSettings.__tablename__)


def stored_zone(session: Session) -> str | None:
    """The zone the stored months were cut in; None before it was recorded."""
    if not _has_table(session):
        return None
    return session.scalar(select(AppSettings.time_zone).where(AppSettings.id == 1))


def refusal(session: Session, configured: str, now: datetime) -> str | None:
    """Why the service must not start under `configured` (one line), or None. The first start
    on a database without the row (its tables made without the migration, which records the
    zone itself) records the setting; two workers starting at once record one."""
    if not _has_table(session):
        return None  # `flask db upgrade` has yet to create the table, and records it then
    stored = session.scalar(select(AppSettings.time_zone).where(AppSettings.id == 1))
    if stored is None:
        insert = upsert_insert(session.get_bind().dialect.name)
        session.execute(
            insert(AppSettings)
            .values(id=1, time_zone=configured, updated_at=now)
            .on_conflict_do_nothing(index_elements=["id"])
        )
        stored = session.scalar(select(AppSettings.time_zone).where(AppSettings.id == 1))
    if stored == configured:
        return None
    return (
        f"APP_TIMEZONE is {configured} but this database's months are stored in "
        f"{stored}: set APP_TIMEZONE={stored} (changing the villages' time zone once "
        "points exist is not supported)"
    )


def holds_months(session: Session) -> bool:
    return any(session.scalar(select(exists().select_from(model))) for model in MONTH_STAMPED)


def change(session: Session, zone: str, now: datetime) -> str | None:
    """Store another zone for the villages, while nothing month-stamped is stored (a new
    installation migrated under the wrong setting); the zone it replaces."""
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise Invalid(
            f"没有这个时区：{zone}（应为 IANA 时区名，如 Asia/Shanghai）", code="unknown_time_zone"
        ) from exc
    if holds_months(session):
        raise Conflict(
            "已有积分、申报、签到或榜单按原时区记账，不能更改时区", code="time_zone_in_use"
        )
    row = session.get(AppSettings, 1, with_for_update=True)
    if row is None:
        row = AppSettings(id=1, time_zone=zone, updated_at=now)
        session.add(row)
        session.flush()
        return None
    before, row.time_zone, row.updated_at = row.time_zone, zone, now
    session.flush()
    return before
