"""Posting awards through the domain service against pgbench's TPC-B-like script, on the same
PostgreSQL server.

Creates a PostgreSQL database of its own (schema by `flask db upgrade`, as a deployment gets
it): one township whose catalog has an award item that posts at once (no review, no notice
days, no caps, one cadre enough), one village of 2,000 households (a head each) and its
cadre. Then C processes (default 4), each with its own engine and one session per award,
post N awards (default 20,000) with `points.claims.award` — the code a cadre's
POST /api/v1/awards runs: the claim, its approval, the monthly budget counter, the ledger
entry with its hash chain and balance, the month totals and the audit line — each its own
transaction, to households spread so that no two processes ever award the same one. The
chains are verified afterwards. Every award in a village also adds to the village's rows
(its monthly budget counter and month totals), written as the award commits. With a monthly
budget (`--budget`, as the default catalog has one) the budget row is locked from the
award's decision to its commit instead, and a village's awards queue on it: `--villages 4`
spreads the households over four villages, one per process, to see what that row costs.

Then the award's own SQL on the same database: one more award is made in-process with every
statement it sends recorded with its parameters and results (`bench/_replay.py`), and those
statements are sent again as N fresh awards, each of a household chosen afresh, the ids and
the chain head carried from the statement that returns them to those that use them:
  - by pgbench, as a custom script (`pgbench -M prepared -c C -j C -t N/C`, households by
    pgbench's `permute`): PostgreSQL's own rate for exactly these statements.
    `sql_ratio=<that rate ÷ pgbench's TPC-B rate>` is the most `ratio` could be for a
    client that spent no time of its own, and `db_ratio=<awards/s ÷ that rate>` the share of
    it the service keeps;
  - by C Python processes with psycopg alone (no SQLAlchemy, no domain code; households in
    order), timed and measured as the service's processes are: `driver_ratio=<their rate ÷
    pgbench's TPC-B rate>`, what a client that only sends these statements reaches.
With `--villages V`, household i is of village i mod V and awarded by its cadre in the
replays too.

Then, on the same server, `pgbench -i -s 10` into another database of its own and `pgbench
-c C -j C -t N/C` (the built-in TPC-B-like script: as many transactions at the same
concurrency). A CHECKPOINT comes before each timed phase.

    .venv/bin/python bench/ledger_post.py [--awards 20000] [--clients 4] [--households 2000]
                                          [--villages 1] [--budget POINTS]
    .venv/bin/python bench/ledger_post.py --profile 1000   # one process under cProfile

Prints each rate with the CPU it took, `db_ratio=`, `driver_ratio=`, `sql_ratio=` and, last,
`ratio=<awards/s ÷ pgbench tps>`; the goal is at least 0.5.
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing
import os
import pstats
import secrets
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from sqlalchemy import Engine, event, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

import rules  # noqa: E402
from bench._pg import (  # noqa: E402
    add_postgres_argument,
    backend_pids,
    checkpoint,
    cpu_seconds,
    machine_cpu_seconds,
    migrate,
    peak_rss_mb,
    pgbench,
    pgbench_tps,
    scratch_database,
)
from bench._replay import (  # noqa: E402
    Recorded,
    ScriptPlan,
    Step,
    pgbench_script,
    recording,
    replay_steps,
    row_variables,
    run_script,
    run_steps,
    sequence_positions,
    spread_ids,
    statements_and_transactions,
)
from points import catalogs, claims, ledger  # noqa: E402
from points.db import make_engine  # noqa: E402
from points.errors import DomainError  # noqa: E402
from points.models import Household, RuleItem, Township, User, Village, Villager  # noqa: E402
from points.scope import Actor  # noqa: E402

SECRET = "ledger-secret-" + secrets.token_hex(16)
RESULT_TIMEOUT_S = 1800  # the longest a posting process may take for its share
TZ = ZoneInfo("Asia/Shanghai")

# An award that posts at once: no review, no notice days, no caps, below two cadres.
CATALOG = """
name: 记账基准细则
categories: [热心公益]
policy:
  notice_days: 0
  two_cadre_threshold: 1000
  reset_cycle: none
  qualification_line: 0
  exchange_rate: '1'
  min_redemption_points: 0
items:
- {code: LEDGER-HELP, name: 热心帮扶, category: 热心公益, class: bonus, points: 5, kind: fixed,
   applies_to: household, submit_by: [cadre], requires_review: false, evidence_required: false}
"""


def seed(
    url: str, households: int, villages: int, budget: int | None
) -> tuple[list[int], int, list[tuple[int, int]]]:
    """(each village's cadre's user id, the item's id, (household id, village index) of every
    household); household i is of village i mod `villages`. `budget`: each village's monthly
    budget (none by default)."""
    engine = make_engine(url)
    with Session(engine) as s:
        township = Township(name="记账镇", code="LEDGER")
        s.add(township)
        s.flush()
        text = CATALOG
        if budget is not None:
            text = text.replace("policy:\n", f"policy:\n  monthly_budget: {budget}\n")
        catalogs.install_catalog(s, None, township.id, rules.load_yaml(text))
        places = [Village(township_id=township.id, name=f"记账{v + 1}村") for v in range(villages)]
        s.add_all(places)
        s.flush()
        cadres = [
            User(
                username=f"ledger_cadre_{v}",
                password_hash="x",
                role="cadre",
                township_id=township.id,
                village_id=village.id,
            )
            for v, village in enumerate(places)
        ]
        homes = [
            Household(village_id=places[i % villages].id, name=f"第{i + 1}户")
            for i in range(households)
        ]
        s.add_all([*cadres, *homes])
        s.flush()
        s.add_all(Villager(household_id=h.id, name=f"户主{h.id}", relation="户主") for h in homes)
        item_id = s.scalar(select(RuleItem.id).where(RuleItem.code == "LEDGER-HELP"))
        assert item_id is not None
        s.commit()
        ids = ([c.id for c in cadres], item_id, [(h.id, i % villages) for i, h in enumerate(homes)])
    engine.dispose()
    return ids


def post(engine: Engine, actor: Actor, item_id: int, household_id: int) -> None:
    """One award of one household, its own transaction."""
    with Session(engine) as s:
        claims.award(
            s,
            actor,
            rule_item_id=item_id,
            units=None,
            note=None,
            evidence=[],
            targets=[{"household_id": household_id}],
            tz=TZ,
            now=datetime.now(UTC),
        )
        s.commit()


def actors_of(engine: Engine, cadre_ids: list[int]) -> list[Actor]:
    """The cadres as the API resolves a caller (once per process here)."""
    with Session(engine) as s:
        users = [s.get(User, cadre_id) for cadre_id in cadre_ids]
        return [Actor.of(s, user) for user in users if user is not None]


def poster(
    url: str,
    cadre_ids: list[int],
    item_id: int,
    targets: list[tuple[int, int]],
    barriers: tuple[Any, Any],
    results: Any,
) -> None:
    """One process: its own engine (one connection), the awards of `targets` in order, each
    by its village's cadre. Connected before the start, and still connected after the end
    until the parent has read the CPU time of its backend."""
    engine = make_engine(url, pool_size=1, max_overflow=0)
    actors = actors_of(engine, cadre_ids)
    errors: Counter[str] = Counter()
    start, end = barriers
    start.wait()
    for household_id, village in targets:
        try:
            post(engine, actors[village], item_id, household_id)
        except DomainError as exc:
            errors[exc.code] += 1
    results.put((len(targets), dict(errors), peak_rss_mb()))
    end.wait()
    engine.dispose()


def driver(
    url: str,
    steps: list[Step],
    plan: ScriptPlan,
    ns: list[int],
    barriers: tuple[Any, Any],
    results: Any,
) -> None:
    """One process sending a recorded award's statements itself, through psycopg alone: the
    transactions `ns` (`run_steps`), as `poster` and on the same terms."""
    errors: Counter[str] = Counter()
    with psycopg.connect(url) as conn:
        start, end = barriers
        start.wait()
        for n in ns:
            try:
                run_steps(conn, steps, row_variables(plan, n))
            except Exception as exc:  # counted, as the service's refusals are
                conn.rollback()
                errors[type(exc).__name__] += 1
        results.put((len(ns), dict(errors), peak_rss_mb()))
        end.wait()


@dataclass
class Posted:
    seconds: float
    errors: Counter[str]
    peak_rss_mb: float  # the largest of a posting process
    python_cpu_s: float  # the posting processes'
    postgres_cpu_s: float  # their backends'
    machine_cpu_s: float  # all of the machine's

    def line(self, what: str, awards: int, clients: int) -> str:
        return (
            f"{what}: {awards} awards by {clients} processes in {self.seconds:.2f} s: "
            f"{awards / self.seconds:.1f} awards/s; CPU per award: Python "
            f"{self.python_cpu_s / awards * 1000:.2f} ms, PostgreSQL "
            f"{self.postgres_cpu_s / awards * 1000:.2f} ms, machine "
            f"{self.machine_cpu_s / awards * 1000:.2f} ms"
        )


def timed(url: str, target: Callable[..., None], shares: list[tuple[Any, ...]]) -> Posted:
    """One process per share, `target(url, *share, barriers, results)`, all started together
    once each has connected; timed from the start to the last one's result, with the CPU
    time of the processes, of their backends and of the machine meanwhile."""
    clients = len(shares)
    context = multiprocessing.get_context("fork")
    barriers = (context.Barrier(clients + 1), context.Barrier(clients + 1))
    results = context.Queue()
    processes = [
        context.Process(target=target, args=(url, *share, barriers, results)) for share in shares
    ]
    for process in processes:
        process.start()
    # Connected once every process is at the start (each one's connection made first).
    while len(backends := backend_pids(url)) < clients:
        time.sleep(0.05)
    pids = [p.pid for p in processes if p.pid is not None]
    cpu_before = cpu_seconds(pids), cpu_seconds(backends), machine_cpu_seconds()
    barriers[0].wait()
    started = time.perf_counter()
    # Bounded: a process that died before its result fails the run instead of hanging it.
    done = [results.get(timeout=RESULT_TIMEOUT_S) for _ in processes]
    seconds = time.perf_counter() - started
    cpu_after = cpu_seconds(pids), cpu_seconds(backends), machine_cpu_seconds()
    barriers[1].wait()
    for process in processes:
        process.join()
        if process.exitcode != 0:
            raise RuntimeError(f"a process exited with {process.exitcode}")
    errors: Counter[str] = Counter()
    for _count, errs, _rss in done:
        errors.update(errs)
    return Posted(
        seconds,
        errors,
        max(rss for _c, _e, rss in done),
        cpu_after[0] - cpu_before[0],
        cpu_after[1] - cpu_before[1],
        cpu_after[2] - cpu_before[2],
    )


def post_all(
    url: str,
    cadre_ids: list[int],
    item_id: int,
    households: list[tuple[int, int]],
    awards: int,
    clients: int,
) -> Posted:
    """Award k goes to household k mod H, by process k mod C: with C dividing H no two
    processes share a household (and with as many villages as processes, nor a village)."""
    plan = [households[k % len(households)] for k in range(awards)]
    shares = [(cadre_ids, item_id, plan[c::clients]) for c in range(clients)]
    return timed(url, poster, shares)


def record_award(
    url: str, cadre_ids: list[int], item_id: int, households: list[tuple[int, int]]
) -> tuple[list[Recorded], ScriptPlan, list[Step]]:
    """One more award, of the first household, made in this process with every statement
    recorded; the plan that replays it on any household (of village i mod V, by its cadre),
    and its steps."""
    first = households[0][0]
    with psycopg.connect(url) as conn:
        villages = [row[0] for row in conn.execute("SELECT id FROM villages ORDER BY id")]
    if (
        [h for h, _v in households] != list(range(first, first + len(households)))
        or any(v != k % len(villages) for k, (_h, v) in enumerate(households))
        or villages != list(range(villages[0], villages[0] + len(villages)))
        or cadre_ids != list(range(cadre_ids[0], cadre_ids[0] + len(villages)))
    ):
        raise RuntimeError("the households', villages' or cadres' ids do not follow each other")
    new_from = sequence_positions(url)
    engine = make_engine(url, pool_size=1, max_overflow=0)
    actors = actors_of(engine, cadre_ids)
    with recording(engine) as recorded:
        post(engine, actors[0], item_id, first)
    engine.dispose()
    plan = ScriptPlan(
        len(households),
        {"household": first},
        {first: "household", villages[0]: "village", cadre_ids[0]: "cadre"},
        groups=len(villages),
        group_first={"village": villages[0], "cadre": cadre_ids[0]},
    )
    return recorded, plan, replay_steps(recorded, plan, new_from)


def ledger_entries(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM ledger_entries").fetchall()[0][0]


def misplaced_claims(url: str) -> int:
    """Claims not of their household's village, or not entered by that village's cadre
    (none, if the replays chose each award's village and cadre with its household)."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT count(*) FROM claims c JOIN households h ON h.id = c.household_id "
            "JOIN users u ON u.id = c.submitted_by "
            "WHERE c.village_id <> h.village_id OR u.village_id <> h.village_id"
        ).fetchall()[0][0]


def profile(
    url: str, cadre_ids: list[int], item_id: int, households: list[tuple[int, int]], awards: int
) -> None:
    """Post `awards` in this process under cProfile, counting the statements sent."""
    engine = make_engine(url, pool_size=1, max_overflow=0)
    statements: Counter[str] = Counter()

    @event.listens_for(engine, "before_cursor_execute")
    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements[" ".join(statement.split())[:110]] += 1

    actors = actors_of(engine, cadre_ids)
    post(engine, actors[households[-1][1]], item_id, households[-1][0])  # compiled, cached
    statements.clear()
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for k in range(awards):
        household_id, village = households[k % len(households)]
        post(engine, actors[village], item_id, household_id)
    profiler.disable()
    seconds = time.perf_counter() - started
    engine.dispose()
    print(
        f"{awards} awards in one process under cProfile: {seconds:.2f} s, "
        f"{awards / seconds:.1f} awards/s, {sum(statements.values()) / awards:.1f} "
        "statements per award:"
    )
    for text, n in statements.most_common():
        print(f"  {n / awards:5.2f}  {text}")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(r"/(points|rules)/", 30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--awards", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=4, help="processes, and pgbench -c/-j")
    parser.add_argument("--households", type=int, default=2000)
    parser.add_argument(
        "--villages",
        type=int,
        default=1,
        help="households spread over this many villages (each awards' budget row is its village's)",
    )
    parser.add_argument(
        "--budget",
        type=int,
        help="a monthly budget for each village (as the default catalog has): every award then "
        "locks its village's budget row from its decision to its commit",
    )
    parser.add_argument("--scale", type=int, default=10, help="pgbench -i -s")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="only profile N awards, no pgbench"
    )
    add_postgres_argument(parser)
    args = parser.parse_args()

    with scratch_database(args.postgres, "ledger") as url:
        started = time.perf_counter()
        migrate(url, SECRET)
        spread_ids(url)  # an id names its table, for the replay (`bench/_replay.py`)
        cadre_ids, item_id, households = seed(url, args.households, args.villages, args.budget)
        print(
            f"seeded {args.households} households in {args.villages} village(s), monthly "
            f"budget {args.budget or 'none'}, in "
            f"{time.perf_counter() - started:.1f} s (schema by flask db upgrade)"
        )
        if args.profile:
            profile(url, cadre_ids, item_id, households, args.profile)
            return
        checkpoint(url)
        posted = post_all(url, cadre_ids, item_id, households, args.awards, args.clients)
        engine = make_engine(url)
        with Session(engine) as s:
            report = ledger.verify_all(s)
        engine.dispose()
        per_client = args.awards // args.clients
        recorded, plan, steps = record_award(url, cadre_ids, item_id, households)
        before = ledger_entries(url)
        replay = run_script(url, pgbench_script(steps, plan), args.clients, "-t", str(per_client))
        by_pgbench = ledger_entries(url) - before
        checkpoint(url)
        shares = [
            (steps, plan, list(range(c, args.awards, args.clients))) for c in range(args.clients)
        ]
        driven = timed(url, driver, shares)
        by_driver = ledger_entries(url) - before - by_pgbench
        misplaced = misplaced_claims(url)
    service_rate = args.awards / posted.seconds
    print(
        posted.line(
            "service (points.claims.award, one transaction each)", args.awards, args.clients
        )
        + f"; errors {dict(posted.errors)}; {report.entries} ledger entries in "
        f"{report.accounts} accounts, chains "
        f"{'verified' if not report.breaks else f'BROKEN {report.breaks[:3]}'}"
    )
    print(f"poster_peak_rss_mb={posted.peak_rss_mb:.1f}")
    statements, transactions = statements_and_transactions(recorded)
    print(
        f"the award's SQL: {statements} statements in {transactions} transaction(s) "
        f"recorded from one award; pgbench -M prepared -c {args.clients} -j {args.clients} "
        f"-t {per_client}: {replay.processed} awards, {replay.tps:.1f} tps, machine CPU "
        f"per award {replay.machine_cpu_s / max(1, replay.processed) * 1000:.2f} ms "
        f"(pgbench and PostgreSQL); {by_pgbench} ledger entries stored"
    )
    print(
        driven.line("the award's SQL sent by psycopg alone", args.awards, args.clients)
        + f"; errors {dict(driven.errors)}; {by_driver} ledger entries stored"
    )
    if by_pgbench != replay.processed or by_driver != args.awards:
        print("WARNING: a replay did not store one ledger entry per award")
    if misplaced:
        print(f"WARNING: {misplaced} claims not of their household's village and cadre")

    with scratch_database(args.postgres, "pgbench") as url:
        pgbench(url, "-i", "-q", "-s", str(args.scale))
        checkpoint(url)
        machine = machine_cpu_seconds()
        output = pgbench(
            url, "-c", str(args.clients), "-j", str(args.clients), "-t", str(per_client)
        )
        machine = machine_cpu_seconds() - machine
    tps = pgbench_tps(output)
    print(
        f"pgbench: TPC-B-like, -s {args.scale} -c {args.clients} -j {args.clients} -t "
        f"{per_client} ({per_client * args.clients} transactions): {tps:.1f} tps; machine "
        f"CPU per transaction {machine / (per_client * args.clients) * 1000:.2f} ms "
        "(pgbench and PostgreSQL)"
    )
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; PostgreSQL on "
        f"{args.postgres.rsplit('@', 1)[-1]}"
    )
    print(f"db_ratio={service_rate / replay.tps:.3f}")
    print(f"driver_ratio={args.awards / driven.seconds / tps:.3f}")
    print(f"sql_ratio={replay.tps / tps:.3f}")
    print(f"ratio={service_rate / tps:.3f}")


if __name__ == "__main__":
    main()
