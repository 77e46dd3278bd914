"""`flask db upgrade` from an empty database reaches exactly the models, on SQLite and on
PostgreSQL (a database of its own, created and dropped here); a migration that moves data
fills it as the code would have."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import JSON, Integer, String, bindparam, column, inspect, select, table, text
from sqlalchemy.orm import Session

import rules
from backend import create_app
from backend.extensions import db
from points import budget, village_totals
from points import claims as claims_module
from points.models import (
    Account,
    Activity,
    AuditEntry,
    Base,
    CheckIn,
    Claim,
    ClaimApproval,
    Household,
    LedgerEntry,
    MonthlyIssued,
    MonthTotal,
    Objection,
    RuleItem,
    RuleItemVersion,
    Township,
    Village,
    VillageMonthItem,
    VillageMonthTotal,
    Villager,
)
from points.models.base import UTCDateTime
from tests.factories import SECRET
from tests.support.databases import fresh_database


@pytest.fixture()
def empty_database_url(tmp_path: Path) -> Iterator[str]:
    with fresh_database(tmp_path, "migrate") as url:
        yield url


def test_upgrade_from_empty_matches_models(empty_database_url: str) -> None:
    app = create_app(
        {"APP_ENV": "testing", "SECRET_KEY": SECRET, "SQLALCHEMY_DATABASE_URI": empty_database_url}
    )
    with app.app_context():
        upgrade()
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            tables = set(inspect(conn).get_table_names())
        db.engine.dispose()
    assert diff == []
    assert set(Base.metadata.tables) <= tables


def _old_household(s: Session, village_id: int) -> SimpleNamespace:
    """A household inserted through the table, naming only the columns of the revisions
    before 0015 (the model has more)."""
    household_id = s.execute(
        Household.__table__.insert()
        .values(
            village_id=village_id,
            name="一户",
            public_board_opt_out=False,
            created_at=datetime(2026, 11, 1, tzinfo=UTC),
        )
        .returning(Household.__table__.c.id)
    ).scalar_one()
    return SimpleNamespace(id=household_id)


def _old_cadre(s: Session, township_id: int, village_id: int) -> SimpleNamespace:
    """The village's cadre, as `_old_user` inserts a user."""
    return _old_user(
        s,
        username="mig_cadre",
        password_hash="x",
        role="cadre",
        township_id=township_id,
        village_id=village_id,
    )


def _old_user(s: Session, **values: object) -> SimpleNamespace:
    """A user inserted through the table, naming only the columns of the revisions before
    0019 (the model has more: `must_change_password`)."""
    users = table(
        "users",
        column("id", Integer),
        column("created_at", UTCDateTime()),
        *(column(name) for name in ("disabled", *values)),
    )
    user_id = s.execute(
        users.insert()
        .values(disabled=False, created_at=datetime(2026, 11, 1, tzinfo=UTC), **values)
        .returning(users.c.id)
    ).scalar_one()
    return SimpleNamespace(id=user_id)


def _old_catalog(
    s: Session, township_id: int, catalog: rules.Catalog | None = None
) -> SimpleNamespace:
    """A township's catalog (default: the reference one) inserted through the tables,
    naming only the columns of revision 0002 (the models have more: an item version's
    `hourly` since 0017), each item's version stored as `rules.item_to_dict` writes it.
    Returns its first item (id, current_version_id)."""
    catalog = catalog or rules.load_default_catalog()
    at = datetime(2026, 11, 1, tzinfo=UTC)
    catalogs_table = table(
        "rule_catalogs",
        column("id", Integer),
        column("name", String),
        column("township_id", Integer),
        column("policy", JSON),
        column("categories", JSON),
        column("created_at", UTCDateTime),
    )
    items = table(
        "rule_items",
        column("id", Integer),
        column("catalog_id", Integer),
        column("code", String),
        column("position", Integer),
        column("current_version_id", Integer),
        column("created_at", UTCDateTime),
    )
    versions = table(
        "rule_item_versions",
        column("id", Integer),
        column("item_id", Integer),
        column("version", Integer),
        column("data", JSON),
        column("points", Integer),
        column("created_at", UTCDateTime),
    )
    catalog_id = s.execute(
        catalogs_table.insert()
        .values(
            name=catalog.name,
            township_id=township_id,
            policy=rules.policy_to_dict(catalog.policy),
            categories=list(catalog.categories),
            created_at=at,
        )
        .returning(catalogs_table.c.id)
    ).scalar_one()
    first = None
    for position, rule in enumerate(catalog.items, 1):
        item_id = s.execute(
            items.insert()
            .values(catalog_id=catalog_id, code=rule.code, position=position, created_at=at)
            .returning(items.c.id)
        ).scalar_one()
        version_id = s.execute(
            versions.insert()
            .values(
                item_id=item_id,
                version=1,
                data=rules.item_to_dict(rule),
                points=rule.points,
                created_at=at,
            )
            .returning(versions.c.id)
        ).scalar_one()
        s.execute(items.update().where(items.c.id == item_id).values(current_version_id=version_id))
        first = first or SimpleNamespace(id=item_id, current_version_id=version_id)
    assert first is not None
    return first


def test_upgrade_fills_the_monthly_issued_points_from_the_claims(
    empty_database_url: str,
) -> None:
    """0005 adds the monthly budget's counter to a database that already has claims: each
    village's month gets the points its counted claims hold, by village time, in the month
    they were decided in. 0010 counts them by their deed's month instead, less an award
    whose entry was reversed, as the code now keeps the counter."""
    app = create_app(
        {
            "APP_ENV": "testing",
            "SECRET_KEY": SECRET,
            "SQLALCHEMY_DATABASE_URI": empty_database_url,
            "APP_TIMEZONE": "Asia/Shanghai",
        }
    )
    with app.app_context():
        upgrade(revision="0004")
        with Session(db.engine) as s:
            township, item, village, household = _old_place(s)
            cadre = _old_cadre(s, township.id, village.id)
            at = datetime(2026, 11, 5, tzinfo=UTC)
            # Through a table of only the columns 0004 has: the model may have more, and
            # its defaults would name them too.
            rows = [
                {
                    "village_id": village.id,
                    "household_id": household.id,
                    "rule_item_id": item.id,
                    "rule_item_version_id": item.current_version_id,
                    "source": "cadre",
                    "points": points,
                    "reason": "迁移前",
                    "status": status,
                    "occurred_at": at,
                    "submitted_by": cadre.id,
                    "created_at": at,
                    "decided_at": decided_at,
                    "evidence": [],
                    "capped": False,
                }
                for points, status, decided_at in [
                    (10, "posted", datetime(2026, 11, 30, 15, 30, tzinfo=UTC)),  # 23:30 30 Nov
                    (5, "in_notice", datetime(2026, 11, 3, tzinfo=UTC)),
                    (7, "objected", datetime(2026, 11, 30, 16, 30, tzinfo=UTC)),  # 00:30 1 Dec
                    (20, "rejected", datetime(2026, 11, 5, tzinfo=UTC)),
                    (-3, "posted", datetime(2026, 11, 5, tzinfo=UTC)),
                    (8, "approved", None),
                    (4, "pending", None),
                ]
            ]
            s.execute(_only(Claim, rows[0]).insert(), rows)
            # The posted 10 points are reversed (冲正), after 0005: their entry and the
            # reversing one.
            entry = {
                "h": household.id,
                "v": village.id,
                "at": at,
                "claim": s.scalar(
                    select(Claim.__table__.c.id).where(Claim.__table__.c.points == 10)
                ),
            }
            s.commit()
        upgrade(revision="0005")
        with Session(db.engine) as s:
            filled = {(row.month, row.issued) for row in s.scalars(select(MonthlyIssued))}
            entry["account"] = s.execute(
                text(
                    "INSERT INTO accounts (household_id, village_id, available, held, earned_total,"
                    " entry_count, head_hash, created_at) VALUES (:h, :v, 0, 0, 0, 2, 'x', :at)"
                    " RETURNING id"
                ),
                entry,
            ).scalar_one()
            earned = s.execute(
                text(
                    "INSERT INTO ledger_entries (account_id, seq, kind, amount, claim_id,"
                    " created_at, month, prev_hash, hash) VALUES (:account, 1, 'earn', 10,"
                    " :claim, :at, '2026-11', 'a', 'b') RETURNING id"
                ),
                entry,
            ).scalar_one()
            s.execute(
                text(
                    "INSERT INTO ledger_entries (account_id, seq, kind, amount, reverses_id,"
                    " created_at, month, prev_hash, hash) VALUES (:account, 2, 'reverse', -10,"
                    " :earned, :at, '2026-11', 'b', 'c')"
                ),
                entry | {"earned": earned},
            )
            s.commit()
        upgrade()
        with Session(db.engine) as s:
            by_deed = {(row.month, row.issued) for row in s.scalars(select(MonthlyIssued))}
            problems = budget.verify_issued(s, ZoneInfo("Asia/Shanghai"))
        db.engine.dispose()
    assert filled == {("2026-11", 15), ("2026-12", 7)}
    # All three counted claims were done on 5 November; the reversed 10 no longer count.
    assert by_deed == {("2026-11", 12)}
    assert problems == []


def test_upgrade_keeps_one_objection_per_villager_and_lets_staff_share_a_villager(
    empty_database_url: str,
) -> None:
    """0006 on a database where a villager objected to one claim again and again: their
    latest objection stays, the earlier ones go to the audit log whole. Afterwards a cadre's
    account can be linked to the villager a WeChat user is bound to, and a claim withdrawn;
    downgrading reads a withdrawn claim as rejected with its reason."""
    app = create_app(
        {"APP_ENV": "testing", "SECRET_KEY": SECRET, "SQLALCHEMY_DATABASE_URI": empty_database_url}
    )
    at = datetime(2026, 11, 5, tzinfo=UTC)
    with app.app_context():
        upgrade(revision="0005")
        with Session(db.engine) as s:
            township, item, village, household = _old_place(s)
            # Inserted by name, not by the model: the model has columns added after 0005.
            head_id = s.execute(
                text(
                    "INSERT INTO villagers (household_id, name, relation, active, created_at) "
                    "VALUES (:household, '户主', '户主', :yes, :at) RETURNING id"
                ).bindparams(bindparam("at", type_=UTCDateTime())),
                {"household": household.id, "yes": True, "at": at},
            ).scalar_one()
            cadre = _old_cadre(s, township.id, village.id)
            _old_user(s, role="villager", openid="mig-head", villager_id=head_id)
            stubborn = _old_user(s, role="villager", openid="mig-stubborn")
            other = _old_user(s, role="villager", openid="mig-other")
            old_claim = {
                "village_id": village.id,
                "household_id": household.id,
                "rule_item_id": item.id,
                "rule_item_version_id": item.current_version_id,
                "source": "cadre",
                "points": 3,
                "reason": "迁移前",
                "status": "objected",
                "occurred_at": at,
                "submitted_by": cadre.id,
                "created_at": at,
                "decided_at": at,
                "evidence": [],
                "capped": False,
            }
            claims = _only(Claim, old_claim)
            claim_id = s.execute(claims.insert().returning(claims.c.id), old_claim).scalar_one()
            objections = Objection.__table__
            for user_id, reason, status in [
                (stubborn.id, "第一次", "upheld"),
                (other.id, "另一人", "upheld"),
                (stubborn.id, "第二次", "upheld"),
                (stubborn.id, "第三次", "open"),
            ]:
                s.execute(
                    objections.insert(),
                    {
                        "claim_id": claim_id,
                        "user_id": user_id,
                        "reason": reason,
                        "status": status,
                        "created_at": at,
                    },
                )
            ids = {
                "cadre": cadre.id,
                "head": head_id,
                "stubborn": stubborn.id,
                "other": other.id,
                "village": village.id,
            }
            s.commit()
        upgrade(revision="0006")
        with Session(db.engine) as s:
            kept = sorted(
                s.execute(select(Objection.user_id, Objection.reason, Objection.status)).all()
            )
            removed = s.scalars(
                select(AuditEntry)
                .where(AuditEntry.action == "objection.repeat_removed")
                .order_by(AuditEntry.id)
            ).all()
            assert [(e.before or {}).get("reason") for e in removed] == ["第一次", "第二次"]
            assert {e.village_id for e in removed} == {ids["village"]}
            # Staff may now be linked to a villager a WeChat user is bound to.
            s.execute(text("UPDATE users SET villager_id = :head WHERE id = :cadre"), ids)
            s.execute(
                text(
                    "UPDATE claims SET status = 'withdrawn', withdraw_reason = '录错',"
                    " withdrawn_by = :cadre"
                ),
                ids,
            )
            s.commit()
        downgrade(revision="0005")
        with Session(db.engine) as s:
            after_downgrade = s.execute(
                text("SELECT status, reject_reason, rejected_by FROM claims")
            ).one()
            cadre_link = s.scalar(text("SELECT villager_id FROM users WHERE id = :cadre"), ids)
        db.engine.dispose()
    assert kept == sorted([(ids["stubborn"], "第三次", "open"), (ids["other"], "另一人", "upheld")])
    assert tuple(after_downgrade) == ("rejected", "录错", ids["cadre"])
    assert cadre_link is None  # unique among all users again


def test_upgrade_says_which_stored_items_are_scored_by_the_hour(
    empty_database_url: str,
) -> None:
    """0017 on a database whose items did not say `hourly`: each stored version gets it by
    its unit, as check-out read it before (the reference catalog's volunteer hours, in 小时,
    are; its per-unit items in 项, 分 or 人 and its fixed items are not), and the items read
    the same afterwards. Downgrading drops the column and the key from a version that says it
    itself, so the code before 0017 can read it."""
    app = create_app(
        {"APP_ENV": "testing", "SECRET_KEY": SECRET, "SQLALCHEMY_DATABASE_URI": empty_database_url}
    )
    catalog = rules.load_default_catalog()
    with app.app_context():
        upgrade(revision="0016")
        with Session(db.engine) as s:
            township = Township(name="迁移镇", code="MIG")
            s.add(township)
            s.flush()
            _old_catalog(s, township.id, catalog)
            s.commit()
        upgrade()
        with Session(db.engine) as s:
            stored = dict(
                s.execute(
                    select(RuleItem.code, RuleItemVersion.hourly).join(
                        RuleItemVersion, RuleItemVersion.id == RuleItem.current_version_id
                    )
                ).all()
            )
            read = {
                item.code: item.current_version.rule.hourly for item in s.scalars(select(RuleItem))
            }
            assert stored["PUB-VOLUNTEER"] is True
            # An item that says it itself, whatever its unit, as one written after 0017.
            # (Through the table: the model refuses to change a stored version.)
            clutter = s.execute(
                select(RuleItemVersion.id, RuleItemVersion.data)
                .join(RuleItem, RuleItem.current_version_id == RuleItemVersion.id)
                .where(RuleItem.code == "ENV-CLUTTER")
            ).one()
            s.execute(
                RuleItemVersion.__table__.update()
                .where(RuleItemVersion.__table__.c.id == clutter.id)
                .values(data={**clutter.data, "hourly": True}, hourly=True)
            )
            s.commit()
        downgrade(revision="0016")
        with Session(db.engine) as s:
            columns = {c["name"] for c in inspect(s.connection()).get_columns("rule_item_versions")}
            data = [
                json.loads(row) if isinstance(row, str) else row
                for row in s.scalars(text("SELECT data FROM rule_item_versions"))
            ]
        db.engine.dispose()
    assert stored == {
        item.code: item.kind == "per_unit" and item.unit == "小时" for item in catalog.items
    }
    assert read == stored
    assert "hourly" not in columns
    assert all("hourly" not in row for row in data)


def test_upgrade_fills_the_village_month_totals_from_the_household_months(
    empty_database_url: str,
) -> None:
    """0021 on a database with household month totals: each village's month gets their sum,
    column by column, which `points.village_totals.verify` then finds exact."""
    app = create_app(
        {"APP_ENV": "testing", "SECRET_KEY": SECRET, "SQLALCHEMY_DATABASE_URI": empty_database_url}
    )
    with app.app_context():
        upgrade(revision="0020")
        with Session(db.engine) as s:
            township = Township(name="迁移镇", code="MIG")
            s.add(township)
            s.flush()
            villages = [Village(township_id=township.id, name=f"迁移村{n}") for n in range(2)]
            s.add_all(villages)
            s.flush()
            rows = []
            for n, (village, month) in enumerate(
                [(villages[0], "2026-10"), (villages[0], "2026-10"), (villages[0], "2026-11")]
                + [(villages[1], "2026-11")]
            ):
                household = Household(village_id=village.id, name=f"户{n}")
                s.add(household)
                s.flush()
                account = Account(household_id=household.id, village_id=village.id)
                s.add(account)
                s.flush()
                rows.append(
                    MonthTotal(
                        account_id=account.id,
                        household_id=household.id,
                        village_id=village.id,
                        month=month,
                        score=10 + n,
                        earned=12 + n,
                        deducted=-2,
                        redeemed=-3 - n,
                        expired=-n,
                        opening=5 * n,
                    )
                )
            s.add_all(rows)
            s.commit()
            ids = [v.id for v in villages]
        upgrade()
        with Session(db.engine) as s:
            kept = {
                (row.village_id, row.month): tuple(
                    getattr(row, name) for name in village_totals.SUMS
                )
                for row in s.scalars(select(VillageMonthTotal))
            }
            problems = village_totals.verify(s, ZoneInfo("Asia/Shanghai"))
        db.engine.dispose()
    assert kept == {
        (ids[0], "2026-10"): (21, 25, -4, -7, -1, 5),
        (ids[0], "2026-11"): (12, 14, -2, -5, -2, 10),
        (ids[1], "2026-11"): (13, 15, -2, -6, -3, 15),
    }
    assert problems == []


def test_upgrade_fills_the_village_month_items_from_the_score_entries(
    empty_database_url: str,
) -> None:
    """0022 on a database with entries: awards, deductions and reversals of them counted and
    summed per village, month, item (0: none) and kind; an opening balance, a redemption and
    the reversal of an opening balance left out. `village_totals.verify` then agrees."""
    app = create_app(
        {"APP_ENV": "testing", "SECRET_KEY": SECRET, "SQLALCHEMY_DATABASE_URI": empty_database_url}
    )
    at = datetime(2026, 10, 5, tzinfo=UTC)
    with app.app_context():
        upgrade(revision="0021")
        with Session(db.engine) as s:
            township = Township(name="迁移镇", code="MIG")
            s.add(township)
            s.flush()
            village = Village(township_id=township.id, name="迁移村")
            s.add(village)
            s.flush()
            household = Household(village_id=village.id, name="户")
            s.add(household)
            s.flush()
            account = Account(household_id=household.id, village_id=village.id)
            s.add(account)
            s.flush()

            def entry(seq: int, kind: str, amount: int, month: str, **more: int) -> LedgerEntry:
                line = LedgerEntry(
                    account_id=account.id,
                    seq=seq,
                    kind=kind,
                    amount=amount,
                    created_at=at,
                    month=month,
                    prev_hash="0" * 64,
                    hash=f"{seq:064d}",
                    **more,
                )
                s.add(line)
                s.flush()
                return line

            earned = entry(1, "earn", 10, "2026-10")
            entry(2, "earn", 5, "2026-10")
            entry(3, "deduct", -3, "2026-10")
            opening = entry(4, "adjust", 20, "2026-10")
            entry(5, "redeem", -4, "2026-10")
            entry(6, "reverse", -10, "2026-11", reverses_id=earned.id)
            entry(7, "reverse", -20, "2026-11", reverses_id=opening.id)
            s.commit()
            village_id = village.id
        upgrade()
        with Session(db.engine) as s:
            kept = {
                (row.village_id, row.month, row.rule_item_version_id, row.kind): (
                    row.entries,
                    row.amount,
                )
                for row in s.scalars(select(VillageMonthItem))
            }
            problems = village_totals.verify_items(s)
        db.engine.dispose()
    assert kept == {
        (village_id, "2026-10", 0, "earn"): (2, 15),
        (village_id, "2026-10", 0, "deduct"): (1, -3),
        (village_id, "2026-11", 0, "reverse"): (1, -10),
    }
    assert problems == []


def _only(model: Any, row: dict[str, Any]) -> Any:
    """The model's table with only the columns `row` names (and `id`), as an older schema
    has them: the model's own table would also insert the defaults of its newer columns."""
    columns = model.__table__.c
    return table(
        model.__tablename__,
        *(column(name, columns[name].type) for name in {"id", *row}),
    )


def test_upgrade_counts_each_claims_approvals(empty_database_url: str) -> None:
    """0022 sets `claims.approvals` to each claim's approval rows, which
    `claims.verify_approvals` then finds exact."""
    app = create_app(
        {"APP_ENV": "testing", "SECRET_KEY": SECRET, "SQLALCHEMY_DATABASE_URI": empty_database_url}
    )
    at = datetime(2026, 11, 5, tzinfo=UTC)
    with app.app_context():
        upgrade(revision="0021")
        with Session(db.engine) as s:
            township, item, village, household = _old_place(s)
            cadres = [
                _old_user(
                    s,
                    username=f"mig_cadre{n}",
                    password_hash="x",
                    role="cadre",
                    township_id=township.id,
                    village_id=village.id,
                )
                for n in range(2)
            ]
            ids = []
            for status in ("in_notice", "pending", "pending"):
                row = {
                    "village_id": village.id,
                    "household_id": household.id,
                    "rule_item_id": item.id,
                    "rule_item_version_id": item.current_version_id,
                    "source": "cadre",
                    "points": 3,
                    "reason": "迁移前",
                    "status": status,
                    "occurred_at": at,
                    "submitted_by": cadres[0].id,
                    "created_at": at,
                    "evidence": [],
                    "capped": False,
                }
                claims = _only(Claim, row)
                ids.append(s.execute(claims.insert().returning(claims.c.id), row).scalar_one())
            approvals = _only(ClaimApproval, {"claim_id": 0, "user_id": 0, "created_at": at})
            s.execute(
                approvals.insert(),
                [
                    {"claim_id": ids[0], "user_id": cadres[0].id, "created_at": at},
                    {"claim_id": ids[0], "user_id": cadres[1].id, "created_at": at},
                    {"claim_id": ids[1], "user_id": cadres[1].id, "created_at": at},
                ],
            )
            s.commit()
        upgrade()
        with Session(db.engine) as s:
            counts = [s.get(Claim, claim_id).approvals for claim_id in ids]  # type: ignore[union-attr]
            problems = claims_module.verify_approvals(s)
        db.engine.dispose()
    assert counts == [2, 1, 0]
    assert problems == []


def test_upgrade_counts_each_village_months_check_ins_and_downgrade_takes_them_back(
    empty_database_url: str,
) -> None:
    """0028 counts the check-ins already made in their village months, each in the month of
    its moment in APP_TIMEZONE: added to a month's row, or a row of its own for a month with
    check-ins and no entries; `village_totals.verify` then agrees. Downgrading drops the
    column and the rows kept only for check-ins."""
    app = create_app(
        {
            "APP_ENV": "testing",
            "SECRET_KEY": SECRET,
            "SQLALCHEMY_DATABASE_URI": empty_database_url,
            "APP_TIMEZONE": "Asia/Shanghai",
        }
    )
    shanghai = ZoneInfo("Asia/Shanghai")
    moments = [
        datetime(2026, 10, 20, 2, 0, tzinfo=UTC),
        datetime(2026, 10, 31, 15, 59, tzinfo=UTC),  # 23:59 in Shanghai: still October
        datetime(2026, 10, 31, 16, 30, tzinfo=UTC),  # 00:30 on 1 November in Shanghai
    ]
    with app.app_context():
        upgrade(revision="0027")
        with Session(db.engine) as s:
            township, item, village, household = _old_place(s)
            cadre = _old_cadre(s, township.id, village.id)
            activity = {
                "village_id": village.id,
                "title": "村民大会",
                "rule_item_id": item.id,
                "starts_at": moments[0],
                "ends_at": moments[-1],
                "checkin_opens_at": moments[0],
                "checkin_closes_at": moments[-1],
                "qr_mode": "static",
                "qr_step_seconds": 30,
                "places_taken": 0,
                "status": "scheduled",
                "created_by": cadre.id,
                "created_at": moments[0],
            }
            activities = _only(Activity, activity)
            activity_id = s.execute(
                activities.insert().returning(activities.c.id), activity
            ).scalar_one()
            villager = {
                "household_id": household.id,
                "name": "户主",
                "relation": "户主",
                "active": True,
                "created_at": moments[0],
            }
            villagers = _only(Villager, villager)
            villager_ids = [
                s.execute(
                    villagers.insert().returning(villagers.c.id),
                    {**villager, "name": f"成员{n}", "relation": "户主" if n == 0 else "子女"},
                ).scalar_one()
                for n in range(len(moments))
            ]
            checkin = {
                "activity_id": 0,
                "villager_id": 0,
                "household_id": household.id,
                "village_id": village.id,
                "checked_in_at": moments[0],
                "flags": [],
                "points": 0,
            }
            s.execute(
                _only(CheckIn, checkin).insert(),
                [
                    {**checkin, "activity_id": activity_id, "villager_id": v, "checked_in_at": at}
                    for v, at in zip(villager_ids, moments, strict=True)
                ],
            )
            # October has entries already: its row and the household's month.
            s.add(Account(household_id=household.id, village_id=village.id))
            s.flush()
            month = {
                "account": s.scalar(select(Account.id)),
                "household": household.id,
                "village": village.id,
            }
            s.execute(
                text(
                    "INSERT INTO village_month_totals (village_id, month, score, earned, "
                    "participating) VALUES (:village, '2026-10', 5, 5, 1)"
                ),
                month,
            )
            s.execute(
                text(
                    "INSERT INTO month_totals (account_id, household_id, village_id, month, "
                    "score, earned, deducted, redeemed, expired, opening) "
                    "VALUES (:account, :household, :village, '2026-10', 5, 5, 0, 0, 0, 0)"
                ),
                month,
            )
            s.commit()
        upgrade()
        with Session(db.engine) as s:
            kept = {
                row.month: (row.checkins, row.score) for row in s.scalars(select(VillageMonthTotal))
            }
            problems = village_totals.verify(s, shanghai)
        downgrade(revision="0027")
        with Session(db.engine) as s:
            left = s.execute(text("SELECT month, score FROM village_month_totals")).all()
            columns = {
                c["name"] for c in inspect(s.connection()).get_columns("village_month_totals")
            }
        db.engine.dispose()
    assert kept == {"2026-10": (2, 5), "2026-11": (1, 0)}
    assert problems == []
    assert left == [("2026-10", 5)]
    assert "checkins" not in columns


def _old_place(s: Session) -> tuple[Township, Any, Village, Any]:
    """A township with its catalog's item, a village and a household, as an older schema
    holds them."""
    township = Township(name="迁移镇", code="MIG")
    s.add(township)
    s.flush()
    item = _old_catalog(s, township.id)
    village = Village(township_id=township.id, name="迁移村")
    s.add(village)
    s.flush()
    return township, item, village, _old_household(s, village.id)
