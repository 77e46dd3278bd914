"""A stateful property test (hypothesis) of the ledger and the points supermarket, driving
the domain services in points/ directly with a session, as the API does (commit on success,
roll back on a DomainError).

Earn (a cadre's award or deduction, a villager's claim), approve, reject, post what is due,
reverse, order, scan, cancel, expire and restock run in any order over three households (one
of two members) and a shop of three rewards with little stock, while a plain-Python model
predicts every outcome: which step succeeds, which is refused and with what code, and each
household's `available`, `held` and score. After every step the database is checked against
the model and against itself: balances equal the sum of entries and every chain verifies,
`held` is the sum of the household's reserved orders, stock is never negative and adds up,
rejected claims have no entry. A refused step changes nothing; only a deduction or a
reversal may lower `available`, an order only while it stays >= 0.

Each example starts from empty tables (conftest's `_empty_tables`) and its own small world.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar

import time_machine
from flask import Flask
from hypothesis import HealthCheck, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import rules
from backend.caller import qr_codec
from backend.extensions import db
from points import budget, catalogs, claims, ledger
from points.errors import DomainError
from points.models import (
    Account,
    Base,
    Claim,
    ClaimApproval,
    Household,
    LedgerEntry,
    Redemption,
    RedemptionLine,
    Reward,
    Shop,
    Township,
    User,
    Village,
    Villager,
)
from points.scope import Actor
from points.shop import redemption as redemptions
from points.shop import shelves
from points.tokens import TokenType
from tests.support.clock import SHANGHAI, local

T = TypeVar("T")

START = local(2026, 3, 10, 9).astimezone(UTC)  # services get UTC, as from the API
HOLD = timedelta(hours=48)  # an order's pickup time
QUALIFICATION = 5  # the policy's 合格线: a household needs this score to order
TWO_CADRES = 50  # at or above: two different cadres approve

# code → (points, submitted by, needs review, notice days)
ITEMS: dict[str, tuple[int, str, bool, int]] = {
    "AWARD": (10, "cadre", True, 0),  # posted as the cadre enters it
    "BIG": (50, "cadre", True, 0),  # needs a second cadre, then posted
    "DEDUCT": (-6, "cadre", True, 0),  # may take `available` below zero
    "CLAIM": (8, "villager", True, 2),  # pending → approved into notice → posted when due
    "SELF": (2, "villager", False, 1),  # no review: in notice at once
}
CADRE_ITEMS = ("AWARD", "BIG", "DEDUCT")
VILLAGER_ITEMS = ("SELF", "CLAIM")

# (name, price, stock): little stock, so orders run out
REWARDS = (("香皂", 4, 3), ("大米", 12, 2), ("食用油", 30, 1))
# Hypothesis draws the first of a sampled_from far more often than the others (it is the
# "simplest"): the first is the value that makes a step do something.
OPEN_ONLY = st.sampled_from([True, False])
# (reward index, quantity) lines of an order
LINES = st.lists(st.tuples(st.integers(0, 2), st.integers(1, 2)), min_size=1, max_size=2)
MEMBERS = (2, 1, 1)  # household 0 has two members, each with a phone; the others one
OPENING = (80, 40, 0)  # points each household starts with: two can order at once


def catalog() -> rules.Catalog:
    items = []
    for code, (points, by, review, notice) in ITEMS.items():
        items.append(
            rules.RuleItem(
                code=code,
                name=f"测试项{code}",
                category="测试",
                klass="deduction" if points < 0 else "bonus",
                points=points,
                kind="fixed",
                applies_to="member" if by == "villager" else "household",
                submit_by=(by,),
                requires_review=review,
                notice_days=notice,
            )
        )
    return rules.Catalog(
        name="状态机测试细则",
        categories=("测试",),
        policy=rules.Policy(
            notice_days=5, two_cadre_threshold=TWO_CADRES, qualification_line=QUALIFICATION
        ),
        items=tuple(items),
    )


def clear_tables(app: Flask) -> None:
    """conftest's `_empty_tables`, by DELETE on PostgreSQL too: with a few rows in each
    table it is many times faster than TRUNCATE, and it runs before every example."""
    with app.app_context(), db.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


# ---- the model --------------------------------------------------------------------------------


@dataclass
class MClaim:
    household: int  # index
    item: str
    points: int
    status: str
    approvals: set[int] = field(default_factory=set)  # cadre indexes
    notice_ends_at: datetime | None = None


@dataclass
class MEntry:
    household: int
    kind: str
    amount: int
    reversed: bool = False


@dataclass
class MOrder:
    household: int
    points: int
    lines: dict[int, int]  # reward index → quantity
    status: str
    expires_at: datetime


@dataclass
class MHousehold:
    available: int = 0
    held: int = 0
    score: int = 0  # earned less deductions, reversals included; spending never lowers it


@dataclass
class MReward:
    price: int
    stock: int
    base: int  # initial stock plus every adjustment
    active: bool = True


# (household index, kind, amount, claim id, reverses id) of an entry the step should append
Expected = tuple[int, str, int, int | None, int | None]


class LedgerShop(RuleBasedStateMachine):
    app: ClassVar[Flask]
    # (step, outcome) → how often, over the whole run: proof the run was not vacuous
    seen: ClassVar[Counter[tuple[str, str]]] = Counter()

    def __init__(self) -> None:
        super().__init__()
        clear_tables(self.app)
        self.now = START
        self.households = [MHousehold() for _ in MEMBERS]
        self.rewards = [MReward(price, stock, stock) for _, price, stock in REWARDS]
        self.claims: dict[int, MClaim] = {}
        self.entries: dict[int, MEntry] = {}
        self.orders: dict[int, MOrder] = {}
        self.last_entry_id = 0
        self._build()
        with self.session() as s:
            expected: list[Expected] = []
            for h, points in enumerate(OPENING):
                if points:
                    ledger.append(
                        s,
                        household_id=self.household_ids[h],
                        kind="earn",
                        amount=points,
                        when=ledger.EntryTime(SHANGHAI, at=self.now),
                        origin=ledger.EntryOrigin(note="期初积分"),
                    )
                    self.households[h] = MHousehold(available=points, score=points)
                    expected.append((h, "earn", points, None, None))
            s.commit()
            self.record_entries(s, expected)

    def _build(self) -> None:
        """One township, one village served by one shop; two cadres and a clerk; each
        household's members bound to villager users. Only ids are kept."""
        with self.app.app_context():
            s = db.session
            township = Township(name="状态镇", code="TS")
            s.add(township)
            s.flush()
            village = Village(township_id=township.id, name="状态村")
            s.add(village)
            s.flush()
            shop = Shop(township_id=township.id, name="状态村积分超市", villages=[village])
            s.add(shop)
            s.flush()
            self.shop_id = shop.id
            catalogs.install_catalog(s, None, township.id, catalog())
            self.item_ids = {item.code: item.id for item in catalogs.effective_items(s, village.id)}
            self.household_ids: list[int] = []
            self.villagers: list[list[Actor]] = []  # per household, one per member
            users: list[User] = []
            for h, members in enumerate(MEMBERS):
                household = Household(
                    village_id=village.id, name=f"状态{h}户", address=f"状态村{h}号"
                )
                s.add(household)
                s.flush()
                self.household_ids.append(household.id)
                for m in range(members):
                    member = Villager(
                        household_id=household.id,
                        name=f"村民{h}-{m}",
                        relation="户主" if m == 0 else "配偶",
                    )
                    s.add(member)
                    s.flush()
                    users.append(
                        User(
                            role="villager",
                            openid=f"stateful-{h}-{m}",
                            villager_id=member.id,
                            name=member.name,
                        )
                    )
            cadres = [
                User(
                    role="cadre",
                    username=f"state_cadre{i}",
                    township_id=township.id,
                    village_id=village.id,
                )
                for i in range(2)
            ]
            clerk = User(
                role="clerk", username="state_clerk", township_id=township.id, shop_id=shop.id
            )
            s.add_all([*users, *cadres, clerk])
            s.flush()
            for user in users:
                actor = Actor.of(s, user)
                index = self.household_ids.index(actor.household_id)
                while len(self.villagers) <= index:
                    self.villagers.append([])
                self.villagers[index].append(actor)
            self.cadres = [Actor.of(s, cadre) for cadre in cadres]
            self.clerk = Actor.of(s, clerk)
            self.reward_ids = []
            for name, price, stock in REWARDS:
                reward = Reward(shop_id=shop.id, name=name, points=price, stock=stock)
                s.add(reward)
                s.flush()
                self.reward_ids.append(reward.id)
            s.commit()
        assert self.reward_ids == sorted(self.reward_ids)  # orders take rows in id order

    # ---- running a step ---------------------------------------------------------------------

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session at the model's clock (services take `now`; the few defaults that read
        the clock themselves, e.g. a reversal's time, read it too)."""
        with self.app.app_context(), time_machine.travel(self.now, tick=False):
            yield db.session

    def _available(self, s: Session) -> dict[int, int]:
        rows = s.execute(select(Account.household_id, Account.available)).all()
        found = dict(rows)
        return {h: found.get(hid, 0) for h, hid in enumerate(self.household_ids)}

    def attempt(
        self,
        s: Session,
        step: str,
        action: Callable[[], T],
        expected_error: str | None,
        *,
        may_lower: tuple[int, ...] = (),
        spends: tuple[int, ...] = (),
    ) -> T | None:
        """Run one service call as the API does and check what it did. A refusal must carry
        `expected_error`; it must change nothing, which the invariant checks, as the model
        is left as it was. A success must be expected; it may lower the `available` of the
        households in `may_lower` (a deduction, a reversal) freely and of those in `spends`
        (an order) only while it stays at or above zero; no other household's `available`
        may go down. (Before the step the model's balances are the database's: the
        invariant checked them after the last step.)"""
        before = {h: household.available for h, household in enumerate(self.households)}
        try:
            result = action()
        except DomainError as exc:
            s.rollback()
            self.seen[step, exc.code] += 1
            assert exc.code == expected_error, (
                f"refused with {exc.code}, the model expected "
                f"{expected_error or 'success'}: {exc.message}"
            )
            return None
        s.commit()
        self.seen[step, "ok"] += 1
        assert expected_error is None, f"succeeded, the model expected {expected_error}"
        self.check_lowered(before, self._available(s), may_lower, spends)
        return result

    @staticmethod
    def check_lowered(
        before: dict[int, int],
        after: dict[int, int],
        may_lower: tuple[int, ...] = (),
        spends: tuple[int, ...] = (),
    ) -> None:
        for h, value in after.items():
            if h in spends:
                assert value >= 0, f"an order took household {h} to {value}"
            elif h not in may_lower:
                assert value >= before[h], f"household {h}: available {before[h]} → {value}"

    def record_entries(self, s: Session, expected: list[Expected]) -> None:
        """The entries the step appended, in order, must be exactly those expected. (That a
        step appended none when none was expected, the invariant's count of entries shows.)"""
        if not expected:
            return
        rows = s.execute(
            select(
                LedgerEntry.id,
                Account.household_id,
                LedgerEntry.kind,
                LedgerEntry.amount,
                LedgerEntry.claim_id,
                LedgerEntry.reverses_id,
            )
            .join(Account, Account.id == LedgerEntry.account_id)
            .where(LedgerEntry.id > self.last_entry_id)
            .order_by(LedgerEntry.id)
        ).all()
        s.rollback()
        got = [
            (self.household_ids.index(r.household_id), r.kind, r.amount, r.claim_id, r.reverses_id)
            for r in rows
        ]
        assert got == expected
        for row, (h, kind, amount, _, _) in zip(rows, expected, strict=True):
            self.entries[row.id] = MEntry(h, kind, amount)
            self.last_entry_id = row.id

    @staticmethod
    def choose(
        objects: dict[int, Any], pick: int, open_only: bool, is_open: Callable[[Any], bool]
    ) -> int:
        """An object by index; with `open_only`, one still open when there is one (else the
        steps on open claims and orders would be rare among the closed ones)."""
        ids = sorted(objects)
        if open_only:
            ids = [i for i in ids if is_open(objects[i])] or ids
        return ids[pick % len(ids)]

    def post_claim(self, claim_id: int) -> Expected:
        """The model of posting a claim: its entry, the balance and score it moves."""
        claim = self.claims[claim_id]
        claim.status = "posted"
        household = self.households[claim.household]
        household.available += claim.points
        household.score += claim.points
        return (
            claim.household,
            "earn" if claim.points > 0 else "deduct",
            claim.points,
            claim_id,
            None,
        )

    def _approved(self, claim_id: int) -> list[Expected]:
        """Enough approvals: in notice, or posted when the item has no notice days."""
        claim = self.claims[claim_id]
        notice = ITEMS[claim.item][3]
        if notice:
            claim.status = "in_notice"
            claim.notice_ends_at = self.now + timedelta(days=notice)
            return []
        return [self.post_claim(claim_id)]

    # ---- earning ------------------------------------------------------------------------------

    @rule(cadre=st.integers(0, 1), code=st.sampled_from(CADRE_ITEMS), h=st.integers(0, 2))
    def award(self, cadre: int, code: str, h: int) -> None:
        points = ITEMS[code][0]
        with self.session() as s:
            made = self.attempt(
                s,
                "award",
                lambda: claims.award(
                    s,
                    self.cadres[cadre],
                    rule_item_id=self.item_ids[code],
                    units=None,
                    note="状态机测试",
                    evidence=[],
                    targets=[{"household_id": self.household_ids[h]}],
                    tz=SHANGHAI,
                    now=self.now,
                ),
                None,
                may_lower=(h,) if points < 0 else (),
            )
            assert made is not None
            claim_id = made[0].id
            self.claims[claim_id] = MClaim(h, code, points, "pending", {cadre})
            expected = [] if abs(points) >= TWO_CADRES else self._approved(claim_id)
            self.record_entries(s, expected)

    @initialize()
    def opening_claims(self) -> None:
        """A claim awaiting review and an award awaiting its second cadre, so that approving
        and rejecting find something to decide in every example."""
        self.submit(0, 1, "CLAIM")
        self.award(0, "BIG", 2)

    @rule(h=st.integers(0, 2), m=st.integers(0, 1), code=st.sampled_from(VILLAGER_ITEMS))
    def submit(self, h: int, m: int, code: str) -> None:
        villager = self.villagers[h][m % len(self.villagers[h])]
        with self.session() as s:
            claim = self.attempt(
                s,
                "submit",
                lambda: claims.submit(
                    s,
                    villager,
                    rule_item_id=self.item_ids[code],
                    units=None,
                    note=None,
                    evidence=[],
                    tz=SHANGHAI,
                    now=self.now,
                ),
                None,
            )
            assert claim is not None
            self.claims[claim.id] = MClaim(h, code, ITEMS[code][0], "pending")
            needs_review = ITEMS[code][2]
            self.record_entries(s, [] if needs_review else self._approved(claim.id))

    @precondition(lambda self: self.claims)
    @rule(cadre=st.integers(0, 1), pick=st.integers(0, 1000), open_only=OPEN_ONLY)
    def approve(self, cadre: int, pick: int, open_only: bool) -> None:
        claim_id = self.choose(self.claims, pick, open_only, lambda c: c.status == "pending")
        claim = self.claims[claim_id]
        error = None
        if claim.status != "pending":
            error = "claim_not_pending"
        elif cadre in claim.approvals:
            error = "already_approved"
        with self.session() as s:
            self.attempt(
                s,
                "approve",
                lambda: claims.approve(s, self.cadres[cadre], claim_id, SHANGHAI, self.now),
                error,
            )
            expected: list[Expected] = []
            if error is None:
                claim.approvals.add(cadre)
                needed = 2 if abs(claim.points) >= TWO_CADRES else 1
                if len(claim.approvals) >= needed:
                    expected = self._approved(claim_id)
            self.record_entries(s, expected)

    @precondition(lambda self: self.claims)
    @rule(cadre=st.integers(0, 1), pick=st.integers(0, 1000), open_only=OPEN_ONLY)
    def reject(self, cadre: int, pick: int, open_only: bool) -> None:
        claim_id = self.choose(self.claims, pick, open_only, lambda c: c.status == "pending")
        claim = self.claims[claim_id]
        error = None if claim.status == "pending" else "claim_not_pending"
        with self.session() as s:
            self.attempt(
                s,
                "reject",
                lambda: claims.reject(s, self.cadres[cadre], claim_id, "不属实", self.now),
                error,
            )
            if error is None:
                claim.status = "rejected"

    # Whole days as often as odd hours: a notice's end and an order's pickup time are met
    # exactly, not only passed, so the boundaries (<= against <) are tested.
    @rule(hours=st.sampled_from([24, 48, 1, 47]))
    def tick(self, hours: int) -> None:
        self.now += timedelta(hours=hours)
        self.seen["tick", "ok"] += 1

    @rule(hours=st.sampled_from([48, 24, 0]))
    def post_due(self, hours: int) -> None:
        # The run that posts what is due, usually some time later (not every run of the
        # machine has `tick` in it).
        self.now += timedelta(hours=hours)
        due = sorted(
            cid
            for cid, c in self.claims.items()
            if c.status == "in_notice"
            and c.notice_ends_at is not None
            and c.notice_ends_at <= self.now
        )
        with self.session() as s:
            before = {h: household.available for h, household in enumerate(self.households)}
            posted = claims.post_due(s, self.now, SHANGHAI)
            s.commit()
            self.check_lowered(before, self._available(s))
            assert posted == len(due)
            self.seen["post_due", "posted" if due else "none due"] += 1
            self.record_entries(s, [self.post_claim(cid) for cid in due])

    @precondition(lambda self: self.entries)
    @rule(cadre=st.integers(0, 1), pick=st.integers(0, 1000), open_only=OPEN_ONLY)
    def reverse(self, cadre: int, pick: int, open_only: bool) -> None:
        entry_id = self.choose(
            self.entries,
            pick,
            open_only,
            lambda e: not e.reversed and e.kind in ("earn", "deduct", "adjust"),
        )
        entry = self.entries[entry_id]
        error = None
        if entry.kind not in ("earn", "deduct", "adjust"):
            error = "not_reversible"
        elif entry.reversed:
            error = "already_reversed"
        with self.session() as s:
            self.attempt(
                s,
                "reverse",
                lambda: ledger.reverse(
                    s,
                    s.get(LedgerEntry, entry_id),
                    reason="冲正测试",  # type: ignore[arg-type]
                    created_by=self.cadres[cadre].user_id,
                    tz=SHANGHAI,
                ),
                error,
                may_lower=(entry.household,),
            )
            expected: list[Expected] = []
            if error is None:
                entry.reversed = True
                household = self.households[entry.household]
                household.available -= entry.amount
                household.score -= entry.amount
                expected = [(entry.household, "reverse", -entry.amount, None, entry_id)]
            self.record_entries(s, expected)

    # ---- the supermarket ----------------------------------------------------------------------

    @initialize(lines=LINES)
    def opening_orders(self, lines: list[tuple[int, int]]) -> None:
        """An order from each of the first two households before anything else, so that
        scanning, cancelling and expiring find a reservation in (almost) every example."""
        self.order(0, 0, lines)
        self.order(1, 0, lines[:1])

    @rule(h=st.integers(0, 2), m=st.integers(0, 1), lines=LINES)
    def order(self, h: int, m: int, lines: list[tuple[int, int]]) -> None:
        villager = self.villagers[h][m % len(self.villagers[h])]
        wanted: dict[int, int] = {}
        for r, quantity in lines:
            wanted[r] = wanted.get(r, 0) + quantity
        total = sum(self.rewards[r].price * q for r, q in wanted.items())
        household = self.households[h]
        error = None
        if any(not self.rewards[r].active for r in wanted):
            error = "reward_unavailable"
        elif household.score < QUALIFICATION:
            error = "not_qualified"
        elif household.available < total:
            error = "insufficient_points"
        elif any(self.rewards[r].stock < q for r, q in wanted.items()):
            error = "out_of_stock"
        with self.session() as s:
            made = self.attempt(
                s,
                "order",
                lambda: redemptions.place_order(
                    s,
                    villager,
                    shop_id=self.shop_id,
                    items=[{"reward_id": self.reward_ids[r], "quantity": q} for r, q in lines],
                    now=self.now,
                    tz=SHANGHAI,
                    hold=HOLD,
                ),
                error,
                spends=(h,),
            )
            if made is not None:
                self.orders[made.id] = MOrder(h, total, wanted, "reserved", self.now + HOLD)
                household.available -= total
                household.held += total
                for r, q in wanted.items():
                    self.rewards[r].stock -= q

    @precondition(lambda self: self.orders)
    @rule(pick=st.integers(0, 1000), open_only=OPEN_ONLY)
    def scan(self, pick: int, open_only: bool) -> None:
        order_id = self.choose(self.orders, pick, open_only, lambda o: o.status == "reserved")
        order = self.orders[order_id]
        error = {
            "fulfilled": "already_fulfilled",
            "cancelled": "redemption_cancelled",
            "expired": "redemption_expired",
        }.get(order.status)
        if error is None and self.now >= order.expires_at:
            error = "redemption_expired"  # overdue, though the expiry run has not come yet
        with self.session() as s:
            codec = qr_codec()
            token = codec.encode(TokenType.PICKUP, (order_id,), expires_at=order.expires_at)
            self.attempt(
                s,
                "scan",
                lambda: redemptions.fulfil_by_token(
                    s, self.clerk, codec, token, now=self.now, tz=SHANGHAI
                ),
                error,
            )
            expected: list[Expected] = []
            if error is None:
                order.status = "fulfilled"
                self.households[order.household].held -= order.points
                expected = [(order.household, "redeem", -order.points, None, None)]
            self.record_entries(s, expected)

    def _void(self, order: MOrder, status: str) -> None:
        """The model of cancel and expiry: points and stock back."""
        order.status = status
        household = self.households[order.household]
        household.available += order.points
        household.held -= order.points
        for r, q in order.lines.items():
            self.rewards[r].stock += q

    @precondition(lambda self: self.orders)
    @rule(
        pick=st.integers(0, 1000),
        open_only=OPEN_ONLY,
        by=st.sampled_from(["own", "spouse", "clerk", "other"]),
    )
    def cancel(self, pick: int, open_only: bool, by: str) -> None:
        order_id = self.choose(self.orders, pick, open_only, lambda o: o.status == "reserved")
        order = self.orders[order_id]
        household = order.household
        if by == "clerk":
            actor = self.clerk
        elif by == "other":
            actor = self.villagers[(household + 1) % len(MEMBERS)][0]
        else:
            members = self.villagers[household]
            actor = members[(by == "spouse") % len(members)]
        error = (
            None
            if order.status == "reserved"
            else {
                "fulfilled": "already_fulfilled",
                "cancelled": "redemption_cancelled",
                "expired": "redemption_expired",
            }[order.status]
        )
        if by == "other":
            error = "not_found"  # another household's order: not theirs to see
        with self.session() as s:
            self.attempt(
                s,
                "cancel",
                lambda: redemptions.cancel(
                    s, actor, order_id, reason=None, now=self.now, tz=SHANGHAI
                ),
                error,
            )
            if error is None:
                self._void(order, "cancelled")

    @rule(hours=st.sampled_from([48, 24, 0]))
    def expire(self, hours: int) -> None:
        self.now += timedelta(hours=hours)
        due = sorted(
            oid
            for oid, o in self.orders.items()
            if o.status == "reserved" and o.expires_at <= self.now
        )
        with self.session() as s:
            before = {h: household.available for h, household in enumerate(self.households)}
            expired = redemptions.expire_due(s, self.now, SHANGHAI)
            s.commit()
            self.check_lowered(before, self._available(s))
            assert expired == len(due)
            self.seen["expire", "expired" if due else "none due"] += 1
            for order_id in due:
                self._void(self.orders[order_id], "expired")

    @rule(r=st.integers(0, 2), change=st.sampled_from([-2, -1, 1, 3]))
    def adjust_stock(self, r: int, change: int) -> None:
        reward = self.rewards[r]
        error = "stock_negative" if reward.stock + change < 0 else None
        with self.session() as s:
            self.attempt(
                s,
                "adjust_stock",
                lambda: shelves.adjust_stock(
                    s,
                    self.clerk,
                    self.reward_ids[r],
                    kind="restock" if change > 0 else "correction",
                    change=change,
                    reason="盘点",
                    now=self.now,
                ),
                error,
            )
            if error is None:
                reward.stock += change
                reward.base += change

    @rule(
        r=st.integers(0, 2),
        price=st.sampled_from([3, 4, 8, 12]),
        active=st.sampled_from([True, True, False]),
    )
    def shelve(self, r: int, price: int, active: bool) -> None:
        """Reprice a reward or take it off the shelf: orders placed keep their price."""
        with self.session() as s:
            self.attempt(
                s,
                "shelve",
                lambda: shelves.update_reward(
                    s, self.clerk, self.reward_ids[r], {"points": price, "active": active}
                ),
                None,
            )
            self.rewards[r].price, self.rewards[r].active = price, active

    # ---- after every step -------------------------------------------------------------------

    @invariant()
    def database_agrees(self) -> None:
        with self.app.app_context():
            s = db.session
            report = ledger.verify_all(s)
            assert report.breaks == [], report.breaks  # balances == sum(entries), chains
            assert report.entries == len(self.entries)
            assert budget.verify_issued(s, SHANGHAI) == []  # the monthly budget's counter

            accounts = {
                row.household_id: (row.available, row.held)
                for row in s.execute(select(Account.household_id, Account.available, Account.held))
            }
            reserved = dict(
                s.execute(
                    select(Redemption.household_id, func.sum(Redemption.points))
                    .where(Redemption.status == "reserved")
                    .group_by(Redemption.household_id)
                ).all()
            )
            for h, household_id in enumerate(self.household_ids):
                model = self.households[h]
                available, held = accounts.get(household_id, (0, 0))
                assert (available, held) == (model.available, model.held), h
                assert held == (reserved.get(household_id) or 0), h

            units = dict(
                s.execute(
                    select(RedemptionLine.reward_id, func.sum(RedemptionLine.quantity))
                    .join(Redemption, Redemption.id == RedemptionLine.redemption_id)
                    .where(Redemption.status.in_(("reserved", "fulfilled")))
                    .group_by(RedemptionLine.reward_id)
                ).all()
            )
            stocks = dict(s.execute(select(Reward.id, Reward.stock)).all())
            for r, reward_id in enumerate(self.reward_ids):
                stock = stocks[reward_id]
                assert stock >= 0
                assert stock == self.rewards[r].stock
                assert stock + (units.get(reward_id) or 0) == self.rewards[r].base

            statuses = dict(s.execute(select(Claim.id, Claim.status)).all())
            assert statuses == {cid: c.status for cid, c in self.claims.items()}
            entered = dict(
                s.execute(
                    select(LedgerEntry.claim_id, func.count())
                    .where(LedgerEntry.claim_id.is_not(None))
                    .group_by(LedgerEntry.claim_id)
                ).all()
            )
            # A rejected claim adds nothing; a posted one exactly one entry.
            assert entered == {cid: 1 for cid, c in self.claims.items() if c.status == "posted"}

            approvals = dict(
                s.execute(
                    select(ClaimApproval.claim_id, func.count()).group_by(ClaimApproval.claim_id)
                ).all()
            )
            assert approvals == {
                cid: len(c.approvals) for cid, c in self.claims.items() if c.approvals
            }

            orders = dict(s.execute(select(Redemption.id, Redemption.status)).all())
            assert orders == {oid: o.status for oid, o in self.orders.items()}
            s.rollback()


# Outcomes the run must have reached at least once, or it proved little. The run is
# deterministic (a fixed seed; STATEFUL_SEED tries another), but changing the rules or
# strategies changes which examples it draws: if one of these goes missing, retune the
# settings or the opening steps.
SEED = 20261129
MUST_SEE = {
    ("award", "ok"),
    ("submit", "ok"),
    ("approve", "ok"),
    ("approve", "already_approved"),
    ("reject", "ok"),
    ("reject", "claim_not_pending"),
    ("post_due", "posted"),
    ("reverse", "ok"),
    ("reverse", "already_reversed"),
    ("reverse", "not_reversible"),
    ("order", "ok"),
    ("order", "insufficient_points"),
    ("order", "out_of_stock"),
    ("order", "not_qualified"),
    ("scan", "ok"),
    ("scan", "redemption_expired"),
    ("cancel", "ok"),
    ("cancel", "not_found"),
    ("expire", "expired"),
    ("adjust_stock", "ok"),
    ("adjust_stock", "stock_negative"),
    ("shelve", "ok"),
}


def test_ledger_and_shop_hold_their_invariants_in_any_order(app: Flask) -> None:
    LedgerShop.app = app
    LedgerShop.seen.clear()
    # 80 runs of 20 steps (plus the opening ones): about 30 s on SQLite and 60 s on
    # PostgreSQL on a busy 2-core machine. Many short runs rather than few long ones:
    # hypothesis switches rules off at random per run (swarm testing), so more runs mix
    # more combinations of them.
    # A fixed seed rather than derandomize: derandomize seeds from the class's source, so
    # any edit of it (a new invariant) drew other runs and could leave an outcome unseen.
    run_state_machine_as_test(
        seed(int(os.environ.get("STATEFUL_SEED", SEED)))(LedgerShop),
        settings=settings(
            max_examples=80,
            stateful_step_count=20,
            database=None,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
    missing = MUST_SEE - set(LedgerShop.seen)
    assert not missing, f"never exercised: {sorted(missing)}; seen: {dict(LedgerShop.seen)}"
