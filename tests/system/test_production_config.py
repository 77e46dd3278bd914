"""Production refuses settings that would reach paper or lose photos (PUBLIC_BASE_URL unset,
an UPLOAD_DIR it cannot write), and warns at start of those almost surely a mistake (a
loopback PUBLIC_BASE_URL, SQLite, no WeChat). Development and tests keep their defaults."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from backend import create_app
from backend.config import DEV_PUBLIC_BASE_URL, ConfigError, check_upload_dir, is_loopback
from tests.factories import SECRET

ROOT = Path(__file__).resolve().parents[2]
GOOD = {
    "APP_ENV": "production",
    "SECRET_KEY": SECRET,
    "PUBLIC_BASE_URL": "https://jf.example.gov.cn",
    "DATABASE_URL": "postgresql://village_points@db.internal/village_points",
    "WECHAT_APPID": "wx0123456789abcdef",
    "WECHAT_SECRET": "not-a-real-secret",
}


@pytest.fixture()
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """A production environment with every setting right; each test spoils one."""
    for name, value in {**GOOD, "UPLOAD_DIR": str(tmp_path / "uploads")}.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def warnings_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "PRODUCTION SETTINGS" in r.getMessage()
    ]


def test_production_refuses_to_start_without_public_base_url(
    environment: pytest.MonkeyPatch,
) -> None:
    environment.delenv("PUBLIC_BASE_URL")
    with pytest.raises(ConfigError, match="^PUBLIC_BASE_URL must be set in production"):
        create_app()
    environment.setenv("PUBLIC_BASE_URL", "jf.example.gov.cn")
    with pytest.raises(ConfigError, match="PUBLIC_BASE_URL must start with https://"):
        create_app()


@pytest.mark.parametrize("env", ["development", "testing"])
def test_development_and_tests_keep_the_default_address(
    environment: pytest.MonkeyPatch, env: str, caplog: pytest.LogCaptureFixture
) -> None:
    environment.setenv("APP_ENV", env)
    for name in ("PUBLIC_BASE_URL", "DATABASE_URL", "WECHAT_APPID", "WECHAT_SECRET"):
        environment.delenv(name)
    with caplog.at_level(logging.WARNING):
        app = create_app()
    assert app.config["PUBLIC_BASE_URL"] == DEV_PUBLIC_BASE_URL == "http://127.0.0.1:5000"
    assert warnings_logged(caplog) == []


def test_production_with_good_settings_starts_without_warnings(
    environment: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        app = create_app()
    assert app.config["PUBLIC_BASE_URL"] == "https://jf.example.gov.cn"
    assert warnings_logged(caplog) == []


def test_production_warns_of_loopback_sqlite_and_no_wechat(
    environment: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    environment.setenv("PUBLIC_BASE_URL", "http://127.0.0.1:5000")
    environment.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/v.sqlite3")
    environment.delenv("WECHAT_SECRET")
    with caplog.at_level(logging.WARNING):
        create_app()
    logged = warnings_logged(caplog)
    assert len(logged) == 3, logged
    assert "PUBLIC_BASE_URL is http://127.0.0.1:5000, a loopback address" in logged[0]
    assert "DATABASE_URL is SQLite" in logged[1]
    assert "WECHAT_APPID/WECHAT_SECRET are not set" in logged[2]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("localhost", True),
        ("::1", True),
        ("0.0.0.0", True),
        ("jf.example.gov.cn", False),
        ("10.0.0.5", False),
        ("", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_upload_dir_is_made_when_missing(environment: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "mnt" / "uploads"
    environment.setenv("UPLOAD_DIR", str(path))
    create_app()
    assert path.is_dir()
    assert list(path.iterdir()) == []  # the write check leaves nothing behind


def test_production_refuses_an_upload_dir_it_cannot_make(
    environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    for path in (tmp_path / "a-file", tmp_path / "a-file" / "uploads"):
        environment.setenv("UPLOAD_DIR", str(path))
        with pytest.raises(
            ConfigError, match=f"^UPLOAD_DIR {path} is not a directory this service can write: "
        ):
            create_app()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory")
def test_production_refuses_an_upload_dir_it_cannot_write(tmp_path: Path) -> None:
    path = tmp_path / "uploads"
    path.mkdir(mode=0o555)
    try:
        with pytest.raises(ConfigError, match="Permission denied"):
            check_upload_dir(str(path))
    finally:
        path.chmod(0o755)


def gunicorn(tmp_path: Path, **env: str) -> subprocess.Popen[bytes]:
    full = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        **GOOD,
        "DATABASE_URL": f"sqlite:///{tmp_path}/v.sqlite3",
        "UPLOAD_DIR": str(tmp_path / "uploads"),
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", "1", "--bind", "127.0.0.1:0", "wsgi:app"],
        cwd=ROOT,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_gunicorn_stops_with_one_line_on_an_upload_dir_it_cannot_make(tmp_path: Path) -> None:
    (tmp_path / "nfs-not-mounted").write_text("")
    server = gunicorn(tmp_path, UPLOAD_DIR=str(tmp_path / "nfs-not-mounted" / "uploads"))
    output, _ = server.communicate(timeout=120)
    assert server.returncode != 0
    line = (
        f"UPLOAD_DIR {tmp_path}/nfs-not-mounted/uploads is not a directory this service "
        "can write: Not a directory"
    )
    assert line in output.decode().splitlines()
    assert "Traceback" not in output.decode()


def test_gunicorn_logs_the_warnings_at_start(tmp_path: Path) -> None:
    server = gunicorn(tmp_path, PUBLIC_BASE_URL="http://localhost:8000", WECHAT_APPID="")
    output = b""
    try:
        deadline = time.monotonic() + 60
        while b"WECHAT_APPID/WECHAT_SECRET" not in output and time.monotonic() < deadline:
            assert server.stdout is not None
            output += server.stdout.readline()
            assert server.poll() is None, output.decode()
    finally:
        server.terminate()
        rest, _ = server.communicate(timeout=30)
    text = (output + rest).decode()
    for warning in (
        "PUBLIC_BASE_URL is http://localhost:8000, a loopback address",
        "DATABASE_URL is SQLite",
        "WECHAT_APPID/WECHAT_SECRET are not set",
    ):
        assert f"WARNING in __init__: PRODUCTION SETTINGS: {warning}" in text, text


def test_pages_link_static_files_by_their_content(client: FlaskClient) -> None:
    """nginx serves /static/ as immutable: a changed file must come under a new address."""
    import hashlib

    page = client.get("/q/AbC123").get_data(as_text=True)
    digest = hashlib.sha256((ROOT / "backend/static/css/public.css").read_bytes()).hexdigest()
    assert f'href="/static/css/public.css?v={digest[:12]}"' in page
    css = client.get(f"/static/css/public.css?v={digest[:12]}")
    css.close()
    assert css.status_code == 200
