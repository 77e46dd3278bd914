"""Flask CLI commands (`flask --app wsgi …`): setting a county up (setup.py), the jobs timers
and cron run (scheduled.py) and what an operator runs by hand beside them (manual.py)."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from . import manual, migrations, scheduled, setup


def register(app: Flask) -> None:
    """Every command, grouped as `flask GROUP COMMAND`; a group may hold a scheduled job and
    its by-hand companion (`rankings close-due` and `rankings close`)."""
    groups: list[tuple[AppGroup, tuple[click.Command, ...]]] = [
        (
            AppGroup("rankings", help="Ranking boards (红黑榜)."),
            (manual.close_rankings_command, scheduled.close_due_command),
        ),
        (
            AppGroup("redemptions", help="Points supermarket orders (积分超市)."),
            (scheduled.expire_redemptions_command,),
        ),
        (AppGroup("users", help="Staff accounts."), (setup.create_user_command,)),
        (
            AppGroup("rules", help="Rule catalogs (积分细则)."),
            (setup.import_rules_command, setup.export_rules_command),
        ),
        (
            AppGroup(
                "time-zone",
                help="The villages' time zone (APP_TIMEZONE) the database's months are stored in.",
            ),
            (setup.show_time_zone_command, setup.set_time_zone_command),
        ),
        (AppGroup("county", help="Onboarding a county."), (setup.county_init_command,)),
        (AppGroup("claims", help="Claims and public notice."), (scheduled.post_due_command,)),
        (
            AppGroup("ledger", help="The points ledger."),
            (
                scheduled.verify_command,
                manual.rebuild_issued_command,
                manual.rebuild_counts_command,
            ),
        ),
        (AppGroup("points", help="Policies applied to accounts."), (scheduled.reset_command,)),
    ]
    migrations.register(app)  # `flask db`: Flask-Migrate is imported when it is used
    for command in (scheduled.backup_command, manual.restore_command, setup.demo_command):
        app.cli.add_command(command)
    for group, commands in groups:
        for command in commands:
            group.add_command(command)
        app.cli.add_command(group)
