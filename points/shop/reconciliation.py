"""A shop's monthly settlement (对账): what the township owes the shop for the month's
fulfilled redemptions, totalled, itemised and exported as CSV or XLSX."""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Household, Redemption, RedemptionLine, Shop, Township, Village, Villager
from ..scope import Actor, authorize, get_visible
from ..spreadsheets import append_row, csv_bytes
from .redemption import FEN, lines_text, value_of


@dataclass(frozen=True)
class SettlementRow:
    redemption_id: int
    fulfilled_at: datetime
    source: str
    village: str
    household: str
    member: str
    items: str
    total_points: int
    cash_paid: Decimal
    points: int
    exchange_rate: Decimal
    value: Decimal


@dataclass(frozen=True)
class SettlementLine:
    reward_id: int
    name: str
    unit_points: int
    quantity: int
    points: int


@dataclass(frozen=True)
class Settlement:
    shop_id: int
    shop_name: str
    township_name: str
    month: str
    redemptions: int
    goods_points: int  # the goods at shelf prices
    cash_paid: Decimal  # collected by the shop itself, not reimbursed
    points: int  # points redeemed
    value: Decimal  # what the township owes the shop: each row's points at its rate
    lines: list[SettlementLine] = field(default_factory=list)
    rows: list[SettlementRow] = field(default_factory=list)


def settlement(session: Session, actor: Actor, shop_id: int, month: str) -> Settlement:
    """The shop's fulfilled redemptions whose redeem entry falls in `month` (the passbook's
    month, in the village's time zone), totalled and itemised."""
    shop = get_visible(session, actor, Shop, shop_id)
    authorize(actor, "settlement.read")
    township = session.get(Township, shop.township_id)
    assert township is not None
    fulfilled = (
        Redemption.shop_id == shop.id,
        Redemption.status == "fulfilled",
        Redemption.month == month,
    )
    # Columns, not objects, and the names joined in: a busy shop's month has hundreds of
    # rows, and loading each as an object with its lines, then its names by id, cost more
    # per row than the statement's whole reading.
    items: dict[int, list[tuple[str, int]]] = defaultdict(list)
    lines: dict[tuple[int, str, int], int] = defaultdict(int)
    for redemption_id, reward_id, name, unit, quantity in session.execute(
        select(
            RedemptionLine.redemption_id,
            RedemptionLine.reward_id,
            RedemptionLine.name,
            RedemptionLine.unit_points,
            RedemptionLine.quantity,
        )
        .join(Redemption, Redemption.id == RedemptionLine.redemption_id)
        .where(*fulfilled)
        .order_by(RedemptionLine.redemption_id, RedemptionLine.id)
    ):
        items[redemption_id].append((name, quantity))
        lines[(reward_id, name, unit)] += quantity
    rows = []
    for (
        redemption_id,
        fulfilled_at,
        source,
        village,
        household,
        member,
        total_points,
        cash_paid,
        points,
        rate,
    ) in session.execute(
        select(
            Redemption.id,
            Redemption.fulfilled_at,
            Redemption.source,
            Village.name,
            Household.name,
            Villager.name,
            Redemption.total_points,
            Redemption.cash_paid,
            Redemption.points,
            Redemption.exchange_rate,
        )
        .join(Village, Village.id == Redemption.village_id)
        .join(Household, Household.id == Redemption.household_id)
        .outerjoin(Villager, Villager.id == Redemption.member_id)
        .where(*fulfilled)
        .order_by(Redemption.fulfilled_at, Redemption.id)
    ):
        assert fulfilled_at is not None  # set with the status
        rows.append(
            SettlementRow(
                redemption_id=redemption_id,
                fulfilled_at=fulfilled_at,
                source=source,
                village=village,
                household=household or "",
                member=member or "",
                items=lines_text(items[redemption_id]),
                total_points=total_points,
                cash_paid=cash_paid,
                points=points,
                exchange_rate=rate,
                value=value_of(points, rate),
            )
        )
    return Settlement(
        shop_id=shop.id,
        shop_name=shop.name,
        township_name=township.name,
        month=month,
        redemptions=len(rows),
        goods_points=sum(r.total_points for r in rows),
        cash_paid=sum((r.cash_paid for r in rows), Decimal("0")),
        points=sum(r.points for r in rows),
        value=sum((r.value for r in rows), Decimal("0")).quantize(FEN),
        lines=[
            SettlementLine(reward_id, name, unit, quantity, unit * quantity)
            for (reward_id, name, unit), quantity in sorted(lines.items())
        ],
        rows=rows,
    )


@dataclass(frozen=True)
class SettlementTotal:
    """A shop's month as `settlement` totals it, without its rows and lines."""

    shop_id: int
    shop_name: str
    redemptions: int
    goods_points: int
    cash_paid: Decimal
    points: int
    value: Decimal


def settlement_totals(
    session: Session, actor: Actor, shops: Sequence[Shop], month: str
) -> list[SettlementTotal]:
    """`settlement`'s totals for each of these shops (ones the actor sees), from one query
    over the month's fulfilled redemptions of all of them."""
    authorize(actor, "settlement.read")
    found: dict[int, list[tuple[int, Decimal, int, Decimal]]] = defaultdict(list)
    if shops:
        for shop_id, total_points, cash_paid, points, rate in session.execute(
            select(
                Redemption.shop_id,
                Redemption.total_points,
                Redemption.cash_paid,
                Redemption.points,
                Redemption.exchange_rate,
            ).where(
                Redemption.shop_id.in_([s.id for s in shops]),
                Redemption.status == "fulfilled",
                Redemption.month == month,
            )
        ):
            found[shop_id].append((total_points, cash_paid, points, rate))
    return [
        SettlementTotal(
            shop_id=shop.id,
            shop_name=shop.name,
            redemptions=len(found[shop.id]),
            goods_points=sum(r[0] for r in found[shop.id]),
            cash_paid=sum((r[1] for r in found[shop.id]), Decimal("0")),
            points=sum(r[2] for r in found[shop.id]),
            value=sum((value_of(r[2], r[3]) for r in found[shop.id]), Decimal("0")).quantize(FEN),
        )
        for shop in shops
    ]


SOURCE_NAMES = {"order": "线上下单", "counter": "柜台兑换"}
ROW_HEADERS = (
    "兑换单号",
    "领取时间",
    "方式",
    "村",
    "户",
    "兑换人",
    "商品明细",
    "商品积分",
    "现金补差(元)",
    "实扣积分",
    "兑换比例(元/分)",
    "折合金额(元)",
)
LINE_HEADERS = ("商品编号", "商品名称", "单价(积分)", "数量", "积分小计")


def _row_cells(row: SettlementRow, tz: ZoneInfo) -> list[Any]:
    return [
        row.redemption_id,
        row.fulfilled_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
        SOURCE_NAMES[row.source],
        row.village,
        row.household,
        row.member,
        row.items,
        row.total_points,
        row.cash_paid,
        row.points,
        row.exchange_rate,
        row.value,
    ]


def _total_cells(s: Settlement) -> list[Any]:
    return [
        "合计",
        f"{s.redemptions} 单",
        "",
        "",
        "",
        "",
        "",
        s.goods_points,
        s.cash_paid,
        s.points,
        "",
        s.value,
    ]


def settlement_csv(s: Settlement, tz: ZoneInfo) -> bytes:
    """One row per redemption and a 合计 row; UTF-8 with a BOM, so Excel opens the Chinese
    right."""
    return csv_bytes([ROW_HEADERS, *(_row_cells(row, tz) for row in s.rows), _total_cells(s)])


def settlement_xlsx(s: Settlement, tz: ZoneInfo) -> bytes:
    """Sheet 兑换明细 (as the CSV, under a title row) and sheet 商品汇总 (per reward)."""
    # Imported here: openpyxl costs every worker 5 MB, and only this export needs it.
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "兑换明细"
    title = f"{s.township_name} {s.shop_name} {s.month} 积分兑换结算单"
    append_row(sheet, [title])
    sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(ROW_HEADERS))
    sheet["A1"].font = Font(bold=True, size=14)
    sheet["A1"].alignment = Alignment(horizontal="center")
    append_row(sheet, ROW_HEADERS)
    for row in s.rows:
        cells = _row_cells(row, tz)
        # Money as numbers so the sheet can sum them; Decimal is exact, float here is for
        # display and reads back equal to two places.
        cells[8], cells[10], cells[11] = (float(cells[8]), float(cells[10]), float(cells[11]))
        append_row(sheet, cells)
    total = _total_cells(s)
    total[8], total[11] = float(total[8]), float(total[11])
    for cell in append_row(sheet, total):
        cell.font = Font(bold=True)
    for column, width in zip(
        "ABCDEFGHIJKL", (10, 18, 10, 10, 14, 10, 36, 10, 12, 10, 14, 14), strict=True
    ):
        sheet.column_dimensions[column].width = width
    sheet.freeze_panes = "A3"

    summary = book.create_sheet("商品汇总")
    append_row(summary, LINE_HEADERS)
    for line in s.lines:
        append_row(
            summary, [line.reward_id, line.name, line.unit_points, line.quantity, line.points]
        )
    append_row(summary, ["合计", "", "", sum(line.quantity for line in s.lines), s.goods_points])
    summary.column_dimensions["B"].width = 24
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
