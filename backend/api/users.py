"""Staff accounts (admins only) and the audit log."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from sqlalchemy.orm import selectinload

from points import users
from points.models import AuditEntry, User
from points.scope import authorize, visible

from .. import present
from ..caller import current_actor
from ..extensions import db
from ..openapi import PAGE_TOO_DEEP, page_of, paginate, raises
from ..schemas.users import AuditArgs, AuditOut, UserIn, UserListArgs, UserOut, UserPatch

blp = Blueprint("users", __name__, description="账号与审计 Staff accounts and audit log")


@blp.route("/users", methods=["GET"])
@raises(PAGE_TOO_DEEP, (403, "villager_inactive"))
@blp.arguments(UserListArgs, location="query")
@blp.response(200, page_of(UserOut))
def list_users(args: dict[str, Any]) -> dict[str, Any]:
    actor = current_actor()
    authorize(actor, "user.list")
    stmt = visible(actor, User).order_by(User.id).options(selectinload(User.villager))
    if "role" in args:
        stmt = stmt.where(User.role == args["role"])
    return paginate(db.session, stmt, args["page"], args["per_page"])


@blp.route("/users", methods=["POST"])
@raises(
    (403, "villager_inactive"),
    (404, "not_found"),
    (409, "duplicate_username"),
    (422, "invalid_role"),
    (422, "not_staff"),
    (422, "scope_required"),
    (422, "villager_out_of_scope"),
    (422, "weak_password"),
)
@blp.arguments(UserIn)
@blp.response(201, UserOut)
def create_user(body: dict[str, Any]) -> User:
    """Admins create staff: a township admin only within their own township."""
    user = users.create_staff(db.session, current_actor(), **body)
    db.session.commit()
    return user


@blp.route("/users/<int:user_id>", methods=["PATCH"])
@raises(
    (403, "cannot_link_self"),
    (403, "own_password_reset"),
    (403, "villager_inactive"),
    (409, "cannot_disable_self"),
    (422, "not_staff"),
    (422, "villager_out_of_scope"),
    (422, "weak_password"),
)
@blp.arguments(UserPatch)
@blp.response(200, UserOut)
def update_user(body: dict[str, Any], user_id: int) -> User:
    """Disable (ends every session at once), re-enable, rename, reset the password, or link
    the account to its holder's own roster entry (`villager_id`; null unlinks)."""
    user = users.update_user(db.session, current_actor(), user_id, body)
    db.session.commit()
    return user


@blp.route("/audit", methods=["GET"])
@raises(PAGE_TOO_DEEP, (403, "villager_inactive"))
@blp.arguments(AuditArgs, location="query")
@blp.response(200, page_of(AuditOut))
def list_audit(args: dict[str, Any]) -> dict[str, Any]:
    """Staff writes, newest first (township and county admins). Phone numbers in the
    before and after are masked, as everywhere outside the village's own cadres."""
    actor = current_actor()
    authorize(actor, "audit.read")
    stmt = visible(actor, AuditEntry).order_by(AuditEntry.id.desc())
    if "village_id" in args:
        stmt = stmt.where(AuditEntry.village_id == args["village_id"])
    if "actor" in args:
        stmt = stmt.where(AuditEntry.actor_id == args["actor"])
    if "since" in args:
        stmt = stmt.where(AuditEntry.at >= args["since"])
    page = paginate(db.session, stmt, args["page"], args["per_page"], key=AuditEntry.id)
    page["items"] = [present.audit_entry(entry, actor) for entry in page["items"]]
    return page
