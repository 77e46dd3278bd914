"""Schemas of accounts and the passbook (积分存折): entries, opening balances and
reversals (冲正)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from points.models import ENTRY_KINDS, REVERSAL_REQUEST_STATUSES

from ..openapi import Choice, PageArgs
from .common import Id, LocalDateTime


class AccountOut(Schema):
    household_id = Id()
    available = fields.Integer(metadata={"description": "spendable now"})
    held = fields.Integer(metadata={"description": "reserved by orders not yet picked up"})
    earned_total = fields.Integer(metadata={"description": "lifetime score"})
    this_month = fields.Integer(metadata={"description": "score this month"})


class LedgerArgs(PageArgs):
    month = fields.String(
        validate=validate.Regexp(r"^\d{4}-(0[1-9]|1[0-2])$", error="月份格式为 YYYY-MM")
    )


class LedgerEntryOut(Schema):
    id = fields.Integer()
    amount = fields.Integer()
    kind = Choice(ENTRY_KINDS)
    member_id = fields.Integer(allow_none=True)
    member_name = fields.String(allow_none=True)
    relation = fields.String(allow_none=True, metadata={"description": "与户主关系"})
    rule_item_id = Id(allow_none=True)
    rule_item_version_id = fields.Integer(allow_none=True)
    rule_item_name = fields.String(allow_none=True)
    claim_id = fields.Integer(allow_none=True)
    reverses_id = fields.Integer(allow_none=True)
    month = fields.String()
    created_at = LocalDateTime()
    created_by = fields.Integer(allow_none=True)
    created_by_name = fields.String(
        allow_none=True,
        metadata={
            "description": "who posted the entry: the cadre who awarded or corrected it, the "
            "villager who reported it, the clerk of a redemption"
        },
    )
    approved_by_names = fields.List(
        fields.String(),
        metadata={
            "description": "who approved the claim that made the entry (审核人), in order; "
            "empty for entries without a claim"
        },
    )
    deed_date = fields.Date(
        allow_none=True,
        metadata={
            "description": "the day of the deed (village time) for an entry a claim made; "
            "`created_at` is when it was posted"
        },
    )
    balance = fields.Integer(
        metadata={
            "description": "余额: the account's points after this entry, the running sum of the "
            "passbook (a hold by an order not yet picked up is not a line: it "
            "shows when the order is picked up, as a redeem line)"
        }
    )
    note = fields.String(allow_none=True)


class OpeningBalancesResult(Schema):
    households = fields.Integer(metadata={"description": "households given an opening balance"})
    points = fields.Integer(metadata={"description": "the points of all of them"})


class ReversalRequestArgs(PageArgs):
    status = fields.String(
        load_default="pending_confirmation", validate=validate.OneOf(REVERSAL_REQUEST_STATUSES)
    )
    village_id = Id(strict=False)
    household_id = Id(strict=False)
    entry_id = Id(strict=False)


class ReversalRequestOut(Schema):
    """A reversal (冲正) at or above the two-cadre threshold asked for by one reviewer:
    `pending_confirmation` until a second, different cadre (or a township or county admin)
    makes the same call, `confirmed` once the reversing entry (`reversal_id`) is posted."""

    id = fields.Integer()
    status = fields.String(validate=validate.OneOf(REVERSAL_REQUEST_STATUSES))
    entry_id = fields.Integer()
    village_id = fields.Integer()
    household_id = fields.Integer()
    amount = fields.Integer(metadata={"description": "the amount of the entry to reverse"})
    reason = fields.String()
    requested_by = fields.Integer()
    requested_at = LocalDateTime()
    confirmed_by = fields.Integer(allow_none=True)
    confirmed_at = LocalDateTime(allow_none=True)
    confirm_note = fields.String(allow_none=True)
    reversal_id = fields.Integer(allow_none=True)
