"""What printed QR codes need from the app: the link a code carries, the font, the
villager's card. The codes themselves are drawn by points.qr."""

from __future__ import annotations

from flask import current_app

from points import card_render, cards
from points.boards.page import FontSpec, find_font
from points.models import Household, Village, Villager
from points.qr import qr_png
from points.tokens import TokenCodec


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
        village=village.name,
        household=household_label(household),
        name=villager.name,
        card_number=villager.card_number,
        qr_png=qr_png(url),
        group=household.group.name if household.group is not None else None,
    )
