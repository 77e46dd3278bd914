"""Flask CLI commands (`flask --app wsgi …`): demo data, staff accounts and rule catalogs."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from points import catalogs, county, demo, time_zone
from points.boards import closing
from points.errors import DomainError
from points.models import STAFF_ROLES
from points.shop import redemption as redemptions
from points.users import create_staff

from .cli_points import COMMANDS
from .clock import now, village_tz
from .extensions import db
from .jobs import scheduled


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
    posted = demo.seed_history(db.session, now(), village_tz())
    click.echo(f"demo township loaded with {posted} posted awards of the last two months; "
               f"every demo login has the password {demo.DEMO_PASSWORD}")
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
@click.option("--villager-id", type=int, default=None,
              help="The holder's own entry on the roster: they may not decide their own "
                   "household's points.")
def create_user_command(role: str, username: str, password: str, name: str | None,
                        township_id: int | None, village_id: int | None,
                        shop_id: int | None, villager_id: int | None) -> None:
    """Create a staff account (the first county admin is made this way)."""
    try:
        user = create_staff(
            db.session, None, username=username, password=password, role=role, name=name,
            township_id=township_id, village_id=village_id, shop_id=shop_id,
            villager_id=villager_id,
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
        for problem in exc.problems[:catalogs.MAX_PROBLEMS]:
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


@rules_cli.command("export")
@click.option("--catalog-id", type=int, required=True)
def export_rules_command(catalog_id: int) -> None:
    """Print a catalog as YAML, the same format `rules import` reads."""
    try:
        text = catalogs.export_yaml(db.session, catalog_id)
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(text, nl=False)


redemptions_cli = AppGroup("redemptions", help="Points supermarket orders (积分超市).")


@redemptions_cli.command("expire")
@scheduled("redemptions expire")
def expire_redemptions_command() -> None:
    """Void orders not picked up in time: points back to available (those of a period reset
    meanwhile expire), stock back on the shelf (cron; safe to run twice at once)."""
    expired = redemptions.expire_due(db.session, now(), village_tz())
    click.echo(f"expired {expired} redemption(s)")


rankings_cli = AppGroup("rankings", help="Ranking boards (红黑榜).")


@rankings_cli.command("close")
@click.argument("month")
@click.option("--village-id", type=int, default=None, help="Only this village.")
@click.option("--force", is_flag=True, help="Close although claims of the month are still "
              "in review or notice (their points will show as notes on a later board).")
def close_rankings_command(month: str, village_id: int | None, force: bool) -> None:
    """Publish (结榜) every village's board of MONTH (YYYY-MM): frozen from now on; later
    corrections show as notes on the next board."""
    try:
        outcomes = closing.close_all(db.session, month, now=now(), tz=village_tz(),
                                      village_id=village_id, force=force)
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    for vid, outcome in outcomes:
        click.echo(f"village {vid} {month}: {outcome}")
    click.echo(f"closed {sum(1 for _, o in outcomes if o == 'closed')} board(s)")


@rankings_cli.command("close-due")
@scheduled("rankings close-due")
def close_due_command() -> None:
    """Close every ended month whose claims are all decided (cron, after `claims post-due`;
    safe to run twice at once)."""
    closed = closing.close_due(db.session, now(), village_tz())
    for vid, month in closed:
        click.echo(f"village {vid} {month}: closed")
    click.echo(f"closed {len(closed)} board(s)")


county_cli = AppGroup("county", help="Onboarding a county.")


@county_cli.command("init")
@click.argument("file", required=False,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
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
        result = county.init_county(db.session, file.read_text(encoding="utf-8-sig"),
                                    base=file.parent, now=now(), tz=village_tz())
    except county.CountyFileInvalid as exc:
        db.session.rollback()
        for line, message in exc.problems:
            click.echo(f"  {file.name} 第 {line} 行：{message}", err=True)
        raise click.ClickException(f"{exc.message}（{len(exc.problems)} 处）") from exc
    except UnicodeDecodeError as exc:
        raise click.ClickException("文件须为 UTF-8 编码") from exc
    db.session.commit()
    click.echo(f"created {result.townships} township(s), {result.villages} village(s), "
               f"{result.groups} villager group(s), {result.shops} shop(s), "
               f"{result.households} household(s), {len(result.logins)} staff account(s)")
    click.echo("initial passwords (shown only this once; hand each to its holder):")
    for login in result.logins:
        click.echo(f"  {login.username:<20} {login.role:<15} {login.password}  {login.scope}")


time_zone_cli = AppGroup("time-zone", help="The villages' time zone (APP_TIMEZONE) the "
                         "database's months are stored in.")


@time_zone_cli.command("show")
def show_time_zone_command() -> None:
    """Print APP_TIMEZONE and the zone the database's months are stored in."""
    click.echo(f"APP_TIMEZONE={current_app.config['APP_TIMEZONE']}; "
               f"stored: {time_zone.stored_zone(db.session) or '(not yet recorded)'}")


@time_zone_cli.command("set")
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
    click.echo(f"the villages' time zone is now {zone} (was {before or 'not recorded'}); "
               f"start the service with APP_TIMEZONE={zone}")


def register(app: Flask) -> None:
    from .backup import backup_command, restore_command

    app.cli.add_command(backup_command)
    app.cli.add_command(restore_command)
    app.cli.add_command(rankings_cli)
    app.cli.add_command(redemptions_cli)
    app.cli.add_command(demo_command)
    app.cli.add_command(users_cli)
    app.cli.add_command(rules_cli)
    app.cli.add_command(time_zone_cli)
    app.cli.add_command(county_cli)
    for group in COMMANDS:
        app.cli.add_command(group)
