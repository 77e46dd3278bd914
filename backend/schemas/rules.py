"""Schemas of the rules endpoints: catalogs, policies, rule items and the dry run.

They check the JSON shape (types, unknown fields) and document it; whether an item makes
sense (a deduction below zero, a unit for per-unit items, a known category) is decided by
`rules/`, whose refusals name the item and field in Chinese (422 `catalog_invalid`). Enums are
therefore documented here but checked there, so a villager-facing message says what to fix.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from rules import APPLIES_TO, CLASSES, KINDS, PERIODS, RESET_CYCLES, SUBMITTERS
from rules.catalog import (
    EXCHANGE_RATE_PLACES,
    ITEM_KEYS,
    MAX_BAR_PERIODS,
    MAX_EXCHANGE_RATE,
    MAX_ITEM_POINTS,
    MAX_NOTICE_DAYS,
    MAX_POLICY_POINTS,
    MAX_UNITS,
    MIN_EXCHANGE_RATE,
)

from ..openapi import Choice, JsonBoolean, PageArgs, QueryArgs, optional
from .common import Id, LocalDateTime, Moment

# marshmallow's own messages are English; whoever fills in a rule form reads Chinese.
_REQUIRED = {"required": "缺少必填字段", "null": "不能为空"}


def _text(description: str = "", **kwargs: Any) -> fields.String:
    return fields.String(
        error_messages={**_REQUIRED, "invalid": "应为文字"},
        metadata={"description": description} if description else {},
        **kwargs,
    )


def _int(
    description: str = "", *, bounds: tuple[int, int] | None = None, **kwargs: Any
) -> fields.Integer:
    # strict: "5" and 5.5 are refused rather than quietly turned into a score. `bounds` are
    # the rules' own (rules/ refuses a value outside them, naming the field in Chinese);
    # the document states them so a client, and the contract tests, know them.
    metadata: dict[str, Any] = {"description": description} if description else {}
    if bounds is not None:
        metadata.update(minimum=bounds[0], maximum=bounds[1])
    return fields.Integer(
        strict=True,
        error_messages={**_REQUIRED, "invalid": "应为整数"},
        metadata=metadata,
        **kwargs,
    )


def _bool(description: str = "", **kwargs: Any) -> fields.Boolean:
    return JsonBoolean(
        error_messages={**_REQUIRED, "invalid": "应为 true 或 false"},
        metadata={"description": description} if description else {},
        **kwargs,
    )


def _enum(choices: tuple[str, ...], description: str, **kwargs: Any) -> fields.String:
    return fields.String(
        error_messages={**_REQUIRED, "invalid": "应为文字"},
        metadata={"enum": list(choices), "description": description},
        **kwargs,
    )


class DecimalText(fields.String):
    """A decimal as text ("0.5") or a JSON number, kept as text so no float rounding reaches
    money (the exchange rate). Its range and decimals are checked by rules/; the document
    states them (plain digits as text, as rules/ reads them)."""

    def __init__(self, *, minimum: Decimal, maximum: Decimal, places: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.minimum, self.maximum, self.places = minimum, maximum, places

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValidationError('应为数字，如 1 或 "0.5"')
        return repr(value) if isinstance(value, float) else str(value)

    def openapi(self) -> dict[str, Any]:
        return {
            "anyOf": [
                {"type": "string", "pattern": f"^[0-9]+(\\.[0-9]{{1,{self.places}}})?$"},
                {
                    "type": "number",
                    "minimum": float(self.minimum),
                    "maximum": float(self.maximum),
                    "multipleOf": float(Decimal(1).scaleb(-self.places)),
                },
            ]
        }


# ---- rule items ------------------------------------------------------------------------------


class CapIn(Schema):
    period = _enum(PERIODS, "day|week|month|quarter|year", required=True)
    max_count = _int("times per period", bounds=(1, MAX_POLICY_POINTS), allow_none=True)
    max_points = _int("points per period", bounds=(1, MAX_POLICY_POINTS), allow_none=True)


class VetoIn(Schema):
    wipe_available = _bool("clear the household's spendable points")
    bar_periods = _int(
        "months barred from boards and honours", bounds=(0, MAX_BAR_PERIODS), allow_none=True
    )


class CapOut(Schema):
    period = Choice(PERIODS)
    max_count = fields.Integer(metadata=optional())
    max_points = fields.Integer(metadata=optional())


class VetoOut(Schema):
    wipe_available = fields.Boolean()
    bar_periods = fields.Integer()


ItemField = Callable[[bool], fields.Field]


def _optional_in(field: fields.Field) -> ItemField:
    """An optional field of an item: the same in a PATCH and a POST (a copy for each)."""
    return lambda required: copy.deepcopy(field)


# Each field of a rule item, once, in the order of rules.catalog.ITEM_KEYS: how the API takes
# it (given whether the request must name it: False for a PATCH, where an optional field's
# null clears it) and how it shows it (a version's data; optional fields are absent when
# unset).
_ITEM: dict[str, tuple[ItemField, fields.Field]] = {
    "code": (
        lambda required: _text(
            "stable code, letters/digits/-_., e.g. ENV-YARD",
            required=required,
            validate=validate.Length(min=1, max=40),
        ),
        fields.String(),
    ),
    "name": (lambda required: _text("名称", required=required), fields.String()),
    "category": (
        lambda required: _text("one of the catalog's categories", required=required),
        fields.String(),
    ),
    "class": (
        lambda required: _enum(CLASSES, "base|bonus|deduction", required=required),
        fields.String(metadata={"enum": list(CLASSES)}),
    ),
    "points": (
        lambda required: _int(
            "per time or per unit; negative for deductions, 0 for veto",
            bounds=(-MAX_ITEM_POINTS, MAX_ITEM_POINTS),
            required=required,
        ),
        fields.Integer(),
    ),
    "kind": (
        lambda required: _enum(KINDS, "fixed|per_unit|once|veto", required=required),
        fields.String(metadata={"enum": list(KINDS)}),
    ),
    "unit": (
        _optional_in(_text("unit of per_unit items, e.g. 小时", allow_none=True)),
        fields.String(metadata=optional()),
    ),
    "max_units": (
        _optional_in(
            _int(
                "most units counted per award (per_unit only)",
                bounds=(1, MAX_UNITS),
                allow_none=True,
            )
        ),
        fields.Integer(metadata=optional()),
    ),
    "hourly": (
        _optional_in(
            _bool(
                "per_unit items only: scored at check-out by the hours between check-in and "
                "check-out; default: true when the unit is an hour (小时, 时, hour, hours, h)",
                allow_none=True,
            )
        ),
        fields.Boolean(
            metadata=optional(
                description="scored at check-out by the hours worked; absent: true when "
                "the unit is an hour (小时, 时, hour, hours, h)"
            )
        ),
    ),
    "applies_to": (
        lambda required: _enum(APPLIES_TO, "member|household", required=required),
        fields.String(metadata={"enum": list(APPLIES_TO)}),
    ),
    "submit_by": (
        lambda required: fields.List(
            _enum(SUBMITTERS, "villager|cadre|checkin"),
            required=required,
            error_messages={**_REQUIRED, "invalid": "应为列表"},
        ),
        fields.List(fields.String(metadata={"enum": list(SUBMITTERS)})),
    ),
    "requires_review": (
        _optional_in(_bool("a cadre reviews claims (default true)")),
        fields.Boolean(),
    ),
    "evidence_required": (_optional_in(_bool("photos required (default false)")), fields.Boolean()),
    "notice_days": (
        _optional_in(
            _int(
                "公示 days; null: the catalog policy's",
                bounds=(0, MAX_NOTICE_DAYS),
                allow_none=True,
            )
        ),
        fields.Integer(metadata=optional()),
    ),
    "caps": (
        _optional_in(
            fields.List(
                fields.Nested(CapIn), allow_none=True, error_messages={"invalid": "应为列表"}
            )
        ),
        fields.List(fields.Nested(CapOut), metadata=optional()),
    ),
    "effective_from": (
        _optional_in(
            fields.Date(allow_none=True, error_messages={"invalid": "应为日期，如 2024-01-01"})
        ),
        fields.String(metadata=optional(format="date")),
    ),
    "effective_to": (
        _optional_in(
            fields.Date(
                allow_none=True,
                metadata={"description": "inclusive"},
                error_messages={"invalid": "应为日期，如 2024-01-01"},
            )
        ),
        fields.String(metadata=optional(format="date")),
    ),
    "veto": (
        _optional_in(
            fields.Nested(
                VetoIn, allow_none=True, metadata={"description": "veto items only (一票否决)"}
            )
        ),
        fields.Nested(VetoOut, metadata=optional()),
    ),
    "black_list": (
        _optional_in(
            _bool(
                "deduction items only: one standing deduction of it names the household on the "
                "black list (黑榜), whatever the policy's black_list_min_deduction (default "
                "false)"
            )
        ),
        fields.Boolean(
            metadata=optional(
                description="a deduction that names the household on the black list (黑榜); "
                "absent: false"
            )
        ),
    ),
    "description": (
        _optional_in(_text("说明", allow_none=True)),
        fields.String(metadata=optional()),
    ),
}
# A field added to the rule item in rules/ and not here is caught when the app starts.
assert tuple(_ITEM) == ITEM_KEYS, "backend/schemas/rules.py must list every rule item field"


def _item_fields(required: bool) -> dict[str, fields.Field]:
    """The rule item shape the API takes; `required` False for a PATCH."""
    return {key: make(required) for key, (make, _) in _ITEM.items()}


RuleItemIn = Schema.from_dict(_item_fields(True), name="RuleItemIn")
RuleItemPatch = Schema.from_dict(_item_fields(False), name="RuleItemPatch")

# What an item says (a version's data).
_ITEM_DATA: dict[str, fields.Field] = {key: shown for key, (_, shown) in _ITEM.items()}

RuleItemData = Schema.from_dict(_ITEM_DATA, name="RuleItemData")

RuleItemOut = Schema.from_dict(
    {
        "id": fields.Integer(),
        "catalog_id": fields.Integer(),
        "version": fields.Integer(metadata={"description": "current version number (1, 2, …)"}),
        "version_id": fields.Integer(
            metadata={"description": "what an award made now records (rule_item_version_id)"}
        ),
        "retired": fields.Boolean(
            metadata={"description": "dropped from the catalog by an import; history kept"}
        ),
        "created_at": LocalDateTime(),
        "updated_at": LocalDateTime(metadata={"description": "when the current version was made"}),
        **_ITEM_DATA,
        # An item as listed says it always (a version's data leaves it out when the unit
        # says it).
        "hourly": fields.Boolean(
            metadata={
                "description": "scored at check-out by the hours between check-in and check-out"
            }
        ),
    },
    name="RuleItemOut",
)


class RuleItemVersionOut(Schema):
    id = fields.Integer(metadata={"description": "the version id awards record"})
    item_id = fields.Integer()
    version = fields.Integer()
    points = fields.Integer()
    current = fields.Boolean()
    data = fields.Nested(RuleItemData)
    created_by = fields.Integer(
        allow_none=True, metadata={"description": "user id; null for the command line"}
    )
    created_at = LocalDateTime()


class RuleItemListArgs(PageArgs):
    include_retired = fields.Boolean(load_default=False)


class VillageItemArgs(PageArgs):
    submit_by = fields.String(
        validate=validate.OneOf(SUBMITTERS),
        metadata={
            "description": "only the items that may be reported that way: `villager` the ones a "
            "villager reports themselves (自主申报), `cadre` a cadre's awards, "
            "`checkin` an activity's check-in"
        },
    )


class MyItemArgs(VillageItemArgs):
    village_id = Id(
        strict=False,
        metadata={"description": "the village whose items to list; default the caller's own"},
    )


# ---- catalogs and policies -------------------------------------------------------------------


class PolicyOut(Schema):
    notice_days = fields.Integer(metadata={"description": "公示 days"})
    two_cadre_threshold = fields.Integer(
        metadata={"description": "at or above this many points two different cadres approve"}
    )
    monthly_budget = fields.Integer(
        allow_none=True,
        metadata={
            "description": "points a village may award per month, counted by the month of "
            "each claim's deed, less reversed awards; null: no limit"
        },
    )
    reset_cycle = fields.String(metadata={"enum": list(RESET_CYCLES)})
    qualification_line = fields.Integer()
    star_levels = fields.List(fields.Integer(), metadata={"description": "星级文明户 lines"})
    exchange_rate = fields.String(metadata={"description": "yuan per point, as text"})
    min_redemption_points = fields.Integer()
    allow_village_items = fields.Boolean(
        metadata={"description": "cadres may add their village's own items (村规民约)"}
    )
    village_items_skip_review = fields.Boolean(
        metadata={
            "description": "village items may be approved without a cadre's review (default "
            "false); their notice days are never below notice_days either way"
        }
    )
    black_list_min_deduction = fields.Integer(
        metadata={
            "description": "黑榜: a household is named on the black list for a period when its "
            "standing deductions there come to at least this many points (default "
            "5), or one is of a black_list item, or a veto bars it"
        }
    )


class PolicyPatch(Schema):
    notice_days = _int("公示 days", bounds=(0, MAX_NOTICE_DAYS))
    two_cadre_threshold = _int(bounds=(1, MAX_POLICY_POINTS))
    monthly_budget = _int("null: no limit", bounds=(1, MAX_POLICY_POINTS), allow_none=True)
    reset_cycle = _enum(RESET_CYCLES, "none|quarterly|yearly")
    qualification_line = _int(bounds=(0, MAX_POLICY_POINTS))
    star_levels = fields.List(
        _int(bounds=(0, MAX_POLICY_POINTS)), error_messages={"invalid": "应为整数列表"}
    )
    exchange_rate = DecimalText(
        minimum=MIN_EXCHANGE_RATE,
        maximum=MAX_EXCHANGE_RATE,
        places=EXCHANGE_RATE_PLACES,
        metadata={"description": 'yuan per point, e.g. "0.5"'},
    )
    min_redemption_points = _int(bounds=(0, MAX_POLICY_POINTS))
    allow_village_items = _bool("township catalogs only")
    village_items_skip_review = _bool("village items may skip review (default false)")
    black_list_min_deduction = _int(
        "points of standing deductions in a period that name a "
        "household on the black list (default 5)",
        bounds=(1, MAX_POLICY_POINTS),
    )


class CatalogIn(Schema):
    class Meta:
        openapi = {"oneOf": [{"required": ["township_id"]}, {"required": ["village_id"]}]}

    name = _text("细则名称", required=True, validate=validate.Length(min=1, max=100))
    township_id = Id(metadata={"description": "a township's catalog"})
    village_id = Id(metadata={"description": "a village's own items (村规民约)"})
    categories = fields.List(
        _text(),
        metadata={"description": "default: the township catalog's (or the reference catalog's)"},
    )

    @validates_schema
    def _one_owner(self, data: dict[str, Any], **_: Any) -> None:
        if ("township_id" in data) == ("village_id" in data):
            raise ValidationError("请指定 township_id 或 village_id（二选一）", "_schema")


class CatalogOut(Schema):
    id = fields.Integer()
    name = fields.String()
    township_id = fields.Integer(allow_none=True)
    village_id = fields.Integer(allow_none=True)
    categories = fields.List(fields.String())
    policy = fields.Nested(PolicyOut, metadata={"description": "the policy in force"})
    own_policy = fields.Boolean(
        metadata={"description": "false: a village catalog following its township's policy"}
    )
    item_count = fields.Integer(metadata={"description": "items listed now"})
    created_at = LocalDateTime()


class CatalogListArgs(PageArgs):
    township_id = Id(strict=False)
    village_id = Id(strict=False)


TOWNSHIP_TO_IMPORT = (
    "the township whose catalog this is; default: a township admin's own "
    "township (a county admin must name it)"
)


class ImportArgs(QueryArgs):
    township_id = Id(strict=False, metadata={"description": TOWNSHIP_TO_IMPORT})
    replace = fields.Boolean(
        load_default=False,
        metadata={
            "description": "replace the township's catalog: changed items get a new version, "
            "dropped ones are retired; awards keep their versions"
        },
    )


class ImportJsonIn(Schema):
    township_id = Id(metadata={"description": TOWNSHIP_TO_IMPORT})
    yaml = fields.String(metadata={"description": "the catalog file's text"})
    replace = JsonBoolean()


class ImportOut(Schema):
    catalog = fields.Nested(CatalogOut)
    created = fields.Integer(metadata={"description": "new items"})
    revised = fields.Integer(metadata={"description": "items given a new version"})
    unchanged = fields.Integer()
    retired = fields.Integer(metadata={"description": "items the file no longer lists"})


# ---- dry run ---------------------------------------------------------------------------------


class EvaluateIn(Schema):
    item_id = Id(required=True, error_messages={**_REQUIRED, "invalid": "应为整数"})
    villager_id = Id(required=True, error_messages={**_REQUIRED, "invalid": "应为整数"})
    units = _int("hours, times … for per_unit items", allow_none=True)
    at = Moment(metadata={"description": "default: now"})


class EvaluateOut(Schema):
    points = fields.Integer(metadata={"description": "signed; negative for a deduction"})
    capped = fields.Boolean(metadata={"description": "a limit cut the points or the units"})
    units = fields.Integer(allow_none=True)
    reason = fields.String(metadata={"description": "why, in Chinese, for the villager"})
    item_id = fields.Integer()
    version_id = fields.Integer()
    version = fields.Integer()
