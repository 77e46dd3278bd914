"""Accounts and the passbook (积分存折); reversing an entry."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from sqlalchemy import select

from points import audit, ledger
from points.errors import Forbidden
from points.models import Account, Household, LedgerEntry, RuleItemVersion
from points.scope import authorize, get_visible, refuse_own_household

from ..auth import current_actor
from ..clock import village_tz
from ..extensions import db
from ..idempotency import DOC as IDEMPOTENT
from ..idempotency import idempotent
from ..openapi import page_of, paginate
from ..schemas import AccountOut, LedgerArgs, LedgerEntryOut, ReasonIn

blp = Blueprint("points", __name__, description="积分账户与存折 Accounts and passbook")


def _account(household_id: int) -> dict[str, Any]:
    household = get_visible(db.session, current_actor(), Household, household_id)
    view = ledger.account_view(db.session, household.id, village_tz())
    return view.__dict__


def _passbook(household_id: int, args: dict[str, Any]) -> dict[str, Any]:
    household = get_visible(db.session, current_actor(), Household, household_id)
    stmt = (select(LedgerEntry).join(Account).where(Account.household_id == household.id)
            .order_by(LedgerEntry.seq.desc()))
    if "month" in args:
        stmt = stmt.where(LedgerEntry.month == args["month"])
    page = paginate(db.session, stmt, args["page"], args["per_page"])
    page["items"] = _present(page["items"])
    return page


def _present(entries: list[LedgerEntry]) -> list[dict[str, Any]]:
    """Passbook lines with the member's name and the rule item as it was when awarded."""
    names = ledger.member_names(db.session, {e.member_id for e in entries if e.member_id})
    version_ids = {e.rule_item_version_id for e in entries if e.rule_item_version_id}
    versions = {
        v.id: v for v in db.session.scalars(
            select(RuleItemVersion).where(RuleItemVersion.id.in_(version_ids)))
    } if version_ids else {}
    items = []
    for e in entries:
        version = versions.get(e.rule_item_version_id) if e.rule_item_version_id else None
        name, relation = names.get(e.member_id, (None, None)) if e.member_id else (None, None)
        items.append({
            "id": e.id, "amount": e.amount, "kind": e.kind, "member_id": e.member_id,
            "member_name": name, "relation": relation,
            "rule_item_id": version.item_id if version else None,
            "rule_item_version_id": e.rule_item_version_id,
            "rule_item_name": version.data.get("name") if version else None,
            "claim_id": e.claim_id, "reverses_id": e.reverses_id, "month": e.month,
            "created_at": e.created_at, "created_by": e.created_by, "note": e.note,
        })
    return items


def _my_household() -> int:
    actor = current_actor()
    if actor.household_id is None:
        raise Forbidden("请先绑定村民身份", code="not_bound")
    return actor.household_id


@blp.route("/households/<int:household_id>/account", methods=["GET"])
@blp.response(200, AccountOut)
def household_account(household_id: int) -> dict[str, Any]:
    return _account(household_id)


@blp.route("/households/<int:household_id>/ledger", methods=["GET"])
@blp.arguments(LedgerArgs, location="query")
@blp.response(200, page_of(LedgerEntryOut))
def household_ledger(args: dict[str, Any], household_id: int) -> dict[str, Any]:
    """The passbook, newest first; `month` narrows it to one month."""
    return _passbook(household_id, args)


@blp.route("/me/account", methods=["GET"])
@blp.response(200, AccountOut)
def my_account() -> dict[str, Any]:
    return _account(_my_household())


@blp.route("/me/ledger", methods=["GET"])
@blp.arguments(LedgerArgs, location="query")
@blp.response(200, page_of(LedgerEntryOut))
def my_ledger(args: dict[str, Any]) -> dict[str, Any]:
    return _passbook(_my_household(), args)


@blp.route("/ledger/<int:entry_id>/reverse", methods=["POST"])
@blp.doc(**IDEMPOTENT)
@idempotent
@blp.arguments(ReasonIn)
@blp.response(201, LedgerEntryOut)
def reverse(body: dict[str, Any], entry_id: int) -> dict[str, Any]:
    """Correct an entry with a reversing entry (冲正); the original stays in the passbook."""
    actor = current_actor()
    entry = get_visible(db.session, actor, LedgerEntry, entry_id)
    authorize(actor, "ledger.reverse")
    account = db.session.get(Account, entry.account_id)
    assert account is not None
    refuse_own_household(db.session, actor, account.household_id)
    reversal = ledger.reverse(db.session, entry, reason=body["reason"],
                              created_by=actor.user_id, tz=village_tz())
    audit.record(db.session, actor, "ledger.reverse", reversal, village_id=account.village_id)
    return _present([reversal])[0]
