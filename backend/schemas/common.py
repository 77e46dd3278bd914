"""What the schemas of every blueprint share: the field types of ids, names, money, moments
and scanned codes, and the bodies more than one blueprint takes."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from marshmallow import Schema, fields, validate

from points.time_zone import moment_text
from points.tokens import MAX_SCANNED_CHARS

from ..openapi import QueryArgs


def Id(*, strict: bool = True, **kwargs: Any) -> fields.Integer:  # noqa: N802 - a field type
    """A database id: a whole number the id columns can hold (PostgreSQL integer). Strict in
    JSON bodies (no "12" or 1.5); query strings are text, so their ids are parsed."""
    return fields.Integer(strict=strict, validate=validate.Range(min=1, max=2**31 - 1), **kwargs)


def Name(required: bool = True, max_len: int = 100) -> fields.String:  # noqa: N802
    """A name a request gives something (a township, a village, a villager): not empty."""
    return fields.String(required=required, validate=validate.Length(min=1, max=max_len))


def OptionalText(max_len: int) -> fields.String:  # noqa: N802 - a field type
    """Text a request may leave out or send as null (a code, a phone, an address, a note)."""
    return fields.String(allow_none=True, validate=validate.Length(max=max_len))


def ScannedCode(what: str, *, required: bool = True) -> fields.String:  # noqa: N802
    """A QR code as a scanner hands it over; `points.tokens.scanned_token` reads the token."""
    return fields.String(
        required=required,
        validate=validate.Length(min=1, max=MAX_SCANNED_CHARS),
        metadata={
            "description": f"{what}, as scanned: the code's whole URL "
            "({PUBLIC_BASE_URL}/q/{token}, also with a trailing slash, a ?query or "
            "#fragment, percent-encoded, or surrounded by spaces or a newline) or the "
            "token alone"
        },
    )


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
        if not (
            amount.is_finite()
            and 0 <= amount <= self.MAXIMUM
            and amount == amount.quantize(self.CENT)
        ):
            raise self.make_error("invalid")
        return amount.quantize(self.CENT)

    def openapi(self) -> dict[str, Any]:
        return {
            "anyOf": [
                {"type": "string", "pattern": self.TEXT},
                {
                    "type": "number",
                    "minimum": 0,
                    "maximum": float(self.MAXIMUM),
                    "multipleOf": float(self.CENT),
                },
            ]
        }


def MoneyText(description: str) -> fields.Decimal:  # noqa: N802 - a field type
    """An amount of yuan a response sends: always text with two decimals ("12.50"), so no
    float rounds a sum of money and no decimal's exponent is spelt out. Every amount of
    money an answer carries uses it (`Money` is the request side)."""
    return fields.Decimal(
        places=2,
        as_string=True,
        metadata={
            "description": description,
            "type": "string",
            "format": "decimal",
            "pattern": r"^-?[0-9]+\.[0-9]{2}$",
        },
    )


class Moment(fields.AwareDateTime):
    """A moment a request sends, with its offset (2026-11-29T19:40:00+08:00), in the years
    2000 to 2100 as written; loaded in UTC. ISO 8601 allows years 1 to 9999, and a moment
    near either end cannot be converted to UTC or the village's zone, or have a day added,
    without overflowing (a 500); nothing the villages schedule or look up lies outside."""

    EARLIEST, LATEST = 2000, 2100
    # RFC 3339 (the document's date-time) with the years spelt out: a whole pattern, so a
    # client generating from the document draws valid moments, not a year and noise.
    PATTERN = (
        r"^(20[0-9]{2}|2100)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
        r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?"
        r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
    )
    default_error_messages = {
        "invalid": "应为时间，如 2026-11-29T19:40:00+08:00",
        "invalid_awareness": "时间需带时区，如 2026-11-29T19:40:00+08:00",
        "out_of_range": "时间应在 2000 年至 2100 年之间",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
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
        return {
            "type": "string",
            "format": "date-time",
            "pattern": self.PATTERN,
            "example": "2026-11-29T19:40:00+08:00",
        }


class Snapshot(fields.Dict):
    """A recorded object (an audit entry's before and after): its moments, stored in UTC as
    they were recorded, are answered like every other moment of the API (LocalDateTime)."""

    STORED_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)$")

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


class ReasonIn(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))


class SignedLinkOut(Schema):
    url = fields.String(
        metadata={
            "description": "absolute link that works without Authorization until `expires_at`"
        }
    )
    expires_at = fields.DateTime(metadata={"description": "when the link stops working (UTC)"})


class SignatureArgs(QueryArgs):
    """A signed link's query, instead of a bearer token (403 `link_expired` or
    `link_invalid`)."""

    exp = fields.String(
        validate=validate.Length(max=20),
        metadata={"description": "a signed link's expiry (Unix seconds)"},
    )
    sig = fields.String(
        validate=validate.Length(max=100), metadata={"description": "a signed link's signature"}
    )
