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
import re
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg.types.json import Json, Jsonb  # noqa: E402
from sqlalchemy import event, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

import rules  # noqa: E402
from bench._pg import (  # noqa: E402
    HOST,
    add_postgres_argument,
    backend_pids,
    checkpoint,
    cpu_seconds,
    create_schema,
    gunicorn,
    pgbench,
    pgbench_tps,
    request,
    scratch_database,
    server_env,
    worker_pids,
    workers_peak_rss_mb,
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


# Every table's ids start at a multiple of this (`spread_ids`), so an id names its table.
ID_SPAN = 10_000_000
# The rows that are each villager's own, one per villager, made in the villagers' order.
PER_VILLAGER = {"villagers": "villager", "users": "user", "households": "household"}


def spread_ids(url: str) -> dict[str, int]:
    """Start each table's id sequence at its own multiple of ID_SPAN, so that in a recorded
    statement an id tells which table it is of; the start of each table's sequence."""
    starts = {}
    with psycopg.connect(url, autocommit=True) as conn:
        sequences = conn.execute(
            "SELECT c.relname, t.relname FROM pg_class c JOIN pg_depend d ON d.objid = c.oid "
            "JOIN pg_class t ON t.oid = d.refobjid WHERE c.relkind = 'S' ORDER BY c.relname"
        ).fetchall()
        for k, (sequence, table) in enumerate(sequences, start=1):
            conn.execute(f"ALTER SEQUENCE {sequence} RESTART WITH {k * ID_SPAN}")
            starts[table] = k * ID_SPAN
    return starts


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


@dataclass
class Recorded:
    """A statement one check-in sent (or BEGIN, COMMIT, ROLLBACK), its parameters and what
    it returned."""

    statement: str
    parameters: dict[str, Any] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)
    rows: list[tuple[Any, ...]] = field(default_factory=list)


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
    recorded: list[Recorded] = []

    def executed(
        _conn: Any, cursor: Any, statement: str, parameters: Any, _ctx: Any, many: bool
    ) -> None:
        assert not many and isinstance(parameters, dict), statement
        entry = Recorded(statement, dict(parameters))
        if cursor.description:
            entry.columns = [column.name for column in cursor.description]
            entry.rows = cursor.fetchall()
            if entry.rows:
                cursor.scroll(0, mode="absolute")  # SQLAlchemy reads the rows after this
        recorded.append(entry)

    def mark(word: str, _conn: Any) -> None:
        recorded.append(Recorded(word))

    code = TokenCodec.keyring(SECRET, 1).encode(TokenType.ACTIVITY, (activity_id, 0))
    with app.app_context():
        engine = db.engine
        event.listen(engine, "after_cursor_execute", executed)
        for word in ("BEGIN", "COMMIT", "ROLLBACK"):
            event.listen(engine, word.lower(), partial(mark, word))
        answer = app.test_client().post(
            "/api/v1/checkins",
            json={"token": code},
            headers={"Authorization": f"Bearer {access}", "X-Device-Id": "bench-recorded"},
        )
        assert answer.status_code == 201, answer.get_data(as_text=True)
        db.session.remove()
        engine.dispose()
    return recorded


def sql_literal(value: Any) -> str:
    """A constant as SQL text with no colon in it (pgbench would read `:x` as a variable,
    quoted or not): strings as E'' with a colon escaped."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return repr(value) if not isinstance(value, Decimal) else str(value)
    if isinstance(value, datetime):
        cast = "timestamptz" if value.tzinfo is not None else "timestamp"
        return f"{sql_literal(value.isoformat())}::{cast}"
    if isinstance(value, date):
        return f"'{value.isoformat()}'::date"
    if isinstance(value, Json | Jsonb):  # as the column's JSON: the text converts
        return sql_literal(json.dumps(value.obj, ensure_ascii=False))
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace("'", "''").replace(":", "\\x3a")
        return f"E'{escaped}'"
    raise TypeError(f"no literal for {value!r}")


def sequence_positions(url: str) -> dict[int, int]:
    """Per table (by its ID_SPAN block), the first id not yet given out."""
    with psycopg.connect(url) as conn:
        names = [row[0] for row in conn.execute("SELECT relname FROM pg_class WHERE relkind = 'S'")]
        positions = {}
        for name in names:
            last, called = conn.execute(f"SELECT last_value, is_called FROM {name}").fetchall()[0]
            positions[last // ID_SPAN] = last + 1 if called else last
    return positions


@dataclass
class ScriptPlan:
    """What the script chooses afresh per transaction: villager index i (0 … villagers-1),
    the ids of villager i's rows (`first`: villager 0's, per PER_VILLAGER table), and the
    spare activity of the transaction's sweep through the villagers."""

    villagers: int
    first: dict[str, int]  # PER_VILLAGER variable → villager 0's id
    recorded_ids: dict[int, str]  # the recorded check-in's ids → variable
    first_activity: int  # the spare activity of the first sweep
    activity: int  # the recorded check-in's


def pgbench_script(recorded: list[Recorded], plan: ScriptPlan, new_from: dict[int, int]) -> str:
    """The recorded statements as a pgbench script: each transaction a fresh check-in, of
    villager permute(n mod V) in spare activity first + n div V, n counting the transactions
    of all clients (pgbench -D k=0 -D clients=C). An id the check-in created (at or past
    `new_from` of its table) or a chain head it read is taken from the first statement that
    returned it (gset); the entry's sequence is the account's entry count plus one."""
    lines = [
        "\\set k :k + 1",
        "\\set n (:k - 1) * :clients + :client_id",
        f"\\set i permute(:n % {plan.villagers}, {plan.villagers})",
        *(f"\\set {name} {first} + :i" for name, first in plan.first.items()),
        f"\\set activity {plan.first_activity} + :n / {plan.villagers}",
    ]
    given: dict[Any, str] = {}  # a returned value → the variable gset gives it
    counts: dict[int, str] = {}  # an account's entry count → its variable
    gsets: dict[int, str] = {}  # line index of a statement → its gset prefix
    for number, entry in enumerate(recorded):
        if entry.statement in ("BEGIN", "COMMIT", "ROLLBACK"):
            lines.append(entry.statement + ";")
            continue

        def substitute(match: re.Match[str], entry: Recorded = entry) -> str:
            name = match.group(1)
            value = entry.parameters[name]
            if isinstance(value, int) and not isinstance(value, bool):
                if value in plan.recorded_ids:
                    return ":" + plan.recorded_ids[value]
                if value == plan.activity:
                    return ":activity"
                if value >= ID_SPAN and value >= new_from.get(value // ID_SPAN, value + 1):
                    if value not in given:
                        raise RuntimeError(f"{name}={value} in {entry.statement[:80]}: from where?")
                    return ":" + given[value]
                if name in ("seq", "entry_count") and value - 1 in counts:
                    lines.append(f"\\set next_seq :{counts[value - 1]} + 1")
                    return ":next_seq"
            if isinstance(value, str) and len(value) >= 32 and value in given:
                return ":" + given[value]
            return sql_literal(value)

        template = " ".join(entry.statement.split())
        if re.search(r"(?<!:):[A-Za-z0-9_]", re.sub(r"%\(\w+\)s", "", template)):
            raise RuntimeError(f"a colon pgbench would misread: {template[:120]}")
        text = re.sub(r"%\((\w+)\)s", substitute, template).replace("%%", "%")
        lines.append(text + ";")
        if len(entry.rows) == 1:
            prefix = f"r{number}_"
            for column, value in zip(entry.columns, entry.rows[0], strict=True):
                variable = prefix + column
                if column.endswith("entry_count"):
                    counts.setdefault(value, variable)
                if isinstance(value, int | str) and value not in given:
                    given[value] = variable
            gsets[len(lines) - 1] = prefix
    used = "\n".join(lines)
    for index, prefix in gsets.items():
        if f":{prefix}" in used:  # only where a later statement takes a value from it
            lines[index] = lines[index].removesuffix(";") + f" \\gset {prefix}"
    return "\n".join(lines) + "\n"


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
        spares[1],
        spares[0],
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

    with (
        scratch_database(args.postgres, "bench") as url,
        tempfile.NamedTemporaryFile("w", suffix=".sql", prefix="checkin-") as script,
    ):
        started = time.perf_counter()
        seeded = seed(url, args.villagers, 1 + sweeps)
        print(
            f"seeded {args.villagers} villagers and activity {seeded.activity_id} "
            f"in {time.perf_counter() - started:.1f} s"
        )
        new_from = sequence_positions(url)
        recorded = record_checkin(url, seeded.access_tokens[0], seeded.spare_activities[0])
        plan = make_script_plan(url, args.villagers, seeded.spare_activities)
        script.write(pgbench_script(recorded, plan, new_from))
        script.flush()
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

        checkpoint(url)
        output = pgbench(
            url,
            *("-n", "-M", "prepared", "-f", script.name),
            *("-c", str(args.threads), "-j", str(args.threads), "-T", f"{args.db_seconds:g}"),
            *("-D", "k=0", "-D", f"clients={args.threads}"),
        )
        db_tps = pgbench_tps(output)
        found = re.search(r"actually processed: (\d+)", output)
        processed = int(found.group(1)) if found else 0
        with psycopg.connect(url) as pg:
            db_stored = pg.execute("SELECT count(*) FROM checkins").fetchall()[0][0]
    statements = sum(1 for r in recorded if r.statement not in ("BEGIN", "COMMIT", "ROLLBACK"))
    transactions = sum(1 for r in recorded if r.statement == "BEGIN")

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
