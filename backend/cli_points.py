"""CLI for the ledger and claims: the cron jobs and the chain check."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from points import budget, claims, ledger, notice, policies

from .clock import now, village_tz
from .extensions import db
from .jobs import scheduled

claims_cli = AppGroup("claims", help="Claims and public notice.")
ledger_cli = AppGroup("ledger", help="The points ledger.")
points_cli = AppGroup("points", help="Policies applied to accounts.")


@claims_cli.command("post-due")
@scheduled("claims post-due")
def post_due_command() -> None:
    """Post every claim whose public notice has ended (cron; safe to run twice at once)."""
    posted = claims.post_due(db.session, now(), village_tz())
    click.echo(f"posted {posted} claim(s)")


@ledger_cli.command("verify")
@scheduled("ledger verify")
def verify_command() -> None:
    """Walk every account's hash chain; name the first entry that does not match. Then check
    every village's monthly issued points (the budget counter) against its claims."""
    report = ledger.verify_all(db.session)
    for problem in report.breaks:
        where = f"entry {problem.entry_id} (seq {problem.seq})" if problem.entry_id else "head"
        click.echo(f"BROKEN account {problem.account_id} household {problem.household_id}: "
                   f"{where}: {problem.problem}")
    issued = budget.verify_issued(db.session, village_tz())
    for mismatch in issued:
        click.echo(f"BROKEN monthly issued: {mismatch}")
    # A published month's root recomputed from the ledger: an entry changed after the
    # board was printed no longer gives the root on the wall.
    drifts = notice.verify_month_roots(db.session, village_tz())
    for drift in drifts:
        click.echo(f"BROKEN month root: village {drift.village_id} month {drift.period}: "
                   f"printed {drift.stored}, ledger gives {drift.recomputed}")
    if report.breaks or issued or drifts:
        raise click.ClickException(
            f"{len(report.breaks)} account(s), {len(issued)} village month(s) of issued "
            f"points and {len(drifts)} month root(s) do not verify"
            + ("; `flask ledger rebuild-issued` sets the months from the claims"
               if issued else ""))
    click.echo(f"OK: {report.accounts} accounts, {report.entries} entries verified; "
               "monthly issued points agree with the claims; closed months' roots agree "
               "with the ledger")


@ledger_cli.command("rebuild-issued")
def rebuild_issued_command() -> None:
    """Set each village's monthly issued points (the budget's counter) to what its claims
    count, after `ledger verify` named a month that drifted. (It moves no other stored month:
    the service refuses to start under another APP_TIMEZONE than the stored one.)"""
    changed = budget.rebuild_issued(db.session, village_tz())
    db.session.commit()
    click.echo(f"rebuilt {changed} village month(s)")


@points_cli.command("reset")
@scheduled("points reset")
def reset_command() -> None:
    """Expire what the last ended quarter/year left spendable, in villages whose policy
    resets it (定期清零); each village's period once (cron: safe to run daily, or twice at
    once)."""
    done = policies.reset_spendable(db.session, now(), village_tz())
    for village in done:
        what = ("recorded as the first period of its resets, nothing expired"
                if village.baseline else
                f"{village.points} point(s) expired in {village.accounts} account(s)")
        click.echo(f"village {village.village_id} {village.period}: {what}")
    click.echo(f"reset {sum(v.accounts for v in done)} account(s)")


COMMANDS = (claims_cli, ledger_cli, points_cli)
