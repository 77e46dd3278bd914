"""Activities, their QR codes, check-in (签到), proxy check-in and check-out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Response, current_app, render_template, request
from flask_smorest import Blueprint

from points import card_render
from points.activities import activities, checkin, codes, fraud
from points.activities.activities import ActivityView
from points.activities.checkin import CheckInResult, Clock, Scan
from points.activities.codes import IssuedCode
from points.models.activities import Activity
from points.qr import qr_matrix, qr_png, qr_svg
from points.scope import get_visible

from ..caller import current_actor, qr_codec
from ..clock import clock_skew, now, village_tz
from ..extensions import db
from ..idempotency import DOC as IDEMPOTENT
from ..idempotency import idempotent
from ..openapi import BINARY, PAGE_TOO_DEEP, TEXT, page_of, paginate, raises
from ..qr import activity_poster, activity_poster_pdf, activity_poster_text, display_path, token_url
from ..ratelimits import by_user, limited, setting
from ..schemas.activities import (
    ActivityIn,
    ActivityListArgs,
    ActivityOut,
    CancelIn,
    CheckinIn,
    CheckinListArgs,
    CheckinListOut,
    CheckinOut,
    DisplayLinkOut,
    ProxyCheckinIn,
    QrImageArgs,
    QrSvgArgs,
    QrTokenArgs,
    QrTokenOut,
    activity_plan,
)

blp = Blueprint("activities", __name__, description="活动与签到 Activities and check-in")
# The display page lives outside /api/v1: a page, opened on a screen.
pages_blp = Blueprint(
    "activity_pages", __name__, description="活动大屏 The full-screen code of a rotating activity"
)

DEVICE_HEADER = "X-Device-Id"
DISPLAY_KEY_HEADER = "X-Display-Key"
NO_STORE = {"Cache-Control": "private, no-store"}


def _present(listed: list[Activity]) -> list[ActivityView]:
    return activities.views(db.session, current_actor(), listed, now())


@dataclass(frozen=True)
class ShownCode:
    """The code valid now as a screen shows it (QrTokenOut): the code, the link it carries,
    the activity with its state and check-ins so far, and the SVG when asked for."""

    activity: Activity
    code: IssuedCode
    url: str
    server_time: datetime
    status: str
    checked_in: int
    svg: str | None


def _shown(activity: Activity, code: IssuedCode, with_svg: bool) -> ShownCode:
    url = token_url(current_app.config["PUBLIC_BASE_URL"], code.token)
    return ShownCode(
        activity=activity,
        code=code,
        url=url,
        server_time=now(),
        status=activities.state(activity, now()),
        checked_in=activities.checkin_counts(db.session, [activity.id])[activity.id],
        svg=qr_svg(url) if with_svg else None,
    )


# ---- activities -----------------------------------------------------------------------------


@blp.route("/activities", methods=["POST"])
@raises(
    (403, "villager_inactive"),
    (404, "not_found"),
    (404, "rule_item_not_found"),
    (422, "invalid_times"),
    (422, "not_checkin_item"),
)
@blp.arguments(ActivityIn)
@blp.response(201, ActivityOut)
def create_activity(body: dict[str, Any]) -> ActivityView:
    """Create an activity of a village (cadres and admins). The rule item must allow
    check-in; a per-unit item must count hours (scored at check-out)."""
    plan = activity_plan(body, current_app.config["QR_ROTATE_SECONDS"])
    activity = activities.create_activity(db.session, current_actor(), plan, now())
    db.session.commit()
    return _present([activity])[0]


@blp.route("/activities", methods=["GET"])
@raises(PAGE_TOO_DEEP)
@blp.arguments(ActivityListArgs, location="query")
@blp.response(200, page_of(ActivityOut))
def list_activities(args: dict[str, Any]) -> dict[str, Any]:
    """Activities the caller may see; a villager gets their village's upcoming and open ones
    unless `status` says otherwise."""
    stmt = activities.activities_query(
        current_actor(), village_id=args.get("village_id"), status=args.get("status"), now=now()
    )
    page = paginate(db.session, stmt, args["page"], args["per_page"])
    page["items"] = _present(list(page["items"]))
    return page


@blp.route("/activities/<int:activity_id>", methods=["GET"])
@blp.response(200, ActivityOut)
def get_activity(activity_id: int) -> ActivityView:
    return _present([get_visible(db.session, current_actor(), Activity, activity_id)])[0]


@blp.route("/activities/<int:activity_id>/cancel", methods=["POST"])
@raises((403, "villager_inactive"), (409, "activity_cancelled"))
@blp.arguments(CancelIn)
@blp.response(200, ActivityOut)
def cancel_activity(body: dict[str, Any], activity_id: int) -> ActivityView:
    """Cancel: its codes are refused from now on; check-ins already made keep their claims."""
    activity = activities.cancel_activity(
        db.session, current_actor(), activity_id, body.get("reason"), now()
    )
    db.session.commit()
    return _present([activity])[0]


# ---- codes ----------------------------------------------------------------------------------


@blp.route("/activities/<int:activity_id>/qr.png", methods=["GET"])
@raises(
    (403, "villager_inactive"), (409, "activity_cancelled"), (409, "rotating_code_not_printable")
)
@blp.arguments(QrImageArgs, location="query")
@blp.response(200, BINARY, content_type="image/png")
@blp.alt_response(409, response="CONFLICT")  # a rotating or cancelled activity
def poster_png(args: dict[str, Any], activity_id: int) -> Response:
    """The printable code of a static activity as an A4 poster (200 dpi): the village, the
    activity's title, time and place, the code and how to scan it (打开微信小程序「村务积分」
    扫码签到). `bare=1`: the QR alone, `box_size` pixels a module. A rotating activity's
    code is shown on the display page instead: 409 rotating_code_not_printable."""
    activity, token = codes.poster_code(db.session, current_actor(), qr_codec(), activity_id)
    url = token_url(current_app.config["PUBLIC_BASE_URL"], token)
    if args["bare"]:
        png = qr_png(url, args["box_size"])
    else:
        png = activity_poster(activity, url, "png")
    return Response(png, mimetype="image/png", headers=NO_STORE)


@blp.route("/activities/<int:activity_id>/qr.svg", methods=["GET"])
@blp.arguments(QrSvgArgs, location="query")
@raises(
    (403, "villager_inactive"), (409, "activity_cancelled"), (409, "rotating_code_not_printable")
)
@blp.response(200, TEXT, content_type="image/svg+xml")
@blp.alt_response(409, response="CONFLICT")  # a rotating or cancelled activity
def poster_svg(args: dict[str, Any], activity_id: int) -> Response:
    """The poster as SVG on A4: the code sharp at any size, beside the title, time, place
    and instructions as text. `bare=1`: the QR alone (3 cm on a notice, A3 on a door)."""
    activity, token = codes.poster_code(db.session, current_actor(), qr_codec(), activity_id)
    url = token_url(current_app.config["PUBLIC_BASE_URL"], token)
    if args["bare"]:
        svg = qr_svg(url)
    else:
        svg = card_render.poster_svg(activity_poster_text(activity), qr_matrix(url))
    return Response(svg, mimetype="image/svg+xml", headers=NO_STORE)


@blp.route("/activities/<int:activity_id>/poster.pdf", methods=["GET"])
@blp.response(200, BINARY, content_type="application/pdf")
@blp.alt_response(409, response="CONFLICT")  # a rotating or cancelled activity
def poster_pdf(activity_id: int) -> Response:
    """The poster of qr.png as a one-page A4 PDF, to print at its size."""
    return activity_poster_pdf(current_actor(), activity_id)


@blp.route("/activities/<int:activity_id>/qr-token", methods=["GET"])
@raises(
    (403, "display_key_revoked"),
    (403, "villager_inactive"),
    (409, "activity_cancelled"),
    (422, "qr_expired"),
    (422, "qr_invalid"),
    (422, "qr_wrong_type"),
)
@blp.arguments(QrTokenArgs, location="query")
@blp.response(200, QrTokenOut)
@blp.doc(
    security=[{"bearerAuth": []}, {}],
    parameters=[
        {
            "in": "header",
            "name": DISPLAY_KEY_HEADER,
            "required": False,
            "schema": {"type": "string"},
            "description": "instead of a login: the key of a display link (POST …/display-link)",
        }
    ],
)
def qr_token(args: dict[str, Any], activity_id: int) -> ShownCode:
    """The code valid now, in either mode (staff of the village, or the display screen by
    its key). A rotating code is shown until refresh_at and accepted until expires_at."""
    key = request.headers.get(DISPLAY_KEY_HEADER)
    if key:
        activity, code = codes.code_for_display(db.session, qr_codec(), activity_id, key, now())
    else:
        activity, code = codes.code_for_staff(
            db.session, current_actor(), qr_codec(), activity_id, now()
        )
    return _shown(activity, code, args["svg"])


@blp.route("/activities/<int:activity_id>/display-link", methods=["POST"])
@raises((403, "villager_inactive"), (409, "activity_cancelled"), (422, "checkin_closed"))
@blp.response(201, DisplayLinkOut)
def display_link(activity_id: int) -> dict[str, Any]:
    """A link that opens the full-screen code on a screen without logging in there. It
    shows only this activity's code, and works until check-in closes (however early it is
    made), or until its cadre loses access."""
    activity, key, expires_at = codes.display_key(
        db.session, current_actor(), qr_codec(), activity_id, now()
    )
    db.session.commit()
    base = current_app.config["PUBLIC_BASE_URL"]
    return {"url": base + display_path(activity.id, key), "expires_at": expires_at}


@pages_blp.route("/activities/<int:activity_id>/display", methods=["GET"])
@pages_blp.doc(
    security=[], responses={"200": {"description": "an HTML page", "content": {"text/html": {}}}}
)
def display_page(activity_id: int) -> Response:
    """The full-screen rotating code (open the URL from display-link). The page holds no
    data: it fetches the code with the key from its URL fragment and refreshes itself."""
    html = render_template(
        "activity_display.html", activity_id=activity_id, header=DISPLAY_KEY_HEADER
    )
    return Response(html, mimetype="text/html", headers=NO_STORE)


# ---- check-in -------------------------------------------------------------------------------


@blp.route("/checkins", methods=["POST"])
@raises(
    (403, "not_bound"),
    (403, "not_checkin_item"),
    (403, "villager_inactive"),
    (403, "wrong_village"),
    (404, "not_found"),
    (404, "rule_item_not_found"),
    (409, "account_busy"),
    (409, "activity_cancelled"),
    (409, "activity_full"),
    (409, "already_checked_in"),
    (422, "checkin_closed"),
    (422, "checkin_not_open"),
    (422, "invalid_units"),
    (422, "location_required"),
    (422, "member_required"),
    (422, "no_points"),
    (422, "out_of_area"),
    (422, "qr_expired"),
    (422, "qr_invalid"),
    (422, "qr_wrong_type"),
)
@limited(blp, setting("CHECKIN_RATE_LIMIT"), by_user)
@blp.doc(
    parameters=[
        *IDEMPOTENT["parameters"],
        {
            "in": "header",
            "name": DEVICE_HEADER,
            "required": False,
            "schema": {"type": "string", "maxLength": 64},
            "description": "the mini-program's device id (an anti-fraud signal)",
        },
    ]
)
@idempotent
@blp.arguments(CheckinIn)
@blp.response(201, CheckinOut)
def check_in(body: dict[str, Any]) -> CheckInResult:
    """A villager checks in by scanning the activity's code. One check-in per person and
    activity (a repeat is 409 already_checked_in, with the first check-in in details)."""
    device = (request.headers.get(DEVICE_HEADER) or "").strip()[:64] or None
    scan = Scan(device_id=device, lat=body.get("lat"), lng=body.get("lng"))
    result = checkin.check_in(
        db.session,
        current_actor(),
        qr_codec(),
        body["token"],
        scan,
        Clock(now(), village_tz(), clock_skew()),
    )
    return result


@blp.route("/activities/<int:activity_id>/proxy-checkins", methods=["POST"])
@raises(
    (403, "not_checkin_item"),
    (403, "villager_inactive"),
    (403, "wrong_village"),
    (404, "member_not_found"),
    (404, "rule_item_not_found"),
    (409, "account_busy"),
    (409, "card_revoked"),
    (409, "activity_cancelled"),
    (409, "activity_full"),
    (409, "already_checked_in"),
    (409, "villager_inactive"),
    (422, "checkin_closed"),
    (422, "checkin_not_open"),
    (422, "invalid_units"),
    (422, "member_required"),
    (422, "no_points"),
    (422, "qr_expired"),
    (422, "qr_invalid"),
    (422, "qr_wrong_type"),
)
@limited(blp, setting("PROXY_CHECKIN_RATE_LIMIT"), by_user)  # per cadre
@blp.doc(**IDEMPOTENT)
@idempotent
@blp.arguments(ProxyCheckinIn)
@blp.response(201, CheckinOut)
def proxy_check_in(body: dict[str, Any], activity_id: int) -> CheckInResult:
    """A cadre checks in a villager without a phone by scanning their member card (代签);
    recorded with the cadre's id and shown in the anti-fraud signals."""
    result = checkin.proxy_check_in(
        db.session,
        current_actor(),
        qr_codec(),
        activity_id,
        body["member_token"],
        Clock(now(), village_tz()),
    )
    return result


@blp.route("/checkins/<int:checkin_id>", methods=["GET"])
@blp.response(200, CheckinOut)
def get_checkin(checkin_id: int) -> CheckInResult:
    return checkin.checkin_of(db.session, current_actor(), checkin_id)


@blp.route("/checkins/<int:checkin_id>/checkout", methods=["POST"])
@raises(
    (403, "not_checkin_item"),
    (403, "not_own_checkin"),
    (403, "villager_inactive"),
    (404, "rule_item_not_found"),
    (409, "account_busy"),
    (409, "already_checked_out"),
    (409, "checkout_not_needed"),
    (409, "villager_inactive"),
    (422, "invalid_units"),
    (422, "member_required"),
    (422, "no_points"),
)
@blp.doc(**IDEMPOTENT)
@idempotent
@blp.response(200, CheckinOut)
def check_out(checkin_id: int) -> CheckInResult:
    """签退 for a per-hour item: whole hours between check-in and check-out (within the
    activity's time) are scored, capped by the rule."""
    result = checkin.check_out(db.session, current_actor(), checkin_id, Clock(now(), village_tz()))
    return result


@blp.route("/activities/<int:activity_id>/checkins", methods=["GET"])
@raises((403, "villager_inactive"))
@blp.arguments(CheckinListArgs, location="query")
@blp.response(200, CheckinListOut)
def list_checkins(args: dict[str, Any], activity_id: int) -> dict[str, Any]:
    """Who checked in, with anti-fraud signals: several villagers on one device, check-ins
    outside the area (geofence mode flag), bursts of proxy check-ins by one cadre."""
    config = current_app.config
    return fraud.checkins_view(
        db.session,
        current_actor(),
        activity_id,
        burst_count=config["PROXY_BURST_COUNT"],
        burst_window=timedelta(minutes=config["PROXY_BURST_MINUTES"]),
        page=args["page"],
        per_page=args["per_page"],
    )
