"""What printed QR codes need from the app: the link a code carries, the font, the
villager's card, an activity's poster and display link, and the printed things the API and
the console both hand out (member cards, a household's plate, a binding code). The codes
themselves are drawn by points.qr."""

from __future__ import annotations

from dataclasses import astuple, dataclass
from datetime import datetime, timedelta

from flask import Response, current_app

from points import binding, card_render, cards
from points.activities import codes
from points.boards import links, render
from points.boards.page import FontSpec, find_font
from points.models import Household, Village, Villager
from points.models.activities import Activity
from points.qr import qr_png
from points.scope import Actor, authorize, get_visible
from points.tokens import TokenCodec

from .caller import qr_codec
from .clock import village_tz
from .downloads import download
from .extensions import db
from .render_cache import drawn_once, font_key


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


def card_face(
    codec: TokenCodec, villager: Villager, village: Village, *, draw: bool = True
) -> card_render.CardFace:
    """What the villager's valid member card shows, its QR drawn (`draw`), else only its
    link, drawn with the card."""
    household = villager.household
    url = token_url(current_app.config["PUBLIC_BASE_URL"], cards.card_token(codec, villager))
    return card_render.CardFace(
        village=village.name,
        household=household_label(household),
        name=villager.name,
        card_number=villager.card_number,
        qr_png=qr_png(url) if draw else b"",
        group=household.group.name if household.group is not None else None,
        qr_text=url,
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


def activity_poster(activity: Activity, url: str, kind: str) -> bytes:
    """A static activity's A4 poster (`png` or `pdf`) with its code carrying `url`, drawn
    once for the same text and code (backend/render_cache.py)."""
    text, font = activity_poster_text(activity), print_font()
    draw = card_render.poster_pdf if kind == "pdf" else card_render.poster_png
    return drawn_once(
        "poster", kind, lambda: draw(text, qr_png(url), font), astuple(text), url, font_key(font)
    )


def activity_poster_pdf(actor: Actor, activity_id: int) -> Response:
    """The poster of a static activity as a one-page A4 PDF, to print at its size; the API's
    poster.pdf and the console's 打印海报 both answer it."""
    activity, token = codes.poster_code(db.session, actor, qr_codec(), activity_id)
    url = token_url(current_app.config["PUBLIC_BASE_URL"], token)
    data = activity_poster(activity, url, "pdf")
    return download(
        data,
        "application/pdf",
        f"{activity.title}-签到海报.pdf",
        ascii_name=f"activity-{activity.id}-poster.pdf",
        inline=True,
        cache_control="private, no-store",
    )


def plate_url(token: str) -> str:
    """The page a household plate's QR opens (no login)."""
    return f"{current_app.config['PUBLIC_BASE_URL']}/h/{token}"


def plate_png(actor: Actor, household_id: int) -> bytes:
    """The household's plate (门牌) to print and hang at the gate; its QR opens the
    household's page. Makes the plate's link on first use: the caller commits."""
    household = get_visible(db.session, actor, Household, household_id)
    authorize(actor, "plate.print")
    link = links.public_link(db.session, household_id=household.id)
    village = db.session.get(Village, household.village_id)
    assert village is not None
    head = household.head
    shown = {
        "village": village.name,
        "head": head.name if head else (household.name or ""),
        "address": household.address or household.name or "",
    }
    url, font = plate_url(link.token), print_font()
    # Drawn once for the same plate (backend/render_cache.py): the key is all it shows.
    return drawn_once(
        "plate",
        "png",
        lambda: render.plate_png(
            village=shown["village"],
            head=shown["head"],
            address=shown["address"],
            qr_png=qr_png(url),
            font=font,
        ),
        shown,
        url,
        font_key(font),
    )


def member_card_png(villager: Villager, village: Village) -> bytes:
    """The villager's valid member card at 300 dpi, drawn once for the same card (its text
    and QR link; a reissued card is another link)."""
    face, font = card_face(qr_codec(), villager, village, draw=False), print_font()
    return drawn_once(
        "card",
        "png",
        lambda: card_render.card_png(face, font, card_render.CARD_DPI),
        astuple(face),
        font_key(font),
    )


def card_faces(
    actor: Actor, village_id: int, *, group_id: int | None = None, household_id: int | None = None
) -> tuple[Village, list[card_render.CardFace]]:
    """The member cards to print of a village's active villagers (or of one group's, or one
    household's), in the order they are cut and handed out."""
    village, villagers = cards.cards_to_print(
        db.session, actor, village_id, group_id=group_id, household_id=household_id
    )
    codec = qr_codec()
    return village, [card_face(codec, villager, village, draw=False) for villager in villagers]


def cards_download(village: Village, faces: list[card_render.CardFace]) -> Response:
    """The cards as one PDF of A4 sheets (10 to a sheet, with cut marks), shown in the
    browser to print. Drawing takes seconds: the caller ends its transaction first."""
    title = f"{village.name}积分卡"
    font = print_font()
    # Drawn once for the same cards (a sheet printed again, a second cadre opening it): the
    # key is every card's text and QR link, the title and the font.
    data = drawn_once(
        "cards",
        "pdf",
        lambda: card_render.cards_pdf(faces, font, title=title),
        [astuple(face) for face in faces],
        title,
        font_key(font),
    )
    return download(
        data,
        "application/pdf",
        f"{title}.pdf",
        ascii_name=f"cards-{village.id}.pdf",
        inline=True,
        cache_control="private, no-store",
    )


def display_path(activity_id: int, key: str) -> str:
    """Where a display link opens the activity's full-screen code: the key rides in the
    fragment, so it never reaches a server's log."""
    return f"/activities/{activity_id}/display#key={key}"


@dataclass(frozen=True)
class BindingCode:
    token: str
    url: str
    expires_at: datetime
    png: bytes  # the code to print or show, naming the villager it binds


def binding_code(actor: Actor, villager_id: int) -> BindingCode:
    """A single-use, expiring code that binds a villager's WeChat to this roster entry; its
    image names the villager (name, village, household), so the right person scans it.
    The caller commits."""
    ttl = timedelta(hours=current_app.config["BINDING_TOKEN_HOURS"])
    token, expires_at = binding.create_binding_token(
        db.session, actor, qr_codec(), villager_id, ttl
    )
    villager = db.session.get(Villager, villager_id)
    assert villager is not None
    village = db.session.get(Village, villager.household.village_id)
    assert village is not None
    url = token_url(current_app.config["PUBLIC_BASE_URL"], token)
    local = expires_at.astimezone(village_tz())
    png = card_render.binding_png(
        village=village.name,
        household=household_label(villager.household),
        name=villager.name,
        expires=f"{local.month}月{local.day}日 {local:%H:%M}",
        qr_png=qr_png(url),
        font=print_font(),
    )
    return BindingCode(token=token, url=url, expires_at=expires_at, png=png)
