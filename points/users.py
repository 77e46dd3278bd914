"""Staff accounts and WeChat users."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit
from .auth import revoke_user_sessions
from .errors import Conflict, Forbidden, Invalid
from .models import STAFF_ROLES, Shop, Township, User, Village
from .passwords import hash_password
from .scope import COUNTY, TOWNSHIP, Actor, authorize, get_visible

MIN_PASSWORD = 8


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise Invalid(f"密码至少 {MIN_PASSWORD} 位", code="weak_password")


def _scope_for_role(
    session: Session, role: str, township_id: int | None, village_id: int | None,
    shop_id: int | None,
) -> tuple[int | None, int | None, int | None]:
    """The township, village and shop a staff account is bound to, completed and checked.
    A cadre's township follows from the village, a clerk's from the shop."""
    if role == "county_admin":
        return None, None, None
    if role == "township_admin":
        if township_id is None or session.get(Township, township_id) is None:
            raise Invalid("乡镇管理员需要指定乡镇", code="scope_required",
                          details={"field": "township_id"})
        return township_id, None, None
    if role == "cadre":
        village = session.get(Village, village_id) if village_id else None
        if village is None:
            raise Invalid("村干部需要指定所在村", code="scope_required",
                          details={"field": "village_id"})
        return village.township_id, village.id, None
    if role == "clerk":
        shop = session.get(Shop, shop_id) if shop_id else None
        if shop is None:
            raise Invalid("店员需要指定积分超市", code="scope_required",
                          details={"field": "shop_id"})
        return shop.township_id, None, shop.id
    raise Invalid("只能创建工作人员账号", code="invalid_role", details={"role": role})


def create_staff(
    session: Session, actor: Actor | None, *, username: str, password: str, role: str,
    name: str | None = None, township_id: int | None = None, village_id: int | None = None,
    shop_id: int | None = None,
) -> User:
    """Create a staff account. `actor` None is the operator at the command line."""
    if actor is not None:
        # First: a role without account rights learns nothing (not even which ids exist).
        authorize(actor, "user.create")
    if role not in STAFF_ROLES:
        raise Invalid("只能创建工作人员账号", code="invalid_role", details={"role": role})
    check_password_strength(password)
    township_id, village_id, shop_id = _scope_for_role(
        session, role, township_id, village_id, shop_id
    )
    if actor is not None:
        # A township admin creates staff of their own township only, and never a county admin.
        if actor.role == TOWNSHIP and (role == COUNTY or township_id != actor.township_id):
            raise Forbidden("只能为本乡镇创建工作人员账号")
    if session.scalar(select(User.id).where(User.username == username)):
        raise Conflict("用户名已存在", code="duplicate_username")
    user = User(
        username=username, password_hash=hash_password(password), role=role, name=name,
        township_id=township_id, village_id=village_id, shop_id=shop_id,
    )
    session.add(user)
    audit.record(session, actor, "user.create", user, township_id=township_id,
                 village_id=village_id)
    return user


def update_user(session: Session, actor: Actor, user_id: int, changes: dict[str, Any]) -> User:
    user = get_visible(session, actor, User, user_id)
    authorize(actor, "user.update")
    if user.id == actor.user_id and changes.get("disabled"):
        raise Conflict("不能停用自己的账号", code="cannot_disable_self")
    if actor.role == TOWNSHIP and user.role == COUNTY:
        raise Forbidden()
    before = audit.snapshot(user)
    if "password" in changes:
        password = changes.pop("password")
        check_password_strength(password)
        user.password_hash = hash_password(password)
        # A reset password ends every session opened with the old one.
        revoke_user_sessions(session, user.id, "password_reset")
    if "name" in changes:
        user.name = changes["name"]
    if "disabled" in changes:
        user.disabled = bool(changes["disabled"])
        if user.disabled:
            revoke_user_sessions(session, user.id, "disabled")
    audit.record(session, actor, "user.update", user, before=before,
                 township_id=user.township_id, village_id=user.village_id)
    return user


def wechat_user(session: Session, openid: str, unionid: str | None) -> User:
    """The villager account of a WeChat openid, created on first login."""
    user = session.scalar(select(User).where(User.openid == openid))
    if user is None:
        user = User(role="villager", openid=openid, unionid=unionid)
        session.add(user)
        session.flush()
    return user


def find_staff(session: Session, username: str) -> User | None:
    return session.scalar(
        select(User).where(User.username == username, User.role.in_(STAFF_ROLES))
    )
