"""The scoring engine: a rule item, a moment and the subject's history in, points out.

It only decides. The caller reads the history from the ledger and records the result, so the
same question always gets the same answer, and every answer carries a reason a villager can
read on the passbook or the notice board.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from rules.catalog import RuleItem
from rules.periods import PERIOD_NAMES


class EvaluationError(ValueError):
    """The request itself is wrong (e.g. hours missing for an hourly item)."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class Usage:
    """What one item already gave one subject (member or household) in one period.

    `points` is read as a magnitude, so a caller may pass a deduction's total as -10 or 10.
    """

    count: int = 0
    points: int = 0


@dataclass(frozen=True)
class History:
    """Usage of this item by this subject in the day/week/month/quarter/year containing the
    moment evaluated, keyed by period name; `ever_count` counts every earlier award (for
    items that pay once)."""

    by_period: Mapping[str, Usage] = field(default_factory=dict)
    ever_count: int = 0


@dataclass(frozen=True)
class Evaluation:
    points: int  # signed: negative for a deduction
    capped: bool  # a limit cut the points or the units
    units: int | None  # units counted for a per_unit item, after max_units
    reason: str


def _check_units(item: RuleItem, units: int | None) -> int | None:
    if item.kind != "per_unit":
        if units is None or (units == 1 and not isinstance(units, bool)):
            return None
        raise EvaluationError(f"「{item.name}」按次计分，不需要填写数量")
    if units is None:
        raise EvaluationError(f"「{item.name}」按{item.unit}计分，请填写数量")
    if isinstance(units, bool) or not isinstance(units, int):
        raise EvaluationError(f"「{item.name}」的数量必须是整数")
    if units < 1:
        raise EvaluationError(f"「{item.name}」的数量至少为 1，现为 {units}")
    return units


def _not_in_effect_reason(item: RuleItem, at: datetime) -> str:
    day = at.date().isoformat()
    if item.effective_from is not None and at.date() < item.effective_from:
        return (
            f"「{item.name}」自 {item.effective_from.isoformat()} 起施行，"
            f"{day} 尚未生效，本次不计分"
        )
    assert item.effective_to is not None
    return f"「{item.name}」已于 {item.effective_to.isoformat()} 停止施行，本次不计分"


def _veto_reason(item: RuleItem) -> str:
    assert item.veto is not None
    effects = []
    if item.veto.wipe_available:
        effects.append("清零本户可用积分")
    if item.veto.bar_periods:
        effects.append(f"{item.veto.bar_periods} 个月内不得上红榜、不参加评先评优")
    return f"一票否决（{item.name}）：{'，'.join(effects)}；本项不计分"


def _cap_limit(item: RuleItem, history: History, raw: int) -> tuple[int, str | None]:
    """The most this award may still give (as a magnitude) and why, over all the item's caps;
    the tightest cap wins."""
    verb = "扣" if item.klass == "deduction" else "计"
    allowed, why = raw, None
    for cap in item.caps:
        used = history.by_period.get(cap.period, Usage())
        name = PERIOD_NAMES[cap.period]
        if cap.max_count is not None and used.count >= cap.max_count:
            limit = 0
            note = f"{name}已达上限 {cap.max_count} 次，本次不{verb}分"
        elif cap.max_points is not None:
            remaining = max(0, cap.max_points - abs(used.points))
            limit = min(raw, remaining)
            if limit == 0:
                note = f"{name}已达上限 {cap.max_points} 分，本次不{verb}分"
            else:
                note = (
                    f"{name}最多{verb} {cap.max_points} 分，已{verb} {abs(used.points)} 分，"
                    f"本次只{verb} {limit} 分"
                )
        else:
            continue
        if limit < allowed:
            allowed, why = limit, note
    return allowed, why


def evaluate(
    item: RuleItem, at: datetime, history: History, units: int | None = None
) -> Evaluation:
    """Points this item gives now, given what it already gave this subject.

    Applying a non-zero result (count + 1, points + |points| in every period) never takes
    the subject past any of the item's caps. A result of 0 points should not be recorded as
    usage.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise EvaluationError("评分时间缺少时区，无法确定属于哪一天")
    counted_units = _check_units(item, units)
    if not item.is_effective(at.date()):
        return Evaluation(0, False, counted_units, _not_in_effect_reason(item, at))
    if item.kind == "veto":
        return Evaluation(0, False, None, _veto_reason(item))
    if item.kind == "once" and history.ever_count >= 1:
        return Evaluation(0, True, None, f"「{item.name}」只计一次，已享受过，本次不计分")

    verb = "扣" if item.klass == "deduction" else "计"
    magnitude = abs(item.points)
    notes: list[str] = []
    capped = False
    if counted_units is not None:
        unit, max_units = item.unit, item.max_units
        assert max_units is not None
        if counted_units > max_units:
            notes.append(
                f"每次最多{verb} {max_units} {unit}，申报 {counted_units} {unit}，"
                f"按 {max_units} {unit}{verb}"
            )
            counted_units, capped = max_units, True
        raw = magnitude * counted_units
        basis = f"按细则每{unit}{verb} {magnitude} 分，{counted_units} {unit}共{verb} {raw} 分"
    else:
        raw = magnitude
        basis = f"按细则{verb} {raw} 分"

    allowed, cap_note = _cap_limit(item, history, raw)
    if cap_note is not None:
        capped = True
    if allowed == 0 and cap_note is not None:
        # Nothing counts, so the arithmetic of the basis would only confuse.
        reason = cap_note
    else:
        reason = "；".join([*notes, basis, *([cap_note] if cap_note else [])])
    points = -allowed if item.klass == "deduction" else allowed
    return Evaluation(points, capped, counted_units, reason)
