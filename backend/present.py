"""What views answer when a model alone is not the answer: the model with the values the
view adds put beside it. A villager, a household or an audit entry as the caller may see it
(phone numbers in full only for the cadres of the village, masked for everyone else), and a
line of the passbook.

Every other attribute is read from the object itself, so the response schemas
(VillagerOut, HouseholdOut, AuditOut, LedgerEntryOut) dump these as they dump a model, and
no field is listed twice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select

from points import catalogs, ledger, opening
from points.models import AuditEntry, Household, LedgerEntry, RuleItemVersion, User, Villager
from points.scope import VILLAGER, Actor, mask_phone, sees_phone

from .clock import village_tz
from .extensions import db


class _Shown:
    """Reads what the view does not set from the object it shows."""

    def __getattr__(self, name: str) -> Any:
        if name == "shown":  # not set yet (a copy being made): no object to read from
            raise AttributeError(name)
        return getattr(self.shown, name)


@dataclass(frozen=True)
class ShownVillager(_Shown):
    shown: Villager
    village_id: int
    phone: str | None  # masked unless the caller is a cadre of the village
    bound: bool  # a WeChat user is bound to the villager


@dataclass(frozen=True)
class ShownHousehold(_Shown):
    shown: Household
    members: list[ShownVillager]


@dataclass(frozen=True)
class ShownAuditEntry(_Shown):
    shown: AuditEntry
    before: Any
    after: Any


@dataclass(frozen=True)
class PassbookLine(_Shown):
    shown: LedgerEntry
    member_name: str | None
    relation: str | None  # the member's, to the head of the household
    rule_item_id: int | None
    rule_item_name: str | None  # as the item was named when the entry was made
    created_by_name: str | None
    approved_by_names: list[str]
    deed_date: date | None
    balance: int  # the account's points after the entry


def villager(v: Villager, actor: Actor, bound_ids: set[int | None] | None = None) -> ShownVillager:
    """`bound_ids`: the villagers a WeChat user is bound to, when the caller read them for
    many villagers at once; otherwise read here."""
    village_id = v.household.village_id
    if bound_ids is None:
        bound = (
            db.session.scalar(
                select(User.id).where(User.villager_id == v.id, User.role == VILLAGER)
            )
            is not None
        )
    else:
        bound = v.id in bound_ids
    phone = v.phone if sees_phone(actor, village_id) else mask_phone(v.phone)
    return ShownVillager(v, village_id=village_id, phone=phone, bound=bound)


def household(h: Household, actor: Actor) -> ShownHousehold:
    return households([h], actor)[0]


def households(listed: list[Household], actor: Actor) -> list[ShownHousehold]:
    """Households with their members, and which members have bound an account: one query
    for the page, not one a household (load `Household.members` with the list)."""
    member_ids = [m.id for h in listed for m in h.members]
    bound_ids = (
        set(
            db.session.scalars(
                select(User.villager_id).where(
                    User.villager_id.in_(member_ids), User.role == VILLAGER
                )
            )
        )
        if member_ids
        else set()
    )
    return [
        ShownHousehold(h, members=[villager(m, actor, bound_ids) for m in h.members])
        for h in listed
    ]


def audit_entry(entry: AuditEntry, actor: Actor) -> ShownAuditEntry:
    """An audit entry as its reader may see it. The stored entry keeps every value; phone
    numbers in its before and after are shown by the rule of the rest of the API: in full
    only to the cadres of the villager's own village, masked for everyone else."""
    shows = entry.village_id is not None and sees_phone(actor, entry.village_id)
    return ShownAuditEntry(
        entry,
        before=entry.before if shows else _phones_masked(entry.before),
        after=entry.after if shows else _phones_masked(entry.after),
    )


def _phones_masked(value: Any) -> Any:
    """`value` with every phone number in it masked, at any depth: a villager's snapshot
    has `phone`, and a snapshot that lists people may nest them."""
    if isinstance(value, dict):
        return {
            key: mask_phone(item) if _is_phone(key, item) else _phones_masked(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_phones_masked(item) for item in value]
    return value


def _is_phone(key: Any, value: Any) -> bool:
    return (
        isinstance(key, str)
        and (key == "phone" or key.endswith("_phone"))
        and (value is None or isinstance(value, str))
    )


def passbook_page(
    household_id: int, *, month: str | None, page: int, per_page: int
) -> tuple[list[PassbookLine], int]:
    """A page of the household's passbook, newest first, and how many lines it has in all
    (for a household the caller may see: the caller checks)."""
    found = ledger.passbook_page(
        db.session, household_id, month=month, page=page, per_page=per_page
    )
    lines = passbook_lines(
        [row[0] for row in found.rows], {row[0].id: row[1:] for row in found.rows}
    )
    return lines, found.total


def passbook_lines(
    entries: list[LedgerEntry],
    extra: dict[int, tuple[int, str | None, datetime | None]] | None = None,
) -> list[PassbookLine]:
    """Passbook lines with the member's name and the rule item as it was when awarded;
    `extra` (by entry): the balance after it, who posted it and its deed's moment, which a
    passbook page reads with its lines. Otherwise (one new entry) they are read here."""
    if extra is None:
        extra = {e.id: ledger.passbook_line(db.session, e)[1:] for e in entries}
    names = ledger.member_names(db.session, {e.member_id for e in entries if e.member_id})
    approvers = ledger.approver_names(db.session, {e.claim_id for e in entries if e.claim_id})
    tz = village_tz()
    version_ids = {e.rule_item_version_id for e in entries if e.rule_item_version_id}
    versions = (
        {
            v.id: v
            for v in db.session.scalars(
                select(RuleItemVersion).where(RuleItemVersion.id.in_(version_ids))
            )
        }
        if version_ids
        else {}
    )
    items = []
    for e in entries:
        version = versions.get(e.rule_item_version_id) if e.rule_item_version_id else None
        item = catalogs.item_ref(version.item_id, version.id, version) if version else None
        name, relation = names.get(e.member_id, (None, None)) if e.member_id else (None, None)
        balance, creator, deed = extra[e.id]
        items.append(
            PassbookLine(
                e,
                member_name=name,
                relation=relation,
                rule_item_id=item.id if item else None,
                # An opening balance has no rule item: the passbook names it 期初结转.
                rule_item_name=item.name
                if item
                else (opening.OPENING_LABEL if e.kind == ledger.OPENING_KIND else None),
                created_by_name=creator,
                approved_by_names=approvers.get(e.claim_id, []) if e.claim_id else [],
                deed_date=deed.astimezone(tz).date() if deed is not None else None,
                balance=balance,
            )
        )
    return items
