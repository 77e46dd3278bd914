"""Public links a printed QR opens without login: a household's plate (门牌) and a village's
online board; and what a plate's page shows."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rules.periods import month_key

from .. import audit, catalogs
from ..errors import NotFound
from ..models import Household, Village
from ..models.boards import PublicLink
from ..scope import Actor, authorize, get_visible
from .privacy import board_prefs, public_name
from .standings import (
    Scope,
    assign_ranks,
    household_standings,
    name_households,
    parse_period,
    period_label,
)


def existing_link(
    session: Session, *, household_id: int | None = None, village_id: int | None = None
) -> PublicLink | None:
    if household_id is not None:
        return session.scalar(select(PublicLink).where(PublicLink.household_id == household_id))
    return session.scalar(select(PublicLink).where(PublicLink.village_id == village_id))


def public_link(
    session: Session, *, household_id: int | None = None, village_id: int | None = None
) -> PublicLink:
    """The household's plate link or the village's board link, made on first use."""
    link = existing_link(session, household_id=household_id, village_id=village_id)
    if link is not None:
        return link
    kind = "plate" if household_id is not None else "board"
    link = PublicLink(
        token=secrets.token_urlsafe(16), kind=kind, household_id=household_id, village_id=village_id
    )
    try:
        with session.begin_nested():
            session.add(link)
    except IntegrityError:  # made meanwhile by another request
        link = existing_link(session, household_id=household_id, village_id=village_id)
        assert link is not None
    return link


def renew_plate(session: Session, actor: Actor, household_id: int) -> PublicLink:
    """A new plate token: the old printed plate stops opening the page."""
    household = get_visible(session, actor, Household, household_id)
    authorize(actor, "plate.renew")
    link = public_link(session, household_id=household.id)
    before = audit.snapshot(link)
    link.token = secrets.token_urlsafe(16)
    audit.record(
        session, actor, "plate.renew", link, before=before, village_id=household.village_id
    )
    return link


def resolve_link(session: Session, token: str, kind: str) -> PublicLink:
    link = session.scalar(
        select(PublicLink).where(PublicLink.token == token, PublicLink.kind == kind)
    )
    if link is None:
        raise NotFound("二维码已失效或不存在", code="link_not_found")
    return link


def plate_view(session: Session, household_id: int, now: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """What the household's plate page shows: this year's stars, this month's points and
    rank in the village, under the village's privacy settings."""
    household = session.get(Household, household_id)
    if household is None:
        raise NotFound()
    village = session.get(Village, household.village_id)
    assert village is not None
    prefs = board_prefs(session, [village.id])[village.id]
    scope = Scope("village", village.id, (village.id,))
    month = parse_period(month_key(now.astimezone(tz)))
    standings = household_standings(session, scope, month)
    ranked = assign_ranks(standings)
    own = next(s for s in standings if s.household_id == household_id)
    name_households(session, [own])
    year = parse_period(month.key[:4])
    year_points = next(
        s for s in household_standings(session, scope, year) if s.household_id == household_id
    )
    policy = catalogs.effective_policy(session, village.id)
    # A household that keeps off the public boards shows only that it exists: not even
    # whether a veto (一票否决) bars it, nor how many it would be ranked among.
    hidden = household.public_board_opt_out
    return {
        "village": village.name,
        "name": public_name(own.name, mask=prefs.mask_names, opted_out=hidden),
        "opted_out": hidden,
        "month": month.key,
        "month_label": period_label(month),
        "points": None if hidden else own.points,
        # A rank needs points to stand on: with the whole village at 0 in the first days of
        # a month every household would read "全村第 1 名". Ranked from the first point, as
        # the red list is.
        "rank": None if hidden or own.barred or own.points <= 0 else own.rank,
        "households": None if hidden else len(ranked),
        "barred": None if hidden else own.barred,
        "year": year.key,
        "stars": None if hidden else policy.stars(year_points.points, barred=year_points.barred),
        "year_points": None if hidden else year_points.points,
    }
