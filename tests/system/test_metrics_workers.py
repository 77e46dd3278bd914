"""/metrics under several gunicorn workers: with PROMETHEUS_MULTIPROC_DIR set, a scrape
answered by one worker process adds up the requests every worker answered (each process
writes its numbers to the directory). Real processes, one after the other."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.factories import SECRET
from tests.support.databases import REPO

WORKER = """
import sys
from backend import create_app
app = create_app({"TESTING": True, "APP_ENV": "testing", "SECRET_KEY": %(secret)r,
                  "SQLALCHEMY_DATABASE_URI": %(url)r})
client = app.test_client()
for _ in range(int(sys.argv[1])):
    assert client.get("/no/such/page").status_code == 404
if sys.argv[2] == "scrape":
    print(client.get("/metrics").get_data(as_text=True))
"""

UNMATCHED = 'village_points_http_requests_total{endpoint="unmatched",method="GET",status="404"}'


def worker(tmp_path: Path, requests: int, scrape: bool, multiproc: Path | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    if multiproc is not None:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(multiproc)
    code = WORKER % {"secret": SECRET, "url": f"sqlite:///{tmp_path}/workers.sqlite3"}
    done = subprocess.run(
        [sys.executable, "-c", code, str(requests), "scrape" if scrape else "-"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def count(text: str) -> float:
    [line] = [line for line in text.splitlines() if line.startswith(UNMATCHED)]
    return float(line.rsplit(" ", 1)[1])


def test_a_scrape_adds_up_every_worker_with_a_multiprocess_directory(tmp_path: Path) -> None:
    shared = tmp_path / "prometheus"
    shared.mkdir()
    worker(tmp_path, 3, False, shared)
    assert count(worker(tmp_path, 2, True, shared)) == 5
    # Without it, each worker knows only its own.
    worker(tmp_path, 3, False, None)
    assert count(worker(tmp_path, 2, True, None)) == 2
