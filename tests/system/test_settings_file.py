"""The settings file (backend/settings_file.py) and how a refused start reads: the real
`flask --app wsgi` run the way cron runs it (an empty environment but for PATH), configured
by a settings file only; a configuration mistake prints one line, never a traceback, and
exits with status 3."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from backend import settings_file
from backend.config import ConfigError
from tests.factories import SECRET

ROOT = Path(__file__).resolve().parents[2]
FLASK = (
    str(Path("/work/main/.venv/bin/flask"))
    if Path("/work/main/.venv/bin/flask").exists()
    else str(ROOT / ".venv" / "bin" / "flask")
)
CRON_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8"}


def settings(tmp_path: Path, **values: str) -> Path:
    """A production settings file: what /etc/village-points.env holds."""
    lines = {
        "APP_ENV": "production",
        "SECRET_KEY": f'"{SECRET}"',
        "DATABASE_URL": f"sqlite:///{tmp_path}/village.sqlite3",
        "PUBLIC_BASE_URL": "'https://jf.example.gov.cn'",
        "UPLOAD_DIR": str(tmp_path / "uploads"),
        "WECHAT_APPID": "wx0123456789abcdef",
        "WECHAT_SECRET": "not-a-real-secret",
        **values,
    }
    path = tmp_path / "village-points.env"
    path.write_text(
        "# written by the test, as an operator would\n\n"
        + "".join(f"{key}={value}\n" for key, value in lines.items()),
        encoding="utf-8",
    )
    return path


def flask(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLASK, "--app", "wsgi", *args],
        cwd=ROOT,
        env={**CRON_ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_refused(done: subprocess.CompletedProcess[str], line: str) -> None:
    """Status 3, nothing on stdout, exactly one line on stderr, and it says `line`."""
    assert done.returncode == 3, done.stderr
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.endswith("\n"), done.stderr
    assert "Traceback" not in done.stderr
    assert line in done.stderr, done.stderr


def test_a_command_under_cron_reads_everything_from_the_settings_file(tmp_path: Path) -> None:
    """Migrate and verify with nothing in the environment but the file's name; a variable
    set in the environment wins over the file (here the file's limit would be refused)."""
    env = {"VILLAGE_POINTS_ENV": str(settings(tmp_path, LOGIN_RATE_LIMIT="often"))}
    upgraded = flask("db", "upgrade", env={**env, "LOGIN_RATE_LIMIT": "5 per minute"})
    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / "village.sqlite3").is_file()

    verified = flask("ledger", "verify", env={**env, "LOGIN_RATE_LIMIT": "5 per minute"})
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("OK: 0 accounts, 0 entries verified")
    assert verified.stderr == ""  # a command prints no start-up warnings (cron mails them)

    # without the environment's value, the file's bad one is read, and refused
    assert_refused(flask("ledger", "verify", env=env), "LOGIN_RATE_LIMIT must be a rate limit")


def test_a_named_settings_file_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.env"
    assert_refused(
        flask("ledger", "verify", env={"VILLAGE_POINTS_ENV": str(missing)}),
        f"VILLAGE_POINTS_ENV names {missing}, which is not a file",
    )


def test_a_line_that_is_not_a_setting_is_refused_by_its_number(tmp_path: Path) -> None:
    path = settings(tmp_path)
    path.write_text(path.read_text() + "SECRET_KEY is hunter2-and-more\n")
    number = len(path.read_text().splitlines())
    done = flask("ledger", "verify", env={"VILLAGE_POINTS_ENV": str(path)})
    assert_refused(done, f"{path} line {number}: expected KEY=value")
    assert "hunter2" not in done.stderr  # the value of a line may be a secret


@pytest.mark.parametrize(
    ("values", "line"),
    [
        ({"PUBLIC_BASE_URL": ""}, "PUBLIC_BASE_URL must be set in production"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY must be set to at least 32 bytes"),
        ({"TRUSTED_PROXIES": "one"}, "TRUSTED_PROXIES must be a whole number, not 'one'"),
        ({"APP_TIMEZONE": "Mars/Olympus"}, "APP_TIMEZONE must be an IANA time zone"),
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL is not a database address"),
        # nothing listens on port 1: the database does not answer at start
        (
            {"DATABASE_URL": "postgresql://village_points@127.0.0.1:1/village_points"},
            "database error at start: connection failed",
        ),
        (
            {"DATABASE_URL": "sqlite:////nonexistent-directory/village.sqlite3"},
            "database error at start: unable to open database file",
        ),
    ],
)
def test_a_configuration_mistake_is_one_line_and_status_3(
    tmp_path: Path, values: dict[str, str], line: str
) -> None:
    env = {"VILLAGE_POINTS_ENV": str(settings(tmp_path, **values))}
    assert_refused(flask("redemptions", "expire", env=env), line)


def test_parse_reads_what_systemd_reads_alike() -> None:
    text = """
# a comment
   # an indented comment

APP_ENV=production
SECRET_KEY="with spaces and a # inside"
PUBLIC_BASE_URL='https://jf.example.gov.cn'
REDIS_URL = redis://127.0.0.1:6379/0
QR_OLD_SECRETS={"1": "old=secret"}
EMPTY=
WECHAT_SECRET=abc#def
DATABASE_URL='postgresql://vp:pa\\ss@db/vp'
"""
    assert settings_file.parse(text, "f") == {
        "APP_ENV": "production",
        "SECRET_KEY": "with spaces and a # inside",
        "PUBLIC_BASE_URL": "https://jf.example.gov.cn",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "QR_OLD_SECRETS": '{"1": "old=secret"}',
        "EMPTY": "",
        "WECHAT_SECRET": "abc#def",
        "DATABASE_URL": "postgresql://vp:pa\\ss@db/vp",  # single quotes: as written
    }


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("APP_ENV production\n", "f line 1: expected KEY=value"),
        ("\n\n1ABC=x\n", "f line 3: expected KEY=value"),
        ("export APP_ENV=production\n", "f line 1: expected KEY=value"),
        ('SECRET_KEY="unclosed\n', "f line 1: SECRET_KEY has an unclosed quote"),
        # systemd would read these backslashes as escapes, this reader as they stand
        (
            "SECRET_KEY=a\\b\n",
            "f line 1: SECRET_KEY: put a value holding a backslash in single quotes",
        ),
        (
            'SECRET_KEY="a\\nb"\n',
            "f line 1: SECRET_KEY: put a value holding a backslash in single quotes",
        ),
    ],
)
def test_parse_names_the_line_it_cannot_read(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as refused:
        settings_file.parse(text, "f")
    assert str(refused.value) == problem


def test_a_byte_order_mark_is_no_mistake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    named = tmp_path / "village-points.env"
    named.write_bytes("\ufeffAPP_TIMEZONE=Asia/Shanghai\n".encode())  # Windows Notepad
    monkeypatch.setenv(settings_file.VARIABLE, str(named))
    monkeypatch.setenv("APP_TIMEZONE", "set so that the test's end removes it again")
    monkeypatch.delenv("APP_TIMEZONE")
    assert settings_file.load(tmp_path) == named
    assert os.environ["APP_TIMEZONE"] == "Asia/Shanghai"


def test_instance_env_is_read_when_no_file_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(settings_file.VARIABLE, raising=False)
    assert settings_file.settings_path(tmp_path) is None  # no instance/.env: fine
    assert settings_file.load(tmp_path) is None
    (tmp_path / ".env").write_text("REDIS_KEY_PREFIX=from-the-file\nJWT_ISSUER=from-the-file\n")
    # set, then unset: monkeypatch restores both as they were before the test
    for name in ("REDIS_KEY_PREFIX", "JWT_ISSUER"):
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)
    monkeypatch.setenv("JWT_ISSUER", "from-the-environment")
    assert settings_file.load(tmp_path) == tmp_path / ".env"
    assert os.environ["REDIS_KEY_PREFIX"] == "from-the-file"
    assert os.environ["JWT_ISSUER"] == "from-the-environment"


def test_wsgi_looks_in_the_apps_own_instance_folder() -> None:
    """wsgi.py names ./instance before the app exists; it is Flask's instance folder."""
    from backend import create_app

    app = create_app(
        {"APP_ENV": "testing", "SECRET_KEY": SECRET, "SQLALCHEMY_DATABASE_URI": "sqlite://"}
    )
    assert Path(app.instance_path) == ROOT / "instance"
    assert (
        'settings_file.load(Path(__file__).resolve().parent / "instance")'
        in (ROOT / "wsgi.py").read_text()
    )
