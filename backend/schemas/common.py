"""Request and response schemas (API.md, Resource shapes). Request schemas refuse unknown
fields (marshmallow's default RAISE), which the error handler reports as `unknown_fields`."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from points.claims import IN_NOTICE
from points.models import (
    CLAIM_SOURCES,
    CLAIM_STATUSES,
    ENTRY_KINDS,
    GENDERS,
    OBJECTION_STATUSES,
    RELATIONS,
    REVERSAL_REQUEST_STATUSES,
    ROLES,
    STAFF_ROLES,
)
from points.time_zone import moment_text
from points.tokens import MAX_SCANNED_CHARS

from ..openapi import Choice, JsonBoolean, PageArgs, QueryArgs


def Id(*, strict: bool = True, **kwargs: Any) -> fields.Integer:  # noqa: N802 - a field type
    """A database id: a whole number the id columns can hold (PostgreSQL integer). Strict in
    JSON bodies (no "12" or 1.5); query strings are text, so their ids are parsed."""
    return fields.Integer(strict=strict, validate=validate.Range(min=1, max=2**31 - 1),
                          **kwargs)


def _name(required: bool = True, max_len: int = 100) -> fields.String:
    return fields.String(required=required, validate=validate.Length(min=1, max=max_len))


def _optional(max_len: int) -> fields.String:
    return fields.String(allow_none=True, validate=validate.Length(max=max_len))


def ScannedCode(what: str, *, required: bool = True) -> fields.String:  # noqa: N802
    """A QR code as a scanner hands it over; `points.tokens.scanned_token` reads the token."""
    return fields.String(
        required=required, validate=validate.Length(min=1, max=MAX_SCANNED_CHARS),
        metadata={"description": f"{what}, as scanned: the code's whole URL "
                  "({PUBLIC_BASE_URL}/q/{token}, also with a trailing slash, a ?query or "
                  "#fragment, percent-encoded, or surrounded by spaces or a newline) or the "
                  "token alone"})


class Money(fields.Decimal):
    """An amount of yuan (元) a request sends: 0 to 999,999.99 with at most two decimals (分),
    as text ("12.50", what responses send) or as a JSON number (12.5). Bounded here, before
    anything computes with it: an unbounded decimal ("1e308") overflows the arithmetic of
    money (quantizing it to the fen raises) and would answer 500. Loaded to the fen."""

    MAXIMUM = Decimal("999999.99")
    CENT = Decimal("0.01")
    TEXT = r"^(0|[1-9][0-9]{0,5})(\.[0-9]{1,2})?$"  # the same range, spelled
    default_error_messages = {
        "invalid": '应为金额（元）：0 到 999999.99，最多两位小数，如 "12.50"',
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(places=2, as_string=True, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Decimal:
        if isinstance(value, str):
            if not re.fullmatch(self.TEXT, value):
                raise self.make_error("invalid")
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid")
        # str() of a float is its shortest spelling: 12.5, not 12.4999…; 1e+308 for 1e308.
        amount = Decimal(str(value))
        if not (amount.is_finite() and 0 <= amount <= self.MAXIMUM
                and amount == amount.quantize(self.CENT)):
            raise self.make_error("invalid")
        return amount.quantize(self.CENT)

    def openapi(self) -> dict[str, Any]:
        return {"anyOf": [
            {"type": "string", "pattern": self.TEXT},
            {"type": "number", "minimum": 0, "maximum": float(self.MAXIMUM),
             "multipleOf": float(self.CENT)},
        ]}


def MoneyText(description: str) -> fields.Decimal:  # noqa: N802 - a field type
    """An amount of yuan a response sends: always text with two decimals ("12.50"), so no
    float rounds a sum of money and no decimal's exponent is spelt out. Every amount of
    money an answer carries uses it (`Money` is the request side)."""
    return fields.Decimal(places=2, as_string=True, metadata={
        "description": description, "type": "string", "format": "decimal",
        "pattern": r"^-?[0-9]+\.[0-9]{2}$"})


class Moment(fields.AwareDateTime):
    """A moment a request sends, with its offset (2026-11-29T19:40:00+08:00), in the years
    2000 to 2100 as written; loaded in UTC. ISO 8601 allows years 1 to 9999, and a moment
    near either end cannot be converted to UTC or the village's zone, or have a day added,
    without overflowing (a 500); nothing the villages schedule or look up lies outside."""

    EARLIEST, LATEST = 2000, 2100
    # RFC 3339 (the document's date-time) with the years spelt out: a whole pattern, so a
    # client generating from the document draws valid moments, not a year and noise.
    PATTERN = (r"^(20[0-9]{2}|2100)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
               r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?"
               r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$")
    default_error_messages = {
        "invalid": "应为时间，如 2026-11-29T19:40:00+08:00",
        "invalid_awareness": "时间需带时区，如 2026-11-29T19:40:00+08:00",
        "out_of_range": "时间应在 2000 年至 2100 年之间",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any
                     ) -> datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        if not self.EARLIEST <= moment.year <= self.LATEST:
            raise self.make_error("out_of_range")
        return moment.astimezone(UTC)

    def openapi(self) -> dict[str, Any]:
        return {"type": "string", "format": "date-time", "pattern": self.PATTERN}


class LocalDateTime(fields.DateTime):
    """ISO 8601 with the village's offset (APP_TIMEZONE), to the second, e.g.
    2026-11-29T19:40:00+08:00: every moment a response carries (points.time_zone)."""

    PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[+-][0-9]{2}:[0-9]{2}$"

    def _serialize(self, value: datetime | None, attr: Any, obj: Any, **kwargs: Any) -> Any:
        if value is None:
            return None
        return moment_text(value, ZoneInfo(current_app.config["APP_TIMEZONE"]))

    def openapi(self) -> dict[str, Any]:
        return {"type": "string", "format": "date-time", "pattern": self.PATTERN,
                "example": "2026-11-29T19:40:00+08:00"}


class Snapshot(fields.Dict):
    """A recorded object (an audit entry's before and after): its moments, stored in UTC as
    they were recorded, are answered like every other moment of the API (LocalDateTime)."""

    STORED_MOMENT = re.compile(
        r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)$")

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:
        if value is None:
            return None
        return self._local(value, ZoneInfo(current_app.config["APP_TIMEZONE"]))

    def _local(self, value: Any, zone: ZoneInfo) -> Any:
        if isinstance(value, dict):
            return {key: self._local(item, zone) for key, item in value.items()}
        if isinstance(value, list):
            return [self._local(item, zone) for item in value]
        if isinstance(value, str) and self.STORED_MOMENT.match(value):
            return moment_text(datetime.fromisoformat(value), zone)
        return value


# ---- registry -------------------------------------------------------------------------------

class TownshipIn(Schema):
    name = _name()
    code = _optional(40)


class TownshipOut(Schema):
    id = fields.Integer()
    name = fields.String()
    code = fields.String(allow_none=True)
    created_at = LocalDateTime()


class VillageIn(Schema):
    name = _name()
    township_id = Id(required=True)
    code = _optional(40)


class VillagePatch(Schema):
    name = _name(required=False)
    code = _optional(40)


class VillageOut(Schema):
    id = fields.Integer()
    name = fields.String()
    township_id = Id()
    code = fields.String(allow_none=True)
    created_at = LocalDateTime()


class VillageListArgs(PageArgs):
    township_id = Id(strict=False)


class GroupIn(Schema):
    name = _name()


class GroupOut(Schema):
    id = fields.Integer()
    village_id = Id()
    name = fields.String()


class MemberIn(Schema):
    name = _name(max_len=50)
    relation = fields.String(required=True, validate=validate.OneOf(RELATIONS),
                             metadata={"description": "与户主关系"})
    phone = _optional(20)
    gender = fields.String(allow_none=True, validate=validate.OneOf(GENDERS))
    birth_year = fields.Integer(allow_none=True, validate=validate.Range(min=1900, max=2100))


class VillagerPatch(Schema):
    name = _name(required=False, max_len=50)
    relation = fields.String(validate=validate.OneOf(RELATIONS))
    phone = _optional(20)
    gender = fields.String(allow_none=True, validate=validate.OneOf(GENDERS))
    birth_year = fields.Integer(allow_none=True, validate=validate.Range(min=1900, max=2100))
    active = JsonBoolean()


class VillagerOut(Schema):
    id = fields.Integer()
    household_id = Id()
    village_id = Id()
    name = fields.String()
    relation = fields.String()
    phone = fields.String(allow_none=True, metadata={
        "description": "masked (138****5678) for all but the cadres of the village"})
    gender = fields.String(allow_none=True)
    birth_year = fields.Integer(allow_none=True)
    active = fields.Boolean()
    bound = fields.Boolean(metadata={"description": "a WeChat user is bound to this villager"})
    card_number = fields.String(metadata={
        "description": "the number on the villager's valid member card (000123; 000123-2 "
                       "after two reissues)"})


class HouseholdIn(Schema):
    group_id = Id(allow_none=True)
    address = _optional(200)
    name = _optional(100)


class HouseholdPatch(HouseholdIn):
    public_board_opt_out = JsonBoolean(metadata={
        "description": "不上公开榜单: shown without a name on public boards"})


class HeadOut(Schema):
    id = fields.Integer()
    name = fields.String()


class HouseholdOut(Schema):
    id = fields.Integer()
    village_id = Id()
    group_id = Id(allow_none=True)
    code = fields.String(allow_none=True, metadata={
        "description": "户编号 from the roster: what a re-imported roster and an opening-balance "
                       "sheet name the household by (null: made without a roster; named by id)"})
    name = fields.String(allow_none=True)
    address = fields.String(allow_none=True)
    head = fields.Nested(HeadOut, allow_none=True)
    members = fields.List(fields.Nested(VillagerOut))
    public_board_opt_out = fields.Boolean(metadata={"description": "不上公开榜单"})
    created_at = LocalDateTime()


class RosterRowError(Schema):
    row = fields.Integer()
    field = fields.String(allow_none=True)
    message = fields.String()


class RosterMemberChange(Schema):
    row = fields.Integer(metadata={"description": "the row in the file"})
    household = fields.String(metadata={"description": "户编号"})
    name = fields.String()
    fields_ = fields.List(fields.String(), data_key="fields", attribute="fields", metadata={
        "description": "the columns that changed (updated only)"})


class RosterResult(Schema):
    households = fields.Integer(metadata={"description": "households created"})
    members = fields.Integer(metadata={"description": "members added"})
    groups = fields.Integer(metadata={"description": "villager groups created"})
    added = fields.List(fields.Nested(RosterMemberChange), metadata={
        "description": "members added to households already on the roster"})
    updated = fields.List(fields.Nested(RosterMemberChange), metadata={
        "description": "members already on the roster whose row changed something"})
    unchanged = fields.Integer(metadata={
        "description": "rows of members already on the roster that changed nothing"})


class OpeningBalancesResult(Schema):
    households = fields.Integer(metadata={"description": "households given an opening balance"})
    points = fields.Integer(metadata={"description": "the points of all of them"})


class RosterArgs(Schema):
    create_groups = fields.Boolean(load_default=False, metadata={
        "description": "create the villager groups the file names that the village does not "
                       "have (otherwise such a group is an error of its rows)"})


class BindingTokenOut(Schema):
    token = fields.String()
    url = fields.String()
    expires_at = LocalDateTime()
    qr_png_base64 = fields.String(metadata={
        "description": "the code to print or show (90 × 120 mm at 200 dpi): the QR with the "
                       "name, village and household of the villager it binds; draw `url` "
                       "for a bare QR"})


class CardsPrintArgs(QueryArgs):
    group_id = Id(strict=False, metadata={"description": "only this villager group's cards"})
    household_id = Id(strict=False, metadata={"description": "only this household's cards"})


class CardOut(Schema):
    villager_id = Id()
    card_number = fields.String(metadata={"description": "printed on the new card"})
    card_serial = fields.Integer(metadata={
        "description": "the card's version; cards of any earlier version are refused "
                       "(409 card_revoked)"})
    card_path = fields.String(metadata={
        "description": "where the new card's image is (GET, with the staff's login)"})


class ShopIn(Schema):
    name = _name()
    township_id = Id(required=True)
    village_ids = fields.List(Id(), required=True,
                              validate=validate.Length(min=1))


class ShopOut(Schema):
    id = fields.Integer()
    name = fields.String()
    township_id = Id()
    village_ids = fields.List(fields.Integer())


# ---- users, audit ---------------------------------------------------------------------------

class UserIn(Schema):
    username = fields.String(required=True, validate=validate.Regexp(
        r"^[A-Za-z0-9_.-]{3,64}$", error="用户名为 3-64 位字母、数字、点、下划线或短横线"))
    password = fields.String(required=True, load_only=True, validate=validate.Length(max=128))
    role = fields.String(required=True, validate=validate.OneOf(STAFF_ROLES))
    name = _optional(50)
    township_id = Id(allow_none=True)
    village_id = Id(allow_none=True)
    shop_id = Id(allow_none=True)
    villager_id = Id(allow_none=True, metadata={
        "description": "the holder's own entry on the roster, within the account's scope: "
                       "they may not decide their own household's points"})


class UserPatch(Schema):
    disabled = JsonBoolean()
    password = fields.String(load_only=True, validate=validate.Length(max=128))
    name = _optional(50)
    villager_id = Id(allow_none=True, metadata={
        "description": "link a staff account to its holder's roster entry (null: unlink); "
                       "they may then not award, approve, withdraw, resolve objections or "
                       "reverse entries for their own household"})


class UserOut(Schema):
    id = fields.Integer()
    username = fields.String(allow_none=True)
    role = fields.String(validate=validate.OneOf(ROLES))
    name = fields.String(allow_none=True)
    township_id = Id(allow_none=True)
    village_id = Id(allow_none=True)
    shop_id = Id(allow_none=True)
    villager_id = Id(allow_none=True, metadata={
        "description": "a villager user: the roster entry bound; staff: their own entry"})
    villager_name = fields.Function(
        lambda user: user.villager.name if user.villager is not None else None,
        allow_none=True, metadata={"type": "string"})
    disabled = fields.Boolean()
    created_at = LocalDateTime()


class UserListArgs(PageArgs):
    role = fields.String(validate=validate.OneOf(ROLES))


class AuditArgs(PageArgs):
    village_id = Id(strict=False)
    actor = Id(strict=False, metadata={"description": "user id of the staff member"})
    since = Moment()


class AuditOut(Schema):
    id = fields.Integer()
    at = LocalDateTime()
    actor_id = fields.Integer(allow_none=True)
    action = fields.String()
    object_type = fields.String()
    object_id = fields.String(allow_none=True)
    township_id = Id(allow_none=True)
    village_id = Id(allow_none=True)
    before = Snapshot(allow_none=True)
    after = Snapshot(allow_none=True)


# ---- auth -----------------------------------------------------------------------------------

class WeChatLoginIn(Schema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=256))


class LoginIn(Schema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=64))
    password = fields.String(required=True, load_only=True, validate=validate.Length(max=128))


class RefreshIn(Schema):
    refresh_token = fields.String(required=True, validate=validate.Length(min=1, max=2048))


class BindIn(Schema):
    token = ScannedCode("the cadre's binding code (绑定二维码)", required=False)
    village_id = Id(metadata={"description": "optional: without it, name and phone are "
                                             "matched across the county"})
    name = fields.String(validate=validate.Length(min=1, max=50))
    phone = fields.String(validate=validate.Length(min=1, max=20))

    @validates_schema
    def _one_way(self, data: dict[str, Any], **_: Any) -> None:
        by_roster = {"village_id", "name", "phone"}
        if "token" in data and data.keys() & by_roster:
            raise ValidationError("只能用绑定二维码，或姓名和手机号中的一种方式绑定", "_schema")
        if "token" not in data and not {"name", "phone"} <= data.keys():
            raise ValidationError("请提供绑定二维码，或姓名和手机号", "_schema")


class TokensOut(Schema):
    access_token = fields.String()
    refresh_token = fields.String()
    token_type = fields.String(dump_default="Bearer")
    expires_in = fields.Integer(metadata={"description": "seconds the access token lives"})
    user = fields.Nested(UserOut)
    bound = fields.Boolean(metadata={"description": "bound to a villager on the roster"})


class ScopeOut(Schema):
    township_id = Id(allow_none=True)
    village_id = Id(allow_none=True)
    shop_id = Id(allow_none=True)
    household_id = Id(allow_none=True)


class MeOut(Schema):
    user = fields.Nested(UserOut)
    role = Choice(ROLES)
    villager = fields.Nested(VillagerOut, allow_none=True)
    household = fields.Nested(HouseholdOut, allow_none=True)
    scope = fields.Nested(ScopeOut)


# ---- claims, notice, objections -------------------------------------------------------------

class ClaimIn(Schema):
    rule_item_id = Id(required=True)
    units = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=1000))
    note = _optional(500)
    evidence = fields.List(Id(), load_default=list, validate=validate.Length(max=9),
                           metadata={"description": "upload ids (POST /api/v1/uploads)"})


class AwardTarget(Schema):
    class Meta:
        openapi = {"minProperties": 1, "maxProperties": 1,
                   "description": "a villager or a household, one of the two"}

    villager_id = Id()
    household_id = Id()

    @validates_schema
    def _one_of(self, data: dict[str, Any], **_: Any) -> None:
        if len(data) != 1:
            raise ValidationError("每个对象填写 villager_id 或 household_id 之一", "_schema")


class AwardIn(ClaimIn):
    targets = fields.List(fields.Nested(AwardTarget), required=True,
                          validate=validate.Length(min=1, max=200))


class ReasonIn(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))


class ResolveIn(Schema):
    outcome = fields.String(required=True, validate=validate.OneOf(("uphold", "overturn")))
    note = _optional(500)


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
    vetoed_month = fields.String(metadata={
        "description": "the month the veto took effect: its deed's, where its bar started"})
    month = fields.String(metadata={"description": "the month of the withdrawal, whose board "
                                                   "notes it"})
    withdrawn_by = fields.Integer()
    withdrawn_at = LocalDateTime()


class ClaimOut(Schema):
    id = fields.Integer()
    status = fields.String(validate=validate.OneOf(CLAIM_STATUSES))
    village_id = Id()
    household_id = Id()
    household_name = fields.String(allow_none=True)
    member_id = fields.Integer(allow_none=True)
    member_name = fields.String(allow_none=True)
    rule_item = fields.Nested(RuleItemRef)
    source = Choice(CLAIM_SOURCES)
    units = fields.Integer(allow_none=True)
    points = fields.Integer()
    capped = fields.Boolean()
    reason = fields.String(metadata={"description": "how the rule engine decided the points"})
    note = fields.String(allow_none=True)
    evidence = fields.List(fields.Integer())
    approvals = fields.Integer()
    created_at = LocalDateTime()
    notice_ends_at = LocalDateTime(allow_none=True)
    decided_at = LocalDateTime(allow_none=True)
    posted_at = LocalDateTime(allow_none=True)
    reject_reason = fields.String(allow_none=True)
    withdraw_reason = fields.String(allow_none=True, metadata={
        "description": "why staff withdrew the claim (status withdrawn), shown to the household"})
    withdrawn_at = LocalDateTime(allow_none=True)
    objections = fields.List(fields.Nested(ObjectionOut))
    veto_withdrawal = fields.Nested(VetoWithdrawalOut, allow_none=True, metadata={
        "description": "a veto's withdrawal by the township, if it was withdrawn"})


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
    status = Choice(IN_NOTICE, metadata={"description": "objected: under review after an "
                                                        "objection, still listed"})
    notice_ends_at = LocalDateTime()
    note = fields.String(allow_none=True)
    deed_date = fields.Date(metadata={
        "description": "the day of the deed (village time), which the points count for"})
    evidence = fields.List(fields.Integer(), metadata={"description": "photo (upload) ids"})
    objection_count = fields.Integer()
    objected_by_me = fields.Boolean()
    can_object = fields.Boolean(metadata={
        "description": "the caller may object now: a villager of the village, not of the "
                       "claim's household, who has not objected to it, while the notice runs"})


# ---- accounts and the passbook (积分存折) ----------------------------------------------------

class AccountOut(Schema):
    household_id = Id()
    available = fields.Integer(metadata={"description": "spendable now"})
    held = fields.Integer(metadata={"description": "reserved by orders not yet picked up"})
    earned_total = fields.Integer(metadata={"description": "lifetime score"})
    this_month = fields.Integer(metadata={"description": "score this month"})


class LedgerArgs(PageArgs):
    month = fields.String(validate=validate.Regexp(r"^\d{4}-(0[1-9]|1[0-2])$",
                                                   error="月份格式为 YYYY-MM"))


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
    created_by_name = fields.String(allow_none=True, metadata={
        "description": "who posted the entry: the cadre who awarded or corrected it, the "
                       "villager who reported it, the clerk of a redemption"})
    approved_by_names = fields.List(fields.String(), metadata={
        "description": "who approved the claim that made the entry (审核人), in order; "
                       "empty for entries without a claim"})
    deed_date = fields.Date(allow_none=True, metadata={
        "description": "the day of the deed (village time) for an entry a claim made; "
                       "`created_at` is when it was posted"})
    balance = fields.Integer(metadata={
        "description": "余额: the account's points after this entry, the running sum of the "
                       "passbook (a hold by an order not yet picked up is not a line: it "
                       "shows when the order is picked up, as a redeem line)"})
    note = fields.String(allow_none=True)


class ReversalRequestArgs(PageArgs):
    status = fields.String(load_default="pending_confirmation",
                           validate=validate.OneOf(REVERSAL_REQUEST_STATUSES))
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
