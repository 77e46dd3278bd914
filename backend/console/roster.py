"""花名册导入: a village's roster uploaded as CSV or XLSX, by the roster import API's service.

The whole file is checked first; one bad row and nothing is imported, and the page lists
every error by row and column. After an import the page shows what the import's audit entry
records (its counts) and the households it added."""

from __future__ import annotations

from typing import Any

from flask import g, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.wrappers import Response

from points import roster
from points.models import AuditEntry, Household, Village
from points.scope import Actor, authorize, get_visible, visible

from ..clock import now, village_tz
from ..downloads import uploaded_sheet
from ..errors import APIError
from ..extensions import db
from . import bp, forms, menu_item, session

menu_item("console.roster_import", "花名册导入", "roster.import")

# The new households an import's page lists by id in its address (a whole village's roster
# adds hundreds: the rest are found in 农户档案).
MAX_LISTED = 100


def _villages(actor: Actor) -> list[Village]:
    return list(db.session.scalars(visible(actor, Village).order_by(Village.id)))


def _new_ids() -> list[int]:
    ids = request.args.get("new", "").split(",")
    return [int(i) for i in ids if i.isdigit() and len(i) < 10][:MAX_LISTED]


def _import_page(**_: Any) -> str:
    actor = session.load()
    authorize(actor, "roster.import")
    done = request.args.get("done", type=int)
    entry = None
    added: list[Household] = []
    if done and request.method == "GET":
        # Only one's own import: the page says what the audit entry recorded of it.
        entry = db.session.scalar(
            select(AuditEntry).where(
                AuditEntry.id == done,
                AuditEntry.actor_id == actor.user_id,
                AuditEntry.action == "roster.import",
            )
        )
        ids = _new_ids()
        if entry is not None and ids:
            added = list(
                db.session.scalars(
                    visible(actor, Household)
                    .where(Household.id.in_(ids))
                    .order_by(Household.id)
                    .options(selectinload(Household.members))
                )
            )
    return render_template(
        "console/households/roster_import.html",
        villages=_villages(actor),
        columns=roster.COLUMNS,
        required=roster.REQUIRED,
        aliases=roster.HEADER_ALIASES,
        entry=entry,
        counts=entry.after if entry is not None and isinstance(entry.after, dict) else {},
        added=added,
        more_added=request.args.get("more", type=int) or 0,
        errors=g.get("roster_errors"),
        truncated=g.get("roster_truncated", False),
    )


@bp.get("/roster/import")
def roster_import() -> str:
    return _import_page()


@bp.post("/roster/import")
@forms.writes(on_refusal=_import_page)
def roster_import_post() -> Response:
    actor = session.load()
    village_id = request.form.get("village_id", type=int)
    if village_id is None:
        villages = _villages(actor)
        if len(villages) != 1:
            raise APIError(422, "validation_error", "请选择要导入花名册的村")
        village_id = villages[0].id
    village = get_visible(db.session, actor, Village, village_id)
    filename, data = uploaded_sheet("roster.xlsx", "请上传花名册文件（CSV 或 XLSX）")
    before = set(db.session.scalars(select(Household.id).where(Household.village_id == village.id)))
    try:
        roster.import_roster(
            db.session,
            actor,
            village.id,
            filename,
            data,
            now=now(),
            tz=village_tz(),
            create_groups=request.form.get("create_groups") == "on",
        )
    except roster.RosterInvalid as exc:
        g.roster_errors = exc.details.get("errors", [])
        g.roster_truncated = bool(exc.details.get("truncated"))
        raise
    new = sorted(
        set(db.session.scalars(select(Household.id).where(Household.village_id == village.id)))
        - before
    )
    entry_id = db.session.scalar(
        select(AuditEntry.id)
        .where(AuditEntry.actor_id == actor.user_id, AuditEntry.action == "roster.import")
        .order_by(AuditEntry.id.desc())
        .limit(1)
    )
    return redirect(
        url_for(
            "console.roster_import",
            done=entry_id,
            new=",".join(map(str, new[:MAX_LISTED])) or None,
            more=len(new) - MAX_LISTED if len(new) > MAX_LISTED else None,
        ),
        code=303,
    )
