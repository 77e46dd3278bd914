"""Flask CLI commands (`flask --app wsgi …`): demo data and staff accounts."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup, with_appcontext

from points import demo
from points.errors import DomainError
from points.models import STAFF_ROLES
from points.users import create_staff

from .extensions import db


@click.command("demo")
@with_appcontext
@click.option("--if-empty", is_flag=True, help="Seed only when the database is empty; "
              "otherwise do nothing (used by `make run`).")
def demo_command(if_empty: bool) -> None:
    """Seed the demo township (refuses a non-empty database)."""
    if if_empty and not demo.is_empty(db.session):
        click.echo("database already has data; demo not loaded")
        return
    try:
        logins = demo.seed(db.session)
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    db.session.commit()
    click.echo(f"demo township loaded; every demo login has the password {demo.DEMO_PASSWORD}")
    for login in logins:
        click.echo(f"  {login.username:<16} {login.role:<15} {login.scope}")


users_cli = AppGroup("users", help="Staff accounts.")


@users_cli.command("create")
@click.option("--role", type=click.Choice(STAFF_ROLES), required=True)
@click.option("--username", required=True)
@click.option("--password", required=True, help="At least 8 characters.")
@click.option("--name", default=None)
@click.option("--township-id", type=int, default=None)
@click.option("--village-id", type=int, default=None)
@click.option("--shop-id", type=int, default=None)
def create_user_command(role: str, username: str, password: str, name: str | None,
                        township_id: int | None, village_id: int | None,
                        shop_id: int | None) -> None:
    """Create a staff account (the first county admin is made this way)."""
    try:
        user = create_staff(
            db.session, None, username=username, password=password, role=role, name=name,
            township_id=township_id, village_id=village_id, shop_id=shop_id,
        )
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    db.session.commit()
    click.echo(f"created {role} {username} (id {user.id})")


def register(app: Flask) -> None:
    app.cli.add_command(demo_command)
    app.cli.add_command(users_cli)
