"""Request and response schemas of activities and check-in.
Request schemas refuse unknown fields, like every other body."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, post_dump, validate, validates_schema

from points.activities.activities import LIST_STATES, STATES, ActivityPlan, Geofence
from points.activities.checkin import CHECKIN_OUTCOMES
from points.activities.fraud import CHECKIN_FLAGS
from points.models import CLAIM_STATUSES
from points.models.activities import GEOFENCE_MODES, QR_MODES
from rules import KINDS

from ..openapi import Choice, PageArgs, QueryArgs, optional
from .common import Id, LocalDateTime, Moment, ScannedCode

LAT = validate.Range(min=-90, max=90)
LNG = validate.Range(min=-180, max=180)


def _when(required: bool, description: str) -> Moment:
    return Moment(required=required, allow_none=not required, metadata={"description": description})


class LocationIn(Schema):
    lat = fields.Float(
        required=True,
        validate=LAT,
        metadata={
            "description": "WGS-84 / GCJ-02 as the mini-program reports it (wx.getLocation type)"
        },
    )
    lng = fields.Float(required=True, validate=LNG)
    radius_m = fields.Integer(required=True, validate=validate.Range(min=10, max=20_000))
    mode = fields.String(
        load_default="refuse",
        validate=validate.OneOf(GEOFENCE_MODES),
        metadata={
            "description": "refuse: out of area is refused; flag: "
            "accepted and flagged for the cadre"
        },
    )


class ActivityIn(Schema):
    village_id = Id(required=True)
    title = fields.String(required=True, validate=validate.Length(min=1, max=100))
    place = fields.String(
        allow_none=True,
        validate=validate.Length(max=100),
        metadata={"description": "where (村委会二楼会议室), printed on the poster"},
    )
    rule_item_id = Id(
        required=True,
        metadata={"description": "an item of the village's rules whose submit_by includes checkin"},
    )
    starts_at = _when(True, "")
    ends_at = _when(True, "")
    checkin_opens_at = _when(False, "default: 30 minutes before starts_at")
    checkin_closes_at = _when(False, "default: ends_at")
    qr_mode = fields.String(
        required=True,
        validate=validate.OneOf(QR_MODES),
        metadata={
            "description": "static: one printable code for the check-in window; rotating: a "
            "new code every qr_step_seconds on a screen (display page)"
        },
    )
    qr_step_seconds = fields.Integer(
        allow_none=True,
        validate=validate.Range(min=10, max=600),
        metadata={"description": "default QR_ROTATE_SECONDS (30)"},
    )
    location = fields.Nested(LocationIn, allow_none=True)
    capacity = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=100_000))
    note = fields.String(allow_none=True, validate=validate.Length(max=500))


def activity_plan(body: dict[str, Any], default_step_seconds: int) -> ActivityPlan:
    """The plan an ActivityIn body describes (the API's JSON, the console's form)."""
    location = body.get("location")
    return ActivityPlan(
        village_id=body["village_id"],
        title=body["title"],
        rule_item_id=body["rule_item_id"],
        starts_at=body["starts_at"],
        ends_at=body["ends_at"],
        checkin_opens_at=body.get("checkin_opens_at"),
        checkin_closes_at=body.get("checkin_closes_at"),
        qr_mode=body["qr_mode"],
        step_seconds=body.get("qr_step_seconds") or default_step_seconds,
        geofence=Geofence(**location) if location else None,
        capacity=body.get("capacity"),
        note=body.get("note"),
        place=body.get("place"),
    )


class ActivityListArgs(PageArgs):
    village_id = Id(strict=False)
    status = fields.String(
        validate=validate.OneOf(LIST_STATES),
        metadata={
            "description": "upcoming (check-in not open yet), open, closed, cancelled, or current "
            "(upcoming or open; a villager's default)"
        },
    )


class LocationOut(Schema):
    lat = fields.Float()
    lng = fields.Float()
    radius_m = fields.Integer()
    mode = Choice(GEOFENCE_MODES)


class ActivityRuleItemOut(Schema):
    id = fields.Integer()
    code = fields.String(allow_none=True)
    name = fields.String(allow_none=True)
    category = fields.String(allow_none=True)
    points = fields.Integer(allow_none=True)
    kind = Choice(KINDS, allow_none=True)
    unit = fields.String(allow_none=True)
    requires_review = fields.Boolean(allow_none=True)


class ActivityOut(Schema):
    # Dumped from points.activities.activities.ActivityView: the activity's own columns are
    # read from its activity.
    id = fields.Integer(attribute="activity.id")
    village_id = fields.Integer(attribute="activity.village_id")
    title = fields.String(attribute="activity.title")
    rule_item = fields.Nested(ActivityRuleItemOut)
    starts_at = LocalDateTime(attribute="activity.starts_at")
    ends_at = LocalDateTime(attribute="activity.ends_at")
    checkin_opens_at = LocalDateTime(attribute="activity.checkin_opens_at")
    checkin_closes_at = LocalDateTime(attribute="activity.checkin_closes_at")
    qr_mode = Choice(QR_MODES, attribute="activity.qr_mode")
    qr_step_seconds = fields.Integer(attribute="activity.qr_step_seconds")
    location = fields.Nested(LocationOut, allow_none=True)
    capacity = fields.Integer(attribute="activity.capacity", allow_none=True)
    checked_in = fields.Integer(metadata={"description": "check-ins so far"})
    status = Choice(STATES)
    note = fields.String(attribute="activity.note", allow_none=True)
    place = fields.String(attribute="activity.place", allow_none=True)
    cancelled_at = LocalDateTime(attribute="activity.cancelled_at", allow_none=True)
    cancel_reason = fields.String(attribute="activity.cancel_reason", allow_none=True)
    created_by = fields.Integer(attribute="activity.created_by")
    created_at = LocalDateTime(attribute="activity.created_at")
    my_checkin_id = fields.Integer(
        allow_none=True,
        metadata={"description": "a villager's own check-in at this activity, if any"},
    )


class CancelIn(Schema):
    reason = fields.String(allow_none=True, validate=validate.Length(max=500))


class QrTokenArgs(QueryArgs):
    svg = fields.Boolean(
        load_default=False,
        metadata={"description": "also return the code as an SVG image (the display page uses it)"},
    )


class QrSvgArgs(QueryArgs):
    bare = fields.Boolean(
        load_default=False,
        metadata={
            "description": "the QR alone, without the poster's title, time, place and "
            "instructions (to lay out in one's own notice)"
        },
    )


class QrImageArgs(QrSvgArgs):
    box_size = fields.Integer(
        load_default=10,
        validate=validate.Range(min=2, max=40),
        metadata={"description": "pixels per module (bare PNG only)"},
    )


class QrTokenOut(Schema):
    # Dumped from backend.api.activities.ShownCode: the code's fields from its code, the
    # activity's from its activity.
    token = fields.String(attribute="code.token")
    url = fields.String(
        metadata={"description": "{PUBLIC_BASE_URL}/q/{token}: what the QR code carries"}
    )
    expires_at = LocalDateTime(
        attribute="code.expires_at",
        metadata={"description": "accepted until (a rotating code: the end of the grace step)"},
    )
    refresh_at = LocalDateTime(
        attribute="code.refresh_at",
        allow_none=True,
        metadata={"description": "a rotating code: when the next code is shown; null when static"},
    )
    server_time = LocalDateTime()
    qr_mode = Choice(QR_MODES, attribute="activity.qr_mode")
    step = fields.Integer(
        attribute="code.step", metadata={"description": "rotating step; 0 for a static code"}
    )
    step_seconds = fields.Integer(attribute="activity.qr_step_seconds")
    activity_id = fields.Integer(attribute="activity.id")
    title = fields.String(attribute="activity.title")
    status = Choice(STATES)
    checkin_opens_at = LocalDateTime(attribute="activity.checkin_opens_at")
    checkin_closes_at = LocalDateTime(attribute="activity.checkin_closes_at")
    checked_in = fields.Integer()
    capacity = fields.Integer(attribute="activity.capacity", allow_none=True)
    svg = fields.String(metadata=optional(description="with ?svg=1: the code as an SVG image"))

    @post_dump
    def _svg_only_when_asked(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        if data.get("svg") is None:
            data.pop("svg", None)
        return data


class DisplayLinkOut(Schema):
    url = fields.String(
        metadata={
            "description": "open on the screen; the key is in the "
            "fragment, so it never reaches a server log"
        }
    )
    expires_at = LocalDateTime()


class CheckinIn(Schema):
    token = ScannedCode("the activity's code")
    lat = fields.Float(allow_none=True, validate=LAT)
    lng = fields.Float(allow_none=True, validate=LNG)

    @validates_schema
    def _both_or_neither(self, data: dict[str, Any], **_: Any) -> None:
        if (data.get("lat") is None) != (data.get("lng") is None):
            raise ValidationError("lat 和 lng 需要同时提供", "lat")


class ProxyCheckinIn(Schema):
    member_token = ScannedCode("the member card (card.png) scanned by the cadre")


class CheckinOut(Schema):
    checkin_id = fields.Integer()
    claim_id = fields.Integer(allow_none=True)
    status = Choice(
        (*CLAIM_STATUSES, *CHECKIN_OUTCOMES),
        metadata={
            "description": "the claim's status (posted, in_notice, pending, approved); "
            "checked_in: a per-hour item, scored at check-out; no_points: "
            "attendance recorded, nothing to award (see reason)"
        },
    )
    points = fields.Integer()
    reason = fields.String(allow_none=True)
    activity_id = fields.Integer()
    villager_id = fields.Integer()
    household_id = fields.Integer()
    checked_in_at = LocalDateTime()
    checked_out_at = LocalDateTime(allow_none=True)
    distance_m = fields.Integer(allow_none=True)
    flags = fields.List(Choice(CHECKIN_FLAGS))
    proxy_by = fields.Integer(allow_none=True)
    activity_title = fields.String(allow_none=True)
    rule_item_name = fields.String(allow_none=True)
    notice_ends_at = LocalDateTime(
        allow_none=True,
        metadata={"description": "until when the claim is in public notice (公示), if it is"},
    )


class CheckinListArgs(PageArgs):
    pass


class CheckinRowOut(Schema):
    id = fields.Integer()
    activity_id = fields.Integer()
    villager_id = fields.Integer()
    villager_name = fields.String(allow_none=True)
    relation = fields.String(allow_none=True)
    household_id = fields.Integer()
    household_name = fields.String(allow_none=True)
    checked_in_at = LocalDateTime()
    checked_out_at = LocalDateTime(allow_none=True)
    device_id = fields.String(allow_none=True)
    lat = fields.Float(allow_none=True)
    lng = fields.Float(allow_none=True)
    distance_m = fields.Integer(allow_none=True)
    proxy_by = fields.Integer(allow_none=True)
    proxy_by_name = fields.String(allow_none=True)
    claim_id = fields.Integer(allow_none=True)
    claim_status = Choice(CLAIM_STATUSES, allow_none=True)
    points = fields.Integer()
    reason = fields.String(allow_none=True)
    flags = fields.List(Choice(CHECKIN_FLAGS))


class SharedDeviceOut(Schema):
    device_id = fields.String()
    villager_ids = fields.List(fields.Integer())
    household_ids = fields.List(fields.Integer())
    checkin_ids = fields.List(fields.Integer())


class ProxyBurstOut(Schema):
    cadre_id = fields.Integer()
    cadre_name = fields.String(allow_none=True)
    count = fields.Integer()
    first_at = LocalDateTime()
    last_at = LocalDateTime()
    checkin_ids = fields.List(fields.Integer())


class BurstRuleOut(Schema):
    more_than = fields.Integer()
    within_minutes = fields.Float()


class SignalsOut(Schema):
    shared_devices = fields.List(
        fields.Nested(SharedDeviceOut),
        metadata={"description": "one device id used by several villagers"},
    )
    out_of_area = fields.List(
        fields.Integer(),
        metadata={"description": "check-ins outside the area (geofence mode flag)"},
    )
    no_location = fields.List(fields.Integer())
    proxy_bursts = fields.List(
        fields.Nested(ProxyBurstOut),
        metadata={
            "description": "more than PROXY_BURST_COUNT proxy check-ins by one cadre within "
            "PROXY_BURST_MINUTES"
        },
    )
    own_household_proxies = fields.List(fields.Integer())
    burst_rule = fields.Nested(BurstRuleOut)


class CheckinListOut(Schema):
    activity_id = fields.Integer()
    items = fields.List(fields.Nested(CheckinRowOut))
    page = fields.Integer()
    per_page = fields.Integer()
    total = fields.Integer()
    checked_in = fields.Integer()
    capacity = fields.Integer(allow_none=True)
    proxy_count = fields.Integer()
    signals = fields.Nested(SignalsOut)
