"""今日: what waits for the staff member who has just logged in."""

from __future__ import annotations

from flask import render_template

from points.today import staff_day

from ..clock import now, village_tz
from ..extensions import db
from . import bp, session


@bp.get("/")
def today() -> str:
    actor = session.load()
    return render_template(
        "console/today.html", day=staff_day(db.session, actor, now(), village_tz())
    )
