"""What printed QR codes need from the app: the link a code carries, the font, the
villager's card, an activity's poster and display link. The codes themselves are drawn by
points.qr."""

from __future__ import annotations

from flask import Response, current_app

from points import card_render, cards
from points.activities import codes
from points.boards.page import FontSpec, find_font
from points.models import Household, Village, Villager
from points.models.activities import Activity
from points.qr import qr_png
from points.scope import Actor
from points.tokens import TokenCodec

from .caller import qr_codec
from .clock import village_tz
from .downloads import download
from .extensions import db


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


# ---- an activity's poster and display screen ------------------------------------------------


def activity_poster_text(activity: Activity) -> card_render.PosterText:
    """What an activity's poster says beside its code: the village, the title, when (in the
    village's time) and where."""
    village = db.session.get(Village, activity.village_id)
    assert village is not None
    tz = village_tz()
    start, end = activity.starts_at.astimezone(tz), activity.ends_at.astimezone(tz)
    day = f"{start.year}年{start.month}月{start.day}日"
    if end.date() == start.date():
        when = f"{day} {start:%H:%M}–{end:%H:%M}"
    else:
        when = f"{day} {start:%H:%M} 至 {end.month}月{end.day}日 {end:%H:%M}"
    return card_render.PosterText(
        village=village.name, title=activity.title, time=when, place=activity.place
    )


def activity_poster_pdf(actor: Actor, activity_id: int) -> Response:
    """The poster of a static activity as a one-page A4 PDF, to print at its size; the API's
    poster.pdf and the console's 打印海报 both answer it."""
    activity, token = codes.poster_code(db.session, actor, qr_codec(), activity_id)
    url = token_url(current_app.config["PUBLIC_BASE_URL"], token)
    data = card_render.poster_pdf(activity_poster_text(activity), qr_png(url), print_font())
    return download(
        data,
        "application/pdf",
        f"{activity.title}-签到海报.pdf",
        ascii_name=f"activity-{activity.id}-poster.pdf",
        inline=True,
        cache_control="private, no-store",
    )


def display_path(activity_id: int, key: str) -> str:
    """Where a display link opens the activity's full-screen code: the key rides in the
    fragment, so it never reaches a server's log."""
    return f"/activities/{activity_id}/display#key={key}"
