"""Schemas of claims (申报), awards, review, the public notice (公示) and objections."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from points.claims import IN_NOTICE
from points.models import CLAIM_SOURCES, CLAIM_STATUSES, OBJECTION_STATUSES

from ..openapi import Choice, PageArgs
from .common import Id, LocalDateTime, OptionalText


class ClaimIn(Schema):
    rule_item_id = Id(required=True)
    units = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=1000))
    note = OptionalText(500)
    evidence = fields.List(
        Id(),
        load_default=list,
        validate=validate.Length(max=9),
        metadata={"description": "upload ids (POST /api/v1/uploads)"},
    )


class AwardTarget(Schema):
    class Meta:
        openapi = {
            "minProperties": 1,
            "maxProperties": 1,
            "description": "a villager or a household, one of the two",
        }

    villager_id = Id()
    household_id = Id()

    @validates_schema
    def _one_of(self, data: dict[str, Any], **_: Any) -> None:
        if len(data) != 1:
            raise ValidationError("每个对象填写 villager_id 或 household_id 之一", "_schema")


class AwardIn(ClaimIn):
    targets = fields.List(
        fields.Nested(AwardTarget), required=True, validate=validate.Length(min=1, max=200)
    )


class ResolveIn(Schema):
    outcome = fields.String(required=True, validate=validate.OneOf(("uphold", "overturn")))
    note = OptionalText(500)


class RuleItemRef(Schema):
    id = fields.Integer()
    version_id = fields.Integer()
    version = fields.Integer(allow_none=True)
    code = fields.String(allow_none=True)
    name = fields.String(allow_none=True)
    category = fields.String(allow_none=True)


class ObjectionOut(Schema):
    id = fields.Integer()
    claim_id = fields.Integer()
    reason = fields.String()
    status = Choice(OBJECTION_STATUSES)
    created_at = LocalDateTime()
    resolved_at = LocalDateTime(allow_none=True)
    resolution_note = fields.String(allow_none=True)


class VetoWithdrawalOut(Schema):
    """A posted veto (一票否决) the township withdrew: the wiped points given back, the bar
    lifted."""

    id = fields.Integer()
    claim_id = fields.Integer()
    reason = fields.String()
    restored = fields.Integer(metadata={"description": "spendable points given back"})
    vetoed_month = fields.String(
        metadata={
            "description": "the month the veto took effect: its deed's, where its bar started"
        }
    )
    month = fields.String(
        metadata={"description": "the month of the withdrawal, whose board notes it"}
    )
    withdrawn_by = fields.Integer()
    withdrawn_at = LocalDateTime()


class ClaimOut(Schema):
    # Dumped from points.claims.ClaimView: the claim's own columns are read from its claim.
    id = fields.Integer(attribute="claim.id")
    status = fields.String(attribute="claim.status", validate=validate.OneOf(CLAIM_STATUSES))
    village_id = Id(attribute="claim.village_id")
    household_id = Id(attribute="claim.household_id")
    household_name = fields.String(allow_none=True)
    member_id = fields.Integer(attribute="claim.member_id", allow_none=True)
    member_name = fields.String(allow_none=True)
    rule_item = fields.Nested(RuleItemRef)
    source = Choice(CLAIM_SOURCES, attribute="claim.source")
    units = fields.Integer(attribute="claim.units", allow_none=True)
    points = fields.Integer(attribute="claim.points")
    capped = fields.Boolean(attribute="claim.capped")
    reason = fields.String(
        attribute="claim.reason", metadata={"description": "how the rule engine decided the points"}
    )
    note = fields.String(attribute="claim.note", allow_none=True)
    evidence = fields.List(fields.Integer())
    approvals = fields.Integer()
    created_at = LocalDateTime(attribute="claim.created_at")
    notice_ends_at = LocalDateTime(attribute="claim.notice_ends_at", allow_none=True)
    decided_at = LocalDateTime(attribute="claim.decided_at", allow_none=True)
    posted_at = LocalDateTime(attribute="claim.posted_at", allow_none=True)
    reject_reason = fields.String(attribute="claim.reject_reason", allow_none=True)
    withdraw_reason = fields.String(
        attribute="claim.withdraw_reason",
        allow_none=True,
        metadata={
            "description": "why staff withdrew the claim (status withdrawn), shown to the household"
        },
    )
    withdrawn_at = LocalDateTime(attribute="claim.withdrawn_at", allow_none=True)
    objections = fields.List(fields.Nested(ObjectionOut))
    veto_withdrawal = fields.Nested(
        VetoWithdrawalOut,
        allow_none=True,
        metadata={"description": "a veto's withdrawal by the township, if it was withdrawn"},
    )


class ClaimListArgs(PageArgs):
    village_id = Id(strict=False)
    household_id = Id(strict=False)
    status = fields.String(validate=validate.OneOf(CLAIM_STATUSES))


class NoticeOut(Schema):
    """What the public notice (公示) shows: who, for what, how many points, until when, the
    note and photos, and the objections so far."""

    claim_id = fields.Integer()
    household_id = fields.Integer()
    household_name = fields.String(allow_none=True)
    member_name = fields.String(allow_none=True)
    rule_item = fields.String(allow_none=True)
    category = fields.String(allow_none=True)
    points = fields.Integer()
    status = Choice(
        IN_NOTICE,
        metadata={"description": "objected: under review after an objection, still listed"},
    )
    notice_ends_at = LocalDateTime()
    note = fields.String(allow_none=True)
    deed_date = fields.Date(
        metadata={"description": "the day of the deed (village time), which the points count for"}
    )
    evidence = fields.List(fields.Integer(), metadata={"description": "photo (upload) ids"})
    objection_count = fields.Integer()
    objected_by_me = fields.Boolean()
    can_object = fields.Boolean(
        metadata={
            "description": "the caller may object now: a villager of the village, not of the "
            "claim's household, who has not objected to it, while the notice runs"
        }
    )
