"""Schemas of staff accounts and the audit log."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from points.models import ROLES, STAFF_ROLES

from ..openapi import JsonBoolean, PageArgs
from .common import Id, LocalDateTime, Moment, OptionalText, Snapshot


class UserIn(Schema):
    username = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^[A-Za-z0-9_.-]{3,64}$", error="用户名为 3-64 位字母、数字、点、下划线或短横线"
        ),
    )
    password = fields.String(required=True, load_only=True, validate=validate.Length(max=128))
    role = fields.String(required=True, validate=validate.OneOf(STAFF_ROLES))
    name = OptionalText(50)
    township_id = Id(allow_none=True)
    village_id = Id(allow_none=True)
    shop_id = Id(allow_none=True)
    villager_id = Id(
        allow_none=True,
        metadata={
            "description": "the holder's own entry on the roster, within the account's scope: "
            "they may not decide their own household's points"
        },
    )


class UserPatch(Schema):
    disabled = JsonBoolean()
    password = fields.String(load_only=True, validate=validate.Length(max=128))
    name = OptionalText(50)
    villager_id = Id(
        allow_none=True,
        metadata={
            "description": "link a staff account to its holder's roster entry (null: unlink); "
            "they may then not award, approve, withdraw, resolve objections or "
            "reverse entries for their own household"
        },
    )


class UserOut(Schema):
    id = fields.Integer()
    username = fields.String(allow_none=True)
    role = fields.String(validate=validate.OneOf(ROLES))
    name = fields.String(allow_none=True)
    township_id = Id(allow_none=True)
    village_id = Id(allow_none=True)
    shop_id = Id(allow_none=True)
    villager_id = Id(
        allow_none=True,
        metadata={"description": "a villager user: the roster entry bound; staff: their own entry"},
    )
    villager_name = fields.Function(
        lambda user: user.villager.name if user.villager is not None else None,
        allow_none=True,
        metadata={"type": "string"},
    )
    disabled = fields.Boolean()
    must_change_password = fields.Boolean(
        metadata={
            "description": "an admin chose this password (created the account or reset it): "
            "the holder must set their own (POST /auth/password); the console opens no other "
            "page until they do"
        }
    )
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
