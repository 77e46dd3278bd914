"""Activities (活动): creating, listing and cancelling them, and an activity as a scan reads it.

An activity of one village names the rule item its check-ins are scored by, when check-in
is open, how its code is shown (a static code for a printed poster, a rotating one for a
screen), and optionally a geofence and a capacity. Check-in, proxy check-in and check-out
read it through `read_activity`, which also decides whether the village still uses its item.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, Text, and_, bindparam, cast, func, not_, select, update
from sqlalchemy.orm import Session, aliased

import rules

from .. import audit, catalogs, claims
from ..db import core, rowcount
from ..errors import DomainError, Invalid, NotFound
from ..models import RuleCatalog, RuleItem, RuleItemVersion, Village
from ..models.activities import Activity, CheckIn
from ..models.rules import stored_rule
from ..scope import VILLAGER, Actor, authorize, get_visible, visible

EARTH_RADIUS_M = 6_371_008.8  # mean radius (IUGG)
DEFAULT_OPENS_BEFORE = timedelta(minutes=30)
STATES = ("upcoming", "open", "closed", "cancelled")
LIST_STATES = (*STATES, "current")  # current: upcoming or open (what a villager looks for)


# ---- refusals of a scan by the activity's state and place (its codes, its check-ins) ---------


class CheckinNotOpen(DomainError):
    status = 422
    code = "checkin_not_open"
    message = "签到还没有开始"


class CheckinClosed(DomainError):
    status = 422
    code = "checkin_closed"
    message = "签到已经结束"


class ActivityCancelled(DomainError):
    status = 409
    code = "activity_cancelled"
    message = "本活动已取消"


class OutOfArea(DomainError):
    status = 422
    code = "out_of_area"
    message = "您不在活动地点附近，请到现场后再扫码签到"


class LocationRequired(DomainError):
    status = 422
    code = "location_required"
    message = "本活动需要定位签到，请允许小程序获取位置后重新扫码"


# ---- values ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Geofence:
    lat: float
    lng: float
    radius_m: int
    mode: str = "refuse"  # refuse | flag


@dataclass(frozen=True)
class ActivityPlan:
    """What a cadre schedules. Check-in opens `DEFAULT_OPENS_BEFORE` the start and closes at
    the end unless said otherwise."""

    village_id: int
    title: str
    rule_item_id: int
    starts_at: datetime
    ends_at: datetime
    qr_mode: str
    step_seconds: int
    checkin_opens_at: datetime | None = None
    checkin_closes_at: datetime | None = None
    geofence: Geofence | None = None
    capacity: int | None = None
    note: str | None = None
    place: str | None = None


def state(activity: Activity, now: datetime) -> str:
    if activity.status == "cancelled":
        return "cancelled"
    if now < activity.checkin_opens_at:
        return "upcoming"
    if now < activity.checkin_closes_at:
        return "open"
    return "closed"


def is_hourly(rule: rules.RuleItem) -> bool:
    """Per-hour items (the item's `hourly`) are scored from the time between check-in and
    check-out."""
    return bool(rule.hourly)


def distance_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance on the sphere (haversine), in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def geofence_check(
    activity: ScannedActivity, lat: float | None, lng: float | None
) -> tuple[int | None, tuple[str, ...], DomainError | None]:
    """Where a scan is against the activity's geofence: its distance from the activity, the
    flags to record, and the refusal (None when the geofence only flags)."""
    if activity.lat is None or activity.lng is None or activity.radius_m is None:
        return None, (), None
    refuse = activity.geofence_mode != "flag"
    if lat is None or lng is None:
        return None, ("no_location",), LocationRequired() if refuse else None
    distance = round(distance_m(activity.lat, activity.lng, lat, lng))
    if distance <= activity.radius_m:
        return distance, (), None
    refusal = OutOfArea(
        f"您距离活动地点约 {distance} 米，超出了 {activity.radius_m} 米的签到范围，"
        "请到现场后再扫码签到",
        details={"distance_m": distance, "radius_m": activity.radius_m},
    )
    return distance, ("out_of_area",), refusal if refuse else None


# ---- activities -----------------------------------------------------------------------------


def create_activity(session: Session, actor: Actor, plan: ActivityPlan, now: datetime) -> Activity:
    village = get_visible(session, actor, Village, plan.village_id)
    authorize(actor, "activity.create")
    item = claims.village_item(session, village.id, plan.rule_item_id)
    rule = claims.current_rule(item)
    if not rule.may_submit("checkin"):
        raise Invalid(
            f"「{rule.name}」不能通过签到计分，请选择可签到的细则条目", code="not_checkin_item"
        )
    if rule.kind == "per_unit" and not is_hourly(rule):
        raise Invalid(
            f"「{rule.name}」按{rule.unit}计分，签到只能按次或按小时计分", code="not_checkin_item"
        )
    opens = plan.checkin_opens_at or plan.starts_at - DEFAULT_OPENS_BEFORE
    closes = plan.checkin_closes_at or plan.ends_at
    problems: dict[str, str] = {}
    if plan.ends_at <= plan.starts_at:
        problems["ends_at"] = "结束时间应晚于开始时间"
    if closes <= opens:
        problems["checkin_closes_at"] = "签到截止时间应晚于签到开始时间"
    elif closes <= now:
        problems["checkin_closes_at"] = "签到截止时间已经过去"
    if problems:
        raise Invalid(
            "活动时间不正确：" + "；".join(problems.values()),
            code="invalid_times",
            details={"fields": problems},
        )
    fence = plan.geofence
    activity = Activity(
        village_id=village.id,
        title=plan.title.strip(),
        rule_item_id=item.id,
        starts_at=plan.starts_at,
        ends_at=plan.ends_at,
        checkin_opens_at=opens,
        checkin_closes_at=closes,
        qr_mode=plan.qr_mode,
        qr_step_seconds=plan.step_seconds,
        lat=fence.lat if fence else None,
        lng=fence.lng if fence else None,
        radius_m=fence.radius_m if fence else None,
        geofence_mode=fence.mode if fence else None,
        capacity=plan.capacity,
        places_taken=0,
        status="scheduled",
        note=plan.note,
        place=plan.place.strip() or None if plan.place else None,
        created_by=actor.user_id,
        created_at=now,
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
    moved = rowcount(
        session.execute(
            update(Activity)
            .where(Activity.id == activity.id, Activity.status == "scheduled")
            .values(
                status="cancelled",
                cancelled_at=now,
                cancelled_by=actor.user_id,
                cancel_reason=reason,
            )
            .execution_options(synchronize_session=False)
        )
    )
    if moved != 1:
        raise ActivityCancelled("本活动已经取消过了")
    session.refresh(activity)
    audit.record(
        session, actor, "activity.cancel", activity, before=before, village_id=activity.village_id
    )
    return activity


def activities_query(
    actor: Actor, *, village_id: int | None, status: str | None, now: datetime
) -> Select[Activity]:
    """The activities the caller may see. A villager sees their village's, by default only
    those not yet over (upcoming or open for check-in)."""
    stmt = visible(actor, Activity)
    if village_id is not None:
        stmt = stmt.where(Activity.village_id == village_id)
    if status is None and actor.role == VILLAGER:
        status = "current"
    scheduled = Activity.status == "scheduled"
    current = and_(scheduled, Activity.checkin_closes_at > now)
    conditions = {
        "cancelled": Activity.status == "cancelled",
        "upcoming": and_(scheduled, Activity.checkin_opens_at > now),
        "open": and_(scheduled, Activity.checkin_opens_at <= now, Activity.checkin_closes_at > now),
        "closed": and_(scheduled, Activity.checkin_closes_at <= now),
        "current": current,
        # Over or cancelled: the console's list below the current ones (both columns are
        # NOT NULL, so the negation leaves no row out).
        "past": not_(current),
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
        select(CheckIn.activity_id, func.count())
        .where(CheckIn.activity_id.in_(activity_ids))
        .group_by(CheckIn.activity_id)
    )
    counts = dict.fromkeys(activity_ids, 0)
    counts.update({activity_id: n for activity_id, n in rows})
    return counts


def my_checkins(session: Session, actor: Actor, activity_ids: list[int]) -> dict[int, int]:
    """The caller's own check-in ids by activity (villagers only)."""
    if actor.villager_id is None or not activity_ids:
        return {}
    rows = session.execute(
        select(CheckIn.activity_id, CheckIn.id).where(
            CheckIn.villager_id == actor.villager_id, CheckIn.activity_id.in_(activity_ids)
        )
    )
    return {activity_id: checkin_id for activity_id, checkin_id in rows}


@dataclass(frozen=True)
class ActivityView:
    """An activity as its list shows it: the activity, its rule item as it reads now, its
    geofence, the check-ins so far, its state now and the caller's own check-in."""

    activity: Activity
    rule_item: catalogs.ItemRef
    location: Geofence | None
    checked_in: int
    status: str
    my_checkin_id: int | None


def geofence(activity: Activity) -> Geofence | None:
    """The activity's geofence (create_activity stores its four columns together)."""
    if activity.lat is None or activity.lng is None or activity.radius_m is None:
        return None
    return Geofence(
        lat=activity.lat,
        lng=activity.lng,
        radius_m=activity.radius_m,
        mode=activity.geofence_mode or "refuse",
    )


def views(
    session: Session, actor: Actor, listed: list[Activity], now: datetime
) -> list[ActivityView]:
    """Each activity as the list shows it, in three queries whatever the page's size."""
    items = rule_items_of(session, listed)
    ids = [a.id for a in listed]
    mine = my_checkins(session, actor, ids)
    counts = checkin_counts(session, ids)
    return [
        ActivityView(
            activity=a,
            rule_item=catalogs.item_ref(a.rule_item_id, data=items.get(a.rule_item_id)),
            location=geofence(a),
            checked_in=counts.get(a.id, 0),
            status=state(a, now),
            my_checkin_id=mine.get(a.id),
        )
        for a in listed
    ]


# ---- an activity as check-in reads it -------------------------------------------------------


@dataclass(frozen=True)
class Scoring:
    """How an activity's check-ins are scored: its rule item's current version, the rule
    in force for the village (for the village's own item, the township's policy is its
    floor, as `claims.rule_in_force` applies it) and the village's policy."""

    item: claims.ItemVersion
    rule: rules.RuleItem
    policy: rules.Policy


@dataclass(frozen=True)
class ScannedActivity:
    """An activity as check-in, proxy check-in and check-out read it: plain columns and its
    `Scoring`, in one query (`read_activity`). Check-in is the busiest write, and loading
    the activity, the item and the version as mapped objects cost more than the query."""

    id: int
    village_id: int
    title: str
    status: str
    qr_mode: str
    qr_step_seconds: int
    starts_at: datetime
    ends_at: datetime
    checkin_opens_at: datetime
    checkin_closes_at: datetime
    lat: float | None
    lng: float | None
    radius_m: int | None
    geofence_mode: str | None
    capacity: int | None
    # None when the village no longer uses the item (`item_in_effect`): each path refuses
    # that where it always has, by asking `scoring()`.
    item_in_effect: Scoring | None

    def scoring(self) -> Scoring:
        if self.item_in_effect is None:
            raise NotFound("本村积分细则中没有这一项", code="rule_item_not_found")
        return self.item_in_effect


def item_in_effect(
    *,
    village_id: int,
    township_id: int,
    catalog_village_id: int | None,
    catalog_township_id: int | None,
    retired: bool,
) -> bool:
    """Whether a village uses an item now, as for any claim (`catalogs.in_effect_for`): it is
    in its township's catalog or in the village's own (村规民约), and not retired."""
    return not retired and (catalog_township_id == township_id or catalog_village_id == village_id)


def read_activity(session: Session, activity_id: int) -> ScannedActivity | None:
    """The activity with its `Scoring`, or None if there is no such activity. One query
    reads the activity, its item and current version, the village and both catalogs'
    policies; `item_in_effect` decides on what it read, so every check-in path asks the
    same rule of the same row."""
    row = core(session).execute(_READ_ACTIVITY, {"activity_id": activity_id}).first()
    if row is None:
        return None
    (
        *columns,
        item_id,
        version_id,
        retired_at,
        version,
        village_township,
        catalog_township,
        catalog_village,
        own,
        township,
    ) = row
    scoring = None
    if (
        version_id is not None
        and version is not None
        and item_in_effect(
            village_id=columns[1],
            township_id=village_township,
            catalog_village_id=catalog_village,
            catalog_township_id=catalog_township,
            retired=retired_at is not None,
        )
    ):
        policy = catalogs.policy_of(own, township)
        rule = stored_rule(version)
        if catalog_village is not None:
            rule = rules.village_item_in_force(rule, policy)
        scoring = Scoring(claims.ItemVersion(item_id, version_id), rule, policy)
    # The row's first 15 columns are the fields before `item_in_effect`; a row of more than
    # ten columns has no element types for mypy to count.
    return ScannedActivity(*columns, item_in_effect=scoring)  # type: ignore[misc]


# Built once: building a statement costs more CPU than running it. The version and the
# policies come as their JSON text, which is also the key of their parsed values
# (`stored_rule`): nothing to decode and encode again on every scan. The policies of the
# village's own catalog and of its township's come along, so the claim needs no query of
# its own for them (catalogs.effective_policy).
_OWN_CATALOG = aliased(RuleCatalog)
_TOWNSHIP_CATALOG = aliased(RuleCatalog)


_READ_ACTIVITY = (
    select(
        Activity.id,
        Activity.village_id,
        Activity.title,
        Activity.status,
        Activity.qr_mode,
        Activity.qr_step_seconds,
        Activity.starts_at,
        Activity.ends_at,
        Activity.checkin_opens_at,
        Activity.checkin_closes_at,
        Activity.lat,
        Activity.lng,
        Activity.radius_m,
        Activity.geofence_mode,
        Activity.capacity,
        RuleItem.id,
        RuleItem.current_version_id,
        RuleItem.retired_at,
        cast(RuleItemVersion.data, Text),
        Village.township_id,
        RuleCatalog.township_id,
        RuleCatalog.village_id,
        catalogs.policy_text(_OWN_CATALOG),
        catalogs.policy_text(_TOWNSHIP_CATALOG),
    )
    .join(Village, Village.id == Activity.village_id)
    .join(RuleItem, RuleItem.id == Activity.rule_item_id)
    .join(RuleCatalog, RuleCatalog.id == RuleItem.catalog_id)
    .join(RuleItemVersion, RuleItemVersion.id == RuleItem.current_version_id, isouter=True)
    .join(_OWN_CATALOG, _OWN_CATALOG.village_id == Village.id, isouter=True)
    .join(_TOWNSHIP_CATALOG, _TOWNSHIP_CATALOG.township_id == Village.township_id, isouter=True)
    .where(Activity.id == bindparam("activity_id"))
)
