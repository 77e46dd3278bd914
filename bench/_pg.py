"""What the benchmarks share: a scratch PostgreSQL database of their own (created under a
unique name, dropped at the end, also on failure), its schema, and the app under gunicorn on
127.0.0.1 against it.

Run from a benchmark script, which puts the repository root on sys.path first."""

from __future__ import annotations

import argparse
import http.client
import os
import re
import secrets
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import psycopg

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
DEFAULT_POSTGRES = os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


def add_postgres_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--postgres",
        default=DEFAULT_POSTGRES,
        help="server URL without a database name (env BENCH_POSTGRES)",
    )


# ---- the database ---------------------------------------------------------------------------


@contextmanager
def scratch_database(base_url: str, label: str = "bench") -> Iterator[str]:
    """A new, empty database; yields its URL and drops it (WITH FORCE: a killed server may
    leave connections behind) when done."""
    name = f"vp_{label}_{os.getpid()}_{secrets.token_hex(3)}"
    base = base_url.rstrip("/")
    with psycopg.connect(base + "/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(base + "/postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def create_schema(url: str) -> None:
    """The schema straight from the models (quick; the migrations build the same one)."""
    from points.db import make_engine
    from points.models import Base

    engine = make_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()


def migrate(url: str, secret: str) -> None:
    """The schema as a deployment gets it: `flask db upgrade` (the Alembic migrations)."""
    subprocess.run(
        [str(ROOT / ".venv/bin/flask"), "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT,
        env=server_env(url, secret),
        check=True,
        capture_output=True,
    )


def pgbench(url: str, *args: str) -> str:
    """Run /usr/bin/pgbench (or $PGBENCH) against `url` with `args`; its output (stdout and
    stderr together: pgbench prints its progress on stderr)."""
    done = subprocess.run(
        [os.environ.get("PGBENCH", "pgbench"), *args, url],
        capture_output=True,
        text=True,
    )
    output = done.stdout + done.stderr
    if done.returncode != 0:  # what it said, not only that it failed
        raise RuntimeError(f"pgbench {' '.join(args)} exited with {done.returncode}:\n{output}")
    return output


def pgbench_tps(output: str) -> float:
    """The transactions per second a `pgbench` run printed (without the initial connection
    time where it says so: PostgreSQL 14 and later)."""
    found = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", output)
    found = found or re.search(r"tps = ([0-9.]+)", output)
    if found is None:
        raise RuntimeError(f"no tps in pgbench's output:\n{output}")
    return float(found.group(1))


def checkpoint(url: str) -> None:
    """Write out what earlier phases left dirty, so that their checkpoint does not land in
    the next phase's timing (superuser; the benchmarks connect as postgres)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


# ---- processes ------------------------------------------------------------------------------


def peak_rss_mb(pid: int | str = "self") -> float:
    """The peak resident set of a process so far (VmHWM in /proc/<pid>/status), in MiB; 0
    if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) / 1024 if found else 0.0


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes so far (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def machine_cpu_seconds() -> float:
    """Busy CPU time of the whole machine so far, every core (Linux /proc/stat): user, nice,
    system, irq, softirq, steal."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    busy = sum(int(fields[i]) for i in (1, 2, 3, 6, 7, 8))
    return busy / os.sysconf("SC_CLK_TCK")


def backend_pids(url: str) -> list[int]:
    """The PostgreSQL backends serving the database of `url` now (but this query's)."""
    with psycopg.connect(url) as conn:
        return [
            row[0]
            for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
        ]


def worker_pids(master: int) -> list[int]:
    """The gunicorn workers: the master's children now (empty if the master is gone)."""
    try:
        children = Path(f"/proc/{master}/task/{master}/children").read_text()
    except OSError:
        return []
    return [int(pid) for pid in children.split()]


def workers_peak_rss_mb(master: int) -> float:
    """The largest peak RSS among the master's live workers, in MiB: read it before the
    server stops (a worker's figure goes with it)."""
    return max((peak_rss_mb(pid) for pid in worker_pids(master)), default=0.0)


# ---- the server -----------------------------------------------------------------------------


def server_env(url: str, secret: str) -> dict[str, str]:
    """Production settings against `url`. REDIS_URL is dropped: rate limits stay in each
    worker's memory, as the benchmarks were measured."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    return {
        **env,
        "DATABASE_URL": url,
        "SECRET_KEY": secret,
        "APP_ENV": "production",
        "PUBLIC_BASE_URL": "https://jf.example.gov.cn",
    }


def free_port(candidates: Iterable[int] = (0,)) -> int:
    """The first of `candidates` free on HOST (0: any the kernel picks)."""
    for candidate in candidates:
        with socket.socket() as sock:
            try:
                sock.bind((HOST, candidate))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError(f"no free port among {list(candidates)}")


def spawn_gunicorn(
    env: dict[str, str],
    port: int,
    workers: int,
    *,
    log: IO[bytes] | None = None,
    own_group: bool = False,
) -> subprocess.Popen[bytes]:
    """`gunicorn wsgi:app` with sync workers. `own_group`: in a process group of its own,
    so that the master and its workers can be killed together."""
    command = [
        str(ROOT / ".venv/bin/gunicorn"),
        "--workers",
        str(workers),
        "--bind",
        f"{HOST}:{port}",
        "--log-level",
        "warning",
        "wsgi:app",
    ]
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=own_group
    )


def wait_until_up(port: int, server: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if request(port, "GET", "/healthz", timeout=5)[0] == 200:
                return
        except (OSError, http.client.HTTPException):
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            raise RuntimeError("gunicorn did not come up")
        time.sleep(0.1)


def stop(server: subprocess.Popen[bytes], timeout: float = 15) -> None:
    server.terminate()
    try:
        server.wait(timeout)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@contextmanager
def gunicorn(url: str, secret: str, workers: int) -> Iterator[tuple[int, int]]:
    """The app on a free port; yields (port, master pid) and stops it at the end."""
    port = free_port()
    server = spawn_gunicorn(server_env(url, secret), port, workers)
    try:
        wait_until_up(port, server)
        yield port, server.pid
    finally:
        stop(server)


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, bytes]:
    status, _, content = fetch(port, method, path, body, headers, timeout)
    return status, content


def fetch(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """`request`, with the response's headers too (a console login's cookies)."""
    # gunicorn's sync workers close every connection, so each request opens its own.
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank `p`th percentile (0-100) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]
