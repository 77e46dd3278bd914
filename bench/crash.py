"""Crash safety under load: does a SIGKILL of a gunicorn worker, or of the whole server, ever
lose a point, mint one, or leave an order holding points it no longer reserves?

Creates its own PostgreSQL database (schema by `flask db upgrade`, as a deployment gets it),
seeds it through the domain services — one township with a catalog whose items post at once
(no review, no notice), villages with households of two members each, every member bound to
a WeChat user with a fresh login, a cadre per village, a shop per village with a clerk and
rewards (one of them scarce), activities open for check-in, and a starting award for every
household so it can order — then starts the app under gunicorn (2 sync workers, a port in
5070-5079) and drives a mixed load through real HTTP from several client threads:

  check-in  villager  POST /api/v1/checkins {token}             (natural key: one per activity)
  award     cadre     POST /api/v1/awards   (Idempotency-Key)   1-3 households, shuffled
  order     villager  POST /api/v1/redemptions (Idempotency-Key)
  scan      clerk     POST /api/v1/redemptions/scan (Idempotency-Key), pickup codes of orders
  cancel    villager  POST /api/v1/redemptions/{id}/cancel (Idempotency-Key)

Meanwhile, each round SIGKILLs random workers at random moments (the master respawns them),
then SIGKILLs the master's whole process group and starts gunicorn again on the same port.
And a few clients hang up right after sending, like a phone losing its signal (the server
commits, the answer is lost). A request whose connection died has an unknown outcome: it is
sent again, with the same Idempotency-Key and body, until a definite answer comes (a
check-in, by its natural key: a 201, or a 409 `already_checked_in` naming the first one).
So every request ends with one answer, and the database must hold exactly the effects of
the 2xx answers: nothing lost, nothing twice. Every request and its answers are written to
a JSON-lines log.

Then it checks, and prints PASS or FAIL for each (exit status 1 on any FAIL): the 2xx effects
are in the database and nothing else is; holds match reservations; stock adds up; the hash
chains verify; issued = balances + redeemed + expired; idempotency keys replay their first
answer. Before its summary line it prints the largest peak RSS of a gunicorn worker, read
before each kill and at the stop (`worker_peak_rss_mb=`). The server and the database are
removed at the end, also on failure.

    .venv/bin/python bench/crash.py [--rounds 3] [--round-seconds 15] [--threads 12] [--seed N]

`--workers 4 --hot 1 --mix award=100` crowds concurrent award batches onto four households in
any order: that is how batches crossing on the same accounts were caught deadlocking (a 500;
fixed in points.claims.award).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any
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
    free_port,
    migrate,
    peak_rss_mb,
    scratch_database,
    server_env,
    spawn_gunicorn,
    stop,
    wait_until_up,
    worker_pids,
)
from points import budget, catalogs, claims, ledger, sessions, village_totals  # noqa: E402
from points.activities import activities  # noqa: E402
from points.db import make_engine  # noqa: E402
from points.models import (  # noqa: E402
    Household,
    RuleItem,
    Shop,
    Township,
    User,
    Village,
    Villager,
)
from points.scope import Actor  # noqa: E402
from points.sessions import TokenSettings  # noqa: E402
from points.shop import liability, shelves  # noqa: E402
from points.tokens import TokenCodec, TokenType  # noqa: E402

SECRET = "crash-secret-" + secrets.token_hex(16)
TZ = ZoneInfo("Asia/Shanghai")
PORTS = range(5070, 5080)
# How long one request is sent again while the server is down before the run gives up on it.
RETRY_FOR_S = 90.0

# Items that post at once: no review, no notice, no caps, one cadre enough. So every 2xx of a
# check-in or an award is a ledger entry by the time it is answered.
CATALOG = """
name: 压测细则
categories: [共建共治, 热心公益, 生态宜居]
policy:
  notice_days: 0
  two_cadre_threshold: 1000
  reset_cycle: none
  qualification_line: 0
  exchange_rate: '1'
  min_redemption_points: 0
items:
- {code: CRASH-MEET, name: 参加议事会, category: 共建共治, class: bonus, points: 2,
   kind: fixed, applies_to: member, submit_by: [checkin], requires_review: false,
   evidence_required: false}
- {code: CRASH-HELP, name: 热心帮扶, category: 热心公益, class: bonus, points: 5, kind: fixed,
   applies_to: household, submit_by: [cadre], requires_review: false, evidence_required: false}
- {code: CRASH-CLUTTER, name: 乱堆乱放, category: 生态宜居, class: deduction, points: -1,
   kind: fixed, applies_to: household, submit_by: [cadre], requires_review: false,
   evidence_required: false}
- {code: CRASH-OPENING, name: 期初积分, category: 共建共治, class: bonus, points: 40,
   kind: fixed, applies_to: household, submit_by: [cadre], requires_review: false,
   evidence_required: false}
"""
# (name, points, stock): the last is scarce, so orders race for it.
SHELF = (
    ("香皂", 2, 500),
    ("毛巾", 3, 500),
    ("大米 10斤", 12, 200),
    ("玉米油 5L", 20, 60),
    ("电饭锅", 35, 6),
)
KINDS = ("checkin", "award", "order", "scan", "cancel")


# ---- the world ------------------------------------------------------------------------------


@dataclass
class Member:
    index: int
    user_id: int
    token: str
    household_id: int
    village: int  # index into World.villages


@dataclass
class VillageSide:
    village_id: int
    households: list[int]
    cadre_user: int
    cadre_token: str
    clerk_user: int
    clerk_token: str
    shop_id: int
    rewards: list[tuple[int, int]]  # (id, points)
    activities: list[tuple[int, str]]  # (id, static check-in code)


@dataclass
class World:
    township_id: int
    villages: list[VillageSide]
    members: list[Member]
    help_item: int
    clutter_item: int
    opening_claims: set[int]
    admin_user: int


def seed(url: str, villages: int, households: int, n_activities: int) -> World:
    settings = TokenSettings(
        secret=SECRET,
        issuer="village-points",
        audience="village-points-app",
        access_ttl=timedelta(hours=3),
        refresh_ttl=timedelta(days=1),
    )
    codec = TokenCodec.keyring(SECRET, 1)
    now = datetime.now(UTC)
    engine = make_engine(url)
    with Session(engine) as s:
        township = Township(name="压测镇", code="CRASH")
        s.add(township)
        s.flush()
        catalogs.install_catalog(s, None, township.id, rules.load_yaml(CATALOG))
        items = {i.code: i.id for i in s.scalars(select(RuleItem))}
        admin = User(
            username="crash_admin",
            password_hash="x",
            role="township_admin",
            township_id=township.id,
        )
        s.add(admin)
        sides, members, opening = [], [], set()
        for v in range(villages):
            village = Village(township_id=township.id, name=f"压测{v + 1}村")
            s.add(village)
            s.flush()
            cadre = User(
                username=f"crash_cadre_{v}",
                password_hash="x",
                role="cadre",
                township_id=township.id,
                village_id=village.id,
            )
            shop = Shop(township_id=township.id, name=f"压测{v + 1}村积分超市", villages=[village])
            s.add_all([cadre, shop])
            s.flush()
            clerk = User(
                username=f"crash_clerk_{v}",
                password_hash="x",
                role="clerk",
                township_id=township.id,
                shop_id=shop.id,
            )
            s.add(clerk)
            s.flush()
            clerk_actor, cadre_actor = Actor.of(s, clerk), Actor.of(s, cadre)
            rewards = [
                shelves.create_reward(
                    s, clerk_actor, shop.id, name=name, points=points, stock=stock
                )
                for name, points, stock in SHELF
            ]
            house_ids = []
            for h in range(households):
                household = Household(village_id=village.id, name=f"{v + 1}村第{h + 1}户")
                s.add(household)
                s.flush()
                house_ids.append(household.id)
                for relation in ("户主", "配偶"):
                    person = Villager(
                        household_id=household.id, relation=relation, name=f"{relation}{v}-{h}"
                    )
                    s.add(person)
                    s.flush()
                    user = User(
                        role="villager", openid=f"crash-{v}-{h}-{relation}", villager_id=person.id
                    )
                    s.add(user)
                    s.flush()
                    members.append(
                        Member(
                            len(members),
                            user.id,
                            sessions.login(s, settings, user).access_token,
                            household.id,
                            v,
                        )
                    )
            created = claims.award(
                s,
                cadre_actor,
                rule_item_id=items["CRASH-OPENING"],
                units=None,
                note="期初积分",
                evidence=[],
                targets=[{"household_id": h} for h in house_ids],
                tz=TZ,
                now=now,
            )
            opening |= {c.id for c in created}
            acts = []
            for a in range(n_activities):
                plan = activities.ActivityPlan(
                    village_id=village.id,
                    title=f"压测议事会{a + 1}",
                    rule_item_id=items["CRASH-MEET"],
                    starts_at=now - timedelta(minutes=5),
                    ends_at=now + timedelta(hours=3),
                    qr_mode="static",
                    step_seconds=30,
                )
                activity = activities.create_activity(s, cadre_actor, plan, now)
                s.flush()
                acts.append((activity.id, codec.encode(TokenType.ACTIVITY, (activity.id, 0))))
            sides.append(
                VillageSide(
                    village.id,
                    house_ids,
                    cadre.id,
                    sessions.login(s, settings, cadre).access_token,
                    clerk.id,
                    sessions.login(s, settings, clerk).access_token,
                    shop.id,
                    [(r.id, r.points) for r in rewards],
                    acts,
                )
            )
        s.commit()
        world = World(
            township.id,
            sides,
            members,
            items["CRASH-HELP"],
            items["CRASH-CLUTTER"],
            opening,
            admin.id,
        )
    engine.dispose()
    return world


# ---- the server and its killer ---------------------------------------------------------------


def live_group_members(pgid: int) -> list[int]:
    """Processes of this process group that still run (zombies left to a PID 1 that does not
    reap them hold no socket and count as gone)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


class Server:
    def __init__(self, url: str, port: int, workers: int, log: IO[bytes]) -> None:
        self.env, self.port, self.workers, self.log = server_env(url, SECRET), port, workers, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.peak_rss_mb = 0.0

    def start(self) -> None:
        # The old listening socket may take a moment to be released by the killed group.
        for attempt in range(50):
            self.proc = spawn_gunicorn(
                self.env, self.port, self.workers, log=self.log, own_group=True
            )
            try:
                wait_until_up(self.port, self.proc, timeout=30)
                self.starts += 1
                return
            except RuntimeError:
                if self.proc.poll() is None or attempt == 49:
                    raise
                time.sleep(0.2)

    def workers_now(self) -> list[int]:
        assert self.proc is not None
        return worker_pids(self.proc.pid)

    def note_rss(self, pids: list[int]) -> None:
        """Keep the largest peak RSS of a worker, read before it is killed or stopped."""
        self.peak_rss_mb = max([self.peak_rss_mb, *(peak_rss_mb(pid) for pid in pids)])

    def kill_worker(self, rng: random.Random) -> int | None:
        workers = self.workers_now()
        if not workers:
            return None
        pid = rng.choice(workers)
        self.note_rss([pid])
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return None
        return pid

    def kill_master(self) -> list[int]:
        """SIGKILL the master and, with it, its workers (its process group): a worker
        outlives a killed master until it notices, and would keep the port."""
        assert self.proc is not None
        pgid = self.proc.pid
        group = live_group_members(pgid)
        self.note_rss(self.workers_now())
        os.killpg(pgid, signal.SIGKILL)
        self.proc.wait()
        deadline = time.monotonic() + 10
        while live_group_members(pgid):
            if time.monotonic() > deadline:
                raise RuntimeError(f"process group {pgid} survived SIGKILL")
            time.sleep(0.05)
        return group

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.note_rss(self.workers_now())
            stop(self.proc)
            pgid = self.proc.pid
            if live_group_members(pgid):
                os.killpg(pgid, signal.SIGKILL)


# ---- requests -------------------------------------------------------------------------------


@dataclass
class Call:
    """One logical request and every attempt to get it answered."""

    seq: int
    kind: str
    who: str
    user_id: int
    token: str
    method: str
    path: str
    body: dict[str, Any]
    key: str | None
    meta: dict[str, Any] = field(default_factory=dict)
    attempts: list[str] = field(default_factory=list)
    status: int | None = None
    response: Any = None
    replayed: bool = False
    unknown: bool = False  # an attempt reached the server and died without an answer
    seconds: float = 0.0  # from the first attempt to the answer

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def code(self) -> str | None:
        if isinstance(self.response, dict) and isinstance(self.response.get("error"), dict):
            return self.response["error"].get("code")
        return None

    def record(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "kind": self.kind,
            "who": self.who,
            "method": self.method,
            "path": self.path,
            "body": self.body,
            "idempotency_key": self.key,
            "meta": self.meta,
            "attempts": self.attempts,
            "status": self.status,
            "replayed": self.replayed,
            "unknown_outcome": self.unknown,
            "seconds": round(self.seconds, 4),
            "response": self.response,
        }


def attempt(
    port: int, call: Call, timeout: float = 30, hang_up_after: float | None = None
) -> tuple[int, Any, bool] | str:
    """One try: (status, JSON body, replayed), or what went wrong: `refused` (never reached
    the server) or the name of the error after it was reached (outcome unknown).
    `hang_up_after`: the client gives up that many seconds after sending, as a phone that
    loses its signal — the server goes on and commits, and only the answer is lost."""
    headers = {"Authorization": f"Bearer {call.token}", "Content-Type": "application/json"}
    if call.key:
        headers["Idempotency-Key"] = call.key
    if call.kind == "checkin":
        headers["X-Device-Id"] = f"crash-{call.user_id}"
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        try:
            conn.connect()
        except ConnectionRefusedError:
            return "refused"
        conn.request(call.method, call.path, body=json.dumps(call.body).encode(), headers=headers)
        if hang_up_after is not None:
            time.sleep(hang_up_after)
            return "hung_up"
        response = conn.getresponse()
        data = response.read()
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = data.decode(errors="replace")
        return response.status, parsed, response.getheader("Idempotent-Replayed") == "true"
    except (OSError, http.client.HTTPException) as exc:
        return type(exc).__name__
    finally:
        conn.close()


def send(port: int, call: Call, hang_up_after: float | None = None) -> None:
    """Until a definite answer: a connection refused never reached the app; any other
    failure may or may not have committed, and the same request (same key, same body) is
    sent again. `hang_up_after`: the first attempt hangs up (see `attempt`)."""
    started = time.monotonic()
    pause = 0.05
    while True:
        outcome = attempt(port, call, hang_up_after=hang_up_after)
        hang_up_after = None
        call.seconds = time.monotonic() - started
        if isinstance(outcome, tuple):
            call.status, call.response, call.replayed = outcome
            call.attempts.append(str(call.status))
            return
        call.attempts.append(outcome)
        if outcome != "refused":
            call.unknown = True
        if call.seconds > RETRY_FOR_S:
            return
        time.sleep(pause)
        pause = min(0.5, pause * 2)


# ---- the load -------------------------------------------------------------------------------


@dataclass
class Order:
    id: int
    member: int
    shop_id: int
    village: int
    pickup_token: str
    points: int
    status: str = "reserved"  # as the clients were told; "unknown" if never answered


class Load:
    def __init__(
        self,
        world: World,
        port: int,
        mix: dict[str, float],
        hang_ups: float,
        hot: float,
        seed_value: int,
        log: IO[str],
    ) -> None:
        self.world, self.port, self.log, self.hang_ups = world, port, log, hang_ups
        self.hot = hot
        self.hot_members = [
            m
            for m in world.members
            if m.household_id in {h for v in world.villages for h in v.households[:4]}
        ]
        self.kinds = list(mix)
        self.weights = [mix[k] for k in self.kinds]
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.seed = seed_value
        self.seq = 0
        self.calls: list[Call] = []
        self.attempted: set[tuple[int, int]] = set()
        self.checkins: dict[tuple[int, int], int] = {}  # (member, activity) -> check-in id
        self.checkin_claims: dict[int, int] = {}  # check-in id -> claim id
        self.award_claims: dict[int, tuple[int, int]] = {}  # claim id -> (household, points)
        self.orders: dict[int, Order] = {}
        self.pending: list[int] = []  # reserved orders no scan or cancel has taken yet
        self.inconsistent: list[str] = []

    # Each thread's choices come from its own generator, so a seed replays the same mix.
    def run(self, index: int) -> None:
        rng = random.Random(self.seed * 1000 + index)
        while not self.stop_flag.is_set():
            call = self.next_call(rng)
            hang_up = rng.uniform(0.0, 0.05) if rng.random() < self.hang_ups else None
            send(self.port, call, hang_up)
            self.settle(call)

    def _call(
        self,
        kind: str,
        who: str,
        user_id: int,
        token: str,
        path: str,
        body: dict[str, Any],
        keyed: bool = True,
        **meta: Any,
    ) -> Call:
        self.seq += 1
        return Call(
            self.seq,
            kind,
            who,
            user_id,
            token,
            "POST",
            path,
            body,
            uuid.uuid4().hex if keyed else None,
            meta,
        )

    def next_call(self, rng: random.Random) -> Call:
        w = self.world
        with self.lock:
            kind = rng.choices(self.kinds, self.weights)[0]
            if kind in ("scan", "cancel") and not self.pending:
                kind = "order"
            if kind == "checkin":
                m = rng.choice(w.members)
                acts = w.villages[m.village].activities
                fresh = [a for a in acts if (m.index, a[0]) not in self.attempted]
                # Now and then a repeat on purpose: it must be refused, naming the first.
                act = rng.choice(fresh) if fresh and rng.random() > 0.03 else rng.choice(acts)
                self.attempted.add((m.index, act[0]))
                return self._call(
                    "checkin",
                    f"member:{m.index}",
                    m.user_id,
                    m.token,
                    "/api/v1/checkins",
                    {"token": act[1]},
                    keyed=False,
                    member=m.index,
                    activity=act[0],
                )
            if kind == "award":
                side = rng.choice(w.villages)
                # Some batches on a few busy households, in any order, so that concurrent
                # awards cross on the same accounts.
                pool = side.households[:4] if rng.random() < self.hot else side.households
                targets = rng.sample(pool, rng.choice((1, 1, 2, 3)))
                fine = rng.random() < 0.15
                body = {
                    "rule_item_id": w.clutter_item if fine else w.help_item,
                    "note": "压测：检查发现杂物" if fine else "压测：帮扶邻里",
                    "targets": [{"household_id": h} for h in targets],
                }
                return self._call(
                    "award",
                    f"cadre:{side.village_id}",
                    side.cadre_user,
                    side.cadre_token,
                    "/api/v1/awards",
                    body,
                )
            if kind == "order":
                # Some from the members of a few households, whose orders race for points.
                m = rng.choice(self.hot_members if rng.random() < self.hot else w.members)
                side = w.villages[m.village]
                picks = rng.sample(side.rewards, rng.choice((1, 1, 2)))
                body = {
                    "shop_id": side.shop_id,
                    "items": [
                        {"reward_id": r, "quantity": rng.choice((1, 1, 2))} for r, _ in picks
                    ],
                }
                return self._call(
                    "order",
                    f"member:{m.index}",
                    m.user_id,
                    m.token,
                    "/api/v1/redemptions",
                    body,
                    member=m.index,
                )
            # Now and then the order stays up for grabs, so that a scan and a cancel (or two
            # scans) of one order race: one must win, the other be refused.
            pick = rng.randrange(len(self.pending))
            order = self.orders[
                self.pending[pick] if rng.random() < 0.15 else self.pending.pop(pick)
            ]
            if kind == "scan":
                side = w.villages[order.village]
                return self._call(
                    "scan",
                    f"clerk:{side.shop_id}",
                    side.clerk_user,
                    side.clerk_token,
                    "/api/v1/redemptions/scan",
                    {"pickup_token": order.pickup_token},
                    order=order.id,
                )
            m = w.members[order.member]
            return self._call(
                "cancel",
                f"member:{m.index}",
                m.user_id,
                m.token,
                f"/api/v1/redemptions/{order.id}/cancel",
                {"reason": "压测：不要了"},
                order=order.id,
            )

    def settle(self, call: Call) -> None:
        with self.lock:
            self.calls.append(call)
            self.log.write(json.dumps(call.record(), ensure_ascii=False) + "\n")
            r = call.response if isinstance(call.response, dict) else {}
            if call.kind == "checkin":
                pair = (call.meta["member"], call.meta["activity"])
                if call.ok:
                    found = r.get("checkin_id")
                elif call.code == "already_checked_in":
                    found = (r["error"].get("details") or {}).get("checkin_id")
                else:
                    return
                known = self.checkins.get(pair)
                if known is not None and known != found:
                    self.inconsistent.append(
                        f"check-in {pair}: answered {found}, earlier {known} (call {call.seq})"
                    )
                self.checkins[pair] = found
                if call.ok:
                    self.checkin_claims[found] = r.get("claim_id")
            elif call.kind == "award" and call.ok:
                for claim in call.response:
                    self.award_claims[claim["id"]] = (claim["household_id"], claim["points"])
            elif call.kind == "order" and call.ok:
                m = self.world.members[call.meta["member"]]
                self.orders[r["id"]] = Order(
                    r["id"], m.index, r["shop_id"], m.village, r["pickup_token"], r["points"]
                )
                self.pending.append(r["id"])
            elif call.kind in ("scan", "cancel"):
                order = self.orders[call.meta["order"]]
                if order.id in self.pending and call.status is not None:
                    self.pending.remove(order.id)
                if call.ok:
                    if order.status in ("fulfilled", "cancelled"):
                        self.inconsistent.append(
                            f"order {order.id}: {call.kind} answered {call.status} "
                            f"{r.get('status')}, but it was {order.status} already"
                        )
                    order.status = r["status"]
                elif call.status is None:
                    order.status = "unknown"
                elif call.code not in ("already_fulfilled", "redemption_cancelled"):
                    self.inconsistent.append(
                        f"order {order.id}: {call.kind} answered {call.status} {call.code}"
                    )


# ---- after the run: what the database must say ----------------------------------------------


class Checks:
    def __init__(self) -> None:
        self.results: list[tuple[str, bool, str]] = []

    def add(self, name: str, problems: list[str], summary: str) -> None:
        self.results.append((name, not problems, summary))
        mark = "PASS" if not problems else "FAIL"
        print(f"  [{mark}] {name}: {summary}")
        for problem in problems[:10]:
            print(f"         - {problem}")
        if len(problems) > 10:
            print(f"         … and {len(problems) - 10} more")

    @property
    def passed(self) -> bool:
        return all(ok for _, ok, _ in self.results)


def rows(conn: psycopg.Connection[Any], sql: str, *args: Any) -> list[tuple[Any, ...]]:
    return conn.execute(sql, args).fetchall()


def check_effects(
    conn: psycopg.Connection[Any], load: Load, checks: Checks, unresolved: Counter[str]
) -> None:
    # -- check-ins: each 2xx (or its 409 naming the first) is a row with its posted claim
    problems = []
    db_checkins = {
        r[0]: r[1:]
        for r in rows(
            conn,
            """
        SELECT c.id, c.villager_id, c.activity_id, c.claim_id, cl.status, cl.points,
               (SELECT count(*) FROM ledger_entries e WHERE e.claim_id = c.claim_id),
               (SELECT sum(e.amount) FROM ledger_entries e WHERE e.claim_id = c.claim_id)
        FROM checkins c LEFT JOIN claims cl ON cl.id = c.claim_id""",
        )
    }
    member_villager = dict(rows(conn, "SELECT u.id, u.villager_id FROM users u"))
    members = load.world.members
    for (member, activity), checkin_id in load.checkins.items():
        row = db_checkins.get(checkin_id)
        if row is None:
            problems.append(f"check-in {checkin_id} answered but not in the database")
            continue
        villager, act, claim_id, status, points, entries, amount = row
        if villager != member_villager[members[member].user_id] or act != activity:
            problems.append(f"check-in {checkin_id} is of another villager or activity")
        if claim_id is None or status != "posted" or entries != 1 or amount != points:
            problems.append(
                f"check-in {checkin_id}: claim {claim_id} {status}, {entries} "
                f"entries totalling {amount} for {points} points"
            )
    extra = set(db_checkins) - set(load.checkins.values())
    allowed = unresolved["checkin"]
    if len(extra) > allowed:
        problems.append(f"{len(extra)} check-ins no client was told of: {sorted(extra)[:10]}")
    checks.add(
        "check-ins: every 2xx stored and posted, nothing else",
        problems,
        f"{len(load.checkins)} answered (201, or 409 naming it), {len(db_checkins)} in "
        f"the database, each with one ledger entry",
    )

    # -- awards: each claim answered is posted with its one entry; no others
    problems = []
    db_claims = {
        r[0]: r[1:]
        for r in rows(
            conn,
            """
        SELECT cl.id, cl.household_id, cl.points, cl.status,
               (SELECT count(*) FROM ledger_entries e WHERE e.claim_id = cl.id),
               (SELECT sum(e.amount) FROM ledger_entries e WHERE e.claim_id = cl.id)
        FROM claims cl WHERE cl.source = 'cadre'""",
        )
    }
    for claim_id, (household, points) in load.award_claims.items():
        row = db_claims.get(claim_id)
        if row is None:
            problems.append(f"award claim {claim_id} answered but not in the database")
            continue
        db_household, db_points, status, entries, amount = row
        if (
            (db_household, db_points) != (household, points)
            or status != "posted"
            or entries != 1
            or amount != points
        ):
            problems.append(
                f"award claim {claim_id}: household {db_household}, {status}, "
                f"{entries} entries totalling {amount} for {points} points"
            )
    extra = set(db_claims) - set(load.award_claims) - load.world.opening_claims
    if len(extra) > unresolved["award"] * 3:
        problems.append(f"{len(extra)} award claims no client was told of: {sorted(extra)[:10]}")
    checks.add(
        "awards: every 2xx claim posted with its entry, nothing else",
        problems,
        f"{len(load.award_claims)} claims answered, "
        f"{len(db_claims) - len(load.world.opening_claims)} in the database "
        f"(+{len(load.world.opening_claims)} opening awards)",
    )

    # -- orders, scans, cancels: each redemption as the clients last heard of it
    problems = []
    db_orders = {
        r[0]: r[1:]
        for r in rows(
            conn,
            """
        SELECT r.id, r.household_id, r.status, r.points, r.ledger_entry_id, e.kind, e.amount,
               a.household_id
        FROM redemptions r LEFT JOIN ledger_entries e ON e.id = r.ledger_entry_id
        LEFT JOIN accounts a ON a.id = e.account_id""",
        )
    }
    statuses: Counter[str] = Counter()
    for order in load.orders.values():
        row = db_orders.get(order.id)
        household = members[order.member].household_id
        if row is None:
            problems.append(f"order {order.id} answered 201 but not in the database")
            continue
        db_household, status, points, entry_id, kind, amount, entry_household = row
        statuses[status] += 1
        if db_household != household or points != order.points:
            problems.append(f"order {order.id}: household {db_household}, {points} points")
        if order.status != "unknown" and status != order.status:
            problems.append(f"order {order.id} is {status}, the clients were told {order.status}")
        if status == "fulfilled" and (
            kind != "redeem" or amount != -points or entry_household != household
        ):
            problems.append(f"order {order.id} fulfilled with entry {entry_id} {kind} {amount}")
        if status != "fulfilled" and entry_id is not None:
            problems.append(f"order {order.id} is {status} but has entry {entry_id}")
    extra = set(db_orders) - set(load.orders)
    if len(extra) > unresolved["order"]:
        problems.append(f"{len(extra)} redemptions no client was told of: {sorted(extra)[:10]}")
    redeem_entries = rows(
        conn,
        """SELECT count(*) FROM ledger_entries e WHERE e.kind = 'redeem'
        AND NOT EXISTS (SELECT 1 FROM redemptions r WHERE r.ledger_entry_id = e.id)""",
    )[0][0]
    if redeem_entries:
        problems.append(f"{redeem_entries} redeem entries belong to no redemption")
    checks.add(
        "orders/scans/cancels: each redemption as its last 2xx said, nothing else",
        problems,
        f"{len(load.orders)} orders answered 201, {len(db_orders)} in the "
        f"database: {dict(sorted(statuses.items()))}; fulfilled ones have their "
        f"redeem entry",
    )


def check_holds_and_stock(conn: psycopg.Connection[Any], checks: Checks) -> None:
    problems = [
        f"household {h}: held {held}, reserved orders hold {reserved}"
        for h, held, reserved in rows(
            conn,
            """
        SELECT a.household_id, a.held, coalesce(sum(r.points), 0)
        FROM accounts a LEFT JOIN redemptions r
          ON r.household_id = a.household_id AND r.status = 'reserved'
        GROUP BY a.id HAVING a.held <> coalesce(sum(r.points), 0)""",
        )
    ]
    orphans = rows(
        conn,
        """SELECT r.id FROM redemptions r WHERE r.status = 'reserved' AND NOT
        EXISTS (SELECT 1 FROM accounts a WHERE a.household_id = r.household_id)""",
    )
    problems += [f"reserved order {r[0]} has no account to hold its points" for r in orphans]
    held, reserved = rows(
        conn,
        """SELECT (SELECT coalesce(sum(held), 0) FROM accounts),
        (SELECT coalesce(sum(points), 0) FROM redemptions WHERE status = 'reserved')""",
    )[0]
    checks.add(
        "holds: held on each account == points of its household's reserved orders",
        problems,
        f"held {held} in all, reserved orders {reserved}",
    )

    problems = []
    summary = []
    for reward, name, stock, initial, reserved_q, fulfilled_q in rows(
        conn,
        """
        SELECT w.id, w.name, w.stock,
          (SELECT coalesce(sum(m.change), 0) FROM stock_movements m WHERE m.reward_id = w.id),
          (SELECT coalesce(sum(l.quantity), 0) FROM redemption_lines l JOIN redemptions r
             ON r.id = l.redemption_id WHERE l.reward_id = w.id AND r.status = 'reserved'),
          (SELECT coalesce(sum(l.quantity), 0) FROM redemption_lines l JOIN redemptions r
             ON r.id = l.redemption_id WHERE l.reward_id = w.id AND r.status = 'fulfilled')
        FROM rewards w ORDER BY w.id""",
    ):
        adds_up = stock + reserved_q + fulfilled_q == initial and stock >= 0
        if not adds_up:
            problems.append(
                f"reward {reward} {name}: stock {stock} + reserved {reserved_q} + "
                f"fulfilled {fulfilled_q} != stocked {initial}"
            )
        summary.append(
            f"{name} {stock}+{reserved_q}+{fulfilled_q}{'=' if adds_up else '≠'}{initial}"
        )
    checks.add(
        "stock: on the shelf + reserved + handed out == stocked, per reward",
        problems,
        f"{len(summary)} rewards, the first shop's: " + "; ".join(summary[: len(SHELF)]),
    )


def check_ledger(url: str, world: World, checks: Checks) -> None:
    engine = make_engine(url)
    with Session(engine) as s:
        report = ledger.verify_all(s)
        checks.add(
            "hash chains verify (points.ledger.verify_all), and available + held == "
            "sum of entries per account",
            [
                f"account {b.account_id} (household {b.household_id}) entry {b.entry_id}: "
                f"{b.problem}"
                for b in report.breaks
            ],
            f"{report.accounts} accounts, {report.entries} entries",
        )
        monthly = budget.verify_issued(s, TZ)
        checks.add(
            "each village's monthly issued points (the budget's counter) == the sum "
            "of the claims it counts (points.budget.verify_issued)",
            monthly,
            "every village month agrees" if not monthly else "",
        )
        villages = village_totals.verify(s, TZ)
        checks.add(
            "each village month total (what the points report reads) == the sum of its "
            "households' month totals (points.village_totals.verify)",
            villages,
            "every village month agrees" if not villages else "",
        )

        sql = s.connection().exec_driver_sql
        by_kind = dict(
            sql("SELECT kind, coalesce(sum(amount), 0) FROM ledger_entries GROUP BY kind").all()
        )
        issued = sum(by_kind.get(k, 0) for k in ("earn", "deduct", "adjust", "reverse"))
        redeemed = -by_kind.get("redeem", 0)
        expired = -by_kind.get("expire", 0)
        available, held, earned_total = sql(
            "SELECT coalesce(sum(available), 0), coalesce(sum(held), 0), "
            "coalesce(sum(earned_total), 0) FROM accounts"
        ).one()
        balances = available + held
        mt_score, mt_redeemed, mt_expired = sql(
            "SELECT coalesce(sum(score), 0), coalesce(sum(redeemed), 0), "
            "coalesce(sum(expired), 0) FROM month_totals"
        ).one()
        claimed = sql(
            "SELECT coalesce(sum(points), 0) FROM claims WHERE status = 'posted'"
        ).scalar()
        claim_entries = sql(
            "SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE claim_id IS NOT NULL"
        ).scalar()
        fulfilled = sql(
            "SELECT coalesce(sum(points), 0) FROM redemptions WHERE status = 'fulfilled'"
        ).scalar()
        admin = s.get(User, world.admin_user)
        assert admin is not None
        app_report = liability.points_report(s, Actor.of(s, admin), world.township_id, None)
        t = app_report.totals
        problems = []
        if issued != balances + redeemed + expired:
            problems.append(
                f"issued {issued} != balances {balances} + redeemed {redeemed} + expired {expired}"
            )
        for label, got, want in (
            ("month totals' score", mt_score, issued),
            ("accounts' earned_total", earned_total, issued),
            ("month totals' redeemed", -mt_redeemed, redeemed),
            ("month totals' expired", -mt_expired, expired),
            ("posted claims' points", claimed, claim_entries),
            ("fulfilled redemptions' points", fulfilled, redeemed),
            ("the township's points report: issued", t["issued"], issued),
            ("the township's points report: outstanding", t["outstanding"], balances),
            ("the township's points report: redeemed", t["redeemed"], redeemed),
        ):
            if got != want:
                problems.append(f"{label} {got} != {want}")
        if t["issued"] != t["outstanding"] + t["redeemed"] + t["expired"]:
            problems.append(
                f"points report: issued {t['issued']} != outstanding "
                f"{t['outstanding']} + redeemed {t['redeemed']} + expired "
                f"{t['expired']}"
            )
        s.rollback()
    engine.dispose()
    print(
        "  issued   = sum of entry amounts of kinds earn, deduct, adjust, reverse (all "
        "reversible kinds score; a reversal nets its entry out)"
    )
    print(
        "  redeemed = -(sum of redeem entries); expired = -(sum of expire entries); "
        "balances = sum(available + held)"
    )
    checks.add(
        "issued = balances + redeemed + expired (and month totals, earned_total, "
        "claims, redemptions and the township's points report agree)",
        problems,
        f"{issued} = {balances} ({available} available + {held} held) + {redeemed} + {expired}",
    )


def check_idempotency(
    conn: psycopg.Connection[Any],
    load: Load,
    port: int,
    replay: int,
    rng: random.Random,
    checks: Checks,
) -> None:
    problems = []
    stuck = rows(
        conn, "SELECT user_id, key, endpoint FROM idempotency_keys WHERE status_code IS NULL"
    )
    problems += [f"key {k} of user {u} on {e} stored without an answer" for u, k, e in stuck]
    stored = {
        (u, k): (status, response)
        for u, k, status, response in rows(
            conn, "SELECT user_id, key, status_code, response FROM idempotency_keys"
        )
    }
    keyed_ok = [c for c in load.calls if c.key and c.ok]
    for call in keyed_ok:
        row = stored.get((call.user_id, call.key))
        if row is None:
            problems.append(
                f"call {call.seq} ({call.kind}) answered {call.status} but its key is not stored"
            )
        elif row != (call.status, call.response):
            problems.append(
                f"call {call.seq} ({call.kind}): stored answer differs from the one given"
            )
    in_progress = [c.seq for c in load.calls if c.code == "idempotency_in_progress"]
    problems += [f"call {seq} answered idempotency_in_progress" for seq in in_progress]
    sample = rng.sample(keyed_ok, min(replay, len(keyed_ok)))
    for call in sample:
        again = attempt(port, call)
        if not isinstance(again, tuple) or again != (call.status, call.response, True):
            problems.append(
                f"call {call.seq} ({call.kind}) replayed as "
                f"{again if isinstance(again, str) else again[0]}, not its first "
                "answer"
            )
    checks.add(
        "idempotency: every keyed 2xx stored with its answer, none left unanswered, "
        "replays give the first answer",
        problems,
        f"{len(keyed_ok)} keyed 2xx checked against the store, {len(sample)} sent "
        f"again and replayed; {len(stuck)} keys without an answer",
    )


# ---- reporting ------------------------------------------------------------------------------


def percentile(seconds: list[float], p: float) -> float:
    """In milliseconds, retries through a kill included."""
    if not seconds:
        return 0.0
    ordered = sorted(seconds)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


def report_load(load: Load, kills: dict[str, list[Any]], elapsed: float) -> Counter[str]:
    calls = load.calls
    print(
        f"\nload: {len(calls)} requests in {elapsed:.1f} s, "
        f"{sum(len(c.attempts) for c in calls)} attempts"
    )
    print(
        f"{'kind':<8} {'sent':>6} {'2xx':>6} {'refused':>8} {'unknown':>8} "
        f"{'→replayed':>9} {'→ran':>6} {'→409':>6} {'lost':>5} {'p50 ms':>7} {'p99 ms':>7}"
        "  other answers"
    )
    unresolved: Counter[str] = Counter()
    for kind in KINDS:
        mine = [c for c in calls if c.kind == kind]
        unknown = [c for c in mine if c.unknown]
        others = Counter(f"{c.status} {c.code}" for c in mine if c.status and not c.ok)
        lost = [c for c in mine if c.status is None]
        unresolved[kind] = len(lost)
        # An unknown outcome resolved: replayed (it had committed), ran (it had not), or for a
        # check-in a 409 naming the first (it had committed).
        replayed = sum(1 for c in unknown if c.ok and c.replayed)
        ran = sum(1 for c in unknown if c.ok and not c.replayed)
        named = sum(1 for c in unknown if c.code == "already_checked_in")
        print(
            f"{kind:<8} {len(mine):>6} {sum(c.ok for c in mine):>6} "
            f"{sum(1 for c in mine if 'refused' in c.attempts):>8} {len(unknown):>8} "
            f"{replayed:>9} {ran:>6} {named:>6} {len(lost):>5} "
            f"{percentile([c.seconds for c in mine], 0.5):>7.0f} "
            f"{percentile([c.seconds for c in mine], 0.99):>7.0f}  "
            f"{dict(others.most_common(6))}"
        )
    hung_up = sum(1 for c in calls if "hung_up" in c.attempts)
    died = sum(
        1
        for c in calls
        if any(a not in ("refused", "hung_up") and not a.isdigit() for a in c.attempts)
    )
    print(
        f"unknown outcomes: {died} requests whose connection died in a kill, {hung_up} whose "
        "client hung up; each sent again until answered (→replayed: it had committed, "
        "→ran: it had not, →409: a check-in that had)"
    )
    print(
        f"kills: {len(kills['worker'])} workers {kills['worker']}, "
        f"{len(kills['master'])} masters (with their groups) {kills['master']}"
    )
    return unresolved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of load, each ending with a kill of the master",
    )
    parser.add_argument("--round-seconds", type=float, default=15.0)
    parser.add_argument("--worker-kills", type=int, default=3, help="per round")
    parser.add_argument("--threads", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--villages", type=int, default=2)
    parser.add_argument("--households", type=int, default=80, help="per village")
    parser.add_argument("--activities", type=int, default=6, help="per village")
    parser.add_argument("--mix", default="checkin=35,award=15,order=30,scan=15,cancel=5")
    parser.add_argument(
        "--hang-ups",
        type=float,
        default=0.05,
        help="share of requests whose first attempt hangs up without reading "
        "the answer (then retried like any unknown outcome)",
    )
    parser.add_argument(
        "--hot",
        type=float,
        default=0.3,
        help="share of awards and orders among 4 busy households per village",
    )
    parser.add_argument(
        "--replay",
        type=int,
        default=200,
        help="keyed 2xx requests sent again at the end to check the replay",
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--log", default=None, help="JSON lines of every request")
    add_postgres_argument(parser)
    args = parser.parse_args()
    seed_value = args.seed if args.seed is not None else secrets.randbelow(1_000_000)
    rng = random.Random(seed_value)
    mix = {k: float(v) for k, v in (p.split("=") for p in args.mix.split(","))}
    log_path = Path(args.log or f"/tmp/crash-{os.getpid()}.jsonl")
    server_log_path = log_path.with_suffix(".gunicorn.log")
    print(
        f"crash bench: seed {seed_value}, {args.rounds} rounds of {args.round_seconds:g} s, "
        f"{args.worker_kills} worker kills per round, {args.threads} client threads, "
        f"gunicorn --workers {args.workers}; requests → {log_path}, server log → "
        f"{server_log_path}"
    )

    checks = Checks()
    with (
        scratch_database(args.postgres, "crash") as url,
        open(log_path, "w") as log,
        open(server_log_path, "wb") as server_log,
    ):
        started = time.perf_counter()
        migrate(url, SECRET)
        world = seed(url, args.villages, args.households, args.activities)
        print(
            f"seeded in {time.perf_counter() - started:.1f} s (schema by flask db upgrade): "
            f"{args.villages} villages, {len(world.members)} villagers in "
            f"{args.villages * args.households} households (40 points each to start), "
            f"{args.activities} activities and {len(SHELF)} rewards per village"
        )
        port = free_port(PORTS)
        server = Server(url, port, args.workers, server_log)
        kills: dict[str, list[Any]] = {"worker": [], "master": []}
        load = Load(world, port, mix, args.hang_ups, args.hot, seed_value, log)
        try:
            server.start()
            print(f"gunicorn on {HOST}:{port}")
            threads = [
                threading.Thread(target=load.run, args=(i,), daemon=True)
                for i in range(args.threads)
            ]
            load_started = time.monotonic()
            for t in threads:
                t.start()
            for round_no in range(args.rounds):
                round_start = time.monotonic()
                moments = sorted(
                    rng.uniform(0.5, args.round_seconds - 0.5) for _ in range(args.worker_kills)
                )
                for moment in moments:
                    time.sleep(max(0.0, round_start + moment - time.monotonic()))
                    pid = server.kill_worker(rng)
                    if pid is not None:
                        kills["worker"].append(pid)
                time.sleep(max(0.0, round_start + args.round_seconds - time.monotonic()))
                assert server.proc is not None
                kills["master"].append(server.proc.pid)
                alive = len(server.workers_now())
                group = server.kill_master()
                down = rng.uniform(0.2, 1.5)
                print(
                    f"round {round_no + 1}: {len(kills['worker'])} workers killed so far, "
                    f"{alive} alive (respawned) when the master group {group} was killed; "
                    f"down {down:.1f} s; {len(load.calls)} requests answered so far"
                )
                time.sleep(down)
                server.start()
            # A last stretch with no kills, then let every thread finish its request.
            time.sleep(args.round_seconds / 2)
            load.stop_flag.set()
            for t in threads:
                t.join(RETRY_FOR_S + 60)
            elapsed = time.monotonic() - load_started
            unresolved = report_load(load, kills, elapsed)

            print("\nchecks:")
            lost = [c for c in load.calls if c.status is None]
            checks.add(
                "every request got a definite answer (retried through the kills)",
                [f"call {c.seq} ({c.kind}) never answered: {c.attempts[-3:]}" for c in lost],
                f"{len(load.calls) - len(lost)} of {len(load.calls)}",
            )
            errors = [c for c in load.calls if c.status is not None and c.status >= 500]
            server_log.flush()
            logged = server_log_path.read_text(errors="replace").splitlines()
            tracebacks = sum(1 for line in logged if line.startswith("Traceback"))
            # The exception line of each traceback, e.g. psycopg.errors.DeadlockDetected.
            causes = Counter(
                line[:160]
                for line in logged
                if line.startswith(("psycopg.", "sqlalchemy.", "builtins."))
            )
            problems = [
                f"call {c.seq} ({c.kind}) {c.status}: {str(c.response)[:200]}" for c in errors
            ]
            if tracebacks:
                problems.append(
                    f"{tracebacks} tracebacks in {server_log_path}: {dict(causes.most_common(3))}"
                )
            checks.add(
                "no 5xx answers, no traceback in the server log",
                problems,
                f"{len(errors)} 5xx, {tracebacks} tracebacks",
            )
            races = sum(
                1 for c in load.calls if c.code in ("already_fulfilled", "redemption_cancelled")
            )
            checks.add(
                "answers agree: a check-in's 409 names the one answered before; of a "
                "scan and a cancel racing for one order, one wins",
                load.inconsistent,
                f"{races} racing scans/cancels refused as they should be",
            )
            with psycopg.connect(url) as conn:
                check_idempotency(conn, load, port, args.replay, rng, checks)
            server.stop()
            with psycopg.connect(url) as conn:
                check_effects(conn, load, checks, unresolved)
                check_holds_and_stock(conn, checks)
            check_ledger(url, world, checks)
        finally:
            server.stop()

    sent = len(load.calls)
    ok = sum(c.ok for c in load.calls)
    unknown = sum(c.unknown for c in load.calls)
    verdict = "PASS" if checks.passed else "FAIL"
    print(f"worker_peak_rss_mb={server.peak_rss_mb:.1f}")
    print(
        f"\ncrash: sent={sent} ok={ok} unknown={unknown} kills=workers:{len(kills['worker'])} "
        f"master:{len(kills['master'])} checks={verdict}"
    )
    sys.exit(0 if checks.passed else 1)


if __name__ == "__main__":
    main()
