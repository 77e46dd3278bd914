"""Commands an operator runs by hand beside the scheduled ones: publishing a month's boards
before they are due, setting the budget's counter from the claims after `ledger verify`
named a drift, and restoring a backup."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy.engine import make_url

from points import budget, claims, village_totals
from points.boards import closing
from points.errors import DomainError

from ..backup import restore_backup
from ..clock import now, village_tz
from ..extensions import db


@click.command("close")
@with_appcontext
@click.argument("month")
@click.option("--village-id", type=int, default=None, help="Only this village.")
@click.option(
    "--force",
    is_flag=True,
    help="Close although claims of the month are still "
    "in review or notice (their points will show as notes on a later board).",
)
def close_rankings_command(month: str, village_id: int | None, force: bool) -> None:
    """Publish (结榜) every village's board of MONTH (YYYY-MM): frozen from now on; later
    corrections show as notes on the next board."""
    try:
        outcomes = closing.close_all(
            db.session, month, now=now(), tz=village_tz(), village_id=village_id, force=force
        )
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    for vid, outcome in outcomes:
        click.echo(f"village {vid} {month}: {outcome}")
    click.echo(f"closed {sum(1 for _, o in outcomes if o == 'closed')} board(s)")


@click.command("rebuild-issued")
@with_appcontext
def rebuild_issued_command() -> None:
    """Set each village's monthly issued points (the budget's counter) to what its claims
    count, after `ledger verify` named a month that drifted. (It moves no other stored month:
    the service refuses to start under another APP_TIMEZONE than the stored one.)"""
    changed = budget.rebuild_issued(db.session, village_tz())
    db.session.commit()
    click.echo(f"rebuilt {changed} village month(s)")


@click.command("rebuild-counts")
@with_appcontext
def rebuild_counts_command() -> None:
    """Set the village month totals (the points report's, 积分统计) from the households' month
    totals, the ledger and the check-ins, and each claim's count of approvals from its
    approval rows, after `ledger verify` named one that drifted. The ledger itself is never
    changed. Two transactions, each locking only its own tables: an award takes the approval
    rows before the village totals, so one transaction holding both locks could deadlock
    with it."""
    village_totals.rebuild(db.session, village_tz())
    db.session.commit()
    recounted = claims.recount_approvals(db.session)
    db.session.commit()
    click.echo(f"rebuilt the village month totals; recounted {recounted} claim(s)' approvals")


@click.command("restore")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--force",
    is_flag=True,
    help="Restore into a database and UPLOAD_DIR that are "
    "not empty: what the backup holds replaces what they have.",
)
@with_appcontext
def restore_command(directory: Path, force: bool) -> None:
    """Restore a `flask backup` DIRECTORY into the configured database (new and empty) and
    UPLOAD_DIR; checks every file's sha256 first and every table's rows after."""
    db.session.remove()
    db.engine.dispose()
    manifest = restore_backup(
        make_url(current_app.config["SQLALCHEMY_DATABASE_URI"]),
        Path(current_app.config["UPLOAD_DIR"]),
        directory,
        force,
    )
    click.echo(
        f"restored the backup of {manifest['created_at']} (revision "
        f"{manifest['alembic_revision']}): {sum(manifest['counts'].values())} rows and "
        f"{manifest['uploads']} photo(s) match the manifest; then `flask db upgrade` "
        "and `flask ledger verify`"
    )
