"""The test clock: moments in the village's time zone, freezing the clock at one, and the
server time zones a clock test runs in (see the `server_zone` fixture in tests/conftest.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import time_machine

SHANGHAI = ZoneInfo("Asia/Shanghai")

# A test that freezes the clock runs once with the process in each of these zones: UTC,
# and two far from Asia/Shanghai on either side of the date line (see tests/conftest.py).
SERVER_ZONES = ("UTC", "America/Los_Angeles", "Pacific/Kiritimati")


def local(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    """A moment in the village's time zone (Asia/Shanghai, the app's default)."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def frozen(moment: datetime) -> Any:
    """Freeze the clock at `moment` (the server's now(), JWT times, everything).

    Frozen at the instant only, not in `moment`'s zone: given a zoned datetime, time-machine
    also switches the process's own time zone (TZ) to that zone, and given a UTC one, to UTC,
    so a `local(...)` moment would run the server in Asia/Shanghai, where its local time and
    the village's agree and code reading the local clock could never fail a test. The
    process keeps its zone (see `server_zone` in conftest)."""
    return time_machine.travel(moment.timestamp(), tick=False)
