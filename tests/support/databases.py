"""Databases of a test's own, beside the suite's: a fresh PostgreSQL database on the server
of TEST_DATABASE_URL (dropped afterwards), else a new SQLite file; and the real `flask`
command run against one, as cron or an operator would run it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.factories import SECRET

REPO = Path(__file__).resolve().parents[2]
FLASK = Path(sys.executable).parent / "flask"


def is_postgres() -> bool:
    """Whether the suite runs on PostgreSQL (TEST_DATABASE_URL) rather than SQLite."""
    return os.environ.get("TEST_DATABASE_URL", "").startswith("postgres")


@contextmanager
def fresh_database(tmp_path: Path, label: str) -> Iterator[str]:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        yield f"sqlite:///{tmp_path}/{label}.sqlite3"
        return
    name = f"vp_{label}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def flask(
    database_url: str, upload_dir: Path | str, *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`flask --app wsgi ARGS…` in a process of its own, configured by its environment."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "UPLOAD_DIR": str(upload_dir),
        "APP_ENV": "testing",
        "SECRET_KEY": SECRET,
        "APP_TIMEZONE": "Asia/Shanghai",
    }
    for name in ("FLASK_APP", "REDIS_URL", "TEST_DATABASE_URL", "METRICS_TOKEN"):
        env.pop(name, None)
    return subprocess.run(
        [str(FLASK), "--app", "wsgi", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
