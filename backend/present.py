"""Shape models for responses where the caller decides what is shown (masked phones)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from points.models import Household, User, Villager
from points.scope import VILLAGER, Actor, mask_phone, sees_phone

from .extensions import db


def villager(v: Villager, actor: Actor, bound_ids: set[int] | None = None) -> dict[str, Any]:
    village_id = v.household.village_id
    if bound_ids is None:
        bound = db.session.scalar(select(User.id).where(
            User.villager_id == v.id, User.role == VILLAGER)) is not None
    else:
        bound = v.id in bound_ids
    return {
        "id": v.id,
        "household_id": v.household_id,
        "village_id": village_id,
        "name": v.name,
        "relation": v.relation,
        "phone": v.phone if sees_phone(actor, village_id) else mask_phone(v.phone),
        "gender": v.gender,
        "birth_year": v.birth_year,
        "active": v.active,
        "bound": bound,
    }


def household(h: Household, actor: Actor) -> dict[str, Any]:
    member_ids = [m.id for m in h.members]
    bound_ids = set(
        db.session.scalars(select(User.villager_id).where(User.villager_id.in_(member_ids),
                                                          User.role == VILLAGER))
    ) if member_ids else set()
    head = h.head
    return {
        "id": h.id,
        "village_id": h.village_id,
        "group_id": h.group_id,
        "name": h.name,
        "address": h.address,
        "head": {"id": head.id, "name": head.name} if head else None,
        "members": [villager(m, actor, bound_ids) for m in h.members],
        "public_board_opt_out": h.public_board_opt_out,
        "created_at": h.created_at,
    }
