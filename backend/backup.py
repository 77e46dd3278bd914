"""Backing up and restoring the database and the photos (UPLOAD_DIR), with a manifest that
lets a restore check what it brings back; the commands `flask backup DIR` and `flask restore
DIR` are in backend/cli/.

DIR holds:
  database.dump     PostgreSQL: `pg_dump -Fc` (custom format, one consistent snapshot), or
  database.sqlite3  SQLite: a copy made by SQLite's online backup API;
  uploads.tar       the upload directory (photos are JPEG already: no compression);
  manifest.json     when, the schema's Alembic revision, the rows of every table (counted in
                    the dump's own snapshot), the number of photos, each file's sha256.

The database is dumped before the photos are copied: a photo's file is written before its
row is committed, so every upload row in the dump has its file in the tarball (a photo
uploaded in between is an unused extra file, never a missing one)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.engine.url import URL

from points.models import Base

from . import render_cache

MANIFEST = "manifest.json"
PG_DUMP_FILE = "database.dump"
SQLITE_FILE = "database.sqlite3"
UPLOADS_FILE = "uploads.tar"
FORMAT = 1
PG_BIN = os.environ.get("PG_BIN", "/usr/bin")  # where pg_dump and pg_restore are


class BackupError(click.ClickException):
    """One line on stderr, exit status 1."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pg_command(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq connection URI without the password (which goes in PGPASSWORD, so it never
    shows in `ps`), and the environment to run pg_dump / pg_restore in."""
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    conninfo = url.set(drivername="postgresql", password=None)
    return conninfo.render_as_string(hide_password=False), env


def _run(args: list[str], env: dict[str, str]) -> None:
    try:
        done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise BackupError(
            f"{args[0]} not found (install postgresql-client, or set PG_BIN)"
        ) from exc
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise BackupError(f"{Path(args[0]).name} failed: {lines[0] if lines else done.returncode}")


def _counts(conn: Connection) -> dict[str, int]:
    present = set(inspect(conn).get_table_names())
    return {
        table.name: int(conn.execute(text(f'SELECT COUNT(*) FROM "{table.name}"')).scalar_one())
        for table in Base.metadata.sorted_tables
        if table.name in present
    }


def _revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _dump_postgres(url: URL, target: Path) -> tuple[dict[str, int], str | None]:
    """pg_dump in the snapshot of a transaction that counts the rows first: the manifest's
    counts are those of the dump, whatever is written meanwhile."""
    engine = create_engine(url, isolation_level="REPEATABLE READ")
    try:
        with engine.connect() as conn, conn.begin():
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            snapshot = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
            counts, revision = _counts(conn), _revision(conn)
            conninfo, env = _pg_command(url)
            # the snapshot lives as long as this transaction: pg_dump must end first
            _run(
                [
                    f"{PG_BIN}/pg_dump",
                    "--format=custom",
                    f"--snapshot={snapshot}",
                    f"--file={target / PG_DUMP_FILE}",
                    f"--dbname={conninfo}",
                ],
                env,
            )
    finally:
        engine.dispose()
    return counts, revision


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up or restored")
    return Path(url.database)


def _dump_sqlite(url: URL, target: Path) -> tuple[dict[str, int], str | None]:
    source = sqlite3.connect(_sqlite_path(url))
    copy = sqlite3.connect(target / SQLITE_FILE)
    try:
        source.backup(copy)  # page by page, consistent while the service writes
    finally:
        copy.close()
        source.close()
    engine = create_engine(f"sqlite:///{target / SQLITE_FILE}")
    try:
        with engine.connect() as conn:
            return _counts(conn), _revision(conn)
    finally:
        engine.dispose()


def _tar_uploads(upload_dir: Path, target: Path) -> int:
    files = 0
    with tarfile.open(target / UPLOADS_FILE, "w") as tar:
        if upload_dir.is_dir():
            for path in sorted(upload_dir.rglob("*")):
                # Not a half-written tmp, nor a picture the render cache can draw again.
                if (
                    path.is_file()
                    and not path.name.startswith(".")
                    and path.relative_to(upload_dir).parts[0] != render_cache.SUBDIR
                ):
                    tar.add(path, arcname=path.relative_to(upload_dir).as_posix())
                    files += 1
    return files


def make_backup(url: URL, upload_dir: Path, target: Path, now: datetime) -> dict[str, Any]:
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"{target} is not empty; back up into a new directory")
    target.mkdir(parents=True, exist_ok=True)
    if url.get_backend_name() == "postgresql":
        counts, revision = _dump_postgres(url, target)
        database_file = PG_DUMP_FILE
    else:
        counts, revision = _dump_sqlite(url, target)
        database_file = SQLITE_FILE
    photos = _tar_uploads(upload_dir, target)
    manifest = {
        "format": FORMAT,
        "created_at": now.astimezone(UTC).isoformat(),
        "database": url.get_backend_name(),
        "alembic_revision": revision,
        "counts": counts,
        "uploads": photos,
        "files": {
            name: {"sha256": sha256_of(target / name), "bytes": (target / name).stat().st_size}
            for name in (database_file, UPLOADS_FILE)
        },
    }
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest


def read_manifest(source: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((source / MANIFEST).read_text())
    except FileNotFoundError as exc:
        raise BackupError(f"{source / MANIFEST} not found: not a backup directory") from exc
    except ValueError as exc:
        raise BackupError(f"{source / MANIFEST} is not valid JSON") from exc
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{source / MANIFEST}: unknown format {manifest.get('format')!r}")
    for name, expected in manifest["files"].items():
        path = source / name
        if not path.is_file():
            raise BackupError(f"{path} is missing")
        if sha256_of(path) != expected["sha256"]:
            raise BackupError(f"{path} does not match its sha256 in the manifest (damaged)")
    return manifest


def _tables_of(url: URL) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return inspect(conn).get_table_names()
    finally:
        engine.dispose()


def _restore_postgres(url: URL, source: Path, force: bool) -> None:
    conninfo, env = _pg_command(url)
    # --no-owner / --no-privileges: the restoring role owns what it restores, whichever
    # role made the dump; one transaction, so a failed restore leaves the database as it was.
    args = [
        f"{PG_BIN}/pg_restore",
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        "--single-transaction",
        f"--dbname={conninfo}",
    ]
    if force:
        args += ["--clean", "--if-exists"]
    _run([*args, str(source / PG_DUMP_FILE)], env)


def _restore_sqlite(url: URL, source: Path) -> None:
    path = _sqlite_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    backup = sqlite3.connect(source / SQLITE_FILE)
    target = sqlite3.connect(path)
    try:
        backup.backup(target)  # replaces the target's pages wholly
    finally:
        target.close()
        backup.close()


def _restore_uploads(source: Path, upload_dir: Path, force: bool) -> int:
    if upload_dir.is_dir() and any(upload_dir.iterdir()) and not force:
        raise BackupError(
            f"UPLOAD_DIR {upload_dir} is not empty; restore into an empty directory or pass --force"
        )
    upload_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=upload_dir.parent, prefix=".restore-") as tmp:
        with tarfile.open(source / UPLOADS_FILE) as tar:
            tar.extractall(tmp, filter="data")  # no absolute paths, links or `..`
        files = 0
        for path in sorted(Path(tmp).rglob("*")):
            if path.is_file():
                dest = upload_dir / path.relative_to(tmp)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(path, dest)
                files += 1
    return files


def restore_backup(url: URL, upload_dir: Path, source: Path, force: bool) -> dict[str, Any]:
    manifest = read_manifest(source)
    if manifest["database"] != url.get_backend_name():
        raise BackupError(
            f"the backup is of a {manifest['database']} database; DATABASE_URL "
            f"is {url.get_backend_name()}"
        )
    tables = _tables_of(url)
    if tables and not force:
        raise BackupError(
            f"the database is not empty ({len(tables)} tables); restore into a "
            "new database or pass --force to replace what the backup holds"
        )
    if upload_dir.is_dir() and any(upload_dir.iterdir()) and not force:
        raise BackupError(
            f"UPLOAD_DIR {upload_dir} is not empty; restore into an empty directory or pass --force"
        )
    if url.get_backend_name() == "postgresql":
        _restore_postgres(url, source, force)
    else:
        _restore_sqlite(url, source)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            counts = _counts(conn)
    finally:
        engine.dispose()
    wrong = {
        name: (n, counts.get(name))
        for name, n in manifest["counts"].items()
        if counts.get(name) != n
    }
    if wrong:
        name, (expected, got) = next(iter(wrong.items()))
        raise BackupError(
            f"restored {name} has {got} rows, the backup {expected} ({len(wrong)} table(s) differ)"
        )
    photos = _restore_uploads(source, upload_dir, force)
    if photos != manifest["uploads"]:
        raise BackupError(f"restored {photos} photos, the backup holds {manifest['uploads']}")
    return manifest


def dated_directory(root: Path, now: datetime) -> Path:
    """Where a scheduled backup goes under ROOT: one directory per run, named by its UTC
    time, so that names sort by age and two runs never share one."""
    return root / now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def prune_backups(root: Path, now: datetime, keep_days: int) -> list[Path]:
    """Remove the backups under ROOT made more than KEEP_DAYS ago, by the time in their
    manifest; a directory without a readable manifest is not ours and is left alone. The
    newest backup is never removed, however old."""
    made = []
    for child in root.iterdir() if root.is_dir() else ():
        try:
            manifest = json.loads((child / "manifest.json").read_text())
            created_at = datetime.fromisoformat(manifest["created_at"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if created_at.tzinfo is not None:  # ours always carry one; a hand-made one may not
            made.append((created_at, child))
    made.sort()
    removed = []
    for created_at, child in made[:-1]:
        if now - created_at > timedelta(days=keep_days):
            shutil.rmtree(child)
            removed.append(child)
    return removed
