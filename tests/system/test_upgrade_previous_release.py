"""Upgrading a county's database: one made by the previous release (its schema reached by
`flask db upgrade PREVIOUS_RELEASE`), holding the rows a village in use has (written with
plain inserts naming only that schema's columns, as that release stored them, hash chains
included), is upgraded by the real `flask db upgrade` to this release's head; every row is
still there, `flask ledger verify` passes, and the app reads the balances.

When a release is made, PREVIOUS_RELEASE moves to the revision it ships with."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from flask_migrate import upgrade
from sqlalchemy import MetaData, create_engine, select, text
from sqlalchemy.engine import Connection

from backend import create_app
from backend.extensions import db
from points.passwords import hash_password
from tests.factories import PASSWORD, SECRET
from tests.support.databases import REPO, flask, fresh_database

PREVIOUS_RELEASE = "0010"  # 0010_deed_month
GENESIS = "0" * 64
AT = datetime(2026, 11, 5, 2, 0, tzinfo=UTC)  # 10:00 on 5 November in the villages
ASSEMBLY = {  # a catalog item as the previous release stored its version
    "code": "GOV-ASSEMBLY",
    "name": "参加村民大会",
    "category": "共建共治",
    "class": "bonus",
    "points": 3,
    "kind": "fixed",
    "applies_to": "member",
    "submit_by": ["checkin", "cadre"],
    "requires_review": False,
    "evidence_required": False,
    "caps": [{"period": "day", "max_count": 1}],
    "description": "以现场扫码签到为准",
}
POLICY = {
    "notice_days": 5,
    "two_cadre_threshold": 50,
    "monthly_budget": 3000,
    "reset_cycle": "none",
    "qualification_line": 0,
    "star_levels": [60, 70, 80, 90],
    "exchange_rate": "1",
    "min_redemption_points": 0,
    "allow_village_items": True,
    "village_items_skip_review": False,
}


@pytest.fixture()
def database(tmp_path: Path) -> Iterator[str]:
    with fresh_database(tmp_path, "upgrade") as url:
        yield url


def release_hash(prev: str, entry: dict[str, Any]) -> str:
    """An entry's chain hash as the previous release computed it: the chain of a database
    made then must still verify under this release's code."""
    signed = {
        name: entry.get(name)
        for name in (
            "account_id",
            "seq",
            "kind",
            "amount",
            "member_id",
            "rule_item_version_id",
            "claim_id",
            "reverses_id",
            "created_by",
            "month",
            "note",
        )
    }
    signed["created_at"] = entry["created_at"].astimezone(UTC).isoformat(timespec="microseconds")
    canonical = json.dumps(signed, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((prev + canonical).encode()).hexdigest()


class OldSchema:
    """Inserts into the tables as they are in the database (reflected), so only the columns
    of the previous release can be named."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.meta = MetaData()
        self.meta.reflect(conn)
        self.rows: dict[str, list[dict[str, Any]]] = {}

    def add(self, table: str, **values: Any) -> int:
        columns = self.meta.tables[table].c
        result = self.conn.execute(self.meta.tables[table].insert().values(**values))
        self.rows.setdefault(table, []).append(values)
        key = result.inserted_primary_key
        return int(key[0]) if key and "id" in columns else 0

    def set(self, table: str, row_id: int, **values: Any) -> None:
        t = self.meta.tables[table]
        self.conn.execute(t.update().where(t.c.id == row_id).values(**values))
        for row in self.rows[table]:
            if row.get("id") == row_id:
                row.update(values)


def fill_previous_release(old: OldSchema) -> dict[str, int]:
    """A township with a village in use: a shop, two households, a cadre, a clerk and a
    bound villager; posted, in-notice and rejected claims with a photo; accounts whose
    chains hold awards, a fulfilled redemption and a held order; the month's budget."""
    ids: dict[str, int] = {}
    add = old.add
    ids["township"] = add("townships", id=1, name="升级镇", code="UPG", created_at=AT)
    ids["village"] = add("villages", id=1, township_id=1, name="升级村", code="UV", created_at=AT)
    add("villager_groups", id=1, village_id=1, name="第一村民小组")
    add("shops", id=1, township_id=1, name="升级村积分超市", created_at=AT)
    add("shop_villages", shop_id=1, village_id=1)
    for n in (1, 2):
        add(
            "households",
            id=n,
            village_id=1,
            group_id=1,
            name=f"{n}号户",
            address=f"升级村{n}号",
            created_at=AT,
            public_board_opt_out=False,
        )
        add(
            "villagers",
            id=n,
            household_id=n,
            name=f"户主{n}",
            relation="户主",
            phone=f"1390000000{n}",
            gender="男",
            birth_year=1968,
            active=True,
            created_at=AT,
        )
    pw = hash_password(PASSWORD)
    add(
        "users",
        id=1,
        role="county_admin",
        username="county",
        password_hash=pw,
        disabled=False,
        created_at=AT,
    )
    add(
        "users",
        id=2,
        role="cadre",
        username="cadre_u",
        password_hash=pw,
        township_id=1,
        village_id=1,
        disabled=False,
        created_at=AT,
    )
    add(
        "users",
        id=3,
        role="clerk",
        username="clerk_u",
        password_hash=pw,
        township_id=1,
        shop_id=1,
        disabled=False,
        created_at=AT,
    )
    add(
        "users",
        id=4,
        role="villager",
        openid="openid-upgrade",
        villager_id=1,
        name="户主1",
        disabled=False,
        created_at=AT,
    )
    add(
        "rule_catalogs",
        id=1,
        name="升级镇积分细则",
        township_id=1,
        policy=POLICY,
        categories=["共建共治"],
        created_at=AT,
    )
    add("rule_items", id=1, catalog_id=1, code="GOV-ASSEMBLY", position=1, created_at=AT)
    add(
        "rule_item_versions",
        id=1,
        item_id=1,
        version=1,
        data=ASSEMBLY,
        points=3,
        created_by=1,
        created_at=AT,
    )
    old.set("rule_items", 1, current_version_id=1)
    add(
        "uploads",
        id=1,
        user_id=2,
        village_id=1,
        stored_name="a" * 32 + ".jpg",
        content_type="image/jpeg",
        size=1234,
        width=32,
        height=24,
        sha256="b" * 64,
        created_at=AT,
    )
    posted = AT + timedelta(days=6)
    claim = {
        "village_id": 1,
        "rule_item_id": 1,
        "rule_item_version_id": 1,
        "source": "cadre",
        "capped": False,
        "reason": "参加村民大会 3 分",
        "occurred_at": AT,
        "submitted_by": 2,
        "created_at": AT,
        "decided_at": AT,
        "units": None,
    }
    add(
        "claims",
        id=1,
        household_id=1,
        member_id=1,
        points=3,
        status="posted",
        evidence=[1],
        notice_ends_at=AT + timedelta(days=5),
        posted_at=posted,
        **claim,
    )
    add(
        "claims",
        id=2,
        household_id=2,
        member_id=2,
        points=3,
        status="posted",
        evidence=[],
        notice_ends_at=AT + timedelta(days=5),
        posted_at=posted,
        **claim,
    )
    add(
        "claims",
        id=3,
        household_id=1,
        member_id=1,
        points=3,
        status="in_notice",
        evidence=[],
        notice_ends_at=datetime(2099, 1, 1, tzinfo=UTC),
        **(claim | {"occurred_at": AT + timedelta(days=1)}),
    )
    add(
        "claims",
        id=4,
        household_id=2,
        member_id=2,
        points=3,
        status="rejected",
        evidence=[],
        reject_reason="当天未到场",
        rejected_by=2,
        **claim,
    )
    add("monthly_issued", village_id=1, month="2026-11", issued=9)  # claims 1, 2 and 3

    entries: list[dict[str, Any]] = []  # written after their accounts

    def entry(account: int, seq: int, prev: str, **fields: Any) -> str:
        values = {
            "account_id": account,
            "seq": seq,
            "month": "2026-11",
            "created_at": posted,
            "member_id": None,
            "rule_item_version_id": None,
            "claim_id": None,
            "reverses_id": None,
            "created_by": None,
            "note": None,
            **fields,
        }
        values["hash"] = release_hash(prev, values)
        entries.append({"prev_hash": prev, **values})
        return str(values["hash"])

    # Household 1: 3 earned, 2 spent on a fulfilled redemption.
    earn = {"kind": "earn", "amount": 3, "rule_item_version_id": 1, "created_by": 2}
    h1 = entry(1, 1, GENESIS, id=1, claim_id=1, member_id=1, **earn)
    h1 = entry(
        1, 2, h1, id=2, kind="redeem", amount=-2, member_id=1, created_by=3, note="兑换 食盐 x1"
    )
    # Household 2: 3 earned, 1 held by an order not yet picked up.
    h2 = entry(2, 1, GENESIS, id=3, claim_id=2, member_id=2, **earn)
    add(
        "accounts",
        id=1,
        household_id=1,
        village_id=1,
        available=1,
        held=0,
        earned_total=3,
        entry_count=2,
        head_hash=h1,
        created_at=AT,
    )
    add(
        "accounts",
        id=2,
        household_id=2,
        village_id=1,
        available=2,
        held=1,
        earned_total=3,
        entry_count=1,
        head_hash=h2,
        created_at=AT,
    )
    for values in entries:
        add("ledger_entries", **values)
    for account, household, redeemed in ((1, 1, -2), (2, 2, 0)):
        add(
            "month_totals",
            id=account,
            account_id=account,
            household_id=household,
            village_id=1,
            month="2026-11",
            score=3,
            earned=3,
            deducted=0,
            redeemed=redeemed,
            expired=0,
        )
        add(
            "member_month_totals",
            id=account,
            member_id=household,
            household_id=household,
            village_id=1,
            month="2026-11",
            score=3,
            earned=3,
            deducted=0,
        )
    add(
        "rewards",
        id=1,
        shop_id=1,
        name="食盐 500g",
        points=2,
        stock=9,
        active=True,
        created_at=AT,
        updated_at=AT,
    )
    add(
        "rewards",
        id=2,
        shop_id=1,
        name="火柴",
        points=1,
        stock=9,
        active=True,
        created_at=AT,
        updated_at=AT,
    )
    order = {
        "shop_id": 1,
        "village_id": 1,
        "cash_paid": "0.00",
        "exchange_rate": "1",
        "created_at": posted,
    }
    add(
        "redemptions",
        id=1,
        household_id=1,
        member_id=1,
        source="counter",
        status="fulfilled",
        total_points=2,
        points=2,
        created_by=3,
        fulfilled_at=posted,
        fulfilled_by=3,
        month="2026-11",
        ledger_entry_id=2,
        **order,
    )
    add(
        "redemptions",
        id=2,
        household_id=2,
        member_id=2,
        source="order",
        status="reserved",
        total_points=1,
        points=1,
        created_by=4,
        expires_at=datetime(2099, 1, 1, tzinfo=UTC),
        **order,
    )
    add(
        "redemption_lines",
        id=1,
        redemption_id=1,
        reward_id=1,
        name="食盐 500g",
        unit_points=2,
        quantity=1,
        points=2,
    )
    add(
        "redemption_lines",
        id=2,
        redemption_id=2,
        reward_id=2,
        name="火柴",
        unit_points=1,
        quantity=1,
        points=1,
    )
    return ids


def still_there(conn: Connection, rows: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Each inserted row, found by its key, with the values it was given."""
    meta = MetaData()
    meta.reflect(conn)
    missing = []
    for name, inserted in rows.items():
        table = meta.tables[name]
        for row in inserted:
            keys = {"id": row["id"]} if "id" in row else row
            found = conn.execute(select(table).filter_by(**keys)).mappings().first()
            if found is None:
                missing.append(f"{name} {keys}")
                continue
            for column, value in row.items():
                stored = found[column]
                if isinstance(value, datetime) and stored is not None:
                    stored = stored if stored.tzinfo else stored.replace(tzinfo=UTC)
                if stored != value:
                    missing.append(f"{name} {keys}: {column} {stored!r} != {value!r}")
    return missing


def head_revision() -> str:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(REPO / "migrations"))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def test_a_database_of_the_previous_release_upgrades_with_its_data(
    tmp_path: Path, database: str
) -> None:
    uploads = tmp_path / "uploads"
    app = create_app(
        {
            "APP_ENV": "testing",
            "SECRET_KEY": SECRET,
            "APP_TIMEZONE": "Asia/Shanghai",
            "SQLALCHEMY_DATABASE_URI": database,
        }
    )
    with app.app_context():
        upgrade(revision=PREVIOUS_RELEASE)
        db.engine.dispose()
    engine = create_engine(database)
    try:
        with engine.begin() as conn:
            old = OldSchema(conn)
            fill_previous_release(old)
            if conn.dialect.name == "postgresql":  # the rows name their ids: move the
                for table in old.rows:  # sequences past them, as use would have
                    if "id" in old.meta.tables[table].c:
                        conn.execute(
                            text(
                                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                                f" (SELECT MAX(id) FROM {table}))"
                            )
                        )
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT version_num FROM alembic_version")) == (
                PREVIOUS_RELEASE
            )
    finally:
        engine.dispose()

    upgraded = flask(database, uploads, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    verified = flask(database, uploads, "ledger", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("OK: 2 accounts, 3 entries verified")

    engine = create_engine(database)
    try:
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT version_num FROM alembic_version")) == (head_revision())
            assert still_there(conn, old.rows) == []
    finally:
        engine.dispose()

    # This release's app reads what the previous one wrote.
    app = create_app(
        {
            "TESTING": True,
            "APP_ENV": "testing",
            "SECRET_KEY": SECRET,
            "APP_TIMEZONE": "Asia/Shanghai",
            "SQLALCHEMY_DATABASE_URI": database,
            "UPLOAD_DIR": str(uploads),
        }
    )
    client = app.test_client()
    login = client.post("/api/v1/auth/login", json={"username": "cadre_u", "password": PASSWORD})
    assert login.status_code == 200, login.get_json()
    headers = {"Authorization": f"Bearer {login.get_json()['access_token']}"}
    for household, available, held in ((1, 1, 0), (2, 2, 1)):
        account = client.get(f"/api/v1/households/{household}/account", headers=headers)
        assert account.status_code == 200, account.get_json()
        assert (account.get_json()["available"], account.get_json()["held"]) == (available, held)
    claim = client.get("/api/v1/claims/1", headers=headers)
    assert claim.status_code == 200 and claim.get_json()["status"] == "posted"
    with app.app_context():
        db.engine.dispose()
