"""Schemas of the village registry (花名册): townships, villages, villager groups,
households and their members, the roster import, member cards and binding codes."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from points.models import GENDERS, RELATIONS

from ..openapi import JsonBoolean, PageArgs, QueryArgs
from .common import Id, LocalDateTime, Name, OptionalText


class TownshipIn(Schema):
    name = Name()
    code = OptionalText(40)


class TownshipPatch(Schema):
    name = Name(required=False)
    code = OptionalText(40)


class TownshipOut(Schema):
    id = fields.Integer()
    name = fields.String()
    code = fields.String(allow_none=True)
    created_at = LocalDateTime()


class VillageIn(Schema):
    name = Name()
    township_id = Id(required=True)
    code = OptionalText(40)


class VillagePatch(Schema):
    name = Name(required=False)
    code = OptionalText(40)


class VillageOut(Schema):
    id = fields.Integer()
    name = fields.String()
    township_id = Id()
    code = fields.String(allow_none=True)
    created_at = LocalDateTime()


class VillageListArgs(PageArgs):
    township_id = Id(strict=False)


class GroupIn(Schema):
    name = Name()


class GroupOut(Schema):
    id = fields.Integer()
    village_id = Id()
    name = fields.String()


class MemberIn(Schema):
    name = Name(max_len=50)
    relation = fields.String(
        required=True, validate=validate.OneOf(RELATIONS), metadata={"description": "与户主关系"}
    )
    phone = OptionalText(20)
    gender = fields.String(allow_none=True, validate=validate.OneOf(GENDERS))
    birth_year = fields.Integer(allow_none=True, validate=validate.Range(min=1900, max=2100))


class VillagerPatch(Schema):
    name = Name(required=False, max_len=50)
    relation = fields.String(validate=validate.OneOf(RELATIONS))
    phone = OptionalText(20)
    gender = fields.String(allow_none=True, validate=validate.OneOf(GENDERS))
    birth_year = fields.Integer(allow_none=True, validate=validate.Range(min=1900, max=2100))
    active = JsonBoolean()


class VillagerOut(Schema):
    id = fields.Integer()
    household_id = Id()
    village_id = Id()
    name = fields.String()
    relation = fields.String()
    phone = fields.String(
        allow_none=True,
        metadata={"description": "masked (138****5678) for all but the cadres of the village"},
    )
    gender = fields.String(allow_none=True)
    birth_year = fields.Integer(allow_none=True)
    active = fields.Boolean()
    bound = fields.Boolean(metadata={"description": "a WeChat user is bound to this villager"})
    card_number = fields.String(
        metadata={
            "description": "the number on the villager's valid member card (000123; 000123-2 "
            "after two reissues)"
        }
    )


class HouseholdIn(Schema):
    group_id = Id(allow_none=True)
    address = OptionalText(200)
    name = OptionalText(100)


class HouseholdPatch(HouseholdIn):
    public_board_opt_out = JsonBoolean(
        metadata={"description": "不上公开榜单: shown without a name on public boards"}
    )


class HeadOut(Schema):
    id = fields.Integer()
    name = fields.String()


class HouseholdOut(Schema):
    id = fields.Integer()
    village_id = Id()
    group_id = Id(allow_none=True)
    code = fields.String(
        allow_none=True,
        metadata={
            "description": "户编号 from the roster: what a re-imported roster and an "
            "opening-balance sheet name the household by (null: made without a roster; named "
            "by id)"
        },
    )
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
    fields_ = fields.List(
        fields.String(),
        data_key="fields",
        attribute="fields",
        metadata={"description": "the columns that changed (updated only)"},
    )


class RosterResult(Schema):
    households = fields.Integer(metadata={"description": "households created"})
    members = fields.Integer(metadata={"description": "members added"})
    groups = fields.Integer(metadata={"description": "villager groups created"})
    added = fields.List(
        fields.Nested(RosterMemberChange),
        metadata={"description": "members added to households already on the roster"},
    )
    updated = fields.List(
        fields.Nested(RosterMemberChange),
        metadata={"description": "members already on the roster whose row changed something"},
    )
    unchanged = fields.Integer(
        metadata={"description": "rows of members already on the roster that changed nothing"}
    )


class RosterArgs(Schema):
    create_groups = fields.Boolean(
        load_default=False,
        metadata={
            "description": "create the villager groups the file names that the village does not "
            "have (otherwise such a group is an error of its rows)"
        },
    )


class BindingTokenOut(Schema):
    token = fields.String()
    url = fields.String()
    expires_at = LocalDateTime()
    qr_png_base64 = fields.String(
        metadata={
            "description": "the code to print or show (90 × 120 mm at 200 dpi): the QR with the "
            "name, village and household of the villager it binds; draw `url` "
            "for a bare QR"
        }
    )


class CardsPrintArgs(QueryArgs):
    group_id = Id(strict=False, metadata={"description": "only this villager group's cards"})
    household_id = Id(strict=False, metadata={"description": "only this household's cards"})


class CardOut(Schema):
    villager_id = Id()
    card_number = fields.String(metadata={"description": "printed on the new card"})
    card_serial = fields.Integer(
        metadata={
            "description": "the card's version; cards of any earlier version are refused "
            "(409 card_revoked)"
        }
    )
    card_path = fields.String(
        metadata={"description": "where the new card's image is (GET, with the staff's login)"}
    )
