"""The files under deploy/ agree with the app: every timer runs a command that exists, the
units are valid for systemd, the gunicorn config's address is the nginx upstream, and the
settings example holds only settings the app reads."""

from __future__ import annotations

import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask

from backend import settings_file
from backend.config import from_environment

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SYSTEMD = DEPLOY / "systemd"
VENV_BIN = Path(sys.executable).parent  # the virtualenv running the tests
# the scheduled jobs (README, "Every day: what runs when"): what each timer starts
JOBS = {
    "claims-post-due": ["claims", "post-due"],
    "rankings-close-due": ["rankings", "close-due"],
    "redemptions-expire": ["redemptions", "expire"],
    "ledger-verify": ["ledger", "verify"],
    "points-reset": ["points", "reset"],
    "backup": ["backup", "--dated", "--keep-days", "14", "/var/backups/village-points"],
}


def unit(name: str) -> dict[str, str]:
    values = {}
    for line in (SYSTEMD / name).read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            values[key] = value
    return values


def test_each_job_has_a_timer_and_runs_its_command(app: Flask) -> None:
    timers = sorted(p.name for p in SYSTEMD.glob("village-points-*.timer"))
    assert timers == sorted(f"village-points-{job}.timer" for job in JOBS)
    runner = app.test_cli_runner()
    for job, command in JOBS.items():
        service = unit(f"village-points-{job}.service")
        assert service["ExecStart"] == (
            "/srv/village-points/.venv/bin/flask --app wsgi " + " ".join(command)
        )
        assert service["Environment"] == "VILLAGE_POINTS_ENV=/etc/village-points.env"
        assert service["Type"] == "oneshot"
        assert unit(f"village-points-{job}.timer")["OnCalendar"]
        assert runner.invoke(args=[*command[:2], "--help"]).exit_code == 0, command


def test_the_service_runs_gunicorn_with_the_shipped_config() -> None:
    service = unit("village-points.service")
    assert service["EnvironmentFile"] == "/etc/village-points.env"
    assert service["ExecStart"].endswith(
        "gunicorn -c /srv/village-points/deploy/gunicorn.conf.py wsgi:app"
    )
    gunicorn = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))
    site = (DEPLOY / "nginx" / "village-points.conf").read_text()
    assert f"server {gunicorn['bind']} " in site  # the nginx upstream
    assert gunicorn["forwarded_allow_ips"] == "127.0.0.1"
    assert Path(gunicorn["errorlog"]).parent == Path("/var/log/village-points")
    assert "/var/log/village-points/*.log" in (DEPLOY / "logrotate" / "village-points").read_text()


def test_the_nginx_body_limit_is_max_content_length(tmp_path: Path) -> None:
    site = (DEPLOY / "nginx" / "village-points.conf").read_text()
    size = re.search(r"client_max_body_size (\d+)m;", site)
    assert (
        size
        and int(size.group(1)) * 1024 * 1024
        == from_environment(str(tmp_path))["MAX_CONTENT_LENGTH"]
    )


def test_the_settings_example_names_only_settings_the_app_reads(tmp_path: Path) -> None:
    text = (DEPLOY / "village-points.env.example").read_text()
    names = set(settings_file.parse(text, "example"))
    names |= {
        line[1:].partition("=")[0] for line in text.splitlines() if re.match(r"#[A-Z_]+=", line)
    }
    known = set(from_environment(str(tmp_path))) | {"DATABASE_URL", "GUNICORN_WORKERS"}
    assert names <= known, names - known


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_the_units_are_valid_for_systemd(tmp_path: Path) -> None:
    """`systemd-analyze verify`, with the checkout's paths (the real ones do not exist
    here); it also checks every OnCalendar expression."""
    for path in SYSTEMD.iterdir():
        (tmp_path / path.name).write_text(
            path.read_text().replace("/srv/village-points/.venv/bin/", f"{VENV_BIN}/")
        )
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *sorted(str(p) for p in tmp_path.iterdir())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # a line naming our units is a problem (an unknown key, a setting systemd ignores)
    problems = [line for line in done.stderr.splitlines() if "village-points" in line]
    assert done.returncode == 0 and not problems, done.stderr
