"""Getting a county's database ready: the demo township, staff accounts, rule catalogs, a
county's file of townships and villages, and the villages' time zone."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from points import catalogs, county, demo, time_zone
from points.errors import DomainError
from points.models import STAFF_ROLES
from points.users import create_staff

from ..clock import now, village_tz
from ..extensions import db


@click.command("demo")
@with_appcontext
@click.option(
    "--if-empty",
    is_flag=True,
    help="Seed only when the database is empty; otherwise do nothing (used by `make run`).",
)
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
    posted = demo.seed_history(db.session, now(), village_tz())
    click.echo(
        f"demo township loaded with {posted} posted awards of the last two months; "
        f"every demo login has the password {demo.DEMO_PASSWORD}"
    )
    for login in logins:
        click.echo(f"  {login.username:<16} {login.role:<15} {login.scope}")


@click.command("create")
@with_appcontext
@click.option("--role", type=click.Choice(STAFF_ROLES), required=True)
@click.option("--username", required=True)
@click.option("--password", required=True, help="At least 8 characters.")
@click.option("--name", default=None)
@click.option("--township-id", type=int, default=None)
@click.option("--village-id", type=int, default=None)
@click.option("--shop-id", type=int, default=None)
@click.option(
    "--villager-id",
    type=int,
    default=None,
    help="The holder's own entry on the roster: they may not decide their own household's points.",
)
def create_user_command(
    role: str,
    username: str,
    password: str,
    name: str | None,
    township_id: int | None,
    village_id: int | None,
    shop_id: int | None,
    villager_id: int | None,
) -> None:
    """Create a staff account (the first county admin is made this way)."""
    try:
        user = create_staff(
            db.session,
            None,
            username=username,
            password=password,
            role=role,
            name=name,
            township_id=township_id,
            village_id=village_id,
            shop_id=shop_id,
            villager_id=villager_id,
        )
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    db.session.commit()
    click.echo(f"created {role} {username} (id {user.id})")


@click.command("import")
@with_appcontext
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--township-id", type=int, required=True)
@click.option(
    "--replace",
    is_flag=True,
    help="Replace the township's catalog: changed items "
    "get a new version, items the file leaves out are retired; awards keep theirs.",
)
def import_rules_command(file: Path, township_id: int, replace: bool) -> None:
    """Load a township's catalog from a YAML file (e.g. rules/catalogs/default.yaml)."""
    try:
        result = catalogs.import_catalog(
            db.session, None, township_id, file.read_bytes(), replace=replace
        )
    except catalogs.CatalogInvalid as exc:
        for problem in exc.problems[: catalogs.MAX_PROBLEMS]:
            click.echo(f"  {problem}", err=True)
        if len(exc.problems) > catalogs.MAX_PROBLEMS:
            click.echo(f"  ……（只列出前 {catalogs.MAX_PROBLEMS} 处）", err=True)
        raise click.ClickException(f"{exc.message}（{len(exc.problems)} 处）") from exc
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    db.session.commit()
    click.echo(
        f"catalog {result.catalog.id} ({result.catalog.name}) for township {township_id}: "
        f"{result.created} new, {result.revised} revised, {result.unchanged} unchanged, "
        f"{result.retired} retired"
    )


@click.command("export")
@with_appcontext
@click.option("--catalog-id", type=int, required=True)
def export_rules_command(catalog_id: int) -> None:
    """Print a catalog as YAML, the same format `rules import` reads."""
    try:
        text = catalogs.export_yaml(db.session, catalog_id)
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(text, nl=False)


@click.command("init")
@with_appcontext
@click.argument(
    "file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--example", is_flag=True, help="Print a commented example file and exit.")
def county_init_command(file: Path | None, example: bool) -> None:
    """Create a county's townships, villages, villager groups, shops, staff accounts and
    each township's starting catalog from FILE (YAML), in one transaction: any error and
    nothing is written, each error named by its line. Passwords are generated and printed
    once. Running a file again is refused (its names exist)."""
    if example:
        click.echo(county.EXAMPLE.read_text(encoding="utf-8"), nl=False)
        return
    if file is None:
        raise click.UsageError("give FILE (or --example for a file to start from)")
    try:
        result = county.init_county(
            db.session,
            file.read_text(encoding="utf-8-sig"),
            base=file.parent,
            now=now(),
            tz=village_tz(),
        )
    except county.CountyFileInvalid as exc:
        db.session.rollback()
        for line, message in exc.problems:
            click.echo(f"  {file.name} 第 {line} 行：{message}", err=True)
        raise click.ClickException(f"{exc.message}（{len(exc.problems)} 处）") from exc
    except UnicodeDecodeError as exc:
        raise click.ClickException("文件须为 UTF-8 编码") from exc
    db.session.commit()
    click.echo(
        f"created {result.townships} township(s), {result.villages} village(s), "
        f"{result.groups} villager group(s), {result.shops} shop(s), "
        f"{result.households} household(s), {len(result.logins)} staff account(s)"
    )
    click.echo("initial passwords (shown only this once; hand each to its holder):")
    for login in result.logins:
        click.echo(f"  {login.username:<20} {login.role:<15} {login.password}  {login.scope}")


@click.command("show")
@with_appcontext
def show_time_zone_command() -> None:
    """Print APP_TIMEZONE and the zone the database's months are stored in."""
    click.echo(
        f"APP_TIMEZONE={current_app.config['APP_TIMEZONE']}; "
        f"stored: {time_zone.stored_zone(db.session) or '(not yet recorded)'}"
    )


@click.command("set")
@with_appcontext
@click.argument("zone")
def set_time_zone_command(zone: str) -> None:
    """Store ZONE (e.g. Asia/Urumqi) as the villages' time zone, on a database that holds no
    points, claims, boards or veto bars yet; refused once it does (changing the zone of
    stored months is not supported). Then start the service with APP_TIMEZONE=ZONE."""
    try:
        before = time_zone.change(db.session, zone, now())
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    db.session.commit()
    click.echo(
        f"the villages' time zone is now {zone} (was {before or 'not recorded'}); "
        f"start the service with APP_TIMEZONE={zone}"
    )
