"""Accounts and the passbook (积分存折); reversing an entry, reviewed like awards."""

from __future__ import annotations

from typing import Any

from flask import jsonify
from flask_smorest import Blueprint

from points import home, ledger, opening, reversals
from points.models import Household, ReversalRequest
from points.scope import get_visible, visible

from .. import present
from ..caller import current_actor
from ..clock import now, village_tz
from ..downloads import uploaded_sheet
from ..extensions import db
from ..idempotency import DOC as IDEMPOTENT
from ..idempotency import idempotent
from ..openapi import PAGE_TOO_DEEP, page_of, paginate, raises
from ..schemas.common import ReasonIn
from ..schemas.home import HomeOut
from ..schemas.passbook import (
    AccountOut,
    LedgerArgs,
    LedgerEntryOut,
    OpeningBalancesResult,
    ReversalRequestArgs,
    ReversalRequestOut,
)

blp = Blueprint("points", __name__, description="积分账户与存折 Accounts and passbook")


def _account(household_id: int) -> ledger.AccountView:
    household = get_visible(db.session, current_actor(), Household, household_id)
    return ledger.account_view(db.session, household.id, village_tz())


def _passbook(household_id: int, args: dict[str, Any]) -> dict[str, Any]:
    household = get_visible(db.session, current_actor(), Household, household_id)
    lines, total = present.passbook_page(
        household.id, month=args.get("month"), page=args["page"], per_page=args["per_page"]
    )
    return {"items": lines, "page": args["page"], "per_page": args["per_page"], "total": total}


def _my_household() -> int:
    return home.bound(current_actor()).household_id


@blp.route("/households/<int:household_id>/account", methods=["GET"])
@blp.response(200, AccountOut)
def household_account(household_id: int) -> ledger.AccountView:
    return _account(household_id)


@blp.route("/households/<int:household_id>/ledger", methods=["GET"])
@blp.arguments(LedgerArgs, location="query")
@blp.response(200, page_of(LedgerEntryOut))
def household_ledger(args: dict[str, Any], household_id: int) -> dict[str, Any]:
    """The passbook, newest first; `month` narrows it to one month."""
    return _passbook(household_id, args)


@blp.route("/me/account", methods=["GET"])
@raises((403, "not_bound"), (404, "not_found"))
@blp.response(200, AccountOut)
def my_account() -> ledger.AccountView:
    return _account(_my_household())


@blp.route("/me/home", methods=["GET"])
@raises((403, "not_bound"))
@blp.response(200, HomeOut)
def my_home() -> dict[str, Any]:
    """Everything the villager's home screen shows, in one answer: the household's points
    (spendable, held by orders, in public notice), this month's score and rank (null at 0
    points), its stars (this year's score, as the household plate shows them), the
    qualification line and the gap to it, and what needs attention (open objections to its
    claims, claims rejected in the last 30 days, orders expiring within 24 hours). Each
    figure equals what its own endpoint says. 403 `not_bound` before binding."""
    return home.home(db.session, current_actor(), now(), village_tz())


@blp.route("/me/ledger", methods=["GET"])
@raises((403, "not_bound"), (404, "not_found"))
@blp.arguments(LedgerArgs, location="query")
@blp.response(200, page_of(LedgerEntryOut))
def my_ledger(args: dict[str, Any]) -> dict[str, Any]:
    return _passbook(_my_household(), args)


@blp.route("/ledger/<int:entry_id>/reverse", methods=["POST"])
@raises(
    (403, "self_approval"),
    (403, "villager_inactive"),
    (409, "account_busy"),
    (409, "already_approved"),
    (409, "already_reversed"),
    (409, "not_reversible"),
)
@blp.doc(**IDEMPOTENT)
@idempotent
@blp.arguments(ReasonIn)
@blp.response(201, LedgerEntryOut)
@blp.alt_response(
    202,
    schema=ReversalRequestOut,
    description="At or above the two-cadre threshold: the reversal waits for a "
    "second reviewer (pending_confirmation)",
)
def reverse(body: dict[str, Any], entry_id: int) -> Any:
    """Correct an entry with a reversing entry (冲正); the original stays in the passbook.
    Not for one's own household (403 self_approval). Below the township's two-cadre
    threshold (on the entry's amount) it is posted at once (201). At or above it, the first
    call asks (202, a request `pending_confirmation`, listed by GET /reversal-requests); the
    same call by a second, different cadre of the village, or by an admin of its township or
    county, confirms it and posts the reversing entry with the first reason (201); the same
    reviewer again is 409 already_approved."""
    result = reversals.reverse(
        db.session, current_actor(), entry_id, body["reason"], tz=village_tz(), now=now()
    )
    if isinstance(result, ReversalRequest):
        response = jsonify(ReversalRequestOut().dump(result))
        response.status_code = 202
        return response
    return present.passbook_lines([result])[0]


@blp.route("/villages/<int:village_id>/opening-balances", methods=["POST"])
@raises(
    (400, "file_required"),
    (409, "opening_balance_exists"),
    (422, "opening_balances_invalid"),
    (422, "roster_too_large"),
)
@blp.doc(**IDEMPOTENT)
@idempotent
@blp.response(201, OpeningBalancesResult)
@blp.alt_response(409, response="CONFLICT")  # opening_balance_exists: another upload won
@blp.doc(
    requestBody={
        "required": True,
        "description": "A CSV (UTF-8 or GBK) or XLSX sheet, as multipart field `file` or as the "
        "raw body. Columns: 户编号 (the roster's key, or the household's number "
        "for a household made without one), 积分 (whole points above 0), 备注 "
        "(optional); headers also as 户号, 户编码, 期初积分, 说明 …",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
            "text/csv": {"schema": {"type": "string"}},
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                "schema": {"type": "string", "format": "binary"}
            },
        },
    }
)
def opening_balances(village_id: int) -> opening.OpeningSummary:
    """Opening balances (期初积分) of the village's households, once per household: each
    becomes a passbook entry of kind `adjust` shown as 期初结转, spendable at once but never
    ranked on a board, counted for the qualification line (合格线) or drawn from the monthly
    budget. Township and county admins only. The whole sheet is checked first: one bad row
    (points not a whole number above 0, a household not of this village, a household twice,
    one already opened) and nothing is written (422 `opening_balances_invalid`, every error
    by row and column). A wrong opening balance is corrected by reversing it (冲正); then
    the household may be given one again."""
    filename, data = uploaded_sheet("opening.xlsx", "请上传期初积分表（CSV 或 XLSX）")
    summary = opening.import_opening_balances(
        db.session, current_actor(), village_id, filename, data, tz=village_tz(), now=now()
    )
    return summary


@blp.route("/reversal-requests", methods=["GET"])
@raises(PAGE_TOO_DEEP)
@blp.arguments(ReversalRequestArgs, location="query")
@blp.response(200, page_of(ReversalRequestOut))
def reversal_requests(args: dict[str, Any]) -> dict[str, Any]:
    """Reversals waiting for a second reviewer (by default; `status=confirmed` for those
    done), newest first, within the caller's scope: where a second cadre finds what to
    confirm, by POST /ledger/{entry_id}/reverse."""
    stmt = (
        visible(current_actor(), ReversalRequest)
        .where(ReversalRequest.status == args["status"])
        .order_by(ReversalRequest.id.desc())
    )
    for name in ("village_id", "household_id", "entry_id"):
        if name in args:
            stmt = stmt.where(getattr(ReversalRequest, name) == args[name])
    return paginate(db.session, stmt, args["page"], args["per_page"])
