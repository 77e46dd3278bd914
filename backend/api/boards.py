"""Rankings, boards (红黑榜), statistics and household plates (门牌), and the two pages a
printed QR opens without login: the online board (/b/{token}) and a plate (/h/{token}).
The domain is points.boards; the HTTP paths keep their names (/rankings, …/board)."""

from __future__ import annotations

import dataclasses
from typing import Any

from flask import Response, current_app, render_template
from flask_smorest import Blueprint

from points import notice
from points.boards import closing, links, privacy, render, standings, stats
from points.boards.board import published_board, village_board
from points.boards.page import FontSpec
from points.boards.privacy import BoardPrefs
from points.boards.standings import Period, parse_period
from points.errors import DomainError
from points.models import Household, Township, Village
from points.scope import VILLAGER, Actor, authorize, get_visible
from rules import merkle
from rules.periods import add_months, month_key

from .. import printed_boards, qr
from ..caller import current_actor
from ..clock import now, village_tz
from ..downloads import download
from ..extensions import db
from ..idempotency import DOC as IDEMPOTENT
from ..idempotency import idempotent
from ..openapi import BINARY, TEXT, raises
from ..qr import print_font
from ..render_cache import drawn_once, font_key
from ..schemas.boards import (
    BoardArgs,
    BoardOut,
    BoardPageArgs,
    BoardSettingsIn,
    BoardSettingsOut,
    CloseIn,
    LinkOut,
    MonthArgs,
    MonthProofOut,
    MonthRootOut,
    PlateOut,
    PrintArgs,
    PrivacyIn,
    PrivacyOut,
    RankingArgs,
    RankingOut,
    StatsArgs,
    StatsOut,
    TownshipMonthRootOut,
    TownshipStatsOut,
)

blp = Blueprint(
    "boards", __name__, description="排名、红黑榜与统计 Rankings, boards, statistics and plates"
)
# Pages opened by printed QR codes, outside /api/v1 and without login.
public_blp = Blueprint("board_pages", __name__, description="公开页面 Public board and plate pages")
PUBLIC: dict[str, Any] = {"security": []}


def _this_month() -> Period:
    return parse_period(month_key(now().astimezone(village_tz())))


def _last_month() -> Period:
    return parse_period(add_months(_this_month().key, -1))


def _period(args: dict[str, Any], default: Period) -> Period:
    return parse_period(args["period"]) if args.get("period") else default


def _public_view(actor: Actor, args: dict[str, Any]) -> bool:
    return actor.role == VILLAGER or bool(args.get("public"))


def _base_url() -> str:
    return str(current_app.config["PUBLIC_BASE_URL"])


def _font() -> FontSpec:
    return print_font()


def _end_read() -> None:
    """End a read with COMMIT rather than the ROLLBACK of the request teardown: psycopg
    forgets a connection's prepared statements at every ROLLBACK, and a board's statements,
    prepared once per pooled connection, skip PostgreSQL's planning on every later request."""
    db.session.commit()


def _png(data: bytes) -> Response:
    return Response(data, mimetype="image/png", headers={"Cache-Control": "private, no-store"})


# ---- rankings -------------------------------------------------------------------------------


def _ranking_row(
    standing: standings.Standing,
    by: str,
    public: bool,
    prefs: dict[int, BoardPrefs],
    groups: dict[int, str],
) -> dict[str, Any]:
    hidden = public and standing.opted_out
    name = standing.name
    if public:
        name = privacy.public_name(
            name, mask=prefs[standing.village_id].mask_names, opted_out=standing.opted_out
        )
    return {
        "rank": standing.rank,
        "name": name,
        "points": standing.points,
        "household_id": None if hidden else standing.household_id,
        "villager_id": None if hidden or by == "household" else standing.id,
        "village_id": standing.village_id,
        "group_id": standing.group_id,
        "group": groups.get(standing.group_id) if standing.group_id else None,
    }


@blp.route("/rankings", methods=["GET"])
@raises(
    (403, "not_bound"),
    (403, "villager_inactive"),
    (404, "not_found"),
    (422, "invalid_period"),
    (422, "scope_required"),
)
@blp.arguments(RankingArgs, location="query")
@blp.response(200, RankingOut)
def get_rankings(args: dict[str, Any]) -> dict[str, Any]:
    """Households (or members) of a village, villager group or township ranked by the points
    of a month, quarter or year, from the period totals. Ties share a rank (1, 2, 2, 4).
    Households barred by a veto (一票否决) in the period are not listed; `mine` shows the
    caller's own place either way. Villagers see names as the public board shows them."""
    actor = current_actor()
    scope = standings.resolve_scope(
        db.session,
        actor,
        village_id=args.get("village_id"),
        group_id=args.get("group_id"),
        township_id=args.get("township_id"),
    )
    period = _period(args, _this_month())
    result = standings.ranking(
        db.session,
        scope,
        period,
        by=args["by"],
        limit=args["limit"],
        own_household_id=actor.household_id,
        own_villager_id=actor.villager_id,
    )
    public = _public_view(actor, args)
    groups = standings.group_names(db.session, result.items)
    _end_read()
    return {
        "period": period.key,
        "scope": {"kind": scope.kind, "id": scope.id},
        "by": result.by,
        "tie_rule": result.tie_rule,
        "total": result.total,
        "items": [_ranking_row(s, result.by, public, result.prefs, groups) for s in result.items],
        "mine": result.mine,
    }


# ---- boards ---------------------------------------------------------------------------------


@blp.route("/villages/<int:village_id>/board", methods=["GET"])
@raises((403, "villager_inactive"), (422, "invalid_period"))
@blp.arguments(BoardArgs, location="query")
@blp.response(200, BoardOut)
def get_board(args: dict[str, Any], village_id: int) -> dict[str, Any]:
    """The red list (示范户: top N of the period) and black list (限期整改户: deductions or a
    veto in the period, with the items), star households (星级文明户) and corrections. A
    closed month answers its published board, unchanged since; `mine` is the caller's own
    household's place."""
    actor = current_actor()
    village = get_visible(db.session, actor, Village, village_id)
    authorize(actor, "board.read")
    period = _period(args, _last_month())
    board = village_board(
        db.session, village.id, period, village_tz(), household_id=actor.household_id
    )
    mine = board.pop("mine")
    link = links.existing_link(db.session, village_id=village.id)
    # From the board as read: building it again for the picture's address doubled the work.
    png_url = printed_boards.png_url(village.id, period, board, link)
    if _public_view(actor, args):
        board = printed_boards.as_posted(village.id, board)
    _end_read()
    # A staff view shows the names as they are: `masked` false, stated rather than left out.
    return {
        "masked": False,
        **board,
        "mine": mine,
        "online_url": printed_boards.board_url(link.token, period, board) if link else None,
        "png_url": png_url,
    }


def _printed(args: dict[str, Any], village_id: int, kind: str) -> Response:
    actor = current_actor()
    village = get_visible(db.session, actor, Village, village_id)
    authorize(actor, "board.read")
    return printed_boards.printed_board(
        village,
        _period(args, _last_month()),
        paper=args["size"],
        kind=kind,
        version=args.get("v"),
    )


@blp.route("/villages/<int:village_id>/board.png", methods=["GET"])
@raises((403, "villager_inactive"), (422, "invalid_period"), (503, "board_font_missing"))
@blp.arguments(PrintArgs, location="query")
@blp.response(200, BINARY, content_type="image/png")
@blp.alt_response(304, description="not modified (If-None-Match)")
def board_png(args: dict[str, Any], village_id: int) -> Response:
    """The board to print for the notice wall (A4 or A3), names as on the public board, with
    a QR to the online board. With an ETag: a closed month's may be kept a day, or for good
    under the versioned address GET …/board gives as `png_url` (`v`: this ETag); the running
    month's is asked about every time (304 on If-None-Match, without drawing it again). The
    same board as JSON is GET /villages/{id}/board?public=true."""
    return _printed(args, village_id, "png")


@blp.route("/villages/<int:village_id>/board.pdf", methods=["GET"])
@raises((403, "villager_inactive"), (422, "invalid_period"), (503, "board_font_missing"))
@blp.arguments(PrintArgs, location="query")
@blp.response(200, BINARY, content_type="application/pdf")
def board_pdf(args: dict[str, Any], village_id: int) -> Response:
    """The same board as a one-page PDF at A4 or A3 size."""
    return _printed(args, village_id, "pdf")


@blp.route("/villages/<int:village_id>/board/close", methods=["POST"])
@raises(
    (403, "villager_inactive"),
    (409, "board_closed"),
    (409, "claims_undecided"),
    (422, "invalid_period"),
    (422, "month_not_over"),
)
@blp.doc(**IDEMPOTENT)
@idempotent
@blp.arguments(CloseIn)
@blp.response(201, BoardOut)
def close_board(body: dict[str, Any], village_id: int) -> dict[str, Any]:
    """Publish (结榜) a month's board: frozen from now on. Refused while the month runs and,
    unless `force`, while claims of it are still in review or notice, or a per-hour check-in
    of it waits for its check-out while its activity runs (`claims_undecided`).
    The cron (`flask rankings close-due`) does this by itself once they are decided."""
    snapshot = closing.close_board(
        db.session,
        current_actor(),
        village_id,
        body["period"],
        now=now(),
        tz=village_tz(),
        force=body["force"],
    )
    return published_board(snapshot)


# ---- settings and privacy -------------------------------------------------------------------


def _settings_out(
    row: Any, *, village_id: int | None, township_id: int | None, effective: BoardPrefs
) -> dict[str, Any]:
    return {
        "village_id": village_id,
        "township_id": township_id,
        "mask_names": row.mask_names if row else None,
        "red_list_size": row.red_list_size if row else None,
        "effective": {"mask_names": effective.mask_names, "red_list_size": effective.red_list_size},
    }


@blp.route("/villages/<int:village_id>/board-settings", methods=["GET"])
@raises((403, "villager_inactive"))
@blp.response(200, BoardSettingsOut)
def village_settings(village_id: int) -> dict[str, Any]:
    actor = current_actor()
    village = get_visible(db.session, actor, Village, village_id)
    authorize(actor, "board.settings")
    return _settings_out(
        privacy.settings_row(db.session, village_id=village.id),
        village_id=village.id,
        township_id=None,
        effective=privacy.board_prefs(db.session, [village.id])[village.id],
    )


@blp.route("/villages/<int:village_id>/board-settings", methods=["PUT"])
@raises((403, "villager_inactive"))
@blp.arguments(BoardSettingsIn)
@blp.response(200, BoardSettingsOut)
def set_village_settings(body: dict[str, Any], village_id: int) -> dict[str, Any]:
    """A village's board settings (mask names 张*三, size of the red list); null inherits the
    township's."""
    row = privacy.update_settings(db.session, current_actor(), body, now(), village_id=village_id)
    db.session.commit()
    return _settings_out(
        row,
        village_id=village_id,
        township_id=None,
        effective=privacy.board_prefs(db.session, [village_id])[village_id],
    )


@blp.route("/townships/<int:township_id>/board-settings", methods=["GET"])
@raises((403, "villager_inactive"))
@blp.response(200, BoardSettingsOut)
def township_settings(township_id: int) -> dict[str, Any]:
    actor = current_actor()
    township = get_visible(db.session, actor, Township, township_id)
    authorize(actor, "board.township_settings")
    row = privacy.settings_row(db.session, township_id=township.id)
    return _settings_out(
        row,
        village_id=None,
        township_id=township.id,
        effective=privacy.layered_prefs(privacy.settings_layer(row)),
    )


@blp.route("/townships/<int:township_id>/board-settings", methods=["PUT"])
@raises((403, "villager_inactive"))
@blp.arguments(BoardSettingsIn)
@blp.response(200, BoardSettingsOut)
def set_township_settings(body: dict[str, Any], township_id: int) -> dict[str, Any]:
    """The township's board settings, for every village that does not set its own."""
    row = privacy.update_settings(db.session, current_actor(), body, now(), township_id=township_id)
    db.session.commit()
    return _settings_out(
        row,
        village_id=None,
        township_id=township_id,
        effective=privacy.layered_prefs(privacy.settings_layer(row)),
    )


@blp.route("/me/board-privacy", methods=["GET"])
@raises((403, "not_bound"), (404, "not_found"))
@blp.response(200, PrivacyOut)
def my_privacy() -> Household:
    actor = current_actor()
    return get_visible(db.session, actor, Household, actor.require_household())


@blp.route("/me/board-privacy", methods=["PUT"])
@raises((403, "not_bound"), (403, "villager_only"), (404, "not_found"))
@blp.arguments(PrivacyIn)
@blp.response(200, PrivacyOut)
def set_my_privacy(body: dict[str, Any]) -> Household:
    """The household keeps (or stops keeping) its name off public boards; its own view still
    shows its rank."""
    household = privacy.set_opt_out(db.session, current_actor(), body["public_board_opt_out"])
    db.session.commit()
    return household


# ---- statistics -----------------------------------------------------------------------------


@blp.route("/villages/<int:village_id>/stats", methods=["GET"])
@raises((403, "villager_inactive"), (422, "invalid_period"))
@blp.arguments(StatsArgs, location="query")
@blp.response(200, StatsOut)
def village_stats(args: dict[str, Any], village_id: int) -> dict[str, Any]:
    """Participation (households with any earning in the period) per villager group, points
    by category, the top items and a 12-month trend (cadres and admins)."""
    actor = current_actor()
    village = get_visible(db.session, actor, Village, village_id)
    authorize(actor, "stats.read")
    return stats.village_stats(db.session, village.id, _period(args, _this_month()))


@blp.route("/villages/<int:village_id>/stats.png", methods=["GET"])
@raises((403, "villager_inactive"), (422, "invalid_period"), (503, "board_font_missing"))
@blp.arguments(StatsArgs, location="query")
@blp.response(200, BINARY, content_type="image/png")
def village_stats_png(args: dict[str, Any], village_id: int) -> Response:
    """The same statistics as a chart for the cadre's screen."""
    actor = current_actor()
    village = get_visible(db.session, actor, Village, village_id)
    authorize(actor, "stats.read")
    period = _period(args, _this_month())
    figures = stats.village_stats(db.session, village.id, period)
    label = standings.period_label(period)
    font = _font()
    # Drawn once for the same figures (backend/render_cache.py); the key is all it shows.
    return _png(
        drawn_once(
            "stats",
            "png",
            lambda: render.stats_png(figures, village=village.name, period_label=label, font=font),
            figures,
            village.name,
            label,
            font_key(font),
        )
    )


@blp.route("/townships/<int:township_id>/stats", methods=["GET"])
@raises((403, "villager_inactive"), (422, "invalid_period"))
@blp.arguments(StatsArgs, location="query")
@blp.response(200, TownshipStatsOut)
def township_stats(args: dict[str, Any], township_id: int) -> dict[str, Any]:
    """Each village's participation rate and points per household, ranked (township admins)."""
    actor = current_actor()
    township = get_visible(db.session, actor, Township, township_id)
    authorize(actor, "ranking.township")
    period = _period(args, _this_month())
    return {
        "township_id": township.id,
        "period": period.key,
        "tie_rule": standings.TIE_RULE,
        "villages": stats.township_stats(db.session, township.id, period),
    }


# ---- the verifiable notice (公示指纹) ----------------------------------------------------------


@blp.route("/households/<int:household_id>/month-proof", methods=["GET"])
@raises(
    (403, "villager_inactive"),
    (404, "not_found"),
    (404, "no_month_root"),
    (404, "not_in_month"),
    (409, "month_not_closed"),
    (409, "month_root_mismatch"),
    (422, "validation_error"),
)
@blp.arguments(MonthArgs, location="query")
@blp.response(200, MonthProofOut)
def month_proof(args: dict[str, Any], household_id: int) -> dict[str, Any]:
    """The household's month as the closed board committed to it, with its Merkle inclusion
    proof in the village's root printed on the board (and the village's in the township's):
    tools/verify_month.py checks it against the fingerprint on the wall. The household's own
    members and staff who see it; the ledger is recomputed and must still give the printed
    root."""
    actor = current_actor()
    household = get_visible(db.session, actor, Household, household_id)
    proof = notice.household_month_proof(db.session, household, args["period"], village_tz())
    _end_read()
    return proof


@blp.route("/villages/<int:village_id>/month-root", methods=["GET"])
@raises((404, "not_found"), (404, "no_month_root"), (422, "validation_error"))
@blp.doc(**PUBLIC)
@blp.arguments(MonthArgs, location="query")
@blp.response(200, MonthRootOut)
def month_root(args: dict[str, Any], village_id: int) -> dict[str, Any]:
    """A closed month's root of the village (no login, no names): its fingerprint, the
    number of households under it, and its inclusion in the township's root. A month
    without a root (not closed yet, or closed before roots were kept) is 404 no_month_root."""
    out = notice.village_month(db.session, village_id, args["period"])
    _end_read()
    return out


@blp.route("/townships/<int:township_id>/month-root", methods=["GET"])
@raises((404, "not_found"), (404, "no_month_root"), (422, "validation_error"))
@blp.doc(**PUBLIC)
@blp.arguments(MonthArgs, location="query")
@blp.response(200, TownshipMonthRootOut)
def township_month_root(args: dict[str, Any], township_id: int) -> dict[str, Any]:
    """A township's root of the month (no login, no names): its villages' roots, and its
    inclusion in the county's root over every township's (the top of the chain a printed
    village board hangs from). No village of it closed with a root: 404 no_month_root."""
    out = notice.township_month(db.session, township_id, args["period"])
    _end_read()
    return out


@blp.route("/townships/<int:township_id>/month-report.pdf", methods=["GET"])
@raises((403, "villager_inactive"), (422, "validation_error"), (503, "board_font_missing"))
@blp.arguments(MonthArgs, location="query")
@blp.response(200, BINARY, content_type="application/pdf")
def township_month_report(args: dict[str, Any], township_id: int) -> Response:
    """One A4 page for the township's notice: every village's fingerprint of the month and
    the township's root over them (township admins)."""
    actor = current_actor()
    township = get_visible(db.session, actor, Township, township_id)
    authorize(actor, "ranking.township")
    report = notice.township_report(db.session, township.id, args["period"])
    db.session.commit()
    font = _font()
    # Drawn once for the same report (backend/render_cache.py): it is all the page shows.
    data = drawn_once(
        "report",
        "pdf",
        lambda: notice.township_report_pdf(report, font),
        dataclasses.asdict(report),
        font_key(font),
    )
    return download(
        data,
        "application/pdf",
        f"{township.name}{args['period']}公示指纹.pdf",
        ascii_name=f"month-report-{township.id}-{args['period']}.pdf",
    )


# ---- household plates (门牌) -----------------------------------------------------------------


@blp.route("/households/<int:household_id>/plate.png", methods=["GET"])
@raises((403, "villager_inactive"), (503, "board_font_missing"))
@blp.response(200, BINARY, content_type="image/png")
def plate_png(household_id: int) -> Response:
    """The household's plate to print and hang at the gate; its QR opens a page with the
    household's stars, this month's points and rank, without login."""
    png = qr.plate_png(current_actor(), household_id)
    db.session.commit()
    return _png(png)


@blp.route("/households/<int:household_id>/plate/renew", methods=["POST"])
@raises((403, "villager_inactive"))
@blp.doc(**IDEMPOTENT)
@idempotent
@blp.response(201, LinkOut)
def renew_plate(household_id: int) -> dict[str, Any]:
    """A new plate code; the old printed plate no longer opens the page."""
    link = links.renew_plate(db.session, current_actor(), household_id)
    return {"url": qr.plate_url(link.token)}


@blp.route("/plates/<token>", methods=["GET"])
@raises((404, "link_not_found"), (422, "invalid_period"))
@blp.doc(**PUBLIC)
@blp.response(200, PlateOut)
def plate(token: str) -> dict[str, Any]:
    """What a plate's QR shows (no login), for the mini-program."""
    link = links.resolve_link(db.session, token, "plate")
    assert link.household_id is not None
    return links.plate_view(db.session, link.household_id, now(), village_tz())


# ---- public pages ---------------------------------------------------------------------------

# How long a shared cache (a county's proxy, WeChat's) may keep a public page. A board
# changes as claims post and is frozen once its month is closed: five minutes spares the
# server when a village scans the printed board at once, and a household that opts out is
# off the online board within them. A plate shows the household's live points, and
# renewing it must retire the old printed code at once: never stored.
BOARD_CACHE = "public, max-age=300"
PLATE_CACHE = "no-store"


def _page(template: str, status: int = 200, cache: str = "no-store", **context: Any) -> Response:
    return Response(
        render_template(template, **context),
        status=status,
        mimetype="text/html",
        headers={"Cache-Control": cache},
    )


# A plate or board code that was renewed or never existed gets a page that says so.
GONE = {"schema": TEXT, "content_type": "text/html", "description": "二维码已失效 (a page)"}


def _gone() -> Response:
    return _page("gone.html", 404)


@public_blp.route("/h/<token>", methods=["GET"])
@raises((404, "link_not_found"), (422, "invalid_period"))
@public_blp.doc(**PUBLIC)
@public_blp.alt_response(404, **GONE)
@public_blp.response(200, TEXT, content_type="text/html")
def plate_page(token: str) -> Response:
    """The page a household plate's QR opens: stars, this month's points and rank."""
    try:
        link = links.resolve_link(db.session, token, "plate")
    except DomainError:
        return _gone()
    assert link.household_id is not None
    view = links.plate_view(db.session, link.household_id, now(), village_tz())
    return _page("plate.html", cache=PLATE_CACHE, p=view)


@public_blp.route("/b/<token>", methods=["GET"])
@raises((404, "link_not_found"), (422, "invalid_period"))
@public_blp.doc(**PUBLIC)
@public_blp.alt_response(404, **GONE)
@public_blp.arguments(BoardPageArgs, location="query")
@public_blp.response(200, TEXT, content_type="text/html")
def board_page(args: dict[str, Any], token: str) -> Response:
    """The online board a printed board's QR opens, as posted (names masked as set). A month
    that commits to its households shows its fingerprint (公示指纹) and full root; `root`
    (from the printed QR) that differs from it is said on the page."""
    try:
        link = links.resolve_link(db.session, token, "board")
    except DomainError:
        return _gone()
    assert link.village_id is not None
    board = printed_boards.posted_board(link.village_id, _period(args, _last_month()))
    root_hex = board.get("month_root")
    printed = (args.get("root") or "").lower() or None
    return _page(
        "board.html",
        cache=BOARD_CACHE,
        b=board,
        fingerprint=merkle.fingerprint(root_hex) if root_hex else None,
        printed_root=printed,
        printed_fingerprint=merkle.fingerprint(printed) if printed else None,
    )
