"""Every command a systemd timer (deploy/systemd/) or cron runs, and `@scheduled`, which
records each run's outcome in `job_runs` (points.jobs) for /metrics to report."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from points import budget, claims, ledger, notice, policies, village_totals
from points.boards import closing
from points.jobs import record_run
from points.shop import redemption as redemptions

from ..backup import BackupError, dated_directory, make_backup, prune_backups
from ..clock import now, village_tz
from ..extensions import db

F = TypeVar("F", bound=Callable[..., Any])


def scheduled(name: str) -> Callable[[F], F]:
    """`@scheduled("claims post-due")`: record each run of the command, and how it ended."""

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
            record_run(
                session,
                name,
                ok=ok,
                started_at=started,
                finished_at=now(),
                message=" ".join((message or "").split()),
            )
            session.commit()
    except SQLAlchemyError as exc:
        print(f"could not record the run of {name!r}: {type(exc).__name__}", file=sys.stderr)


@click.command("backup")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--dated",
    is_flag=True,
    help="Write into a new directory under DIRECTORY named "
    "by the time (for the timer), instead of into DIRECTORY itself.",
)
@click.option(
    "--keep-days",
    type=click.IntRange(min=1),
    default=None,
    help="With --dated: then remove the backups under DIRECTORY older than this.",
)
@with_appcontext
@scheduled("backup")
def backup_command(directory: Path, dated: bool, keep_days: int | None) -> None:
    """Back up the database and UPLOAD_DIR into DIRECTORY (new or empty): a pg_dump (or a
    SQLite copy), uploads.tar and manifest.json (cron / timer)."""
    if keep_days is not None and not dated:
        raise BackupError("--keep-days goes with --dated: it prunes the dated backups")
    db.session.remove()  # hold no connection or lock of our own while the dump runs
    taken_at = datetime.now(UTC)
    root = directory
    if dated:
        directory = dated_directory(root, taken_at)
    manifest = make_backup(
        make_url(current_app.config["SQLALCHEMY_DATABASE_URI"]),
        Path(current_app.config["UPLOAD_DIR"]),
        directory,
        taken_at,
    )
    if keep_days is not None:
        for old in prune_backups(root, taken_at, keep_days):
            click.echo(f"removed the backup {old}")
    click.echo(
        f"backed up {sum(manifest['counts'].values())} rows of "
        f"{len(manifest['counts'])} tables (revision {manifest['alembic_revision']}) "
        f"and {manifest['uploads']} photo(s) into {directory}"
    )


@click.command("post-due")
@with_appcontext
@scheduled("claims post-due")
def post_due_command() -> None:
    """Post every claim whose public notice has ended (cron; safe to run twice at once)."""
    posted = claims.post_due(db.session, now(), village_tz())
    click.echo(f"posted {posted} claim(s)")


@click.command("verify")
@with_appcontext
@scheduled("ledger verify")
def verify_command() -> None:
    """Walk every account's hash chain; name the first entry that does not match. Then check
    every village's monthly issued points (the budget counter) against its claims."""
    report = ledger.verify_all(db.session)
    for problem in report.breaks:
        where = f"entry {problem.entry_id} (seq {problem.seq})" if problem.entry_id else "head"
        click.echo(
            f"BROKEN account {problem.account_id} household {problem.household_id}: "
            f"{where}: {problem.problem}"
        )
    issued = budget.verify_issued(db.session, village_tz())
    for mismatch in issued:
        click.echo(f"BROKEN monthly issued: {mismatch}")
    # The points report's per-village months against the households' months they sum, and
    # their check-ins against the check-ins.
    villages = village_totals.verify(db.session, village_tz())
    for mismatch in villages:
        click.echo(f"BROKEN village month totals: {mismatch}")
    # Each claim's count of approvals against its approval rows (今日's review lists).
    approvals = claims.verify_approvals(db.session)
    for mismatch in approvals:
        click.echo(f"BROKEN claim approvals: {mismatch}")
    # A published month's root recomputed from the ledger: an entry changed after the
    # board was printed no longer gives the root on the wall.
    drifts = notice.verify_month_roots(db.session, village_tz())
    for drift in drifts:
        click.echo(
            f"BROKEN month root: village {drift.village_id} month {drift.period}: "
            f"printed {drift.stored}, ledger gives {drift.recomputed}"
        )
    if report.breaks or issued or villages or approvals or drifts:
        raise click.ClickException(
            f"{len(report.breaks)} account(s), {len(issued)} village month(s) of issued "
            f"points, {len(villages)} village month total(s), {len(approvals)} claim(s)' "
            f"approvals and {len(drifts)} month root(s) do not verify"
            + ("; `flask ledger rebuild-issued` sets the months from the claims" if issued else "")
            + (
                "; `flask ledger rebuild-counts` sets the village totals and approval counts "
                "from the ledger and the approval rows"
                if villages or approvals
                else ""
            )
        )
    click.echo(
        f"OK: {report.accounts} accounts, {report.entries} entries verified; "
        "monthly issued points agree with the claims; village month totals agree with the "
        "households'; claims' approvals agree; closed months' roots agree "
        "with the ledger"
    )


@click.command("reset")
@with_appcontext
@scheduled("points reset")
def reset_command() -> None:
    """Expire what the last ended quarter/year left spendable, in villages whose policy
    resets it (定期清零); each village's period once (cron: safe to run daily, or twice at
    once)."""
    done = policies.reset_spendable(db.session, now(), village_tz())
    for village in done:
        what = (
            "recorded as the first period of its resets, nothing expired"
            if village.baseline
            else f"{village.points} point(s) expired in {village.accounts} account(s)"
        )
        click.echo(f"village {village.village_id} {village.period}: {what}")
    click.echo(f"reset {sum(v.accounts for v in done)} account(s)")


@click.command("close-due")
@with_appcontext
@scheduled("rankings close-due")
def close_due_command() -> None:
    """Close every ended month whose claims are all decided (cron, after `claims post-due`;
    safe to run twice at once)."""
    closed = closing.close_due(db.session, now(), village_tz())
    for vid, month in closed:
        click.echo(f"village {vid} {month}: closed")
    click.echo(f"closed {len(closed)} board(s)")


@click.command("expire")
@with_appcontext
@scheduled("redemptions expire")
def expire_redemptions_command() -> None:
    """Void orders not picked up in time: points back to available (those of a period reset
    meanwhile expire), stock back on the shelf (cron; safe to run twice at once)."""
    expired = redemptions.expire_due(db.session, now(), village_tz())
    click.echo(f"expired {expired} redemption(s)")
