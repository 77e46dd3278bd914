"""`@scheduled("claims post-due")`: a CLI command run by cron or a systemd timer records each
run's outcome in `job_runs` (points.jobs), which /metrics reports."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from points.jobs import record_run

from .clock import now
from .extensions import db

F = TypeVar("F", bound=Callable[..., Any])


def scheduled(name: str) -> Callable[[F], F]:
    def wrap(command: F) -> F:
        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> Any:
            started = now()
            try:
                result = command(*args, **kwargs)
            except click.exceptions.Exit as exc:
                _record(name, exc.exit_code == 0, started, None)
                raise
            except click.ClickException as exc:
                _record(name, False, started, exc.format_message())
                raise
            except BaseException as exc:  # noqa: BLE001 - recorded, then raised as it was
                _record(name, False, started, f"{type(exc).__name__}: {exc}")
                raise
            _record(name, True, started, None)
            return result

        return run  # type: ignore[return-value]

    return wrap


def _record(name: str, ok: bool, started: Any, message: str | None) -> None:
    # A session of its own: the command's may hold a failed transaction. Failing to record
    # (a database not yet upgraded, or down) must not hide how the job itself ended.
    db.session.rollback()
    try:
        with Session(db.engine) as session:
            record_run(session, name, ok=ok, started_at=started, finished_at=now(),
                       message=" ".join((message or "").split()))
            session.commit()
    except SQLAlchemyError as exc:
        print(f"could not record the run of {name!r}: {type(exc).__name__}", file=sys.stderr)
