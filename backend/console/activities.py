"""活动签到: a village's activities, their posters and display screens, the check-ins as they
arrive (with their anti-fraud signals), proxy check-in by member card (代签), check-out (签退)
and cancelling.

Thin views over the services of the activities API (backend/api/activities.py): the same
scope checks, the same input schema (ActivityIn, CancelIn), the same poster."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import current_app, redirect, render_template, request, url_for
from marshmallow import Schema, ValidationError
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from points import catalogs, claims
from points.activities import activities, checkin, codes, fraud
from points.activities.activities import is_hourly, read_activity
from points.activities.checkin import Clock
from points.errors import DomainError
from points.models import Household, Village, Villager
from points.models.activities import Activity, CheckIn
from points.scope import Actor, authorize, get_visible, visible

from ..caller import qr_codec
from ..clock import now, village_tz
from ..errors import APIError, chinese_messages
from ..extensions import db
from ..openapi import paginate
from ..qr import activity_poster_pdf, display_path, household_label
from ..ratelimits import by_user, limit_by, setting
from ..schemas.activities import ActivityIn, CancelIn, activity_plan
from . import bp, forms, menu_item, session

menu_item("console.activities_list", "活动签到", "activity.create")

PER_PAGE = 20
UPCOMING_SHOWN = 100  # a village schedules a few a week; a county admin sees the first 100

STATE_LABELS = {"upcoming": "未开始", "open": "签到中", "closed": "已结束", "cancelled": "已取消"}
FLAG_LABELS = {
    "out_of_area": "超出签到范围",
    "no_location": "未提供位置",
    "own_household": "代签本户",
    "shared_device": "多人同一手机",
    "proxy_burst": "短时间内大量代签",
}
CLAIM_LABELS = {
    "posted": "已入账",
    "in_notice": "公示中",
    "pending": "待审核",
    "approved": "已通过",
    "rejected": "未通过",
    "withdrawn": "已撤回",
    "checked_in": "待签退",
    "no_points": "不计分",
}
# What the create form's fields are called, for a refusal naming them.
FIELD_LABELS = {
    "village_id": "村",
    "title": "活动名称",
    "place": "地点",
    "rule_item_id": "积分细则条目",
    "starts_at": "开始时间",
    "ends_at": "结束时间",
    "checkin_opens_at": "签到开始",
    "checkin_closes_at": "签到截止",
    "qr_mode": "二维码方式",
    "location": "签到范围",
    "lat": "纬度",
    "lng": "经度",
    "radius_m": "半径",
    "mode": "超出范围时",
    "capacity": "人数上限",
    "note": "备注",
    "reason": "取消原因",
}


# ---- reading a form through the API's schemas ----------------------------------------------


def _describe(errors: Any, prefix: str = "") -> list[str]:
    if isinstance(errors, dict):
        found = []
        for name, inner in errors.items():
            found += _describe(inner, FIELD_LABELS.get(str(name), str(name)))
        return found
    if isinstance(errors, list | tuple):
        texts = [e for e in errors if isinstance(e, str)]
        nested = [e for e in errors if not isinstance(e, str)]
        found = [f"{prefix}：{'；'.join(texts)}"] if texts else []
        for inner in nested:
            found += _describe(inner, prefix)
        return found
    return [f"{prefix}：{errors}"]


def _load(schema: Schema, data: dict[str, Any]) -> dict[str, Any]:
    """The form read by the API's own schema, so the console takes exactly what the API
    takes; its refusal names each field in Chinese."""
    try:
        loaded: dict[str, Any] = schema.load(data)
    except ValidationError as exc:
        problems = "；".join(_describe(chinese_messages(exc.messages)))
        raise APIError(422, "validation_error", f"提交的内容不符合要求：{problems}") from exc
    return loaded


def _local_moment(text: str) -> str | None:
    """A datetime-local field (2026-12-04T19:30, the village's clock) as the moment with
    its offset that the API takes; what does not parse is passed on for the schema to
    refuse."""
    text = text.strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=village_tz())
    return moment.isoformat()


def _number(text: str) -> Any:
    text = text.strip()
    if not text:
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text  # refused by the schema


def _activity_body(form: MultiDict[str, str]) -> dict[str, Any]:
    """The create form as an ActivityIn body: empty optional fields are left out; a
    geofence is sent when any of its fields is filled (the schema wants all three)."""
    body: dict[str, Any] = {
        "village_id": _number(form.get("village_id", "")),
        "title": form.get("title", "").strip(),
        "rule_item_id": _number(form.get("rule_item_id", "")),
        "starts_at": _local_moment(form.get("starts_at", "")),
        "ends_at": _local_moment(form.get("ends_at", "")),
        "qr_mode": form.get("qr_mode", ""),
    }
    optional = {
        "checkin_opens_at": _local_moment(form.get("checkin_opens_at", "")),
        "checkin_closes_at": _local_moment(form.get("checkin_closes_at", "")),
        "capacity": _number(form.get("capacity", "")),
        "place": form.get("place", "").strip() or None,
        "note": form.get("note", "").strip() or None,
    }
    body.update({name: value for name, value in optional.items() if value is not None})
    fence = {name: form.get(name, "").strip() for name in ("lat", "lng", "radius_m")}
    if any(fence.values()):
        body["location"] = {
            **{name: value for name, value in fence.items() if value},
            "mode": form.get("geofence_mode", "refuse"),
        }
        for name in ("lat", "lng", "radius_m"):
            if name in body["location"]:
                body["location"][name] = _number(body["location"][name])
    for name in ("starts_at", "ends_at"):
        if body[name] is None:
            del body[name]  # the schema says it is missing
    return body


# ---- the list and the create form ----------------------------------------------------------


def _checkin_items(village_id: int) -> list[tuple[int, str]]:
    """The items the village uses now that check-in may score (RuleItem.may_submit decides,
    as for the rules API's submit_by=checkin): (id, label)."""
    chosen = []
    for item in catalogs.effective_items(db.session, village_id):
        rule = claims.current_rule(item)
        if rule.may_submit("checkin"):
            per = "每小时" if is_hourly(rule) else "每次"
            chosen.append((item.id, f"{rule.name}（{per} {rule.points} 分）"))
    return chosen


def _form_village(actor: Actor, villages: list[Village]) -> Village | None:
    wanted = request.values.get("village_id", type=int) or actor.village_id
    for village in villages:
        if village.id == wanted:
            return village
    return villages[0] if villages else None


def _list_page() -> str:
    actor = session.load()
    # The page of those who schedule activities (its menu entry's action); a clerk has none.
    authorize(actor, "activity.create")
    moment = now()
    page = max(1, min(request.args.get("page", 1, type=int), 100_000))
    upcoming_stmt = activities.activities_query(
        actor, village_id=None, status="current", now=moment
    )
    upcoming = list(db.session.scalars(upcoming_stmt.limit(UPCOMING_SHOWN)))
    # The rest (over or cancelled), newest first.
    past_stmt = activities.activities_query(actor, village_id=None, status="past", now=moment)
    past = paginate(db.session, past_stmt, page, PER_PAGE)
    shown = activities.views(db.session, actor, upcoming + list(past["items"]), moment)
    villages = list(db.session.scalars(visible(actor, Village).order_by(Village.id)))
    village_names = {v.id: v.name for v in villages}
    form_village = _form_village(actor, villages)
    return render_template(
        "console/activities/list.html",
        upcoming=shown[: len(upcoming)],
        past=shown[len(upcoming) :],
        page=page,
        pages=max(1, -(-past["total"] // PER_PAGE)),
        villages=villages,
        village_names=village_names,
        form_village=form_village,
        items=_checkin_items(form_village.id) if form_village else [],
        states=STATE_LABELS,
        step_seconds=current_app.config["QR_ROTATE_SECONDS"],
    )


@bp.get("/activities")
def activities_list() -> str:
    return _list_page()


@bp.post("/activities")
@forms.writes(on_refusal=_list_page)
def activity_create() -> Response:
    """The same service as POST /api/v1/activities, with the form read by its schema."""
    actor = session.load()
    body = _load(ActivityIn(), _activity_body(request.form))
    plan = activity_plan(body, current_app.config["QR_ROTATE_SECONDS"])
    activity = activities.create_activity(db.session, actor, plan, now())
    return redirect(url_for("console.activity", activity_id=activity.id), code=303)


# ---- one activity --------------------------------------------------------------------------


def _checkins(actor: Actor, activity: Activity) -> dict[str, Any]:
    """Every check-in with its signals, newest first (GET …/checkins of the API)."""
    config = current_app.config
    listing = fraud.checkins_view(
        db.session,
        actor,
        activity.id,
        burst_count=config["PROXY_BURST_COUNT"],
        burst_window=timedelta(minutes=config["PROXY_BURST_MINUTES"]),
        page=1,
        per_page=100_000,
    )
    listing["items"].reverse()
    return listing


def _hourly(activity: Activity) -> bool:
    """Whether the activity's item is scored by the hour, at check-out (签退)."""
    scanned = read_activity(db.session, activity.id)
    return bool(scanned and scanned.item_in_effect and is_hourly(scanned.item_in_effect.rule))


def _proxied(actor: Actor, activity_id: int, checkin_id: int | None) -> dict[str, Any] | None:
    """Who the last card scanned checked in, for the line beside the scanner field."""
    if checkin_id is None:
        return None
    try:
        result = checkin.checkin_of(db.session, actor, checkin_id)
    except DomainError:
        return None
    if result.activity_id != activity_id:
        return None
    villager = db.session.get(Villager, result.villager_id)
    household = db.session.get(Household, result.household_id)
    if villager is None or household is None:
        return None
    return {
        "name": villager.name,
        "household": household_label(household),
        "points": result.points,
        "status": CLAIM_LABELS.get(result.status, result.status),
        "reason": result.reason,
    }


def _detail_page(activity_id: int, refused_in: str | None = None) -> str:
    actor = session.load()
    activity = get_visible(db.session, actor, Activity, activity_id)
    moment = now()
    view = activities.views(db.session, actor, [activity], moment)[0]
    village = db.session.get(Village, activity.village_id)
    return render_template(
        "console/activities/detail.html",
        view=view,
        activity=activity,
        village=village,
        listing=_checkins(actor, activity),
        hourly=_hourly(activity),
        proxied=None
        if refused_in
        else _proxied(actor, activity_id, request.args.get("proxied", type=int)),
        refused_in=refused_in,
        states=STATE_LABELS,
        flags=FLAG_LABELS,
        claim_labels=CLAIM_LABELS,
    )


@bp.get("/activities/<int:activity_id>")
def activity(activity_id: int) -> str:
    return _detail_page(activity_id)


@bp.get("/activities/<int:activity_id>/checkins")
def activity_checkins(activity_id: int) -> str:
    """The live list, polled by the page every 3 s."""
    actor = session.load()
    activity = get_visible(db.session, actor, Activity, activity_id)
    return render_template(
        "console/activities/_checkins.html",
        activity=activity,
        listing=_checkins(actor, activity),
        hourly=_hourly(activity),
        flags=FLAG_LABELS,
        claim_labels=CLAIM_LABELS,
        refused_in=None,
    )


@bp.get("/activities/<int:activity_id>/poster.pdf")
def activity_poster(activity_id: int) -> Response:
    """打印海报: the API's poster.pdf, behind the console's login."""
    return activity_poster_pdf(session.load(), activity_id)


def _display_refused(activity_id: int) -> str:
    return _detail_page(activity_id, refused_in="display")


@bp.post("/activities/<int:activity_id>/display-link")
@forms.writes(on_refusal=_display_refused)
def activity_display(activity_id: int) -> Response:
    """打开大屏: a display link made as POST …/display-link makes it, and the new window
    sent straight to it. Its form carries no idempotency key: the key row would keep the
    link (and its display key) in the database, and a second link costs nothing."""
    actor = session.load()
    made, key, _expires_at = codes.display_key(db.session, actor, qr_codec(), activity_id, now())
    # The screen is this browser's: the page's own path, not PUBLIC_BASE_URL's.
    return redirect(display_path(made.id, key), code=303)


def _proxy_refused(activity_id: int) -> str:
    return _detail_page(activity_id, refused_in="proxy")


@bp.post("/activities/<int:activity_id>/proxy-checkins")
@limit_by(setting("PROXY_CHECKIN_RATE_LIMIT"), by_user)  # per cadre, as the API counts
@forms.writes(on_refusal=_proxy_refused)
def activity_proxy_checkin(activity_id: int) -> Response:
    """代签 by the member card's scanned text, as POST …/proxy-checkins."""
    actor = session.load()
    result = checkin.proxy_check_in(
        db.session,
        actor,
        qr_codec(),
        activity_id,
        request.form.get("member_token", ""),
        Clock(now(), village_tz()),
    )
    return redirect(
        url_for("console.activity", activity_id=activity_id, proxied=result.checkin_id), code=303
    )


def _cancel_refused(activity_id: int) -> str:
    return _detail_page(activity_id, refused_in="cancel")


@bp.post("/activities/<int:activity_id>/cancel")
@forms.writes(on_refusal=_cancel_refused)
def activity_cancel(activity_id: int) -> Response:
    """取消活动, as POST …/cancel; the console asks for the reason the villagers will read."""
    actor = session.load()
    reason = request.form.get("reason", "").strip()
    if not reason:
        raise APIError(422, "validation_error", "请填写取消活动的原因")
    body = _load(CancelIn(), {"reason": reason})
    activities.cancel_activity(db.session, actor, activity_id, body["reason"], now())
    return redirect(url_for("console.activity", activity_id=activity_id), code=303)


def _checkout_refused(checkin_id: int) -> str:
    row = get_visible(db.session, session.load(), CheckIn, checkin_id)
    return _detail_page(row.activity_id, refused_in="checkout")


@bp.post("/checkins/<int:checkin_id>/checkout")
@forms.writes(on_refusal=_checkout_refused)
def checkin_checkout(checkin_id: int) -> Response:
    """签退 of a per-hour item's check-in, as POST /checkins/{id}/checkout."""
    actor = session.load()
    result = checkin.check_out(db.session, actor, checkin_id, Clock(now(), village_tz()))
    return redirect(url_for("console.activity", activity_id=result.activity_id), code=303)
