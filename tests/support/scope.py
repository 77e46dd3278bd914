"""Shared by the authorisation tests: a valid roster CSV body, and the database state a
refused request must leave as it was."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import select

from backend.extensions import db
from points.models import Base

ROSTER_CSV = (
    "户编号,村民小组,地址,姓名,与户主关系,手机号,性别,出生年份\n"
    "R1,第一村民小组,新村路8号,王大山,户主,13911112222,男,1966\n"
    "R1,第一村民小组,新村路8号,李秀英,配偶,,女,1968\n"
).encode()

# Login state changes on every request; everything else must stay put when a call is refused.
VOLATILE_TABLES = {"auth_sessions", "refresh_tokens"}


def database_state(app: Flask) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table but the login bookkeeping, in a stable order."""
    with app.app_context():
        state = {}
        for table in Base.metadata.sorted_tables:
            if table.name in VOLATILE_TABLES:
                continue
            rows = db.session.execute(select(table)).all()
            state[table.name] = sorted((tuple(row) for row in rows), key=repr)
        return state
