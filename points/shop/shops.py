"""Points supermarkets (积分超市): which township and villages a shop serves."""

from __future__ import annotations

from sqlalchemy.orm import Session

from .. import audit
from ..errors import Invalid
from ..models import Shop, Township, Village
from ..scope import Actor, authorize_unless_operator, get_for


def create_shop(
    session: Session, actor: Actor | None, name: str, township_id: int, village_ids: list[int]
) -> Shop:
    """`actor` None: the operator at the command line (`flask county init`)."""
    authorize_unless_operator(actor, "shop.create")
    township = get_for(session, actor, Township, township_id)
    villages = [session.get(Village, vid) for vid in sorted(set(village_ids))]
    # Every write stays inside one township (docs/DESIGN.md, Roles and scopes): a shop
    # serves only its own villages.
    if any(v is None or v.township_id != township.id for v in villages):
        raise Invalid(
            "积分超市只能服务本乡镇的村",
            code="invalid_villages",
            details={"village_ids": village_ids},
        )
    shop = Shop(name=name, township_id=township.id, villages=villages)
    session.add(shop)
    audit.record(session, actor, "shop.create", shop, township_id=township.id)
    return shop
