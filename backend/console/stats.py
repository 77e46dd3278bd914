"""统计: a township's villages side by side (participation, points per household, points
redeemed), its points by category and its 12-month trend, as charts drawn on the server
(inline SVG, no script) with the table beside each.

The figures are the API's: GET /townships/<id>/stats (points.boards.stats.township_stats),
each village's statistics (village_stats) summed over the township, and the month's
redemptions from the points report (points.shop.liability)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import render_template, request

from points.boards import stats as board_stats
from points.boards.standings import parse_period, period_label
from points.errors import Invalid
from points.models import Township
from points.scope import COUNTY, authorize, get_visible, visible
from points.shop import liability
from rules.periods import month_key

from ..clock import now, village_tz
from ..extensions import db
from . import bp, menu_item, session

ACTION = "ranking.township"
menu_item("console.stats", "乡镇统计", ACTION)

# The charts' drawing area, in SVG units (the SVG scales to its box).
WIDTH = 640
LABEL_WIDTH = 120
BAR_HEIGHT = 26
GAP = 10
LINE_HEIGHT = 240
MARGIN = 36


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    shown: str  # the value as printed at the bar's end
    x: float
    y: float
    width: float
    negative: bool = False


@dataclass(frozen=True)
class BarChart:
    bars: list[Bar]
    width: int
    height: int
    zero: float  # x of the zero line
    label_width: int
    bar_height: int


def bar_chart(rows: list[tuple[str, float, str]]) -> BarChart:
    """Horizontal bars, one per (label, value, printed value); negative values go left of
    the zero line."""
    top = max([v for _, v, _ in rows if v > 0], default=0)
    bottom = min([v for _, v, _ in rows if v < 0], default=0)
    span = (top - bottom) or 1
    room = WIDTH - LABEL_WIDTH - 70  # leave space for the printed value
    zero = LABEL_WIDTH + room * (-bottom / span)
    bars = []
    for n, (label, value, printed) in enumerate(rows):
        length = room * abs(value) / span
        bars.append(
            Bar(
                label=label,
                value=value,
                shown=printed,
                x=round(zero - length if value < 0 else zero, 1),
                y=GAP + n * (BAR_HEIGHT + GAP),
                width=round(length, 1),
                negative=value < 0,
            )
        )
    return BarChart(
        bars, WIDTH, GAP + len(rows) * (BAR_HEIGHT + GAP), round(zero, 1), LABEL_WIDTH, BAR_HEIGHT
    )


@dataclass(frozen=True)
class Line:
    name: str
    css: str
    points: str  # the polyline's "x,y x,y …"
    dots: list[tuple[float, float, int]]


@dataclass(frozen=True)
class LineChart:
    lines: list[Line]
    ticks: list[tuple[float, str]]  # x of each month and its label
    grid: list[tuple[float, int]]  # y of each grid line and its value
    width: int
    height: int
    left: int
    right: int
    zero: float


def line_chart(months: list[str], series: list[tuple[str, str, list[int]]]) -> LineChart:
    """One line per (name, css class, values by month), on a shared scale that includes 0."""
    values = [v for _, _, vs in series for v in vs]
    top, bottom = max(values + [0]), min(values + [0])
    span = (top - bottom) or 1
    left, right = MARGIN + 24, WIDTH - 12
    plot_top, plot_bottom = 12, LINE_HEIGHT - MARGIN
    step = (right - left) / max(len(months) - 1, 1)

    def y(value: float) -> float:
        return round(plot_bottom - (value - bottom) * (plot_bottom - plot_top) / span, 1)

    lines = []
    for name, css, vs in series:
        dots = [(round(left + n * step, 1), y(v), v) for n, v in enumerate(vs)]
        lines.append(Line(name, css, " ".join(f"{x},{yy}" for x, yy, _ in dots), dots))
    grid = [(y(bottom + span * k / 4), round(bottom + span * k / 4)) for k in range(5)]
    ticks = [(round(left + n * step, 1), m[5:] + "月") for n, m in enumerate(months)]
    return LineChart(lines, ticks, grid, WIDTH, LINE_HEIGHT, left, right, y(0))


def _percent(rate: float) -> str:
    return f"{rate * 100:.0f}%"


def township_figures(township_id: int, period_key: str) -> dict[str, Any]:
    """The page's figures: the API's township comparison, the township's points by category
    and 12-month trend (each one query over all its villages) and the month's redemptions
    per village."""
    session.load()
    period = parse_period(period_key)
    if period.kind != "month":
        raise Invalid("请选择月份（YYYY-MM）", code="invalid_period")
    villages = board_stats.township_stats(db.session, township_id, period)
    ids = [row["village_id"] for row in villages]
    redeemed = liability.month_redeemed(db.session, ids, period.key)
    for row in villages:
        row["redeemed"] = redeemed.get(row["village_id"], 0)
    categories = {
        c["category"]: {k: c[k] for k in ("earned", "deducted", "corrected", "net")}
        for c in board_stats.points_by_category(db.session, ids, period)
    }
    trend = {
        m["month"]: {k: m[k] for k in ("points", "earned", "deducted", "participating")}
        for m in (board_stats.trend(db.session, ids, period.last) if ids else [])
    }
    by_category = sorted(categories.items(), key=lambda kv: -kv[1]["earned"])
    months = sorted(trend)
    return {
        "period": period,
        "period_label": period_label(period),
        "villages": villages,
        "categories": by_category,
        "trend": [(m, trend[m]) for m in months],
        "participation_chart": bar_chart(
            [
                (v["village"], v["participation_rate"], _percent(v["participation_rate"]))
                for v in villages
            ]
        ),
        "per_household_chart": bar_chart(
            [
                (v["village"], v["points_per_household"], f"{v['points_per_household']:g}")
                for v in villages
            ]
        ),
        "redeemed_chart": bar_chart(
            [(v["village"], v["redeemed"], str(v["redeemed"])) for v in villages]
        ),
        "category_chart": bar_chart([(name, c["net"], str(c["net"])) for name, c in by_category]),
        "trend_chart": line_chart(
            months,
            [
                ("净积分", "net", [trend[m]["points"] for m in months]),
                ("加分", "earned", [trend[m]["earned"] for m in months]),
                ("扣分", "deducted", [trend[m]["deducted"] for m in months]),
            ],
        )
        if months
        else None,
    }


@bp.get("/stats")
def stats() -> str:
    actor = session.load()
    authorize(actor, ACTION)
    township_id = request.args.get("township", type=int) or actor.township_id
    townships = (
        list(db.session.scalars(visible(actor, Township).order_by(Township.id)))
        if actor.role == COUNTY
        else []
    )
    if township_id is None and townships:
        township_id = townships[0].id
    if township_id is None:
        raise Invalid("请选择乡镇", code="township_required")
    township = get_visible(db.session, actor, Township, township_id)
    period_key = request.args.get("period") or month_key(now().astimezone(village_tz()))
    return render_template(
        "console/stats/index.html",
        township=township,
        townships=townships,
        period_key=period_key,
        **township_figures(township.id, period_key),
    )
