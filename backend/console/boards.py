"""红黑榜: a village's monthly board as it will be posted, its PNG and PDF on A4 or A3, closing
the month (结榜) and the claims in public notice (公示), printable. The same services and
scope checks as GET /villages/{id}/board, …/board.png|.pdf, POST …/board/close and GET
/villages/{id}/notices."""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, url_for
from sqlalchemy import Row
from werkzeug.wrappers import Response

from points import claims
from points.boards import closing
from points.boards.standings import Period, parse_period
from points.errors import Invalid
from points.models import Village
from points.scope import Actor, authorize, get_visible, visible
from rules import merkle
from rules.periods import add_months, month_key

from .. import printed_boards
from ..clock import now, village_tz
from ..extensions import db
from . import bp, forms, menu_item, session

menu_item("console.boards", "红黑榜", "board.read")

# The notice is printed whole for the wall; a village has a few dozen claims in notice at
# most, the bound keeps a runaway list from making a page nobody could print.
NOTICE_LIMIT = 300
# How far back the month picker offers months (a closed board stays readable by URL).
PICKER_MONTHS = 12


def _this_month() -> str:
    return month_key(now().astimezone(village_tz()))


def _month(text: str | None) -> Period:
    period = parse_period(text or _this_month())
    if period.kind != "month":
        raise Invalid("请选择月份（YYYY-MM）", code="invalid_period", details={"period": text})
    return period


def _village_id(text: str | None) -> int | None:
    if not text:
        return None
    try:
        return int(text)
    except ValueError as exc:
        raise Invalid("村的编号不正确", details={"village_id": text}) from exc


def _required_village_id(text: str | None) -> int:
    village_id = _village_id(text)
    if village_id is None:
        raise Invalid("请选择村", details={"village_id": None})
    return village_id


def _villages(actor: Actor) -> list[Row[tuple[int, str]]]:
    """The villages whose board the staff member may read, for the picker (one for a cadre):
    their ids and names only. Village objects would be expired by the page's COMMIT and then
    read back one query each while the picker is drawn (300 queries for a county)."""
    return list(
        db.session.execute(
            visible(actor, Village).with_only_columns(Village.id, Village.name).order_by(Village.id)
        )
    )


def _chosen(
    actor: Actor, villages: list[Row[tuple[int, str]]], wanted: int | None
) -> Village | None:
    """The village asked for (404 outside the actor's scope), else the cadre's own, else the
    first the actor sees."""
    wanted = wanted if wanted is not None else actor.village_id
    if wanted is None:
        if not villages:
            return None
        wanted = villages[0].id
    # get_visible gives the 404 for a village outside the actor's scope.
    return get_visible(db.session, actor, Village, wanted)


def _page() -> str:
    """The board page for the month and village asked for (query, or the close form's
    fields when a close was refused)."""
    actor = session.load()
    authorize(actor, "board.read")
    period = _month(request.values.get("month"))
    villages = _villages(actor)
    village = _chosen(actor, villages, _village_id(request.values.get("village_id")))
    context: dict[str, Any] = {
        "period": period,
        "this_month": _this_month(),
        "months": [add_months(_this_month(), -n) for n in range(PICKER_MONTHS)],
        "villages": villages,
        "village": village,
        "board": None,
        "notices": [],
        "more_notices": False,
        "fingerprint": None,
        "papers": printed_boards.PAPERS,
        "can_close": False,
    }
    if village is not None:
        board = printed_boards.posted_board(village.id, period)
        in_notice = list(
            db.session.scalars(claims.notices_statement(village.id).limit(NOTICE_LIMIT + 1))
        )
        context.update(
            board=board,
            fingerprint=merkle.fingerprint(board["month_root"]) if board["month_root"] else None,
            notices=claims.notice_views(
                db.session, actor, in_notice[:NOTICE_LIMIT], now(), village_tz()
            ),
            more_notices=len(in_notice) > NOTICE_LIMIT,
            can_close=actor.can("board.close"),
        )
    # End the read with COMMIT, as the API's board does (psycopg keeps prepared statements).
    db.session.commit()
    return render_template("console/boards/board.html", **context)


@bp.get("/boards")
def boards() -> str:
    return _page()


def _printed(kind: str) -> Response:
    actor = session.load()
    # The role first: a clerk is refused whatever the address says.
    authorize(actor, "board.read")
    village = get_visible(
        db.session, actor, Village, _required_village_id(request.args.get("village_id"))
    )
    paper = request.args.get("paper", "a4").upper()
    if paper not in printed_boards.PAPERS:
        raise Invalid("纸张只能是 A4 或 A3", details={"paper": request.args.get("paper")})
    return printed_boards.printed_board(
        village, _month(request.args.get("month")), paper=paper, kind=kind
    )


@bp.get("/boards/board.png")
def board_png() -> Response:
    return _printed("png")


@bp.get("/boards/board.pdf")
def board_pdf() -> Response:
    return _printed("pdf")


@bp.post("/boards/close")
@forms.writes(on_refusal=_page)
def close_month() -> Response:
    """结算本月: publish the month's board, frozen from now on (POST …/board/close)."""
    actor = session.load()
    authorize(actor, "board.close")  # as close_board does, before reading the form
    village_id = _required_village_id(request.form.get("village_id"))
    month = _month(request.form.get("month")).key
    closing.close_board(
        db.session,
        actor,
        village_id,
        month,
        now=now(),
        tz=village_tz(),
        force=request.form.get("force") == "1",
    )
    return redirect(url_for("console.boards", village_id=village_id, month=month), code=303)
