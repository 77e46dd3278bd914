"""Closing a village's month (结榜) with 1,000 households on PostgreSQL: the board's
snapshot and its Merkle root over every household's month (points.notice).

Creates a PostgreSQL database of its own (dropped at the end, also on failure): one village
of 1,000 households, each with a few entries of March 2026 and of February (through
points.ledger.append, so chains and balances are real), 100 of them without any. Then times
`points.boards.closing.close_month` of March (one transaction, COMMIT included) and, apart,
the recomputation of the root from the ledger that `flask ledger verify` and a proof do.

    .venv/bin/python bench/close_month.py [--postgres postgresql://postgres@127.0.0.1:5432]

The last line is `close_ms=<closing> root_ms=<recomputing the root> leaves=<households>`.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy.orm import Session  # noqa: E402

from bench._pg import (  # noqa: E402
    add_postgres_argument,
    create_schema,
    peak_rss_mb,
    scratch_database,
)
from points import ledger, notice  # noqa: E402
from points.boards import closing  # noqa: E402
from points.db import make_engine  # noqa: E402
from points.models import BoardSnapshot, Household, Township, Village  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
HOUSEHOLDS = 1000


def seed(session: Session) -> int:
    township = Township(name="青石镇", code="T1")
    session.add(township)
    session.flush()
    village = Village(township_id=township.id, name="清水村")
    session.add(village)
    session.flush()
    households = [Household(village_id=village.id, name=f"{i}号户") for i in range(HOUSEHOLDS)]
    session.add_all(households)
    session.flush()
    rng = random.Random(7)
    for household in households[100:]:
        for month, day in (
            (2, rng.randint(1, 28)),
            (3, rng.randint(1, 28)),
            (3, rng.randint(1, 28)),
        ):
            amount = rng.choice((-3, 2, 4, 5, 10))
            ledger.append(
                session,
                household_id=household.id,
                kind="earn" if amount > 0 else "deduct",
                amount=amount,
                when=ledger.EntryTime(TZ, at=datetime(2026, month, day, 10, tzinfo=TZ)),
            )
    session.commit()
    return village.id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_postgres_argument(parser)
    args = parser.parse_args()
    with scratch_database(args.postgres, "close") as url:
        create_schema(url)
        engine = make_engine(url)
        try:
            with Session(engine) as session:
                village_id = seed(session)
            with Session(engine) as session:
                started = time.perf_counter()
                snapshot, created = closing.close_month(
                    session, village_id, "2026-03", now=datetime(2026, 4, 2, 10, tzinfo=TZ), tz=TZ
                )
                session.commit()
                close_ms = (time.perf_counter() - started) * 1000
                assert created and snapshot.month_leaves == HOUSEHOLDS
            with Session(engine) as session:
                snapshot = session.query(BoardSnapshot).one()
                started = time.perf_counter()
                notice.checked_leaves(session, snapshot, TZ)
                root_ms = (time.perf_counter() - started) * 1000
        finally:
            engine.dispose()
    # The work ran in this process (no gunicorn here): its peak memory stands for a worker's.
    print(f"process_peak_rss_mb={peak_rss_mb():.1f}")
    print(f"close_ms={close_ms:.0f} root_ms={root_ms:.0f} leaves={HOUSEHOLDS}")


if __name__ == "__main__":
    main()
