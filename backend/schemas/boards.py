"""Schemas of rankings, boards (红黑榜), statistics and plates."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from points.boards.corrections import CORRECTION_KINDS
from points.boards.standings import RANK_BY

from ..openapi import Choice, JsonBoolean, QueryArgs
from .common import Id, LocalDateTime

PERIOD = validate.Regexp(
    r"^\d{4}(-(0[1-9]|1[0-2])|-Q[1-4])?$", error="时段格式为 YYYY-MM、YYYY-Qn 或 YYYY"
)
MONTH = validate.Regexp(r"^\d{4}-(0[1-9]|1[0-2])$", error="月份格式为 YYYY-MM")


def _period(description: str) -> fields.String:
    return fields.String(validate=PERIOD, metadata={"description": description})


class RankingArgs(QueryArgs):
    village_id = Id(strict=False)
    group_id = Id(strict=False, metadata={"description": "村民小组"})
    township_id = Id(strict=False, metadata={"description": "township admins"})
    period = _period("YYYY-MM, YYYY-Qn or YYYY; default this month")
    by = Choice(RANK_BY, load_default="household")
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=1000))
    public = fields.Boolean(
        load_default=False,
        metadata={
            "description": "staff: show names as the public board does (villagers always do)"
        },
    )


class RankingRowOut(Schema):
    rank = fields.Integer(required=True)
    name = fields.String(required=True)
    points = fields.Integer(required=True)
    household_id = fields.Integer(
        required=True,
        allow_none=True,
        metadata={"description": "null on public views of a household that opted out"},
    )
    villager_id = fields.Integer(required=True, allow_none=True)
    village_id = fields.Integer(required=True)
    group_id = fields.Integer(required=True, allow_none=True)
    group = fields.String(
        required=True, allow_none=True, metadata={"description": "村民小组 name; null: no group"}
    )


class MineOut(Schema):
    """The caller's own place, shown even when barred (一票否决) or off the public board."""

    rank = fields.Integer()
    points = fields.Integer()
    name = fields.String()
    household_id = fields.Integer()
    villager_id = fields.Integer(allow_none=True)
    barred = fields.Boolean()
    opted_out = fields.Boolean()
    total = fields.Integer(metadata={"description": "households (members) ranked"})


class ScopeRefOut(Schema):
    kind = fields.String(validate=validate.OneOf(("village", "group", "township")))
    id = fields.Integer()


class RankingOut(Schema):
    period = fields.String()
    scope = fields.Nested(ScopeRefOut)
    by = Choice(RANK_BY)
    tie_rule = fields.String()
    total = fields.Integer()
    items = fields.List(fields.Nested(RankingRowOut))
    mine = fields.Nested(MineOut, allow_none=True)


class BoardArgs(QueryArgs):
    period = _period("YYYY-MM (default last month), YYYY-Qn or YYYY")
    public = fields.Boolean(
        load_default=False,
        metadata={"description": "staff: the board as posted (masked names, opt-outs hidden)"},
    )


class PrintArgs(QueryArgs):
    period = _period("YYYY-MM (default last month), YYYY-Qn or YYYY")
    size = fields.String(load_default="A4", validate=validate.OneOf(("A4", "A3")))
    v = fields.String(
        validate=validate.Length(max=64),
        metadata={
            "description": "the picture's version (its ETag), as `png_url` of GET …/board gives "
            "it: a closed month's picture under it may be cached for good"
        },
    )


class RedRowOut(Schema):
    rank = fields.Integer()
    household_id = fields.Integer(allow_none=True)
    name = fields.String()
    group_id = fields.Integer(allow_none=True)
    group = fields.String(allow_none=True)
    points = fields.Integer()
    stars = fields.Integer()


class BlackItemOut(Schema):
    kind = fields.String(validate=validate.OneOf(("deduct", "veto")))
    item = fields.String(allow_none=True)
    points = fields.Integer(allow_none=True)
    note = fields.String(allow_none=True)
    date = fields.String(allow_none=True)
    until_month = fields.String(allow_none=True, metadata={"description": "veto: barred until"})
    reversed = fields.Boolean(metadata={"description": "corrected since; no longer counts"})


class BlackRowOut(Schema):
    household_id = fields.Integer(allow_none=True)
    name = fields.String()
    group_id = fields.Integer(allow_none=True)
    group = fields.String(allow_none=True)
    points = fields.Integer()
    vetoed = fields.Boolean()
    items = fields.List(fields.Nested(BlackItemOut))


class StarRowOut(Schema):
    household_id = fields.Integer(allow_none=True)
    name = fields.String()
    group_id = fields.Integer(allow_none=True)
    group = fields.String(allow_none=True)
    points = fields.Integer()
    stars = fields.Integer()


class CorrectionOut(Schema):
    kind = Choice(
        CORRECTION_KINDS,
        metadata={
            "description": (
                "reversal: an entry of an earlier month corrected; late: points reached an "
                "earlier month after its board closed; late_veto: a veto (一票否决) barring the "
                "household in "
                "an earlier month posted after its board closed (`amount` 0); veto_withdrawal: the "
                "township withdrew a veto (一票否决) in the period, `amount` the spendable points "
                "given back"
            )
        },
    )
    household_id = fields.Integer(allow_none=True)
    name = fields.String()
    amount = fields.Integer()
    month = fields.String(
        metadata={
            "description": "the month the corrected points were in "
            "(a withdrawn veto: the month its bar "
            "started, the deed's; a late veto: the "
            "published month it bars)"
        }
    )
    item = fields.String(allow_none=True)
    note = fields.String()


class OwnStandingOut(Schema):
    household_id = fields.Integer()
    points = fields.Integer()
    rank = fields.Integer()
    total = fields.Integer()
    barred = fields.Boolean()
    stars = fields.Integer()
    on_black_list = fields.Boolean()


class BoardOut(Schema):
    village_id = fields.Integer()
    village_name = fields.String()
    period = fields.String()
    period_label = fields.String()
    status = fields.String(
        validate=validate.OneOf(("open", "closed")),
        metadata={"description": "closed: the published board, frozen; open: as it stands now"},
    )
    closed_at = LocalDateTime(allow_none=True)
    closed_by = fields.Integer(allow_none=True)
    tie_rule = fields.String()
    red_list_size = fields.Integer()
    qualification_line = fields.Integer()
    star_levels = fields.List(fields.Integer())
    households = fields.Integer()
    participating = fields.Integer()
    masked = fields.Boolean(metadata={"description": "names shown masked (public form)"})
    red = fields.List(fields.Nested(RedRowOut), metadata={"description": "红榜 · 示范户"})
    black = fields.List(fields.Nested(BlackRowOut), metadata={"description": "黑榜 · 限期整改户"})
    stars = fields.List(fields.Nested(StarRowOut), metadata={"description": "星级文明户"})
    corrections = fields.List(fields.Nested(CorrectionOut))
    mine = fields.Nested(OwnStandingOut, allow_none=True)
    month_root = fields.String(
        allow_none=True,
        metadata={
            "description": "closed month: Merkle root (hex) over every household's month, which "
            "a household's month-proof verifies against; null while open and for "
            "months closed before roots were kept"
        },
    )
    month_leaves = fields.Integer(
        allow_none=True, metadata={"description": "the number of households under month_root"}
    )
    online_url = fields.String(allow_none=True)
    png_url = fields.String(
        metadata={
            "description": "the board's picture (A4) for the phone; for a closed month under an "
            "address versioned by its content, which may be cached for good"
        }
    )


class CloseIn(Schema):
    period = fields.String(required=True, validate=MONTH)
    force = JsonBoolean(
        load_default=False,
        metadata={
            "description": "close although claims of the month are still in review or notice"
        },
    )


class BoardSettingsIn(Schema):
    mask_names = JsonBoolean(
        allow_none=True, metadata={"description": "public boards show 张*三; null inherits"}
    )
    red_list_size = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=100))


class BoardSettingsOut(Schema):
    township_id = fields.Integer(allow_none=True)
    village_id = fields.Integer(allow_none=True)
    mask_names = fields.Boolean(allow_none=True)
    red_list_size = fields.Integer(allow_none=True)
    effective = fields.Dict(metadata={"description": "what applies after inheritance"})


class PrivacyIn(Schema):
    public_board_opt_out = JsonBoolean(required=True)


class PrivacyOut(Schema):
    # Dumped from the household itself.
    household_id = fields.Integer(attribute="id")
    public_board_opt_out = fields.Boolean()


class StatsArgs(QueryArgs):
    period = _period("YYYY-MM (default this month), YYYY-Qn or YYYY")


class BoardPageArgs(StatsArgs):
    root = fields.String(
        validate=validate.Regexp(r"^[0-9a-fA-F]{64}$", error="月度根为 64 位十六进制数"),
        metadata={
            "description": "the month root the printed board's QR "
            "carries; the page says if the board online differs"
        },
    )


class GroupParticipationOut(Schema):
    group_id = fields.Integer(allow_none=True)
    group = fields.String()
    households = fields.Integer()
    participating = fields.Integer()
    rate = fields.Float()


class CategoryOut(Schema):
    category = fields.String()
    earned = fields.Integer()
    deducted = fields.Integer()
    corrected = fields.Integer()
    net = fields.Integer()


class TopItemOut(Schema):
    code = fields.String()
    name = fields.String()
    category = fields.String()
    count = fields.Integer()
    points = fields.Integer()


class TrendOut(Schema):
    month = fields.String()
    points = fields.Integer()
    earned = fields.Integer()
    deducted = fields.Integer()
    participating = fields.Integer()


class StatsOut(Schema):
    village_id = fields.Integer()
    period = fields.String()
    households = fields.Integer()
    participating = fields.Integer()
    participation_rate = fields.Float()
    points = fields.Integer()
    participation_by_group = fields.List(fields.Nested(GroupParticipationOut))
    points_by_category = fields.List(fields.Nested(CategoryOut))
    top_items = fields.List(fields.Nested(TopItemOut))
    trend = fields.List(fields.Nested(TrendOut))


class VillageStatsOut(Schema):
    rank = fields.Integer(metadata={"description": "by participation rate"})
    points_rank = fields.Integer(metadata={"description": "by points per household"})
    village_id = fields.Integer()
    village = fields.String()
    households = fields.Integer()
    participating = fields.Integer()
    participation_rate = fields.Float()
    points = fields.Integer()
    points_per_household = fields.Float()


class TownshipStatsOut(Schema):
    township_id = fields.Integer()
    period = fields.String()
    tie_rule = fields.String()
    villages = fields.List(fields.Nested(VillageStatsOut))


class PlateOut(Schema):
    village = fields.String()
    name = fields.String()
    opted_out = fields.Boolean()
    month = fields.String()
    month_label = fields.String()
    points = fields.Integer(allow_none=True)
    rank = fields.Integer(
        allow_none=True,
        metadata={
            "description": "null when barred, hidden, or before the household has points this month"
        },
    )
    # null for a household that keeps off the public boards (opted_out): it shows only
    # that it exists
    households = fields.Integer(allow_none=True)
    barred = fields.Boolean(allow_none=True)
    year = fields.String()
    stars = fields.Integer(allow_none=True)
    year_points = fields.Integer(allow_none=True)


class LinkOut(Schema):
    url = fields.String()


class MonthArgs(Schema):
    period = fields.String(required=True, validate=MONTH, metadata={"example": "2026-03"})


class HouseholdLeafOut(Schema):
    household_id = fields.Integer(required=True)
    period = fields.String(required=True)
    points = fields.Integer(
        required=True,
        metadata={"description": "the month's score as the board counted it (may be negative)"},
    )
    available = fields.Integer(
        required=True, metadata={"description": "the ledger balance at the month's end"}
    )
    head_hash = fields.String(
        required=True,
        metadata={
            "description": "the ledger chain head (hex) at the month's end; 64 zeros if none"
        },
    )


class VillageInclusionOut(Schema):
    village_id = fields.Integer(required=True)
    township_id = fields.Integer(required=True)
    index = fields.Integer(required=True)
    size = fields.Integer(
        required=True,
        metadata={"description": "villages of the township whose month is closed so far"},
    )
    proof = fields.List(
        fields.String(),
        required=True,
        metadata={"description": "sibling hashes (hex), RFC 6962 order"},
    )
    township_root = fields.String(required=True)
    township_fingerprint = fields.String(required=True)


class MonthProofOut(Schema):
    period = fields.String(required=True)
    leaf = fields.Nested(HouseholdLeafOut, required=True)
    index = fields.Integer(required=True)
    size = fields.Integer(required=True)
    proof = fields.List(
        fields.String(),
        required=True,
        metadata={"description": "sibling hashes (hex), RFC 6962 order"},
    )
    root = fields.String(
        required=True, metadata={"description": "the village's month root, as printed on the board"}
    )
    fingerprint = fields.String(
        required=True,
        metadata={"description": "the root's first 16 hex digits as printed: a1b2 c3d4 e5f6 0718"},
    )
    village = fields.Nested(VillageInclusionOut, required=True)


class MonthRootOut(Schema):
    village_id = fields.Integer(required=True)
    period = fields.String(required=True)
    root = fields.String(required=True)
    fingerprint = fields.String(required=True)
    size = fields.Integer(required=True, metadata={"description": "households under the root"})
    township = fields.Nested(VillageInclusionOut, required=True)


class VillageRootOut(Schema):
    village_id = fields.Integer(required=True)
    root = fields.String(required=True)
    size = fields.Integer(required=True, metadata={"description": "households under the root"})


class TownshipInclusionOut(Schema):
    index = fields.Integer(required=True)
    size = fields.Integer(required=True, metadata={"description": "townships in the county"})
    proof = fields.List(
        fields.String(),
        required=True,
        metadata={
            "description": "sibling hashes (hex), RFC 6962 order, of the township leaf "
            "`vp-township-month-v1` in the county's root"
        },
    )
    county_root = fields.String(required=True)
    county_fingerprint = fields.String(required=True)


class TownshipMonthRootOut(Schema):
    township_id = fields.Integer(required=True)
    period = fields.String(required=True)
    root = fields.String(
        required=True,
        metadata={
            "description": "over the roots of the township's villages whose month is closed, by "
            "village id (it grows as villages close the month)"
        },
    )
    fingerprint = fields.String(required=True)
    size = fields.Integer(required=True, metadata={"description": "villages under the root"})
    villages = fields.List(fields.Nested(VillageRootOut), required=True)
    county = fields.Nested(TownshipInclusionOut, required=True)
