"""Activities and QR check-in (签到): the proof of being there that becomes a claim.

A villager scans the activity's code in the mini-program; the check-in is checked against
the code (signed, typed, the current rotating step), the village, the check-in window, the
geofence and the capacity, then recorded once per person (a unique constraint) and turned
into a claim by the activity's rule item. A cadre checks in people without phones by
scanning their member card (代签). Per-hour items are scored at check-out.

Codes: a static code is the token (activity id, 0), valid through the check-in window, for
printed posters; a rotating code is (activity id, step), step = floor(unix time / step
seconds), and only the current and the previous step are accepted, so a photo sent to
someone at home is stale within a minute; and, in the last few seconds of a step, the next
one (QR_CLOCK_SKEW_SECONDS), since the screen may be fed by a server whose clock is ahead of
the one checking the scan.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, Text, and_, bindparam, cast, func, select, update
from sqlalchemy.orm import Session, aliased

import rules

from .. import audit, cards, catalogs, claims
from ..db import core, upsert_insert
from ..errors import DomainError, Forbidden, Invalid, NotBound, NotFound, WrongVillage
from ..models import (
    Claim,
    Household,
    RuleCatalog,
    RuleItem,
    RuleItemVersion,
    User,
    Village,
    Villager,
)
from ..models.activities import Activity, CheckIn
from ..models.rules import stored_rule
from ..scope import VILLAGER, Actor, authorize, get_visible, visible
from ..time_zone import moment_text
from ..tokens import (
    Decoded,
    QRTokenExpired,
    QRTokenInvalid,
    TokenCodec,
    TokenType,
    scanned_token,
)

EARTH_RADIUS_M = 6_371_008.8  # mean radius (IUGG)
DEFAULT_OPENS_BEFORE = timedelta(minutes=30)
HOUR_UNITS = frozenset({"小时", "时", "hour", "hours", "h"})
STATES = ("upcoming", "open", "closed", "cancelled")
LIST_STATES = (*STATES, "current")  # current: upcoming or open (what a villager looks for)
# What a check-in answers beside its claim's status: a per-hour item scored at check-out,
# or attendance with nothing to award.
CHECKIN_OUTCOMES = ("checked_in", "no_points")
# Signals a check-in carries for the cadres who review the attendance list.
CHECKIN_FLAGS = ("out_of_area", "no_location", "own_household", "shared_device", "proxy_burst")


# ---- refusals (API.md, Activities and check-in) ---------------------------------------------

class CheckinNotOpen(DomainError):
    status = 422
    code = "checkin_not_open"
    message = "签到还没有开始"


class CheckinClosed(DomainError):
    status = 422
    code = "checkin_closed"
    message = "签到已经结束"


class WrongVillageCode(WrongVillage):
    message = "这是其他村的活动二维码，不能在本村签到"


class AlreadyCheckedIn(DomainError):
    status = 409
    code = "already_checked_in"
    message = "您已经签过到了，不用重复签到"


class OutOfArea(DomainError):
    status = 422
    code = "out_of_area"
    message = "您不在活动地点附近，请到现场后再扫码签到"


class LocationRequired(DomainError):
    status = 422
    code = "location_required"
    message = "本活动需要定位签到，请允许小程序获取位置后重新扫码"


class ActivityFull(DomainError):
    status = 409
    code = "activity_full"
    message = "本活动签到人数已满"


class ActivityCancelled(DomainError):
    status = 409
    code = "activity_cancelled"
    message = "本活动已取消"


class AlreadyCheckedOut(DomainError):
    status = 409
    code = "already_checked_out"
    message = "已经签退过了"


class CheckoutNotNeeded(DomainError):
    status = 409
    code = "checkout_not_needed"
    message = "本活动按次计分，不需要签退"


class RotatingNotPrintable(DomainError):
    status = 409
    code = "rotating_code_not_printable"
    message = "本活动使用动态二维码，不能打印，请在大屏上打开展示页"


# ---- values ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Geofence:
    lat: float
    lng: float
    radius_m: int
    mode: str = "refuse"  # refuse | flag


@dataclass(frozen=True)
class IssuedCode:
    """The code valid now: shown until `refresh_at`, accepted until `expires_at`."""

    token: str
    step: int
    expires_at: datetime
    refresh_at: datetime | None


@dataclass(frozen=True)
class CheckInResult:
    checkin_id: int
    activity_id: int
    villager_id: int
    household_id: int
    claim_id: int | None
    status: str  # the claim's status; checked_in (waits for check-out) or no_points without
    points: int
    reason: str | None
    checked_in_at: datetime
    checked_out_at: datetime | None = None
    distance_m: int | None = None
    flags: list[str] = field(default_factory=list)
    proxy_by: int | None = None
    # What the check-in screen names: the activity, its item, and until when the claim is
    # in public notice (公示), if it is.
    activity_title: str | None = None
    rule_item_name: str | None = None
    notice_ends_at: datetime | None = None

    def as_details(self) -> dict[str, Any]:
        return {"checkin_id": self.checkin_id, "claim_id": self.claim_id,
                "status": self.status, "points": self.points}


def state(activity: Activity, now: datetime) -> str:
    if activity.status == "cancelled":
        return "cancelled"
    if now < activity.checkin_opens_at:
        return "upcoming"
    if now < activity.checkin_closes_at:
        return "open"
    return "closed"


def is_hourly(kind: str | None, unit: str | None) -> bool:
    """Per-hour items are scored from the time between check-in and check-out."""
    return kind == "per_unit" and (unit or "").strip().lower() in HOUR_UNITS


def worked_from(checked_in_at: datetime, starts_at: datetime) -> datetime:
    """When a per-hour check-in's counted work began: the check-in, or the activity's start
    if the villager scanned before it. This is the deed's time of the claim made at
    check-out (its month decides the caps, the board and the budget), rather than the
    check-out (a villager who forgets to check out until the next morning moves nothing) or
    the end of the counted work (which is known only at check-out, so an open check-in could
    not say which month it holds back from closing)."""
    return max(checked_in_at, starts_at)


def distance_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance on the sphere (haversine), in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def _local(moment: datetime, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%m月%d日 %H:%M")


# ---- activities -----------------------------------------------------------------------------

def create_activity(
    session: Session, actor: Actor, *, village_id: int, title: str, rule_item_id: int,
    starts_at: datetime, ends_at: datetime, checkin_opens_at: datetime | None,
    checkin_closes_at: datetime | None, qr_mode: str, step_seconds: int,
    geofence: Geofence | None, capacity: int | None, note: str | None, now: datetime,
    place: str | None = None,
) -> Activity:
    village = get_visible(session, actor, Village, village_id)
    authorize(actor, "activity.create")
    item = claims.village_item(session, village.id, rule_item_id)
    rule = claims.current_rule(item)
    if not rule.may_submit("checkin"):
        raise Invalid(f"「{rule.name}」不能通过签到计分，请选择可签到的细则条目",
                      code="not_checkin_item")
    if rule.kind == "per_unit" and not is_hourly(rule.kind, rule.unit):
        raise Invalid(f"「{rule.name}」按{rule.unit}计分，签到只能按次或按小时计分",
                      code="not_checkin_item")
    opens = checkin_opens_at or starts_at - DEFAULT_OPENS_BEFORE
    closes = checkin_closes_at or ends_at
    problems: dict[str, str] = {}
    if ends_at <= starts_at:
        problems["ends_at"] = "结束时间应晚于开始时间"
    if closes <= opens:
        problems["checkin_closes_at"] = "签到截止时间应晚于签到开始时间"
    elif closes <= now:
        problems["checkin_closes_at"] = "签到截止时间已经过去"
    if problems:
        raise Invalid("活动时间不正确：" + "；".join(problems.values()), code="invalid_times",
                      details={"fields": problems})
    activity = Activity(
        village_id=village.id, title=title.strip(), rule_item_id=item.id,
        starts_at=starts_at, ends_at=ends_at, checkin_opens_at=opens, checkin_closes_at=closes,
        qr_mode=qr_mode, qr_step_seconds=step_seconds,
        lat=geofence.lat if geofence else None, lng=geofence.lng if geofence else None,
        radius_m=geofence.radius_m if geofence else None,
        geofence_mode=geofence.mode if geofence else None,
        capacity=capacity, places_taken=0, status="scheduled", note=note,
        place=place.strip() or None if place else None,
        created_by=actor.user_id, created_at=now,
    )
    session.add(activity)
    session.flush()
    audit.record(session, actor, "activity.create", activity, village_id=village.id)
    return activity


def cancel_activity(
    session: Session, actor: Actor, activity_id: int, reason: str | None, now: datetime
) -> Activity:
    """Codes of a cancelled activity are refused from now on. Check-ins already made stay,
    with their claims: those villagers were there."""
    activity = get_visible(session, actor, Activity, activity_id)
    authorize(actor, "activity.cancel")
    before = audit.snapshot(activity)
    moved = session.execute(
        update(Activity).where(Activity.id == activity.id, Activity.status == "scheduled")
        .values(status="cancelled", cancelled_at=now, cancelled_by=actor.user_id,
                cancel_reason=reason)
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        raise ActivityCancelled("本活动已经取消过了")
    session.refresh(activity)
    audit.record(session, actor, "activity.cancel", activity, before=before,
                 village_id=activity.village_id)
    return activity


def activities_query(
    actor: Actor, *, village_id: int | None, status: str | None, now: datetime
) -> Select[tuple[Activity]]:
    """The activities the caller may see. A villager sees their village's, by default only
    those not yet over (upcoming or open for check-in)."""
    stmt = visible(actor, Activity)
    if village_id is not None:
        stmt = stmt.where(Activity.village_id == village_id)
    if status is None and actor.role == VILLAGER:
        status = "current"
    scheduled = Activity.status == "scheduled"
    conditions = {
        "cancelled": Activity.status == "cancelled",
        "upcoming": and_(scheduled, Activity.checkin_opens_at > now),
        "open": and_(scheduled, Activity.checkin_opens_at <= now,
                     Activity.checkin_closes_at > now),
        "closed": and_(scheduled, Activity.checkin_closes_at <= now),
        "current": and_(scheduled, Activity.checkin_closes_at > now),
    }
    if status is not None:
        stmt = stmt.where(conditions[status])
    if status in ("current", "upcoming", "open"):
        return stmt.order_by(Activity.starts_at, Activity.id)
    return stmt.order_by(Activity.starts_at.desc(), Activity.id.desc())


def rule_items_of(session: Session, activities: list[Activity]) -> dict[int, dict[str, Any]]:
    """The rule item of each activity as it reads now (code, name, points …), by item id."""
    ids = {a.rule_item_id for a in activities}
    if not ids:
        return {}
    rows = session.execute(
        select(RuleItem.id, RuleItemVersion.data)
        .join(RuleItemVersion, RuleItemVersion.id == RuleItem.current_version_id)
        .where(RuleItem.id.in_(ids))
    )
    return {item_id: data for item_id, data in rows}


def checkin_counts(session: Session, activity_ids: list[int]) -> dict[int, int]:
    """Check-ins so far per activity (the unique index on activity and villager serves it)."""
    if not activity_ids:
        return {}
    rows = session.execute(
        select(CheckIn.activity_id, func.count()).where(CheckIn.activity_id.in_(activity_ids))
        .group_by(CheckIn.activity_id))
    counts = dict.fromkeys(activity_ids, 0)
    counts.update({activity_id: n for activity_id, n in rows})
    return counts


def my_checkins(session: Session, actor: Actor, activity_ids: list[int]) -> dict[int, int]:
    """The caller's own check-in ids by activity (villagers only)."""
    if actor.villager_id is None or not activity_ids:
        return {}
    rows = session.execute(
        select(CheckIn.activity_id, CheckIn.id)
        .where(CheckIn.villager_id == actor.villager_id, CheckIn.activity_id.in_(activity_ids))
    )
    return {activity_id: checkin_id for activity_id, checkin_id in rows}


# ---- codes ----------------------------------------------------------------------------------

def current_step(now: datetime, step_seconds: int) -> int:
    return int(now.timestamp()) // step_seconds


def issue_code(codec: TokenCodec, activity: Activity, now: datetime) -> IssuedCode:
    """The code valid now: the poster code of a static activity, the current step of a
    rotating one."""
    if activity.qr_mode == "static":
        token = codec.encode(TokenType.ACTIVITY, (activity.id, 0))
        return IssuedCode(token, 0, activity.checkin_closes_at, None)
    seconds = activity.qr_step_seconds
    step = current_step(now, seconds)
    epoch = datetime.fromtimestamp(0, now.tzinfo)
    token = codec.encode(TokenType.ACTIVITY, (activity.id, step))
    # Shown for one step, accepted for one more (the grace for a scan already under way).
    return IssuedCode(token, step, epoch + timedelta(seconds=(step + 2) * seconds),
                      epoch + timedelta(seconds=(step + 1) * seconds))


def poster_code(session: Session, actor: Actor, codec: TokenCodec, activity_id: int
                ) -> tuple[Activity, str]:
    """The printable code of a static activity (qr.png, qr.svg)."""
    activity = get_visible(session, actor, Activity, activity_id)
    authorize(actor, "activity.qr")
    if activity.qr_mode != "static":
        raise RotatingNotPrintable()
    if activity.status == "cancelled":
        raise ActivityCancelled()
    return activity, codec.encode(TokenType.ACTIVITY, (activity.id, 0))


def code_for_staff(session: Session, actor: Actor, codec: TokenCodec, activity_id: int,
                   now: datetime) -> tuple[Activity, IssuedCode]:
    activity = get_visible(session, actor, Activity, activity_id)
    authorize(actor, "activity.qr")
    if activity.status == "cancelled":
        raise ActivityCancelled()
    return activity, issue_code(codec, activity, now)


def display_key(
    session: Session, actor: Actor, codec: TokenCodec, activity_id: int, now: datetime,
) -> tuple[Activity, str, datetime]:
    """A key for the display screen of one activity: it lets a browser without a login
    fetch that activity's current code until check-in closes or its cadre loses access.
    Audited: a leaked key defeats the rotation.

    It lives exactly until check-in closes, however early it is made: a screen is set up
    the day before, or hours ahead, and a key with a life of its own expired before its
    check-in even opened. After the close the key is worth nothing (no code is shown then),
    so a later expiry would add nothing."""
    activity = get_visible(session, actor, Activity, activity_id)
    authorize(actor, "activity.qr")
    if activity.status == "cancelled":
        raise ActivityCancelled()
    if activity.checkin_closes_at <= now:
        raise CheckinClosed()
    expires_at = activity.checkin_closes_at
    key = codec.encode(TokenType.DISPLAY, (activity.id, actor.user_id), expires_at)
    audit.record(session, actor, "activity.display_link", activity,
                 after={"activity_id": activity.id, "expires_at": expires_at.isoformat()},
                 village_id=activity.village_id)
    return activity, key, expires_at


def code_for_display(session: Session, codec: TokenCodec, activity_id: int, key: str,
                     now: datetime) -> tuple[Activity, IssuedCode]:
    """What the display screen shows, authorised by its key rather than a login."""
    decoded = codec.decode(key, TokenType.DISPLAY, now)
    if len(decoded.fields) != 2 or decoded.fields[0] != activity_id:
        raise QRTokenInvalid()
    user = session.get(User, decoded.fields[1])
    if user is None or user.disabled:
        raise Forbidden("展示链接已失效，请重新打开展示页", code="display_key_revoked")
    return code_for_staff(session, Actor.of(session, user), codec, activity_id, now)


# ---- check-in -------------------------------------------------------------------------------

def _activity_fields(decoded: Decoded) -> tuple[int, int]:
    if len(decoded.fields) != 2:
        raise QRTokenInvalid()
    activity_id, step = decoded.fields
    return activity_id, step


def _check_step(activity: Activity | OpenActivity, step: int, now: datetime,
                clock_skew: timedelta) -> None:
    """The current step and the previous one (the grace for a scan under way) are good. So
    is the next step in the last `clock_skew` of the current one: the screen may be fed by
    another server whose clock is a few seconds ahead, which shows the next step that much
    early. A server behind needs nothing more: its code is accepted for a whole step after
    it is replaced. The skew is below the shortest step, so a code two steps ahead is never
    good."""
    if activity.qr_mode == "static":
        if step != 0:
            raise QRTokenExpired()
        return
    seconds = activity.qr_step_seconds
    current = current_step(now, seconds)
    if step in (current, current - 1):
        return
    if step == current + 1 and now.timestamp() >= step * seconds - clock_skew.total_seconds():
        return
    raise QRTokenExpired("二维码已过期，请扫描大屏上最新的二维码")


def _check_open(activity: Activity | OpenActivity, now: datetime, tz: ZoneInfo) -> None:
    if activity.status == "cancelled":
        raise ActivityCancelled()
    if now < activity.checkin_opens_at:
        raise CheckinNotOpen(
            f"签到还没有开始，请在 {_local(activity.checkin_opens_at, tz)} 以后扫码",
            details={"checkin_opens_at": moment_text(activity.checkin_opens_at, tz)})
    if now >= activity.checkin_closes_at:
        raise CheckinClosed(
            f"签到已于 {_local(activity.checkin_closes_at, tz)} 结束",
            details={"checkin_closes_at": moment_text(activity.checkin_closes_at, tz)})


def _geofence(activity: Activity | OpenActivity, lat: float | None, lng: float | None
              ) -> tuple[int | None, list[str], DomainError | None]:
    """The distance from the activity, flags to record, and the refusal to raise once the
    check-in is known not to be a repeat."""
    if activity.lat is None or activity.lng is None or activity.radius_m is None:
        return None, [], None
    refuse = activity.geofence_mode != "flag"
    if lat is None or lng is None:
        return None, ["no_location"], LocationRequired() if refuse else None
    distance = round(distance_m(activity.lat, activity.lng, lat, lng))
    if distance <= activity.radius_m:
        return distance, [], None
    refusal = OutOfArea(
        f"您距离活动地点约 {distance} 米，超出了 {activity.radius_m} 米的签到范围，"
        "请到现场后再扫码签到",
        details={"distance_m": distance, "radius_m": activity.radius_m},
    )
    return distance, ["out_of_area"], refusal if refuse else None


def _insert_checkin(session: Session, values: dict[str, Any]) -> int | None:
    """INSERT … ON CONFLICT DO NOTHING RETURNING id: the unique (activity, villager) decides
    a repeat, also between concurrent scans (the second waits for the first to commit, then
    inserts nothing). None: already checked in."""
    dialect = session.get_bind().dialect.name
    return core(session).execute(_checkin_insert(dialect), values).scalar()


@lru_cache(maxsize=4)
def _checkin_insert(dialect: str) -> Any:
    """Built once per dialect: building a statement costs more CPU than running it. The
    table, not the mapped class: one row needs none of the ORM's bulk-insert work."""
    table = CheckIn.__table__
    return (upsert_insert(dialect)(table)  # type: ignore[arg-type]
            .on_conflict_do_nothing(index_elements=["activity_id", "villager_id"])
            .returning(table.c.id))  # type: ignore[attr-defined]


def _result_of(session: Session, checkin: CheckIn, *, named: bool = True) -> CheckInResult:
    """A check-in as its screen shows it; `named=False` (the details of a refusal) leaves
    the activity's and item's names out, and their query."""
    claim = session.get(Claim, checkin.claim_id) if checkin.claim_id else None
    names = _names_of(session, checkin.activity_id) if named else (None, None)
    return _result(checkin, claim, _status(checkin, claim), names)


def _names_of(session: Session, activity_id: int) -> tuple[str | None, str | None]:
    """The activity's title and its item's name (current version), in one query."""
    row = session.execute(
        select(Activity.title, RuleItemVersion.data)
        .join(RuleItem, RuleItem.id == Activity.rule_item_id)
        .outerjoin(RuleItemVersion, RuleItemVersion.id == RuleItem.current_version_id)
        .where(Activity.id == activity_id)).first()
    if row is None:
        return None, None
    return row[0], (row[1] or {}).get("name")


def _status(checkin: CheckIn, claim: Claim | None) -> str:
    if claim is not None:
        return claim.status
    if checkin.reason is None and checkin.checked_out_at is None:
        return "checked_in"
    return "no_points"


def _result(checkin: CheckIn, claim: Claim | None, status: str,
            names: tuple[str | None, str | None]) -> CheckInResult:
    return CheckInResult(
        checkin_id=checkin.id, activity_id=checkin.activity_id,
        villager_id=checkin.villager_id, household_id=checkin.household_id,
        claim_id=claim.id if claim else checkin.claim_id,
        status=status, points=claim.points if claim else checkin.points,
        reason=claim.reason if claim else checkin.reason,
        checked_in_at=checkin.checked_in_at, checked_out_at=checkin.checked_out_at,
        distance_m=checkin.distance_m, flags=list(checkin.flags or []),
        proxy_by=checkin.proxy_by, activity_title=names[0], rule_item_name=names[1],
        notice_ends_at=claim.notice_ends_at if claim else None,
    )


def _score(
    session: Session, actor: Actor, activity: Activity | OpenActivity,
    item: claims.ScoredItem, rule: rules.RuleItem, target: claims.Target, units: int | None,
    now: datetime, tz: ZoneInfo, policy: rules.Policy | None = None,
    occurred_at: datetime | None = None,
) -> tuple[Claim | None, str | None]:
    """The claim the rule item makes of this attendance, or why there is none (a cap is
    reached: the attendance is still recorded, since the villager was there). `occurred_at`:
    when the work was done, if before `now` (`check_out`)."""
    try:
        claim = claims.submit_checkin(session, actor, item, rule, target, units=units, now=now,
                                      tz=tz, note=activity.title, policy=policy,
                                      occurred_at=occurred_at)
    except claims.NoPoints as exc:
        return None, exc.message
    return claim, None


def _take_place(session: Session, activity: Activity | OpenActivity) -> None:
    """Take a place of a limited activity: one conditional UPDATE, last in the transaction
    so the activity's row lock is held only until the commit that follows. Full, or
    cancelled meanwhile: refuse (the caller's rollback removes the check-in and its claim).
    An activity without a capacity takes no lock at all."""
    if activity.capacity is None:
        return
    moved = session.execute(
        update(Activity)
        .where(Activity.id == activity.id, Activity.status == "scheduled",
               Activity.places_taken < Activity.capacity)
        .values(places_taken=Activity.places_taken + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved == 1:
        return
    status = session.scalar(select(Activity.status).where(Activity.id == activity.id))
    if status == "cancelled":
        raise ActivityCancelled()
    raise ActivityFull(details={"capacity": activity.capacity})


def _record(
    session: Session, actor: Actor, activity: Activity | OpenActivity,
    item: claims.ScoredItem, rule: rules.RuleItem, target: claims.Target, *, now: datetime,
    tz: ZoneInfo, user_id: int | None,
    proxy_by: int | None, device_id: str | None = None, lat: float | None = None,
    lng: float | None = None, distance: int | None = None, flags: list[str] | None = None,
    refusal: DomainError | None = None, policy: rules.Policy | None = None,
) -> CheckInResult:
    """The claim first, then the check-in row that names it: the insert settles a repeat
    (the unique constraint), and a repeat's claim goes with its rollback."""
    assert target.member_id is not None
    flags = flags or []
    claim: Claim | None = None
    reason: str | None = None
    if refusal is None and not is_hourly(rule.kind, rule.unit):
        claim, reason = _score(session, actor, activity, item, rule, target, None, now, tz,
                               policy=policy)
    checkin_id = _insert_checkin(session, {
        "activity_id": activity.id, "villager_id": target.member_id,
        "household_id": target.household_id, "village_id": target.village_id,
        "user_id": user_id, "proxy_by": proxy_by, "checked_in_at": now,
        "device_id": device_id, "lat": lat, "lng": lng, "distance_m": distance,
        "flags": flags, "claim_id": claim.id if claim else None,
        "points": claim.points if claim else 0, "reason": reason,
    })
    if checkin_id is None:
        # A repeat: the refusal's rollback takes the claim just made with it.
        existing = session.scalar(select(CheckIn).where(
            CheckIn.activity_id == activity.id, CheckIn.villager_id == target.member_id))
        assert existing is not None
        who = "这位村民已经签过到了" if proxy_by else "您已经签过到了，不用重复签到"
        raise AlreadyCheckedIn(who, details=_result_of(session, existing, named=False)
                               .as_details())
    if refusal is not None:
        raise refusal
    _take_place(session, activity)
    if claim is not None:
        status = claim.status
    else:
        status = "no_points" if reason else "checked_in"
    return CheckInResult(
        checkin_id=checkin_id, activity_id=activity.id, villager_id=target.member_id,
        household_id=target.household_id, claim_id=claim.id if claim else None,
        status=status, points=claim.points if claim else 0,
        reason=claim.reason if claim else reason, checked_in_at=now, distance_m=distance,
        flags=flags, proxy_by=proxy_by, activity_title=activity.title, rule_item_name=rule.name,
        notice_ends_at=claim.notice_ends_at if claim else None,
    )


@dataclass(frozen=True)
class OpenActivity:
    """An activity as a scan reads it, with its rule item's current version and the village's
    policy: plain columns, read in one query. Check-in is the busiest write, and loading
    the activity, the item and the version as mapped objects cost more than the query."""
    id: int
    village_id: int
    title: str
    status: str
    qr_mode: str
    qr_step_seconds: int
    checkin_opens_at: datetime
    checkin_closes_at: datetime
    lat: float | None
    lng: float | None
    radius_m: int | None
    geofence_mode: str | None
    capacity: int | None
    item: claims.ItemVersion
    rule: rules.RuleItem
    policy: rules.Policy


# Built once: building a statement costs more CPU than running it. The version and the
# policies come as their JSON text, which is also the key of their parsed values
# (`stored_rule`): nothing to decode and encode again on every scan. The policies of the
# village's own catalog and of its township's come along, so the claim needs no query of
# its own for them (catalogs.effective_policy).
_OWN_CATALOG = aliased(RuleCatalog)
_TOWNSHIP_CATALOG = aliased(RuleCatalog)


def _policy_text(catalog: Any) -> Any:
    # A JSON null, which the mapped column reads as None ("the township's policy"), must not
    # reach the parser as the text 'null'.
    return func.nullif(cast(catalog.policy, Text), "null")


_OPEN_ACTIVITY = (
    select(Activity.id, Activity.village_id, Activity.title, Activity.status,
           Activity.qr_mode, Activity.qr_step_seconds, Activity.checkin_opens_at,
           Activity.checkin_closes_at, Activity.lat, Activity.lng, Activity.radius_m,
           Activity.geofence_mode, Activity.capacity, RuleItem.id, RuleItem.current_version_id,
           RuleItem.retired_at, cast(RuleItemVersion.data, Text), Village.township_id,
           RuleCatalog.township_id, RuleCatalog.village_id,
           _policy_text(_OWN_CATALOG), _policy_text(_TOWNSHIP_CATALOG))
    .join(Village, Village.id == Activity.village_id)
    .join(RuleItem, RuleItem.id == Activity.rule_item_id)
    .join(RuleCatalog, RuleCatalog.id == RuleItem.catalog_id)
    .join(RuleItemVersion, RuleItemVersion.id == RuleItem.current_version_id, isouter=True)
    .join(_OWN_CATALOG, _OWN_CATALOG.village_id == Village.id, isouter=True)
    .join(_TOWNSHIP_CATALOG, _TOWNSHIP_CATALOG.township_id == Village.township_id,
          isouter=True)
    .where(Activity.id == bindparam("activity_id"))
)


def _open_activity(session: Session, activity_id: int) -> OpenActivity | None:
    """The activity with its rule item's current version and the village's policy, in one
    query. The item must still be in effect for the village, as for any claim
    (`catalogs.in_effect_for`): in the township's catalog or the village's own, not
    retired."""
    row = core(session).execute(_OPEN_ACTIVITY, {"activity_id": activity_id}).first()
    if row is None:
        return None
    (*columns, item_id, version_id, retired_at, version, village_township, catalog_township,
     catalog_village, own, township) = row
    in_effect = catalog_township == village_township or catalog_village == columns[1]
    if not in_effect or retired_at is not None or version_id is None or version is None:
        raise NotFound("本村积分细则中没有这一项", code="rule_item_not_found")
    policy = catalogs.policy_of(own, township)
    rule = stored_rule(version)
    if catalog_village is not None:
        # The village's own item: the township's policy is its floor (claims.rule_in_force).
        rule = rules.village_item_in_force(rule, policy)
    return OpenActivity(*columns, item=claims.ItemVersion(item_id, version_id), rule=rule,
                        policy=policy)


def check_in(
    session: Session, actor: Actor, codec: TokenCodec, token: str, *, lat: float | None,
    lng: float | None, device_id: str | None, now: datetime, tz: ZoneInfo,
    clock_skew: timedelta,
) -> CheckInResult:
    """A villager's own scan of an activity code (扫码签到). `clock_skew`: how far apart the
    clocks of the server showing the code and this one may be (`_check_step`)."""
    authorize(actor, "checkin.create")
    if actor.villager_id is None or actor.household_id is None or actor.village_id is None:
        raise NotBound()
    activity_id, step = _activity_fields(
        codec.decode(scanned_token(token), TokenType.ACTIVITY, now))
    activity = _open_activity(session, activity_id)
    if activity is None:
        raise QRTokenInvalid()
    if activity.village_id != actor.village_id:
        raise WrongVillageCode()
    if activity.status == "cancelled":
        raise ActivityCancelled()
    _check_step(activity, step, now, clock_skew)
    _check_open(activity, now, tz)
    distance, flags, refusal = _geofence(activity, lat, lng)
    target = claims.Target(actor.household_id, actor.villager_id, actor.village_id)
    return _record(session, actor, activity, activity.item, activity.rule, target, now=now,
                   tz=tz, user_id=actor.user_id, proxy_by=None, device_id=device_id, lat=lat,
                   lng=lng, distance=distance, flags=flags, refusal=refusal,
                   policy=activity.policy)


def proxy_check_in(
    session: Session, actor: Actor, codec: TokenCodec, activity_id: int, member_token: str,
    *, now: datetime, tz: ZoneInfo,
) -> CheckInResult:
    """A cadre checks in a villager without a phone by scanning their member card (代签),
    recorded with the cadre's id and audited."""
    activity = get_visible(session, actor, Activity, activity_id)
    authorize(actor, "checkin.proxy")
    villager = cards.villager_on_card(session, codec, member_token, now)
    if villager is None:
        raise NotFound("这张村民卡对应的村民不在花名册中", code="member_not_found")
    household = villager.household
    if household.village_id != activity.village_id:
        raise WrongVillage("这位村民不是本村的，不能在本村活动代签")
    target = claims.member_target(villager)
    _check_open(activity, now, tz)
    item = claims.village_item(session, activity.village_id, activity.rule_item_id)
    flags = ["own_household"] if actor.household_id == household.id else []
    rule = claims.rule_in_force(session, item, activity.village_id)
    result = _record(session, actor, activity, item, rule, target,
                     now=now, tz=tz, user_id=None, proxy_by=actor.user_id, flags=flags)
    checkin = session.get(CheckIn, result.checkin_id)
    assert checkin is not None
    audit.record(session, actor, "checkin.proxy", checkin, village_id=activity.village_id)
    return result


def check_out(
    session: Session, actor: Actor, checkin_id: int, *, now: datetime, tz: ZoneInfo
) -> CheckInResult:
    """签退 for a per-hour item: the whole hours between check-in and check-out, counted
    within the activity's own time, become the claim's units; the rule's max_units and caps
    then limit the points as for any claim. The claim's deed is the work, not the check-out
    (`worked_from`): hours of 31 March checked out on 1 April are March's."""
    checkin = get_visible(session, actor, CheckIn, checkin_id)
    authorize(actor, "checkin.checkout")
    if actor.role == VILLAGER and checkin.villager_id != actor.villager_id:
        raise Forbidden("只能签退自己的签到", code="not_own_checkin")
    activity = session.get(Activity, checkin.activity_id)
    assert activity is not None
    item = claims.village_item(session, activity.village_id, activity.rule_item_id)
    rule = claims.rule_in_force(session, item, activity.village_id)
    if not is_hourly(rule.kind, rule.unit):
        raise CheckoutNotNeeded()
    if actor.role != VILLAGER:
        # Staff check a deactivated villager out no more than in (the villager's own
        # session is refused by authorize).
        villager = session.get(Villager, checkin.villager_id)
        assert villager is not None
        claims.member_target(villager)
    moved = session.execute(
        update(CheckIn).where(CheckIn.id == checkin.id, CheckIn.checked_out_at.is_(None))
        .values(checked_out_at=now, checked_out_by=actor.user_id)
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        session.refresh(checkin)
        raise AlreadyCheckedOut(
            details=_result_of(session, checkin, named=False).as_details())
    session.refresh(checkin)
    start = worked_from(checkin.checked_in_at, activity.starts_at)
    end = min(now, activity.ends_at)
    hours = int(max(0.0, (end - start).total_seconds()) // 3600)
    claim: Claim | None = None
    if hours < 1:
        reason = "签到到签退（按活动时间计）不满 1 小时，本次不计分"
    else:
        target = claims.Target(checkin.household_id, checkin.villager_id, checkin.village_id)
        claim, reason = _score(session, actor, activity, item, rule, target, hours, now, tz,
                               occurred_at=start)
    checkin.claim_id = claim.id if claim else None
    checkin.points = claim.points if claim else 0
    checkin.reason = None if claim else reason
    session.flush()
    if actor.role != VILLAGER:
        audit.record(session, actor, "checkin.checkout", checkin,
                     village_id=activity.village_id)
    return _result(checkin, claim, claim.status if claim else "no_points",
                   (activity.title, rule.name))


# ---- the cadre's view, with anti-fraud signals ------------------------------------------------

@dataclass(frozen=True)
class ProxyBurst:
    cadre_id: int
    cadre_name: str | None
    count: int
    first_at: datetime
    last_at: datetime
    checkin_ids: list[int]


@dataclass(frozen=True)
class SharedDevice:
    device_id: str
    villager_ids: list[int]
    household_ids: list[int]
    checkin_ids: list[int]


def _bursts(rows: list[CheckIn], count: int, window: timedelta) -> dict[int, list[int]]:
    """Per cadre, the proxy check-ins that fall in some window of `window` holding more than
    `count` of them (a sliding window over each cadre's check-ins in time order)."""
    by_cadre: dict[int, list[CheckIn]] = defaultdict(list)
    for row in rows:
        if row.proxy_by is not None:
            by_cadre[row.proxy_by].append(row)
    bursts: dict[int, list[int]] = {}
    for cadre_id, own in by_cadre.items():
        own.sort(key=lambda r: (r.checked_in_at, r.id))
        marked: set[int] = set()
        start = 0
        for end in range(len(own)):
            while own[end].checked_in_at - own[start].checked_in_at > window:
                start += 1
            if end - start + 1 > count:
                marked.update(r.id for r in own[start:end + 1])
        if marked:
            bursts[cadre_id] = sorted(marked)
    return bursts


def checkins_view(
    session: Session, actor: Actor, activity_id: int, *, burst_count: int,
    burst_window: timedelta, page: int = 1, per_page: int = 100,
) -> dict[str, Any]:
    """Every check-in of an activity with the signals a cadre should look at: one device
    used by several villagers, check-ins outside the area (geofence set to flag), and
    bursts of proxy check-ins by one cadre. Signals are for people to judge, not verdicts:
    a family shares a phone, an elderly group is checked in together."""
    activity = get_visible(session, actor, Activity, activity_id)
    authorize(actor, "activity.checkins")
    rows = list(session.scalars(
        select(CheckIn).where(CheckIn.activity_id == activity.id)
        .order_by(CheckIn.checked_in_at, CheckIn.id)
    ))
    villagers = {v.id: v for v in session.scalars(
        select(Villager).where(Villager.id.in_({r.villager_id for r in rows})))} if rows else {}
    households: dict[int, str | None] = {
        hid: name for hid, name in session.execute(
            select(Household.id, Household.name)
            .where(Household.id.in_({r.household_id for r in rows})))
    } if rows else {}
    staff_ids = {r.proxy_by for r in rows if r.proxy_by} | {
        r.checked_out_by for r in rows if r.checked_out_by}
    staff: dict[int, str | None] = {
        uid: name for uid, name in session.execute(
            select(User.id, func.coalesce(User.name, User.username))
            .where(User.id.in_(staff_ids)))
    } if staff_ids else {}
    claim_ids = {r.claim_id for r in rows if r.claim_id}
    claim_status: dict[int, str] = {
        cid: status for cid, status in session.execute(
            select(Claim.id, Claim.status).where(Claim.id.in_(claim_ids)))
    } if claim_ids else {}

    by_device: dict[str, list[CheckIn]] = defaultdict(list)
    for row in rows:
        if row.device_id:
            by_device[row.device_id].append(row)
    shared = [
        SharedDevice(device, sorted({r.villager_id for r in group}),
                     sorted({r.household_id for r in group}), [r.id for r in group])
        for device, group in sorted(by_device.items())
        if len({r.villager_id for r in group}) > 1
    ]
    shared_ids = {i for s in shared for i in s.checkin_ids}
    bursts = _bursts(rows, burst_count, burst_window)
    burst_ids = {i for ids in bursts.values() for i in ids}
    by_id = {r.id: r for r in rows}

    items = []
    for row in rows:
        flags = list(row.flags or [])
        if row.id in shared_ids:
            flags.append("shared_device")
        if row.id in burst_ids:
            flags.append("proxy_burst")
        villager = villagers.get(row.villager_id)
        items.append({
            "id": row.id, "activity_id": row.activity_id, "villager_id": row.villager_id,
            "villager_name": villager.name if villager else None,
            "relation": villager.relation if villager else None,
            "household_id": row.household_id,
            "household_name": households.get(row.household_id),
            "checked_in_at": row.checked_in_at, "checked_out_at": row.checked_out_at,
            "device_id": row.device_id, "lat": row.lat, "lng": row.lng,
            "distance_m": row.distance_m, "proxy_by": row.proxy_by,
            "proxy_by_name": staff.get(row.proxy_by) if row.proxy_by else None,
            "claim_id": row.claim_id,
            "claim_status": claim_status.get(row.claim_id) if row.claim_id else None,
            "points": row.points, "reason": row.reason, "flags": flags,
        })
    signals = {
        "shared_devices": [s.__dict__ for s in shared],
        "out_of_area": [r.id for r in rows if "out_of_area" in (r.flags or [])],
        "no_location": [r.id for r in rows if "no_location" in (r.flags or [])],
        "proxy_bursts": [
            ProxyBurst(cadre_id, staff.get(cadre_id), len(ids),
                       min(by_id[i].checked_in_at for i in ids),
                       max(by_id[i].checked_in_at for i in ids), ids).__dict__
            for cadre_id, ids in sorted(bursts.items())
        ],
        "own_household_proxies": [r.id for r in rows if "own_household" in (r.flags or [])],
        "burst_rule": {"more_than": burst_count,
                       "within_minutes": burst_window.total_seconds() / 60},
    }
    start = (page - 1) * per_page
    return {"activity_id": activity.id, "total": len(rows), "page": page,
            "per_page": per_page, "checked_in": len(rows),
            "capacity": activity.capacity,
            "proxy_count": sum(1 for r in rows if r.proxy_by is not None),
            "items": items[start:start + per_page], "signals": signals}


def checkin_of(session: Session, actor: Actor, checkin_id: int) -> CheckInResult:
    return _result_of(session, get_visible(session, actor, CheckIn, checkin_id))

