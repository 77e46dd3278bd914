"""The monthly village board (红黑榜) on a county's database: does its cost grow with the ledger?

Creates two PostgreSQL databases of its own (dropped at the end, also on failure), each a
county of 300 villages in 15 townships: the measured village has 1,000 households in 5
villager groups, the other 299 have 150 each (45,850 households). One holds 100,000 ledger
entries, the other 1,000,000. The live board of March 2026 of the measured village is built
(points.boards.board.build_board, each call in a fresh session ended with COMMIT, as the
endpoint does) and timed on both, in alternating blocks of 50, so that load from elsewhere on
a shared machine falls on both sizes alike.

How the data is made: entries are generated in Python and bulk-loaded with COPY, with their
month totals, member month totals and accounts computed from the same rows, so the tables
agree as `points.ledger.append` would leave them (available + held == sum of entries, real
sha256 hash chains in seq order; `flask ledger verify` passes on it). Building a million
chained entries through `append` one by one would take far too long.
- March 2026 of the measured village is the same at both sizes, a busy month: every household
  earns twice (items of the default catalog), 30 have a deduction, 5 a veto flag, and 10
  entries of February are reversed in March (correction notes). February 2026 is closed
  (a published snapshot), so the board also checks it for late changes.
- Everything else is history: entries on random households of the whole county in the
  119 months before March 2026 (85 % earnings, 10 % deductions, 5 % redemptions). At 1,000,000
  entries the measured village has ten times the history of 100,000, and so do the
  `ledger_entries` and `month_totals` tables.

    .venv/bin/python bench/rankings.py [--runs 400] [--postgres postgresql://postgres@127.0.0.1:5432]

Prints p50 and p99 at both sizes; the last line is
`p50_ms=<p50 at 1,000,000> ratio=<p50 at 1,000,000 ÷ p50 at 100,000>`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from sqlalchemy import Engine, select, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

import rules  # noqa: E402
from bench._pg import (  # noqa: E402
    add_postgres_argument,
    create_schema,
    peak_rss_mb,
    scratch_database,
)
from points import catalogs  # noqa: E402
from points.boards import closing, standings  # noqa: E402
from points.boards.board import build_board, village_board  # noqa: E402
from points.db import make_engine  # noqa: E402
from points.models import (  # noqa: E402
    RuleCatalog,
    RuleItem,
    Township,
    Village,
)
from points.models.ledger import GENESIS_HASH  # noqa: E402
from rules.periods import add_months  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
MONTH = "2026-03"
SIZES = (100_000, 1_000_000)
TOWNSHIPS, VILLAGES_PER_TOWNSHIP = 15, 20
MEASURED_HOUSEHOLDS, OTHER_HOUSEHOLDS, GROUPS = 1000, 150, 5
HISTORY_MONTHS = [add_months(MONTH, -k) for k in range(119, 0, -1)]
LEDGER_TABLES = (
    "ledger_entries",
    "month_totals",
    "member_month_totals",
    "accounts",
    "household_flags",
    "board_snapshots",
)


# ---- the county -----------------------------------------------------------------------------


@dataclass
class County:
    measured_village: int
    # (household id, village id, head villager id), the measured village's first
    households: list[tuple[int, int, int]]
    earn_versions: list[int]
    deduct_versions: list[int]


def copy_rows(conn: psycopg.Connection[Any], table: str, columns: list[str], rows: Any) -> None:
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def build_county(engine: Engine, url: str) -> County:
    """Townships, villages, groups, households with their heads, and the default catalog for
    the measured village's township."""
    with Session(engine) as session:
        townships = [Township(name=f"基准{t}镇", code=f"T{t}") for t in range(TOWNSHIPS)]
        session.add_all(townships)
        session.flush()
        villages = [
            Village(township_id=t.id, name=f"{t.name}{v}村")
            for t in townships
            for v in range(VILLAGES_PER_TOWNSHIP)
        ]
        villages[0].name = "清水村"
        session.add_all(villages)
        session.commit()
        catalogs.install_catalog(session, None, townships[0].id, rules.load_default_catalog())
        session.commit()
        catalog_id = session.scalar(
            select(RuleCatalog.id).where(RuleCatalog.township_id == townships[0].id)
        )
        versions = {
            item.code: item.current_version_id
            for item in session.scalars(select(RuleItem).where(RuleItem.catalog_id == catalog_id))
        }
        village_ids = [v.id for v in villages]

    surnames = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁"
    given = "建国秀英桂兰志强海燕春梅国华玉珍德明淑芬红霞文军丽娟永福金花"
    rng = random.Random(7)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    groups, households, villagers = [], [], []
    group_id, household_id = 0, 0
    for index, village_id in enumerate(village_ids):
        count = MEASURED_HOUSEHOLDS if index == 0 else OTHER_HOUSEHOLDS
        ids = []
        for g in range(GROUPS if index == 0 else 1):
            group_id += 1
            ids.append(group_id)
            groups.append((group_id, village_id, f"第{g + 1}村民小组"))
        for h in range(count):
            household_id += 1
            name = rng.choice(surnames) + "".join(rng.sample(given, rng.choice((1, 2))))
            households.append(
                (household_id, village_id, ids[h % len(ids)], f"{name}户", f"{h + 1}号", False, now)
            )
            villagers.append((household_id, household_id, name, "户主", True, now))
    with psycopg.connect(url) as conn:
        copy_rows(conn, "villager_groups", ["id", "village_id", "name"], groups)
        copy_rows(
            conn,
            "households",
            [
                "id",
                "village_id",
                "group_id",
                "name",
                "address",
                "public_board_opt_out",
                "created_at",
            ],
            households,
        )
        copy_rows(
            conn,
            "villagers",
            ["id", "household_id", "name", "relation", "active", "created_at"],
            villagers,
        )
        for table in ("villager_groups", "households", "villagers"):
            conn.execute(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))")
    return County(
        measured_village=village_ids[0],
        households=[(h[0], h[1], h[0]) for h in households],
        earn_versions=[
            versions[c]
            for c in (
                "ENV-YARD",
                "ENV-CLEANUP",
                "GOV-ASSEMBLY",
                "PUB-VOLUNTEER",
                "PUB-LABOUR",
                "FAM-ELDER",
            )
        ],
        deduct_versions=[versions[c] for c in ("ENV-CLUTTER", "ENV-STRAW", "ENV-SEWAGE")],
    )


# ---- the ledger -----------------------------------------------------------------------------


@dataclass
class Entry:
    household: int
    member: int
    kind: str
    amount: int
    at: datetime
    month: str
    version: int | None = None
    reverses: Entry | None = None
    id: int = 0
    note: str | None = None


def _moment(month: str, rng: random.Random) -> datetime:
    local = datetime(
        int(month[:4]),
        int(month[5:]),
        rng.randint(1, 28),
        rng.randint(7, 20),
        rng.randint(0, 59),
        rng.randint(0, 59),
        tzinfo=TZ,
    )
    return local.astimezone(UTC)


def generate(county: County, size: int) -> tuple[list[Entry], list[tuple[int, str, str]]]:
    """`size` entries: March 2026 of the measured village (the same at every size) and
    history; and the veto flags."""
    rng = random.Random(2026)
    measured = [h for h in county.households if h[1] == county.measured_village]
    entries: list[Entry] = []
    # February: earnings of which ten are reversed in March.
    february = []
    for hid, _, head in measured[:200]:
        entry = Entry(
            hid,
            head,
            "earn",
            rng.choice((3, 5)),
            _moment("2026-02", rng),
            "2026-02",
            rng.choice(county.earn_versions),
        )
        february.append(entry)
    entries += february
    for hid, _, head in measured:
        for _ in range(2):
            entries.append(
                Entry(
                    hid,
                    head,
                    "earn",
                    rng.randint(2, 10),
                    _moment(MONTH, rng),
                    MONTH,
                    rng.choice(county.earn_versions),
                )
            )
    for hid, _, head in rng.sample(measured, 30):
        entries.append(
            Entry(
                hid,
                head,
                "deduct",
                -rng.choice((1, 2, 5)),
                _moment(MONTH, rng),
                MONTH,
                rng.choice(county.deduct_versions),
                note="检查发现",
            )
        )
    for target in rng.sample(february, 10):
        entries.append(
            Entry(
                target.household,
                target.member,
                "reverse",
                -target.amount,
                datetime(2026, 3, 28, 2, 0, tzinfo=UTC),
                MONTH,
                target.version,
                reverses=target,
                note="登记重复",
            )
        )
    flags = [(hid, "2026-02", "2027-01") for hid, _, _ in rng.sample(measured, 5)]

    for _ in range(size - len(entries)):
        hid, _, head = county.households[rng.randrange(len(county.households))]
        month = HISTORY_MONTHS[rng.randrange(len(HISTORY_MONTHS))]
        roll = rng.random()
        if roll < 0.85:
            entries.append(
                Entry(
                    hid,
                    head,
                    "earn",
                    rng.randint(1, 10),
                    _moment(month, rng),
                    month,
                    rng.choice(county.earn_versions),
                )
            )
        elif roll < 0.95:
            entries.append(
                Entry(
                    hid,
                    head,
                    "deduct",
                    -rng.randint(1, 5),
                    _moment(month, rng),
                    month,
                    rng.choice(county.deduct_versions),
                )
            )
        else:
            entries.append(
                Entry(hid, head, "redeem", -rng.randint(1, 20), _moment(month, rng), month)
            )
    return entries, flags


def _canonical(account_id: int, seq: int, e: Entry) -> str:
    # The same bytes as points.ledger.canonical, without building ORM objects.
    return json.dumps(
        {
            "account_id": account_id,
            "seq": seq,
            "kind": e.kind,
            "amount": e.amount,
            "member_id": e.member,
            "rule_item_version_id": e.version,
            "claim_id": None,
            "reverses_id": e.reverses.id if e.reverses else None,
            "created_by": None,
            "created_at": e.at.isoformat(timespec="microseconds"),
            "month": e.month,
            "note": e.note,
        },
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )


def load(url: str, county: County, size: int) -> None:
    """Generate and COPY the ledger of `size` entries with consistent totals and accounts."""
    entries, flags = generate(county, size)
    village_of = {hid: vid for hid, vid, _ in county.households}
    by_household: dict[int, list[Entry]] = defaultdict(list)
    for e in entries:
        by_household[e.household].append(e)
    accounts, rows = [], []
    month_totals: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    member_totals: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    # Ids in chain order, so a reversal (later in its chain) points at a smaller id.
    next_id = 0
    chains = []
    for account_id, (hid, chain) in enumerate(sorted(by_household.items()), 1):
        chain.sort(key=lambda e: e.at)
        for e in chain:
            next_id += 1
            e.id = next_id
        chains.append((account_id, hid, chain))
    created = datetime(2016, 1, 1, tzinfo=UTC)
    for account_id, hid, chain in chains:
        head, available, score_total = GENESIS_HASH, 0, 0
        for seq, e in enumerate(chain, 1):
            digest = hashlib.sha256((head + _canonical(account_id, seq, e)).encode()).hexdigest()
            rows.append(
                (
                    e.id,
                    account_id,
                    seq,
                    e.kind,
                    e.amount,
                    e.member,
                    e.version,
                    None,
                    e.reverses.id if e.reverses else None,
                    None,
                    e.at,
                    e.month,
                    e.note,
                    head,
                    digest,
                )
            )
            head = digest
            available += e.amount
            scores = e.kind in ("earn", "deduct") or e.kind == "reverse"
            totals = month_totals[(account_id, e.month)]
            totals[0] += e.amount if scores else 0
            totals[1] += e.amount if e.kind == "earn" else 0
            totals[2] += e.amount if e.kind == "deduct" else 0
            totals[3] += e.amount if e.kind == "redeem" else 0
            if scores:
                score_total += e.amount
                member = member_totals[(e.member, e.month)]
                member[0] += e.amount
                member[1] += e.amount if e.kind == "earn" else 0
                member[2] += e.amount if e.kind == "deduct" else 0
        accounts.append(
            (account_id, hid, village_of[hid], available, 0, score_total, len(chain), head, created)
        )
    household_of = {a[0]: a[1] for a in accounts}
    with psycopg.connect(url) as conn:
        conn.execute(f"TRUNCATE {', '.join(LEDGER_TABLES)} RESTART IDENTITY CASCADE")
        # The rows are consistent by construction: skip the per-row foreign-key triggers
        # while loading (a bulk-load setting of this session only).
        conn.execute("SET session_replication_role = replica")
        copy_rows(
            conn,
            "accounts",
            [
                "id",
                "household_id",
                "village_id",
                "available",
                "held",
                "earned_total",
                "entry_count",
                "head_hash",
                "created_at",
            ],
            accounts,
        )
        copy_rows(
            conn,
            "ledger_entries",
            [
                "id",
                "account_id",
                "seq",
                "kind",
                "amount",
                "member_id",
                "rule_item_version_id",
                "claim_id",
                "reverses_id",
                "created_by",
                "created_at",
                "month",
                "note",
                "prev_hash",
                "hash",
            ],
            rows,
        )
        copy_rows(
            conn,
            "month_totals",
            [
                "account_id",
                "household_id",
                "village_id",
                "month",
                "score",
                "earned",
                "deducted",
                "redeemed",
                "expired",
            ],
            (
                (aid, household_of[aid], village_of[household_of[aid]], month, *t)
                for (aid, month), t in month_totals.items()
            ),
        )
        copy_rows(
            conn,
            "member_month_totals",
            ["member_id", "household_id", "village_id", "month", "score", "earned", "deducted"],
            (
                (mid, mid, village_of[mid], month, *t)  # heads: villager id == household id
                for (mid, month), t in member_totals.items()
            ),
        )
        copy_rows(
            conn,
            "household_flags",
            ["household_id", "kind", "from_month", "until_month", "note", "created_at"],
            (
                (hid, "veto", first, last, "一票否决：大操大办", created)
                for hid, first, last in flags
            ),
        )
        conn.execute("SELECT setval('ledger_entries_id_seq', (SELECT max(id) FROM ledger_entries))")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


# ---- measuring ------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def board_once(engine: Engine, village_id: int) -> tuple[float, dict[str, Any]]:
    """One board as GET /api/v1/villages/{id}/board builds it: a fresh session, ended with
    COMMIT (backend/api/boards.py `_end_read`, which keeps psycopg's prepared statements)."""
    started = time.perf_counter()
    with Session(engine) as session:
        board = build_board(session, village_id, standings.parse_period(MONTH), TZ)
        session.commit()
    return (time.perf_counter() - started) * 1000, board


def time_call(engine: Engine, runs: int, call: Any) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        with Session(engine) as session:
            call(session)
            session.commit()
        times.append((time.perf_counter() - started) * 1000)
    return times


def prepare(url: str, size: int) -> tuple[Engine, County]:
    """A county database with `size` ledger entries and February 2026 published."""
    create_schema(url)
    engine = make_engine(url)
    started = time.perf_counter()
    county = build_county(engine, url)
    load(url, county, size)
    with Session(engine) as session:
        entries = session.scalar(text("SELECT count(*) FROM ledger_entries"))
        month_rows = session.scalar(text("SELECT count(*) FROM month_totals"))
        village_entries = session.scalar(
            text(
                "SELECT count(*) FROM ledger_entries e JOIN accounts a ON a.id = e.account_id"
                " WHERE a.village_id = :v"
            ),
            {"v": county.measured_village},
        )
        closing.close_month(
            session, county.measured_village, "2026-02", now=datetime(2026, 3, 5, tzinfo=UTC), tz=TZ
        )
        session.commit()
    print(
        f"{entries:,} ledger entries ({village_entries:,} in the measured village), "
        f"{month_rows:,} month totals, {len(county.households):,} households in "
        f"{TOWNSHIPS * VILLAGES_PER_TOWNSHIP} villages: built in "
        f"{time.perf_counter() - started:.1f} s"
    )
    return engine, county


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=400, help="boards timed at each size")
    add_postgres_argument(parser)
    args = parser.parse_args()

    with (
        scratch_database(args.postgres, "bench_rankings") as small_url,
        scratch_database(args.postgres, "bench_rankings") as large_url,
    ):
        prepared = {
            size: prepare(url, size)
            for size, url in zip(SIZES, (small_url, large_url), strict=True)
        }
        village = prepared[SIZES[0]][1].measured_village
        boards: dict[int, dict[str, Any]] = {}
        times: dict[int, list[float]] = {size: [] for size in SIZES}
        for size, (engine, _) in prepared.items():
            for _ in range(30):  # warm the pools, the caches and PostgreSQL's buffers
                boards[size] = board_once(engine, village)[1]
        # Both databases are on the same server: alternate blocks, so a noisy moment on a
        # shared machine weighs on both sizes alike.
        block = 50
        for _ in range(max(1, args.runs // block)):
            for size, (engine, _) in prepared.items():
                times[size] += [board_once(engine, village)[0] for _ in range(block)]
        p50s = {}
        for size, (engine, _) in prepared.items():
            board = boards[size]
            p50s[size] = statistics.median(times[size])
            print(f"\nat {size:,} ledger entries:")
            print(
                f"  monthly village board ({board['households']} households, "
                f"{len(board['red'])} red, {len(board['black'])} black, "
                f"{len(board['corrections'])} corrections): p50 {p50s[size]:.2f} ms  "
                f"p99 {percentile(times[size], 99):.2f} ms  ({len(times[size])} runs)"
            )
            scope = standings.Scope("village", village, (village,))
            ranking = time_call(
                engine,
                100,
                lambda s, scope=scope: standings.ranking(
                    s, scope, standings.parse_period(MONTH), limit=50
                ),
            )
            print(
                f"  village ranking (top 50):  p50 {statistics.median(ranking):.2f} ms  "
                f"p99 {percentile(ranking, 99):.2f} ms"
            )
            closed = time_call(
                engine,
                100,
                lambda s: village_board(s, village, standings.parse_period("2026-02"), TZ),
            )
            print(
                f"  published (closed) board:  p50 {statistics.median(closed):.2f} ms  "
                f"p99 {percentile(closed, 99):.2f} ms"
            )
        for engine, _ in prepared.values():
            engine.dispose()
    small, large = p50s[SIZES[0]], p50s[SIZES[1]]
    # The work ran in this process (no gunicorn here): its peak memory stands for a worker's.
    print(f"process_peak_rss_mb={peak_rss_mb():.1f}")
    print(f"p50_ms={large:.2f} ratio={large / small:.2f}")


if __name__ == "__main__":
    main()
