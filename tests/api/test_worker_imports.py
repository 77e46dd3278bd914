"""What every gunicorn worker holds from its start: a library that only one export needs is
imported by that export, not by the app (each is megabytes of every worker's memory)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Imported where it is used: openpyxl (5.5 MB, 175 modules) by the settlement export;
# requests (5 MB, 120 modules with urllib3) by a WeChat login (backend/wechat.py);
# Flask-Migrate with alembic, mako and pygments (11 MB, 150 modules) by `flask db` and
# whatever reads app.extensions["migrate"] (backend/cli/migrations.py).
NOT_AT_START = (
    "openpyxl",
    "requests",
    "urllib3",
    "flask_migrate",
    "alembic",
    "mako",
    "pygments",
)


def test_the_app_starts_without_the_libraries_of_one_export(tmp_path: Path) -> None:
    script = f"""
import sys
from backend import create_app
create_app({{
    "TESTING": True,
    "APP_ENV": "testing",
    "SECRET_KEY": "x" * 40,
    "SQLALCHEMY_DATABASE_URI": "sqlite:///{tmp_path}/app.sqlite3",
    "RATELIMIT_STORAGE_URI": "memory://",
    "PUBLIC_BASE_URL": "https://jf.example.gov.cn",
    "UPLOAD_DIR": "{tmp_path}/uploads",
}})
print(" ".join(name for name in {NOT_AT_START!r} if name in sys.modules))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "", done.stdout


def test_flask_db_runs_flask_migrate_s_own_commands(tmp_path: Path) -> None:
    """The `db` group the app starts with is a stand-in: run, its options and commands are
    Flask-Migrate's (the real `flask` command, as deploy runs it)."""
    env = {
        **os.environ,
        "APP_ENV": "development",
        "SECRET_KEY": "x" * 40,
        "DATABASE_URL": f"sqlite:///{tmp_path}/cli.sqlite3",
        "PUBLIC_BASE_URL": "https://jf.example.gov.cn",
        "UPLOAD_DIR": str(tmp_path / "uploads"),
    }
    env.pop("REDIS_URL", None)

    def flask(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(Path(sys.executable).parent / "flask"), "--app", "wsgi", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )

    newest = max(p.name[:4] for p in (ROOT / "migrations" / "versions").glob("0*.py"))
    upgraded = flask("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    current = flask("db", "current")
    assert current.returncode == 0 and current.stdout.strip() == f"{newest} (head)"
    # The group's own option (-d) reaches Flask-Migrate's callback.
    assert flask("db", "-d", str(ROOT / "migrations"), "heads").stdout.strip() == (
        f"{newest} (head)"
    )
    assert flask("db", "-d", str(tmp_path / "nowhere"), "heads").returncode != 0
    helped = flask("db", "--help")
    assert "upgrade" in helped.stdout and "--directory" in helped.stdout
    assert "Perform database migrations." in flask("--help").stdout
