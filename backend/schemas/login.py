"""Schemas of logging in (WeChat and password), tokens, binding a villager and /me."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from points.models import ROLES

from ..openapi import Choice
from .common import Id, ScannedCode
from .registry import HouseholdOut, VillagerOut
from .users import UserOut


class WeChatLoginIn(Schema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=256))


class LoginIn(Schema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=64))
    password = fields.String(required=True, load_only=True, validate=validate.Length(max=128))


class RefreshIn(Schema):
    refresh_token = fields.String(required=True, validate=validate.Length(min=1, max=2048))


class BindIn(Schema):
    token = ScannedCode("the cadre's binding code (绑定二维码)", required=False)
    village_id = Id(
        metadata={
            "description": "optional: without it, name and phone are matched across the county"
        }
    )
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
    must_change_password = fields.Boolean(
        metadata={
            "description": "staff whose password an admin chose: ask for a new one and send it "
            "to POST /auth/password before anything else"
        }
    )


class PasswordChangeIn(Schema):
    current_password = fields.String(
        required=True, load_only=True, validate=validate.Length(max=128)
    )
    new_password = fields.String(
        required=True,
        load_only=True,
        validate=validate.Length(max=128),
        metadata={"description": "at least 8 characters, not the current one"},
    )


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
