"""The points supermarket (积分超市): shelves, two-phase redemption, counter redemption,
monthly settlement per shop (对账) and the township's outstanding-points report.

Redemption is two-phase, like a pending transfer in a double-entry ledger (DESIGN.md):

- order: in one transaction, `available → held` for the points and `stock - q` for each
  line, both by conditional UPDATE … WHERE available >= :cost / stock >= :q and a row-count
  check, so two phones ordering at once can never overspend nor oversell. No ledger entry
  yet: a hold keeps `available + held == sum(entries)`.
- the clerk's scan: `reserved → fulfilled` by a conditional update (a second scan finds
  nothing to move), then the redeem entry is appended out of `held`.
- cancel or expiry: `reserved → cancelled|expired` by a conditional update, then the points
  go back `held → available` and the stock back on the shelf. Points of a period reset
  while they were held (定期清零) expire as they come back (points.policies).

The qualification line (合格线) of the village's policy is read as: the household's score
(points earned less deductions; spending never lowers it) over the last twelve months,
this month included, must reach the line, else `not_qualified`; a reversal (冲正) counts
there in the month of the entry it corrects. Twelve rolling months rather than the calendar
year, so that nobody is barred every January.
"""

from __future__ import annotations

import io
import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, selectinload
from sqlalchemy.orm.attributes import set_committed_value

import rules

from .. import audit, cards, catalogs, ledger, policies
from ..errors import Conflict, DomainError, Invalid, NotBound, NotFound
from ..models import (
    Account,
    Household,
    LedgerEntry,
    MonthTotal,
    Redemption,
    RedemptionLine,
    Reward,
    Shop,
    StockMovement,
    Township,
    Village,
    Villager,
)
from ..scope import VILLAGER, Actor, authorize, get_visible
from ..spreadsheets import append_row, csv_bytes
from ..tokens import QRTokenInvalid, TokenCodec, TokenType, scanned_token

FEN = Decimal("0.01")
QUALIFYING_MONTHS = 12
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


class NotQualified(DomainError):
    status = 422
    code = "not_qualified"
    message = "近 12 个月得分未达到合格线，暂不能兑换"


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


class NotServed(DomainError):
    status = 422
    code = "shop_not_serving"
    message = "本超市不服务该村民所在的村"


class InvalidCash(DomainError):
    status = 422
    code = "invalid_cash"
    message = "现金补差金额不正确"


class StockNegative(DomainError):
    status = 409
    code = "stock_negative"
    message = "库存不够扣减"


# ---- shelves --------------------------------------------------------------------------------

def _township_of(shop: Shop) -> dict[str, int]:
    return {"township_id": shop.township_id}


def create_reward(
    session: Session, actor: Actor, shop_id: int, *, name: str, points: int, stock: int,
    image_url: str | None = None, active: bool = True,
) -> Reward:
    shop = get_visible(session, actor, Shop, shop_id)
    authorize(actor, "reward.edit")
    _refuse_duplicate_name(session, shop.id, name)
    reward = Reward(shop_id=shop.id, name=name, points=points, stock=stock,
                    image_url=image_url, active=active)
    session.add(reward)
    session.flush()
    if stock:
        session.add(StockMovement(reward_id=reward.id, shop_id=shop.id, kind="initial",
                                  change=stock, stock_after=stock, reason="上架",
                                  created_by=actor.user_id))
    audit.record(session, actor, "reward.create", reward, **_township_of(shop))
    return reward


def _refuse_duplicate_name(
    session: Session, shop_id: int, name: str, except_id: int | None = None
) -> None:
    stmt = select(Reward.id).where(Reward.shop_id == shop_id, Reward.name == name)
    if except_id is not None:
        stmt = stmt.where(Reward.id != except_id)
    if session.scalar(stmt):
        raise Conflict("本超市已有同名商品", code="duplicate_name", details={"name": name})


def update_reward(
    session: Session, actor: Actor, reward_id: int, changes: dict[str, Any]
) -> Reward:
    """Name, price, picture, on or off the shelf. Stock moves only by `adjust_stock`, so
    every change of it says who and why. Orders already placed keep their price."""
    reward = get_visible(session, actor, Reward, reward_id)
    authorize(actor, "reward.edit")
    if "name" in changes:
        _refuse_duplicate_name(session, reward.shop_id, changes["name"], reward.id)
    before = audit.snapshot(reward)
    for key in ("name", "points", "active"):
        if key in changes:
            setattr(reward, key, changes[key])
    if "image_url" in changes and changes["image_url"] is None:
        # Removes the picture, uploaded or typed in (a new link is not accepted: upload).
        reward.image_url = reward.image_name = None
    shop = session.get(Shop, reward.shop_id)
    assert shop is not None
    audit.record(session, actor, "reward.update", reward, before=before, **_township_of(shop))
    return reward


def adjust_stock(
    session: Session, actor: Actor, reward_id: int, *, kind: str, change: int, reason: str,
    now: datetime,
) -> StockMovement:
    """A restock (goods delivered, `change` > 0) or a correction after a count (either
    sign). One conditional update, so it cannot race an order into negative stock."""
    reward = get_visible(session, actor, Reward, reward_id)
    authorize(actor, "stock.adjust")
    if change == 0 or (kind == "restock" and change < 0):
        raise Invalid("进货数量必须大于 0；盘点更正请填写增减数量", code="invalid_change",
                      details={"kind": kind, "change": change})
    row = session.execute(
        update(Reward).where(Reward.id == reward.id, Reward.stock + change >= 0)
        .values(stock=Reward.stock + change, updated_at=now).returning(Reward.stock)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        stock = session.scalar(select(Reward.stock).where(Reward.id == reward.id))
        raise StockNegative(f"库存只有 {stock}，不能减少 {-change}",
                            details={"stock": stock, "change": change})
    session.expire(reward)
    movement = StockMovement(reward_id=reward.id, shop_id=reward.shop_id, kind=kind,
                             change=change, stock_after=row[0], reason=reason,
                             created_by=actor.user_id, created_at=now)
    session.add(movement)
    shop = session.get(Shop, reward.shop_id)
    assert shop is not None
    audit.record(session, actor, f"reward.{kind}", movement, **_township_of(shop))
    return movement


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
        raise InvalidCash(f"现金补差应为 {rate} 元的整数倍（每分折合 {rate} 元）",
                          details={"cash_paid": str(cash_paid), "exchange_rate": str(rate)})
    if covered >= total:
        raise InvalidCash("现金补差不能达到或超过商品总价，至少要用 1 分积分",
                          details={"cash_paid": str(cash_paid), "total_points": total})
    return int(covered)


def qualifying_score(session: Session, account: Account, now: datetime, tz: ZoneInfo) -> int:
    """What the household earned within the last twelve months, this month included.

    A correction counts here in the month of what it corrects: an award of March reversed
    in May is neither earned nor taken back in a window that starts in April. The monthly
    totals (at most twelve rows) book a reversal in the month it was made, as boards must (a
    closed month never changes; the next board notes the correction), so the reversals made
    in the window of entries counted before it are taken back out: a few rows, found through
    the account's entries by month."""
    local = now.astimezone(tz)
    index = local.year * 12 + local.month - 1 - (QUALIFYING_MONTHS - 1)
    first = f"{index // 12:04d}-{index % 12 + 1:02d}"
    booked = session.scalar(
        select(func.coalesce(func.sum(MonthTotal.score), 0))
        .where(MonthTotal.account_id == account.id, MonthTotal.month >= first)
    ) or 0
    corrected = aliased(LedgerEntry)
    before_window = session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0))
        .join(corrected, corrected.id == LedgerEntry.reverses_id)
        .where(LedgerEntry.account_id == account.id, LedgerEntry.month >= first,
               corrected.month < first, corrected.kind.in_(ledger.SCORE_KINDS))
    ) or 0
    return booked - before_window


def qualification(session: Session, policy: rules.Policy, account: Account | None,
                  now: datetime, tz: ZoneInfo) -> tuple[bool, int | None]:
    """Whether the household may redeem under the policy's qualification line (合格线), and
    its score when there is a line to reach (None otherwise). No account yet: no score."""
    if policy.qualification_line <= 0:
        return True, None
    score = qualifying_score(session, account, now, tz) if account is not None else 0
    return score >= policy.qualification_line, score


def _hold_points(session: Session, account: Account, points: int) -> None:
    moved = session.execute(
        update(Account)
        .where(Account.id == account.id, Account.available >= points)
        .values(available=Account.available - points, held=Account.held + points)
        .execution_options(synchronize_session=False)
    ).rowcount
    session.expire(account)
    if moved != 1:
        available = account.available
        raise InsufficientPoints(f"积分不足：需要 {points} 分，可用 {available} 分",
                                 details={"required": points, "available": available})


def _take_stock(session: Session, reward: Reward, quantity: int, price: int) -> None:
    """Stock out for one line, at the price the order was priced at: a reward taken off the
    shelf or repriced since it was read is refused rather than sold."""
    moved = session.execute(
        update(Reward)
        .where(Reward.id == reward.id, Reward.stock >= quantity, Reward.active.is_(True),
               Reward.points == price)
        .values(stock=Reward.stock - quantity)
        .execution_options(synchronize_session=False)
    ).rowcount
    session.expire(reward)
    if moved == 1:
        return
    details = {"reward_id": reward.id, "name": reward.name}
    if not reward.active:
        raise RewardUnavailable(f"「{reward.name}」已下架", details=details)
    if reward.points != price:
        raise PriceChanged(details={**details, "points": reward.points})
    raise OutOfStock(f"「{reward.name}」库存不足，只剩 {reward.stock} 件",
                     details={**details, "stock": reward.stock, "requested": quantity})


def _reserve(
    session: Session, actor: Actor, shop: Shop, household: Household, member_id: int | None,
    items: list[dict[str, int]], *, source: str, now: datetime, tz: ZoneInfo,
    expires_at: datetime | None, cash_paid: Decimal = Decimal("0.00"),
) -> Redemption:
    wanted = _merge(items)
    ids = [reward_id for reward_id, _ in wanted]
    rewards = {r.id: r for r in session.scalars(select(Reward).where(Reward.id.in_(ids)))}
    # (reward, its name and price as read now, quantity)
    lines: list[tuple[Reward, str, int, int]] = []
    for reward_id, quantity in wanted:
        reward = rewards.get(reward_id)
        if reward is None or reward.shop_id != shop.id or not reward.active:
            raise RewardUnavailable(details={"reward_id": reward_id})
        lines.append((reward, reward.name, reward.points, quantity))
    total = sum(price * quantity for _, _, price, quantity in lines)

    policy = catalogs.effective_policy(session, household.village_id)
    points = total - _cash_points(cash_paid, policy.exchange_rate, total)
    if points < policy.min_redemption_points:
        raise BelowMinimum(f"每次兑换至少 {policy.min_redemption_points} 分，本次 {points} 分",
                           details={"minimum": policy.min_redemption_points, "points": points})
    account = ledger.account_for(session, household.id)  # created on first use
    qualified, score = qualification(session, policy, account, now, tz)
    if not qualified and source == "counter":
        # The clerk learns whether the household qualifies, not its score: that is read
        # from its passbook, which is the household's and its village's.
        raise NotQualified(f"未达到合格线 {policy.qualification_line} 分，暂不能兑换",
                           details={"line": policy.qualification_line})
    if not qualified:
        raise NotQualified(
            f"近 12 个月得分 {score} 分，未达到合格线 {policy.qualification_line} 分，"
            "暂不能兑换", details={"score": score, "line": policy.qualification_line})

    # Points first, then the rewards in id order: every order takes its rows in this order.
    _hold_points(session, account, points)
    for reward, _, price, quantity in lines:
        _take_stock(session, reward, quantity, price)

    redemption = Redemption(
        shop_id=shop.id, household_id=household.id, village_id=household.village_id,
        member_id=member_id, source=source, status="reserved", total_points=total,
        cash_paid=cash_paid, points=points, exchange_rate=policy.exchange_rate,
        created_by=actor.user_id, created_at=now, expires_at=expires_at,
        lines=[RedemptionLine(reward_id=reward.id, name=name, unit_points=price,
                              quantity=quantity, points=price * quantity)
               for reward, name, price, quantity in lines],
    )
    session.add(redemption)
    session.flush()
    return redemption


def place_order(
    session: Session, actor: Actor, *, shop_id: int, items: list[dict[str, int]],
    now: datetime, tz: ZoneInfo, hold: timedelta,
) -> Redemption:
    """A villager's order for their household: points and stock reserved until picked up or
    until `hold` has passed. Only at a shop that serves the household's village."""
    authorize(actor, "redemption.order")
    if actor.household_id is None:
        raise NotBound()
    shop = get_visible(session, actor, Shop, shop_id)  # shops of other villages: not found
    household = session.get(Household, actor.household_id)
    assert household is not None
    redemption = _reserve(session, actor, shop, household, actor.villager_id, items,
                          source="order", now=now, tz=tz, expires_at=now + hold)
    assign_pickup_code(session, redemption)
    return redemption


# ---- pickup numbers (取货号) -------------------------------------------------------------------

PICKUP_CODE_DIGITS = 6
PICKUP_CODE_TRIES = 10


class PickupCodeNotFound(DomainError):
    status = 404
    code = "pickup_code_not_found"
    message = "没有这个取货号的待取订单"


def assign_pickup_code(session: Session, redemption: Redemption) -> str:
    """Give a reserved order a random 6-digit pickup number, unique among its shop's open
    orders. The partial unique index decides between two orders that drew the same number at
    once: the loser's savepoint rolls back and it draws again (a shop has tens of open
    orders, so a second draw is already rare)."""
    for _ in range(PICKUP_CODE_TRIES):
        code = f"{secrets.randbelow(10 ** PICKUP_CODE_DIGITS):0{PICKUP_CODE_DIGITS}d}"
        try:
            with session.begin_nested():
                session.execute(
                    update(Redemption).where(Redemption.id == redemption.id)
                    .values(pickup_code=code).execution_options(synchronize_session=False))
        except IntegrityError:
            continue
        set_committed_value(redemption, "pickup_code", code)  # written above already
        return code
    raise Conflict("暂时无法分配取货号，请重试", code="pickup_code_busy")


def fulfil_by_code(
    session: Session, actor: Actor, pickup_code: str, *, now: datetime, tz: ZoneInfo,
) -> Redemption:
    """The clerk types the order's pickup number (a cracked phone screen will not scan):
    only an open order of the clerk's own shop answers to it."""
    authorize(actor, "redemption.fulfil")
    redemption = session.scalars(
        select(Redemption).where(Redemption.shop_id == actor.shop_id,
                                 Redemption.pickup_code == pickup_code,
                                 Redemption.status == "reserved")
    ).first()
    if redemption is None:
        raise PickupCodeNotFound()
    _refuse_unless_open(redemption, now)
    return _fulfil(session, actor, redemption, now, tz, "redemption.fulfil")


# ---- phase two: fulfil, or void -------------------------------------------------------------

def _refuse_unless_open(redemption: Redemption, now: datetime) -> None:
    if redemption.status == "fulfilled":
        raise AlreadyFulfilled(details={"id": redemption.id})
    if redemption.status == "cancelled":
        raise RedemptionCancelled(details={"id": redemption.id})
    if redemption.status == "expired" or (
        redemption.expires_at is not None and now >= redemption.expires_at
    ):
        raise RedemptionExpired(details={"id": redemption.id})


def _items_text(redemption: Redemption) -> str:
    return "、".join(f"{line.name}×{line.quantity}" for line in redemption.lines)


def _fulfil(
    session: Session, actor: Actor, redemption: Redemption, now: datetime, tz: ZoneInfo,
    action: str,
) -> Redemption:
    moved = session.execute(
        update(Redemption)
        .where(Redemption.id == redemption.id, Redemption.status == "reserved",
               or_(Redemption.expires_at.is_(None), Redemption.expires_at > now))
        .values(status="fulfilled", fulfilled_at=now, fulfilled_by=actor.user_id)
        .execution_options(synchronize_session=False)
    ).rowcount
    session.refresh(redemption)
    if moved != 1:
        # Someone else moved it first (a second scan, a cancel, the expiry run).
        _refuse_unless_open(redemption, now)
        raise Conflict("兑换单状态已变化，请刷新", code="redemption_busy")
    shop = session.get(Shop, redemption.shop_id)
    assert shop is not None
    entry = ledger.append(
        session, household_id=redemption.household_id, kind="redeem",
        amount=-redemption.points, tz=tz, member_id=redemption.member_id,
        created_by=actor.user_id, from_hold=True, at=now,
        note=f"{shop.name}兑换 #{redemption.id}：{_items_text(redemption)}"[:500],
    )
    redemption.ledger_entry_id, redemption.month = entry.id, entry.month
    audit.record(session, actor, action, redemption, village_id=redemption.village_id)
    return redemption


def fulfil_by_token(
    session: Session, actor: Actor, codec: TokenCodec, pickup_token: str, *, now: datetime,
    tz: ZoneInfo,
) -> Redemption:
    """The clerk scans the villager's pickup code: the goods go out, the points are spent."""
    authorize(actor, "redemption.fulfil")
    decoded = codec.decode(scanned_token(pickup_token), TokenType.PICKUP,
                           now=_NO_EXPIRY_CHECK)
    if len(decoded.fields) != 1:
        raise QRTokenInvalid()
    # A clerk of another shop: not found, as for any object outside one's scope.
    redemption = get_visible(session, actor, Redemption, decoded.fields[0])
    _refuse_unless_open(redemption, now)
    return _fulfil(session, actor, redemption, now, tz, "redemption.fulfil")


def _void(
    session: Session, redemption: Redemption, status: str, by: int | None, reason: str,
    now: datetime, tz: ZoneInfo,
) -> bool:
    """reserved → cancelled|expired, then the hold and the stock go back. False if it was no
    longer reserved (fulfilled, or voided by someone else first). Points of a period reset
    while they were held expire as they come back (定期清零), in this transaction."""
    moved = session.execute(
        update(Redemption).where(Redemption.id == redemption.id, Redemption.status == "reserved")
        .values(status=status, voided_at=now, voided_by=by, void_reason=reason[:200])
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        return False
    released = session.execute(
        update(Account)
        .where(Account.household_id == redemption.household_id,
               Account.held >= redemption.points)
        .values(available=Account.available + redemption.points,
                held=Account.held - redemption.points)
        .execution_options(synchronize_session=False)
    ).rowcount
    if released != 1:
        raise Conflict("冻结积分与兑换单不符，请联系管理员", code="hold_mismatch",
                       details={"id": redemption.id})
    policies.expire_returned_hold(session, redemption, now, tz)
    for line in sorted(redemption.lines, key=lambda line: line.reward_id):
        session.execute(
            update(Reward).where(Reward.id == line.reward_id)
            .values(stock=Reward.stock + line.quantity)
            .execution_options(synchronize_session=False)
        )
    session.refresh(redemption)
    return True


def cancel(
    session: Session, actor: Actor, redemption_id: int, *, reason: str | None, now: datetime,
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
        audit.record(session, actor, "redemption.cancel", redemption,
                     village_id=redemption.village_id)
    return redemption


def due_for_expiry(session: Session, now: datetime) -> list[int]:
    return list(session.scalars(
        select(Redemption.id)
        .where(Redemption.status == "reserved", Redemption.expires_at <= now)
        .order_by(Redemption.id)
    ))


def expire_due(session: Session, now: datetime, tz: ZoneInfo) -> int:
    """Void every reservation past its pickup time, each in its own transaction: safe to run
    twice or concurrently (the conditional update lets one runner void each order)."""
    expired = 0
    for redemption_id in due_for_expiry(session, now):
        session.rollback()
        redemption = session.get(Redemption, redemption_id)
        if redemption is not None and _void(session, redemption, "expired", None,
                                            "超过领取期限未领取，自动取消", now, tz):
            expired += 1
        session.commit()
    return expired


# ---- counter redemption (for people without phones) -----------------------------------------

def member_from_card(
    session: Session, codec: TokenCodec, shop: Shop, member_token: str, now: datetime
) -> Villager:
    """The villager on a scanned member card (or the printed household code, which is the
    head's card), who must belong to a village this shop serves."""
    villager = cards.villager_on_card(session, codec, member_token, now)
    if villager is None or not villager.active:
        raise NotFound("这张积分卡对应的村民不存在或已注销", code="member_not_found")
    if villager.household.village_id not in {v.id for v in shop.villages}:
        raise NotServed()
    return villager


def counter_redeem(
    session: Session, actor: Actor, codec: TokenCodec, shop_id: int, *, member_token: str,
    items: list[dict[str, int]], cash_paid: Decimal, now: datetime, tz: ZoneInfo,
) -> Redemption:
    """At the counter: the clerk scans a member card and hands the goods out at once —
    reserved and fulfilled in one transaction. Cash paid for the difference (现金补差)
    covers part of the goods at the village's exchange rate and is on the receipt."""
    shop = get_visible(session, actor, Shop, shop_id)
    authorize(actor, "redemption.counter")
    villager = member_from_card(session, codec, shop, member_token, now)
    redemption = _reserve(session, actor, shop, villager.household, villager.id, items,
                          source="counter", now=now, tz=tz, expires_at=None,
                          cash_paid=cash_paid)
    return _fulfil(session, actor, redemption, now, tz, "redemption.counter")


@dataclass(frozen=True)
class CardHolder:
    """What the counter may know of the villager whose member card was scanned: enough to
    greet them and say what they can take, and nothing of the household's passbook."""

    villager_name: str
    household_id: int
    household_name: str | None
    available: int
    qualifies: bool


def card_holder(
    session: Session, actor: Actor, codec: TokenCodec, shop_id: int, *, member_token: str,
    now: datetime, tz: ZoneInfo,
) -> CardHolder:
    """The card holder at the counter, before the clerk picks the goods: name, household,
    points available and whether the household reaches the qualification line, checked as
    counter redemption checks it. Read here by the domain: the household itself stays out
    of the clerk's scope."""
    shop = get_visible(session, actor, Shop, shop_id)
    authorize(actor, "redemption.counter")
    villager = member_from_card(session, codec, shop, member_token, now)
    household = villager.household
    account = session.scalar(select(Account).where(Account.household_id == household.id))
    policy = catalogs.effective_policy(session, household.village_id)
    qualified, _ = qualification(session, policy, account, now, tz)
    return CardHolder(villager_name=villager.name, household_id=household.id,
                      household_name=household.name,
                      available=account.available if account is not None else 0,
                      qualifies=qualified)


def parse_cash(value: Decimal | None) -> Decimal:
    if value is None:
        return Decimal("0.00")
    try:
        cash = Decimal(value)
    except (InvalidOperation, TypeError) as exc:
        raise InvalidCash() from exc
    if not cash.is_finite() or cash < 0 or cash != cash.quantize(FEN):
        raise InvalidCash("现金补差应为不小于 0 的金额，最多两位小数",
                          details={"cash_paid": str(value)})
    return cash.quantize(FEN)


# ---- reading --------------------------------------------------------------------------------

def with_lines(stmt: Any) -> Any:
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
        members=lookup(Villager, Villager.name,
                       {r.member_id for r in redemptions if r.member_id}),
        villages=lookup(Village, Village.name, {r.village_id for r in redemptions}),
    )


def value_of(points: int, rate: Decimal) -> Decimal:
    return (points * rate).quantize(FEN, rounding=ROUND_HALF_UP)


# ---- monthly settlement per shop (对账) -------------------------------------------------------

@dataclass(frozen=True)
class SettlementRow:
    redemption_id: int
    fulfilled_at: datetime
    source: str
    village: str
    household: str
    member: str
    items: str
    total_points: int
    cash_paid: Decimal
    points: int
    exchange_rate: Decimal
    value: Decimal


@dataclass(frozen=True)
class SettlementLine:
    reward_id: int
    name: str
    unit_points: int
    quantity: int
    points: int


@dataclass(frozen=True)
class Settlement:
    shop_id: int
    shop_name: str
    township_name: str
    month: str
    redemptions: int
    goods_points: int  # the goods at shelf prices
    cash_paid: Decimal  # collected by the shop itself, not reimbursed
    points: int  # points redeemed
    value: Decimal  # what the township owes the shop: each row's points at its rate
    lines: list[SettlementLine] = field(default_factory=list)
    rows: list[SettlementRow] = field(default_factory=list)


def settlement(session: Session, actor: Actor, shop_id: int, month: str) -> Settlement:
    """The shop's fulfilled redemptions whose redeem entry falls in `month` (the passbook's
    month, in the village's time zone), totalled and itemised."""
    shop = get_visible(session, actor, Shop, shop_id)
    authorize(actor, "settlement.read")
    township = session.get(Township, shop.township_id)
    assert township is not None
    redemptions = list(session.scalars(with_lines(select(Redemption).where(
        Redemption.shop_id == shop.id, Redemption.status == "fulfilled",
        Redemption.month == month,
    ).order_by(Redemption.fulfilled_at, Redemption.id))))
    names = names_for(session, redemptions)
    rows = []
    lines: dict[tuple[int, str, int], int] = defaultdict(int)
    for r in redemptions:
        assert r.fulfilled_at is not None
        rows.append(SettlementRow(
            redemption_id=r.id, fulfilled_at=r.fulfilled_at, source=r.source,
            village=names.villages.get(r.village_id, ""),
            household=names.households.get(r.household_id) or "",
            member=names.members.get(r.member_id, "") if r.member_id else "",
            items=_items_text(r), total_points=r.total_points, cash_paid=r.cash_paid,
            points=r.points, exchange_rate=r.exchange_rate,
            value=value_of(r.points, r.exchange_rate),
        ))
        for line in r.lines:
            lines[(line.reward_id, line.name, line.unit_points)] += line.quantity
    return Settlement(
        shop_id=shop.id, shop_name=shop.name, township_name=township.name, month=month,
        redemptions=len(rows), goods_points=sum(r.total_points for r in rows),
        cash_paid=sum((r.cash_paid for r in rows), Decimal("0")),
        points=sum(r.points for r in rows),
        value=sum((r.value for r in rows), Decimal("0")).quantize(FEN),
        lines=[SettlementLine(reward_id, name, unit, quantity, unit * quantity)
               for (reward_id, name, unit), quantity in sorted(lines.items())],
        rows=rows,
    )


SOURCE_NAMES = {"order": "线上下单", "counter": "柜台兑换"}
ROW_HEADERS = ("兑换单号", "领取时间", "方式", "村", "户", "兑换人", "商品明细", "商品积分",
               "现金补差(元)", "实扣积分", "兑换比例(元/分)", "折合金额(元)")
LINE_HEADERS = ("商品编号", "商品名称", "单价(积分)", "数量", "积分小计")


def _row_cells(row: SettlementRow, tz: ZoneInfo) -> list[Any]:
    return [row.redemption_id, row.fulfilled_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
            SOURCE_NAMES[row.source], row.village, row.household, row.member, row.items,
            row.total_points, row.cash_paid, row.points, row.exchange_rate, row.value]


def _total_cells(s: Settlement) -> list[Any]:
    return ["合计", f"{s.redemptions} 单", "", "", "", "", "", s.goods_points, s.cash_paid,
            s.points, "", s.value]


def settlement_csv(s: Settlement, tz: ZoneInfo) -> bytes:
    """One row per redemption and a 合计 row; UTF-8 with a BOM, so Excel opens the Chinese
    right."""
    return csv_bytes([ROW_HEADERS, *(_row_cells(row, tz) for row in s.rows), _total_cells(s)])


def settlement_xlsx(s: Settlement, tz: ZoneInfo) -> bytes:
    """Sheet 兑换明细 (as the CSV, under a title row) and sheet 商品汇总 (per reward)."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "兑换明细"
    title = f"{s.township_name} {s.shop_name} {s.month} 积分兑换结算单"
    append_row(sheet, [title])
    sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(ROW_HEADERS))
    sheet["A1"].font = Font(bold=True, size=14)
    sheet["A1"].alignment = Alignment(horizontal="center")
    append_row(sheet, ROW_HEADERS)
    for row in s.rows:
        cells = _row_cells(row, tz)
        # Money as numbers so the sheet can sum them; Decimal is exact, float here is for
        # display and reads back equal to two places.
        cells[8], cells[10], cells[11] = (float(cells[8]), float(cells[10]), float(cells[11]))
        append_row(sheet, cells)
    total = _total_cells(s)
    total[8], total[11] = float(total[8]), float(total[11])
    for cell in append_row(sheet, total):
        cell.font = Font(bold=True)
    for column, width in zip("ABCDEFGHIJKL", (10, 18, 10, 10, 14, 10, 36, 10, 12, 10, 14, 14),
                             strict=True):
        sheet.column_dimensions[column].width = width
    sheet.freeze_panes = "A3"

    summary = book.create_sheet("商品汇总")
    append_row(summary, LINE_HEADERS)
    for line in s.lines:
        append_row(summary, [line.reward_id, line.name, line.unit_points, line.quantity,
                             line.points])
    append_row(summary, ["合计", "", "", sum(line.quantity for line in s.lines), s.goods_points])
    summary.column_dimensions["B"].width = 24
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# ---- the township's points report: outstanding points (liability) ---------------------------

@dataclass(frozen=True)
class VillagePoints:
    village_id: int
    name: str
    accounts: int
    earned: int
    deducted: int  # <= 0
    adjusted: int  # reversals and opening balances (期初结转)
    issued: int  # earned + deducted + adjusted: net points given out
    redeemed: int  # spent at the shops, as a positive number
    expired: int  # reset or wiped (定期清零, 一票否决), as a positive number
    outstanding: int  # issued - redeemed - expired: still owed to households
    available: int | None
    held: int | None
    exchange_rate: Decimal
    outstanding_value: Decimal
    month_issued: int | None
    month_redeemed: int | None
    month_expired: int | None


@dataclass(frozen=True)
class PointsReport:
    township_id: int
    township_name: str
    month: str | None
    villages: list[VillagePoints]
    totals: dict[str, Any]


def _month_totals(session: Session, village_ids: list[int], *conditions: Any
                  ) -> dict[int, tuple[int, int, int, int, int]]:
    rows = session.execute(
        # Opening balances (期初结转) are issued points too, though no board ranks them.
        select(MonthTotal.village_id, func.sum(MonthTotal.score + MonthTotal.opening),
               func.sum(MonthTotal.earned),
               func.sum(MonthTotal.deducted), func.sum(MonthTotal.redeemed),
               func.sum(MonthTotal.expired))
        .where(MonthTotal.village_id.in_(village_ids), *conditions)
        .group_by(MonthTotal.village_id)
    ) if village_ids else []
    return {row[0]: tuple(int(v or 0) for v in row[1:]) for row in rows}  # type: ignore[misc]


def points_report(
    session: Session, actor: Actor, township_id: int, month: str | None
) -> PointsReport:
    """Per village: points issued, redeemed and expired, and what is still outstanding (the
    village's liability at its exchange rate), such that issued = outstanding + redeemed +
    expired. Without `month`: all time, and `outstanding` is today's balances (available +
    held) read from the accounts, an independent check on the totals. With `month`: up to
    the end of that month (by passbook month), plus that month's own flows."""
    township = get_visible(session, actor, Township, township_id)
    authorize(actor, "points_report.read")
    villages = list(session.scalars(
        select(Village).where(Village.township_id == township.id).order_by(Village.id)))
    ids = [v.id for v in villages]
    upto = (MonthTotal.month <= month,) if month else ()
    cumulative = _month_totals(session, ids, *upto)
    in_month = _month_totals(session, ids, MonthTotal.month == month) if month else {}
    balances: dict[int, tuple[int, int, int]] = {}
    if ids:
        for village_id, available, held, count in session.execute(
            select(Account.village_id, func.sum(Account.available), func.sum(Account.held),
                   func.count())
            .where(Account.village_id.in_(ids)).group_by(Account.village_id)
        ):
            balances[village_id] = (int(available or 0), int(held or 0), int(count))
    out = []
    for village in villages:
        issued, earned, deducted, redeemed, expired = cumulative.get(village.id, (0,) * 5)
        available, held, accounts = balances.get(village.id, (0, 0, 0))
        outstanding = available + held if month is None else issued + redeemed + expired
        rate = catalogs.effective_policy(session, village.id).exchange_rate
        flows = in_month.get(village.id, (0,) * 5)
        out.append(VillagePoints(
            village_id=village.id, name=village.name, accounts=accounts, earned=earned,
            deducted=deducted, adjusted=issued - earned - deducted, issued=issued,
            redeemed=-redeemed, expired=-expired, outstanding=outstanding,
            available=available if month is None else None,
            held=held if month is None else None, exchange_rate=rate,
            outstanding_value=value_of(outstanding, rate),
            month_issued=flows[0] if month else None,
            month_redeemed=-flows[3] if month else None,
            month_expired=-flows[4] if month else None,
        ))
    keys = ("accounts", "earned", "deducted", "adjusted", "issued", "redeemed", "expired",
            "outstanding")
    totals: dict[str, Any] = {k: sum(getattr(v, k) for v in out) for k in keys}
    totals["outstanding_value"] = sum((v.outstanding_value for v in out), Decimal("0"))
    for k in ("available", "held", "month_issued", "month_redeemed", "month_expired"):
        totals[k] = None if not out or getattr(out[0], k) is None else sum(
            getattr(v, k) for v in out)
    return PointsReport(township.id, township.name, month, out, totals)
