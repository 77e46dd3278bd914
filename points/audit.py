"""Append-only audit of staff writes: who, what, when, the object, before and after."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypedDict

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from .db import insert_as_loaded, new_for_insert
from .models import AuditEntry, Village
from .models.base import utcnow
from .scope import Actor


class Filing(TypedDict, total=False):
    """Where an entry is filed, passed on to `record` as `**filing`."""

    village_id: int | None
    township_id: int | None


def snapshot(obj: Any) -> dict[str, Any]:
    """The column values of a model, JSON-safe, for before/after."""
    out: dict[str, Any] = {}
    for attr in inspect(obj).mapper.column_attrs:
        key = attr.key
        if key in {"password_hash"}:
            continue  # a hash is still a secret; the audit says a password changed, not to what
        value = getattr(obj, key)
        if isinstance(value, datetime | date):
            value = value.isoformat()
        elif isinstance(value, Decimal):
            value = str(value)
        out[key] = value
    return out


def record(
    session: Session,
    actor: Actor | None,
    action: str,
    obj: Any,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    village_id: int | None = None,
    township_id: int | None = None,
) -> AuditEntry:
    session.flush()  # so a new object has its id
    if township_id is None and village_id is not None:
        # Filed under the township too, so that township's admins can read it.
        township_id = session.scalar(select(Village.township_id).where(Village.id == village_id))
    entry = new_for_insert(
        AuditEntry,
        at=utcnow(),
        actor_id=actor.user_id if actor else None,
        action=action,
        object_type=type(obj).__tablename__,
        object_id=str(inspect(obj).identity[0]) if inspect(obj).identity else None,
        village_id=village_id,
        township_id=township_id,
        before=before,
        after=after if after is not None else snapshot(obj),
    )
    # One INSERT … RETURNING id now, rather than the unit of work's flush later (several
    # times the statement's cost for one row): every staff write records one.
    insert_as_loaded(session, entry)
    return entry
