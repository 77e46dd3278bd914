"""A county's database at full size: how long does every GET of the API and every console
page take, and how does that grow with the ledger?

For each ledger size (`--sizes`, default 1,000,000 and 10,000,000 entries) it creates a
PostgreSQL database of its own (schema by `flask db upgrade`; dropped at the end, also on
failure, unless `--keep`) and loads a county into it with COPY:
- 15 townships of 20 villages, each township with the default catalog installed
  (`points.catalogs.install_catalog`), each village with a shop (the demo's shelf,
  `points.demo.stock_shelf`), a cadre and a clerk; an admin per township and one for the
  county;
- `--households` households (a head villager each) spread over the 300 villages;
- the ledger: real hash chains (`points.ledger.chain_hash` on every entry, in `seq` order),
  earnings and deductions of the township's items, redemptions (each a fulfilled order with
  its line) and reversals; accounts (available + held == the sum of the entries, held ==
  the open orders' points), month totals and member month totals summed from the same rows.
  One household, the measured villager's, has a thousandth of the ledger;
- `--claims` claims: those posted are the claims of ledger entries (the entry's points, item
  version and month), the rest pending, approved, in notice, rejected or withdrawn; the
  monthly issued counter (`monthly_issued`) summed from them as `points.budget` counts;
- `--audit` audit lines, `--movements` stock movements, 20 activities a village and the
  check-ins of those past (60 a meeting in the measured village, 60% of its households in
  every other: about a million), then the village month totals summed from the ledger and
  the check-ins (`points.village_totals.rebuild`), and last month's board of the measured
  village published (`points.boards.closing.close_month`).
With `--verify`, `points.ledger.verify_all`, `points.budget.verify_issued` and
`points.village_totals.verify` check the load
(for small sizes: it walks every chain).

Then VACUUM ANALYZE, the app under gunicorn (2 sync workers), and as each role of the
measured village (villager: a session made with `points.sessions.login`; staff: POST
/api/v1/auth/login, and the console's login form for the console) every GET operation of
/api/v1/openapi.json: its path's ids those of the role's own objects, and where it has them
the first page, the last page (from `total` and `per_page`) and each filter. An operation a
role may not call (not 200 on the first request) is left out for that role. Then every
console page of the role's menu, a detail page of each kind, and the last page of each
pager. Each is requested 2 times unmeasured and `--runs` (40) times measured; a request that
takes more than 2 s on its warm-up is measured 3 times only.

With two sizes, each size's own pass only finds what to request (ids, last pages, which
roles may) and measures it once; then both sizes' servers run at once and every (operation,
role) is timed request by request at one size and then the other (which first, in turn),
so that the machine's speed drifting during the run does not show as growth (timed one
whole size after the other, operations that read nothing of the ledger came out up to twice
as slow at the second size; all of an operation's runs at one size, then at the other, up
to 1.4 times). `--sequential` reports each size's own pass instead, measured `--runs` times.

    .venv/bin/python bench/scale.py [--sizes 1000000,10000000] [--households 100000]
        [--claims 1000000] [--audit 1000000] [--movements 100000] [--runs 40] [--keep]
        [--load-only]    # build and keep the database(s), time nothing
    .venv/bin/python bench/scale.py --reuse vp_scale_1_a,vp_scale_2_b [--only REGEX]
        [--roles cadre,villager]   # time against databases kept earlier, one per size
        # (brought to the newest migration first); only the operations matching REGEX
    .venv/bin/python bench/scale.py --households 2000 --sizes 20000,60000 --claims 20000 \\
        --audit 20000 --movements 2000 --verify        # a quick run

Prints the load times, the workers' peak RSS at each size, and a table: operation (method,
path, parameters), role, p50 and p99 at the smallest and largest size, the ratio of the
p50s and that of the answers' sizes in bytes (a month's board or settlement is longer in the
larger county, which is ten times as busy every month). Then `worst_ratio_same_answer=`, the
largest p50 ratio among the operations whose answer grew by less than 1.2 times, and last
`worst_p50_ms=<slowest p50 at the largest size> worst_ratio=<largest p50 ratio>`.
"""

from __future__ import annotations

import argparse
import bisect
import http.client
import json
import math
import os
import random
import re
import secrets
import statistics
import sys
import time
import urllib.parse
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from sqlalchemy import select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

import rules  # noqa: E402
from bench._pg import (  # noqa: E402
    add_postgres_argument,
    fetch,
    gunicorn,
    migrate,
    percentile,
    request,
    scratch_database,
    workers_peak_rss_mb,
)
from points import budget, catalogs, claims, demo, ledger, sessions, village_totals  # noqa: E402
from points.boards import closing  # noqa: E402
from points.db import make_engine  # noqa: E402
from points.models import (  # noqa: E402
    Reward,
    RuleCatalog,
    RuleItem,
    RuleItemVersion,
    Shop,
    Township,
    User,
    Village,
)
from points.models.ledger import GENESIS_HASH, LedgerEntry  # noqa: E402
from points.passwords import hash_password  # noqa: E402
from points.sessions import TokenSettings  # noqa: E402
from rules.periods import add_months, month_key  # noqa: E402

SECRET = "scale-secret-" + secrets.token_hex(16)
PASSWORD = "Scale-bench-2026"
TZ = ZoneInfo("Asia/Shanghai")
# The share of a village's households at each of its past meetings (but the measured
# village's, which has 60 a meeting).
CHECKIN_SHARE = 0.6
TOWNSHIPS, VILLAGES_PER_TOWNSHIP, GROUPS = 15, 20, 3
HISTORY_YEARS = 10
STAFF_ROLES = ("cadre", "clerk", "township_admin", "county_admin")
ROLES = ("villager", *STAFF_ROLES)
SLOW_MS = 2000  # a first request slower than this: measured 3 times only
VERY_SLOW_MS = 10_000  # … and than this: once
SINCE = (datetime.now(UTC) - timedelta(days=30)).strftime("%Y-%m-%dT00:00:00Z")
# Entry kinds by share of the ledger (a reversal needs an earlier earning to reverse).
EARN, DEDUCT, REDEEM = 0.80, 0.87, 0.99
# Claims not posted, by share of them.
OTHER_CLAIMS = (
    ("rejected", 0.60),
    ("withdrawn", 0.20),
    ("pending", 0.12),
    ("in_notice", 0.06),
    ("approved", 0.02),
)
AUDIT_ACTIONS = (
    ("claim.approve", "claims"),
    ("claim.reject", "claims"),
    ("ledger.reverse", "ledger_entries"),
    ("reward.update", "rewards"),
    ("household.update", "households"),
)


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


# ---- the county ---------------------------------------------------------------------------


@dataclass
class Place:
    """A village with what the generator needs of it."""

    id: int
    township_id: int
    shop_id: int
    cadre: int
    clerk: int
    earn: list[tuple[int, int, int]]  # (item id, version id, points) of its township
    deduct: list[tuple[int, int, int]]
    rewards: list[tuple[int, str, int]]  # (reward id, name, points) of its shop


@dataclass
class County:
    places: list[Place]
    households: list[tuple[int, int]]  # (household id == head villager id, village index)
    users: dict[str, int]  # the measured users by role
    usernames: dict[str, str]
    activity_item: dict[int, int]  # township → its GOV-ASSEMBLY item


def build_county(url: str, households: int) -> County:
    """Townships, catalogs, villages, shops and staff through the ORM; groups, households and
    heads by COPY."""
    engine = make_engine(url)
    password = hash_password(PASSWORD)
    with Session(engine) as s:
        townships = [Township(name=f"规模{t}镇", code=f"S{t}") for t in range(TOWNSHIPS)]
        s.add_all(townships)
        s.flush()
        for township in townships:
            catalogs.install_catalog(s, None, township.id, rules.load_default_catalog())
        villages = [
            Village(township_id=t.id, name=f"{t.name}{v + 1}村")
            for t in townships
            for v in range(VILLAGES_PER_TOWNSHIP)
        ]
        villages[0].name = "清水村"
        s.add_all(villages)
        s.flush()
        shops = [
            Shop(township_id=v.township_id, name=f"{v.name}积分超市", villages=[v])
            for v in villages
        ]
        s.add_all(shops)
        s.flush()
        for shop in shops:
            demo.stock_shelf(s, shop)
        staff = [User(username="scale_county", password_hash=password, role="county_admin")]
        staff += [
            User(
                username=f"scale_township_{k}",
                password_hash=password,
                role="township_admin",
                township_id=t.id,
            )
            for k, t in enumerate(townships)
        ]
        cadres = [
            User(
                username=f"scale_cadre_{k}",
                password_hash=password,
                role="cadre",
                name=f"{v.name}村干部",
                township_id=v.township_id,
                village_id=v.id,
            )
            for k, v in enumerate(villages)
        ]
        clerks = [
            User(
                username=f"scale_clerk_{k}",
                password_hash=password,
                role="clerk",
                name=f"{shop.name}店员",
                township_id=shop.township_id,
                shop_id=shop.id,
            )
            for k, shop in enumerate(shops)
        ]
        s.add_all([*staff, *cadres, *clerks])
        s.flush()
        items: dict[int, dict[str, list[tuple[int, int, int]]]] = defaultdict(
            lambda: {"earn": [], "deduct": []}
        )
        activity_item = {}
        for township_id, code, item_id, version_id, points in s.execute(
            select(
                RuleCatalog.township_id,
                RuleItem.code,
                RuleItem.id,
                RuleItem.current_version_id,
                RuleItemVersion.points,
            )
            .join(RuleItem, RuleItem.catalog_id == RuleCatalog.id)
            .join(RuleItemVersion, RuleItemVersion.id == RuleItem.current_version_id)
        ):
            assert township_id is not None and version_id is not None
            if points > 0:
                items[township_id]["earn"].append((item_id, version_id, points))
            elif points < 0:
                items[township_id]["deduct"].append((item_id, version_id, points))
            if code == "GOV-ASSEMBLY":
                activity_item[township_id] = item_id
        rewards: dict[int, list[tuple[int, str, int]]] = defaultdict(list)
        for reward in s.scalars(select(Reward).order_by(Reward.id)):
            rewards[reward.shop_id].append((reward.id, reward.name, reward.points))
        places = [
            Place(
                v.id,
                v.township_id,
                shop.id,
                cadre.id,
                clerk.id,
                items[v.township_id]["earn"],
                items[v.township_id]["deduct"],
                rewards[shop.id],
            )
            for v, shop, cadre, clerk in zip(villages, shops, cadres, clerks, strict=True)
        ]
        users = {
            "county_admin": staff[0].id,
            "township_admin": staff[1].id,
            "cadre": cadres[0].id,
            "clerk": clerks[0].id,
        }
        usernames = {
            "county_admin": str(staff[0].username),
            "township_admin": str(staff[1].username),
            "cadre": str(cadres[0].username),
            "clerk": str(clerks[0].username),
        }
        s.commit()
    engine.dispose()

    rng = random.Random(7)
    surnames = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁"
    given = "建国秀英桂兰志强海燕春梅国华玉珍德明淑芬红霞文军丽娟永福金花"
    now = datetime(2016, 1, 1, tzinfo=UTC)
    groups = [
        (k * GROUPS + g + 1, place.id, f"第{g + 1}村民小组")
        for k, place in enumerate(places)
        for g in range(GROUPS)
    ]
    rows, heads, county_households = [], [], []
    for hid in range(1, households + 1):
        index = (hid - 1) * len(places) // households
        name = rng.choice(surnames) + "".join(rng.sample(given, rng.choice((1, 2))))
        group = index * GROUPS + hid % GROUPS + 1
        rows.append((hid, places[index].id, group, f"{name}户", f"{hid}号", False, now))
        heads.append((hid, hid, name, "户主", True, now))
        county_households.append((hid, index))
    with psycopg.connect(url) as conn:
        copy_rows(conn, "villager_groups", ["id", "village_id", "name"], groups)
        copy_rows(
            conn,
            "households",
            ["id", "village_id", "group_id", "name", "address", "public_board_opt_out"]
            + ["created_at"],
            rows,
        )
        copy_rows(
            conn,
            "villagers",
            ["id", "household_id", "name", "relation", "active", "created_at"],
            heads,
        )
        for table in ("villager_groups", "households", "villagers"):
            conn.execute(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))")
        # The measured villager: the head of the first household, bound to a WeChat user.
        users["villager"] = conn.execute(
            "INSERT INTO users (role, openid, villager_id, disabled, must_change_password, "
            "created_at) VALUES ('villager', 'scale-villager', 1, false, false, now()) "
            "RETURNING id"
        ).fetchall()[0][0]
    return County(places, county_households, users, usernames, activity_item)


def copy_rows(conn: psycopg.Connection[Any], table: str, columns: list[str], rows: Any) -> None:
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


# ---- the ledger, claims and orders ----------------------------------------------------------


@dataclass(slots=True)
class Draft:
    """What `points.ledger.canonical` reads of an entry: built once and refilled for each
    row, so that ten million entries are hashed by the project's own function without ten
    million ORM objects."""

    account_id: int = 0
    seq: int = 0
    kind: str = ""
    amount: int = 0
    member_id: int | None = None
    rule_item_version_id: int | None = None
    claim_id: int | None = None
    reverses_id: int | None = None
    created_by: int | None = None
    created_at: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    month: str = ""
    note: str | None = None


def _text(value: Any) -> str:
    return "\\N" if value is None else str(value)


@dataclass
class Months:
    """Month keys (village time) of moments in seconds since the epoch, by bisection."""

    starts: list[int]
    keys: list[str]

    @classmethod
    def around(cls, now: datetime) -> Months:
        first = add_months(month_key(now.astimezone(TZ)), -12 * HISTORY_YEARS - 1)
        keys = [add_months(first, k) for k in range(12 * HISTORY_YEARS + 3)]
        starts = [int(datetime(int(k[:4]), int(k[5:]), 1, tzinfo=TZ).timestamp()) for k in keys]
        return cls(starts, keys)

    def of(self, seconds: int) -> str:
        return self.keys[bisect.bisect_right(self.starts, seconds) - 1]


@dataclass
class Loaded:
    entries: int = 0
    posted_claims: int = 0
    claims: int = 0
    redemptions: int = 0
    accounts: int = 0
    issued: dict[tuple[int, str], int] = field(default_factory=lambda: defaultdict(int))


CLAIM_COLUMNS = [
    "id",
    "village_id",
    "household_id",
    "member_id",
    "rule_item_id",
    "rule_item_version_id",
    "source",
    "units",
    "points",
    "capped",
    "reason",
    "note",
    "evidence",
    "status",
    "occurred_at",
    "submitted_by",
    "created_at",
    "notice_ends_at",
    "decided_at",
    "posted_at",
    "reject_reason",
    "rejected_by",
    "withdraw_reason",
    "withdrawn_by",
    "withdrawn_at",
]
REDEMPTION_COLUMNS = [
    "id",
    "shop_id",
    "household_id",
    "village_id",
    "member_id",
    "source",
    "status",
    "total_points",
    "cash_paid",
    "points",
    "exchange_rate",
    "created_by",
    "created_at",
    "expires_at",
    "fulfilled_at",
    "fulfilled_by",
    "month",
    "ledger_entry_id",
    "voided_at",
    "voided_by",
    "void_reason",
    "pickup_code",
]
ENTRY_COLUMNS = [
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
]


def other_status(roll: float) -> str:
    """The status of a claim not posted, for a roll in [0, 1)."""
    for status, share in OTHER_CLAIMS:
        if roll < share:
            return status
        roll -= share
    return OTHER_CLAIMS[0][0]


def _claim_row(
    claim_id: int,
    place: Place,
    household: int,
    item: tuple[int, int, int],
    points: int,
    status: str,
    occurred: datetime,
    now: datetime,
    posted_at: datetime | None = None,
) -> tuple[Any, ...]:
    decided = None if status in ("pending", "approved") else occurred + timedelta(days=1)
    decided = min(decided, now) if decided else None
    notice_ends = (
        decided + timedelta(days=5) if status in ("in_notice", "posted") and decided else None
    )
    rejected = status == "rejected"
    withdrawn = status == "withdrawn"
    return (
        claim_id,
        place.id,
        household,
        household,
        item[0],
        item[1],
        "cadre",
        None,
        points,
        False,
        f"按细则计 {points} 分",
        None,
        "[]",
        status,
        occurred,
        place.cadre,
        occurred + timedelta(hours=2),
        notice_ends,
        None if withdrawn else decided,
        posted_at,
        "材料不全" if rejected else None,
        place.cadre if rejected else None,
        "登记错了户" if withdrawn else None,
        place.cadre if withdrawn else None,
        occurred + timedelta(days=1) if withdrawn else None,
    )


def load_ledger(url: str, county: County, entries: int, claims: int, now: datetime) -> Loaded:
    """Accounts, chained entries, their totals, the posted claims of entries and the other
    claims, redemptions and their lines: one pass over the households, each table streamed
    by its own COPY (foreign-key triggers off: the rows agree by construction)."""
    rng = random.Random(2026)
    months = Months.around(now)
    start = int((now - timedelta(days=365 * HISTORY_YEARS)).timestamp())
    end = int((now - timedelta(hours=1)).timestamp())
    households = county.households
    big = max(50, entries // 1000)  # the measured villager's household
    rest = entries - big
    base, extra = divmod(rest, max(1, len(households) - 1))
    # Posted claims: a share of the earnings and deductions old enough to have been posted.
    posted_target = int(claims * 0.7)
    claim_share = min(1.0, posted_target / max(1, entries * DEDUCT))
    loaded = Loaded()
    draft = Draft()
    chain_hash = ledger.chain_hash
    claim_id = entry_id = redemption_id = 0
    pickup: dict[int, int] = defaultdict(int)
    week = timedelta(days=7)
    with ExitStack() as stack:
        conns = {
            name: stack.enter_context(psycopg.connect(url))
            for name in (
                "ledger_entries",
                "accounts",
                "month_totals",
                "member_month_totals",
                "claims",
                "claim_approvals",
                "redemptions",
                "redemption_lines",
            )
        }
        for conn in conns.values():
            conn.execute("SET session_replication_role = replica")

        def copy(name: str, columns: list[str]) -> Any:
            cursor = stack.enter_context(conns[name].cursor())
            return stack.enter_context(
                cursor.copy(f"COPY {name} ({', '.join(columns)}) FROM STDIN")
            )

        entries_out = copy("ledger_entries", ENTRY_COLUMNS)
        accounts_out = copy(
            "accounts",
            ["id", "household_id", "village_id", "available", "held", "earned_total"]
            + ["entry_count", "head_hash", "created_at"],
        )
        totals_out = copy(
            "month_totals",
            ["account_id", "household_id", "village_id", "month", "score", "earned"]
            + ["deducted", "redeemed", "expired", "opening"],
        )
        members_out = copy(
            "member_month_totals",
            ["member_id", "household_id", "village_id", "month", "score", "earned", "deducted"],
        )
        claims_out = copy("claims", CLAIM_COLUMNS)
        approvals_out = copy("claim_approvals", ["claim_id", "user_id", "created_at"])
        redemptions_out = copy("redemptions", REDEMPTION_COLUMNS)
        lines_out = copy(
            "redemption_lines",
            ["redemption_id", "reward_id", "name", "unit_points", "quantity", "points"],
        )

        def redemption(
            place: Place, household: int, status: str, at: datetime, entry: int | None, month: str
        ) -> int:
            nonlocal redemption_id
            redemption_id += 1
            reward_id, name, unit = rng.choice(place.rewards)
            quantity = rng.randint(1, 3)
            points = unit * quantity
            voided = status in ("cancelled", "expired")
            code = None
            if status == "reserved":
                pickup[place.shop_id] += 1
                code = f"{pickup[place.shop_id]:06d}"
            redemptions_out.write_row(
                (
                    redemption_id,
                    place.shop_id,
                    household,
                    place.id,
                    household,
                    "counter" if status == "fulfilled" else "order",
                    status,
                    points,
                    "0.00",
                    points,
                    "0.5",
                    place.clerk,
                    at,
                    at + week if status != "fulfilled" else None,
                    at if status == "fulfilled" else None,
                    place.clerk if status == "fulfilled" else None,
                    month if status == "fulfilled" else None,
                    entry,
                    at + week if voided else None,
                    place.clerk if status == "cancelled" else None,
                    "村民取消" if status == "cancelled" else None,
                    code,
                )
            )
            lines_out.write_row((redemption_id, reward_id, name, unit, quantity, points))
            loaded.redemptions += 1
            return points

        for account_id, (household, index) in enumerate(households, 1):
            place = county.places[index]
            n = big if account_id == 1 else base + (1 if account_id - 2 < extra else 0)
            if n <= 0:
                continue
            moments = sorted(rng.randrange(start, end) for _ in range(n))
            head, available, score_total = GENESIS_HASH, 0, 0
            totals: dict[str, list[int]] = {}
            member: dict[str, list[int]] = {}
            unclaimed: list[tuple[int, int, int]] = []  # earnings one may reverse
            lines = []
            for seq, seconds in enumerate(moments, 1):
                entry_id += 1
                at = datetime.fromtimestamp(seconds, UTC)
                roll = rng.random()
                kind, version, reverses, note, claim = "earn", None, None, None, None
                month = months.of(seconds)
                if roll >= REDEEM and unclaimed:
                    target, amount, version = unclaimed.pop(rng.randrange(len(unclaimed)))
                    kind, amount, reverses, note = "reverse", -amount, target, "登记重复"
                    creator = place.cadre
                elif not DEDUCT <= roll < REDEEM:
                    deduct = EARN <= roll < DEDUCT
                    item = rng.choice(place.deduct if deduct else place.earn)
                    kind, version, amount = ("deduct" if deduct else "earn"), item[1], item[2]
                    creator = place.cadre
                    if rng.random() < claim_share:
                        # Posted after its notice: the deed a week before, in whose month
                        # the entry counts (EntryTime.counts_for).
                        occurred = at - week
                        month = months.of(seconds - 7 * 86400)
                        claim_id += 1
                        claim = claim_id
                        claims_out.write_row(
                            _claim_row(
                                claim, place, household, item, amount, "posted", occurred, now, at
                            )
                        )
                        approvals_out.write_row((claim, place.cadre, occurred + timedelta(days=1)))
                        loaded.posted_claims += 1
                        if amount > 0:
                            loaded.issued[(place.id, month)] += amount
                    elif not deduct:
                        unclaimed.append((entry_id, amount, item[1]))
                else:
                    kind, creator = "redeem", place.clerk
                    amount = -redemption(place, household, "fulfilled", at, entry_id, month)
                draft.account_id, draft.seq, draft.kind, draft.amount = (
                    account_id,
                    seq,
                    kind,
                    amount,
                )
                draft.member_id = None if kind == "redeem" else household
                draft.rule_item_version_id, draft.claim_id = version, claim
                draft.reverses_id, draft.created_by = reverses, creator
                draft.created_at, draft.month, draft.note = at, month, note
                digest = chain_hash(head, cast(LedgerEntry, draft))
                lines.append(
                    "\t".join(
                        (
                            str(entry_id),
                            str(account_id),
                            str(seq),
                            kind,
                            str(amount),
                            _text(draft.member_id),
                            _text(version),
                            _text(claim),
                            _text(reverses),
                            str(creator),
                            at.isoformat(),
                            month,
                            _text(note),
                            head,
                            digest,
                        )
                    )
                )
                head = digest
                available += amount
                scores = kind in ("earn", "deduct", "reverse")
                row = totals.setdefault(month, [0, 0, 0, 0])
                if scores:
                    score_total += amount
                    row[0] += amount
                    person = member.setdefault(month, [0, 0, 0])
                    person[0] += amount
                    if kind == "earn":
                        row[1] += amount
                        person[1] += amount
                    elif kind == "deduct":
                        row[2] += amount
                        person[2] += amount
                else:
                    row[3] += amount
            entries_out.write("\n".join(lines) + "\n")
            loaded.entries += n
            held = 0
            if account_id == 1 or account_id % 100 == 0:
                # An open order holds its points (available → held).
                points = redemption(
                    place, household, "reserved", now - timedelta(hours=3), None, ""
                )
                held, available = points, available - points
            if rng.random() < 0.1:
                redemption(
                    place,
                    household,
                    rng.choice(("cancelled", "expired")),
                    datetime.fromtimestamp(rng.randrange(start, end), UTC),
                    None,
                    "",
                )
            accounts_out.write_row(
                (account_id, household, place.id, available, held, score_total, n, head, now)
            )
            for month, (score, earned, deducted, redeemed) in totals.items():
                totals_out.write_row(
                    (account_id, household, place.id, month, score, earned, deducted, redeemed)
                    + (0, 0)
                )
            for month, (score, earned, deducted) in member.items():
                members_out.write_row(
                    (household, household, place.id, month, score, earned, deducted)
                )
            loaded.accounts += 1

        # The claims that have not posted (or never will).
        for _ in range(max(0, claims - loaded.posted_claims)):
            household, index = households[rng.randrange(len(households))]
            place = county.places[index]
            status = other_status(rng.random())
            recent = status in ("pending", "in_notice", "approved")
            seconds = rng.randrange(end - 20 * 86400 if recent else start, end)
            occurred = datetime.fromtimestamp(seconds, UTC)
            item = rng.choice(place.earn)
            claim_id += 1
            claims_out.write_row(
                _claim_row(claim_id, place, household, item, item[2], status, occurred, now)
            )
            if status == "in_notice":
                approvals_out.write_row((claim_id, place.cadre, occurred + timedelta(days=1)))
                loaded.issued[(place.id, months.of(seconds))] += item[2]
        loaded.claims = claim_id
    with psycopg.connect(url) as conn:
        for table, column in (
            ("ledger_entries", "id"),
            ("accounts", "id"),
            ("claims", "id"),
            ("redemptions", "id"),
        ):
            conn.execute(
                f"SELECT setval('{table}_{column}_seq', (SELECT coalesce(max(id), 1) FROM {table}))"
            )
        copy_rows(
            conn,
            "monthly_issued",
            ["village_id", "month", "issued"],
            ((v, m, issued) for (v, m), issued in loaded.issued.items() if issued),
        )
    return loaded


# ---- the rest: audit, stock, activities ------------------------------------------------------


def fill_village_month_totals(url: str) -> None:
    """The village months the points report reads and the village months by item, summed
    from what was just loaded (`points.village_totals.rebuild`, where an app keeps them as
    entries are appended and check-ins recorded)."""
    engine = make_engine(url)
    with Session(engine) as s:
        village_totals.rebuild(s, TZ)
        s.commit()
    engine.dispose()


def fill_claim_approvals(url: str) -> None:
    """Each claim's count of its approvals (what the review keeps beside them), counted from
    the approval rows just loaded (`points.claims.recount_approvals`)."""
    engine = make_engine(url)
    with Session(engine) as s:
        claims.recount_approvals(s)
        s.commit()
    engine.dispose()


def load_rest(url: str, county: County, audit: int, movements: int, now: datetime) -> None:
    rng = random.Random(11)
    start = now - timedelta(days=365 * HISTORY_YEARS)
    span = int((now - start).total_seconds())
    with psycopg.connect(url) as conn:
        conn.execute("SET session_replication_role = replica")
        moments = sorted(rng.randrange(span) for _ in range(audit))

        def audit_rows() -> Iterator[tuple[Any, ...]]:
            for seconds in moments:
                place = county.places[rng.randrange(len(county.places))]
                action, table = rng.choice(AUDIT_ACTIONS)
                yield (
                    start + timedelta(seconds=seconds),
                    place.cadre,
                    action,
                    table,
                    str(rng.randrange(1, 1_000_000)),
                    place.township_id,
                    place.id,
                    '{"status": "pending"}',
                    '{"status": "posted"}',
                )

        copy_rows(
            conn,
            "audit_log",
            ["at", "actor_id", "action", "object_type", "object_id", "township_id", "village_id"]
            + ["before", "after"],
            audit_rows(),
        )
        rewards = [(r[0], p) for p in county.places for r in p.rewards]
        stock: dict[int, int] = defaultdict(lambda: 100)
        moves = sorted(rng.randrange(span) for _ in range(movements))

        def movement_rows() -> Iterator[tuple[Any, ...]]:
            for seconds in moves:
                reward_id, place = rewards[rng.randrange(len(rewards))]
                restock = rng.random() < 0.8
                change = rng.randint(5, 50) if restock else -rng.randint(1, 3)
                stock[reward_id] = max(0, stock[reward_id] + change)
                yield (
                    reward_id,
                    place.shop_id,
                    "restock" if restock else "correction",
                    change,
                    stock[reward_id],
                    "进货" if restock else "盘点差异",
                    place.clerk,
                    start + timedelta(seconds=seconds),
                )

        copy_rows(
            conn,
            "stock_movements",
            ["reward_id", "shop_id", "kind", "change", "stock_after", "reason", "created_by"]
            + ["created_at"],
            movement_rows(),
        )
        with conn.cursor() as cur:
            cur.executemany(
                "UPDATE rewards SET stock = %s WHERE id = %s",
                [(count, reward_id) for reward_id, count in stock.items()],
            )

        def activity_rows() -> Iterator[tuple[Any, ...]]:
            for place in county.places:
                for k in range(20):
                    # Two upcoming, the others in the last two years.
                    begins = now + timedelta(days=k + 1) if k < 2 else now - timedelta(days=36 * k)
                    yield (
                        place.id,
                        f"村民大会第{k + 1}次",
                        "村委会",
                        county.activity_item[place.township_id],
                        begins,
                        begins + timedelta(hours=2),
                        begins - timedelta(minutes=30),
                        begins + timedelta(hours=2, minutes=30),
                        "static",
                        30,
                        0,
                        "scheduled",
                        place.cadre,
                        begins - timedelta(days=3),
                    )

        copy_rows(
            conn,
            "activities",
            ["village_id", "title", "place", "rule_item_id", "starts_at", "ends_at"]
            + ["checkin_opens_at", "checkin_closes_at", "qr_mode", "qr_step_seconds"]
            + ["places_taken", "status", "created_by", "created_at"],
            activity_rows(),
        )
        past = conn.execute(
            "SELECT id, village_id, starts_at FROM activities WHERE starts_at < now() "
            "ORDER BY village_id, starts_at"
        ).fetchall()
        homes: dict[int, list[int]] = {}
        for h, index in county.households:
            homes.setdefault(index, []).append(h)
        by_id = {place.id: (index, place) for index, place in enumerate(county.places)}

        def checkin_rows() -> Iterator[tuple[Any, ...]]:
            """The measured villager's household at every meeting of the measured village
            with 59 others of it; in every other village, CHECKIN_SHARE of its households
            at each meeting (about a million check-ins: two years of meetings)."""
            for activity, village_id, begins in past:
                index, place = by_id[village_id]
                if index == 0:
                    ours = [h for h in homes[0] if h != 1]
                    present = [1, *rng.sample(ours, min(len(ours), 59))]
                else:
                    present = rng.sample(homes[index], int(len(homes[index]) * CHECKIN_SHARE))
                for h in present:
                    yield (
                        activity,
                        h,
                        h,
                        village_id,
                        place.cadre,
                        begins + timedelta(minutes=5),
                        "[]",
                        0,
                    )

        copy_rows(
            conn,
            "checkins",
            ["activity_id", "villager_id", "household_id", "village_id", "proxy_by"]
            + ["checked_in_at", "flags", "points"],
            checkin_rows(),
        )
        conn.commit()


# ---- building one size ----------------------------------------------------------------------


@dataclass
class Built:
    county: County
    loaded: Loaded
    seconds: dict[str, float]
    ids: dict[str, int]


def build(url: str, args: argparse.Namespace, entries: int) -> Built:
    now = datetime.now(UTC)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    migrate(url, SECRET)
    seconds["schema (flask db upgrade)"] = time.perf_counter() - started
    mark = time.perf_counter()
    county = build_county(url, args.households)
    seconds["county, catalogs, shops, staff, households"] = time.perf_counter() - mark
    mark = time.perf_counter()
    loaded = load_ledger(url, county, entries, args.claims, now)
    fill_claim_approvals(url)
    seconds["ledger, claims, redemptions (COPY)"] = time.perf_counter() - mark
    mark = time.perf_counter()
    load_rest(url, county, args.audit, args.movements, now)
    seconds["audit, stock movements, activities, check-ins"] = time.perf_counter() - mark
    mark = time.perf_counter()
    fill_village_month_totals(url)  # of the ledger and the check-ins
    seconds["village month totals"] = time.perf_counter() - mark
    mark = time.perf_counter()
    engine = make_engine(url)
    # Two months back: the recent claims still waiting (the last 20 days) keep last month
    # from closing.
    last_month = add_months(month_key(now.astimezone(TZ)), -2)
    with Session(engine) as s:
        closing.close_month(s, county.places[0].id, last_month, now=now, tz=TZ)
        s.commit()
    seconds["last month's board published"] = time.perf_counter() - mark
    if args.verify:
        mark = time.perf_counter()
        with Session(engine) as s:
            report = ledger.verify_all(s)
            drift = budget.verify_issued(s, TZ)
            villages = village_totals.verify(s, TZ)
        seconds["verify"] = time.perf_counter() - mark
        log(
            f"verify: {report.entries:,} entries in {report.accounts:,} accounts, "
            f"{len(report.breaks)} breaks {report.breaks[:3]}; monthly issued: "
            f"{len(drift)} drifts {drift[:3]}; village month totals: "
            f"{len(villages)} drifts {villages[:3]}"
        )
        if report.breaks or drift or villages:
            raise RuntimeError("the load does not verify")
    engine.dispose()
    mark = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    seconds["VACUUM ANALYZE"] = time.perf_counter() - mark
    seconds["total"] = time.perf_counter() - started
    ids = measured_ids(url, county, last_month)
    return Built(county, loaded, seconds, ids)


def measured_ids(url: str, county: County, last_month: str) -> dict[str, Any]:
    """The objects of the measured village the requests name."""
    place = county.places[0]
    with psycopg.connect(url) as conn:

        def one(sql: str, *params: Any) -> Any:
            found = conn.execute(sql, params).fetchall()
            return found[0][0] if found else None

        catalog = one("SELECT id FROM rule_catalogs WHERE township_id = %s", place.township_id)
        item = one("SELECT id FROM rule_items WHERE catalog_id = %s AND code = 'ENV-YARD'", catalog)
        return {
            "township_id": place.township_id,
            "village_id": place.id,
            "household_id": 1,
            "villager_id": 1,
            "group_id": one("SELECT min(id) FROM villager_groups WHERE village_id = %s", place.id),
            "catalog_id": catalog,
            "item_id": item,
            "version_id": one("SELECT current_version_id FROM rule_items WHERE id = %s", item),
            # The villager's own: in every role's scope but the clerk's.
            "claim_id": one("SELECT max(id) FROM claims WHERE household_id = 1"),
            "notice_claim_id": one(
                "SELECT max(id) FROM claims WHERE village_id = %s AND status = 'in_notice'",
                place.id,
            ),
            "shop_id": place.shop_id,
            "reward_id": place.rewards[0][0],
            "redemption_id": one("SELECT max(id) FROM redemptions WHERE household_id = 1"),
            "activity_id": one(
                "SELECT max(a.id) FROM activities a JOIN checkins c ON c.activity_id = a.id "
                "WHERE a.village_id = %s",
                place.id,
            ),
            "checkin_id": one("SELECT max(id) FROM checkins WHERE household_id = 1"),
            "cadre_user_id": county.users["cadre"],
            "last_month": last_month,
        }


# ---- logging in -----------------------------------------------------------------------------


class Logins:
    """Each role's bearer token, made again before it expires (15 minutes)."""

    def __init__(self, port: int, url: str, county: County) -> None:
        self.port, self.url, self.county = port, url, county
        self.tokens: dict[str, tuple[str, float]] = {}

    def header(self, role: str) -> dict[str, str]:
        token, made = self.tokens.get(role, ("", -math.inf))  # (a machine up < 10 min)
        if time.monotonic() - made > 600:
            token = self._login(role)
            self.tokens[role] = (token, time.monotonic())
        return {"Authorization": f"Bearer {token}"}

    def _login(self, role: str) -> str:
        if role == "villager":
            settings = TokenSettings(
                secret=SECRET,
                issuer="village-points",
                audience="village-points-app",
                access_ttl=timedelta(minutes=15),
                refresh_ttl=timedelta(days=30),
            )
            engine = make_engine(self.url)
            with Session(engine) as s:
                user = s.get(User, self.county.users["villager"])
                assert user is not None
                token = sessions.login(s, settings, user).access_token
                s.commit()
            engine.dispose()
            return token
        body = json.dumps({"username": self.county.usernames[role], "password": PASSWORD})
        status, answer = request(
            self.port,
            "POST",
            "/api/v1/auth/login",
            body.encode(),
            {"Content-Type": "application/json"},
        )
        if status != 200:
            raise RuntimeError(f"{role} could not log in: {status} {answer[:200]!r}")
        return str(json.loads(answer)["access_token"])


_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


def _cookies(headers: Any, jar: dict[str, str]) -> None:
    for value in headers.get_all("Set-Cookie") or []:
        name, _, rest = value.partition("=")
        jar[name.strip()] = rest.split(";", 1)[0]


def console_login(port: int, username: str) -> str:
    """The Cookie header of a console session, logged in through the login form."""
    jar: dict[str, str] = {}
    status, headers, page = fetch(port, "GET", "/console/login")
    _cookies(headers, jar)
    found = _CSRF.search(page.decode())
    if status != 200 or not found:
        raise RuntimeError(f"no console login form: {status}")
    form = urllib.parse.urlencode(
        {"username": username, "password": PASSWORD, "csrf_token": found.group(1)}
    )
    status, headers, _ = fetch(
        port,
        "POST",
        "/console/login",
        form.encode(),
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": "; ".join(f"{k}={v}" for k, v in jar.items()),
        },
    )
    _cookies(headers, jar)
    if status != 303:
        raise RuntimeError(f"{username} could not log into the console: {status}")
    return "; ".join(f"{k}={v}" for k, v in jar.items())


# ---- what is requested ----------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    label: str  # method, path template and parameters
    path: str  # as requested


# A path parameter → the id it takes (by operation where one path parameter names several).
PATH_IDS = {
    "township_id": "township_id",
    "village_id": "village_id",
    "household_id": "household_id",
    "villager_id": "villager_id",
    "catalog_id": "catalog_id",
    "item_id": "item_id",
    "version_id": "version_id",
    "claim_id": "claim_id",
    "shop_id": "shop_id",
    "reward_id": "reward_id",
    "redemption_id": "redemption_id",
    "activity_id": "activity_id",
    "checkin_id": "checkin_id",
}
PATH_IDS_BY_OPERATION = {"notice": {"claim_id": "notice_claim_id"}}
# Filters: a query parameter → the value it is given (None: from the measured ids; an enum
# of the spec picks the first of PREFERRED it has, else its first).
PREFERRED = ("posted", "fulfilled", "pending_confirmation", "scheduled", "cadre", "household")
FILTERS = (
    "status",
    "village_id",
    "township_id",
    "household_id",
    "shop_id",
    "group_id",
    "month",
    "period",
    "role",
    "since",
    "submit_by",
    "include_retired",
    "active",
)


def _filter_value(name: str, schema: dict[str, Any], ids: dict[str, Any]) -> str | None:
    if "enum" in schema:
        enum = [str(v) for v in schema["enum"]]
        return next((v for v in PREFERRED if v in enum), enum[0])
    if name in ("month", "period"):
        return str(ids["last_month"])
    if name == "since":  # a moment with its zone, the same at every size
        return SINCE
    if name in ("include_retired", "active"):
        return "true"
    if name in ids:
        return str(ids[name])
    return None


def api_targets(spec: dict[str, Any], ids: dict[str, Any]) -> tuple[list[Target], list[str]]:
    """Each GET operation with the measured ids, and one target per filter it has; the
    operations left out, with why. (Last pages are added once a first page answers.)"""
    targets, skipped = [], []
    for template, operations in spec["paths"].items():
        operation = operations.get("get")
        if operation is None:
            continue
        names = re.findall(r"{(\w+)}", template)
        by_operation = PATH_IDS_BY_OPERATION.get(operation.get("operationId", ""), {})
        path = template
        missing = []
        for name in names:
            key = by_operation.get(name, PATH_IDS.get(name))
            if key is None or ids.get(key) is None:
                missing.append(name)
                continue
            path = path.replace("{" + name + "}", str(ids[key]))
        if missing:
            skipped.append(f"GET {template}: no {', '.join(missing)} to give it")
            continue
        targets.append(Target(f"GET {template}", path))
        for parameter in operation.get("parameters", []):
            name = parameter["name"]
            if parameter["in"] != "query" or name not in FILTERS:
                continue
            value = _filter_value(name, parameter.get("schema", {}), ids)
            if value is not None:
                query = urllib.parse.urlencode({name: value})
                targets.append(Target(f"GET {template} ?{name}={value}", f"{path}?{query}"))
    return targets, skipped


def console_targets(ids: dict[str, Any]) -> list[Target]:
    """Detail pages of each kind (the menu's pages are read from each role's menu)."""
    pages = (
        ("claim", "/console/claims/{claim_id}"),
        ("household", "/console/households/{household_id}"),
        ("activity", "/console/activities/{activity_id}"),
        ("reward", "/console/shop/rewards/{reward_id}"),
        ("rule item", "/console/rules/items/{item_id}"),
        ("user", "/console/users/{cadre_user_id}"),
        ("boards", "/console/boards?month={last_month}"),
    )
    return [Target(f"PAGE {name} {path}", path.format(**ids)) for name, path in pages]


_MENU = re.compile(r'<nav class="menu">(.*?)</nav>', re.S)
_HREF = re.compile(r'href="([^"]+)"')
_PAGES = re.compile(r"/ (\d+) 页")
_PAGER = re.compile(r'<nav class="pager[^"]*">(.*?)</nav>', re.S)


def last_page_of(page: str) -> tuple[str, int] | None:
    """The path of a console list's last page, from its pager (第 n / m 页)."""
    pager = _PAGER.search(page)
    if not pager:
        return None
    pages = _PAGES.search(pager.group(1))
    hrefs = [h for h in _HREF.findall(pager.group(1)) if "page=" in h]
    if not pages or not hrefs or int(pages.group(1)) <= 1:
        return None
    link = urllib.parse.urlsplit(hrefs[-1].replace("&amp;", "&"))
    query = dict(urllib.parse.parse_qsl(link.query))
    query["page"] = pages.group(1)
    return f"{link.path}?{urllib.parse.urlencode(query)}", int(pages.group(1))


# ---- measuring ------------------------------------------------------------------------------


SAME_ANSWER = 1.2  # an answer at most this much longer at the larger size says the same


@dataclass
class Timed:
    p50: float
    p99: float
    runs: int
    page: int | None = None  # a last page: which
    path: str = ""  # what was requested
    console: bool = False  # with the role's console session, else its bearer token
    size: int = 0  # bytes of the answer


def _get(port: int, path: str, headers: dict[str, str]) -> tuple[int, bytes, float]:
    """Status (0: no answer, e.g. a worker killed at gunicorn's 30 s timeout), body, ms."""
    started = time.perf_counter()
    try:
        status, body = request(port, "GET", path, headers=headers, timeout=300)
    except (OSError, http.client.HTTPException):
        status, body = 0, b""
    return status, body, (time.perf_counter() - started) * 1000


def measure(
    port: int, path: str, headers: dict[str, str], runs: int
) -> tuple[int, bytes, Timed | None]:
    """Two unmeasured requests, then `runs` measured: 3 if the first took over SLOW_MS, one
    if it took over VERY_SLOW_MS. No times unless every answer was 200."""
    status, body, timed = measure_in_turn([(port, path, headers)], runs)[0]
    return status, body, timed


Request = tuple[int, str, dict[str, str]]  # port, path, headers


def measure_in_turn(
    requests: list[Request], runs: int, flip: bool = False
) -> list[tuple[int, bytes, Timed | None]]:
    """`measure` for the same operation at several sizes, request by request in turn (each
    round in the other order from the last; `flip`: the first round reversed), so that a
    change in the machine's speed over the operation's runs falls on every size alike."""
    answers = [_get(*request) for request in requests]
    failed = [(status, body) for status, body, _ in answers if status != 200]
    if failed:
        return [(*failed[0], None) for _ in requests]
    slowest = max(ms for *_, ms in answers)
    if slowest >= VERY_SLOW_MS:
        runs = 1
    elif slowest >= SLOW_MS:
        runs = 3
    else:
        for request in requests:
            _get(*request)
    times: list[list[float]] = [[] for _ in requests]
    order = list(range(len(requests)))
    if flip:
        order.reverse()
    for _ in range(runs):
        for index in order:
            again, _, ms = _get(*requests[index])
            if again != 200:
                return [(again, b"", None) for _ in requests]
            times[index].append(ms)
        order.reverse()
    return [
        (status, body, Timed(statistics.median(t), percentile(t, 99), runs, size=len(body)))
        for (status, body, _), t in zip(answers, times, strict=True)
    ]


def run_size(
    port: int,
    url: str,
    built: Built,
    runs: int,
    only: re.Pattern[str] | None = None,
    roles: tuple[str, ...] = ROLES,
) -> tuple[dict[tuple[str, str], Timed], list[str]]:
    ids = built.ids
    logins = Logins(port, url, built.county)
    spec = json.loads(request(port, "GET", "/api/v1/openapi.json")[1])
    targets, notes = api_targets(spec, ids)
    targets = [t for t in targets if not only or only.search(t.label)]
    results: dict[tuple[str, str], Timed] = {}
    refused: dict[str, list[str]] = defaultdict(list)
    for target in targets:
        for role in roles:
            headers = logins.header(role)
            status, body, timed = measure(port, target.path, headers, runs)
            if timed is None:
                refused[target.label].append(f"{role} {status}")
                continue
            timed.path = target.path
            results[(target.label, role)] = timed
            try:
                first = json.loads(body) if body[:1] == b"{" else {}
            except ValueError:
                first = {}
            if isinstance(first, dict) and {"total", "per_page"} <= set(first):
                last = max(1, math.ceil(first["total"] / max(1, first["per_page"])))
                if last > 1:
                    glue = "&" if "?" in target.path else "?"
                    path = f"{target.path}{glue}page={last}"
                    timed = measure(port, path, headers, runs)[2]
                    if timed is not None:
                        timed.page, timed.path = last, path
                        results[(f"{target.label} (last page)", role)] = timed
        log(f"{target.label}: {len(roles) - len(refused[target.label])} roles")
    for role in (r for r in STAFF_ROLES if r in roles):
        cookie = {"Cookie": console_login(port, built.county.usernames[role])}
        # The menu from the cheapest page that has it: the today page (/console/) itself
        # may take longer than the server lets a request run.
        menu_page = request(port, "GET", "/console/password", headers=cookie)[1].decode()
        found = _MENU.search(menu_page)
        menu = [
            Target(f"PAGE {h}", h.replace("&amp;", "&"))
            for h in (_HREF.findall(found.group(1)) if found else [])
        ]
        for target in [*menu, *console_targets(ids)]:
            if only and not only.search(target.label):
                continue
            status, body, timed = measure(port, target.path, cookie, runs)
            if timed is None:
                refused[target.label].append(f"{role} {status}")
                continue
            timed.path, timed.console = target.path, True
            results[(target.label, role)] = timed
            last = last_page_of(body.decode(errors="replace"))
            if last:
                timed = measure(port, last[0], cookie, runs)[2]
                if timed is not None:
                    timed.page, timed.path, timed.console = last[1], last[0], True
                    results[(f"{target.label} (last page)", role)] = timed
        log(f"console pages of {role}: done")
    for label, who in sorted(refused.items()):
        if who:
            notes.append(f"{label}: not 200 for {', '.join(who)} (0: no answer, timed out)")
    return results, notes


@dataclass
class Server:
    """One size's app under gunicorn, logged in as each role."""

    port: int
    logins: Logins
    cookies: dict[str, dict[str, str]]

    def headers(self, role: str, console: bool) -> dict[str, str]:
        return self.cookies[role] if console else self.logins.header(role)


def interleaved(
    found: list[dict[tuple[str, str], Timed]], servers: list[Server], runs: int
) -> list[dict[tuple[str, str], Timed]]:
    """Every (operation, role) that answered at every size timed again with all the sizes'
    servers up, request by request at one size and then the other (`measure_in_turn`), so
    that the machine's speed drifting over the run (other work, its disk, the host) does not
    show as a size's growth: timed one size after the other, an operation flat in the
    ledger's size came out up to twice as slow at the second size, and timed one operation's
    runs at a size after the other's, up to 1.4 times."""
    keys = sorted(set.intersection(*(set(f) for f in found)))
    timed: list[dict[tuple[str, str], Timed]] = [{} for _ in servers]
    for n, key in enumerate(keys):
        requests: list[Request] = []
        for index, server in enumerate(servers):
            first = found[index][key]
            requests.append((server.port, first.path, server.headers(key[1], first.console)))
        for index, (_, _, again) in enumerate(measure_in_turn(requests, runs, flip=bool(n % 2))):
            if again is not None:
                first = found[index][key]
                again.page, again.path = first.page, first.path
                timed[index][key] = again
        if n % 100 == 99:
            log(f"interleaved: {n + 1} of {len(keys)}")
    return timed


# ---- the run --------------------------------------------------------------------------------


def remember(url: str, built: Built) -> None:
    """Write what timing needs of a kept database into the database's own comment, so that a
    later `--reuse` (from any checkout) can time it without loading it again."""
    meta = {
        "users": built.county.users,
        "usernames": built.county.usernames,
        "ids": built.ids,
        "loaded": {k: v for k, v in vars(built.loaded).items() if k != "issued"},
        "seconds": built.seconds,
    }
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url, autocommit=True) as conn:
        text = json.dumps(meta).replace("'", "''")
        conn.execute(f"COMMENT ON DATABASE {name} IS '{text}'".encode())


def recall(url: str) -> Built:
    """A kept database brought to the newest migration, and what `remember` wrote of it."""
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (name,),
        ).fetchone()
    if not found or not found[0]:
        raise SystemExit(f"{name}: not a database kept by bench/scale.py")
    meta = json.loads(found[0])
    started = time.perf_counter()
    migrate(url, SECRET)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")
    log(f"{name}: migrated and analysed in {time.perf_counter() - started:.1f} s")
    county = County([], [], meta["users"], meta["usernames"], {})
    return Built(county, Loaded(**meta["loaded"]), meta["seconds"], meta["ids"])


@contextmanager
def database(base: str, keep: bool) -> Iterator[str]:
    if not keep:
        with scratch_database(base, "scale") as url:
            yield url
        return
    name = f"vp_scale_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(base.rstrip("/") + "/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    log(f"kept database: {name}")
    yield f"{base.rstrip('/')}/{name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="ledger entries, comma")
    parser.add_argument("--households", type=int, default=100_000)
    parser.add_argument("--entries", type=int, help="one size only (instead of --sizes)")
    parser.add_argument("--claims", type=int, default=1_000_000)
    parser.add_argument("--audit", type=int, default=1_000_000)
    parser.add_argument("--movements", type=int, default=100_000)
    # 40: over 20 requests, an operation that reads nothing that grows came out at a ratio
    # of 1.5 now and then between the sizes (one of some 580).
    parser.add_argument("--runs", type=int, default=40, help="measured requests of each")
    parser.add_argument("--verify", action="store_true", help="walk every chain after loading")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument(
        "--load-only", action="store_true", help="build and keep the database, time nothing"
    )
    parser.add_argument("--reuse", help="kept databases to time, one per size, comma")
    parser.add_argument("--only", help="time only the operations whose label matches this")
    parser.add_argument("--roles", default=",".join(ROLES), help="roles to time, comma")
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="report each size's own pass, without timing the sizes again in turn",
    )
    add_postgres_argument(parser)
    args = parser.parse_args()
    sizes = [args.entries] if args.entries else [int(s) for s in args.sizes.split(",")]
    reuse = args.reuse.split(",") if args.reuse else []
    if reuse:
        sizes = list(range(len(reuse)))  # replaced by each database's entries below
    only = re.compile(args.only) if args.only else None
    roles = tuple(r for r in ROLES if r in args.roles.split(","))
    # Logins are rate-limited per address; this client logs in more often than a person.
    os.environ["LOGIN_RATE_LIMIT"] = "1000 per minute"

    by_size: dict[int, dict[tuple[str, str], Timed]] = {}
    kept: list[tuple[str, Built]] = []
    summary: list[str] = []
    notes: list[str] = []
    # With more than one size, each size's pass finds what to request (one measured request
    # each) and the sizes are then timed in turn; every database lives until then.
    first_runs = args.runs if args.sequential or len(sizes) == 1 else 1
    with ExitStack() as databases:
        for index, size in enumerate(list(sizes)):
            if reuse:
                url = f"{args.postgres.rstrip('/')}/{reuse[index]}"
                built = recall(url)
                size = sizes[index] = built.loaded.entries
            else:
                url = databases.enter_context(database(args.postgres, args.keep or args.load_only))
                log(f"loading {size:,} ledger entries")
                built = build(url, args, size)
                if args.keep or args.load_only:
                    remember(url, built)
            loaded = built.loaded
            summary.append(
                f"size {size:,}: {loaded.entries:,} entries in {loaded.accounts:,} accounts, "
                f"{loaded.claims:,} claims ({loaded.posted_claims:,} posted), "
                f"{loaded.redemptions:,} redemptions, {args.audit:,} audit lines, "
                f"{args.movements:,} stock movements, {args.households:,} households; load: "
                + ", ".join(f"{k} {v:.1f} s" for k, v in built.seconds.items())
            )
            log(summary[-1])
            if args.load_only:
                continue
            kept.append((url, built))
            with gunicorn(url, SECRET, 2) as (port, master):
                by_size[size], size_notes = run_size(port, url, built, first_runs, only, roles)
                rss = workers_peak_rss_mb(master)
            summary.append(f"size {size:,}: workers_peak_rss_mb={rss:.1f}")
            log(summary[-1])
            slowest = sorted(by_size[size].items(), key=lambda kv: -kv[1].p50)
            for (label, role), timed in slowest[:40]:
                log(f"  {timed.p50:9.1f} {timed.p99:9.1f}  {role:<15} {label}")
            if size == sizes[-1]:
                notes = size_notes
        if args.load_only:
            return
        if len(kept) > 1 and not args.sequential:
            with ExitStack() as stack:
                servers, masters = [], []
                for url, built in kept:
                    port, master = stack.enter_context(gunicorn(url, SECRET, 2))
                    cookies = {
                        role: {"Cookie": console_login(port, built.county.usernames[role])}
                        for role in STAFF_ROLES
                        if role in roles
                    }
                    servers.append(Server(port, Logins(port, url, built.county), cookies))
                    masters.append(master)
                log(f"timing again with the {len(kept)} sizes' servers up, one after the other")
                again = interleaved([by_size[size] for size in sizes], servers, args.runs)
                for size, timed, master in zip(sizes, again, masters, strict=True):
                    by_size[size] = timed
                    summary.append(
                        f"size {size:,}: workers_peak_rss_mb={workers_peak_rss_mb(master):.1f} "
                        "(after timing the sizes in turn)"
                    )
        report(sizes, by_size, summary, notes)


def report(
    sizes: list[int],
    by_size: dict[int, dict[tuple[str, str], Timed]],
    summary: list[str],
    notes: list[str],
) -> None:
    small, large = sizes[0], sizes[-1]
    keys = sorted(set(by_size[small]) | set(by_size[large]))
    rows = []
    for key in keys:
        a, b = by_size[small].get(key), by_size[large].get(key)
        ratio = b.p50 / a.p50 if a and b and a.p50 > 0 else float("nan")
        rows.append((key, a, b, ratio, b.size / a.size if a and b and a.size else float("nan")))
    rows.sort(key=lambda r: -(r[2].p50 if r[2] else 0.0))
    # An answer that is itself longer at the larger size (a month's board, settlement or
    # proof in a county ten times as busy every month: more rows, not more history) is told
    # from one that reads more to say the same: the answers' sizes in bytes, and the largest
    # ratio among operations whose answer grew by less than SAME_ANSWER.
    same = [r for *_, r, grew in rows if not math.isnan(r) and grew < SAME_ANSWER]
    print()
    for line in summary:
        print(line)
    for note in notes:
        print(f"note: {note}")
    print()

    def cell(t: Timed | None) -> str:
        return f"{t.p50:9.1f} {t.p99:9.1f}" if t else f"{'-':>9} {'-':>9}"

    print(
        f"{'operation':<78} {'role':<15} {'p50@' + format(small, ','):>9} {'p99':>9} "
        f"{'p50@' + format(large, ','):>9} {'p99':>9} {'ratio':>6} {'bytes':>7}"
    )
    for (label, role), a, b, ratio, grew in rows:
        if (a and a.page) or (b and b.page):
            label += f" [p{a.page if a else '-'}/{b.page if b else '-'}]"
        print(f"{label[:78]:<78} {role:<15} {cell(a)} {cell(b)} {ratio:6.2f} {grew:6.2f}x")
    worst = max((b.p50 for _, _, b, *_ in rows if b), default=0.0)
    worst_ratio = max((r for *_, r, _ in rows if not math.isnan(r)), default=0.0)
    print(f"worst_ratio_same_answer={max(same, default=0.0):.2f} (answers within {SAME_ANSWER}x)")
    print(f"worst_p50_ms={worst:.1f} worst_ratio={worst_ratio:.2f}")


if __name__ == "__main__":
    main()
