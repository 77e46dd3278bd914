"""Registry services: townships, villages, villager groups, households and their members.

Every write is checked by `authorize` (role) and reaches its target through `get_visible`
(scope), and is written to the audit log in the same transaction."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from . import audit
from .errors import Conflict, Invalid
from .models import HEAD, Household, Township, Village, Villager, VillagerGroup
from .scope import Actor, authorize, authorize_unless_operator, get_for, get_visible, sees_phone

PHONE_RE = re.compile(r"^1[3-9]\d{9}$")  # mainland mobile numbers


def check_phone(phone: str | None) -> str | None:
    if phone is None or phone == "":
        return None
    phone = phone.strip()
    if not PHONE_RE.match(phone):
        raise Invalid(
            "手机号格式不正确，应为 11 位手机号", code="invalid_phone", details={"phone": phone}
        )
    return phone


def household_matches(actor: Actor, village_id: int | None, query: str) -> ColumnElement[bool]:
    """Households whose name or address holds `query`, or with a member of that name; by a
    member's phone only in `village_id`, and only for whoever sees its phones in full (its own
    cadres): a number shown masked must not be confirmed by searching for it, digit by digit.
    The text is matched literally (`%` and `_` are no wildcards)."""
    member = Villager.name.contains(query, autoescape=True)
    if village_id is not None and sees_phone(actor, village_id):
        member = or_(member, Villager.phone.contains(query, autoescape=True))
    return or_(
        Household.name.contains(query, autoescape=True),
        Household.address.contains(query, autoescape=True),
        Household.id.in_(select(Villager.household_id).where(member)),
    )


def create_township(session: Session, actor: Actor | None, name: str, code: str | None) -> Township:
    """`actor` None: the operator at the command line (`flask county init`)."""
    authorize_unless_operator(actor, "township.create")
    if session.scalar(select(Township.id).where(Township.name == name)):
        raise Conflict("已有同名乡镇", code="duplicate_name")
    township = Township(name=name, code=code)
    session.add(township)
    session.flush()
    # Filed under the new township, so its own admins can read how it was set up.
    audit.record(session, actor, "township.create", township, township_id=township.id)
    return township


def update_township(
    session: Session, actor: Actor, township_id: int, changes: dict[str, Any]
) -> Township:
    """Rename a township or set its code (county admins)."""
    township = get_visible(session, actor, Township, township_id)
    authorize(actor, "township.update")
    if "name" in changes and session.scalar(
        select(Township.id).where(Township.name == changes["name"], Township.id != township.id)
    ):
        raise Conflict("已有同名乡镇", code="duplicate_name")
    before = audit.snapshot(township)
    for key, value in changes.items():
        setattr(township, key, value)
    audit.record(
        session, actor, "township.update", township, before=before, township_id=township.id
    )
    return township


def create_village(
    session: Session, actor: Actor | None, township_id: int, name: str, code: str | None
) -> Village:
    authorize_unless_operator(actor, "village.create")
    township = get_for(session, actor, Township, township_id)
    if session.scalar(
        select(Village.id).where(Village.township_id == township.id, Village.name == name)
    ):
        raise Conflict("本乡镇已有同名村", code="duplicate_name")
    village = Village(township_id=township.id, name=name, code=code)
    session.add(village)
    audit.record(session, actor, "village.create", village, township_id=township.id)
    return village


def update_village(
    session: Session, actor: Actor, village_id: int, changes: dict[str, Any]
) -> Village:
    village = get_visible(session, actor, Village, village_id)
    authorize(actor, "village.update")
    if "name" in changes and session.scalar(
        select(Village.id).where(
            Village.township_id == village.township_id,
            Village.name == changes["name"],
            Village.id != village.id,
        )
    ):
        raise Conflict("本乡镇已有同名村", code="duplicate_name")
    before = audit.snapshot(village)
    for key, value in changes.items():
        setattr(village, key, value)
    _record(session, actor, "village.update", village, village, before)
    return village


def create_group(
    session: Session, actor: Actor | None, village_id: int, name: str
) -> VillagerGroup:
    authorize_unless_operator(actor, "group.create")
    village = get_for(session, actor, Village, village_id)
    if session.scalar(
        select(VillagerGroup.id).where(
            VillagerGroup.village_id == village.id, VillagerGroup.name == name
        )
    ):
        raise Conflict("本村已有同名村民小组", code="duplicate_name")
    group = VillagerGroup(village_id=village.id, name=name)
    session.add(group)
    _record(session, actor, "group.create", group, village)
    return group


def _record(
    session: Session,
    actor: Actor | None,
    action: str,
    obj: Any,
    village: Village,
    before: dict[str, Any] | None = None,
) -> None:
    audit.record(session, actor, action, obj, before=before, village_id=village.id)


def _group_in_village(session: Session, group_id: int | None, village_id: int) -> int | None:
    if group_id is None:
        return None
    group = session.get(VillagerGroup, group_id)
    if group is None or group.village_id != village_id:
        raise Invalid("村民小组不属于本村", code="invalid_group", details={"group_id": group_id})
    return group.id


def create_household(
    session: Session,
    actor: Actor,
    village_id: int,
    *,
    group_id: int | None = None,
    address: str | None = None,
    name: str | None = None,
) -> Household:
    authorize(actor, "household.create")
    village = get_visible(session, actor, Village, village_id)
    household = Household(
        village_id=village.id,
        group_id=_group_in_village(session, group_id, village.id),
        address=address,
        name=name,
    )
    session.add(household)
    _record(session, actor, "household.create", household, village)
    return household


def update_household(
    session: Session, actor: Actor, household_id: int, changes: dict[str, Any]
) -> Household:
    household = get_visible(session, actor, Household, household_id)
    authorize(actor, "household.update")
    before = audit.snapshot(household)
    if "group_id" in changes:
        changes["group_id"] = _group_in_village(session, changes["group_id"], household.village_id)
    for key, value in changes.items():
        setattr(household, key, value)
    village = session.get(Village, household.village_id)
    assert village is not None
    _record(session, actor, "household.update", household, village, before)
    return household


def _check_head(session: Session, household_id: int, relation: str, exclude: int | None) -> None:
    if relation != HEAD:
        return
    query = select(Villager.id).where(
        Villager.household_id == household_id, Villager.relation == HEAD
    )
    if exclude is not None:
        query = query.where(Villager.id != exclude)
    if session.scalar(query):
        raise Conflict("该户已有户主", code="household_has_head")


def add_member(
    session: Session,
    actor: Actor,
    household_id: int,
    *,
    name: str,
    relation: str,
    phone: str | None = None,
    gender: str | None = None,
    birth_year: int | None = None,
) -> Villager:
    household = get_visible(session, actor, Household, household_id)
    authorize(actor, "member.create")
    _check_head(session, household.id, relation, None)
    member = Villager(
        household_id=household.id,
        name=name,
        relation=relation,
        phone=check_phone(phone),
        gender=gender,
        birth_year=birth_year,
    )
    session.add(member)
    village = session.get(Village, household.village_id)
    assert village is not None
    _record(session, actor, "member.create", member, village)
    return member


def update_villager(
    session: Session, actor: Actor, villager_id: int, changes: dict[str, Any]
) -> Villager:
    villager = get_visible(session, actor, Villager, villager_id)
    authorize(actor, "villager.update")
    before = audit.snapshot(villager)
    if "relation" in changes:
        _check_head(session, villager.household_id, changes["relation"], villager.id)
    if "phone" in changes:
        changes["phone"] = check_phone(changes["phone"])
    for key, value in changes.items():
        setattr(villager, key, value)
    village = session.get(Village, villager.household.village_id)
    assert village is not None
    _record(session, actor, "villager.update", villager, village, before)
    return villager
