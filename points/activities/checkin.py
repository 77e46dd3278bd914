"""Check-in (签到): the proof of being there that becomes a claim.

A villager scans the activity's code in the mini-program; the check-in is checked against
the code (signed, typed, the current rotating step: `codes`), the village, the check-in
window, the geofence and the capacity, then recorded once per person (a unique constraint)
and turned into a claim by the activity's rule item. A cadre checks in people without phones
by scanning their member card (代签). Per-hour items are scored at check-out (签退).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from rules.periods import month_key

from .. import audit, cards, catalogs, claims, village_totals
from ..db import core, rowcount, upsert_insert
from ..errors import DomainError, Forbidden, NotFound, WrongVillage
from ..models import Claim, RuleItem, RuleItemVersion, Villager
from ..models.activities import Activity, CheckIn
from ..scope import VILLAGER, Actor, authorize, get_visible
from ..time_zone import moment_text
from ..tokens import QRTokenInvalid, TokenCodec
from . import codes
from .activities import (
    ActivityCancelled,
    CheckinClosed,
    CheckinNotOpen,
    ScannedActivity,
    geofence_check,
    is_hourly,
    read_activity,
)

# What a check-in answers beside its claim's status: a per-hour item scored at check-out,
# or attendance with nothing to award.
CHECKIN_OUTCOMES = ("checked_in", "no_points")


# ---- refusals -------------------------------------------------------------------------------


class WrongVillageCode(WrongVillage):
    message = "这是其他村的活动二维码，不能在本村签到"


class AlreadyCheckedIn(DomainError):
    status = 409
    code = "already_checked_in"
    message = "您已经签过到了，不用重复签到"


class ActivityFull(DomainError):
    status = 409
    code = "activity_full"
    message = "本活动签到人数已满"


class AlreadyCheckedOut(DomainError):
    status = 409
    code = "already_checked_out"
    message = "已经签退过了"


class CheckoutNotNeeded(DomainError):
    status = 409
    code = "checkout_not_needed"
    message = "本活动按次计分，不需要签退"


# ---- values ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clock:
    """When a check-in or check-out happens and the villages' zone it is shown in. `skew`:
    how far apart the clocks of the server showing a rotating code and the one checking
    its scan may be (`codes.check_step`)."""

    now: datetime
    tz: ZoneInfo
    skew: timedelta = timedelta(0)


@dataclass(frozen=True)
class Scan:
    """Who scanned and what the scan brought besides the code: the villager's own phone
    (its device id and position), or a cadre's scan of their member card (`proxy_by`).
    `distance_m` and `flags` are what the check-in found of it (`geofence_check`), kept
    with the check-in for the cadres who review the list."""

    device_id: str | None = None
    lat: float | None = None
    lng: float | None = None
    distance_m: int | None = None
    flags: tuple[str, ...] = ()
    proxy_by: int | None = None


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
        return {
            "checkin_id": self.checkin_id,
            "claim_id": self.claim_id,
            "status": self.status,
            "points": self.points,
        }


def worked_from(checked_in_at: datetime, starts_at: datetime) -> datetime:
    """When a per-hour check-in's counted work began: the check-in, or the activity's start
    if the villager scanned before it. This is the deed's time of the claim made at
    check-out (its month decides the caps, the board and the budget), rather than the
    check-out (a villager who forgets to check out until the next morning moves nothing) or
    the end of the counted work (which is known only at check-out, so an open check-in could
    not say which month it holds back from closing)."""
    return max(checked_in_at, starts_at)


def _local(moment: datetime, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%m月%d日 %H:%M")


# ---- check-in, proxy check-in, check-out ----------------------------------------------------


def check_in(
    session: Session,
    actor: Actor,
    codec: TokenCodec,
    token: str,
    scan: Scan,
    clock: Clock,
) -> CheckInResult:
    """A villager's own scan of an activity code (扫码签到), from their phone (`scan`)."""
    authorize(actor, "checkin.create")
    household_id = actor.require_household()
    # A bound villager's household comes with their roster entry and its village
    # (`Actor.resolve`).
    assert actor.villager_id is not None and actor.village_id is not None
    activity_id, step = codes.scanned_code(codec, token, clock.now)
    activity = read_activity(session, activity_id)
    if activity is None:
        raise QRTokenInvalid()
    activity.scoring()  # an item the village no longer uses refuses the code first
    if activity.village_id != actor.village_id:
        raise WrongVillageCode()
    if activity.status == "cancelled":
        raise ActivityCancelled()
    codes.check_step(activity, step, clock.now, clock.skew)
    _check_open(activity, clock)
    # Where the scan was is recorded, and refused (if the geofence refuses) only once the
    # check-in is known not to be a repeat (`_record`).
    distance, flags, refusal = geofence_check(activity, scan.lat, scan.lng)
    scan = replace(scan, distance_m=distance, flags=flags)
    target = claims.Target(household_id, actor.villager_id, actor.village_id)
    return _record(session, actor, activity, target, scan, clock, refusal)


def proxy_check_in(
    session: Session,
    actor: Actor,
    codec: TokenCodec,
    activity_id: int,
    member_token: str,
    clock: Clock,
) -> CheckInResult:
    """A cadre checks in a villager without a phone by scanning their member card (代签),
    recorded with the cadre's id and audited. The activity is read as a villager's own scan
    reads it (`read_activity`), after the check that the cadre may see it."""
    get_visible(session, actor, Activity, activity_id)
    authorize(actor, "checkin.proxy")
    activity = read_activity(session, activity_id)
    assert activity is not None  # just seen
    villager = cards.villager_on_card(session, codec, member_token, clock.now)
    if villager is None:
        raise NotFound("这张村民卡对应的村民不在花名册中", code="member_not_found")
    household = villager.household
    if household.village_id != activity.village_id:
        raise WrongVillage("这位村民不是本村的，不能在本村活动代签")
    target = claims.member_target(villager)
    _check_open(activity, clock)
    activity.scoring()  # an item the village no longer uses: refused once the card is read
    own = actor.household_id == household.id
    scan = Scan(flags=("own_household",) if own else (), proxy_by=actor.user_id)
    result = _record(session, actor, activity, target, scan, clock)
    checkin = session.get(CheckIn, result.checkin_id)
    assert checkin is not None
    audit.record(session, actor, "checkin.proxy", checkin, village_id=activity.village_id)
    return result


def check_out(session: Session, actor: Actor, checkin_id: int, clock: Clock) -> CheckInResult:
    """签退 for a per-hour item: the whole hours between check-in and check-out, counted
    within the activity's own time, become the claim's units; the rule's max_units and caps
    then limit the points as for any claim. The claim's deed is the work, not the check-out
    (`worked_from`): hours of 31 March checked out on 1 April are March's."""
    checkin = get_visible(session, actor, CheckIn, checkin_id)
    authorize(actor, "checkin.checkout")
    if actor.role == VILLAGER and checkin.villager_id != actor.villager_id:
        raise Forbidden("只能签退自己的签到", code="not_own_checkin")
    activity = read_activity(session, checkin.activity_id)
    assert activity is not None
    rule = activity.scoring().rule
    if not is_hourly(rule):
        raise CheckoutNotNeeded()
    if actor.role != VILLAGER:
        # Staff check a deactivated villager out no more than in (the villager's own
        # session is refused by authorize).
        villager = session.get(Villager, checkin.villager_id)
        assert villager is not None
        claims.member_target(villager)
    moved = rowcount(
        session.execute(
            update(CheckIn)
            .where(CheckIn.id == checkin.id, CheckIn.checked_out_at.is_(None))
            .values(checked_out_at=clock.now, checked_out_by=actor.user_id)
            .execution_options(synchronize_session=False)
        )
    )
    if moved != 1:
        session.refresh(checkin)
        raise AlreadyCheckedOut(details=_result_of(session, checkin, named=False).as_details())
    session.refresh(checkin)
    start = worked_from(checkin.checked_in_at, activity.starts_at)
    end = min(clock.now, activity.ends_at)
    hours = int(max(0.0, (end - start).total_seconds()) // 3600)
    claim: Claim | None = None
    reason: str | None
    if hours < 1:
        reason = "签到到签退（按活动时间计）不满 1 小时，本次不计分"
    else:
        target = claims.Target(checkin.household_id, checkin.villager_id, checkin.village_id)
        claim, reason = _score(session, actor, activity, target, hours, clock, occurred_at=start)
    checkin.claim_id = claim.id if claim else None
    checkin.points = claim.points if claim else 0
    checkin.reason = None if claim else reason
    session.flush()
    if actor.role != VILLAGER:
        audit.record(session, actor, "checkin.checkout", checkin, village_id=activity.village_id)
    return _result(
        checkin, claim, claim.status if claim else "no_points", (activity.title, rule.name)
    )


def checkin_of(session: Session, actor: Actor, checkin_id: int) -> CheckInResult:
    return _result_of(session, get_visible(session, actor, CheckIn, checkin_id))


# ---- the checks of a scan -------------------------------------------------------------------


def _check_open(activity: ScannedActivity, clock: Clock) -> None:
    if activity.status == "cancelled":
        raise ActivityCancelled()
    if clock.now < activity.checkin_opens_at:
        raise CheckinNotOpen(
            f"签到还没有开始，请在 {_local(activity.checkin_opens_at, clock.tz)} 以后扫码",
            details={"checkin_opens_at": moment_text(activity.checkin_opens_at, clock.tz)},
        )
    if clock.now >= activity.checkin_closes_at:
        raise CheckinClosed(
            f"签到已于 {_local(activity.checkin_closes_at, clock.tz)} 结束",
            details={"checkin_closes_at": moment_text(activity.checkin_closes_at, clock.tz)},
        )


# ---- recording ------------------------------------------------------------------------------


def _record(
    session: Session,
    actor: Actor,
    activity: ScannedActivity,
    target: claims.Target,
    scan: Scan,
    clock: Clock,
    refusal: DomainError | None = None,
) -> CheckInResult:
    """One check-in per person and activity, and the claim it makes: the claim first, then
    the check-in row that names it. A repeat is refused before either is written;
    `refusal` (the geofence's) only once the check-in is known not to be a repeat."""
    assert target.member_id is not None
    # Both a read and the unique constraint settle a repeat. The read comes first so that
    # the usual repeat (a second scan, a double tap) is refused before its claim and ledger
    # entry are written only to be rolled back. But it cannot see a check-in that a
    # concurrent scan has made and not yet committed: the insert below, on the unique
    # (activity, villager), stays the arbiter of that race.
    existing = _checkin_id(session, activity.id, target.member_id)
    if existing is not None:
        raise _repeat(session, existing, scan)
    if refusal is not None:
        raise refusal
    rule = activity.scoring().rule
    claim: Claim | None = None
    reason: str | None = None
    if not is_hourly(rule):
        claim, reason = _score(session, actor, activity, target, None, clock)
    checkin_id = _insert_checkin(
        session,
        {
            "activity_id": activity.id,
            "villager_id": target.member_id,
            "household_id": target.household_id,
            "village_id": target.village_id,
            "user_id": actor.user_id if scan.proxy_by is None else None,
            "proxy_by": scan.proxy_by,
            "checked_in_at": clock.now,
            "device_id": scan.device_id,
            "lat": scan.lat,
            "lng": scan.lng,
            "distance_m": scan.distance_m,
            "flags": list(scan.flags),
            "claim_id": claim.id if claim else None,
            "points": claim.points if claim else 0,
            "reason": reason,
        },
    )
    if checkin_id is None:
        # A concurrent scan checked in first: the refusal's rollback takes the claim just
        # made with it.
        existing = _checkin_id(session, activity.id, target.member_id)
        assert existing is not None
        raise _repeat(session, existing, scan)
    village_totals.record_checkin(
        session, target.village_id, month_key(clock.now.astimezone(clock.tz))
    )
    _take_place(session, activity)
    if claim is not None:
        status = claim.status
    else:
        status = "no_points" if reason else "checked_in"
    return CheckInResult(
        checkin_id=checkin_id,
        activity_id=activity.id,
        villager_id=target.member_id,
        household_id=target.household_id,
        claim_id=claim.id if claim else None,
        status=status,
        points=claim.points if claim else 0,
        reason=claim.reason if claim else reason,
        checked_in_at=clock.now,
        distance_m=scan.distance_m,
        flags=list(scan.flags),
        proxy_by=scan.proxy_by,
        activity_title=activity.title,
        rule_item_name=rule.name,
        notice_ends_at=claim.notice_ends_at if claim else None,
    )


def _checkin_id(session: Session, activity_id: int, villager_id: int) -> int | None:
    """The villager's check-in at the activity, if any (the unique index serves it)."""
    return (
        core(session)
        .execute(_CHECKIN_OF, {"activity_id": activity_id, "villager_id": villager_id})
        .scalar()
    )


# Built once: building a statement costs more CPU than running it.
_CHECKIN_OF = select(CheckIn.id).where(
    CheckIn.activity_id == bindparam("activity_id"), CheckIn.villager_id == bindparam("villager_id")
)


def _repeat(session: Session, checkin_id: int, scan: Scan) -> AlreadyCheckedIn:
    """The refusal of a repeat, with the first check-in in its details."""
    existing = session.get(CheckIn, checkin_id)
    assert existing is not None
    who = "这位村民已经签过到了" if scan.proxy_by else "您已经签过到了，不用重复签到"
    return AlreadyCheckedIn(who, details=_result_of(session, existing, named=False).as_details())


def _insert_checkin(session: Session, values: dict[str, Any]) -> int | None:
    """INSERT … ON CONFLICT DO NOTHING RETURNING id: the unique (activity, villager) decides
    a repeat between concurrent scans (the second waits for the first to commit, then
    inserts nothing). None: already checked in."""
    dialect = session.get_bind().dialect.name
    return core(session).execute(_checkin_insert(dialect), values).scalar()


@lru_cache(maxsize=4)
def _checkin_insert(dialect: str) -> Any:
    """Built once per dialect: building a statement costs more CPU than running it. The
    table, not the mapped class: one row needs none of the ORM's bulk-insert work."""
    table = CheckIn.__table__
    return (
        upsert_insert(dialect)(table)
        .on_conflict_do_nothing(index_elements=["activity_id", "villager_id"])
        .returning(table.c.id)
    )


def _score(
    session: Session,
    actor: Actor,
    activity: ScannedActivity,
    target: claims.Target,
    units: int | None,
    clock: Clock,
    occurred_at: datetime | None = None,
) -> tuple[Claim | None, str | None]:
    """The claim the rule item makes of this attendance, or why there is none (a cap is
    reached: the attendance is still recorded, since the villager was there). `occurred_at`:
    when the work was done, if before now (`check_out`)."""
    scoring = activity.scoring()
    try:
        claim = claims.submit_checkin(
            session,
            actor,
            scoring.item,
            scoring.rule,
            target,
            claims.Report("checkin", units, note=activity.title, occurred_at=occurred_at),
            now=clock.now,
            tz=clock.tz,
            policy=scoring.policy,
        )
    except claims.NoPoints as exc:
        return None, exc.message
    return claim, None


def _take_place(session: Session, activity: ScannedActivity) -> None:
    """Take a place of a limited activity: one conditional UPDATE, last in the transaction
    so the activity's row lock is held only until the commit that follows. Full, or
    cancelled meanwhile: refuse (the caller's rollback removes the check-in and its claim).
    An activity without a capacity takes no lock at all."""
    if activity.capacity is None:
        return
    moved = rowcount(
        session.execute(
            update(Activity)
            .where(
                Activity.id == activity.id,
                Activity.status == "scheduled",
                Activity.places_taken < Activity.capacity,
            )
            .values(places_taken=Activity.places_taken + 1)
            .execution_options(synchronize_session=False)
        )
    )
    if moved == 1:
        return
    status = session.scalar(select(Activity.status).where(Activity.id == activity.id))
    if status == "cancelled":
        raise ActivityCancelled()
    raise ActivityFull(details={"capacity": activity.capacity})


# ---- a check-in as its screen shows it --------------------------------------------------------


def _result_of(session: Session, checkin: CheckIn, *, named: bool = True) -> CheckInResult:
    """A check-in as its screen shows it; `named=False` (the details of a refusal) leaves
    the activity's and item's names out, and their query."""
    claim = session.get(Claim, checkin.claim_id) if checkin.claim_id else None
    names = _names_of(session, checkin.activity_id) if named else (None, None)
    return _result(checkin, claim, _status(checkin, claim), names)


def _names_of(session: Session, activity_id: int) -> tuple[str | None, str | None]:
    """The activity's title and its item's name (current version), in one query."""
    row = session.execute(
        select(Activity.title, RuleItem.id, RuleItemVersion.data)
        .join(RuleItem, RuleItem.id == Activity.rule_item_id)
        .outerjoin(RuleItemVersion, RuleItemVersion.id == RuleItem.current_version_id)
        .where(Activity.id == activity_id)
    ).first()
    if row is None:
        return None, None
    title, item_id, data = row
    return title, catalogs.item_ref(item_id, data=data).name


def _status(checkin: CheckIn, claim: Claim | None) -> str:
    if claim is not None:
        return claim.status
    if checkin.reason is None and checkin.checked_out_at is None:
        return "checked_in"
    return "no_points"


def _result(
    checkin: CheckIn, claim: Claim | None, status: str, names: tuple[str | None, str | None]
) -> CheckInResult:
    return CheckInResult(
        checkin_id=checkin.id,
        activity_id=checkin.activity_id,
        villager_id=checkin.villager_id,
        household_id=checkin.household_id,
        claim_id=claim.id if claim else checkin.claim_id,
        status=status,
        points=claim.points if claim else checkin.points,
        reason=claim.reason if claim else checkin.reason,
        checked_in_at=checkin.checked_in_at,
        checked_out_at=checkin.checked_out_at,
        distance_m=checkin.distance_m,
        flags=list(checkin.flags or []),
        proxy_by=checkin.proxy_by,
        activity_title=names[0],
        rule_item_name=names[1],
        notice_ends_at=claim.notice_ends_at if claim else None,
    )
