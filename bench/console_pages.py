"""The staff console's pages on the demo township: how long does the server take for each?

Builds the demo township (`flask demo`: three villages, their households, last months'
awards, the activities) in a fresh SQLite database, or with --database-url in a scratch
PostgreSQL database of its own on that server (created under a unique name, dropped at the
end, also on failure). Logs in with Flask's test client as each demo role (cadre, township
admin, county admin, clerk) and requests every console page (the list of
tests/browser/screenshots.py, on 清水村) N times after one unmeasured request. The time is
the server's: the test client calls the app in this process, no network in between.

A page a role may not open (403), or that this checkout does not have yet or the role does
not see (404), is skipped with a note. The goal is under 100 ms at p50 for every page.

    .venv/bin/python bench/console_pages.py [--runs 20] [--database-url postgresql://postgres@127.0.0.1:5432]

Prints a table (page, role, p50 ms, max ms); the last line is `worst_p50_ms=<the slowest
page's p50>`."""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flask import Flask  # noqa: E402
from flask.testing import FlaskClient  # noqa: E402

from backend.extensions import db  # noqa: E402
from bench._pg import peak_rss_mb, scratch_database  # noqa: E402
from points.demo import DEMO_PASSWORD  # noqa: E402
from tests.browser.screenshots import ConsolePage, console_pages, demo_app  # noqa: E402

# Each demo role, by the login that has it.
ROLES = (
    ("cadre", "cadre_qs"),
    ("township_admin", "township_admin"),
    ("county_admin", "county_admin"),
    ("clerk", "clerk_qs"),
)
GOAL_MS = 100
_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


def log_in(app: Flask, username: str) -> FlaskClient:
    """A test client logged into the console through its login form."""
    client = app.test_client()
    form = client.get("/console/login").text
    found = _CSRF.search(form)
    assert found, "no csrf_token on the login page"
    response = client.post(
        "/console/login",
        data={"username": username, "password": DEMO_PASSWORD, "csrf_token": found.group(1)},
    )
    assert response.status_code == 303, f"{username} could not log in: {response.status_code}"
    return client


def measure(client: FlaskClient, path: str, runs: int) -> tuple[int, list[float]]:
    """The page's status, and its times in ms (empty unless it answered 200)."""
    status = client.get(path).status_code  # unmeasured: the first request warms the caches
    if status != 200:
        return status, []
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code} on a repeat")
    return status, times


def run(app: Flask, runs: int) -> float:
    with app.app_context():
        pages = console_pages(db.session)
        db.session.rollback()
    clients = {username: log_in(app, username) for _, username in ROLES}
    anonymous = app.test_client()
    rows: list[tuple[str, str, float, float]] = []
    notes: list[str] = []
    for page in pages:
        who: list[tuple[str, FlaskClient]] = (
            [(role, clients[username]) for role, username in ROLES]
            if page.user is not None
            else [("-", anonymous)]
        )
        refused = []
        for role, client in who:
            status, times = measure(client, page.path, runs)
            if times:
                rows.append((page.name, role, statistics.median(times), max(times)))
            else:
                refused.append((role, status))
        if refused and all(status == 404 for _, status in refused) and len(refused) == len(who):
            notes.append(f"skipped {page.name} ({page.path}): 404, not in this checkout")
        else:
            notes += [_skipped(page, role, status) for role, status in refused]
    print(f"{'page':<16} {'role':<16} {'p50 ms':>8} {'max ms':>8}")
    for name, role, p50, worst in rows:
        flag = "  > goal" if p50 >= GOAL_MS else ""
        print(f"{name:<16} {role:<16} {p50:>8.1f} {worst:>8.1f}{flag}")
    for note in notes:
        print(note)
    return max((p50 for _, _, p50, _ in rows), default=0.0)


def _skipped(page: ConsolePage, role: str, status: int) -> str:
    reason = {
        403: "not for this role",
        404: "not this role's to see",
    }.get(status, "unexpected")
    return f"skipped {page.name} ({page.path}) as {role}: {status} ({reason})"


@contextmanager
def database(server_url: str | None, workdir: str) -> Iterator[str]:
    """A fresh SQLite file, or a scratch database on the PostgreSQL server of `server_url`
    (its database name, if any, is ignored: the demo needs an empty database)."""
    if server_url is None:
        yield f"sqlite:///{workdir}/demo.sqlite3"
        return
    parts = urlsplit(server_url)
    base = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    with scratch_database(base, label="console") as url:
        yield url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="timed requests per page and role")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server (postgresql://user@host:port): run in a scratch database "
        "there instead of SQLite",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vp-bench-console-") as workdir:
        with database(args.database_url, workdir) as url:
            print(f"database: {urlsplit(url).scheme}, {args.runs} runs per page and role")
            app = demo_app(url, workdir)
            try:
                worst = run(app, args.runs)
            finally:
                with app.app_context():
                    db.engine.dispose()
    # The work ran in this process (no gunicorn here): its peak memory stands for a worker's.
    print(f"process_peak_rss_mb={peak_rss_mb():.1f}")
    print(f"worst_p50_ms={worst:.1f}")


if __name__ == "__main__":
    main()
