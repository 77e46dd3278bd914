"""Check-in throughput through real HTTP, against the cheapest JSON endpoint of the same server.

Creates its own PostgreSQL database, builds the schema, seeds one village with N bound
villagers and an open activity, starts the app under gunicorn (2 sync workers) on
127.0.0.1, then drives in one run:
  1. GET /healthz (one `SELECT 1`): the ceiling of this server on this machine;
  2. POST /api/v1/checkins by N distinct villagers, each with their own login;
interleaved in rounds (a slice of each per round), so a change of load on the machine
during the run weighs on both alike. It prints requests/s, p50 and p99 for both, and the
CPU time the server spent per request (gunicorn workers and their PostgreSQL backends, from
/proc), which does not depend on what else the machine is doing. The last line is
`ratio=<check-in rate ÷ healthz rate>`; the goal is at least 0.35.

Every request goes to 127.0.0.1 only; each phase is bounded in count and in time. The server
and the database are removed at the end, also on failure.

    .venv/bin/python bench/checkin_http.py [--villagers 2000] [--threads 4]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from sqlalchemy import select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

import rules  # noqa: E402
from bench._pg import (  # noqa: E402
    HOST,
    add_postgres_argument,
    create_schema,
    gunicorn,
    request,
    scratch_database,
)
from points import catalogs, sessions  # noqa: E402
from points.activities import activities  # noqa: E402
from points.db import make_engine  # noqa: E402
from points.models import (  # noqa: E402
    Household,
    RuleItem,
    Township,
    User,
    Village,
    Villager,
)
from points.scope import Actor  # noqa: E402
from points.sessions import TokenSettings  # noqa: E402
from points.tokens import TokenCodec, TokenType  # noqa: E402

SECRET = "bench-secret-" + secrets.token_hex(16)
TZ = ZoneInfo("Asia/Shanghai")


@dataclass
class Phase:
    name: str
    latencies: list[float]
    statuses: Counter[int]
    seconds: float
    cpu_seconds: float = 0.0
    db_cpu_seconds: float = 0.0

    def add(self, other: Phase, cpu: tuple[float, float]) -> None:
        self.latencies += other.latencies
        self.statuses.update(other.statuses)
        self.seconds += other.seconds
        self.cpu_seconds += cpu[0] + cpu[1]
        self.db_cpu_seconds += cpu[1]

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    def line(self) -> str:
        return (
            f"{self.name:<10} {len(self.latencies):>6} requests in {self.seconds:6.2f} s  "
            f"{self.rate:8.1f} req/s  p50 {self.percentile(0.50):7.2f} ms  "
            f"p99 {self.percentile(0.99):7.2f} ms  "
            f"mean {statistics.fmean(self.latencies) * 1000:7.2f} ms  "
            f"server CPU {self.cpu_seconds / len(self.latencies) * 1000:6.2f} ms/req "
            f"(PostgreSQL {self.db_cpu_seconds / len(self.latencies) * 1000:.2f})  "
            f"statuses {dict(sorted(self.statuses.items()))}"
        )


# ---- database -------------------------------------------------------------------------------


@dataclass
class Seeded:
    access_tokens: list[str]
    activity_token: str
    activity_id: int


def seed(url: str, villagers: int) -> Seeded:
    """One township, one village with `villagers` households (each head bound to a WeChat
    user with a fresh login), the reference catalog, and a static activity open now."""
    create_schema(url)
    engine = make_engine(url)
    settings = TokenSettings(
        secret=SECRET,
        issuer="village-points",
        audience="village-points-app",
        access_ttl=timedelta(hours=1),
        refresh_ttl=timedelta(days=1),
    )
    with Session(engine) as s:
        township = Township(name="基准镇", code="BENCH")
        s.add(township)
        s.flush()
        catalogs.install_catalog(s, None, township.id, rules.load_default_catalog())
        village = Village(township_id=township.id, name="基准村")
        s.add(village)
        s.flush()
        cadre = User(
            username="bench_cadre",
            password_hash="x",
            role="cadre",
            township_id=township.id,
            village_id=village.id,
        )
        s.add(cadre)
        users = []
        for i in range(villagers):
            household = Household(village_id=village.id, name=f"第{i}户")
            s.add(household)
            s.flush()
            head = Villager(household_id=household.id, name=f"村民{i}", relation="户主")
            s.add(head)
            s.flush()
            user = User(role="villager", openid=f"bench-{i}", villager_id=head.id)
            s.add(user)
            users.append(user)
        s.flush()
        item_id = s.scalar(select(RuleItem.id).where(RuleItem.code == "GOV-ASSEMBLY"))
        assert item_id is not None
        now = datetime.now(UTC)
        plan = activities.ActivityPlan(
            village_id=village.id,
            title="基准村民大会",
            rule_item_id=item_id,
            starts_at=now - timedelta(minutes=5),
            ends_at=now + timedelta(hours=2),
            qr_mode="static",
            step_seconds=30,
        )
        activity = activities.create_activity(s, Actor.of(s, cadre), plan, now)
        tokens = [sessions.login(s, settings, user).access_token for user in users]
        s.commit()
        activity_id = activity.id
    engine.dispose()
    code = TokenCodec.keyring(SECRET, 1).encode(TokenType.ACTIVITY, (activity_id, 0))
    return Seeded(tokens, code, activity_id)


# ---- server ---------------------------------------------------------------------------------


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


def server_pids(master: int, url: str) -> tuple[list[int], list[int]]:
    """The gunicorn workers, and the PostgreSQL backends serving this database."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    with psycopg.connect(url) as conn:
        backends = [
            row[0]
            for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
        ]
    return [int(pid) for pid in children], backends


# ---- load -----------------------------------------------------------------------------------


def drive(name: str, calls: list[Callable[[], int]], threads: int, limit_s: float) -> Phase:
    """Run the calls on a pool of threads, stopping early at `limit_s`."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + limit_s
    feed = iter(calls)

    def worker() -> None:
        while time.monotonic() < deadline:
            with lock:
                call = next(feed, None)
            if call is None:
                return
            started = time.perf_counter()
            status = call()
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                statuses[status] += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(worker) for _ in range(threads)]:
            future.result()
    return Phase(name, latencies, statuses, time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--villagers", type=int, default=2000)
    parser.add_argument(
        "--health-requests", type=int, default=None, help="default: as many as check-ins"
    )
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument(
        "--limit", type=float, default=300.0, help="seconds for all the requests at most"
    )
    add_postgres_argument(parser)
    args = parser.parse_args()

    with scratch_database(args.postgres, "bench") as url:
        started = time.perf_counter()
        seeded = seed(url, args.villagers)
        print(
            f"seeded {args.villagers} villagers and activity {seeded.activity_id} "
            f"in {time.perf_counter() - started:.1f} s"
        )
        with gunicorn(url, SECRET, args.workers) as (port, master):
            for _ in range(100):  # warm both workers, their pools and backends
                request(port, "GET", "/healthz")

            def health() -> int:
                return request(port, "GET", "/healthz")[0]

            def checkin(access: str) -> Callable[[], int]:
                body = json.dumps({"token": seeded.activity_token}).encode()
                headers = {
                    "Authorization": f"Bearer {access}",
                    "Content-Type": "application/json",
                    "X-Device-Id": "bench-" + access[-12:],
                }
                return lambda: request(port, "POST", "/api/v1/checkins", body, headers)[0]

            n_health = args.health_requests or args.villagers
            health_calls = [health] * n_health
            checkin_calls = [checkin(t) for t in seeded.access_tokens]
            healthz = Phase("healthz", [], Counter(), 0.0)
            checkins = Phase("checkin", [], Counter(), 0.0)
            deadline = time.monotonic() + args.limit
            for r in range(args.rounds):
                for phase, calls in ((healthz, health_calls), (checkins, checkin_calls)):
                    chunk = calls[
                        r * len(calls) // args.rounds : (r + 1) * len(calls) // args.rounds
                    ]
                    # Read again each time: a threaded worker's pool opens backends later.
                    pids = server_pids(master, url)
                    before = [cpu_seconds(group) for group in pids]
                    done = drive(
                        phase.name, chunk, args.threads, max(0.0, deadline - time.monotonic())
                    )
                    after = [cpu_seconds(group) for group in pids]
                    phase.add(done, (after[0] - before[0], after[1] - before[1]))

        engine = make_engine(url)
        with engine.connect() as conn:
            stored = conn.exec_driver_sql("SELECT count(*), count(claim_id) FROM checkins").one()
        engine.dispose()

    print(
        f"server: gunicorn --workers {args.workers} (sync) on {HOST}, PostgreSQL; "
        f"client: {args.threads} threads, a new connection per request, {args.rounds} "
        f"interleaved rounds; {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    print(healthz.line())
    print(checkins.line())
    per_health = healthz.cpu_seconds / len(healthz.latencies)
    per_checkin = checkins.cpu_seconds / len(checkins.latencies)
    print(f"server CPU ratio (healthz ÷ check-in, per request): {per_health / per_checkin:.3f}")
    print(f"check-ins stored: {stored[0]}, with a claim: {stored[1]}")
    if checkins.statuses.get(201, 0) != len(checkins.latencies):
        print("WARNING: not every check-in answered 201")
    print(f"ratio={checkins.rate / healthz.rate:.3f}")


if __name__ == "__main__":
    main()
