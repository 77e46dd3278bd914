"""QR images for printing: PNG with a quiet zone, medium error correction (a smudged poster
still scans); and what printed codes need from the app (the font, the villager's card)."""

from __future__ import annotations

import io

import qrcode
from flask import current_app
from qrcode.constants import ERROR_CORRECT_M
from qrcode.image.pil import PilImage

from points import card_render, cards
from points.boards.page import FontSpec, find_font
from points.models import Household, Village, Villager
from points.tokens import TokenCodec


def qr_png(data: str, box_size: int = 10) -> bytes:
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=box_size, border=4)
    code.add_data(data)
    code.make(fit=True)
    buffer = io.BytesIO()
    code.make_image(image_factory=PilImage).save(buffer, format="PNG")
    return buffer.getvalue()


def qr_matrix(data: str) -> list[list[bool]]:
    """The code's modules with its quiet zone, for drawing it as vectors."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=4)
    code.add_data(data)
    code.make(fit=True)
    return code.get_matrix()


def token_url(base_url: str, token: str) -> str:
    return f"{base_url}/q/{token}"


def print_font() -> FontSpec:
    """The CJK font of everything printed (boards, plates, cards, posters)."""
    return find_font(current_app.config.get("BOARD_FONT_PATH") or None)


def household_label(household: Household) -> str:
    """How a card names a household: its name, else its head's (王大山户), else its address."""
    if household.name:
        return household.name
    head = household.head
    if head is not None:
        return f"{head.name}户"
    return household.address or f"第{household.id}户"


def card_face(codec: TokenCodec, villager: Villager, village: Village) -> card_render.CardFace:
    """What the villager's valid member card shows, its QR included."""
    household = villager.household
    url = token_url(current_app.config["PUBLIC_BASE_URL"], cards.card_token(codec, villager))
    return card_render.CardFace(
        village=village.name, household=household_label(household), name=villager.name,
        card_number=villager.card_number, qr_png=qr_png(url),
        group=household.group.name if household.group is not None else None)
