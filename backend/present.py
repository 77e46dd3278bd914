"""Shape models for responses where the caller decides what is shown (masked phones)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from points.models import AuditEntry, Household, User, Villager
from points.scope import VILLAGER, Actor, mask_phone, sees_phone

from .extensions import db


def villager(
    v: Villager, actor: Actor, bound_ids: set[int | None] | None = None
) -> dict[str, Any]:
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
        "card_number": v.card_number,
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
        "code": h.code,
        "name": h.name,
        "address": h.address,
        "head": {"id": head.id, "name": head.name} if head else None,
        "members": [villager(m, actor, bound_ids) for m in h.members],
        "public_board_opt_out": h.public_board_opt_out,
        "created_at": h.created_at,
    }


def audit_entry(entry: AuditEntry, actor: Actor) -> dict[str, Any]:
    """An audit entry as its reader may see it. The stored entry keeps every value; phone
    numbers in its before and after are shown by the rule of the rest of the API: in full
    only to the cadres of the villager's own village, masked for everyone else."""
    shows = entry.village_id is not None and sees_phone(actor, entry.village_id)
    return {
        "id": entry.id, "at": entry.at, "actor_id": entry.actor_id, "action": entry.action,
        "object_type": entry.object_type, "object_id": entry.object_id,
        "township_id": entry.township_id, "village_id": entry.village_id,
        "before": entry.before if shows else _phones_masked(entry.before),
        "after": entry.after if shows else _phones_masked(entry.after),
    }


def _phones_masked(value: Any) -> Any:
    """`value` with every phone number in it masked, at any depth: a villager's snapshot
    has `phone`, and a snapshot that lists people may nest them."""
    if isinstance(value, dict):
        return {key: mask_phone(item) if _is_phone(key, item) else _phones_masked(item)
                for key, item in value.items()}
    if isinstance(value, list):
        return [_phones_masked(item) for item in value]
    return value


def _is_phone(key: Any, value: Any) -> bool:
    return isinstance(key, str) and (key == "phone" or key.endswith("_phone")) \
        and (value is None or isinstance(value, str))
