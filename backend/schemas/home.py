"""The villager's home screen (GET /me/home): one answer with what the screen shows."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from .common import LocalDateTime

ATTENTION_KINDS = ("objection", "rejected", "order_expiring")


class HomePointsOut(Schema):
    available = fields.Integer(required=True, metadata={"description": "spendable now"})
    held = fields.Integer(
        required=True, metadata={"description": "reserved by orders not yet picked up"}
    )
    in_notice = fields.Integer(
        required=True,
        metadata={
            "description": "points of the household's claims in public notice (公示, objected "
            "ones included): not counted yet"
        },
    )
    in_notice_count = fields.Integer(required=True)


class HomeMonthOut(Schema):
    period = fields.String(required=True, metadata={"description": "YYYY-MM, village time"})
    label = fields.String(required=True)
    points = fields.Integer(required=True, metadata={"description": "this month's score"})
    rank = fields.Integer(
        required=True,
        allow_none=True,
        metadata={
            "description": "place in the village (ties share it); null at 0 points or when a "
            "veto bars the household"
        },
    )
    households = fields.Integer(
        required=True,
        metadata={"description": "households ranked (those barred by a veto left out)"},
    )
    barred = fields.Boolean(required=True)


class HomeStarsOut(Schema):
    year = fields.String(required=True)
    points = fields.Integer(required=True, metadata={"description": "this year's score"})
    stars = fields.Integer(
        required=True, metadata={"description": "星级文明户, as the household plate shows it"}
    )
    levels = fields.List(fields.Integer(), required=True)


class HomeQualificationOut(Schema):
    line = fields.Integer(required=True, metadata={"description": "合格线; 0: none"})
    score = fields.Integer(
        required=True,
        metadata={"description": "the score of the last `months` months, this month included"},
    )
    gap = fields.Integer(required=True, metadata={"description": "points still missing"})
    qualified = fields.Boolean(
        required=True, metadata={"description": "may redeem in the points supermarket"}
    )
    months = fields.Integer(required=True)


class AttentionOut(Schema):
    kind = fields.String(
        required=True,
        validate=validate.OneOf(ATTENTION_KINDS),
        metadata={
            "description": "objection: a villager objected to one of the household's claims "
            "(open); rejected: a claim rejected in the last 30 days; "
            "order_expiring: an order to pick up within 24 hours"
        },
    )
    claim_id = fields.Integer(required=True, allow_none=True)
    objection_id = fields.Integer(required=True, allow_none=True)
    redemption_id = fields.Integer(required=True, allow_none=True)
    title = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "the claim's item, or the order's goods and shop"},
    )
    points = fields.Integer(required=True, allow_none=True)
    reason = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "the objection's or the rejection's reason"},
    )
    at = LocalDateTime(required=True)
    expires_at = LocalDateTime(required=True, allow_none=True)


class HomeOut(Schema):
    village_id = fields.Integer(required=True)
    village_name = fields.String(required=True)
    household_id = fields.Integer(required=True)
    household_name = fields.String(required=True, allow_none=True)
    villager_name = fields.String(required=True, allow_none=True)
    points = fields.Nested(HomePointsOut, required=True)
    month = fields.Nested(HomeMonthOut, required=True)
    stars = fields.Nested(HomeStarsOut, required=True)
    qualification = fields.Nested(HomeQualificationOut, required=True)
    attention = fields.List(fields.Nested(AttentionOut), required=True)
