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
import math
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import util as import_util
from pathlib import Path
from typing import Any

import png as pypng  # (its module is `png`; a PNG written row by row)
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


@lru_cache(maxsize=3)
def _font(spec: FontSpec, size: int) -> ImageFont.FreeTypeFont:
    """The font at one pixel size. Each size is a FreeType face of its own, and each face
    maps the font file anew: its tables, and each glyph it draws with the pages around it,
    3–4 MB of a worker's memory for the CJK font (`ImageFont.truetype` from bytes would copy
    the whole 8 MB file into every face instead). A drawing uses 3 sizes at a time (a list's
    rows: name, group, points) and opening a face takes half a millisecond, so 3 are kept:
    an A3 board opens 37 faces instead of 24 with 10 kept, which held 35 MB."""
    return ImageFont.truetype(spec.path, size=size, index=spec.index)


def release_fonts() -> None:
    """Close the faces kept for drawing: a worker between two drawings holds none of them
    (the web app calls it as each request ends; the next drawing opens its 3 or 4 again)."""
    _font.cache_clear()


# A recorded page is drawn in strips of about this many bytes (Pillow keeps 4 bytes a pixel
# of an RGB image): an A3 board at 200 dpi drawn whole takes 31 MB of a worker's memory.
STRIP_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class _Drawn:
    """One drawing call of a recorded page, in pixels, with the rows it may touch."""

    top: int
    bottom: int  # inclusive
    kind: str  # "text", "box" or "paste"
    args: tuple[Any, ...]


class Page:
    """A white page and a few drawing helpers in units of a thousandth of the page width, so
    an A3 board is the A4 one scaled up (readable from further away).

    With `image` the page is drawn on it at once (a card, wanted as a picture: `image`).
    Without one it is recorded, and drawn a strip at a time as `png` writes it: the same
    calls on the same pixels, in the same order, so the picture is the same, but no more
    than STRIP_BYTES of it is in memory at once."""

    def __init__(
        self, width: int, height: int, font: FontSpec, image: Image.Image | None = None
    ) -> None:
        """`image`: drawn on (of the page's size) instead of a white one."""
        self.width, self.height = width, height
        self._image = image
        self._recorded: list[_Drawn] = []
        # A recorded page measures text on a pixel of its own (the same mode, so the same
        # hinting as the strips it is drawn on).
        self.draw = ImageDraw.Draw(image if image is not None else Image.new("RGB", (1, 1)))
        self.font = font
        self.u = width / 1000

    @property
    def image(self) -> Image.Image:
        """The page whole (a recorded page is drawn now, and is no longer recorded)."""
        if self._image is None:
            self._image = Image.new("RGB", (self.width, self.height), WHITE)
            self.draw = ImageDraw.Draw(self._image)
            for drawn in self._recorded:
                _replay(self.draw, self._image, drawn, 0)
            self._recorded = []
        return self._image

    def px(self, units: float) -> int:
        return round(units * self.u)

    def _add(self, top: int, bottom: int, kind: str, *args: Any) -> None:
        drawn = _Drawn(top, bottom, kind, args)
        if self._image is None:
            self._recorded.append(drawn)
        else:
            _replay(self.draw, self._image, drawn, 0)

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
        xy = (self.px(x), self.px(y))
        top = bottom = xy[1]
        if self._image is None:
            # The rows its glyphs cover, and one more each side: a strip it does not touch
            # draws nothing of it anyway.
            _, high, _, low = self.draw.textbbox(
                xy, text, font=font, anchor=anchor, stroke_width=stroke
            )
            top, bottom = math.floor(high) - 1, math.ceil(low) + 1
        self._add(top, bottom, "text", xy, text, self.font, font.size, fill, anchor, stroke)

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
        corners = (self.px(x0), self.px(y0), self.px(x1), self.px(y1))
        self._add(
            corners[1], corners[3], "box", corners, fill, outline, self.px(width) if width else 0
        )

    def paste(self, image: Image.Image, x: float, y: float, size: float) -> None:
        side = self.px(size)
        at = (self.px(x), self.px(y))
        resized = image.convert("RGB").resize((side, side), Image.Resampling.NEAREST)
        self._add(at[1], at[1] + side - 1, "paste", resized, at)

    def png(self, dpi: int | None = None, level: int = 6) -> bytes:
        """The page as PNG; `level`: zlib's, 1 for a page printed once (half the time, a
        third more bytes)."""
        if self._image is not None:
            out = io.BytesIO()
            kwargs: dict[str, Any] = {"compress_level": level}
            if dpi:
                kwargs["dpi"] = (dpi, dpi)
            self._image.save(out, format="PNG", **kwargs)
            return out.getvalue()
        return self._strips_png(dpi, level)

    def _strips_png(self, dpi: int | None, level: int) -> bytes:
        """The recorded page drawn a strip at a time, its rows handed to pypng as they are
        drawn (Pillow writes only a whole image). pypng leaves each row unfiltered (PNG
        filter 0, which the PDF's predictor reads as well); the page's flat colour
        compresses better so than with Pillow's filters (an A3 board: 530 KB instead of
        680 at level 6)."""
        per_metre = round(dpi / 0.0254) if dpi else None
        writer = pypng.Writer(
            self.width,
            self.height,
            greyscale=False,
            bitdepth=8,
            compression=level,
            x_pixels_per_unit=per_metre,
            y_pixels_per_unit=per_metre,
            unit_is_meter=per_metre is not None,
        )
        out = io.BytesIO()
        writer.write_packed(out, self._rows())
        return out.getvalue()

    def _rows(self) -> Iterator[memoryview]:
        """The page's rows of RGB bytes, drawn STRIP_BYTES of pixels at a time."""
        width, height = self.width, self.height
        rows = max(1, STRIP_BYTES // (4 * width))
        stride = 3 * width
        for top in range(0, height, rows):
            strip = Image.new("RGB", (width, min(rows, height - top)), WHITE)
            draw = ImageDraw.Draw(strip)
            last = top + strip.height - 1
            for drawn in self._recorded:
                if drawn.bottom >= top and drawn.top <= last:
                    _replay(draw, strip, drawn, top)
            raw = memoryview(strip.tobytes())
            del strip, draw
            for start in range(0, len(raw), stride):
                yield raw[start : start + stride]


def _replay(draw: ImageDraw.ImageDraw, image: Image.Image, drawn: _Drawn, top: int) -> None:
    """Draw a recorded call on `image`, whose first row is the page's row `top`."""
    if drawn.kind == "text":
        (x, y), text, spec, size, fill, anchor, stroke = drawn.args
        draw.text(
            (x, y - top),
            text,
            font=_font(spec, size),
            fill=fill,
            anchor=anchor,
            stroke_width=stroke,
            stroke_fill=fill,
        )
    elif drawn.kind == "box":
        (x0, y0, x1, y1), fill, outline, width = drawn.args
        draw.rectangle((x0, y0 - top, x1, y1 - top), fill=fill, outline=outline, width=width)
    else:
        picture, (x, y) = drawn.args
        image.paste(picture, (x, y - top))


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


def pages_to_pdf(pages: Iterable[PdfPage], title: str = "") -> bytes:
    """A PDF of these pages, each image's PNG data embedded losslessly (FlateDecode with PNG
    predictors reads PNG's own compressed stream): what prints is the PNG that was drawn.
    Each page is written as it comes, so that a generator of pages (a village's cards, a
    sheet at a time) holds one page's images at a time, not the whole print job's."""
    title_hex = ("FEFF" + title.encode("utf-16-be").hex().upper()) if title else ""
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}

    def put(number: int, *body: bytes) -> None:
        offsets[number] = out.tell()
        out.write(f"{number} 0 obj\n".encode())
        for part in body:
            out.write(part)
        out.write(b"\nendobj\n")

    # 1 catalog, 2 pages, 3 info (written last: the pages' numbers are known then); then
    # per page: the page, its images, its content.
    kids = []
    page_no = 4
    for page in pages:
        kids.append(f"{page_no} 0 R")
        content_no = page_no + 1 + len(page.images)
        xobjects = " ".join(f"/Im{n} {page_no + 1 + n} 0 R" for n in range(len(page.images)))
        put(
            page_no,
            (
                f"<< /Type /Page /Parent 2 0 R "
                f"/MediaBox [0 0 {page.width:.2f} {page.height:.2f}] "
                f"/Resources << /XObject << {xobjects} >> >> "
                f"/Contents {content_no} 0 R >>"
            ).encode(),
        )
        draws = []
        for n, placed in enumerate(page.images):
            header, data = _png_chunks(placed.png)
            if header.get("color") != 2 or header.get("depth") != 8 or header.get("interlace"):
                raise ValueError("expected a non-interlaced 8-bit RGB PNG")
            width = header["width"]
            put(
                page_no + 1 + n,
                (
                    f"<< /Type /XObject /Subtype /Image /Width {width} /Height {header['height']} "
                    f"/ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /FlateDecode "
                    f"/DecodeParms << /Predictor 15 /Colors 3 /BitsPerComponent 8 "
                    f"/Columns {width} >> /Length {len(data)} >>\nstream\n"
                ).encode(),
                data,
                b"\nendstream",
            )
            bottom = page.height - placed.y - placed.height
            at = f" {placed.x:.2f} {bottom:.2f}" if placed.x or bottom else " 0 0"
            draws.append(
                f"q {placed.width:.2f} 0 0 {placed.height:.2f}{at} cm /Im{n} Do Q".encode()
            )
        content = b"\n".join([*draws, page.drawing] if page.drawing else draws)
        put(content_no, f"<< /Length {len(content)} >>\nstream\n".encode(), content, b"\nendstream")
        page_no = content_no + 1
    if not kids:
        raise ValueError("a PDF needs a page")
    put(1, b"<< /Type /Catalog /Pages 2 0 R >>")
    put(2, f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>".encode())
    put(3, f"<< /Title <{title_hex}> /Producer (Village Points) >>".encode())
    xref = out.tell()
    out.write(f"xref\n0 {page_no}\n0000000000 65535 f \n".encode())
    for number in range(1, page_no):
        out.write(f"{offsets[number]:010d} 00000 n \n".encode())
    out.write(
        f"trailer\n<< /Size {page_no} /Root 1 0 R /Info 3 0 R >>\n"
        f"startxref\n{xref}\n%%EOF\n".encode()
    )
    return out.getvalue()
