"""What every gunicorn worker holds from its start: a library that only one export needs is
imported by that export, not by the app (each is megabytes of every worker's memory)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Imported where it is used: openpyxl (5.5 MB, 175 modules) by the settlement export.
NOT_AT_START = ("openpyxl",)


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
