"""Counter redemption (柜台兑换), for people without phones: the clerk scans a member card
and hands the goods out at once, reserved and fulfilled in one transaction, with cash paid
for the difference (现金补差) if the villager likes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import cards, catalogs
from ..errors import DomainError, NotFound
from ..models import Account, Redemption, Shop, Villager
from ..scope import Actor, authorize, get_visible
from ..tokens import TokenCodec
from .qualification import qualification
from .redemption import FEN, Basket, InvalidCash, fulfil, price_basket, refuse_short, reserve


class NotServed(DomainError):
    status = 422
    code = "shop_not_serving"
    message = "本超市不服务该村民所在的村"


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
    session: Session,
    actor: Actor,
    codec: TokenCodec,
    shop_id: int,
    *,
    member_token: str,
    items: list[dict[str, int]],
    cash_paid: Decimal,
    now: datetime,
    tz: ZoneInfo,
) -> Redemption:
    """At the counter: the clerk scans a member card and hands the goods out at once —
    reserved and fulfilled in one transaction. Cash paid for the difference (现金补差)
    covers part of the goods at the village's exchange rate and is on the receipt."""
    shop = get_visible(session, actor, Shop, shop_id)
    authorize(actor, "redemption.counter")
    villager = member_from_card(session, codec, shop, member_token, now)
    redemption = reserve(
        session,
        actor,
        shop,
        Basket(villager.household, villager.id, items, cash_paid),
        source="counter",
        now=now,
        tz=tz,
        expires_at=None,
    )
    return fulfil(session, actor, redemption, now, tz, "redemption.counter")


@dataclass(frozen=True)
class CounterQuote:
    """试算: what a counter redemption of the basket would take, before the clerk confirms."""

    total_points: int  # the goods at shelf prices
    cash_paid: Decimal
    points: int  # taken from the household's points
    exchange_rate: Decimal  # yuan per point, at which the cash counts
    available_after: int


def quote(
    session: Session,
    actor: Actor,
    codec: TokenCodec,
    shop_id: int,
    *,
    member_token: str,
    items: list[dict[str, int]],
    cash_paid: Decimal,
    now: datetime,
    tz: ZoneInfo,
) -> CounterQuote:
    """The basket priced and checked as `counter_redeem` would (the same refusals: the
    card, the shelf, the cash, the minimum, the qualification line, the points and the
    stock as they stand), holding nothing: the sale itself decides."""
    shop = get_visible(session, actor, Shop, shop_id)
    authorize(actor, "redemption.counter")
    villager = member_from_card(session, codec, shop, member_token, now)
    priced = price_basket(
        session,
        shop,
        Basket(villager.household, villager.id, items, cash_paid),
        source="counter",
        now=now,
        tz=tz,
    )
    refuse_short(priced)
    return CounterQuote(
        total_points=priced.total,
        cash_paid=cash_paid,
        points=priced.points,
        exchange_rate=priced.exchange_rate,
        available_after=priced.account.available - priced.points,
    )


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
    session: Session,
    actor: Actor,
    codec: TokenCodec,
    shop_id: int,
    *,
    member_token: str,
    now: datetime,
    tz: ZoneInfo,
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
    return CardHolder(
        villager_name=villager.name,
        household_id=household.id,
        household_name=household.name,
        available=account.available if account is not None else 0,
        qualifies=qualified,
    )


def parse_cash(value: Decimal | None) -> Decimal:
    """The cash paid as the clerk typed it: not negative, at most two decimals."""
    if value is None:
        return Decimal("0.00")
    try:
        cash = Decimal(value)
    except (InvalidOperation, TypeError) as exc:
        raise InvalidCash() from exc
    if not cash.is_finite() or cash < 0 or cash != cash.quantize(FEN):
        raise InvalidCash(
            "现金补差应为不小于 0 的金额，最多两位小数", details={"cash_paid": str(value)}
        )
    return cash.quantize(FEN)
