"""Calendar periods used by caps, boards and monthly totals.

Boundaries are taken in the time zone of the datetime passed in, because a village's month
ends at its own midnight (Asia/Shanghai by default), not at UTC midnight.
"""

from datetime import date, datetime, time, timedelta, tzinfo

PERIODS: tuple[str, ...] = ("day", "week", "month", "quarter", "year")

# Used in reasons a villager reads, e.g. "本月已达上限 3 次".
PERIOD_NAMES: dict[str, str] = {
    "day": "当日",
    "week": "本周",
    "month": "本月",
    "quarter": "本季度",
    "year": "本年",
}


def _require_aware(at: datetime) -> None:
    # A naive datetime would silently use whatever zone the server runs in.
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware")


def _require_period(period: str) -> None:
    if period not in PERIODS:
        raise ValueError(f"unknown period {period!r}; expected one of {', '.join(PERIODS)}")


def _first_day(period: str, day: date) -> date:
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    if period == "quarter":
        return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    return date(day.year, 1, 1)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _next_first_day(period: str, first: date) -> date:
    if period == "day":
        return first + timedelta(days=1)
    if period == "week":
        return first + timedelta(days=7)
    if period == "month":
        return _add_months(first, 1)
    if period == "quarter":
        return _add_months(first, 3)
    return date(first.year + 1, 1, 1)


def period_start(period: str, at: datetime) -> datetime:
    """Local midnight that opens the day/week (Monday)/month/quarter/year containing `at`."""
    _require_aware(at)
    _require_period(period)
    return datetime.combine(_first_day(period, at.date()), time(), tzinfo=at.tzinfo)


def period_end(period: str, at: datetime) -> datetime:
    """Local midnight that opens the next period; the period is [start, end)."""
    _require_aware(at)
    _require_period(period)
    first = _first_day(period, at.date())
    return datetime.combine(_next_first_day(period, first), time(), tzinfo=at.tzinfo)


def period_key(period: str, at: datetime) -> str:
    """A stable label for the period containing `at`: 2024-03-05, 2024-W09, 2024-03, 2024-Q1,
    2024. Weeks use the ISO week-numbering year, so 2024-12-30 falls in 2025-W01."""
    _require_aware(at)
    _require_period(period)
    day = at.date()
    if period == "day":
        return day.isoformat()
    if period == "week":
        iso = day.isocalendar()
        return f"{iso.year:04d}-W{iso.week:02d}"
    if period == "month":
        return f"{day.year:04d}-{day.month:02d}"
    if period == "quarter":
        return f"{day.year:04d}-Q{(day.month - 1) // 3 + 1}"
    return f"{day.year:04d}"


def month_key(at: datetime) -> str:
    """The month containing `at` as "YYYY-MM", in `at`'s own time zone."""
    return period_key("month", at)


# ---- months as "YYYY-MM" labels: boards, budgets, settlements and notices count in them ----


def add_months(month: str, count: int) -> str:
    """The month `count` months after (or before, if negative) a "YYYY-MM" month."""
    index = int(month[:4]) * 12 + int(month[5:]) - 1 + count
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def months_between(first: str, last: str) -> list[str]:
    """Every month from `first` to `last`, both included; empty if `last` is before `first`."""
    out, month = [], first
    while month <= last:
        out.append(month)
        month = add_months(month, 1)
    return out


def month_label(month: str) -> str:
    """ "2024-03" as a villager reads it on a board or a notice: 2024年3月."""
    return f"{int(month[:4])}年{int(month[5:])}月"


def month_bounds(month: str, tz: tzinfo) -> tuple[datetime, datetime]:
    """The month as [local midnight of its first day, local midnight of the next month's)."""
    start = datetime(int(month[:4]), int(month[5:]), 1, tzinfo=tz)
    return start, datetime.combine(_add_months(start.date(), 1), time(), tzinfo=tz)
