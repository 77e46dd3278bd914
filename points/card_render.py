"""Printed codes that say what they are: the member card (积分卡) at ID-1 size, a village's
cards on A4 sheets with cut marks, the activity poster (签到海报) and the binding code
(绑定码) slip. A bare QR, once printed, tells nobody whose or what it is.

Drawn with Pillow in the font of the boards (`boards.page.find_font`); the PDFs embed the
drawn pages losslessly (`boards.page.pngs_to_pdf`), so what prints is what was checked.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image

from .boards.page import (
    DARK,
    DEFAULT_DPI,
    GREY,
    RED,
    WHITE,
    FontSpec,
    Page,
    PdfPage,
    Placed,
    pages_to_pdf,
    paper_pixels,
    pngs_to_pdf,
    release_fonts,
)
from .qr import qr_png as draw_qr

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
    """What one member card shows (and carries in its QR): the QR drawn (`qr_png`), or only
    the text it carries (`qr_text`), drawn when the card is, so that a sheet found in the
    render cache draws no QR at all."""

    village: str
    household: str
    name: str
    card_number: str
    qr_png: bytes = b""
    group: str | None = None
    qr_text: str = ""

    def qr(self) -> bytes:
        return self.qr_png or draw_qr(self.qr_text)


def _paste_qr(page: Page, qr_png: bytes, x: float, y: float, size: float) -> None:
    with Image.open(io.BytesIO(qr_png)) as qr:
        page.paste(qr, x, y, size)


_QR_SIZE = 390
_QR_X, _QR_Y = 1000 - 30 - _QR_SIZE, 150
_LEFT = 40
_TEXT_W = _QR_X - _LEFT - 20


@lru_cache(maxsize=4)
def _card_background(village: str, font: FontSpec, dpi: int) -> Image.Image:
    """What every card of a village shows alike: the frame, the red band with the village
    and the title, and how to use the card. Drawn once per village (a village's cards print
    together); each card is a copy with its holder drawn on."""
    width, height = card_pixels(dpi)
    page = Page(width, height, font)
    bottom = height / page.u  # about 631 units: the page is 1000 wide
    page.box(0, 0, 999, bottom - 1, WHITE, outline=LIGHT_LINE, width=2)
    page.box(0, 0, 1000, 130, RED)
    page.text(40, 65, page.fit(village, 58, 600), 58, WHITE, anchor="lm", bold=True)
    page.text(960, 65, "村务积分卡", 44, WHITE, anchor="rm")
    # Below the holder's lines (at most three, ending by y = 460), at the foot of the card.
    y = max(300 + 3 * 50 + 10, bottom - 100)
    for line in page.wrap(CARD_INSTRUCTION, 27, _TEXT_W)[:2]:
        page.text(_LEFT, y, line, 27, GREY, anchor="lm")
        y += 38
    return page.image


def release() -> None:
    """Let go of what drawing cards keeps between calls (the villages' card backgrounds, the
    font's faces): a worker between two print jobs holds none of it."""
    _card_background.cache_clear()
    release_fonts()


def card_image(face: CardFace, font: FontSpec, dpi: int = CARD_DPI) -> Image.Image:
    """The front of a member card: village and title on a red band, the holder's name,
    household, group and card number, the QR, and how to use it."""
    width, height = card_pixels(dpi)
    page = Page(width, height, font, _card_background(face.village, font, dpi).copy())
    _paste_qr(page, face.qr(), _QR_X, _QR_Y, _QR_SIZE)
    page.text(_LEFT, 215, page.fit(face.name, 76, _TEXT_W), 76, DARK, anchor="lm", bold=True)
    y = 300.0
    lines = [f"农户：{face.household}"]
    if face.group:
        lines.append(f"小组：{face.group}")
    lines.append(f"卡号：{face.card_number}")
    for line in lines:
        page.text(_LEFT, y, page.fit(line, 34, _TEXT_W), 34, DARK, anchor="lm")
        y += 50
    number_y = _QR_Y + _QR_SIZE + 8
    page.text(_QR_X + _QR_SIZE / 2, number_y, face.card_number, 24, GREY, anchor="ma")
    return page.image


def card_png(face: CardFace, font: FontSpec, dpi: int = CARD_DPI, level: int = 6) -> bytes:
    out = io.BytesIO()
    card_image(face, font, dpi).save(out, format="PNG", compress_level=level, dpi=(dpi, dpi))
    return out.getvalue()


@dataclass(frozen=True)
class SheetLayout:
    """Where the cards of an A4 sheet go, in pixels at `dpi` from the sheet's top left."""

    dpi: int
    width: int
    height: int
    boxes: list[tuple[int, int, int, int]]  # x0, y0, x1, y1 of each card, row by row
    footer_y: int  # the top of the footer's line


def sheet_layout(dpi: int = CARD_DPI) -> SheetLayout:
    """2 columns × 5 rows of cards centred on A4, `GUTTER_MM` apart."""
    page_w, page_h = paper_pixels("A4", dpi)
    card_w, card_h = card_pixels(dpi)
    gutter = mm_to_px(GUTTER_MM, dpi)
    grid_w = SHEET_COLUMNS * card_w + (SHEET_COLUMNS - 1) * gutter
    grid_h = SHEET_ROWS * card_h + (SHEET_ROWS - 1) * gutter
    left, top = (page_w - grid_w) // 2, (page_h - grid_h) // 2
    boxes = []
    for n in range(CARDS_PER_SHEET):
        row, column = divmod(n, SHEET_COLUMNS)
        x, y = left + column * (card_w + gutter), top + row * (card_h + gutter)
        boxes.append((x, y, x + card_w, y + card_h))
    return SheetLayout(dpi, page_w, page_h, boxes, top + grid_h + round(14 * page_w / 1000))


def cut_marks(box: tuple[int, int, int, int], dpi: int) -> list[tuple[int, int, int, int]]:
    """Short lines outside each corner of a card, on its edges: where to cut, so that none
    falls on a card (x0, y0, x1, y1 in pixels)."""
    gap, length = mm_to_px(MARK_GAP_MM, dpi), mm_to_px(MARK_LEN_MM, dpi)
    x0, y0, x1, y1 = box
    marks = []
    for x, sx in ((x0, -1), (x1, 1)):
        for y, sy in ((y0, -1), (y1, 1)):
            marks.append((x + sx * gap, y, x + sx * (gap + length), y))
            marks.append((x, y + sy * gap, x, y + sy * (gap + length)))
    return marks


def _footer_png(text: str, layout: SheetLayout, font: FontSpec) -> bytes:
    """The sheet's footer line as a strip of the sheet's width from `footer_y` down to its
    foot."""
    strip = Page(layout.width, layout.height - layout.footer_y, font)
    strip.text(500, 0, text, 12, GREY, anchor="ma")
    return strip.png(layout.dpi)


def cards_pdf(
    faces: Sequence[CardFace], font: FontSpec, *, title: str, dpi: int = CARD_DPI
) -> bytes:
    """The cards, 10 to an A4 sheet (2 columns × 5 rows) with cut marks, one PDF page a
    sheet. Each card is its own image, embedded losslessly where the sheet places it, and the
    cut marks are lines of the PDF: the sheet is never drawn whole, which would take 35 MB
    and most of the time to compress its white."""
    layout = sheet_layout(dpi)
    pt = 72 / dpi  # points a pixel
    page_w, page_h = layout.width * pt, layout.height * pt
    line = max(1, dpi // 150) * pt
    sheets = [faces[i : i + CARDS_PER_SHEET] for i in range(0, len(faces), CARDS_PER_SHEET)]

    def pages() -> Iterator[PdfPage]:
        # A sheet at a time: its cards' PNGs are written into the PDF and let go before the
        # next sheet is drawn (a group's 300 cards held at once took 15 MB more).
        for number, sheet in enumerate(sheets, 1):
            placed, marks = [], []
            for face, box in zip(sheet, layout.boxes, strict=False):
                x0, y0, x1, y1 = box
                # Level 1: flat colour and white compress well anyway; a higher level costs
                # a second on a group's cards for little.
                png = card_png(face, font, dpi, level=1)
                placed.append(Placed(png, x0 * pt, y0 * pt, (x1 - x0) * pt, (y1 - y0) * pt))
                for a, b, c, d in cut_marks(box, dpi):
                    marks.append(
                        f"{a * pt:.2f} {page_h - b * pt:.2f} m {c * pt:.2f} {page_h - d * pt:.2f} l"
                    )
            footer = f"{title}　第 {number}/{len(sheets)} 页　沿裁切线裁下，每张 85.6 × 54 毫米"
            strip_h = (layout.height - layout.footer_y) * pt
            strip = _footer_png(footer, layout, font)
            placed.append(Placed(strip, 0, layout.footer_y * pt, page_w, strip_h))
            red, green, blue = (channel / 255 for channel in DARK)
            drawing = (
                f"q {red:.3f} {green:.3f} {blue:.3f} RG {line:.2f} w 0 J\n"
                + "\n".join(marks)
                + " S Q"
            )
            yield PdfPage(page_w, page_h, placed, drawing.encode())

    return pages_to_pdf(pages(), title)


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
