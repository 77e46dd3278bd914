"""The board (红黑榜) as posted and printed: names as the wall shows them, the online board's
address its QR carries, and the PNG and PDF drawn from it, with their caching. Shared by the
API (GET /villages/{id}/board.png|.pdf, …/board, /b/{token}) and the console's board page,
which both check the caller's scope first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Response, current_app, request

from points.boards import links, privacy, render
from points.boards.board import village_board
from points.boards.standings import Period
from points.models import Village
from points.models.boards import PublicLink
from points.qr import qr_png

from .clock import now, village_tz
from .downloads import download
from .extensions import db
from .qr import print_font
from .render_cache import cached, content_key, font_key

PAPERS = ("A4", "A3")


def _base_url() -> str:
    return str(current_app.config["PUBLIC_BASE_URL"])


def board_url(token: str, period: Period, board: dict[str, Any]) -> str:
    """The online board's address, as its QR prints it. A board that commits to its month
    carries its full root, so the phone that scans the paper learns what was printed and
    the page can say whether the board online is still that one."""
    url = f"{_base_url()}/b/{token}?period={period.key}"
    root_hex = board.get("month_root")
    return f"{url}&root={root_hex}" if root_hex else url


def board_link(village_id: int, period: Period, board: dict[str, Any]) -> str:
    link = links.public_link(db.session, village_id=village_id)
    return board_url(link.token, period, board)


def as_posted(village_id: int, board: dict[str, Any]) -> dict[str, Any]:
    prefs = privacy.board_prefs(db.session, [village_id])[village_id]
    return privacy.public_board(board, prefs, privacy.opted_out_among(db.session, board))


def posted_board(village_id: int, period: Period) -> dict[str, Any]:
    """The board as the wall shows it (names masked as the village sets, opt-outs hidden)."""
    return as_posted(village_id, village_board(db.session, village_id, period, village_tz()))


def printed_on(board: dict[str, Any]) -> str:
    """The date line of a printed board: a closed month's is the day it was published, so
    its picture stays the same from one day to the next; the running month's, today."""
    closed_at = board.get("closed_at") if board.get("status") == "closed" else None
    if isinstance(closed_at, datetime):
        day = closed_at.astimezone(village_tz()).date()
        return f"{day.year}年{day.month}月{day.day}日公布"
    today = now().astimezone(village_tz()).date()
    return f"{today.year}年{today.month}月{today.day}日打印"


def board_etag(board: dict[str, Any], paper: str, url: str, printed_on: str) -> str:
    """Everything the picture is drawn from: the board as posted (its lists with stars and
    items, corrections, the month's root, the red list's size and the tie rule, names masked
    or withdrawn at the households' and the village's wish), the paper, the resolution, the
    QR's link, the date printed on it, the font and the drawing code's version; the same
    inputs draw the same picture. Also the picture's name in the render cache."""
    return content_key(
        board,
        paper,
        current_app.config["BOARD_DPI"],
        url,
        printed_on,
        font_key(print_font()),
    )


def board_cache(board: dict[str, Any], versioned: bool) -> str:
    # A closed month's board is frozen, but a household may still withdraw its name from the
    # posted board (or the village start masking names), which must reach the phones that
    # show it. So the long cache is for the versioned address only (`?v=` the picture's
    # ETag, as GET …/board gives it in `png_url`): a withdrawal makes a new address, and the
    # phone asks for that. Unversioned, a day, then a revalidation that costs a 304. The
    # running month changes with every award: always revalidated. Private either way: the
    # answer is for a logged-in caller.
    if board.get("status") == "closed":
        return "private, max-age=31536000, immutable" if versioned else "private, max-age=86400"
    return "private, no-cache"


def png_url(
    village_id: int, period: Period, board: dict[str, Any], link: PublicLink | None
) -> str | None:
    """Where the phone gets the board's picture (A4): for a closed month, under an address
    versioned by the picture's ETag, which may be cached for good. Only once the board's
    public link exists (made when it is first printed): this read writes nothing. `board`
    is the board as `village_board` read it for the caller, names unmasked (its `mine`, the
    caller's own place, is not on the picture); `link` the village's `existing_link`."""
    base = f"/api/v1/villages/{village_id}/board.png?period={period.key}&size=A4"
    if link is None or board.get("status") != "closed":
        return base
    posted = as_posted(village_id, {**board, "mine": None})  # as posted_board reads it
    url = board_url(link.token, period, posted)
    return f"{base}&v={board_etag(posted, 'A4', url, printed_on(posted))}"


def printed_board(
    village: Village, period: Period, *, paper: str, kind: str, version: str | None = None
) -> Response:
    """The board of a village the caller may read, drawn as a PNG or a one-page PDF on
    `paper` (A4 or A3), names as on the wall, with a QR to the online board (made on the
    first print, hence the commit). The PNG answers 304 to a client that holds it."""
    board = posted_board(village.id, period)
    url = board_link(village.id, period, board)
    db.session.commit()
    date_line = printed_on(board)
    etag = board_etag(board, paper, url, date_line)
    if kind == "png":
        cache = board_cache(board, versioned=version == etag)
        if request.if_none_match.contains_weak(etag):
            # Drawing the board is the costly part; a phone that holds it is told so.
            return Response(status=304, headers={"ETag": f'"{etag}"', "Cache-Control": cache})
    dpi = current_app.config["BOARD_DPI"]

    def png() -> bytes:
        # Drawn once for a content (the ETag names everything drawn), then read from the
        # render cache by every worker: the drawing and its PNG compression are the cost.
        return cached(
            f"board-{etag}.png",
            lambda: render.board_png(
                board,
                paper=paper,
                qr_png=qr_png(url),
                font=print_font(),
                dpi=dpi,
                printed_on=date_line,
            ),
        )

    if kind == "pdf":
        # The PDF embeds the PNG as it is: a board printed as PNG first costs no second drawing.
        data = cached(f"board-{etag}.pdf", lambda: render.board_pdf_of_png(board, png(), dpi))
    else:
        data = png()
    if kind == "png":
        response = Response(data, mimetype="image/png", headers={"Cache-Control": cache})
        response.set_etag(etag)
        return response
    return download(
        data,
        "application/pdf",
        f"{village.name}{period.key}红黑榜-{paper}.pdf",
        ascii_name=f"board-{village.id}-{period.key}-{paper}.pdf",
        inline=True,
        cache_control="private, no-store",
    )
