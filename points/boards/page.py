"""The printed page the boards, the household plates, the member cards and the township's
notice report are drawn on: the CJK font, a page with drawing helpers, paper sizes, and the
one-image-per-page PDF. Drawn with Pillow.

Chinese needs a CJK font, which Pillow does not ship. The font is found in this order: the
BOARD_FONT_PATH setting; Noto Sans SC from the pinned PyPI package `pylopdf-fonts-zh-cn` (so
`pip install -r requirements.txt` is all a fresh machine needs); Debian's fonts-noto-cjk,
fonts-wqy-microhei or fonts-wqy-zenhei. Without any, the request fails with a clear error
instead of printing boxes (豆腐块) on a board that will hang in the village square.

The PDF is the same page image at its paper size, its PNG data embedded losslessly (PDF's
FlateDecode with PNG predictors reads PNG's own compressed stream), so the printed board is
exactly the PNG that was checked.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import util as import_util
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from ..errors import DomainError

PAPER_MM = {"A4": (210, 297), "A3": (297, 420)}
DEFAULT_DPI = 200

RED = (200, 16, 46)
DARK = (33, 33, 33)
GREY = (110, 110, 110)
LIGHT_RED = (255, 240, 240)
LIGHT_GREY = (244, 244, 244)
WHITE = (255, 255, 255)
GOLD = (214, 151, 0)
GREEN = (46, 125, 50)
NO_LINE_START = frozenset("，。、；：？！）》」』”’%,.;:?!)")

# (path, face index): Noto CJK collections hold JP, KR, SC, TC, HK in that order; SC is 2.
DEBIAN_FONTS = (
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc", 2),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
)
PACKAGED_FONT = ("pylopdf_fonts_zh_cn", "NotoSansSC-Regular.otf")


class FontMissing(DomainError):
    status = 503
    code = "board_font_missing"
    message = "服务器缺少中文字体，暂时无法生成榜单图片，请联系管理员"


@dataclass(frozen=True)
class FontSpec:
    path: str
    index: int = 0


def find_font(configured: str | None = None) -> FontSpec:
    """The CJK font to draw with (see the module docstring for the order)."""
    if configured:
        if not Path(configured).is_file():
            raise FontMissing(details={"BOARD_FONT_PATH": configured})
        collection = "NotoSansCJK" in configured or "NotoSerifCJK" in configured
        return FontSpec(configured, 2 if collection and configured.endswith(".ttc") else 0)
    spec = import_util.find_spec(PACKAGED_FONT[0])
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            packaged = Path(folder) / PACKAGED_FONT[1]
            if packaged.is_file():
                return FontSpec(str(packaged))
    for path, index in DEBIAN_FONTS:
        if Path(path).is_file():
            return FontSpec(path, index)
    raise FontMissing()


@lru_cache(maxsize=10)
def _font(spec: FontSpec, size: int) -> ImageFont.FreeTypeFont:
    """The font at one pixel size. Each size is a FreeType face of its own, 2–3 MB of a
    worker's memory for the CJK font (half of it the font file's pages it maps): 64 of them
    grew a worker by 50 MB over the printed things of a county. One drawing uses at most 9
    sizes (a board; a card 7), and opening a face takes half a millisecond, so keeping the
    last 10 keeps every drawing's sizes at hand."""
    return ImageFont.truetype(spec.path, size=size, index=spec.index)


class Page:
    """A white page and a few drawing helpers in units of a thousandth of the page width, so
    an A3 board is the A4 one scaled up (readable from further away)."""

    def __init__(
        self, width: int, height: int, font: FontSpec, image: Image.Image | None = None
    ) -> None:
        """`image`: drawn on (of the page's size) instead of a white one."""
        self.image = image if image is not None else Image.new("RGB", (width, height), WHITE)
        self.draw = ImageDraw.Draw(self.image)
        self.font = font
        self.u = width / 1000

    def px(self, units: float) -> int:
        return round(units * self.u)

    def text(
        self,
        x: float,
        y: float,
        text: str,
        size: float,
        fill: tuple[int, int, int] = DARK,
        *,
        anchor: str = "la",
        bold: bool = False,
    ) -> None:
        font = _font(self.font, max(8, self.px(size)))
        stroke = max(1, self.px(size) // 30) if bold else 0
        self.draw.text(
            (self.px(x), self.px(y)),
            text,
            font=font,
            fill=fill,
            anchor=anchor,
            stroke_width=stroke,
            stroke_fill=fill,
        )

    def width_of(self, text: str, size: float) -> float:
        return self.draw.textlength(text, font=_font(self.font, max(8, self.px(size)))) / self.u

    def fit(self, text: str, size: float, max_width: float) -> str:
        """The text, cut with an ellipsis to fit the width."""
        if self.width_of(text, size) <= max_width:
            return text
        while text and self.width_of(text + "…", size) > max_width:
            text = text[:-1]
        return text + "…"

    def wrap(self, text: str, size: float, max_width: float) -> list[str]:
        """Lines that fit the width; closing punctuation never starts a line (避头)."""
        lines, line = [], ""
        for char in text:
            if line and char not in NO_LINE_START and self.width_of(line + char, size) > max_width:
                lines.append(line)
                line = char
            else:
                line += char
        return [*lines, line] if line else lines

    def box(
        self,
        x0: float,
        y0: float,
        x1: float,
        y1: float,
        fill: tuple[int, int, int],
        outline: tuple[int, int, int] | None = None,
        width: float = 0,
    ) -> None:
        self.draw.rectangle(
            (self.px(x0), self.px(y0), self.px(x1), self.px(y1)),
            fill=fill,
            outline=outline,
            width=self.px(width) if width else 0,
        )

    def paste(self, image: Image.Image, x: float, y: float, size: float) -> None:
        side = self.px(size)
        self.image.paste(
            image.convert("RGB").resize((side, side), Image.Resampling.NEAREST),
            (self.px(x), self.px(y)),
        )

    def png(self, dpi: int | None = None, level: int = 6) -> bytes:
        """The page as PNG; `level`: zlib's, 1 for a page printed once (half the time, a
        third more bytes)."""
        out = io.BytesIO()
        kwargs: dict[str, Any] = {"compress_level": level}
        if dpi:
            kwargs["dpi"] = (dpi, dpi)
        self.image.save(out, format="PNG", **kwargs)
        return out.getvalue()


def paper_pixels(paper: str, dpi: int) -> tuple[int, int]:
    width_mm, height_mm = PAPER_MM[paper]
    return round(width_mm / 25.4 * dpi), round(height_mm / 25.4 * dpi)


# ---- PDF ------------------------------------------------------------------------------------


def _png_chunks(png: bytes) -> tuple[dict[str, Any], bytes]:
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, header, idat = 8, {}, []
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos : pos + 8])
        body = png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            header = {
                "width": width,
                "height": height,
                "depth": depth,
                "color": color,
                "interlace": interlace,
            }
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
    return header, b"".join(idat)


def png_to_pdf(png: bytes, dpi: int, title: str = "") -> bytes:
    """A one-page PDF showing an 8-bit RGB PNG at `dpi` (the page takes the image's size)."""
    return pngs_to_pdf([png], dpi, title)


def pngs_to_pdf(pngs: list[bytes], dpi: int, title: str = "") -> bytes:
    """A PDF of one page per 8-bit RGB PNG, each shown at `dpi` (a page takes its image's
    size), the PNG data embedded losslessly as for the one-page board."""
    pages = []
    for png in pngs:
        width, height = png_size(png)
        page_w, page_h = width * 72 / dpi, height * 72 / dpi
        pages.append(PdfPage(page_w, page_h, [Placed(png, 0, 0, page_w, page_h)]))
    return pages_to_pdf(pages, title)


def png_size(png: bytes) -> tuple[int, int]:
    width, height = struct.unpack(">II", png[16:24])  # IHDR, the first chunk
    return width, height


@dataclass(frozen=True)
class Placed:
    """A PNG drawn on a PDF page: its top left corner `x`, `y` from the page's top left, and
    its size, in points (1/72 inch)."""

    png: bytes
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class PdfPage:
    """A PDF page (size in points): its images, then `drawing`, PDF content operators in the
    page's own coordinates (points from the bottom left), e.g. cut marks."""

    width: float
    height: float
    images: Sequence[Placed]
    drawing: bytes = b""


def pages_to_pdf(pages: Sequence[PdfPage], title: str = "") -> bytes:
    """A PDF of these pages, each image's PNG data embedded losslessly (FlateDecode with PNG
    predictors reads PNG's own compressed stream): what prints is the PNG that was drawn."""
    if not pages:
        raise ValueError("a PDF needs a page")
    title_hex = ("FEFF" + title.encode("utf-16-be").hex().upper()) if title else ""
    # 1 catalog, 2 pages, 3 info; then per page: the page, its images, its content.
    objects: list[bytes] = [
        b"",
        b"",
        f"<< /Title <{title_hex}> /Producer (Village Points) >>".encode(),
    ]
    kids = []
    for page in pages:
        page_no = len(objects) + 1
        kids.append(f"{page_no} 0 R")
        images, draws = [], []
        for n, placed in enumerate(page.images):
            header, data = _png_chunks(placed.png)
            if header.get("color") != 2 or header.get("depth") != 8 or header.get("interlace"):
                raise ValueError("expected a non-interlaced 8-bit RGB PNG")
            width = header["width"]
            images.append(
                (
                    f"<< /Type /XObject /Subtype /Image /Width {width} /Height {header['height']} "
                    f"/ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /FlateDecode "
                    f"/DecodeParms << /Predictor 15 /Colors 3 /BitsPerComponent 8 "
                    f"/Columns {width} >> /Length {len(data)} >>\nstream\n"
                ).encode()
                + data
                + b"\nendstream"
            )
            bottom = page.height - placed.y - placed.height
            at = f" {placed.x:.2f} {bottom:.2f}" if placed.x or bottom else " 0 0"
            draws.append(
                f"q {placed.width:.2f} 0 0 {placed.height:.2f}{at} cm /Im{n} Do Q".encode()
            )
        content = b"\n".join([*draws, page.drawing] if page.drawing else draws)
        xobjects = " ".join(f"/Im{n} {page_no + 1 + n} 0 R" for n in range(len(images)))
        objects += [
            (
                f"<< /Type /Page /Parent 2 0 R "
                f"/MediaBox [0 0 {page.width:.2f} {page.height:.2f}] "
                f"/Resources << /XObject << {xobjects} >> >> "
                f"/Contents {page_no + 1 + len(images)} 0 R >>"
            ).encode(),
            *images,
            f"<< /Length {len(content)} >>\nstream\n".encode() + content + b"\nendstream",
        ]
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>".encode()
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 3 0 R >>\n"
        f"startxref\n{xref}\n%%EOF\n".encode()
    )
    return out.getvalue()
