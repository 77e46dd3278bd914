"""The restore drill, with the real commands: a migrated database with the demo township, an
award with an evidence photo and a counter redemption is backed up by `flask backup`, restored
by `flask restore` into a fresh database and a fresh upload directory, and comes back the
same: `flask ledger verify` passes, every account, claim, ledger entry, redemption and photo
matches. On PostgreSQL (TEST_DATABASE_URL) that is pg_dump / pg_restore; else SQLite's
online backup."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, inspect, select, text

from backend import backup, create_app
from backend.extensions import db
from points.demo import DEMO_PASSWORD
from points.models import (
    Account,
    Base,
    Household,
    Reward,
    RuleItem,
    Village,
    Villager,
    shop_villages,
)
from tests.factories import SECRET, fund, member_token, upload_photo
from tests.support.databases import flask, fresh_database

API = "/api/v1"

# What must come back exactly, row by row.
COMPARED = {
    "accounts": "SELECT household_id, available, held, earned_total, entry_count, head_hash"
    " FROM accounts ORDER BY household_id",
    "ledger_entries": "SELECT id, account_id, seq, kind, amount, month, hash FROM"
    " ledger_entries ORDER BY id",
    "claims": "SELECT id, household_id, status, points, evidence FROM claims ORDER BY id",
    "redemptions": "SELECT id, household_id, status, points FROM redemptions ORDER BY id",
    "uploads": "SELECT id, stored_name, sha256 FROM uploads ORDER BY id",
    "users": "SELECT id, username, password_hash FROM users ORDER BY id",
    "monthly_issued": "SELECT village_id, month, issued FROM monthly_issued"
    " ORDER BY village_id, month",
}


@pytest.fixture()
def source(tmp_path: Path) -> Iterator[str]:
    with fresh_database(tmp_path, "backup_src") as url:
        yield url


@pytest.fixture()
def target(tmp_path: Path) -> Iterator[str]:
    with fresh_database(tmp_path, "restore_dst") as url:
        yield url


def run_ok(url: str, uploads: Path, *args: str) -> str:
    done = flask(url, uploads, *args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def add_activity(url: str, uploads: Path) -> dict[str, int]:
    """On the demo township: a cadre's award with an evidence photo, and a counter
    redemption, through the API of an app on the source database."""
    app = create_app(
        {
            "TESTING": True,
            "APP_ENV": "testing",
            "SECRET_KEY": SECRET,
            "SQLALCHEMY_DATABASE_URI": url,
            "UPLOAD_DIR": str(uploads),
            "RATELIMIT_STORAGE_URI": "memory://",
        }
    )
    client = app.test_client()

    def login(username: str) -> dict[str, str]:
        response = client.post(
            f"{API}/auth/login", json={"username": username, "password": DEMO_PASSWORD}
        )
        assert response.status_code == 200, response.get_json()
        return {"Authorization": f"Bearer {response.get_json()['access_token']}"}

    with app.app_context():
        village = db.session.scalars(select(Village).order_by(Village.id)).first()
        assert village is not None
        richest = (
            db.session.execute(
                select(Account.household_id)
                .join(Household, Household.id == Account.household_id)
                .where(Household.village_id == village.id)
                .order_by(Account.available.desc())
            )
            .scalars()
            .first()
        )
        villager = db.session.scalars(
            select(Villager.id).where(Villager.household_id == richest)
        ).first()
        item = db.session.scalar(select(RuleItem.id).where(RuleItem.code == "GOV-ASSEMBLY"))
        salt = db.session.scalars(
            select(Reward.id)
            .join(shop_villages, shop_villages.c.shop_id == Reward.shop_id)
            .where(shop_villages.c.village_id == village.id)
            .order_by(Reward.points)
        ).first()
    assert richest and villager and item and salt
    cadre = login("cadre_qs")
    photo = upload_photo(client, cadre)
    awarded = client.post(
        f"{API}/awards",
        headers=cadre,
        json={"rule_item_id": item, "targets": [{"villager_id": villager}], "evidence": [photo]},
    )
    assert awarded.status_code == 201, awarded.get_json()
    fund(app, richest, 100)  # over the qualification line (合格线) whatever the demo gave
    with app.app_context():
        shop = db.session.scalar(select(Reward.shop_id).where(Reward.id == salt))
    sold = client.post(
        f"{API}/shops/{shop}/counter-redemptions",
        headers=login("clerk_qs"),
        json={
            "member_token": member_token(app, villager),
            "items": [{"reward_id": salt, "quantity": 1}],
        },
    )
    assert sold.status_code == 201, sold.get_json()
    with app.app_context():
        db.engine.dispose()
    return {"photo": photo, "claim": awarded.get_json()[0]["id"]}


def snapshot(url: str) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = {
                name: [
                    tuple(json.dumps(v) if isinstance(v, list) else v for v in row)
                    for row in conn.execute(text(sql))
                ]
                for name, sql in COMPARED.items()
            }
            rows["counts"] = {
                table.name: conn.scalar(select(func.count()).select_from(table))
                for table in Base.metadata.sorted_tables
            }
            rows["revision"] = conn.scalar(text("SELECT version_num FROM alembic_version"))
    finally:
        engine.dispose()
    return rows


def job_run(url: str, name: str) -> tuple[int, int, bool] | None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT runs, failures, last_ok FROM job_runs WHERE name = :name"),
                {"name": name},
            ).first()
    finally:
        engine.dispose()
    return None if row is None else (row[0], row[1], bool(row[2]))


def file_hashes(directory: Path) -> dict[str, str]:
    return {
        path.relative_to(directory).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def test_a_backup_restored_into_a_fresh_database_is_the_same(
    tmp_path: Path, source: str, target: str
) -> None:
    source_uploads, target_uploads = tmp_path / "uploads", tmp_path / "restored-uploads"
    run_ok(source, source_uploads, "db", "upgrade")
    run_ok(source, source_uploads, "demo")
    made = add_activity(source, source_uploads)
    before = snapshot(source)
    photos = file_hashes(source_uploads)
    assert len(photos) == 1 and before["counts"]["redemptions"] == 1
    assert any(
        claim[0] == made["claim"] and str(made["photo"]) in claim[4] for claim in before["claims"]
    )

    # Pictures the render cache keeps in UPLOAD_DIR are drawn again, not backed up.
    (source_uploads / "render-cache").mkdir()
    (source_uploads / "render-cache" / f"board-{'0' * 32}.png").write_bytes(b"png")

    backup_dir = tmp_path / "backups" / "2026-12-03"
    said = run_ok(source, source_uploads, "backup", str(backup_dir))
    assert "1 photo(s)" in said
    assert job_run(source, "backup") == (1, 0, True)
    manifest = json.loads((backup_dir / "manifest.json").read_text())
    database_file = "database.dump" if source.startswith("postgres") else "database.sqlite3"
    assert set(manifest["files"]) == {database_file, "uploads.tar"}
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == hashlib.sha256((backup_dir / name).read_bytes()).hexdigest()
    assert manifest["alembic_revision"] == before["revision"]
    assert manifest["counts"]["ledger_entries"] == before["counts"]["ledger_entries"]
    assert manifest["uploads"] == 1

    said = run_ok(target, target_uploads, "restore", str(backup_dir))
    assert "match the manifest" in said
    after = snapshot(target)
    for name in [*COMPARED, "counts", "revision"]:
        assert after[name] == before[name], name
    verified = run_ok(target, target_uploads, "ledger", "verify")
    assert verified.startswith("OK:")
    assert file_hashes(target_uploads) == photos
    # the restored service serves the photo it stored
    assert {row[1] for row in after["uploads"]} == set(photos)


def test_restore_refuses_a_non_empty_database_and_a_damaged_backup(
    tmp_path: Path, source: str, target: str
) -> None:
    uploads = tmp_path / "uploads"
    run_ok(source, uploads, "db", "upgrade")  # tables, even empty ones, make it not empty
    backup_dir = tmp_path / "backup"
    run_ok(source, uploads, "backup", str(backup_dir))

    # A second backup into the same directory would mix two moments: refused.
    again = flask(source, uploads, "backup", str(backup_dir))
    assert again.returncode != 0 and "not empty" in again.stderr
    assert job_run(source, "backup") == (2, 1, False)  # what /metrics reports

    before = snapshot(source)
    onto_itself = flask(source, tmp_path / "other-uploads", "restore", str(backup_dir))
    assert onto_itself.returncode != 0
    assert onto_itself.stderr.strip().count("\n") == 0  # one line
    assert "not empty" in onto_itself.stderr and "--force" in onto_itself.stderr
    assert snapshot(source) == before

    dump = next(p for p in backup_dir.iterdir() if p.name.startswith("database."))
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    damaged = flask(target, tmp_path / "restored-uploads", "restore", str(backup_dir))
    assert damaged.returncode != 0
    assert "sha256" in damaged.stderr and damaged.stderr.strip().count("\n") == 0
    engine = create_engine(target)
    try:
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT 1")) == 1
            assert inspect(conn).get_table_names() == []  # nothing was restored
    finally:
        engine.dispose()


def test_dated_backups_are_pruned_by_their_manifest_and_the_newest_is_kept(
    tmp_path: Path,
) -> None:
    now = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)

    def made(days_ago: int) -> Path:
        when = now - timedelta(days=days_ago)
        directory = backup.dated_directory(tmp_path, when)
        directory.mkdir()
        (directory / "manifest.json").write_text(json.dumps({"created_at": when.isoformat()}))
        return directory

    fresh, old, older = made(1), made(15), made(30)
    stranger = tmp_path / "notes"  # not a backup: no manifest
    stranger.mkdir()
    naive = tmp_path / "hand-made"  # a manifest without a time zone is not ours either
    naive.mkdir()
    (naive / "manifest.json").write_text(json.dumps({"created_at": "2026-01-01T00:00:00"}))
    assert fresh.name == "20261202T020000Z"
    assert sorted(backup.prune_backups(tmp_path, now, keep_days=14)) == sorted([old, older])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([fresh.name, "notes", "hand-made"])
    # However old, the newest backup stays: a county whose backups stopped keeps the last.
    assert backup.prune_backups(tmp_path, now + timedelta(days=100), keep_days=14) == []
    assert fresh.exists()
