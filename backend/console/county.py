"""The county's and townships' pages: townships (乡镇), villages (村) and staff accounts (账号).

Thin views over the registry and users services the JSON API calls (POST /townships,
PATCH /townships/<id>, POST /villages, PATCH /villages/<id>, POST /users, PATCH /users/<id>);
a form is read through the API's own schema, so a name too long or a username of the wrong
shape is refused here as there. Passwords typed into these forms are never kept: their forms
carry no idempotency key (whose row keeps a hash of what was sent), so a form sent twice is
answered by the service (a duplicate username; a reset done twice is the same reset)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import g, redirect, render_template, request, url_for
from marshmallow import Schema, ValidationError
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from points import registry, users
from points.models import STAFF_ROLES, Household, Shop, Township, User, Village, Villager
from points.scope import Actor, authorize, get_visible, visible

from ..errors import APIError, chinese_messages
from ..extensions import db
from ..schemas.registry import TownshipIn, TownshipPatch, VillageIn, VillagePatch
from ..schemas.users import UserIn, UserPatch
from . import ROLE_LABELS, bp, forms, menu_item, session

menu_item("console.townships", "乡镇", "township.create")
menu_item("console.villages", "村庄", "village.create")
menu_item("console.users", "账号", "user.list")

FIELD_LABELS = {
    "name": "名称",
    "code": "编码",
    "township_id": "乡镇",
    "village_id": "村",
    "shop_id": "积分超市",
    "username": "用户名",
    "password": "密码",
    "role": "角色",
    "villager_id": "花名册村民",
}
VILLAGER_MATCHES = 20  # a name search on the account page shows at most this many


def _form(schema: Schema, names: tuple[str, ...]) -> dict[str, Any]:
    """The form's fields through the API's schema: a blank field is left out (not sent), and
    a refusal names the field in Chinese, beside the form."""
    data: dict[str, Any] = {}
    for name in names:
        value = request.form.get(name, "").strip()
        if value:
            # A picker's id is a number, as the API's JSON sends it (its schema is strict).
            data[name] = int(value) if name.endswith("_id") and value.isdigit() else value
    try:
        loaded: dict[str, Any] = schema.load(data)
    except ValidationError as exc:
        problems = chinese_messages(exc.normalized_messages())
        text = "；".join(
            f"{FIELD_LABELS.get(field, field)}：{'，'.join(map(str, messages))}"
            for field, messages in problems.items()
        )
        raise APIError(422, "validation_error", text or "提交的内容不符合要求") from exc
    return loaded


# ---- townships ------------------------------------------------------------------------------


def _townships_page(**_: Any) -> str:
    actor = session.load()
    authorize(actor, "township.create")
    townships = db.session.scalars(visible(actor, Township).order_by(Township.id)).all()
    villages = dict(
        db.session.execute(
            select(Village.township_id, func.count(Village.id)).group_by(Village.township_id)
        ).all()
    )
    return render_template(
        "console/county/townships.html",
        townships=townships,
        village_counts=villages,
        editing=_editing("township_id"),
    )


def _editing(name: str) -> int | None:
    """The row whose form came back refused (its inputs keep what was typed)."""
    if g.get("refusal") is None:
        return None
    value = (request.view_args or {}).get(name)
    return value if isinstance(value, int) else None


@bp.get("/townships")
def townships() -> str:
    return _townships_page()


@bp.post("/townships")
@forms.writes(on_refusal=_townships_page)
def create_township() -> Response:
    actor = session.load()
    body = _form(TownshipIn(), ("name", "code"))
    registry.create_township(db.session, actor, body["name"], body.get("code"))
    return redirect(url_for("console.townships"), code=303)


@bp.post("/townships/<int:township_id>/rename")
@forms.writes(on_refusal=_townships_page)
def rename_township(township_id: int) -> Response:
    actor = session.load()
    body = _form(TownshipPatch(), ("name",))
    registry.update_township(db.session, actor, township_id, body)
    return redirect(url_for("console.townships"), code=303)


# ---- villages -------------------------------------------------------------------------------


def _villages_page(**_: Any) -> str:
    actor = session.load()
    authorize(actor, "village.create")
    townships = db.session.scalars(visible(actor, Township).order_by(Township.id)).all()
    villages = db.session.scalars(
        visible(actor, Village).order_by(Village.township_id, Village.id)
    ).all()
    return render_template(
        "console/county/villages.html",
        townships=townships,
        township_names={t.id: t.name for t in townships},
        villages=villages,
        editing=_editing("village_id"),
    )


@bp.get("/villages")
def villages() -> str:
    return _villages_page()


@bp.post("/villages")
@forms.writes(on_refusal=_villages_page)
def create_village() -> Response:
    actor = session.load()
    body = _form(VillageIn(), ("township_id", "name", "code"))
    registry.create_village(db.session, actor, body["township_id"], body["name"], body.get("code"))
    return redirect(url_for("console.villages"), code=303)


@bp.post("/villages/<int:village_id>/rename")
@forms.writes(on_refusal=_villages_page)
def rename_village(village_id: int) -> Response:
    actor = session.load()
    body = _form(VillagePatch(), ("name",))
    registry.update_village(db.session, actor, village_id, body)
    return redirect(url_for("console.villages"), code=303)


# ---- staff accounts -------------------------------------------------------------------------


def _places(actor: Actor) -> dict[str, Any]:
    """The townships, villages and shops the admin may give an account, for the pickers and
    for naming each account's scope (three queries, whatever the number of accounts)."""
    townships = db.session.scalars(visible(actor, Township).order_by(Township.id)).all()
    villages = db.session.scalars(
        visible(actor, Village).order_by(Village.township_id, Village.id)
    ).all()
    shops = db.session.scalars(visible(actor, Shop).order_by(Shop.id)).all()
    return {
        "townships": townships,
        "villages": villages,
        "shops": shops,
        "township_names": {t.id: t.name for t in townships},
        "village_names": {v.id: v.name for v in villages},
        "shop_names": {s.id: s.name for s in shops},
    }


@dataclass(frozen=True, slots=True)
class StaffRow:
    """One line of the staff list, as plain values: a county has some 600 accounts, and
    the list is drawn without an ORM object, a macro or a URL build per line."""

    id: int
    username: str
    name: str
    role: str
    scope: str
    villager: str
    disabled: bool
    must_change_password: bool
    href: str


def scope_text(
    role: str,
    township_id: int | None,
    village_id: int | None,
    shop_id: int | None,
    places: dict[str, Any],
) -> str:
    """Where a staff account works (工作范围): its township, village or shop, by name."""
    if role == "county_admin":
        return "全县"
    if role == "township_admin":
        return places["township_names"].get(township_id, "")
    if role == "cadre":
        township = places["township_names"].get(township_id, "")
        return f"{township} {places['village_names'].get(village_id, '')}"
    if role == "clerk":
        return places["shop_names"].get(shop_id, "")
    return ""


def _users_page(**_: Any) -> str:
    actor = session.load()
    authorize(actor, "user.list")
    places = _places(actor)
    # Each account's page is /console/users/<id>: built once, not once a line.
    base = url_for("console.users")
    accounts = [
        StaffRow(
            id=uid,
            username=username or "",
            name=name or "",
            role=ROLE_LABELS.get(role, role),
            scope=scope_text(role, township_id, village_id, shop_id, places),
            villager=villager or "",
            disabled=disabled,
            must_change_password=must_change,
            href=f"{base}/{uid}",
        )
        for (
            uid,
            username,
            name,
            role,
            township_id,
            village_id,
            shop_id,
            disabled,
            must_change,
            villager,
        ) in db.session.execute(
            visible(actor, User)
            .with_only_columns(
                User.id,
                User.username,
                User.name,
                User.role,
                User.township_id,
                User.village_id,
                User.shop_id,
                User.disabled,
                User.must_change_password,
                Villager.name,
            )
            .select_from(User)
            .outerjoin(Villager, Villager.id == User.villager_id)
            .where(User.role.in_(STAFF_ROLES))
            .order_by(User.id)
        )
    ]
    return render_template(
        "console/county/users.html",
        accounts=accounts,
        roles=[(role, ROLE_LABELS[role]) for role in STAFF_ROLES if _may_create(actor, role)],
        **places,
    )


def _may_create(actor: Actor, role: str) -> bool:
    # Offered only what the service would accept: a township admin creates no county admin.
    return actor.role == "county_admin" or role != "county_admin"


@bp.get("/users", endpoint="users")
def users_page() -> str:
    return _users_page()


@bp.post("/users")
@forms.writes(on_refusal=_users_page)
def create_user() -> Response:
    actor = session.load()
    role = request.form.get("role", "")
    # Only the picker the role needs is sent on: a cadre's form may still hold a township.
    scope_field = {"township_admin": "township_id", "cadre": "village_id", "clerk": "shop_id"}
    names = ("username", "password", "role", "name", "villager_id", scope_field.get(role, ""))
    body = _form(UserIn(), tuple(n for n in names if n))
    user = users.create_staff(db.session, actor, **body)
    db.session.flush()
    return redirect(url_for("console.user", user_id=user.id), code=303)


def _user_page(user_id: int, **_: Any) -> str:
    actor = session.load()
    user = get_visible(db.session, actor, User, user_id)
    authorize(actor, "user.update")
    query = request.args.get("q", "").strip()[:50]
    matches: list[tuple[Villager, Household]] = []
    if query and user.role in STAFF_ROLES:
        # Villagers the account's holder could be: within the account's own scope, as
        # users.link_villager checks (and checks again when one is picked).
        holder = Actor.of(db.session, user)
        found = db.session.execute(
            visible(holder, Villager)
            .add_columns(Household)
            .join(Household, Household.id == Villager.household_id)
            # By name only: an admin sees phones masked, and a search must not confirm one.
            .where(Villager.name.contains(query, autoescape=True))
            .order_by(Villager.id)
            .limit(VILLAGER_MATCHES)
        ).all()
        matches = [(villager, household) for villager, household in found]
    places = _places(actor)
    return render_template(
        "console/county/user.html",
        account=user,
        scope=scope_text(user.role, user.township_id, user.village_id, user.shop_id, places),
        role_labels=ROLE_LABELS,
        query=query,
        matches=matches,
        myself=user.id == actor.user_id,
        **places,
    )


@bp.get("/users/<int:user_id>", endpoint="user")
def user_page(user_id: int) -> str:
    return _user_page(user_id)


@bp.post("/users/<int:user_id>/disabled")
@forms.writes(on_refusal=_user_page)
def set_disabled(user_id: int) -> Response:
    actor = session.load()
    disabled = request.form.get("disabled") == "1"
    users.update_user(db.session, actor, user_id, {"disabled": disabled})
    return redirect(url_for("console.user", user_id=user_id), code=303)


@bp.post("/users/<int:user_id>/password")
@forms.writes(on_refusal=_user_page)
def reset_password(user_id: int) -> Response:
    actor = session.load()
    body = _form(UserPatch(), ("password",))
    if "password" not in body:
        raise APIError(422, "validation_error", "请输入新密码")
    users.update_user(db.session, actor, user_id, body)
    return redirect(url_for("console.user", user_id=user_id, reset=1), code=303)


@bp.post("/users/<int:user_id>/villager")
@forms.writes(on_refusal=_user_page)
def link_villager(user_id: int) -> Response:
    actor = session.load()
    # A blank villager unlinks (null in PATCH /users/<id>).
    body = _form(UserPatch(), ("villager_id",))
    users.update_user(db.session, actor, user_id, {"villager_id": body.get("villager_id")})
    return redirect(url_for("console.user", user_id=user_id), code=303)
