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
chains are verified afterwards.

Then, on the same server, `pgbench -i -s 10` into another database of its own and `pgbench
-c C -j C -t N/C` (the built-in TPC-B-like script: as many transactions at the same
concurrency). A CHECKPOINT comes before each timed phase.

    .venv/bin/python bench/ledger_post.py [--awards 20000] [--clients 4] [--households 2000]
    .venv/bin/python bench/ledger_post.py --profile 1000   # one process under cProfile

Prints both rates and, last, `ratio=<awards/s ÷ pgbench tps>`; the goal is at least 0.5.
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, event, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

import rules  # noqa: E402
from bench._pg import (  # noqa: E402
    add_postgres_argument,
    checkpoint,
    migrate,
    peak_rss_mb,
    pgbench,
    pgbench_tps,
    scratch_database,
)
from points import catalogs, claims, ledger  # noqa: E402
from points.db import make_engine  # noqa: E402
from points.errors import DomainError  # noqa: E402
from points.models import Household, RuleItem, Township, User, Village, Villager  # noqa: E402
from points.scope import Actor  # noqa: E402

SECRET = "ledger-secret-" + secrets.token_hex(16)
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


def seed(url: str, households: int) -> tuple[int, int, list[int]]:
    """(cadre's user id, the item's id, household ids)."""
    engine = make_engine(url)
    with Session(engine) as s:
        township = Township(name="记账镇", code="LEDGER")
        s.add(township)
        s.flush()
        catalogs.install_catalog(s, None, township.id, rules.load_yaml(CATALOG))
        village = Village(township_id=township.id, name="记账村")
        s.add(village)
        s.flush()
        cadre = User(
            username="ledger_cadre",
            password_hash="x",
            role="cadre",
            township_id=township.id,
            village_id=village.id,
        )
        homes = [Household(village_id=village.id, name=f"第{i + 1}户") for i in range(households)]
        s.add(cadre)
        s.add_all(homes)
        s.flush()
        s.add_all(Villager(household_id=h.id, name=f"户主{h.id}", relation="户主") for h in homes)
        item_id = s.scalar(select(RuleItem.id).where(RuleItem.code == "LEDGER-HELP"))
        assert item_id is not None
        s.commit()
        ids = (cadre.id, item_id, [h.id for h in homes])
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


def actor_of(engine: Engine, cadre_id: int) -> Actor:
    with Session(engine) as s:
        cadre = s.get(User, cadre_id)
        assert cadre is not None
        return Actor.of(s, cadre)


def poster(
    url: str,
    cadre_id: int,
    item_id: int,
    targets: list[int],
    start: Any,
    results: Any,
) -> None:
    """One process: its own engine (one connection), the awards of `targets` in order."""
    engine = make_engine(url, pool_size=1, max_overflow=0)
    actor = actor_of(engine, cadre_id)
    errors: Counter[str] = Counter()
    start.wait()
    for household_id in targets:
        try:
            post(engine, actor, item_id, household_id)
        except DomainError as exc:
            errors[exc.code] += 1
    engine.dispose()
    results.put((len(targets), dict(errors), peak_rss_mb()))


def post_all(
    url: str, cadre_id: int, item_id: int, households: list[int], awards: int, clients: int
) -> tuple[float, Counter[str], float]:
    """(seconds, errors by code, largest peak RSS of a posting process in MiB). Award k goes
    to household k mod H, by process k mod C: with C dividing H no two processes share a
    household."""
    context = multiprocessing.get_context("fork")
    start = context.Barrier(clients + 1)
    results = context.Queue()
    plan = [households[k % len(households)] for k in range(awards)]
    processes = [
        context.Process(
            target=poster, args=(url, cadre_id, item_id, plan[c::clients], start, results)
        )
        for c in range(clients)
    ]
    for process in processes:
        process.start()
    start.wait()
    started = time.perf_counter()
    done = [results.get() for _ in processes]
    seconds = time.perf_counter() - started
    for process in processes:
        process.join()
        if process.exitcode != 0:
            raise RuntimeError(f"a posting process exited with {process.exitcode}")
    errors: Counter[str] = Counter()
    for _count, errs, _rss in done:
        errors.update(errs)
    return seconds, errors, max(rss for _c, _e, rss in done)


def profile(url: str, cadre_id: int, item_id: int, households: list[int], awards: int) -> None:
    """Post `awards` in this process under cProfile, counting the statements sent."""
    engine = make_engine(url, pool_size=1, max_overflow=0)
    statements: Counter[str] = Counter()

    @event.listens_for(engine, "before_cursor_execute")
    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements[" ".join(statement.split())[:110]] += 1

    actor = actor_of(engine, cadre_id)
    post(engine, actor, item_id, households[-1])  # statements compiled and cached
    statements.clear()
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for k in range(awards):
        post(engine, actor, item_id, households[k % len(households)])
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
    parser.add_argument("--scale", type=int, default=10, help="pgbench -i -s")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="only profile N awards, no pgbench"
    )
    add_postgres_argument(parser)
    args = parser.parse_args()

    with scratch_database(args.postgres, "ledger") as url:
        started = time.perf_counter()
        migrate(url, SECRET)
        cadre_id, item_id, households = seed(url, args.households)
        print(
            f"seeded {args.households} households in one village in "
            f"{time.perf_counter() - started:.1f} s (schema by flask db upgrade)"
        )
        if args.profile:
            profile(url, cadre_id, item_id, households, args.profile)
            return
        checkpoint(url)
        seconds, errors, rss = post_all(
            url, cadre_id, item_id, households, args.awards, args.clients
        )
        engine = make_engine(url)
        with Session(engine) as s:
            report = ledger.verify_all(s)
        engine.dispose()
    service_rate = args.awards / seconds
    print(
        f"service: {args.awards} awards (points.claims.award, one transaction each) by "
        f"{args.clients} processes in {seconds:.2f} s: {service_rate:.1f} awards/s; "
        f"errors {dict(errors)}; {report.entries} ledger entries in {report.accounts} "
        f"accounts, chains {'verified' if not report.breaks else f'BROKEN {report.breaks[:3]}'}"
    )
    print(f"poster_peak_rss_mb={rss:.1f}")

    per_client = args.awards // args.clients
    with scratch_database(args.postgres, "pgbench") as url:
        pgbench(url, "-i", "-q", "-s", str(args.scale))
        checkpoint(url)
        output = pgbench(
            url, "-c", str(args.clients), "-j", str(args.clients), "-t", str(per_client)
        )
    tps = pgbench_tps(output)
    print(
        f"pgbench: TPC-B-like, -s {args.scale} -c {args.clients} -j {args.clients} -t "
        f"{per_client} ({per_client * args.clients} transactions): {tps:.1f} tps"
    )
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; PostgreSQL on "
        f"{args.postgres.rsplit('@', 1)[-1]}"
    )
    print(f"ratio={service_rate / tps:.3f}")


if __name__ == "__main__":
    main()
