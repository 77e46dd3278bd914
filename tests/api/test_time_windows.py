"""Village time: the twelve-month qualification window and the month of a correction, a
posting into a force-closed month after the next month closed too, the villages' time zone
kept by the database (APP_TIMEZONE), and the roster's year in village time."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import column as sa_column
from sqlalchemy import select
from sqlalchemy import table as sa_table
from sqlalchemy.orm import Session

from backend import create_app, refuse_another_time_zone
from backend.extensions import db
from points import ledger, roster, time_zone
from points.boards.board import build_board
from points.boards.standings import parse_period
from points.models import (
    Account,
    Base,
    BoardSnapshot,
    Household,
    LatePosting,
    LedgerEntry,
    Township,
    UTCDateTime,
    Village,
)
from tests.factories import (
    SECRET,
    World,
    add_household,
    add_reward,
    approve,
    default_items,
    earn,
    install_default_catalog,
    object_to,
    order,
    post_due,
    resolve,
    self_report,
    set_policy,
)
from tests.support.clock import frozen, local
from tests.support.reads import board, error_code
from tests.system import test_migrations

API = "/api/v1"


def corrections(board: dict[str, Any]) -> list[tuple[str, str, int, str]]:
    return [(c["kind"], c["name"], c["amount"], c["month"]) for c in board["corrections"]]


def close(runner: Any, month: str, *flags: str) -> None:
    result = runner.invoke(args=["rankings", "close", month, *flags])
    assert result.exit_code == 0, result.output
    assert f"{month}: closed" in result.output, result.output


# ---- the qualification window (合格线) ---------------------------------------------------------


def test_a_correction_counts_in_the_window_in_the_month_of_what_it_corrects(
    app: Flask, client: FlaskClient, world: World
) -> None:
    """+30 and -10 in March 2025, both reversed in May 2025, +70 in June 2025: on 10 April
    2026 the twelve months (May 2025 to April 2026) hold 70, not 70 - 30 + 10. The boards
    still show the corrections in May, the month they were made."""
    install_default_catalog(app, world.township_1)
    set_policy(client, world, qualification_line=71)
    soap = add_reward(app, world.shop_a, "香皂", 5, 50)
    award = earn(app, world.household_x, 30, local(2025, 3, 10))
    fine = earn(app, world.household_x, -10, local(2025, 3, 12))
    with frozen(local(2025, 5, 10)):
        for entry_id in (award, fine):
            undone = client.post(
                f"{API}/ledger/{entry_id}/reverse",
                json={"reason": "登记有误"},
                headers=world.headers("cadre_a"),
            )
            assert undone.status_code == 201, undone.get_json()

    def refusal_at(moment: datetime) -> dict[str, Any]:
        with frozen(moment):
            refused = order(client, world.headers("villager_x"), world.shop_a, [(soap, 1)])
        assert refused.status_code == 422 and error_code(refused) == "not_qualified"
        return refused.get_json()["error"]["details"]

    # In May 2025 the March entries and their reversals are all in the window.
    assert refusal_at(local(2025, 5, 20)) == {"score": 0, "line": 71}
    earn(app, world.household_x, 70, local(2025, 6, 10))
    # March 2025 is outside the window, and so is what corrects it.
    assert refusal_at(local(2026, 4, 10)) == {"score": 70, "line": 71}
    # Both inside the window (March 2025 to February 2026): they cancel out.
    assert refusal_at(local(2026, 2, 10)) == {"score": 70, "line": 71}
    set_policy(client, world, qualification_line=70)
    with frozen(local(2026, 4, 10)):
        placed = order(client, world.headers("villager_x"), world.shop_a, [(soap, 1)])
    assert placed.status_code == 201, placed.get_json()

    # Boards: the corrections stay in May 2025, the month they were made.
    may = board(client, world, "2025-05")
    assert sorted(corrections(may)) == [
        ("reversal", "户主x", -30, "2025-03"),
        ("reversal", "户主x", 10, "2025-03"),
    ]
    assert board(client, world, "2025-03")["red"][0]["points"] == 20


# ---- a posting into a force-closed month -------------------------------------------------------


def test_a_posting_into_a_force_closed_month_shows_on_the_next_board_published_after_it(
    app: Flask, client: FlaskClient, runner: Any, world: World
) -> None:
    """March closed by hand while a March claim was objected to, April closed too, then the
    objection is dismissed and the claim posts in May: the March and April boards stay as
    published, and the May board (the next published after the posting) notes the points;
    June's does not repeat them."""
    items = default_items(app, world)
    neighbour = add_household(app, world.village_a, "邻户", "李四", openid="openid-neighbour")
    earn(app, world.household_x, 2, local(2026, 3, 5))
    earn(app, world.household_x, 4, local(2026, 4, 8))
    with frozen(local(2026, 3, 30)):
        claim = self_report(client, world, "villager_x", items["PUB-VOLUNTEER"], 3)
        assert claim.status_code == 201, claim.get_json()
        claim_id = claim.get_json()["id"]
        assert approve(client, world, "cadre_a", claim_id).get_json()["status"] == "in_notice"
        objection = object_to(client, world, neighbour["user"], claim_id).get_json()
    with frozen(local(2026, 4, 2)):
        close(runner, "2026-03", "--village-id", str(world.village_a), "--force")
        march = board(client, world, "2026-03")
    with frozen(local(2026, 5, 2)):
        close(runner, "2026-04", "--village-id", str(world.village_a))
        april = board(client, world, "2026-04")
    assert corrections(april) == []

    with frozen(local(2026, 5, 3)):
        upheld = resolve(client, world, objection["id"], "uphold", note="核实参加了志愿服务")
        assert upheld.status_code == 200, upheld.get_json()
        assert post_due(runner) == 1  # counts in March, when the deed was done
        assert board(client, world, "2026-03") == march
        assert board(client, world, "2026-04") == april
        may = board(client, world, "2026-05")
    assert corrections(may) == [("late", "户主x", 6, "2026-03")]
    assert may["corrections"][0]["note"] == "2026年3月榜单发布后补记 +6 分（已发布榜单不变）"

    with frozen(local(2026, 6, 2)):
        close(runner, "2026-05", "--village-id", str(world.village_a))
        assert corrections(board(client, world, "2026-05")) == [("late", "户主x", 6, "2026-03")]
        assert corrections(board(client, world, "2026-06")) == []


def test_a_late_posting_is_noted_once_on_the_board_open_when_it_posts(
    app: Flask, client: FlaskClient, runner: Any, world: World
) -> None:
    """The usual case still holds: March closed by hand, its claim posts in April, the April
    board notes it and, once closed, keeps it; May starts clean."""
    items = default_items(app, world)
    with frozen(local(2026, 3, 30)):
        claim = self_report(client, world, "villager_x", items["PUB-VOLUNTEER"], 3)
        assert (
            approve(client, world, "cadre_a", claim.get_json()["id"]).get_json()["status"]
            == "in_notice"
        )
    with frozen(local(2026, 4, 2)):
        close(runner, "2026-03", "--village-id", str(world.village_a), "--force")
    with frozen(local(2026, 4, 5)):
        assert post_due(runner) == 1
        assert corrections(board(client, world, "2026-04")) == [("late", "户主x", 6, "2026-03")]
        # An older open board is not where a March change belongs.
        assert corrections(board(client, world, "2026-03")) == []
    with frozen(local(2026, 5, 2)):
        close(runner, "2026-04", "--village-id", str(world.village_a))
        assert corrections(board(client, world, "2026-04")) == [("late", "户主x", 6, "2026-03")]
        assert corrections(board(client, world, "2026-05")) == []


# ---- the roster's year, in village time ---------------------------------------------------------


@pytest.fixture()
def server_in_los_angeles() -> Iterator[None]:
    """The server's own zone far from the villages' (the test sets it; restored after)."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "America/Los_Angeles"
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


@pytest.mark.usefixtures("server_in_los_angeles")
def test_the_roster_reads_this_year_in_village_time(client: FlaskClient, world: World) -> None:
    """At 00:30 on 1 January 2027 in Shanghai (still 31 December 2026 in Los Angeles, where
    the server runs) a child born that morning can be entered with 2027; 2028 cannot."""
    new_year = datetime(2026, 12, 31, 16, 30, tzinfo=UTC)

    def upload(year: int) -> Any:
        rows = ",".join(roster.COLUMNS) + f"\n9,,,新生儿,户主,,男,{year}\n"
        with frozen(new_year):
            return client.post(
                f"{API}/villages/{world.village_a}/roster",
                data=rows.encode(),
                content_type="text/csv",
                headers=world.headers("cadre_a"),
            )

    imported = upload(2027)
    assert imported.status_code == 201, imported.get_json()
    refused = upload(2028)
    assert refused.status_code == 422 and error_code(refused) == "roster_invalid"
    assert "1900 到 2027" in refused.get_json()["error"]["details"]["errors"][0]["message"]


# ---- the villages' time zone, kept by the database ---------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
# A database of the test's own, empty (on PostgreSQL created and dropped around the test).
empty_database_url = test_migrations.empty_database_url


def zone_app(url: str, zone: str) -> Flask:
    return create_app(
        {
            "APP_ENV": "testing",
            "SECRET_KEY": SECRET,
            "SQLALCHEMY_DATABASE_URI": url,
            "APP_TIMEZONE": zone,
        }
    )


def migrated(url: str, zone: str) -> None:
    """`flask db upgrade` under APP_TIMEZONE=zone, then a household with one ledger entry."""
    app = zone_app(url, zone)
    with app.app_context():
        upgrade()
        with Session(db.engine) as s:
            township = Township(name="时区镇", code="TZ")
            s.add(township)
            s.flush()
            village = Village(township_id=township.id, name="时区村")
            s.add(village)
            s.flush()
            household = Household(village_id=village.id, name="一户")
            s.add(household)
            s.flush()
            ledger.append(
                s,
                household_id=household.id,
                kind="earn",
                amount=5,
                when=ledger.EntryTime(ZoneInfo(zone)),
                origin=ledger.EntryOrigin(note="开户"),
            )
            s.commit()
        db.engine.dispose()


def stored(url: str) -> str | None:
    app = zone_app(url, "UTC")
    with app.app_context():
        zone = time_zone.stored_zone(db.session)
        db.session.remove()
        db.engine.dispose()
    return zone


def start(url: str, zone: str) -> None:
    """What wsgi.py does: make the app, then refuse another zone."""
    refuse_another_time_zone(zone_app(url, zone))


def flask_command(url: str, zone: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`flask --app wsgi ARGS` in a process of its own, as cron and the operator run it."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "TEST_DATABASE_URL", "TZ")
    }
    env.update(
        {
            "APP_ENV": "production",
            "SECRET_KEY": SECRET,
            "DATABASE_URL": url,
            "PUBLIC_BASE_URL": "https://jf.example.gov.cn",
            "APP_TIMEZONE": zone,
            "PYTHONPATH": str(ROOT),
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_command_and_the_server_refuse_another_time_zone(
    empty_database_url: str, tmp_path: Path
) -> None:
    """Migrated and used under Asia/Shanghai, then started under America/Los_Angeles: cron's
    commands and gunicorn stop with one line naming both zones; under the stored zone they
    run as before."""
    migrated(empty_database_url, "Asia/Shanghai")
    line = (
        "APP_TIMEZONE is America/Los_Angeles but this database's months are stored in "
        "Asia/Shanghai: set APP_TIMEZONE=Asia/Shanghai (changing the villages' time zone "
        "once points exist is not supported)"
    )

    for command in (["ledger", "verify"], ["rankings", "close-due"], ["ledger", "rebuild-issued"]):
        refused = flask_command(empty_database_url, "America/Los_Angeles", *command)
        assert (refused.returncode, refused.stdout, refused.stderr) == (3, "", line + "\n")

    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "TEST_DATABASE_URL", "TZ")
    }
    env.update(
        {
            "APP_ENV": "production",
            "SECRET_KEY": SECRET,
            "PUBLIC_BASE_URL": "https://jf.example.gov.cn",
            "DATABASE_URL": empty_database_url,
            "APP_TIMEZONE": "America/Los_Angeles",
            "PYTHONPATH": str(ROOT),
            "UPLOAD_DIR": str(tmp_path / "uploads"),
        }
    )
    server = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--workers", "1", "--bind", "127.0.0.1:0", "wsgi:app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert server.returncode != 0
    assert line in server.stderr.splitlines()

    verified = flask_command(empty_database_url, "Asia/Shanghai", "ledger", "verify")
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("OK: 1 accounts, 1 entries verified")


def test_the_zone_cannot_change_under_stored_months(
    empty_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    migrated(empty_database_url, "Asia/Shanghai")
    app = zone_app(empty_database_url, "Asia/Shanghai")
    try:
        start(empty_database_url, "Asia/Shanghai")  # the normal start
        refused = app.test_cli_runner().invoke(args=["time-zone", "set", "Asia/Urumqi"])
        assert refused.exit_code == 1
        assert "已有积分、申报、签到或榜单按原时区记账，不能更改时区" in refused.output
        with pytest.raises(SystemExit) as stopped:
            start(empty_database_url, "Asia/Urumqi")
        assert stopped.value.code == 3
        assert (
            "APP_TIMEZONE is Asia/Urumqi but this database's months are stored in "
            "Asia/Shanghai" in capsys.readouterr().err
        )
    finally:
        with app.app_context():
            db.engine.dispose()
    assert stored(empty_database_url) == "Asia/Shanghai"


def test_a_new_database_records_its_zone_and_may_change_it_while_empty(
    empty_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A database made without the migration (its tables only) records the zone of its first
    start; one that holds nothing month-stamped yet may be given another on purpose."""
    app = zone_app(empty_database_url, "Asia/Urumqi")
    try:
        with app.app_context():
            Base.metadata.create_all(db.engine)
        start(empty_database_url, "Asia/Urumqi")
        assert stored(empty_database_url) == "Asia/Urumqi"
        runner = app.test_cli_runner()
        shown = runner.invoke(args=["time-zone", "show"])
        assert shown.output == "APP_TIMEZONE=Asia/Urumqi; stored: Asia/Urumqi\n"
        unknown = runner.invoke(args=["time-zone", "set", "Asia/Atlantis"])
        assert unknown.exit_code == 1 and "没有这个时区：Asia/Atlantis" in unknown.output
        changed = runner.invoke(args=["time-zone", "set", "Asia/Shanghai"])
        assert changed.exit_code == 0, changed.output
        assert "now Asia/Shanghai (was Asia/Urumqi)" in changed.output
        start(empty_database_url, "Asia/Shanghai")
        with pytest.raises(SystemExit):
            start(empty_database_url, "Asia/Urumqi")
        assert "set APP_TIMEZONE=Asia/Shanghai" in capsys.readouterr().err
    finally:
        with app.app_context():
            db.engine.dispose()


def test_an_unknown_time_zone_refuses_to_start() -> None:
    with pytest.raises(RuntimeError, match="APP_TIMEZONE must be an IANA time zone"):
        zone_app("sqlite://", "Asia/Atlantis")


def test_upgrade_records_the_zone_and_the_late_postings_waiting_for_a_board(
    empty_database_url: str,
) -> None:
    """0009 on a database where March 2026 was closed by hand and got points after: those
    posted before April's board was published were noted on it; those posted after it wait
    for the next board (May), as a posting made now would. The zone `flask db upgrade` runs
    under is recorded."""
    app = zone_app(empty_database_url, "Asia/Urumqi")
    tz = ZoneInfo("Asia/Urumqi")
    with app.app_context():
        upgrade(revision="0007")
        with Session(db.engine) as s:
            township = Township(name="迁移镇", code="MIG")
            s.add(township)
            s.flush()
            village = Village(township_id=township.id, name="迁移村")
            s.add(village)
            s.flush()
            # Through the table, naming only the columns 0007 has: the model has more.
            household = SimpleNamespace(
                id=s.execute(
                    Household.__table__.insert()
                    .values(
                        village_id=village.id,
                        name="一户",
                        public_board_opt_out=False,
                        created_at=datetime(2026, 3, 1, tzinfo=UTC),
                    )
                    .returning(Household.__table__.c.id)
                ).scalar_one()
            )
            villagers = sa_table(
                "villagers",
                sa_column("id"),
                sa_column("household_id"),
                sa_column("name"),
                sa_column("relation"),
                sa_column("active"),
                sa_column("created_at", UTCDateTime()),
            )
            s.execute(
                villagers.insert().values(
                    household_id=household.id,
                    name="王五",
                    relation="户主",
                    active=True,
                    created_at=datetime(2026, 3, 1, tzinfo=UTC),
                )
            )
            ids = {"village": village.id, "household": household.id}
            # Through the tables, naming only the columns 0007 has: the models may have more.
            account_id = s.execute(
                Account.__table__.insert().returning(Account.__table__.c.id),
                {
                    "household_id": household.id,
                    "village_id": village.id,
                    "available": 0,
                    "held": 0,
                    "earned_total": 0,
                    "entry_count": 0,
                    "head_hash": "0" * 64,
                    "created_at": datetime(2026, 3, 1, tzinfo=UTC),
                },
            ).scalar_one()
            snapshot = BoardSnapshot.__table__
            boards = {}
            for period, closed in (
                ("2026-03", datetime(2026, 4, 2, tzinfo=UTC)),
                ("2026-04", datetime(2026, 5, 2, tzinfo=UTC)),
            ):
                boards[period] = s.execute(
                    snapshot.insert().returning(snapshot.c.id),
                    {
                        "village_id": village.id,
                        "period": period,
                        "data": {"totals": {}},
                        "fingerprint": "0:0:0:0",
                        "created_at": closed,
                    },
                ).scalar_one()
            entries = {}
            for seq, (name, kind, amount, made) in enumerate(
                [
                    ("in time", "earn", 2, datetime(2026, 3, 10, tzinfo=UTC)),
                    ("noted on April's board", "earn", 6, datetime(2026, 4, 5, tzinfo=UTC)),
                    ("spent", "redeem", -1, datetime(2026, 4, 6, tzinfo=UTC)),
                    ("after April's board", "deduct", -3, datetime(2026, 5, 3, tzinfo=UTC)),
                ],
                start=1,
            ):
                entries[name] = s.execute(
                    LedgerEntry.__table__.insert().returning(LedgerEntry.__table__.c.id),
                    {
                        "account_id": account_id,
                        "seq": seq,
                        "kind": kind,
                        "amount": amount,
                        "created_at": made,
                        "month": "2026-03",
                        "note": name,
                        "prev_hash": "0" * 64,
                        "hash": "0" * 64,
                    },
                ).scalar_one()
            s.commit()
        upgrade()
        with Session(db.engine) as s:
            late = {
                (row.entry_id, row.month, row.amount, row.noted_in)
                for row in s.scalars(select(LatePosting))
            }
            zone = time_zone.stored_zone(s)
            may = build_board(s, ids["village"], parse_period("2026-05"), tz)
        db.engine.dispose()
    assert late == {
        (entries["noted on April's board"], "2026-03", 6, boards["2026-04"]),
        (entries["after April's board"], "2026-03", -3, None),
    }
    assert zone == "Asia/Urumqi"
    assert [
        (c["kind"], c["household_id"], c["amount"], c["month"]) for c in may["corrections"]
    ] == [("late", ids["household"], -3, "2026-03")]
