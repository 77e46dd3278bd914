"""QR codes for printing, all drawn by one function with the same choices: medium error
correction (a smudged or creased poster still scans) and the standard quiet zone of four
modules (a phone finds the code on a busy page)."""

from __future__ import annotations

import io
from typing import Any

import qrcode
from qrcode.constants import ERROR_CORRECT_M
from qrcode.image.pil import PilImage
from qrcode.image.svg import SvgPathImage

QUIET_ZONE = 4  # modules of white around the code


def qr_code(text: str, box_size: int = 10) -> qrcode.QRCode[Any]:
    """`text` as a QR code, the smallest version that holds it; `box_size` pixels a module
    when it is drawn as an image."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=box_size, border=QUIET_ZONE)
    code.add_data(text)
    code.make(fit=True)
    return code


def qr_png(text: str, box_size: int = 10) -> bytes:
    buffer = io.BytesIO()
    qr_code(text, box_size).make_image(image_factory=PilImage).save(buffer, format="PNG")
    return buffer.getvalue()


def qr_svg(text: str) -> str:
    """The code as one SVG path: scales to any print size without blur."""
    buffer = io.BytesIO()
    qr_code(text).make_image(image_factory=SvgPathImage).save(buffer)
    return buffer.getvalue().decode()


def qr_matrix(text: str) -> list[list[bool]]:
    """The code's modules with its quiet zone, for drawing it as vectors."""
    return qr_code(text).get_matrix()
