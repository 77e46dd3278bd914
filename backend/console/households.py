"""农户档案: the household register — find a household, read its members, passbook and
claims, change it, and print what it hands out (member cards, the plate, binding codes).

Thin over the registry API's services: `points.registry` writes, `backend.present` shows
members (phones masked as the API masks them) and passbook lines, `backend.qr` draws what is
printed; the form fields are checked by the API's own schemas."""

from __future__ import annotations

import base64
from typing import Any

from flask import g, redirect, render_template, request, url_for
from marshmallow import Schema, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.wrappers import Response

from points import ledger, registry, users
from points.models import (
    GENDERS,
    RELATIONS,
    STAFF_ROLES,
    Account,
    Claim,
    Household,
    User,
    Village,
    Villager,
    VillagerGroup,
)
from points.scope import Actor, authorize, get_visible, holds_village, sees_phone, visible

from .. import present, qr
from ..clock import village_tz
from ..errors import APIError, chinese_messages
from ..extensions import db
from ..openapi import paginate
from ..schemas.registry import HouseholdIn, HouseholdPatch, MemberIn, VillagerPatch
from . import bp, forms, menu_item, session

menu_item("console.households", "农户档案", "household.update")

PER_PAGE = 30
PASSBOOK_PER_PAGE = 30
CLAIMS_SHOWN = 50
MAX_QUERY = 50

CLAIM_STATUS_LABELS = {
    "pending": "待审核",
    "approved": "已通过",
    "in_notice": "公示中",
    "objected": "有异议",
    "posted": "已入账",
    "rejected": "未通过",
    "withdrawn": "已撤回",
}

ENTRY_KINDS = {
    "earn": "获得积分",
    "deduct": "扣分",
    "redeem": "兑换",
    "reverse": "冲正",
    "adjust": "调整",
    "expire": "过期",
}

# How a refused form names what it refused (the API's field names, in Chinese).
FIELD_LABELS = {
    "name": "名称",
    "relation": "与户主关系",
    "phone": "手机号",
    "gender": "性别",
    "birth_year": "出生年份",
    "address": "地址",
    "group_id": "村民小组",
    "public_board_opt_out": "不上公开榜单",
    "active": "状态",
}


# ---- reading a form ---------------------------------------------------------------------------


def _text(name: str) -> str | None:
    """A text field: trimmed; empty is left out (None)."""
    value = request.form.get(name, "").strip()
    return value or None


def _number(name: str) -> int | str | None:
    """A whole-number field: None when empty; anything else but digits goes to the schema
    as typed, which refuses it in its own words."""
    value = request.form.get(name, "").strip()
    if not value:
        return None
    return int(value) if value.isdigit() and len(value) < 10 else value


def _said(messages: Any) -> str:
    return "、".join(map(str, messages)) if isinstance(messages, list) else str(messages)


def _load(schema: Schema, data: dict[str, Any]) -> dict[str, Any]:
    """The form's fields checked by the API's schema for the same write."""
    try:
        loaded: dict[str, Any] = schema.load(data)
    except ValidationError as exc:
        problems = chinese_messages(exc.messages)
        said = "；".join(
            f"{FIELD_LABELS.get(str(name), str(name))}：{_said(messages)}"
            for name, messages in problems.items()
        )
        raise APIError(422, "validation_error", f"提交的内容不符合要求（{said}）") from exc
    return loaded


def _member_fields() -> dict[str, Any]:
    return {
        "name": request.form.get("name", "").strip(),
        "relation": request.form.get("relation", ""),
        "phone": _text("phone"),
        "gender": _text("gender"),
        "birth_year": _number("birth_year"),
    }


def _household_fields() -> dict[str, Any]:
    return {"name": _text("name"), "address": _text("address"), "group_id": _number("group_id")}


def _failed(form: str) -> None:
    """Which form of the page the refusal (if any) belongs beside."""
    g.failed_form = form


# ---- the list ---------------------------------------------------------------------------------


def _villages(actor: Actor) -> list[Village]:
    return list(db.session.scalars(visible(actor, Village).order_by(Village.id)))


def _groups(actor: Actor, village_id: int | None) -> list[VillagerGroup]:
    stmt = visible(actor, VillagerGroup).order_by(VillagerGroup.village_id, VillagerGroup.id)
    if village_id is not None:
        stmt = stmt.where(VillagerGroup.village_id == village_id)
    return list(db.session.scalars(stmt))


@bp.get("/households")
def households() -> str:
    actor = session.load()
    authorize(actor, "household.update")
    villages = _villages(actor)
    village_id = request.args.get("village_id", type=int)
    village = (
        get_visible(db.session, actor, Village, village_id)
        if village_id
        else (villages[0] if len(villages) == 1 else None)
    )
    group_id = request.args.get("group_id", type=int)
    if village is None and group_id:
        # A group is of one village: the page shows that village, with its groups to choose.
        group = db.session.scalar(visible(actor, VillagerGroup).where(VillagerGroup.id == group_id))
        village = next((v for v in villages if group and v.id == group.village_id), None)
    query = request.args.get("q", "").strip()[:MAX_QUERY]
    page = max(request.args.get("page", 1, type=int) or 1, 1)

    # The API's household list: the households the actor may see, of the village chosen.
    stmt = visible(actor, Household)
    if village is not None:
        stmt = stmt.where(Household.village_id == village.id)
    if group_id:
        stmt = stmt.where(Household.group_id == group_id)
    if query:
        stmt = stmt.where(registry.household_matches(actor, actor.village_id, query))
    found = paginate(
        db.session,
        stmt.order_by(Household.id).options(
            selectinload(Household.members), selectinload(Household.group)
        ),
        page,
        PER_PAGE,
    )
    ids = [h.id for h in found["items"]]
    balances: dict[int, int] = (
        {
            household_id: available
            for household_id, available in db.session.execute(
                select(Account.household_id, Account.available).where(Account.household_id.in_(ids))
            )
        }
        if ids
        else {}
    )
    return render_template(
        "console/households/list.html",
        found=found,
        pages=max((found["total"] + PER_PAGE - 1) // PER_PAGE, 1),
        balances=balances,
        villages=villages,
        village_names={v.id: v.name for v in villages},
        village=village,
        # The groups of the village chosen only: a county's 900 groups are not a list to
        # choose from (the village is chosen first; a cadre's is chosen already).
        groups=_groups(actor, village.id) if village else [],
        group_id=group_id,
        query=query,
    )


# ---- adding a household -----------------------------------------------------------------------


def _new_page(**_: Any) -> str:
    actor = session.load()
    authorize(actor, "household.create")
    villages = _villages(actor)
    return render_template(
        "console/households/new.html",
        villages=villages,
        village_names={v.id: v.name for v in villages},
        groups=_groups(actor, villages[0].id if len(villages) == 1 else None),
    )


@bp.get("/households/new")
def new_household() -> str:
    return _new_page()


@bp.post("/households/new")
@forms.writes(on_refusal=_new_page)
def create_household() -> Response:
    actor = session.load()
    village_id = _number("village_id")
    if not isinstance(village_id, int):
        villages = _villages(actor)
        if len(villages) != 1:
            raise APIError(422, "validation_error", "请选择村")
        village_id = villages[0].id
    fields = _load(HouseholdIn(), _household_fields())
    household = registry.create_household(db.session, actor, village_id, **fields)
    db.session.flush()
    return redirect(url_for("console.household", household_id=household.id), code=303)


# ---- one household ----------------------------------------------------------------------------


def _household_page(household_id: int, **_: Any) -> str:
    actor = session.load()
    household = get_visible(db.session, actor, Household, household_id)
    authorize(actor, "household.update")
    village = db.session.get(Village, household.village_id)
    assert village is not None
    shown = present.household(household, actor)
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    lines, total = present.passbook_page(
        household.id, month=None, page=page, per_page=PASSBOOK_PER_PAGE
    )
    claims = db.session.scalars(
        visible(actor, Claim)
        .where(Claim.household_id == household.id)
        .order_by(Claim.id.desc())
        .limit(CLAIMS_SHOWN)
    ).all()
    member_ids = [m.id for m in household.members]
    may_link = actor.can("user.update")
    linked: dict[int, list[User]] = {}
    staff: list[Any] = []
    if member_ids:
        for user in db.session.scalars(
            select(User).where(User.villager_id.in_(member_ids), User.role.in_(STAFF_ROLES))
        ):
            assert user.villager_id is not None
            linked.setdefault(user.villager_id, []).append(user)
    if may_link:
        # The staff offered to link: those the service would link here (it checks each link
        # again), whose own scope holds this village, and not the admin's own account. A
        # county's 600 accounts would be a list to scroll for the few that can be linked.
        staff = list(
            db.session.execute(
                visible(actor, User)
                .with_only_columns(User.username, User.name)
                .where(User.disabled.is_(False), holds_village(village), User.id != actor.user_id)
                .order_by(User.username)
            )
        )
    return render_template(
        "console/households/detail.html",
        household=household,
        shown=shown,
        village=village,
        groups=_groups(actor, household.village_id),
        account=ledger.account_view(db.session, household.id, village_tz()),
        lines=lines,
        passbook_total=total,
        passbook_page=page,
        passbook_pages=max((total + PASSBOOK_PER_PAGE - 1) // PASSBOOK_PER_PAGE, 1),
        claims=claims,
        claim_labels=CLAIM_STATUS_LABELS,
        entry_kinds=ENTRY_KINDS,
        sees_phone=sees_phone(actor, household.village_id),
        relations=RELATIONS,
        genders=GENDERS,
        may_link=may_link,
        linked=linked,
        staff=staff,
        failed_form=g.get("failed_form"),
    )


def _member_page(villager_id: int, **_: Any) -> str:
    """The household page of a member whose form was refused."""
    villager = get_visible(db.session, session.load(), Villager, villager_id)
    return _household_page(villager.household_id)


def _to_household(household_id: int) -> Response:
    return redirect(url_for("console.household", household_id=household_id), code=303)


@bp.get("/households/<int:household_id>")
def household(household_id: int) -> str:
    return _household_page(household_id)


@bp.post("/households/<int:household_id>")
@forms.writes(on_refusal=_household_page)
def update_household(household_id: int) -> Response:
    _failed("household")
    changes = _household_fields()
    changes["public_board_opt_out"] = request.form.get("public_board_opt_out") == "on"
    fields = _load(HouseholdPatch(), changes)
    registry.update_household(db.session, session.load(), household_id, fields)
    return _to_household(household_id)


@bp.post("/households/<int:household_id>/members")
@forms.writes(on_refusal=_household_page)
def add_member(household_id: int) -> Response:
    _failed("add_member")
    fields = _load(MemberIn(), _member_fields())
    registry.add_member(db.session, session.load(), household_id, **fields)
    return _to_household(household_id)


@bp.post("/villagers/<int:villager_id>")
@forms.writes(on_refusal=_member_page)
def update_member(villager_id: int) -> Response:
    _failed(f"member-{villager_id}")
    actor = session.load()
    villager = get_visible(db.session, actor, Villager, villager_id)
    changes = _member_fields()
    if not sees_phone(actor, villager.household.village_id):
        # The form showed the number masked (as the API does): it cannot be changed here.
        changes.pop("phone")
    fields = _load(VillagerPatch(), changes)
    registry.update_villager(db.session, actor, villager.id, fields)
    return _to_household(villager.household_id)


@bp.post("/villagers/<int:villager_id>/active")
@forms.writes(on_refusal=_member_page)
def set_member_active(villager_id: int) -> Response:
    """停用 (moved away, deceased) or 恢复 a member: PATCH /villagers/<id> with `active`."""
    _failed(f"member-{villager_id}")
    active = request.form.get("active") == "1"
    villager = registry.update_villager(db.session, session.load(), villager_id, {"active": active})
    return _to_household(villager.household_id)


@bp.post("/villagers/<int:villager_id>/staff-link")
@forms.writes(on_refusal=_member_page)
def link_staff(villager_id: int) -> Response:
    """Link a staff account to its holder's own roster entry (PATCH /users/<id> with
    `villager_id`), so they never decide their own household's points. Admins only."""
    _failed(f"link-{villager_id}")
    actor = session.load()
    authorize(actor, "user.update")
    villager = get_visible(db.session, actor, Villager, villager_id)
    username = request.form.get("username", "").strip()[:64]
    user = db.session.scalar(
        visible(actor, User).where(User.username == username, User.role.in_(STAFF_ROLES))
    )
    if user is None:
        raise APIError(404, "not_found", "没有这个工作人员账号")
    users.update_user(db.session, actor, user.id, {"villager_id": villager.id})
    return _to_household(villager.household_id)


# ---- what is printed --------------------------------------------------------------------------


@bp.post("/villagers/<int:villager_id>/binding-code")
@forms.writes(on_refusal=_member_page)
def binding_code(villager_id: int) -> Response:
    """A binding code (绑定码), shown once on the page the form answers with: the code is a
    secret until used, so it is never put in an address to come back to. Sent again (a
    reload) the form lands on the household page instead of making another code."""
    _failed(f"member-{villager_id}")
    actor = session.load()
    code = qr.binding_code(actor, villager_id)
    villager = get_visible(db.session, actor, Villager, villager_id)
    html = render_template(
        "console/households/binding.html",
        villager=villager,
        code=code,
        png=base64.b64encode(code.png).decode(),
    )
    return Response(html, mimetype="text/html", headers={"Cache-Control": "no-store"})


@bp.get("/villagers/<int:villager_id>/binding-code")
def binding_code_again(villager_id: int) -> Response:
    villager = get_visible(db.session, session.load(), Villager, villager_id)
    return _to_household(villager.household_id)


@bp.get("/households/<int:household_id>/cards.pdf")
def household_cards(household_id: int) -> Response:
    actor = session.load()
    household = get_visible(db.session, actor, Household, household_id)
    village, faces = qr.card_faces(actor, household.village_id, household_id=household.id)
    db.session.commit()  # drawing takes a while: not inside a transaction
    return qr.cards_download(village, faces)


@bp.get("/villages/<int:village_id>/cards.pdf")
def village_cards(village_id: int) -> Response:
    village, faces = qr.card_faces(
        session.load(), village_id, group_id=request.args.get("group_id", type=int)
    )
    db.session.commit()
    return qr.cards_download(village, faces)


@bp.get("/households/<int:household_id>/plate")
def plate(household_id: int) -> str:
    actor = session.load()
    household = get_visible(db.session, actor, Household, household_id)
    authorize(actor, "plate.print")
    return render_template("console/households/plate.html", household=household)


@bp.get("/households/<int:household_id>/plate.png")
def plate_png(household_id: int) -> Response:
    png = qr.plate_png(session.load(), household_id)
    db.session.commit()  # the plate's link, made on first print
    return Response(png, mimetype="image/png", headers={"Cache-Control": "private, no-store"})
