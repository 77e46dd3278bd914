"""`flask db …` (Flask-Migrate) without Flask-Migrate in every worker.

Flask-Migrate imports alembic, mako and pygments: 11 MB and 150 modules that only `flask db`
and tests that upgrade a database use. The app gets two stand-ins instead, and the first use
of either makes the real `Migrate` (which replaces both): the `db` command group, whose
subcommands are looked up in Flask-Migrate's own group, and `app.extensions["migrate"]`, the
object Flask-Migrate's commands and migrations/env.py read (`.db`, `.directory`, `.migrate`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from flask import Flask

from ..extensions import db

DIRECTORY = str(Path(__file__).resolve().parents[2] / "migrations")


def _migrate(app: Flask) -> Any:
    """The real Flask-Migrate for `app`: its `_MigrateConfig`, made on first use."""
    current = app.extensions["migrate"]
    if isinstance(current, LazyMigrateConfig):
        from flask_migrate import Migrate

        # Sets app.extensions["migrate"] and adds Flask-Migrate's `db` group to app.cli.
        Migrate(app, db, directory=DIRECTORY)
    return app.extensions["migrate"]


class LazyMigrateConfig:
    """Holds `app.extensions["migrate"]` until something reads it."""

    def __init__(self, app: Flask) -> None:
        self._app = app

    def __getattr__(self, name: str) -> Any:
        return getattr(_migrate(self._app), name)


class LazyDbGroup(click.Group):
    """`flask db`: named (with its help) in `flask --help`; run, it is Flask-Migrate's group.

    click runs a subcommand in the context its `make_context` returns, and that context's
    command is Flask-Migrate's own group (its options, its callback and its subcommands)."""

    def __init__(self, app: Flask) -> None:
        super().__init__("db", help="Perform database migrations.")
        self._app = app

    def _real(self) -> click.Group:
        _migrate(self._app)
        group = self._app.cli.commands["db"]
        assert isinstance(group, click.Group) and group is not self
        return group

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        return self._real().make_context(info_name, args, parent=parent, **extra)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self._real().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._real().get_command(ctx, cmd_name)


def register(app: Flask) -> None:
    app.extensions["migrate"] = LazyMigrateConfig(app)
    app.cli.add_command(LazyDbGroup(app))
