"""An activity's check-ins as the cadres who review them see them, with anti-fraud signals."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import Claim, Household, User, Villager
from ..models.activities import Activity, CheckIn
from ..scope import Actor, authorize, get_visible

# Signals a check-in carries for the cadres who review the attendance list: recorded at
# check-in (out_of_area, no_location, own_household) or found on reading it.
CHECKIN_FLAGS = ("out_of_area", "no_location", "own_household", "shared_device", "proxy_burst")


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
                marked.update(r.id for r in own[start : end + 1])
        if marked:
            bursts[cadre_id] = sorted(marked)
    return bursts


def checkins_view(
    session: Session,
    actor: Actor,
    activity_id: int,
    *,
    burst_count: int,
    burst_window: timedelta,
    page: int = 1,
    per_page: int = 100,
) -> dict[str, Any]:
    """Every check-in of an activity with the signals a cadre should look at: one device
    used by several villagers, check-ins outside the area (geofence set to flag), and
    bursts of proxy check-ins by one cadre. Signals are for people to judge, not verdicts:
    a family shares a phone, an elderly group is checked in together."""
    activity = get_visible(session, actor, Activity, activity_id)
    authorize(actor, "activity.checkins")
    rows = list(
        session.scalars(
            select(CheckIn)
            .where(CheckIn.activity_id == activity.id)
            .order_by(CheckIn.checked_in_at, CheckIn.id)
        )
    )
    villagers = (
        {
            v.id: v
            for v in session.scalars(
                select(Villager).where(Villager.id.in_({r.villager_id for r in rows}))
            )
        }
        if rows
        else {}
    )
    households: dict[int, str | None] = (
        {
            hid: name
            for hid, name in session.execute(
                select(Household.id, Household.name).where(
                    Household.id.in_({r.household_id for r in rows})
                )
            )
        }
        if rows
        else {}
    )
    staff_ids = {r.proxy_by for r in rows if r.proxy_by} | {
        r.checked_out_by for r in rows if r.checked_out_by
    }
    staff: dict[int, str | None] = (
        {
            uid: name
            for uid, name in session.execute(
                select(User.id, func.coalesce(User.name, User.username)).where(
                    User.id.in_(staff_ids)
                )
            )
        }
        if staff_ids
        else {}
    )
    claim_ids = {r.claim_id for r in rows if r.claim_id}
    claim_status: dict[int, str] = (
        {
            cid: status
            for cid, status in session.execute(
                select(Claim.id, Claim.status).where(Claim.id.in_(claim_ids))
            )
        }
        if claim_ids
        else {}
    )

    by_device: dict[str, list[CheckIn]] = defaultdict(list)
    for row in rows:
        if row.device_id:
            by_device[row.device_id].append(row)
    shared = [
        SharedDevice(
            device,
            sorted({r.villager_id for r in group}),
            sorted({r.household_id for r in group}),
            [r.id for r in group],
        )
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
        items.append(
            {
                "id": row.id,
                "activity_id": row.activity_id,
                "villager_id": row.villager_id,
                "villager_name": villager.name if villager else None,
                "relation": villager.relation if villager else None,
                "household_id": row.household_id,
                "household_name": households.get(row.household_id),
                "checked_in_at": row.checked_in_at,
                "checked_out_at": row.checked_out_at,
                "device_id": row.device_id,
                "lat": row.lat,
                "lng": row.lng,
                "distance_m": row.distance_m,
                "proxy_by": row.proxy_by,
                "proxy_by_name": staff.get(row.proxy_by) if row.proxy_by else None,
                "claim_id": row.claim_id,
                "claim_status": claim_status.get(row.claim_id) if row.claim_id else None,
                "points": row.points,
                "reason": row.reason,
                "flags": flags,
            }
        )
    signals = {
        "shared_devices": shared,
        "out_of_area": [r.id for r in rows if "out_of_area" in (r.flags or [])],
        "no_location": [r.id for r in rows if "no_location" in (r.flags or [])],
        "proxy_bursts": [
            ProxyBurst(
                cadre_id,
                staff.get(cadre_id),
                len(ids),
                min(by_id[i].checked_in_at for i in ids),
                max(by_id[i].checked_in_at for i in ids),
                ids,
            )
            for cadre_id, ids in sorted(bursts.items())
        ],
        "own_household_proxies": [r.id for r in rows if "own_household" in (r.flags or [])],
        "burst_rule": {
            "more_than": burst_count,
            "within_minutes": burst_window.total_seconds() / 60,
        },
    }
    start = (page - 1) * per_page
    return {
        "activity_id": activity.id,
        "total": len(rows),
        "page": page,
        "per_page": per_page,
        "checked_in": len(rows),
        "capacity": activity.capacity,
        "proxy_count": sum(1 for r in rows if r.proxy_by is not None),
        "items": items[start : start + per_page],
        "signals": signals,
    }
