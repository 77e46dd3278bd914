"""Printable images: the board (红黑榜) for the notice wall as PNG or PDF on A4/A3, the
household plate (门牌) and the cadre's statistics chart, drawn on the printed page of
points.boards.page.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from PIL import Image

from rules import merkle
from rules.periods import month_label

from .page import (
    DARK,
    DEFAULT_DPI,
    GOLD,
    GREEN,
    GREY,
    LIGHT_GREY,
    LIGHT_RED,
    RED,
    WHITE,
    FontSpec,
    Page,
    paper_pixels,
    png_to_pdf,
)

# Part of every printed picture's ETag and render cache key (backend/printed_boards.py,
# backend/render_cache.py): bump it with any change to how a board, a PDF or the statistics
# chart is drawn (here or in points.boards.page), so that no picture drawn by the old code
# is served again.
RENDER_VERSION = 1


def stars_text(stars: int) -> str:
    return "★" * stars if stars else ""


# ---- the board ------------------------------------------------------------------------------

SECTION_H = 62 + 44  # a list's heading and its table header
NOTE_H = 34


@dataclass(frozen=True)
class Plan:
    """How many rows of each list fit the page, and how tall they are."""

    red: int
    black: int
    notes: int
    row_h: float
    two_line_black: bool


def plan(board: dict[str, Any], height: float) -> Plan:
    """Share the page between the two lists (and a few correction notes) so that neither
    crowds the other out; a list cut short ends with a line that points to the QR."""
    red_n, black_n, notes_n = len(board["red"]), len(board["black"]), len(board["corrections"])
    notes = min(notes_n, 3)
    notes_h = (46 + NOTE_H * (notes + (notes_n > notes))) if notes_n else 0
    space = height - notes_h - 2 * SECTION_H - 40
    # Rows shrink (down to a size still read from a step away) before lists are cut.
    row_h = max(32.0, min(46.0, space / max(1, red_n + black_n)))
    slots = int(space // row_h)
    if red_n + black_n <= slots:
        red, black = red_n, black_n
    else:
        red = min(red_n, max(slots // 2, slots - black_n))
        black = min(black_n, slots - red)
        # A list cut short gives a row to its "另有 k 户" line.
        red, black = max(red - (red < red_n), 0), max(black - (black < black_n), 0)
    spare = space - (red + black + (red < red_n) + (black < black_n)) * row_h
    return Plan(red, black, notes, row_h, row_h >= 46 and spare >= 26 * black)


def board_page(
    board: dict[str, Any],
    *,
    paper: str,
    qr_png: bytes,
    font: FontSpec,
    dpi: int = DEFAULT_DPI,
    printed_on: str = "",
) -> Page:
    """The board as posted: header, red list (示范户), black list (限期整改户), corrections,
    and a QR to the online board. `board` is the public form (names already masked)."""
    width, height = paper_pixels(paper, dpi)
    page = Page(width, height, font)
    bottom = height / page.u
    margin = 50

    page.box(0, 0, 1000, 165, RED)
    page.text(500, 62, f"{board['village_name']}积分红黑榜", 62, WHITE, anchor="mm", bold=True)
    page.text(
        500,
        128,
        f"{board['period_label']}　·　全村 {board['households']} 户　·　"
        f"参与积分 {board['participating']} 户",
        26,
        WHITE,
        anchor="mm",
    )
    y = 190.0
    if board["status"] != "closed":
        page.box(margin, y - 10, 1000 - margin, y + 34, (255, 246, 214))
        page.text(
            500,
            y + 12,
            "本榜尚未结榜：公示期内的积分可能变动，仅供参考",
            22,
            (140, 90, 0),
            anchor="mm",
        )
        y += 56

    footer_top = bottom - 250 - (NOTICE_H if notice_lines(board) else 0)
    layout = plan(board, footer_top - y)
    y = _red_list(page, board, y, layout, margin)
    y = _black_list(page, board, y + 20, layout, margin)
    _corrections(page, board, y + 20, layout, margin)
    _board_footer(page, board, footer_top, bottom, qr_png, margin, printed_on)
    return page


def _row_font(row_h: float) -> int:
    return round(row_h * 0.6)


def _section(page: Page, y: float, title: str, color: tuple[int, int, int], margin: float) -> float:
    page.text(margin, y, title, 36, color, bold=True)
    page.box(margin, y + 48, 1000 - margin, y + 52, color)
    return y + 62


def _table_header(page: Page, y: float, columns: list[tuple[float, str]], margin: float) -> float:
    page.box(margin, y, 1000 - margin, y + 40, LIGHT_GREY)
    for x, label in columns:
        page.text(x, y + 20, label, 22, GREY, anchor="lm")
    return y + 44


def _more(page: Page, y: float, left: int, margin: float, row_h: float) -> float:
    page.text(
        margin + 10,
        y + row_h / 2,
        f"……另有 {left} 户，请扫码查看线上榜单",
        min(22, _row_font(row_h)),
        GREY,
        anchor="lm",
    )
    return y + row_h


def _red_list(page: Page, board: dict[str, Any], y: float, layout: Plan, margin: float) -> float:
    y = _section(page, y, "红榜 · 示范户", RED, margin)
    rows = board["red"]
    if not rows:
        page.text(margin + 10, y + 20, "本期暂无上榜户", 26, GREY, anchor="lm")
        return y + 50
    columns = [
        (margin + 15, "名次"),
        (margin + 130, "户主"),
        (margin + 400, "村民小组"),
        (margin + 640, "积分"),
        (margin + 760, "星级"),
    ]
    y = _table_header(page, y, columns, margin)
    row_h, size = layout.row_h, _row_font(layout.row_h)
    for n, row in enumerate(rows[: layout.red]):
        if n % 2:
            page.box(margin, y, 1000 - margin, y + row_h, LIGHT_RED)
        mid = y + row_h / 2
        page.text(margin + 15, mid, f"第{row['rank']}名", size, RED, anchor="lm", bold=True)
        page.text(margin + 130, mid, page.fit(row["name"], size, 260), size, anchor="lm")
        page.text(
            margin + 400,
            mid,
            page.fit(row.get("group") or "", size - 2, 230),
            size - 2,
            anchor="lm",
        )
        page.text(margin + 640, mid, str(row["points"]), size, anchor="lm", bold=True)
        page.text(margin + 760, mid, stars_text(row.get("stars") or 0), size, GOLD, anchor="lm")
        y += row_h
    if layout.red < len(rows):
        y = _more(page, y, len(rows) - layout.red, margin, layout.row_h)
    return y


def _black_items(row: dict[str, Any]) -> str:
    parts = []
    for item in row["items"]:
        if item["reversed"]:
            continue
        if item["kind"] == "veto":
            what = "一票否决" if item["item"] == "一票否决" else f"一票否决：{item['item']}"
            until = month_label(item["until_month"]) if item["until_month"] else ""
            parts.append(f"{what}，至{until}不参加评比")
        else:
            parts.append(f"{item['item']} {item['points']}")
    return "；".join(parts)


def _black_list(page: Page, board: dict[str, Any], y: float, layout: Plan, margin: float) -> float:
    y = _section(page, y, "黑榜 · 限期整改户", DARK, margin)
    rows = board["black"]
    if not rows:
        page.text(margin + 10, y + 20, "本期无扣分户", 26, GREY, anchor="lm")
        return y + 50
    columns = [
        (margin + 15, "户主"),
        (margin + 200, "村民小组"),
        (margin + 380, "扣分事项"),
        (margin + 810, "积分"),
    ]
    y = _table_header(page, y, columns, margin)
    size = _row_font(layout.row_h)
    for n, row in enumerate(rows[: layout.black]):
        # The items take two lines when the page has room; what is cut, the QR shows.
        lines = page.wrap(_black_items(row), 22, 410) if layout.two_line_black else []
        if len(lines) > 2:
            lines = [lines[0], page.fit("".join(lines[1:]), 22, 410)]
        if not layout.two_line_black:
            lines = [page.fit(_black_items(row), 20, 410)]
        row_h = 72 if len(lines) == 2 else layout.row_h
        if n % 2:
            page.box(margin, y, 1000 - margin, y + row_h, LIGHT_GREY)
        mid = y + row_h / 2
        page.text(margin + 15, mid, page.fit(row["name"], size, 175), size, anchor="lm")
        page.text(
            margin + 200,
            mid,
            page.fit(row.get("group") or "", size - 4, 170),
            size - 4,
            anchor="lm",
        )
        color = RED if row["vetoed"] else DARK
        for k, line in enumerate(lines):
            page.text(
                margin + 380,
                mid + (k - (len(lines) - 1) / 2) * 28,
                line,
                22 if layout.two_line_black else 20,
                color,
                anchor="lm",
            )
        page.text(margin + 810, mid, str(row["points"]), size, anchor="lm", bold=True)
        y += row_h
    if layout.black < len(rows):
        y = _more(page, y, len(rows) - layout.black, margin, layout.row_h)
    return y


def _corrections(page: Page, board: dict[str, Any], y: float, layout: Plan, margin: float) -> None:
    notes = board["corrections"]
    if not notes:
        return
    page.text(margin, y, "更正说明", 30, DARK, bold=True)
    y += 46
    for note in notes[: layout.notes]:
        text = f"{note['name']}：{note['note']}（{note['amount']:+d} 分）"
        page.text(margin + 10, y, page.fit(text, 22, 880), 22, GREY)
        y += NOTE_H
    if layout.notes < len(notes):
        page.text(
            margin + 10, y, f"……另有 {len(notes) - layout.notes} 条更正，请扫码查看", 20, GREY
        )


NOTICE_H = 90  # the fingerprint's lines, when the board commits to its month


def notice_lines(board: dict[str, Any]) -> list[str]:
    """What a board with a month root prints of it: the fingerprint (公示指纹, large, to be
    read from a metre and typed into a phone), then the full root and a hint (small print).
    None for a board closed before roots were kept, or not closed yet."""
    root_hex = board.get("month_root")
    if not root_hex:
        return []
    return [
        f"公示指纹 {merkle.fingerprint(root_hex)}",
        f"月度根 {root_hex}",
        "凭公示指纹可用手机核对本户本月积分确在本榜之内",
    ]


def _notice(page: Page, board: dict[str, Any], x: float, y: float, max_width: float) -> float:
    lines = notice_lines(board)
    if not lines:
        return y
    fingerprint_line, root_line, hint = lines
    page.text(x, y + 6, fingerprint_line, 36, DARK, bold=True)
    # The full root in small print: whoever checks the whole of it needs no trust in the
    # fingerprint's shortness.
    page.text(x, y + 56, page.fit(root_line, 13, max_width), 13, GREY)
    page.text(x, y + 74, page.fit(hint, 14, max_width), 14, GREY)
    return y + NOTICE_H


def _board_footer(
    page: Page,
    board: dict[str, Any],
    top: float,
    bottom: float,
    qr_png: bytes,
    margin: float,
    printed_on: str,
) -> None:
    page.box(margin, top, 1000 - margin, top + 3, RED)
    qr_size = 170
    with Image.open(io.BytesIO(qr_png)) as qr:
        page.paste(qr, 1000 - margin - qr_size, top + 18, qr_size)
    page.text(
        1000 - margin - qr_size / 2,
        top + 18 + qr_size + 4,
        "扫码查看线上榜单",
        18,
        GREY,
        anchor="ma",
    )
    lines = [
        "排名依据：公示期满无异议后记入的积分；兑换不减少排名积分，扣分减少。",
        f"名次规则：{board['tie_rule']}。",
        f"红榜为本期积分前 {board['red_list_size']} 名，一票否决户不参加评比；"
        "黑榜为本期有扣分或一票否决的农户。",
    ]
    if board.get("masked"):
        lines.append("为保护隐私，姓名已部分隐去。")
    y = top + 20
    for line in lines:
        for part in page.wrap(line, 18, 1000 - 2 * margin - qr_size - 30):
            page.text(margin, y, part, 18, GREY)
            y += 27
    y = _notice(page, board, margin, y, 1000 - 2 * margin - qr_size - 30)
    status = "已结榜发布" if board["status"] == "closed" else "未结榜"
    page.text(
        margin,
        max(y + 8, bottom - 56),
        f"{board['village_name']}村民委员会　{status}" + (f"　{printed_on}" if printed_on else ""),
        24,
        DARK,
        bold=True,
    )


def board_png(
    board: dict[str, Any],
    *,
    paper: str,
    qr_png: bytes,
    font: FontSpec,
    dpi: int = DEFAULT_DPI,
    printed_on: str = "",
) -> bytes:
    return board_page(
        board, paper=paper, qr_png=qr_png, font=font, dpi=dpi, printed_on=printed_on
    ).png(dpi)


def board_pdf(
    board: dict[str, Any],
    *,
    paper: str,
    qr_png: bytes,
    font: FontSpec,
    dpi: int = DEFAULT_DPI,
    printed_on: str = "",
) -> bytes:
    png = board_png(board, paper=paper, qr_png=qr_png, font=font, dpi=dpi, printed_on=printed_on)
    return board_pdf_of_png(board, png, dpi)


def board_pdf_of_png(board: dict[str, Any], png: bytes, dpi: int = DEFAULT_DPI) -> bytes:
    """The one-page PDF of the board's PNG (board_png's, at `dpi`), as board_pdf draws it."""
    title = f"{board['village_name']} {board['period_label']} 积分红黑榜"
    return png_to_pdf(png, dpi, title)


# ---- the household plate (门牌) ------------------------------------------------------------


def plate_png(
    *, village: str, head: str, address: str, qr_png: bytes, font: FontSpec, dpi: int = 300
) -> bytes:
    """A 10 × 14 cm plate to print and hang at the gate: the QR opens the household's page."""
    width, height = round(100 / 25.4 * dpi), round(140 / 25.4 * dpi)
    page = Page(width, height, font)
    bottom = height / page.u
    page.box(0, 0, 1000, bottom, WHITE, outline=RED, width=18)
    page.box(18, 18, 982, 250, RED)
    page.text(500, 105, village, 88, WHITE, anchor="mm", bold=True)
    page.text(500, 200, "文明积分户牌", 56, WHITE, anchor="mm")
    with Image.open(io.BytesIO(qr_png)) as qr:
        page.paste(qr, 170, 300, 660)
    page.text(500, 1010, page.fit(address, 60, 880), 60, DARK, anchor="mm", bold=True)
    page.text(500, 1100, page.fit(f"户主：{head}", 52, 880), 52, DARK, anchor="mm")
    page.text(500, bottom - 90, "扫码查看本户星级、本月积分和排名", 40, GREY, anchor="mm")
    # Printed once and hung at the gate: zlib's level 1, half the time of level 6 to
    # compress, for more bytes (about 95 KB).
    return page.png(dpi, level=1)


# ---- the statistics chart -------------------------------------------------------------------


def stats_png(stats: dict[str, Any], *, village: str, period_label: str, font: FontSpec) -> bytes:
    """The cadre's chart: points earned and deducted in each of the last 12 months, and the
    participation rate of each villager group (村民小组) in the period."""
    page = Page(1600, 1200, font)
    page.text(500, 40, f"{village} 积分统计　{period_label}", 34, DARK, anchor="mm", bold=True)
    page.text(
        500,
        85,
        f"参与率 {stats['participation_rate'] * 100:.1f}%"
        f"（{stats['participating']}/{stats['households']} 户）　"
        f"本期积分 {stats['points']}",
        22,
        GREY,
        anchor="mm",
    )
    _trend_chart(page, stats["trend"], 60, 130, 940, 420)
    _group_chart(page, stats["participation_by_group"], 60, 470, 940, 730)
    return page.png()


def _trend_chart(
    page: Page, trend: list[dict[str, Any]], x0: float, y0: float, x1: float, y1: float
) -> None:
    page.text(x0, y0, "近12个月积分（绿：加分，红：扣分）", 20, DARK, bold=True)
    top, base_bottom = y0 + 40, y1 - 60
    high = max([t["earned"] for t in trend] + [1])
    low = max([-t["deducted"] for t in trend] + [0])
    span = high + low
    zero = top + (base_bottom - top) * high / span
    page.box(x0, zero, x1, zero + 1, GREY)
    slot = (x1 - x0) / len(trend)
    for n, t in enumerate(trend):
        left = x0 + n * slot + slot * 0.2
        right = left + slot * 0.6
        if t["earned"]:
            page.box(left, zero - (zero - top) * t["earned"] / high, right, zero, GREEN)
            page.text(
                (left + right) / 2,
                zero - (zero - top) * t["earned"] / high - 4,
                str(t["earned"]),
                14,
                DARK,
                anchor="md",
            )
        if t["deducted"] and low:
            depth = (base_bottom - zero) * -t["deducted"] / low
            page.box(left, zero, right, zero + depth, RED)
            page.text(
                (left + right) / 2, zero + depth + 4, str(t["deducted"]), 14, DARK, anchor="ma"
            )
        page.text((left + right) / 2, y1 - 10, f"{int(t['month'][5:])}月", 16, GREY, anchor="md")


def _group_chart(
    page: Page, groups: list[dict[str, Any]], x0: float, y0: float, x1: float, y1: float
) -> None:
    page.text(x0, y0, "各村民小组参与率", 20, DARK, bold=True)
    shown = groups[:10]
    if not shown:
        return
    row_h = min(40, (y1 - y0 - 40) / len(shown))
    bar_left, bar_right = x0 + 200, x1 - 160
    for n, group in enumerate(shown):
        y = y0 + 40 + n * row_h
        page.text(x0, y + row_h / 2, page.fit(group["group"] or "", 18, 190), 18, anchor="lm")
        page.box(bar_left, y + row_h * 0.2, bar_right, y + row_h * 0.8, LIGHT_GREY)
        if group["rate"]:
            page.box(
                bar_left,
                y + row_h * 0.2,
                bar_left + (bar_right - bar_left) * group["rate"],
                y + row_h * 0.8,
                RED,
            )
        page.text(
            bar_right + 10,
            y + row_h / 2,
            f"{group['rate'] * 100:.0f}%（{group['participating']}/{group['households']}）",
            18,
            anchor="lm",
        )
