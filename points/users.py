"""Staff accounts and WeChat users."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit
from .errors import Conflict, Forbidden, Invalid, NotFound, Unauthenticated
from .models import STAFF_ROLES, Shop, Township, User, Village, Villager
from .passwords import hash_password, verify_password
from .scope import COUNTY, TOWNSHIP, Actor, authorize, get_visible, visible
from .sessions import revoke_user_sessions

MIN_PASSWORD = 8


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise Invalid(f"密码至少 {MIN_PASSWORD} 位", code="weak_password")


def _scope_for_role(
    session: Session,
    role: str,
    township_id: int | None,
    village_id: int | None,
    shop_id: int | None,
) -> tuple[int | None, int | None, int | None]:
    """The township, village and shop a staff account is bound to, completed and checked.
    A cadre's township follows from the village, a clerk's from the shop."""
    if role == "county_admin":
        return None, None, None
    if role == "township_admin":
        if township_id is None or session.get(Township, township_id) is None:
            raise Invalid(
                "乡镇管理员需要指定乡镇", code="scope_required", details={"field": "township_id"}
            )
        return township_id, None, None
    if role == "cadre":
        village = session.get(Village, village_id) if village_id else None
        if village is None:
            raise Invalid(
                "村干部需要指定所在村", code="scope_required", details={"field": "village_id"}
            )
        return village.township_id, village.id, None
    if role == "clerk":
        shop = session.get(Shop, shop_id) if shop_id else None
        if shop is None:
            raise Invalid(
                "店员需要指定积分超市", code="scope_required", details={"field": "shop_id"}
            )
        return shop.township_id, None, shop.id
    raise Invalid("只能创建工作人员账号", code="invalid_role", details={"role": role})


def link_villager(
    session: Session, actor: Actor | None, user: User, villager_id: int | None
) -> None:
    """Link a staff account to its holder's own entry on the roster (None: unlink), so that
    they never decide their own household's points (scope.refuse_own_household). The
    villager must be within the admin's scope (else not found) and within the account's own
    scope: a cadre is a villager of the village they serve. `actor` None: the command line."""
    if user.role not in STAFF_ROLES:
        raise Invalid(
            "村民的微信账号通过扫码或姓名手机号绑定花名册，不能在此修改",
            code="not_staff",
            details={"field": "villager_id"},
        )
    if villager_id is None:
        user.villager_id = None
        return
    if actor is None:
        villager = session.get(Villager, villager_id)
        if villager is None:
            raise NotFound("花名册中没有这位村民")
    else:
        villager = get_visible(session, actor, Villager, villager_id)
    holder = Actor.of(session, user)
    if session.scalar(visible(holder, Villager).where(Villager.id == villager.id)) is None:
        raise Invalid(
            "只能关联本人工作范围内（如本村）花名册中的村民",
            code="villager_out_of_scope",
            details={"field": "villager_id"},
        )
    user.villager_id = villager.id


def create_staff(
    session: Session,
    actor: Actor | None,
    *,
    username: str,
    password: str,
    role: str,
    name: str | None = None,
    township_id: int | None = None,
    village_id: int | None = None,
    shop_id: int | None = None,
    villager_id: int | None = None,
) -> User:
    """Create a staff account, linked to its holder's roster entry with `villager_id`.
    `actor` None is the operator at the command line."""
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
        username=username,
        password_hash=hash_password(password),
        role=role,
        name=name,
        township_id=township_id,
        village_id=village_id,
        shop_id=shop_id,
        # The admin who chose this password knows it: the holder chooses their own first.
        must_change_password=actor is not None,
    )
    if villager_id is not None:
        link_villager(session, actor, user, villager_id)
    session.add(user)
    audit.record(
        session, actor, "user.create", user, township_id=township_id, village_id=village_id
    )
    return user


def update_user(session: Session, actor: Actor, user_id: int, changes: dict[str, Any]) -> User:
    user = get_visible(session, actor, User, user_id)
    authorize(actor, "user.update")
    if user.id == actor.user_id and changes.get("disabled"):
        raise Conflict("不能停用自己的账号", code="cannot_disable_self")
    if actor.role == TOWNSHIP and user.role == COUNTY:
        raise Forbidden()
    before = audit.snapshot(user)
    if "villager_id" in changes:
        if user.id == actor.user_id:
            # Or an admin could unlink themselves and then approve their own household.
            raise Forbidden(
                "不能修改自己账号关联的村民，请由其他管理员修改", code="cannot_link_self"
            )
        link_villager(session, actor, user, changes["villager_id"])
    if "password" in changes:
        if user.id == actor.user_id:
            # One's own password is changed with the current one (POST /auth/password), so
            # whoever holds a stolen session cannot make the account theirs.
            raise Forbidden(
                "修改自己的密码请使用“修改密码”，并输入当前密码", code="own_password_reset"
            )
        password = changes.pop("password")
        check_password_strength(password)
        user.password_hash = hash_password(password)
        # Another admin's reset is known to that admin: the holder must choose their own.
        user.must_change_password = True
        # A reset password ends every session opened with the old one.
        revoke_user_sessions(session, user.id, "password_reset")
    if "name" in changes:
        user.name = changes["name"]
    if "disabled" in changes:
        user.disabled = bool(changes["disabled"])
        if user.disabled:
            revoke_user_sessions(session, user.id, "disabled")
    audit.record(
        session,
        actor,
        "user.update",
        user,
        before=before,
        township_id=user.township_id,
        village_id=user.village_id,
    )
    return user


class WrongPassword(Unauthenticated):
    code = "invalid_credentials"
    message = "当前密码不正确"


def change_own_password(
    session: Session, actor: Actor, current: str, new: str, *, session_id: str
) -> User:
    """A staff member sets their own password, proving the current one; this clears
    must_change_password. Every other session of theirs ends (one opened with a password an
    admin knew, or by whoever learnt the old one); the one they act in (`session_id`) goes on,
    since they have just proved the password in it."""
    user = session.get(User, actor.user_id)
    if user is None or user.role not in STAFF_ROLES:
        raise Forbidden("只有工作人员账号设有密码")
    if not verify_password(user.password_hash, current):
        raise WrongPassword()
    check_password_strength(new)
    if current == new:
        raise Invalid("新密码不能与当前密码相同", code="same_password")
    before = audit.snapshot(user)
    user.password_hash = hash_password(new)
    user.must_change_password = False
    revoke_user_sessions(session, user.id, "password_changed", keep=session_id)
    audit.record(
        session,
        actor,
        "user.password_change",
        user,
        before=before,
        township_id=user.township_id,
        village_id=user.village_id,
    )
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
    return session.scalar(select(User).where(User.username == username, User.role.in_(STAFF_ROLES)))
