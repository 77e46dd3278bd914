"""Scheduled commands record how each run ended (`JobRun`), for /metrics and the operator."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from .models import JobRun

MAX_MESSAGE = 500


def record_run(
    session: Session,
    name: str,
    *,
    ok: bool,
    started_at: datetime,
    finished_at: datetime,
    message: str | None = None,
) -> None:
    """Count one run of `name` and note how it ended. The row is made if missing and the
    counters are incremented in SQL, so two runs ending at once (two servers' timers) both
    count. The caller commits."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(
        insert(JobRun)
        .values(name=name, runs=0, failures=0)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    values = {
        "runs": JobRun.runs + 1,
        "last_started_at": started_at,
        "last_finished_at": finished_at,
        "last_ok": ok,
        "last_message": (message or "")[:MAX_MESSAGE] or None,
    }
    if ok:
        values["last_success_at"] = finished_at
    else:
        values |= {"failures": JobRun.failures + 1, "last_failure_at": finished_at}
    session.execute(update(JobRun).where(JobRun.name == name).values(**values))


def all_runs(session: Session) -> list[JobRun]:
    return list(session.scalars(select(JobRun).order_by(JobRun.name)))
