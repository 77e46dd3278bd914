"""Counts that stop at a cap: a page that says how many rows wait (申报 to review, lines of
the log) needs the exact figure only while a person could work through it; past the cap it
shows "10000+", and counting stops there instead of reading a county's million rows on
every request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, literal, select, union_all
from sqlalchemy.orm import Session

COUNT_CAP = 10_000


@dataclass(frozen=True)
class Count:
    """How many rows, exact up to the cap; past it `value` is the cap and `exact` False."""

    value: int
    exact: bool = True

    def __str__(self) -> str:
        return str(self.value) if self.exact else f"{self.value}+"

    def __int__(self) -> int:
        return self.value

    def __bool__(self) -> bool:
        return self.value > 0


def _capped(stmt: Select[Any], cap: int) -> Select[Any]:
    """The rows of `stmt`, at most cap + 1 of them, as one column (what is counted, so that
    an index alone may answer); its tables kept even where no filter names them."""
    return (
        stmt.order_by(None).with_only_columns(literal(1), maintain_column_froms=True).limit(cap + 1)
    )


def _count(found: int, cap: int) -> Count:
    return Count(cap, exact=False) if found > cap else Count(found)


def capped_count(session: Session, stmt: Select[Any], cap: int | None = None) -> Count:
    """The number of rows `stmt` selects, reading at most cap + 1 of them (COUNT_CAP when
    not given, read when called)."""
    cap = COUNT_CAP if cap is None else cap
    found = session.scalar(select(func.count()).select_from(_capped(stmt, cap).subquery()))
    return _count(found or 0, cap)


def capped_counts(
    session: Session, stmts: dict[str, Select[Any]], cap: int | None = None
) -> dict[str, Count]:
    """Several capped counts in one statement (one round trip), by key."""
    cap = COUNT_CAP if cap is None else cap
    if not stmts:
        return {}
    parts = [
        select(literal(key).label("key"), func.count().label("n")).select_from(
            _capped(stmt, cap).subquery()
        )
        for key, stmt in stmts.items()
    ]
    return {key: _count(n, cap) for key, n in session.execute(union_all(*parts)).all()}
