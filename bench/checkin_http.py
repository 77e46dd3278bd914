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

Then, against the same database and server, the check-in's own SQL as a pgbench custom script:
before the load, one real check-in is made in-process (the same app, through the Flask test
client) and every statement it sends is recorded with its parameters and results; each
becomes a statement of the script, with the villager (and their user and household) and the
activity chosen afresh for each transaction (the login session looked up stays the recorded
one's: the same query, on another row) — a pseudo-random villager
(pgbench's `permute`) in one of the spare activities, never a pair used before — and the ids
the check-in creates or reads (claim, account, its chain head and sequence) carried from the
statement that returns them to those that use them (pgbench's `gset`). It runs as `pgbench -M
prepared -c <threads> -j <threads> -T <seconds>` (psycopg prepares the app's repeated
statements too), and the line before the last is `db_ratio=<check-in rate ÷ pgbench rate>`:
the share of the database's own speed at these statements that a check-in through HTTP
keeps. The peak RSS of a gunicorn worker is printed after the load
(`worker_peak_rss_mb=`).

Every request goes to 127.0.0.1 only; each phase is bounded in count and in time. The server
and the database are removed at the end, also on failure.

    .venv/bin/python bench/checkin_http.py [--villagers 2000] [--threads 4] [--db-seconds 15]
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
    backend_pids,
    cpu_seconds,
    create_schema,
    gunicorn,
    request,
    scratch_database,
    server_env,
    worker_pids,
    workers_peak_rss_mb,
)
from bench._replay import (  # noqa: E402
    Recorded,
    ScriptPlan,
    pgbench_script,
    recording,
    replay_steps,
    run_script,
    sequence_positions,
    spread_ids,
    statements_and_transactions,
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
    spare_activities: list[int]  # open too, for the check-in recorded and pgbench's


def seed(url: str, villagers: int, spare_activities: int) -> Seeded:
    """One township, one village with `villagers` households (each head bound to a WeChat
    user with a fresh login), the reference catalog, and static activities open now: the
    one the load checks in to, and `spare_activities` more."""
    create_schema(url)
    spread_ids(url)
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
        cadre_actor = Actor.of(s, cadre)
        activity_id, *spares = [
            activities.create_activity(s, cadre_actor, plan, now).id
            for _ in range(1 + spare_activities)
        ]
        tokens = [sessions.login(s, settings, user).access_token for user in users]
        s.commit()
    engine.dispose()
    code = TokenCodec.keyring(SECRET, 1).encode(TokenType.ACTIVITY, (activity_id, 0))
    return Seeded(tokens, code, activity_id, spares)


# ---- the check-in's own SQL, as a pgbench script ---------------------------------------------


def record_checkin(url: str, access: str, activity_id: int) -> list[Recorded]:
    """One real check-in in this process: the app with the server's settings, through Flask's
    test client; every statement it sends, with its parameters and result rows."""
    from backend import create_app
    from backend.extensions import db

    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(server_env(url, SECRET))
    try:
        app = create_app()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    code = TokenCodec.keyring(SECRET, 1).encode(TokenType.ACTIVITY, (activity_id, 0))
    with app.app_context(), recording(db.engine) as recorded:
        answer = app.test_client().post(
            "/api/v1/checkins",
            json={"token": code},
            headers={"Authorization": f"Bearer {access}", "X-Device-Id": "bench-recorded"},
        )
        assert answer.status_code == 201, answer.get_data(as_text=True)
        db.session.remove()
        db.engine.dispose()
    return recorded


def make_script_plan(url: str, villagers: int, spares: list[int]) -> ScriptPlan:
    """Villager 0's rows, checking that villager i's are theirs + i in every table, and that
    the spare activities' ids follow each other."""
    with psycopg.connect(url) as conn:
        v0, u0, h0, count = conn.execute(
            "SELECT min(v.id), min(u.id), min(v.household_id), count(*) FROM villagers v "
            "JOIN users u ON u.villager_id = v.id"
        ).fetchall()[0]
        off = conn.execute(
            "SELECT count(*) FROM villagers v JOIN users u ON u.villager_id = v.id "
            "WHERE v.id - %s <> u.id - %s OR v.household_id - %s <> v.id - %s "
            "OR v.id - %s >= %s",
            (v0, u0, h0, v0, v0, villagers),
        ).fetchall()[0][0]
    if count != villagers or off or spares != list(range(spares[0], spares[0] + len(spares))):
        raise RuntimeError("the villagers' rows or the spare activities are not in order")
    first = {"villager": v0, "user": u0, "household": h0}
    return ScriptPlan(
        villagers,
        first,
        {v0: "villager", u0: "user", h0: "household"},
        sweep=("activity", spares[0], spares[1]),
    )


# ---- server ---------------------------------------------------------------------------------


def server_pids(master: int, url: str) -> tuple[list[int], list[int]]:
    """The gunicorn workers, and the PostgreSQL backends serving this database."""
    return worker_pids(master), backend_pids(url)


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
    parser.add_argument(
        "--db-seconds", type=float, default=15.0, help="pgbench -T for the check-in's SQL"
    )
    parser.add_argument(
        "--db-max-tps",
        type=float,
        default=4000.0,
        help="the most pgbench could do: spare activities are made for that many",
    )
    add_postgres_argument(parser)
    args = parser.parse_args()
    # pgbench's transactions sweep through the villagers once per spare activity.
    sweeps = int(args.db_max_tps * args.db_seconds / args.villagers) + 1

    with scratch_database(args.postgres, "bench") as url:
        started = time.perf_counter()
        seeded = seed(url, args.villagers, 1 + sweeps)
        print(
            f"seeded {args.villagers} villagers and activity {seeded.activity_id} "
            f"in {time.perf_counter() - started:.1f} s"
        )
        new_from = sequence_positions(url)
        recorded = record_checkin(url, seeded.access_tokens[0], seeded.spare_activities[0])
        plan = make_script_plan(url, args.villagers, seeded.spare_activities)
        script = pgbench_script(replay_steps(recorded, plan, new_from), plan)
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
            rss = workers_peak_rss_mb(master)

        engine = make_engine(url)
        with engine.connect() as conn:
            stored = conn.exec_driver_sql("SELECT count(*), count(claim_id) FROM checkins").one()
        engine.dispose()

        replay = run_script(url, script, args.threads, "-T", f"{args.db_seconds:g}")
        db_tps, processed = replay.tps, replay.processed
        with psycopg.connect(url) as pg:
            db_stored = pg.execute("SELECT count(*) FROM checkins").fetchall()[0][0]
    statements, transactions = statements_and_transactions(recorded)

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
    print(f"worker_peak_rss_mb={rss:.1f}")
    print(
        f"check-in's SQL: {statements} statements in {transactions} transaction(s) recorded "
        f"from one check-in; pgbench -M prepared -c {args.threads} -j {args.threads} -T "
        f"{args.db_seconds:g}: {processed} check-ins, {db_tps:.1f} tps"
    )
    if db_stored != stored[0] + processed:
        print(f"WARNING: {db_stored - stored[0]} check-ins stored by pgbench's {processed}")
    print(f"db_ratio={checkins.rate / db_tps:.3f}")
    print(f"ratio={checkins.rate / healthz.rate:.3f}")


if __name__ == "__main__":
    main()
