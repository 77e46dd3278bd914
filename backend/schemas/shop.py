"""Request and response schemas of the points supermarket (积分超市): its shops, rewards,
orders, the counter, the monthly settlement and the outstanding-points report. Request
schemas refuse unknown fields, as everywhere."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from points.models import REDEMPTION_SOURCES, REDEMPTION_STATUSES, STOCK_MOVEMENT_KINDS
from rules.catalog import EXCHANGE_RATE_PLACES

from ..openapi import Choice, JsonBoolean, PageArgs, QueryArgs
from ..reward_links import reward_image_url
from .common import Id, LocalDateTime, Money, MoneyText, Name, ScannedCode

MONTH = validate.Regexp(r"^\d{4}-(0[1-9]|1[0-2])$", error="月份格式为 YYYY-MM")
MAX_POINTS = 100_000
MAX_STOCK = 1_000_000


class ExchangeRateText(fields.Decimal):
    """Yuan per point as text: "0.5", "2", "0.0025" (rules/ allows at most 4 decimals)."""

    STEP = Decimal(1).scaleb(-EXCHANGE_RATE_PLACES)

    def __init__(self, description: str) -> None:
        super().__init__(
            as_string=True,
            metadata={
                "description": description,
                "type": "string",
                "format": "decimal",
                "pattern": f"^[0-9]+(\\.[0-9]{{1,{EXCHANGE_RATE_PLACES}}})?$",
            },
        )

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        # normalize(): 0.5000 as "0.5", 2.0000 as "2" (and 1000 as "1000": the text is
        # written without an exponent).
        return format(Decimal(value).quantize(self.STEP).normalize(), "f")


# ---- rewards and stock ----------------------------------------------------------------------


def _no_link(value: Any) -> None:
    if value is not None:
        raise ValidationError("商品图片请通过上传添加（POST /rewards/{id}/image）")


def _image_url() -> fields.String:
    # Pictures are uploaded, checked and re-encoded by the service (POST /rewards/{id}/image):
    # a link typed in was never checked (its host, its size, what it is), and the
    # mini-program shows pictures only from hosts it was set up for. Only null is taken,
    # to remove the picture.
    return fields.String(
        allow_none=True,
        validate=_no_link,
        metadata={
            "description": "only null, to remove the picture; upload one with "
            "POST /rewards/{id}/image",
            "enum": [None],
            "nullable": True,
        },
    )


class RewardIn(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    points = fields.Integer(
        required=True,
        validate=validate.Range(min=1, max=MAX_POINTS),
        metadata={"description": "price in points"},
    )
    stock = fields.Integer(
        load_default=0,
        validate=validate.Range(min=0, max=MAX_STOCK),
        metadata={"description": "on the shelf now (recorded as 上架)"},
    )
    image_url = _image_url()
    active = JsonBoolean(load_default=True)


class RewardPatch(Schema):
    """Stock is not here: it changes only through POST /rewards/{id}/stock, with a reason."""

    name = fields.String(validate=validate.Length(min=1, max=100))
    points = fields.Integer(validate=validate.Range(min=1, max=MAX_POINTS))
    image_url = _image_url()
    active = JsonBoolean()


class RewardOut(Schema):
    id = fields.Integer()
    shop_id = fields.Integer()
    name = fields.String()
    points = fields.Integer()
    stock = fields.Integer()
    image_url = fields.Method(
        "_image_url",
        metadata={
            "type": "string",
            "nullable": True,
            "description": "the picture: GET /rewards/{id}/image?v=… (no token needed, cached "
            "for good: a new picture has a new `v`), or a link typed in before "
            "pictures were uploaded",
        },
    )
    active = fields.Boolean()
    created_at = LocalDateTime()
    updated_at = LocalDateTime()

    def _image_url(self, reward: Any) -> str | None:
        return reward_image_url(reward)


class RewardListArgs(PageArgs):
    active = fields.Boolean(metadata={"description": "staff only; villagers see active ones"})


class StockChangeIn(Schema):
    kind = fields.String(
        required=True,
        validate=validate.OneOf(("restock", "correction")),
        metadata={
            "description": "restock: goods delivered (change > 0); "
            "correction: a count found a difference"
        },
    )
    change = fields.Integer(
        required=True,
        validate=validate.Range(min=-MAX_STOCK, max=MAX_STOCK),
        metadata={"description": "added (+) or taken off (−)"},
    )
    reason = fields.String(required=True, validate=validate.Length(min=1, max=200))


class StockMovementOut(Schema):
    id = fields.Integer()
    reward_id = fields.Integer()
    kind = Choice(STOCK_MOVEMENT_KINDS)
    change = fields.Integer()
    stock_after = fields.Integer()
    reason = fields.String()
    created_by = fields.Integer(allow_none=True)
    created_at = LocalDateTime()


# ---- redemptions ----------------------------------------------------------------------------


class RedemptionItemIn(Schema):
    reward_id = Id(required=True)
    quantity = fields.Integer(load_default=1, validate=validate.Range(min=1, max=99))


def _items() -> fields.List:
    return fields.List(
        fields.Nested(RedemptionItemIn), required=True, validate=validate.Length(min=1, max=30)
    )


class RedemptionOrderIn(Schema):
    shop_id = Id(required=True)
    items = _items()


class CounterRedemptionIn(Schema):
    member_token = ScannedCode("the villager's member card (积分卡)")
    items = _items()
    cash_paid = Money(
        allow_none=True,
        metadata={
            "description": "yuan paid in cash for part of the goods (现金补差), a multiple of the "
            "village's exchange rate; the rest is paid in points"
        },
    )


class PickupScanIn(Schema):
    pickup_token = ScannedCode("the pickup code the villager shows")


class PickupCodeIn(Schema):
    pickup_code = fields.String(
        required=True,
        validate=validate.Regexp(r"^[0-9]{6}$", error="取货号是 6 位数字"),
        metadata={"description": "the 6-digit pickup number the villager reads out"},
    )


class RedemptionCancelIn(Schema):
    reason = fields.String(allow_none=True, validate=validate.Length(max=200))


class MemberLookupIn(Schema):
    member_token = ScannedCode("the villager's member card (积分卡)")


class CardHolderOut(Schema):
    villager_name = fields.String(metadata={"description": "the card holder"})
    household_id = fields.Integer()
    household_name = fields.String(allow_none=True)
    available = fields.Integer(metadata={"description": "points the household may spend now"})
    qualifies = fields.Boolean(
        metadata={
            "description": "the household reaches the village's qualification line (合格线) and "
            "may redeem; false: counter redemption answers not_qualified"
        }
    )


class RedemptionLineOut(Schema):
    reward_id = fields.Integer()
    name = fields.String()
    unit_points = fields.Integer()
    quantity = fields.Integer()
    points = fields.Integer()


class RedemptionOut(Schema):
    id = fields.Integer()
    status = fields.String(validate=validate.OneOf(REDEMPTION_STATUSES))
    source = fields.String(
        validate=validate.OneOf(REDEMPTION_SOURCES),
        metadata={"description": "order (mini-program) or counter"},
    )
    shop_id = fields.Integer()
    shop_name = fields.String()
    village_id = fields.Integer()
    household_id = fields.Integer()
    household_name = fields.String(allow_none=True)
    member_id = fields.Integer(allow_none=True)
    member_name = fields.String(allow_none=True)
    total_points = fields.Integer(metadata={"description": "the goods at shelf prices"})
    cash_paid = MoneyText("cash paid for the difference (现金补差), yuan")
    points = fields.Integer(metadata={"description": "points spent (total less cash)"})
    exchange_rate = ExchangeRateText("yuan per point of the household's village when ordered")
    value = MoneyText("points × exchange rate, yuan")
    lines = fields.List(fields.Nested(RedemptionLineOut))
    created_at = LocalDateTime()
    expires_at = LocalDateTime(
        allow_none=True, metadata={"description": "pick up before this, or it expires"}
    )
    fulfilled_at = LocalDateTime(allow_none=True)
    fulfilled_by = fields.Integer(allow_none=True)
    voided_at = LocalDateTime(allow_none=True)
    void_reason = fields.String(allow_none=True)
    ledger_entry_id = fields.Integer(allow_none=True)
    pickup_token = fields.String(
        allow_none=True,
        metadata={"description": "shown to the household only, while reserved: the clerk scans it"},
    )
    pickup_url = fields.String(allow_none=True)
    pickup_code = fields.String(
        allow_none=True,
        metadata={
            "description": "取货号: 6 digits, shown to the household only, while reserved; the "
            "clerk may type it instead of scanning (POST /redemptions/pickup-code)",
            "pattern": "^[0-9]{6}$",
        },
    )
    pickup_image_url = fields.String(
        allow_none=True,
        metadata={
            "description": "the pickup QR as a signed link the mini-program's <image> opens "
            "without a token (valid SIGNED_URL_SECONDS; fetch the order again "
            "for a fresh one)"
        },
    )
    available_after = fields.Integer(
        allow_none=True,
        metadata={
            "description": "the household's spendable points after a scan or counter redemption "
            "(for the receipt)"
        },
    )


class RedemptionListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(REDEMPTION_STATUSES))
    shop_id = Id(strict=False)
    household_id = Id(strict=False)


# ---- settlement and the township report -----------------------------------------------------


class SettlementArgs(QueryArgs):
    month = fields.String(required=True, validate=MONTH)
    format = fields.String(load_default="json", validate=validate.OneOf(("json", "csv", "xlsx")))


class SettlementRowOut(Schema):
    redemption_id = fields.Integer()
    fulfilled_at = LocalDateTime()
    source = fields.String()
    village = fields.String()
    household = fields.String()
    member = fields.String()
    items = fields.String()
    total_points = fields.Integer()
    cash_paid = MoneyText("yuan")
    points = fields.Integer()
    exchange_rate = ExchangeRateText("yuan per point")
    value = MoneyText("yuan, rounded to the fen")


class SettlementLineOut(Schema):
    reward_id = fields.Integer()
    name = fields.String()
    unit_points = fields.Integer()
    quantity = fields.Integer()
    points = fields.Integer()


class SettlementOut(Schema):
    shop_id = fields.Integer()
    shop_name = fields.String()
    township_name = fields.String()
    month = fields.String()
    redemptions = fields.Integer(metadata={"description": "fulfilled redemptions"})
    goods_points = fields.Integer(metadata={"description": "the goods at shelf prices"})
    cash_paid = MoneyText("cash the shop collected itself (not reimbursed), yuan")
    points = fields.Integer(metadata={"description": "points redeemed"})
    value = MoneyText("what the township reimburses: the sum of the rows' values, yuan")
    lines = fields.List(fields.Nested(SettlementLineOut))
    rows = fields.List(fields.Nested(SettlementRowOut))


class PointsReportArgs(QueryArgs):
    month = fields.String(
        validate=MONTH,
        metadata={
            "description": "up to the end of this month (passbook months); omit for all time "
            "with today's balances"
        },
    )


class VillagePointsOut(Schema):
    village_id = fields.Integer()
    name = fields.String()
    accounts = fields.Integer()
    earned = fields.Integer()
    deducted = fields.Integer()
    adjusted = fields.Integer(metadata={"description": "reversals and adjustments"})
    issued = fields.Integer(metadata={"description": "earned + deducted + adjusted"})
    redeemed = fields.Integer()
    expired = fields.Integer()
    outstanding = fields.Integer(
        metadata={"description": "owed to households: issued − redeemed − expired"}
    )
    available = fields.Integer(allow_none=True)
    held = fields.Integer(allow_none=True)
    exchange_rate = ExchangeRateText("yuan per point")
    outstanding_value = MoneyText("the liability, yuan")
    month_issued = fields.Integer(allow_none=True)
    month_redeemed = fields.Integer(allow_none=True)
    month_expired = fields.Integer(allow_none=True)


class PointsTotalsOut(Schema):
    accounts = fields.Integer()
    earned = fields.Integer()
    deducted = fields.Integer()
    adjusted = fields.Integer()
    issued = fields.Integer()
    redeemed = fields.Integer()
    expired = fields.Integer()
    outstanding = fields.Integer()
    outstanding_value = MoneyText("yuan")
    available = fields.Integer(allow_none=True)
    held = fields.Integer(allow_none=True)
    month_issued = fields.Integer(allow_none=True)
    month_redeemed = fields.Integer(allow_none=True)
    month_expired = fields.Integer(allow_none=True)


class PointsReportOut(Schema):
    township_id = fields.Integer()
    township_name = fields.String()
    month = fields.String(allow_none=True)
    villages = fields.List(fields.Nested(VillagePointsOut))
    totals = fields.Nested(PointsTotalsOut)


class ShopIn(Schema):
    name = Name()
    township_id = Id(required=True)
    village_ids = fields.List(Id(), required=True, validate=validate.Length(min=1))


class RewardImageArgs(QueryArgs):
    v = fields.String(
        validate=validate.Length(max=32),
        metadata={"description": "the picture's version, as in the reward's `image_url`"},
    )


class ShopOut(Schema):
    id = fields.Integer()
    name = fields.String()
    township_id = Id()
    village_ids = fields.List(fields.Integer())
