"""Flask CLI commands (`flask --app wsgi …`): demo data, staff accounts and rule catalogs."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup, with_appcontext

from points import catalogs, demo
from points.errors import DomainError
from points.models import STAFF_ROLES
from points.users import create_staff

from .cli_points import COMMANDS
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


rules_cli = AppGroup("rules", help="Rule catalogs (积分细则).")


@rules_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--township-id", type=int, required=True)
@click.option("--replace", is_flag=True, help="Replace the township's catalog: changed items "
              "get a new version, items the file leaves out are retired; awards keep theirs.")
def import_rules_command(file: Path, township_id: int, replace: bool) -> None:
    """Load a township's catalog from a YAML file (e.g. rules/catalogs/default.yaml)."""
    try:
        result = catalogs.import_catalog(db.session, None, township_id, file.read_bytes(),
                                         replace=replace)
    except catalogs.CatalogInvalid as exc:
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        raise click.ClickException(f"{exc.message}（{len(exc.problems)} 处）") from exc
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    db.session.commit()
    click.echo(
        f"catalog {result.catalog.id} ({result.catalog.name}) for township {township_id}: "
        f"{result.created} new, {result.revised} revised, {result.unchanged} unchanged, "
        f"{result.retired} retired"
    )


@rules_cli.command("export")
@click.option("--catalog-id", type=int, required=True)
def export_rules_command(catalog_id: int) -> None:
    """Print a catalog as YAML, the same format `rules import` reads."""
    try:
        text = catalogs.export_yaml(db.session, catalog_id)
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(text, nl=False)


def register(app: Flask) -> None:
    app.cli.add_command(demo_command)
    app.cli.add_command(users_cli)
    app.cli.add_command(rules_cli)
    for group in COMMANDS:
        app.cli.add_command(group)
