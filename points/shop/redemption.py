"""Redemption at the points supermarket (积分超市): a villager's order, picked up by a scan
or by its pickup number (取货号), or cancelled or expired. Counter redemption, for people
without phones, reserves and fulfils in one go (points.shop.counter).

Redemption is two-phase, like a pending transfer in a double-entry ledger (docs/DESIGN.md,
The ledger):

- order: in one transaction, `available → held` for the points and `stock - q` for each
  line, both by conditional UPDATE … WHERE available >= :cost / stock >= :q and a row-count
  check, so two phones ordering at once can never overspend nor oversell. No ledger entry
  yet: a hold keeps `available + held == sum(entries)`.
- the clerk's scan: `reserved → fulfilled` by a conditional update (a second scan finds
  nothing to move), then the redeem entry is appended out of `held`.
- cancel or expiry: `reserved → cancelled|expired` by a conditional update, then the points
  go back `held → available` and the stock back on the shelf. Points of a period reset
  while they were held (定期清零) expire as they come back (points.policies).

Who may redeem at all (the qualification line, 合格线): points.shop.qualification.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, or_, select, update
from sqlalchemy.orm import Session, selectinload

from .. import audit, catalogs, ledger, policies
from ..db import rowcount
from ..errors import Conflict, DomainError
from ..models import (
    Account,
    Household,
    Redemption,
    RedemptionLine,
    Reward,
    Shop,
    Village,
    Villager,
)
from ..scope import VILLAGER, Actor, authorize, get_visible
from ..tokens import QRTokenInvalid, TokenCodec, TokenType, scanned_token
from .pickup_codes import PickupCodeNotFound, assign_pickup_code
from .qualification import NotQualified, qualification

FEN = Decimal("0.01")
# The pickup code's own expiry is not what refuses it: the order's `expires_at` is, so the
# refusal can say whether the order expired, was cancelled or was already picked up.
_NO_EXPIRY_CHECK = datetime.fromtimestamp(0, UTC)


# ---- refusals -------------------------------------------------------------------------------


class InsufficientPoints(DomainError):
    status = 422
    code = "insufficient_points"
    message = "积分不足"


class OutOfStock(DomainError):
    status = 409
    code = "out_of_stock"
    message = "库存不足"


class RewardUnavailable(DomainError):
    status = 422
    code = "reward_unavailable"
    message = "该商品已下架或不在本超市"


class PriceChanged(DomainError):
    status = 409
    code = "price_changed"
    message = "商品积分价格刚刚调整，请刷新后重新下单"


class BelowMinimum(DomainError):
    status = 422
    code = "below_minimum"
    message = "未达到每次兑换的最低积分"


class AlreadyFulfilled(DomainError):
    status = 409
    code = "already_fulfilled"
    message = "该兑换单已经领取过了"


class RedemptionCancelled(DomainError):
    status = 409
    code = "redemption_cancelled"
    message = "该兑换单已取消"


class RedemptionExpired(DomainError):
    status = 409
    code = "redemption_expired"
    message = "该兑换单已超过领取期限，积分已退回或即将退回，请重新下单"


class InvalidCash(DomainError):
    status = 422
    code = "invalid_cash"
    message = "现金补差金额不正确"


# ---- ordering (phase one: reserve) ----------------------------------------------------------


def _merge(items: list[dict[str, int]]) -> list[tuple[int, int]]:
    """(reward id, quantity), one per reward, in id order: every transaction takes its
    reward rows in the same order, so two orders cannot deadlock on them."""
    wanted: dict[int, int] = defaultdict(int)
    for item in items:
        wanted[item["reward_id"]] += item["quantity"]
    return sorted(wanted.items())


def _cash_points(cash_paid: Decimal, rate: Decimal, total: int) -> int:
    """The points that the cash paid stands for: a whole number, and less than the goods."""
    if cash_paid == 0:
        return 0
    covered = cash_paid / rate
    if covered != covered.to_integral_value():
        raise InvalidCash(
            f"现金补差应为 {rate} 元的整数倍（每分折合 {rate} 元）",
            details={"cash_paid": str(cash_paid), "exchange_rate": str(rate)},
        )
    if covered >= total:
        raise InvalidCash(
            "现金补差不能达到或超过商品总价，至少要用 1 分积分",
            details={"cash_paid": str(cash_paid), "total_points": total},
        )
    return int(covered)


def _hold_points(session: Session, account: Account, points: int) -> None:
    moved = rowcount(
        session.execute(
            update(Account)
            .where(Account.id == account.id, Account.available >= points)
            .values(available=Account.available - points, held=Account.held + points)
            .execution_options(synchronize_session=False)
        )
    )
    session.expire(account)
    if moved != 1:
        raise _insufficient(points, account.available)


def _insufficient(points: int, available: int) -> InsufficientPoints:
    return InsufficientPoints(
        f"积分不足：需要 {points} 分，可用 {available} 分",
        details={"required": points, "available": available},
    )


def _take_stock(session: Session, reward: Reward, quantity: int, price: int) -> None:
    """Stock out for one line, at the price the order was priced at: a reward taken off the
    shelf or repriced since it was read is refused rather than sold."""
    moved = rowcount(
        session.execute(
            update(Reward)
            .where(
                Reward.id == reward.id,
                Reward.stock >= quantity,
                Reward.active.is_(True),
                Reward.points == price,
            )
            .values(stock=Reward.stock - quantity)
            .execution_options(synchronize_session=False)
        )
    )
    session.expire(reward)
    if moved == 1:
        return
    details = {"reward_id": reward.id, "name": reward.name}
    if not reward.active:
        raise RewardUnavailable(f"「{reward.name}」已下架", details=details)
    if reward.points != price:
        raise PriceChanged(details={**details, "points": reward.points})
    raise _out_of_stock(reward, quantity)


def _out_of_stock(reward: Reward, quantity: int) -> OutOfStock:
    return OutOfStock(
        f"「{reward.name}」库存不足，只剩 {reward.stock} 件",
        details={
            "reward_id": reward.id,
            "name": reward.name,
            "stock": reward.stock,
            "requested": quantity,
        },
    )


@dataclass(frozen=True)
class Basket:
    """What a household redeems: the household, the member who takes it (None: the household
    as a whole), the rewards and how many of each, and the cash paid for part of it
    (现金补差, at the counter)."""

    household: Household
    member_id: int | None
    items: list[dict[str, int]]
    cash_paid: Decimal = Decimal("0.00")


@dataclass(frozen=True)
class PricedBasket:
    """A basket priced and checked against the village's policy, before anything is held:
    each line as (reward, its name and price as read now, quantity), the goods' total, the
    points it takes after the cash, the exchange rate, and the household's account."""

    lines: list[tuple[Reward, str, int, int]]
    total: int
    points: int
    exchange_rate: Decimal
    account: Account


def price_basket(
    session: Session, shop: Shop, basket: Basket, *, source: str, now: datetime, tz: ZoneInfo
) -> PricedBasket:
    """The basket priced as `reserve` takes it: rewards of the shop and on sale, the cash
    paid turned into points, the policy's minimum and qualification line. Holds nothing."""
    household, cash_paid = basket.household, basket.cash_paid
    wanted = _merge(basket.items)
    ids = [reward_id for reward_id, _ in wanted]
    rewards = {r.id: r for r in session.scalars(select(Reward).where(Reward.id.in_(ids)))}
    lines: list[tuple[Reward, str, int, int]] = []
    for reward_id, quantity in wanted:
        reward = rewards.get(reward_id)
        if reward is None or reward.shop_id != shop.id or not reward.active:
            raise RewardUnavailable(details={"reward_id": reward_id})
        lines.append((reward, reward.name, reward.points, quantity))
    total = sum(unit * quantity for _, _, unit, quantity in lines)

    policy = catalogs.effective_policy(session, household.village_id)
    points = total - _cash_points(cash_paid, policy.exchange_rate, total)
    if points < policy.min_redemption_points:
        raise BelowMinimum(
            f"每次兑换至少 {policy.min_redemption_points} 分，本次 {points} 分",
            details={"minimum": policy.min_redemption_points, "points": points},
        )
    account = ledger.account_for(session, household.id)  # created on first use
    qualified, score = qualification(session, policy, account, now, tz)
    if not qualified and source == "counter":
        # The clerk learns whether the household qualifies, not its score: that is read
        # from its passbook, which is the household's and its village's.
        raise NotQualified(
            f"未达到合格线 {policy.qualification_line} 分，暂不能兑换",
            details={"line": policy.qualification_line},
        )
    if not qualified:
        raise NotQualified(
            f"近 12 个月得分 {score} 分，未达到合格线 {policy.qualification_line} 分，暂不能兑换",
            details={"score": score, "line": policy.qualification_line},
        )
    return PricedBasket(lines, total, points, policy.exchange_rate, account)


def refuse_short(priced: PricedBasket) -> None:
    """What holding the points and taking the stock would refuse, read without holding
    anything (a preview: the conditional updates of `reserve` decide)."""
    if priced.account.available < priced.points:
        raise _insufficient(priced.points, priced.account.available)
    for reward, _, _, quantity in priced.lines:
        if reward.stock < quantity:
            raise _out_of_stock(reward, quantity)


def reserve(
    session: Session,
    actor: Actor,
    shop: Shop,
    basket: Basket,
    *,
    source: str,
    now: datetime,
    tz: ZoneInfo,
    expires_at: datetime | None,
) -> Redemption:
    """Phase one for an order or a counter redemption: the points held and the stock set
    aside, checked against the village's policy (minimum, qualification line)."""
    household, cash_paid = basket.household, basket.cash_paid
    priced = price_basket(session, shop, basket, source=source, now=now, tz=tz)
    total, points = priced.total, priced.points

    # Points first, then the rewards in id order: every order takes its rows in this order.
    _hold_points(session, priced.account, points)
    for reward, _, unit, quantity in priced.lines:
        _take_stock(session, reward, quantity, unit)

    redemption = Redemption(
        shop_id=shop.id,
        household_id=household.id,
        village_id=household.village_id,
        member_id=basket.member_id,
        source=source,
        status="reserved",
        total_points=total,
        cash_paid=cash_paid,
        points=points,
        exchange_rate=priced.exchange_rate,
        created_by=actor.user_id,
        created_at=now,
        expires_at=expires_at,
        lines=[
            RedemptionLine(
                reward_id=reward.id,
                name=name,
                unit_points=unit,
                quantity=quantity,
                points=unit * quantity,
            )
            for reward, name, unit, quantity in priced.lines
        ],
    )
    session.add(redemption)
    session.flush()
    return redemption


def place_order(
    session: Session,
    actor: Actor,
    *,
    shop_id: int,
    items: list[dict[str, int]],
    now: datetime,
    tz: ZoneInfo,
    hold: timedelta,
) -> Redemption:
    """A villager's order for their household: points and stock reserved until picked up or
    until `hold` has passed. Only at a shop that serves the household's village."""
    authorize(actor, "redemption.order")
    household_id = actor.require_household()
    shop = get_visible(session, actor, Shop, shop_id)  # shops of other villages: not found
    household = session.get(Household, household_id)
    assert household is not None
    redemption = reserve(
        session,
        actor,
        shop,
        Basket(household, actor.villager_id, items),
        source="order",
        now=now,
        tz=tz,
        expires_at=now + hold,
    )
    assign_pickup_code(session, redemption)
    return redemption


# ---- phase two: fulfil (by scan or pickup number), or void ---------------------------------


def _refuse_unless_open(redemption: Redemption, now: datetime) -> None:
    if redemption.status == "fulfilled":
        raise AlreadyFulfilled(details={"id": redemption.id})
    if redemption.status == "cancelled":
        raise RedemptionCancelled(details={"id": redemption.id})
    if redemption.status == "expired" or (
        redemption.expires_at is not None and now >= redemption.expires_at
    ):
        raise RedemptionExpired(details={"id": redemption.id})


def items_text(redemption: Redemption) -> str:
    """The lines as a person reads them: 香皂×2、毛巾×1."""
    return lines_text((line.name, line.quantity) for line in redemption.lines)


def lines_text(lines: Iterable[tuple[str, int]]) -> str:
    """(name, quantity) of each line as `items_text` writes them."""
    return "、".join(f"{name}×{quantity}" for name, quantity in lines)


def fulfil(
    session: Session,
    actor: Actor,
    redemption: Redemption,
    now: datetime,
    tz: ZoneInfo,
    action: str,
) -> Redemption:
    """Phase two: `reserved → fulfilled`, then the redeem entry out of the hold; `action`
    names it in the audit log (a scan, a typed pickup number, the counter)."""
    moved = rowcount(
        session.execute(
            update(Redemption)
            .where(
                Redemption.id == redemption.id,
                Redemption.status == "reserved",
                or_(Redemption.expires_at.is_(None), Redemption.expires_at > now),
            )
            .values(status="fulfilled", fulfilled_at=now, fulfilled_by=actor.user_id)
            .execution_options(synchronize_session=False)
        )
    )
    session.refresh(redemption)
    if moved != 1:
        # Someone else moved it first (a second scan, a cancel, the expiry run).
        _refuse_unless_open(redemption, now)
        raise Conflict("兑换单状态已变化，请刷新", code="redemption_busy")
    shop = session.get(Shop, redemption.shop_id)
    assert shop is not None
    entry = ledger.append(
        session,
        household_id=redemption.household_id,
        kind="redeem",
        amount=-redemption.points,
        when=ledger.EntryTime(tz, at=now),
        origin=ledger.EntryOrigin(
            member_id=redemption.member_id,
            created_by=actor.user_id,
            note=f"{shop.name}兑换 #{redemption.id}：{items_text(redemption)}"[:500],
        ),
        from_hold=True,
    )
    redemption.ledger_entry_id, redemption.month = entry.id, entry.month
    audit.record(session, actor, action, redemption, village_id=redemption.village_id)
    return redemption


def fulfil_by_token(
    session: Session,
    actor: Actor,
    codec: TokenCodec,
    pickup_token: str,
    *,
    now: datetime,
    tz: ZoneInfo,
) -> Redemption:
    """The clerk scans the villager's pickup code: the goods go out, the points are spent."""
    redemption = open_order_by_token(session, actor, codec, pickup_token, now=now)
    return fulfil(session, actor, redemption, now, tz, "redemption.fulfil")


def open_order_by_token(
    session: Session, actor: Actor, codec: TokenCodec, pickup_token: str, *, now: datetime
) -> Redemption:
    """The open order a scanned pickup code names, refused as its scan would be (the clerk
    sees what goes out before handing it over)."""
    authorize(actor, "redemption.fulfil")
    decoded = codec.decode(scanned_token(pickup_token), TokenType.PICKUP, now=_NO_EXPIRY_CHECK)
    if len(decoded.fields) != 1:
        raise QRTokenInvalid()
    # A clerk of another shop: not found, as for any object outside one's scope.
    redemption = get_visible(session, actor, Redemption, decoded.fields[0])
    _refuse_unless_open(redemption, now)
    return redemption


def fulfil_by_code(
    session: Session,
    actor: Actor,
    pickup_code: str,
    *,
    now: datetime,
    tz: ZoneInfo,
) -> Redemption:
    """The clerk types the order's pickup number (a cracked phone screen will not scan):
    only an open order of the clerk's own shop answers to it."""
    redemption = open_order_by_code(session, actor, pickup_code, now=now)
    return fulfil(session, actor, redemption, now, tz, "redemption.fulfil")


def open_order_by_code(
    session: Session, actor: Actor, pickup_code: str, *, now: datetime
) -> Redemption:
    """The open order of the clerk's shop that a typed pickup number names, refused as
    typing it to hand the goods out would be."""
    authorize(actor, "redemption.fulfil")
    redemption = session.scalars(
        select(Redemption).where(
            Redemption.shop_id == actor.shop_id,
            Redemption.pickup_code == pickup_code,
            Redemption.status == "reserved",
        )
    ).first()
    if redemption is None:
        raise PickupCodeNotFound()
    _refuse_unless_open(redemption, now)
    return redemption


def _void(
    session: Session,
    redemption: Redemption,
    status: str,
    by: int | None,
    reason: str,
    now: datetime,
    tz: ZoneInfo,
) -> bool:
    """reserved → cancelled|expired, then the hold and the stock go back. False if it was no
    longer reserved (fulfilled, or voided by someone else first). Points of a period reset
    while they were held expire as they come back (定期清零), in this transaction."""
    moved = rowcount(
        session.execute(
            update(Redemption)
            .where(Redemption.id == redemption.id, Redemption.status == "reserved")
            .values(status=status, voided_at=now, voided_by=by, void_reason=reason[:200])
            .execution_options(synchronize_session=False)
        )
    )
    if moved != 1:
        return False
    released = rowcount(
        session.execute(
            update(Account)
            .where(
                Account.household_id == redemption.household_id, Account.held >= redemption.points
            )
            .values(
                available=Account.available + redemption.points,
                held=Account.held - redemption.points,
            )
            .execution_options(synchronize_session=False)
        )
    )
    if released != 1:
        raise Conflict(
            "冻结积分与兑换单不符，请联系管理员",
            code="hold_mismatch",
            details={"id": redemption.id},
        )
    policies.expire_returned_hold(session, redemption, now, tz)
    for line in sorted(redemption.lines, key=lambda line: line.reward_id):
        session.execute(
            update(Reward)
            .where(Reward.id == line.reward_id)
            .values(stock=Reward.stock + line.quantity)
            .execution_options(synchronize_session=False)
        )
    session.refresh(redemption)
    return True


def cancel(
    session: Session,
    actor: Actor,
    redemption_id: int,
    *,
    reason: str | None,
    now: datetime,
    tz: ZoneInfo,
) -> Redemption:
    """Cancel an order not yet picked up: the household's own villager, the shop's clerk,
    a cadre of the village or an admin. Points and stock go back at once."""
    redemption = get_visible(session, actor, Redemption, redemption_id)
    authorize(actor, "redemption.cancel")
    if redemption.status != "reserved":
        _refuse_unless_open(redemption, now)
    default = "村民取消" if actor.role == VILLAGER else "工作人员取消"
    if not _void(session, redemption, "cancelled", actor.user_id, reason or default, now, tz):
        session.refresh(redemption)
        _refuse_unless_open(redemption, now)
        raise Conflict("兑换单状态已变化，请刷新", code="redemption_busy")
    if actor.role != VILLAGER:
        audit.record(
            session, actor, "redemption.cancel", redemption, village_id=redemption.village_id
        )
    return redemption


def due_for_expiry(session: Session, now: datetime) -> list[int]:
    return list(
        session.scalars(
            select(Redemption.id)
            .where(Redemption.status == "reserved", Redemption.expires_at <= now)
            .order_by(Redemption.id)
        )
    )


def expire_due(session: Session, now: datetime, tz: ZoneInfo) -> int:
    """Void every reservation past its pickup time, each in its own transaction: safe to run
    twice or concurrently (the conditional update lets one runner void each order)."""
    expired = 0
    for redemption_id in due_for_expiry(session, now):
        session.rollback()
        redemption = session.get(Redemption, redemption_id)
        if redemption is not None and _void(
            session, redemption, "expired", None, "超过领取期限未领取，自动取消", now, tz
        ):
            expired += 1
        session.commit()
    return expired


# ---- reading --------------------------------------------------------------------------------


def with_lines(stmt: Select[Redemption]) -> Select[Redemption]:
    return stmt.options(selectinload(Redemption.lines))


@dataclass(frozen=True)
class Names:
    shops: dict[int, str]
    households: dict[int, str | None]
    members: dict[int, str]
    villages: dict[int, str]


def names_for(session: Session, redemptions: list[Redemption]) -> Names:
    """The names a list of redemptions shows, in four queries rather than four per row."""

    def lookup(model: Any, column: Any, ids: set[int]) -> dict[int, Any]:
        if not ids:
            return {}
        return dict(session.execute(select(model.id, column).where(model.id.in_(ids))).all())

    return Names(
        shops=lookup(Shop, Shop.name, {r.shop_id for r in redemptions}),
        households=lookup(Household, Household.name, {r.household_id for r in redemptions}),
        members=lookup(Villager, Villager.name, {r.member_id for r in redemptions if r.member_id}),
        villages=lookup(Village, Village.name, {r.village_id for r in redemptions}),
    )


def value_of(points: int, rate: Decimal) -> Decimal:
    return (points * rate).quantize(FEN, rounding=ROUND_HALF_UP)
