"""Rule catalogs (积分细则): the schema, its validation and its YAML/JSON form.

A catalog is voted on by a village assembly and then read by cadres and villagers, so a bad
catalog is refused as a whole with every problem listed at once, each naming the item and the
field, in Chinese. The same checks run when a dataclass is built directly, so a `RuleItem` that
exists is always a valid one.
"""

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

import yaml

from rules.periods import PERIODS
from rules.text import excerpt

CLASSES: tuple[str, ...] = ("base", "bonus", "deduction")
KINDS: tuple[str, ...] = ("fixed", "per_unit", "once", "veto")
APPLIES_TO: tuple[str, ...] = ("member", "household")
SUBMITTERS: tuple[str, ...] = ("villager", "cadre", "checkin")
RESET_CYCLES: tuple[str, ...] = ("none", "quarterly", "yearly")

CLASS_NAMES: dict[str, str] = {"base": "基础积分", "bonus": "正向加分", "deduction": "负向减分"}
KIND_NAMES: dict[str, str] = {
    "fixed": "固定分值",
    "per_unit": "按单位计分",
    "once": "仅计一次",
    "veto": "一票否决",
}

# Typo guards rather than policy: the largest real item (婚事简办) is 200 points, and
# points × max_units must stay far inside a 32-bit database column.
MAX_ITEM_POINTS = 10_000
MAX_UNITS = 1_000
MAX_NOTICE_DAYS = 90
MAX_BAR_PERIODS = 120
# A household's points, a village's month, a threshold or a cap: all far below this, which
# is far inside the 32-bit columns and queries they are compared in.
MAX_POLICY_POINTS = 10_000_000
# Yuan per point. A rate outside these (a typo, or "1E-999999") makes every amount in yuan
# unreadable: a receipt of a megabyte of zeros, or a value no arithmetic can hold.
MIN_EXCHANGE_RATE = Decimal("0.001")
MAX_EXCHANGE_RATE = Decimal("1000")
EXCHANGE_RATE_PLACES = 4

_PERIOD_LABELS = {"day": "日", "week": "周", "month": "月", "quarter": "季度", "year": "年"}
_APPLIES_LABELS = {"member": "按人", "household": "按户"}
_SUBMITTER_LABELS = {"villager": "村民申报", "cadre": "干部录入", "checkin": "扫码签到"}
_RESET_LABELS = {"none": "不清零", "quarterly": "每季度清零", "yearly": "每年清零"}

# Units that meant "scored by the hour at check-out" before an item said so itself
# (`RuleItem.hourly`): an item written without `hourly` is read by its unit.
HOUR_UNITS = frozenset({"小时", "时", "hour", "hours", "h"})

_DECIMAL_TEXT = re.compile(r"[0-9]+(\.[0-9]+)?")
_CODE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")

_CAP_KEYS = ("period", "max_count", "max_points")
_VETO_KEYS = ("wipe_available", "bar_periods")
_POLICY_KEYS = (
    "notice_days",
    "two_cadre_threshold",
    "monthly_budget",
    "reset_cycle",
    "qualification_line",
    "star_levels",
    "exchange_rate",
    "min_redemption_points",
    "allow_village_items",
    "village_items_skip_review",
    "black_list_min_deduction",
)
_CATALOG_KEYS = ("name", "categories", "policy", "items")


# --- how a rule item's field is read, checked and written ------------------------------------
#
# Each field of `RuleItem` says here, once, how the catalog (YAML or JSON) holds it: its key,
# how it is read (`read`: text, integer, boolean, day, text_list, caps, veto), whether it is
# required, the Chinese label and length of a text, and when `item_to_dict` leaves it out. The
# item's keys, its reader, its text checks and its dict are all walked from these.


def _spec(
    read: str,
    *,
    key: str | None = None,
    required: bool = False,
    label: str | None = None,
    max_len: int | None = None,
    multiline: bool = False,
    written: Callable[[Any, Any], bool] | None = None,
    **kwargs: Any,
) -> Any:
    """A `RuleItem` field's description. `written(item, value)`: whether `item_to_dict`
    writes it (default: when it is not None)."""
    return field(
        metadata={
            "read": read,
            "key": key,
            "required": required,
            "label": label,
            "max_len": max_len,
            "multiline": multiline,
            "written": written,
        },
        **kwargs,
    )


def _key(f: Field[Any]) -> str:
    return f.metadata["key"] or f.name


def hourly_by_unit(kind: str | None, unit: str | None) -> bool:
    """What an item that does not say `hourly` means: a per-unit item counted in hours (its
    unit one of HOUR_UNITS) is scored by the hour at check-out."""
    return kind == "per_unit" and (unit or "").strip().lower() in HOUR_UNITS


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a catalog: which item (its code, or "#3" for the third item when
    it has no usable code), which field, and what a village clerk should fix."""

    item: str | None
    field: str
    message: str

    def __str__(self) -> str:
        where = " / ".join(part for part in (self.item, self.field) if part)
        return f"[{where}] {self.message}" if where else self.message


class CatalogError(ValueError):
    """A catalog or item that was refused, with every problem found. `code` names a file
    refused as a whole before it was read (too large, aliases, too deeply nested); None for
    problems with its content."""

    def __init__(self, problems: Iterable[Problem], code: str | None = None) -> None:
        self.problems: list[Problem] = list(problems)
        self.code = code
        super().__init__(self.problems)

    def __str__(self) -> str:
        lines = [f"积分细则有 {len(self.problems)} 处问题："]
        lines += [f"- {problem}" for problem in self.problems]
        return "\n".join(lines)


def _raise_if(problems: list[Problem]) -> None:
    if problems:
        raise CatalogError(problems)


@dataclass(frozen=True)
class Cap:
    """A limit per calendar period (day|week|month|quarter|year) on how often or how much an
    item may count for one subject."""

    period: str
    max_count: int | None = None
    max_points: int | None = None

    def __post_init__(self) -> None:
        _raise_if(_cap_problems(None, "", _values(self)))


@dataclass(frozen=True)
class VetoEffect:
    """一票否决: what a veto item does to the household."""

    wipe_available: bool = True
    bar_periods: int = 0  # months barred from boards and honours

    def __post_init__(self) -> None:
        _raise_if(_veto_problems(None, "", _values(self)))


@dataclass(frozen=True, kw_only=True)
class RuleItem:
    """One line of the 积分细则. `klass` is the catalog's `class` (a Python keyword). The
    order of the fields is the order of an item's keys in a catalog file."""

    code: str = _spec("text", required=True)
    name: str = _spec("text", required=True, label="名称", max_len=100)
    category: str = _spec("text", required=True, label="分类", max_len=20)
    klass: str = _spec("text", key="class", required=True)
    points: int = _spec("integer", required=True)
    kind: str = _spec("text", required=True)
    unit: str | None = _spec("text", label="单位", max_len=10, default=None)
    max_units: int | None = _spec("integer", default=None)
    # Scored at check-out by the hours between check-in and check-out. None (left out):
    # what the unit says (`hourly_by_unit`), settled when the item is built, so a built item
    # holds True or False; written only when it differs from what the unit says, so items
    # written before the field keep their form. A `dataclasses.replace` of `kind` or `unit`
    # keeps the settled value: pass `hourly=None` with them to have it derived again.
    hourly: bool | None = _spec(
        "boolean",
        default=None,
        written=lambda item, value: value != hourly_by_unit(item.kind, item.unit),
    )
    applies_to: str = _spec("text", required=True)
    submit_by: tuple[str, ...] = _spec("text_list", required=True)
    requires_review: bool = _spec("boolean", default=True)
    evidence_required: bool = _spec("boolean", default=False)
    # None: the catalog policy's notice_days
    notice_days: int | None = _spec("integer", default=None)
    caps: tuple[Cap, ...] = _spec("caps", default=(), written=lambda item, value: bool(value))
    effective_from: date | None = _spec("day", default=None)
    effective_to: date | None = _spec("day", default=None)  # inclusive
    veto: VetoEffect | None = _spec("veto", default=None)
    # 黑榜: one standing deduction of this item names the household on the black list,
    # however small (a deduction item the village counts as serious). Vetoes always do.
    # Left out when false: items stored before it keep their form.
    black_list: bool = _spec("boolean", default=False, written=lambda item, value: value)
    description: str | None = _spec(
        "text", label="说明", max_len=1000, multiline=True, default=None
    )

    def __post_init__(self) -> None:
        # Lists passed by a caller would make the frozen item unhashable.
        object.__setattr__(self, "submit_by", tuple(self.submit_by))
        object.__setattr__(self, "caps", tuple(self.caps))
        if self.hourly is None:
            object.__setattr__(self, "hourly", hourly_by_unit(self.kind, self.unit))
        _raise_if(_item_problems(self.code, _item_values(self), None))

    def may_submit(self, submitter: str) -> bool:
        """Whether this item may be reported that way (one of SUBMITTERS): `villager` is a
        villager's own report (自主申报), `cadre` a cadre's award, `checkin` an activity's
        check-in."""
        return submitter in self.submit_by

    def is_effective(self, on: date) -> bool:
        if self.effective_from is not None and on < self.effective_from:
            return False
        return self.effective_to is None or on <= self.effective_to


_ITEM_FIELDS: tuple[Field[Any], ...] = fields(RuleItem)
# An item's keys in a catalog file, in their order.
ITEM_KEYS: tuple[str, ...] = tuple(_key(f) for f in _ITEM_FIELDS)
# Texts checked by `_text_problem`: key → (Chinese label, most characters, multiline).
_ITEM_TEXTS: dict[str, tuple[str, int, bool]] = {
    _key(f): (f.metadata["label"], f.metadata["max_len"], f.metadata["multiline"])
    for f in _ITEM_FIELDS
    if f.metadata["max_len"] is not None
}


@dataclass(frozen=True)
class Policy:
    """Settings a township or village adopts beside the items."""

    notice_days: int = 5  # 公示 days
    two_cadre_threshold: int = 50  # at or above this many points two different cadres approve
    monthly_budget: int | None = None  # points a village may award per month; None: no limit
    reset_cycle: str = "none"  # none|quarterly|yearly expiry of spendable points
    qualification_line: int = 60  # below it: no redemption, no honours
    star_levels: tuple[int, ...] = (60, 70, 80, 90)  # 星级文明户 thresholds, one to four stars
    exchange_rate: Decimal = Decimal("1")  # yuan per point
    min_redemption_points: int = 0
    allow_village_items: bool = True  # villages may add their own items (村规民约)
    # Village items need a cadre's review unless the township lets them skip it; either way
    # their notice days are never below notice_days (`village_item_in_force`).
    village_items_skip_review: bool = False
    # 黑榜: a household is named on the black list for a period when its deductions there
    # that still stand come to at least this many points, or one of them is of an item
    # marked `black_list`, or a veto (一票否决) bars it. A single −1 for lateness is no
    # reason to name a household on the wall.
    black_list_min_deduction: int = 5

    def __post_init__(self) -> None:
        object.__setattr__(self, "star_levels", tuple(self.star_levels))
        _raise_if(_policy_problems("", _values(self)))

    def takes_two_reviewers(self, points: int, *, veto: bool = False) -> bool:
        """Whether deciding these points takes two different reviewers (双人审核): an award,
        deduction or reversal at or above the threshold, and a veto (一票否决) whatever its
        points, since it wipes a household's points and bars it from boards."""
        return veto or abs(points) >= self.two_cadre_threshold

    def stars(self, points: int, *, barred: bool = False) -> int:
        """This policy's star level (星级) for a score: see `stars`."""
        return stars(points, self.qualification_line, self.star_levels, barred=barred)


def stars(
    points: int, qualification_line: int, star_levels: Sequence[int], *, barred: bool = False
) -> int:
    """星级文明户: one star per level the score reaches; none below the qualification line
    (合格线), none for a household a veto (一票否决) bars from honours. The one definition the
    board, the household plate and the villager's home screen share; a published board
    passes the line and levels it was closed with."""
    if barred or points < qualification_line:
        return 0
    return sum(1 for level in star_levels if points >= level)


@dataclass(frozen=True)
class Catalog:
    name: str
    categories: tuple[str, ...]
    policy: Policy
    items: tuple[RuleItem, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "categories", tuple(self.categories))
        object.__setattr__(self, "items", tuple(self.items))
        problems = _catalog_problems({"name": self.name, "categories": self.categories})
        for item in self.items:
            problems += _category_problems(item.code, item.category, self.categories)
        problems += _duplicate_code_problems((item.code, n) for n, item in enumerate(self.items, 1))
        _raise_if(problems)

    def find(self, code: str) -> RuleItem | None:
        return next((item for item in self.items if item.code == code), None)


# --- value checks, shared by the parser and the dataclasses ------------------------------
#
# Each takes a dict holding only the fields that were read with the right type (None for an
# optional field left out), so a type error in one field does not hide problems in others.


def _values(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def _item_values(item: RuleItem) -> dict[str, Any]:
    return {_key(f): getattr(item, f.name) for f in _ITEM_FIELDS}


def _text_problem(value: str, label: str, max_len: int, multiline: bool = False) -> str | None:
    if not value.strip():
        return f"{label}不能为空"
    if value != value.strip():
        return f"{label}首尾不能有空格"
    if len(value) > max_len:
        return f"{label}最长 {max_len} 个字，现有 {len(value)} 个"
    for ch in value:
        if ch == "\n" and multiline:
            continue
        if unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp"):
            return f"{label}含有不可见的控制字符（U+{ord(ch):04X}）"
    return None


def _choice_message(label: str, value: object, names: Mapping[str, str]) -> str:
    options = "、".join(f"{key}（{name}）" for key, name in names.items())
    return f"{label}「{excerpt(value)}」无效，只能是 {options}"


def _cap_problems(item: str | None, prefix: str, v: Mapping[str, Any]) -> list[Problem]:
    out: list[Problem] = []
    if "period" in v and v["period"] not in PERIODS:
        out.append(
            Problem(item, prefix + "period", _choice_message("周期", v["period"], _PERIOD_LABELS))
        )
    if (
        "max_count" in v
        and "max_points" in v
        and v["max_count"] is None
        and v["max_points"] is None
    ):
        out.append(
            Problem(
                item,
                prefix.rstrip(".") or "caps",
                "上限至少要写 max_count（次数）或 max_points（分数）之一",
            )
        )
    for key, label in (("max_count", "次数上限"), ("max_points", "分数上限")):
        value = v.get(key)
        if value is not None and not 1 <= value <= MAX_POLICY_POINTS:
            out.append(
                Problem(
                    item,
                    prefix + key,
                    f"{label}必须是 1 到 {MAX_POLICY_POINTS} 之间的整数，现为 {excerpt(value)}",
                )
            )
    return out


def _veto_problems(item: str | None, prefix: str, v: Mapping[str, Any]) -> list[Problem]:
    out: list[Problem] = []
    bar = v.get("bar_periods")
    if bar is not None and not 0 <= bar <= MAX_BAR_PERIODS:
        out.append(
            Problem(
                item,
                prefix + "bar_periods",
                f"取消评优的月数必须在 0 到 {MAX_BAR_PERIODS} 之间，现为 {excerpt(bar)}",
            )
        )
    if v.get("wipe_available") is False and bar == 0:
        out.append(
            Problem(
                item, prefix.rstrip(".") or "veto", "否决效果为空：既不清零积分，也不取消评优资格"
            )
        )
    return out


def _item_problems(
    item: str | None, v: Mapping[str, Any], categories: tuple[str, ...] | None
) -> list[Problem]:
    out: list[Problem] = []

    def bad(field: str, message: str) -> None:
        out.append(Problem(item, field, message))

    code = v.get("code")
    if code is not None and not _CODE_RE.fullmatch(code):
        bad(
            "code",
            f"编码「{excerpt(code)}」无效："
            "只能用字母、数字和 - _ .，以字母或数字开头，最长 40 个字符",
        )
    for key, (label, max_len, multiline) in _ITEM_TEXTS.items():
        value = v.get(key)
        if value is not None:
            message = _text_problem(value, label, max_len, multiline)
            if message:
                bad(key, message)
    if categories is not None and v.get("category") is not None:
        out += _category_problems(item, v["category"], categories)

    klass, kind, points = v.get("class"), v.get("kind"), v.get("points")
    if klass is not None and klass not in CLASSES:
        bad("class", _choice_message("类别", klass, CLASS_NAMES))
    if kind is not None and kind not in KINDS:
        bad("kind", _choice_message("计分方式", kind, KIND_NAMES))
    if v.get("applies_to") is not None and v["applies_to"] not in APPLIES_TO:
        bad("applies_to", _choice_message("计分对象", v["applies_to"], _APPLIES_LABELS))
    if points is not None and abs(points) > MAX_ITEM_POINTS:
        bad("points", f"分值不能超过 {MAX_ITEM_POINTS}，现为 {excerpt(points)}")

    if v.get("black_list") and klass is not None and klass != "deduction":
        bad("black_list", "只有负向减分项才能设为上黑榜的项目")
    if kind == "veto":
        if points is not None and points != 0:
            bad("points", f"一票否决项不计分，分值应为 0，现为 {excerpt(points)}")
        if klass is not None and klass != "deduction":
            bad("class", "一票否决项的类别必须是 deduction（负向减分）")
        if "veto" in v and v["veto"] is None:
            bad("veto", "一票否决项必须写明否决效果（veto：wipe_available、bar_periods）")
    else:
        if kind in KINDS and v.get("veto") is not None:
            bad("veto", "只有一票否决项（kind: veto）才能设置否决效果")
        if points is not None and klass == "deduction" and points >= 0:
            bad("points", f"负向减分项的分值必须小于 0，现为 {excerpt(points)}")
        if points is not None and klass in ("base", "bonus") and points <= 0:
            bad("points", f"{CLASS_NAMES[klass]}项的分值必须大于 0，现为 {excerpt(points)}")

    max_units = v.get("max_units")
    if kind == "per_unit":
        if "unit" in v and v["unit"] is None:
            bad("unit", "按单位计分的项目必须写明单位（unit），如 小时、次")
        if "max_units" in v and max_units is None:
            bad("max_units", "按单位计分的项目必须写明每次最多计多少个单位（max_units）")
    elif kind in KINDS and max_units is not None:
        bad("max_units", "只有按单位计分（kind: per_unit）的项目才能设置 max_units")
    if v.get("hourly") and kind in KINDS and kind != "per_unit":
        bad("hourly", "只有按单位计分（kind: per_unit）的项目才能按签到签退的小时数计分（hourly）")
    if max_units is not None and not 1 <= max_units <= MAX_UNITS:
        bad(
            "max_units",
            f"每次最多计的单位数必须在 1 到 {MAX_UNITS} 之间，现为 {excerpt(max_units)}",
        )

    submit_by = v.get("submit_by")
    if submit_by is not None:
        if not submit_by:
            bad("submit_by", "至少要有一种申报方式：" + _options(_SUBMITTER_LABELS))
        unknown = [s for s in submit_by if s not in SUBMITTERS]
        if unknown:
            bad(
                "submit_by",
                f"申报方式「{excerpt('、'.join(map(str, unknown)))}」无效，"
                f"只能是 {_options(_SUBMITTER_LABELS)}",
            )
        repeated = sorted({s for s in submit_by if submit_by.count(s) > 1})
        if repeated:
            bad("submit_by", f"申报方式重复：{excerpt('、'.join(repeated))}")
        # A veto wipes a household's points: a villager or a QR scan must never trigger it.
        if kind == "veto" and set(submit_by) - {"cadre"}:
            bad("submit_by", "一票否决项只能由村干部录入（submit_by: [cadre]）")

    notice_days = v.get("notice_days")
    if notice_days is not None and not 0 <= notice_days <= MAX_NOTICE_DAYS:
        bad(
            "notice_days",
            f"公示天数必须在 0 到 {MAX_NOTICE_DAYS} 之间，现为 {excerpt(notice_days)}",
        )

    caps = v.get("caps")
    if caps:
        periods = [cap.period for cap in caps]
        repeated = sorted({p for p in periods if periods.count(p) > 1}, key=PERIODS.index)
        if repeated:
            bad("caps", f"同一周期只能设一个上限，重复的周期：{'、'.join(repeated)}")

    start, end = v.get("effective_from"), v.get("effective_to")
    if start is not None and end is not None and start > end:
        bad("effective_to", f"停止日期 {end.isoformat()} 不能早于生效日期 {start.isoformat()}")
    return out


def _options(names: Mapping[str, str]) -> str:
    return "、".join(f"{key}（{name}）" for key, name in names.items())


def _category_problems(
    item: str | None, category: str, categories: tuple[str, ...]
) -> list[Problem]:
    if category in categories:
        return []
    known = "、".join(categories)
    return [
        Problem(
            item, "category", f"分类「{excerpt(category)}」不在本细则的分类中（{excerpt(known)}）"
        )
    ]


def _duplicate_code_problems(codes: Iterable[tuple[str, int]]) -> list[Problem]:
    positions: dict[str, list[int]] = {}
    for code, position in codes:
        positions.setdefault(code, []).append(position)
    return [
        Problem(
            excerpt(code),
            "code",
            f"编码「{excerpt(code)}」重复：第 {excerpt('、'.join(map(str, where)))} 条",
        )
        for code, where in positions.items()
        if len(where) > 1
    ]


def _catalog_problems(v: Mapping[str, Any]) -> list[Problem]:
    out: list[Problem] = []
    if v.get("name") is not None:
        message = _text_problem(v["name"], "细则名称", 100)
        if message:
            out.append(Problem(None, "name", message))
    categories = v.get("categories")
    if categories is not None:
        if not categories:
            out.append(Problem(None, "categories", "至少要有一个分类"))
        for position, category in enumerate(categories):
            message = _text_problem(category, *_ITEM_TEXTS["category"][:2])
            if message:
                out.append(Problem(None, f"categories[{position}]", message))
        repeated = sorted({c for c in categories if categories.count(c) > 1})
        if repeated:
            out.append(Problem(None, "categories", f"分类重复：{excerpt('、'.join(repeated))}"))
    return out


def _policy_problems(prefix: str, v: Mapping[str, Any]) -> list[Problem]:
    out: list[Problem] = []

    def bad(key: str, message: str) -> None:
        out.append(Problem(None, prefix + key, message))

    notice_days = v.get("notice_days")
    if notice_days is not None and not 0 <= notice_days <= MAX_NOTICE_DAYS:
        bad(
            "notice_days",
            f"公示天数必须在 0 到 {MAX_NOTICE_DAYS} 之间，现为 {excerpt(notice_days)}",
        )
    threshold = v.get("two_cadre_threshold")
    if threshold is not None and not 1 <= threshold <= MAX_POLICY_POINTS:
        bad(
            "two_cadre_threshold",
            f"双人审核的分值门槛必须是 1 到 {MAX_POLICY_POINTS} 之间的整数，"
            f"现为 {excerpt(threshold)}",
        )
    budget = v.get("monthly_budget")
    if budget is not None and not 1 <= budget <= MAX_POLICY_POINTS:
        bad(
            "monthly_budget",
            f"每月发放额度必须是 1 到 {MAX_POLICY_POINTS} 之间的整数"
            f"（不限额请留空），现为 {excerpt(budget)}",
        )
    if v.get("reset_cycle") is not None and v["reset_cycle"] not in RESET_CYCLES:
        bad("reset_cycle", _choice_message("清零周期", v["reset_cycle"], _RESET_LABELS))
    line = v.get("qualification_line")
    if line is not None and not 0 <= line <= MAX_POLICY_POINTS:
        bad(
            "qualification_line",
            f"合格线必须在 0 到 {MAX_POLICY_POINTS} 之间，现为 {excerpt(line)}",
        )
    levels = v.get("star_levels")
    if levels is not None:
        if any(not 0 <= level <= MAX_POLICY_POINTS for level in levels):
            bad("star_levels", f"星级分数线必须在 0 到 {MAX_POLICY_POINTS} 之间")
        if any(a >= b for a, b in zip(levels, levels[1:], strict=False)):
            bad("star_levels", f"星级分数线必须从低到高严格递增，现为 {excerpt(list(levels))}")
    rate = v.get("exchange_rate")
    if rate is not None:
        message = _exchange_rate_problem(rate)
        if message:
            bad("exchange_rate", message)
    black = v.get("black_list_min_deduction")
    if black is not None and not 1 <= black <= MAX_POLICY_POINTS:
        bad(
            "black_list_min_deduction",
            f"上黑榜的扣分门槛必须是 1 到 {MAX_POLICY_POINTS} 之间的整数，现为 {excerpt(black)}",
        )
    minimum = v.get("min_redemption_points")
    if minimum is not None and not 0 <= minimum <= MAX_POLICY_POINTS:
        bad(
            "min_redemption_points",
            f"最低兑换分数必须在 0 到 {MAX_POLICY_POINTS} 之间，现为 {excerpt(minimum)}",
        )
    return out


def _exchange_rate_problem(rate: Decimal) -> str | None:
    # The value is not echoed when out of range: "1E+999999" is short, its digits are not.
    if not (rate.is_finite() and MIN_EXCHANGE_RATE <= rate <= MAX_EXCHANGE_RATE):
        return f"兑换比例（每分折合多少元）必须在 {MIN_EXCHANGE_RATE} 到 {MAX_EXCHANGE_RATE} 元之间"
    exponent = rate.as_tuple().exponent
    assert isinstance(exponent, int)  # finite, as checked above: not "n", "N" or "F"
    if exponent < -EXCHANGE_RATE_PLACES:
        return f"兑换比例最多 {EXCHANGE_RATE_PLACES} 位小数，现为 {rate}"
    return None


# --- reading untrusted mappings (YAML or JSON) -------------------------------------------

_MISSING: Any = object()


def _type_name(value: object) -> str:
    if value is None:
        return "空值"
    if isinstance(value, bool):
        return "是/否（布尔值）"
    if isinstance(value, int):
        return "整数"
    if isinstance(value, float):
        return "小数"
    if isinstance(value, str):
        return "文字"
    if isinstance(value, datetime):
        return "日期时间"
    if isinstance(value, date):
        return "日期"
    if isinstance(value, Mapping):
        return "键值映射"
    if isinstance(value, list | tuple):
        return "列表"
    return type(value).__name__


class _Reader:
    """Reads one mapping, noting every problem instead of stopping at the first.

    `values` ends up holding the fields whose type was right (None for optional fields left
    out); fields with a wrong type are left out of it and reported.
    """

    def __init__(
        self,
        problems: list[Problem],
        item: str | None,
        prefix: str,
        data: Mapping[Any, Any],
        keys: tuple[str, ...],
    ) -> None:
        self.problems = problems
        self.item = item
        self.prefix = prefix
        self.data = data
        self.values: dict[str, Any] = {}
        for key in data:
            if key not in keys:
                self.fail(
                    excerpt(key), f"未知字段「{excerpt(key)}」（可用字段：{', '.join(keys)}）"
                )

    def fail(self, key: str, message: str) -> None:
        self.problems.append(Problem(self.item, self.prefix + key, message))

    def raw(self, key: str, required: bool) -> Any:
        value = self.data.get(key)
        if value is None and required:
            self.fail(key, "缺少必填字段")
            return _MISSING
        return value

    def text(self, key: str, *, required: bool = True, multiline: bool = False) -> None:
        value = self.raw(key, required)
        if value is _MISSING:
            return
        if value is None:
            self.values[key] = None
        elif not isinstance(value, str):
            self.fail(key, f"应为文字，现为{_type_name(value)}")
        else:
            value = value.replace("\r\n", "\n").strip() if multiline else value.strip()
            # An empty optional text (a cleared form field) means "not set".
            self.values[key] = value if value or required else None

    def integer(self, key: str, *, required: bool = True, default: int | None = None) -> None:
        value = self.raw(key, required)
        if value is _MISSING:
            return
        if value is None:
            self.values[key] = default
        elif isinstance(value, bool) or not isinstance(value, int):
            # bool is an int in Python; `points: true` is a slip, never a score of 1.
            self.fail(key, f"应为整数，现为{_type_name(value)}")
        else:
            self.values[key] = value

    def boolean(self, key: str, *, default: bool) -> None:
        value = self.raw(key, False)
        if value is None:
            self.values[key] = default
        elif not isinstance(value, bool):
            self.fail(key, f"应为 true 或 false，现为{_type_name(value)}")
        else:
            self.values[key] = value

    def day(self, key: str) -> None:
        value = self.raw(key, False)
        if value is None:
            self.values[key] = None
        elif isinstance(value, datetime):
            self.fail(key, "应为日期（如 2024-01-01），不能带时间")
        elif isinstance(value, date):
            self.values[key] = value
        elif isinstance(value, str):
            try:
                self.values[key] = date.fromisoformat(value.strip())
            except ValueError:
                self.fail(key, f"日期「{excerpt(value)}」无效，应写成 2024-01-01 这样")
        else:
            self.fail(key, f"应为日期（如 2024-01-01），现为{_type_name(value)}")

    def text_list(self, key: str, *, required: bool = True) -> None:
        value = self.raw(key, required)
        if value is _MISSING:
            return
        if value is None:
            self.values[key] = ()
        elif not isinstance(value, list | tuple):
            self.fail(key, f"应为列表，现为{_type_name(value)}")
        else:
            wrong = [n for n, element in enumerate(value) if not isinstance(element, str)]
            for n in wrong:
                self.fail(f"{key}[{n}]", f"应为文字，现为{_type_name(value[n])}")
            if not wrong:
                self.values[key] = tuple(element.strip() for element in value)

    def integer_list(self, key: str, *, default: tuple[int, ...]) -> None:
        value = self.raw(key, False)
        if value is None:
            self.values[key] = default
        elif not isinstance(value, list | tuple):
            self.fail(key, f"应为整数列表，现为{_type_name(value)}")
        else:
            wrong = [
                n for n, e in enumerate(value) if isinstance(e, bool) or not isinstance(e, int)
            ]
            for n in wrong:
                self.fail(f"{key}[{n}]", f"应为整数，现为{_type_name(value[n])}")
            if not wrong:
                self.values[key] = tuple(value)

    def decimal(self, key: str, *, default: Decimal) -> None:
        value = self.raw(key, False)
        if value is None:
            self.values[key] = default
            return
        if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
            self.fail(key, f'应为数字（如 1 或 "0.5"），现为{_type_name(value)}')
            return
        if isinstance(value, str) and not _DECIMAL_TEXT.fullmatch(value):
            # Plain digits only: Decimal() would also read " 1e3 ", "1_000" or "-0".
            self.fail(key, f'「{excerpt(value)}」不是有效的数字，应写成 1 或 "0.5" 这样')
            return
        # repr() keeps 0.1 as "0.1" instead of the float's binary expansion (inf and nan
        # read as Decimal's own, refused by the range check).
        self.values[key] = Decimal(repr(value) if isinstance(value, float) else value)

    def mapping(self, key: str) -> Mapping[Any, Any] | None:
        value = self.raw(key, False)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            self.fail(key, f"应为键值映射，现为{_type_name(value)}")
            return None
        return value


def _read_cap(problems: list[Problem], item: str, prefix: str, data: Any) -> Cap | None:
    if not isinstance(data, Mapping):
        problems.append(
            Problem(item, prefix.rstrip("."), f"上限应为键值映射，现为{_type_name(data)}")
        )
        return None
    start = len(problems)
    reader = _Reader(problems, item, prefix, data, _CAP_KEYS)
    reader.text("period")
    reader.integer("max_count", required=False)
    reader.integer("max_points", required=False)
    problems += _cap_problems(item, prefix, reader.values)
    return Cap(**reader.values) if len(problems) == start else None


def _read_veto(problems: list[Problem], item: str, data: Mapping[Any, Any]) -> VetoEffect | None:
    start = len(problems)
    reader = _Reader(problems, item, "veto.", data, _VETO_KEYS)
    reader.boolean("wipe_available", default=True)
    reader.integer("bar_periods", required=False, default=0)
    problems += _veto_problems(item, "veto.", reader.values)
    return VetoEffect(**reader.values) if len(problems) == start else None


def _read_caps(reader: _Reader, key: str) -> None:
    raw_caps = reader.raw(key, False)
    if raw_caps is None:
        reader.values[key] = ()
    elif not isinstance(raw_caps, list | tuple):
        reader.fail(key, f"应为列表，现为{_type_name(raw_caps)}")
    else:
        assert reader.item is not None
        caps = [
            _read_cap(reader.problems, reader.item, f"{key}[{n}].", raw)
            for n, raw in enumerate(raw_caps)
        ]
        # The valid caps still go in, so duplicate periods among them get reported too.
        reader.values[key] = tuple(cap for cap in caps if cap is not None)


def _read_veto_field(reader: _Reader, key: str) -> None:
    raw_veto = reader.mapping(key)
    if raw_veto is not None:
        assert reader.item is not None
        veto = _read_veto(reader.problems, reader.item, raw_veto)
        if veto is not None:
            reader.values[key] = veto
    elif key not in reader.data or reader.data[key] is None:
        reader.values[key] = None


def _default(f: Field[Any]) -> Any:
    return None if f.default is MISSING else f.default


# How each `read` of a RuleItem field's spec reads it.
_ITEM_READERS: dict[str, Callable[[_Reader, str, Field[Any]], None]] = {
    "text": lambda reader, key, f: reader.text(
        key, required=f.metadata["required"], multiline=f.metadata["multiline"]
    ),
    "integer": lambda reader, key, f: reader.integer(key, required=f.metadata["required"]),
    "boolean": lambda reader, key, f: reader.boolean(key, default=_default(f)),
    "day": lambda reader, key, f: reader.day(key),
    "text_list": lambda reader, key, f: reader.text_list(key, required=f.metadata["required"]),
    "caps": lambda reader, key, f: _read_caps(reader, key),
    "veto": lambda reader, key, f: _read_veto_field(reader, key),
}


def _item_label(data: Any, position: int) -> str:
    code = data.get("code") if isinstance(data, Mapping) else None
    return excerpt(code.strip()) if isinstance(code, str) and code.strip() else f"#{position}"


def _read_item(
    problems: list[Problem], data: Any, position: int, categories: tuple[str, ...] | None
) -> RuleItem | None:
    label = _item_label(data, position)
    if not isinstance(data, Mapping):
        problems.append(
            Problem(label, "", f"第 {position} 条细则应为键值映射，现为{_type_name(data)}")
        )
        return None
    start = len(problems)
    reader = _Reader(problems, label, "", data, ITEM_KEYS)
    for f in _ITEM_FIELDS:
        _ITEM_READERS[f.metadata["read"]](reader, _key(f), f)
    problems += _item_problems(label, reader.values, categories)
    if len(problems) > start:
        return None
    return RuleItem(**{f.name: reader.values[_key(f)] for f in _ITEM_FIELDS})


def _read_policy(problems: list[Problem], prefix: str, data: Mapping[Any, Any]) -> Policy | None:
    start = len(problems)
    default = Policy()
    reader = _Reader(problems, None, prefix, data, _POLICY_KEYS)
    for key in (
        "notice_days",
        "two_cadre_threshold",
        "qualification_line",
        "min_redemption_points",
        "black_list_min_deduction",
    ):
        reader.integer(key, required=False, default=getattr(default, key))
    reader.integer("monthly_budget", required=False)
    reader.text("reset_cycle", required=False)
    reader.values["reset_cycle"] = reader.values.get("reset_cycle") or default.reset_cycle
    reader.integer_list("star_levels", default=default.star_levels)
    reader.decimal("exchange_rate", default=default.exchange_rate)
    reader.boolean("allow_village_items", default=default.allow_village_items)
    reader.boolean("village_items_skip_review", default=default.village_items_skip_review)
    problems += _policy_problems(prefix, reader.values)
    return Policy(**reader.values) if len(problems) == start else None


def parse_item(data: Mapping[str, Any], categories: Iterable[str] | None) -> RuleItem:
    """Validate one item (e.g. a village's own item posted through the API).

    `categories` are those of the catalog it joins; None skips the category check.
    """
    problems: list[Problem] = []
    known = tuple(categories) if categories is not None else None
    item = _read_item(problems, data, 1, known)
    _raise_if(problems)
    assert item is not None
    return item


def parse_policy(data: Mapping[str, Any]) -> Policy:
    problems: list[Problem] = []
    if not isinstance(data, Mapping):
        _raise_if([Problem(None, "policy", f"应为键值映射，现为{_type_name(data)}")])
    policy = _read_policy(problems, "", data)
    _raise_if(problems)
    assert policy is not None
    return policy


def parse_catalog(data: Mapping[str, Any]) -> Catalog:
    """Validate a whole catalog; raises CatalogError listing every problem found."""
    if not isinstance(data, Mapping):
        raise CatalogError(
            [
                Problem(
                    None,
                    "",
                    f"细则应为键值映射（name、categories、policy、items），现为{_type_name(data)}",
                )
            ]
        )
    problems: list[Problem] = []
    reader = _Reader(problems, None, "", data, _CATALOG_KEYS)
    reader.text("name")
    reader.text_list("categories")
    problems += _catalog_problems(reader.values)
    category_problems = any(p.field.startswith("categories") for p in problems)
    categories = None if category_problems else reader.values.get("categories")

    policy: Policy | None = Policy()
    raw_policy = reader.mapping("policy")
    if raw_policy is not None:
        policy = _read_policy(problems, "policy.", raw_policy)

    items: list[RuleItem | None] = []
    raw_items = reader.raw("items", True)
    if raw_items is not _MISSING and not isinstance(raw_items, list | tuple):
        reader.fail("items", f"应为列表，现为{_type_name(raw_items)}")
    elif raw_items is not _MISSING:
        items = [_read_item(problems, raw, n, categories) for n, raw in enumerate(raw_items, 1)]
        problems += _duplicate_code_problems(
            (code.strip(), n)
            for n, raw in enumerate(raw_items, 1)
            if isinstance(raw, Mapping) and isinstance(code := raw.get("code"), str)
        )
    _raise_if(problems)
    assert policy is not None and all(item is not None for item in items)
    return Catalog(
        name=reader.values["name"],
        categories=reader.values["categories"],
        policy=policy,
        items=tuple(item for item in items if item is not None),
    )


# --- village items under the township's policy ---------------------------------------------
#
# A village's own items (村规民约) are written by its cadres; the township's policy is their
# floor, or a village could award at once, without review or 公示, what the township's own
# items would show for days.


def village_item_problems(item: RuleItem, policy: Policy) -> list[Problem]:
    """What a village's own item may not say under the township's `policy`."""
    out: list[Problem] = []
    if item.notice_days is not None and item.notice_days < policy.notice_days:
        out.append(
            Problem(
                item.code,
                "notice_days",
                f"村自设细则的公示天数不能少于乡镇规定的 {policy.notice_days} 天，"
                f"现为 {item.notice_days}（不填则按乡镇规定）",
            )
        )
    if not item.requires_review and not policy.village_items_skip_review:
        out.append(
            Problem(
                item.code,
                "requires_review",
                "本乡镇规定村自设细则的申报须经村干部审核，requires_review 不能为 false",
            )
        )
    return out


@lru_cache(maxsize=512)
def village_item_in_force(item: RuleItem, policy: Policy) -> RuleItem:
    """A village's own item as it is applied under the township's `policy`: at least the
    policy's notice days, and reviewed unless the policy lets village items skip review. An
    item that says more (more days, review) keeps what it says. Kept by value: every
    check-in on a village item asks, and building an item checks every field again."""
    changes: dict[str, Any] = {}
    if item.notice_days is not None and item.notice_days < policy.notice_days:
        changes["notice_days"] = policy.notice_days
    if not item.requires_review and not policy.village_items_skip_review:
        changes["requires_review"] = True
    return replace(item, **changes) if changes else item


# --- writing -----------------------------------------------------------------------------


def cap_to_dict(cap: Cap) -> dict[str, Any]:
    out: dict[str, Any] = {"period": cap.period}
    if cap.max_count is not None:
        out["max_count"] = cap.max_count
    if cap.max_points is not None:
        out["max_points"] = cap.max_points
    return out


def _plain(value: Any) -> Any:
    """A field's value in its JSON-safe form."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, VetoEffect):
        return {"wipe_available": value.wipe_available, "bar_periods": value.bar_periods}
    if isinstance(value, tuple):
        return [cap_to_dict(v) if isinstance(v, Cap) else v for v in value]
    return value


def item_to_dict(item: RuleItem) -> dict[str, Any]:
    """JSON-safe form in a fixed key order (the fields'); optional fields that are unset are
    left out, and so is each field whose spec says when it is not written."""
    out: dict[str, Any] = {}
    for f in _ITEM_FIELDS:
        value = getattr(item, f.name)
        written = f.metadata["written"]
        if value is not None if written is None else written(item, value):
            out[_key(f)] = _plain(value)
    return out


def policy_to_dict(policy: Policy) -> dict[str, Any]:
    """JSON-safe form with every key; the exchange rate is a string so no cents are lost."""
    return {
        "notice_days": policy.notice_days,
        "two_cadre_threshold": policy.two_cadre_threshold,
        "monthly_budget": policy.monthly_budget,
        "reset_cycle": policy.reset_cycle,
        "qualification_line": policy.qualification_line,
        "star_levels": list(policy.star_levels),
        "exchange_rate": format(policy.exchange_rate, "f"),  # 1000, not 1E+3
        "min_redemption_points": policy.min_redemption_points,
        "allow_village_items": policy.allow_village_items,
        "village_items_skip_review": policy.village_items_skip_review,
        "black_list_min_deduction": policy.black_list_min_deduction,
    }


def catalog_to_dict(catalog: Catalog) -> dict[str, Any]:
    return {
        "name": catalog.name,
        "categories": list(catalog.categories),
        "policy": policy_to_dict(catalog.policy),
        "items": [item_to_dict(item) for item in catalog.items],
    }


# --- YAML --------------------------------------------------------------------------------


# A township's catalog is a few hundred lines (the reference one: 13 KB, 26 items); 250,000
# characters is ~500 items and about a second of parsing, since the pure-Python loader is
# what lets us watch every event.
MAX_YAML_CHARS = 250_000
# The deepest a catalog goes: catalog > items > item > caps > cap > value.
MAX_YAML_DEPTH = 10


class _FileRefused(yaml.YAMLError):
    """A catalog file refused as a whole, with the stable code its answer carries."""

    def __init__(self, code: str, message: str, mark: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.mark = mark


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice: plain YAML keeps the last one silently,
    which would let a second `points:` line override the first unnoticed.

    It also refuses anchors and aliases (& and *): a catalog has no use for them, and a few
    lines of nested aliases ("billion laughs") expand to billions of values once something
    walks or prints them. And it refuses nesting deeper than any catalog needs, which the
    recursive composer would otherwise follow until Python's stack runs out."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        # types-PyYAML leaves Parser.peek_event unannotated; it returns the next Event.
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _FileRefused(
                "yaml_aliases",
                "细则文件不能使用 YAML 锚点和别名（& 和 *），请把每一项的内容直接写出来",
                event.start_mark,
            )
        if self._depth >= MAX_YAML_DEPTH:
            raise _FileRefused(
                "yaml_too_deep", f"细则文件的层级太深（超过 {MAX_YAML_DEPTH} 层）", event.start_mark
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _construct_unique_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:
            continue  # an unhashable key is reported by construct_mapping below
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"字段「{excerpt(key)}」重复出现", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def _where(mark: Any) -> str:
    return f"第 {mark.line + 1} 行第 {mark.column + 1} 列" if mark is not None else "位置不明"


def load_yaml(text: str) -> Catalog:
    if len(text) > MAX_YAML_CHARS:
        raise CatalogError(
            [
                Problem(
                    None,
                    "yaml",
                    (
                        f"细则文件太长（{len(text)} 个字符，最多 {MAX_YAML_CHARS} 个），"
                        "请检查是否选错了文件"
                    ),
                )
            ],
            code="yaml_too_large",
        )
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: no arbitrary objects
    except _FileRefused as refused:
        raise CatalogError(
            [Problem(None, "yaml", f"{refused.message}（{_where(refused.mark)}）")],
            code=refused.code,
        ) from None
    except yaml.YAMLError as error:
        where = _where(getattr(error, "problem_mark", None))
        detail = excerpt(getattr(error, "problem", None) or str(error))
        raise CatalogError([Problem(None, "yaml", f"YAML 格式错误（{where}）：{detail}")]) from None
    except ValueError:
        # A scalar that looks like a date or a number but is none: 2024-02-30, or an integer
        # of more than 4,300 digits, which int() refuses. The constructor has no position.
        raise CatalogError(
            [
                Problem(
                    None,
                    "yaml",
                    "YAML 格式错误：有写错的日期或数字（如 2024-02-30，或位数过多的数字）",
                )
            ]
        ) from None
    if not isinstance(data, Mapping):
        raise CatalogError(
            [
                Problem(
                    None, "yaml", "细则文件的顶层必须是键值映射（name、categories、policy、items）"
                )
            ]
        )
    return parse_catalog(data)


def dump_yaml(catalog: Catalog) -> str:
    """Canonical YAML: the same catalog always gives the same bytes."""
    return yaml.safe_dump(
        catalog_to_dict(catalog),
        allow_unicode=True,
        sort_keys=False,
        default_flow_style=False,
        width=100,
    )
