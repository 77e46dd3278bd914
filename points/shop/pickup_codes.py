"""Pickup numbers (取货号): the 6 digits a clerk types when an order's QR code cannot be
scanned (a cracked phone screen), unique among a shop's open orders."""

from __future__ import annotations

import secrets

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from ..errors import Conflict, DomainError
from ..models import Redemption

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
        code = f"{secrets.randbelow(10**PICKUP_CODE_DIGITS):0{PICKUP_CODE_DIGITS}d}"
        try:
            with session.begin_nested():
                session.execute(
                    update(Redemption)
                    .where(Redemption.id == redemption.id)
                    .values(pickup_code=code)
                    .execution_options(synchronize_session=False)
                )
        except IntegrityError:
            continue
        set_committed_value(redemption, "pickup_code", code)  # written above already
        return code
    raise Conflict("暂时无法分配取货号，请重试", code="pickup_code_busy")
