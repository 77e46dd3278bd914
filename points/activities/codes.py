"""An activity's QR codes: the one a poster or a screen shows, and which of them a scan may use.

A static code is the token (activity id, 0), valid through the check-in window, for printed
posters. A rotating code is (activity id, step), step = floor(unix time / step seconds), and
only the current and the previous step are accepted, so a photo sent to someone at home is
stale within a minute; and, in the last few seconds of a step, the next one
(QR_CLOCK_SKEW_SECONDS), since the screen may be fed by a server whose clock is ahead of the
one checking the scan.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from .. import audit
from ..errors import DomainError, Forbidden
from ..models import User
from ..models.activities import Activity
from ..scope import Actor, authorize, get_visible
from ..tokens import QRTokenExpired, QRTokenInvalid, TokenCodec, TokenType, scanned_token
from .activities import ActivityCancelled, CheckinClosed, ScannedActivity


class RotatingNotPrintable(DomainError):
    status = 409
    code = "rotating_code_not_printable"
    message = "本活动使用动态二维码，不能打印，请在大屏上打开展示页"


@dataclass(frozen=True)
class IssuedCode:
    """The code valid now: shown until `refresh_at`, accepted until `expires_at`."""

    token: str
    step: int
    expires_at: datetime
    refresh_at: datetime | None


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
    return IssuedCode(
        token,
        step,
        epoch + timedelta(seconds=(step + 2) * seconds),
        epoch + timedelta(seconds=(step + 1) * seconds),
    )


def poster_code(
    session: Session, actor: Actor, codec: TokenCodec, activity_id: int
) -> tuple[Activity, str]:
    """The printable code of a static activity (qr.png, qr.svg)."""
    activity = get_visible(session, actor, Activity, activity_id)
    authorize(actor, "activity.qr")
    if activity.qr_mode != "static":
        raise RotatingNotPrintable()
    if activity.status == "cancelled":
        raise ActivityCancelled()
    return activity, codec.encode(TokenType.ACTIVITY, (activity.id, 0))


def code_for_staff(
    session: Session, actor: Actor, codec: TokenCodec, activity_id: int, now: datetime
) -> tuple[Activity, IssuedCode]:
    activity = get_visible(session, actor, Activity, activity_id)
    authorize(actor, "activity.qr")
    if activity.status == "cancelled":
        raise ActivityCancelled()
    return activity, issue_code(codec, activity, now)


def display_key(
    session: Session,
    actor: Actor,
    codec: TokenCodec,
    activity_id: int,
    now: datetime,
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
    audit.record(
        session,
        actor,
        "activity.display_link",
        activity,
        after={"activity_id": activity.id, "expires_at": expires_at.isoformat()},
        village_id=activity.village_id,
    )
    return activity, key, expires_at


def code_for_display(
    session: Session, codec: TokenCodec, activity_id: int, key: str, now: datetime
) -> tuple[Activity, IssuedCode]:
    """What the display screen shows, authorised by its key rather than a login."""
    decoded = codec.decode(key, TokenType.DISPLAY, now)
    if len(decoded.fields) != 2 or decoded.fields[0] != activity_id:
        raise QRTokenInvalid()
    user = session.get(User, decoded.fields[1])
    if user is None or user.disabled:
        raise Forbidden("展示链接已失效，请重新打开展示页", code="display_key_revoked")
    return code_for_staff(session, Actor.of(session, user), codec, activity_id, now)


# ---- a scanned code -------------------------------------------------------------------------


def scanned_code(codec: TokenCodec, token: str, now: datetime) -> tuple[int, int]:
    """The activity id and the step of a scanned activity code (signed and typed)."""
    decoded = codec.decode(scanned_token(token), TokenType.ACTIVITY, now)
    if len(decoded.fields) != 2:
        raise QRTokenInvalid()
    activity_id, step = decoded.fields
    return activity_id, step


def check_step(activity: ScannedActivity, step: int, now: datetime, clock_skew: timedelta) -> None:
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
