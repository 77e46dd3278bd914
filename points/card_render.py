"""Printed codes that say what they are: the member card (积分卡) at ID-1 size, a village's
cards on A4 sheets with cut marks, the activity poster (签到海报) and the binding code
(绑定码) slip. A bare QR, once printed, tells nobody whose or what it is.

Drawn with Pillow in the font of the boards (`boards.page.find_font`); the PDFs embed the
drawn pages losslessly (`boards.page.pngs_to_pdf`), so what prints is what was checked.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw

from .boards.page import (
    DARK,
    DEFAULT_DPI,
    GREY,
    RED,
    WHITE,
    FontSpec,
    Page,
    paper_pixels,
    pngs_to_pdf,
)

# ISO/IEC 7810 ID-1, the size of a bank card: it fits a wallet and a card sleeve.
CARD_MM = (85.6, 54.0)
CARD_DPI = 300
CARD_INSTRUCTION = "到村积分超市或活动现场出示此卡，由工作人员扫码"
# A sheet: 2 columns × 5 rows of cards on A4, 3 mm apart so each has its own cut line.
SHEET_COLUMNS, SHEET_ROWS = 2, 5
CARDS_PER_SHEET = SHEET_COLUMNS * SHEET_ROWS
GUTTER_MM = 3.0
MARK_GAP_MM, MARK_LEN_MM = 0.6, 2.0
CHECKIN_INSTRUCTION = "打开微信小程序「村务积分」扫码签到"
BINDING_INSTRUCTION = "请本人打开微信小程序「村务积分」扫码，绑定后即可查看本户积分"
LIGHT_LINE = (200, 200, 200)


def mm_to_px(mm: float, dpi: int) -> int:
    return round(mm / 25.4 * dpi)


def card_pixels(dpi: int = CARD_DPI) -> tuple[int, int]:
    """The card's size in pixels at `dpi` (1011 × 638 at 300 dpi)."""
    return mm_to_px(CARD_MM[0], dpi), mm_to_px(CARD_MM[1], dpi)


@dataclass(frozen=True)
class CardFace:
    """What one member card shows (and carries in its QR)."""

    village: str
    household: str
    name: str
    card_number: str
    qr_png: bytes
    group: str | None = None


def _paste_qr(page: Page, qr_png: bytes, x: float, y: float, size: float) -> None:
    with Image.open(io.BytesIO(qr_png)) as qr:
        page.paste(qr, x, y, size)


def card_image(face: CardFace, font: FontSpec, dpi: int = CARD_DPI) -> Image.Image:
    """The front of a member card: village and title on a red band, the holder's name,
    household, group and card number, the QR, and how to use it."""
    width, height = card_pixels(dpi)
    page = Page(width, height, font)
    bottom = height / page.u  # about 631 units: the page is 1000 wide
    page.box(0, 0, 999, bottom - 1, WHITE, outline=LIGHT_LINE, width=2)
    page.box(0, 0, 1000, 130, RED)
    page.text(40, 65, page.fit(face.village, 58, 600), 58, WHITE, anchor="lm", bold=True)
    page.text(960, 65, "村务积分卡", 44, WHITE, anchor="rm")
    qr_size = 390
    qr_x, qr_y = 1000 - 30 - qr_size, 150
    _paste_qr(page, face.qr_png, qr_x, qr_y, qr_size)
    left, text_w = 40, qr_x - 40 - 20
    page.text(left, 215, page.fit(face.name, 76, text_w), 76, DARK, anchor="lm", bold=True)
    y = 300.0
    lines = [f"农户：{face.household}"]
    if face.group:
        lines.append(f"小组：{face.group}")
    lines.append(f"卡号：{face.card_number}")
    for line in lines:
        page.text(left, y, page.fit(line, 34, text_w), 34, DARK, anchor="lm")
        y += 50
    page.text(qr_x + qr_size / 2, qr_y + qr_size + 8, face.card_number, 24, GREY, anchor="ma")
    y = max(y + 10, bottom - 100)
    for line in page.wrap(CARD_INSTRUCTION, 27, text_w)[:2]:
        page.text(left, y, line, 27, GREY, anchor="lm")
        y += 38
    return page.image


def card_png(face: CardFace, font: FontSpec, dpi: int = CARD_DPI) -> bytes:
    out = io.BytesIO()
    card_image(face, font, dpi).save(out, format="PNG", dpi=(dpi, dpi))
    return out.getvalue()


def _cut_marks(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], dpi: int) -> None:
    """Short lines outside each corner, on the card's edges: where to cut, drawn so that
    none falls on a card."""
    gap, length = mm_to_px(MARK_GAP_MM, dpi), mm_to_px(MARK_LEN_MM, dpi)
    x0, y0, x1, y1 = box
    line = max(1, dpi // 150)
    for x, sx in ((x0, -1), (x1, 1)):
        for y, sy in ((y0, -1), (y1, 1)):
            draw.line((x + sx * gap, y, x + sx * (gap + length), y), fill=DARK, width=line)
            draw.line((x, y + sy * gap, x, y + sy * (gap + length)), fill=DARK, width=line)


def sheet_pngs(
    faces: Sequence[CardFace], font: FontSpec, *, title: str, dpi: int = CARD_DPI
) -> list[bytes]:
    """The cards, 10 to an A4 sheet (2 columns × 5 rows) with cut marks, one PNG a sheet."""
    page_w, page_h = paper_pixels("A4", dpi)
    card_w, card_h = card_pixels(dpi)
    gutter = mm_to_px(GUTTER_MM, dpi)
    grid_w = SHEET_COLUMNS * card_w + (SHEET_COLUMNS - 1) * gutter
    grid_h = SHEET_ROWS * card_h + (SHEET_ROWS - 1) * gutter
    left, top = (page_w - grid_w) // 2, (page_h - grid_h) // 2
    sheets = [faces[i : i + CARDS_PER_SHEET] for i in range(0, len(faces), CARDS_PER_SHEET)]
    pngs = []
    for number, sheet in enumerate(sheets, 1):
        page = Page(page_w, page_h, font)
        for n, face in enumerate(sheet):
            row, column = divmod(n, SHEET_COLUMNS)
            x, y = left + column * (card_w + gutter), top + row * (card_h + gutter)
            page.image.paste(card_image(face, font, dpi), (x, y))
            _cut_marks(page.draw, (x, y, x + card_w, y + card_h), dpi)
        footer = f"{title}　第 {number}/{len(sheets)} 页　沿裁切线裁下，每张 85.6 × 54 毫米"
        page.text(500, (top + grid_h) / page.u + 14, footer, 12, GREY, anchor="ma")
        out = io.BytesIO()
        # Level 1: the sheets are mostly white and flat colour, which compress well anyway;
        # a higher level costs seconds on a village's worth of sheets for little.
        page.image.save(out, format="PNG", compress_level=1, dpi=(dpi, dpi))
        pngs.append(out.getvalue())
    return pngs


def cards_pdf(
    faces: Sequence[CardFace], font: FontSpec, *, title: str, dpi: int = CARD_DPI
) -> bytes:
    return pngs_to_pdf(sheet_pngs(faces, font, title=title, dpi=dpi), dpi, title)


# ---- the activity poster --------------------------------------------------------------------


@dataclass(frozen=True)
class PosterText:
    """What an activity's printed code says beside it."""

    village: str
    title: str
    time: str
    place: str | None
    instruction: str = CHECKIN_INSTRUCTION


def poster_page(text: PosterText, qr_png: bytes, font: FontSpec, dpi: int = DEFAULT_DPI) -> Page:
    """An A4 poster: the activity's title, time and place, the code below and how to scan
    it, to pin at the door of the meeting room or the work site."""
    width, height = paper_pixels("A4", dpi)
    page = Page(width, height, font)
    bottom = height / page.u
    page.box(0, 0, 1000, 150, RED)
    page.text(500, 75, f"{text.village}　活动签到", 52, WHITE, anchor="mm", bold=True)
    y = 200.0
    for line in page.wrap(text.title, 64, 880)[:2]:
        page.text(500, y, line, 64, DARK, anchor="ma", bold=True)
        y += 84
    y += 16
    page.text(500, y, page.fit(f"时间：{text.time}", 34, 880), 34, DARK, anchor="ma")
    y += 52
    if text.place:
        page.text(500, y, page.fit(f"地点：{text.place}", 34, 880), 34, DARK, anchor="ma")
        y += 52
    qr_size = min(620, bottom - y - 200)
    _paste_qr(page, qr_png, 500 - qr_size / 2, y + 20, qr_size)
    y += 20 + qr_size + 20
    page.text(500, y, page.fit(text.instruction, 40, 900), 40, RED, anchor="ma", bold=True)
    page.text(500, bottom - 50, "请在签到时间内扫码，代签请找村干部扫积分卡", 24, GREY, anchor="mm")
    return page


def poster_png(text: PosterText, qr_png: bytes, font: FontSpec, dpi: int = DEFAULT_DPI) -> bytes:
    return poster_page(text, qr_png, font, dpi).png(dpi)


def poster_pdf(text: PosterText, qr_png: bytes, font: FontSpec, dpi: int = DEFAULT_DPI) -> bytes:
    return pngs_to_pdf([poster_png(text, qr_png, font, dpi)], dpi, text.title)


def _xml(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def poster_svg(text: PosterText, matrix: list[list[bool]]) -> str:
    """The poster as SVG on A4 (in millimetres): the code stays sharp at any size, and the
    text is text, drawn by the printing computer's Chinese font."""
    modules = len(matrix)
    qr_mm = 120.0
    cell = qr_mm / modules
    qr_x, qr_y = (210 - qr_mm) / 2, 95.0 if text.place else 88.0
    path = "".join(
        f"M{qr_x + x * cell:.3f} {qr_y + y * cell:.3f}h{cell:.3f}v{cell:.3f}h-{cell:.3f}z"
        for y, row in enumerate(matrix)
        for x, dark in enumerate(row)
        if dark
    )
    fonts = "'Noto Sans SC','Noto Sans CJK SC','Source Han Sans SC','Microsoft YaHei',sans-serif"
    lines = [
        '<rect x="0" y="0" width="210" height="30" fill="#C8102E"/>',
        f'<text x="105" y="19" font-size="10" fill="#fff" font-weight="bold" '
        f'text-anchor="middle">{_xml(text.village)}　活动签到</text>',
        f'<text x="105" y="50" font-size="13" fill="#212121" font-weight="bold" '
        f'text-anchor="middle">{_xml(text.title)}</text>',
        f'<text x="105" y="66" font-size="7" fill="#212121" text-anchor="middle">'
        f"时间：{_xml(text.time)}</text>",
    ]
    if text.place:
        lines.append(
            f'<text x="105" y="77" font-size="7" fill="#212121" '
            f'text-anchor="middle">地点：{_xml(text.place)}</text>'
        )
    lines += [
        f'<path d="{path}" fill="#000"/>',
        f'<text x="105" y="{qr_y + qr_mm + 14:.1f}" font-size="8" fill="#C8102E" '
        f'font-weight="bold" text-anchor="middle">{_xml(text.instruction)}</text>',
        '<text x="105" y="287" font-size="5" fill="#6E6E6E" text-anchor="middle">'
        "请在签到时间内扫码，代签请找村干部扫积分卡</text>",
    ]
    body = "\n".join(lines)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="210mm" height="297mm" '
        f'viewBox="0 0 210 297" font-family="{fonts}">\n'
        f'<rect width="210" height="297" fill="#fff"/>\n{body}\n</svg>\n'
    )


# ---- the binding code -----------------------------------------------------------------------


def binding_png(
    *,
    village: str,
    household: str,
    name: str,
    expires: str,
    qr_png: bytes,
    font: FontSpec,
    dpi: int = DEFAULT_DPI,
) -> bytes:
    """A slip (90 × 120 mm) with the binding code and whom it binds, so the right person
    scans it: a code for 张三 scanned by his neighbour binds the neighbour to 张三."""
    width, height = mm_to_px(90, dpi), mm_to_px(120, dpi)
    page = Page(width, height, font)
    bottom = height / page.u
    page.box(0, 0, 999, bottom - 1, WHITE, outline=LIGHT_LINE, width=3)
    page.box(0, 0, 1000, 150, RED)
    page.text(500, 75, "村务积分 微信绑定码", 62, WHITE, anchor="mm", bold=True)
    page.text(500, 230, page.fit(name, 96, 900), 96, DARK, anchor="mm", bold=True)
    page.text(500, 330, page.fit(f"{village}　{household}", 48, 900), 48, DARK, anchor="mm")
    _paste_qr(page, qr_png, 200, 390, 600)
    y = 1020.0
    for line in page.wrap(BINDING_INSTRUCTION, 40, 900)[:2]:
        page.text(500, y, line, 40, GREY, anchor="mm")
        y += 56
    page.text(500, bottom - 55, f"仅限本人使用　{expires}前有效，用后作废", 36, RED, anchor="mm")
    return page.png(dpi)
