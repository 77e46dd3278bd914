"""The shelves of a points supermarket (积分超市): rewards, their prices and pictures, and
their stock, which moves only with a recorded stock movement (who and why) or an order."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .. import audit
from ..errors import Conflict, DomainError, Invalid
from ..models import Reward, Shop, StockMovement
from ..scope import Actor, authorize, get_visible


class StockNegative(DomainError):
    status = 409
    code = "stock_negative"
    message = "库存不够扣减"


def _township_of(shop: Shop) -> audit.Filing:
    return {"township_id": shop.township_id}


def create_reward(
    session: Session,
    actor: Actor,
    shop_id: int,
    *,
    name: str,
    points: int,
    stock: int,
    image_url: str | None = None,
    active: bool = True,
) -> Reward:
    shop = get_visible(session, actor, Shop, shop_id)
    authorize(actor, "reward.edit")
    _refuse_duplicate_name(session, shop.id, name)
    reward = Reward(
        shop_id=shop.id, name=name, points=points, stock=stock, image_url=image_url, active=active
    )
    session.add(reward)
    session.flush()
    if stock:
        session.add(
            StockMovement(
                reward_id=reward.id,
                shop_id=shop.id,
                kind="initial",
                change=stock,
                stock_after=stock,
                reason="上架",
                created_by=actor.user_id,
            )
        )
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
    session: Session,
    actor: Actor,
    reward_id: int,
    *,
    kind: str,
    change: int,
    reason: str,
    now: datetime,
) -> StockMovement:
    """A restock (goods delivered, `change` > 0) or a correction after a count (either
    sign). One conditional update, so it cannot race an order into negative stock."""
    reward = get_visible(session, actor, Reward, reward_id)
    authorize(actor, "stock.adjust")
    if change == 0 or (kind == "restock" and change < 0):
        raise Invalid(
            "进货数量必须大于 0；盘点更正请填写增减数量",
            code="invalid_change",
            details={"kind": kind, "change": change},
        )
    row = session.execute(
        update(Reward)
        .where(Reward.id == reward.id, Reward.stock + change >= 0)
        .values(stock=Reward.stock + change, updated_at=now)
        .returning(Reward.stock)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        stock = session.scalar(select(Reward.stock).where(Reward.id == reward.id))
        raise StockNegative(
            f"库存只有 {stock}，不能减少 {-change}", details={"stock": stock, "change": change}
        )
    session.expire(reward)
    movement = StockMovement(
        reward_id=reward.id,
        shop_id=reward.shop_id,
        kind=kind,
        change=change,
        stock_after=row[0],
        reason=reason,
        created_by=actor.user_id,
        created_at=now,
    )
    session.add(movement)
    shop = session.get(Shop, reward.shop_id)
    assert shop is not None
    audit.record(session, actor, f"reward.{kind}", movement, **_township_of(shop))
    return movement
