"""The village registry: townships, villages, groups, households, members, roster."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

from flask import Response, current_app, request
from flask_smorest import Blueprint
from sqlalchemy import select

from points import binding, registry, roster
from points.models import Household, Township, Village, Villager, VillagerGroup
from points.scope import authorize, get_visible, visible
from points.tokens import TokenType

from .. import present
from ..auth import current_actor, qr_codec
from ..clock import now, village_tz
from ..errors import APIError
from ..extensions import db
from ..openapi import BINARY, PageArgs, page_of, paginate
from ..qr import qr_png, token_url
from ..schemas import (
    BindingTokenOut,
    GroupIn,
    GroupOut,
    HouseholdIn,
    HouseholdOut,
    HouseholdPatch,
    MemberIn,
    RosterArgs,
    RosterResult,
    TownshipIn,
    TownshipOut,
    VillageIn,
    VillageListArgs,
    VillageOut,
    VillagePatch,
    VillagerOut,
    VillagerPatch,
)

blp = Blueprint("registry", __name__, description="花名册 Townships, villages and households")


# ---- townships ------------------------------------------------------------------------------

@blp.route("/townships", methods=["GET"])
@blp.arguments(PageArgs, location="query")
@blp.response(200, page_of(TownshipOut))
def list_townships(args: dict[str, Any]) -> dict[str, Any]:
    stmt = visible(current_actor(), Township).order_by(Township.id)
    return paginate(db.session, stmt, args["page"], args["per_page"])


@blp.route("/townships", methods=["POST"])
@blp.arguments(TownshipIn)
@blp.response(201, TownshipOut)
def create_township(body: dict[str, Any]) -> Township:
    township = registry.create_township(db.session, current_actor(), body["name"],
                                        body.get("code"))
    db.session.commit()
    return township


@blp.route("/townships/<int:township_id>", methods=["GET"])
@blp.response(200, TownshipOut)
def get_township(township_id: int) -> Township:
    return get_visible(db.session, current_actor(), Township, township_id)


# ---- villages -------------------------------------------------------------------------------

@blp.route("/villages", methods=["GET"])
@blp.arguments(VillageListArgs, location="query")
@blp.response(200, page_of(VillageOut))
def list_villages(args: dict[str, Any]) -> dict[str, Any]:
    stmt = visible(current_actor(), Village).order_by(Village.id)
    if "township_id" in args:
        stmt = stmt.where(Village.township_id == args["township_id"])
    return paginate(db.session, stmt, args["page"], args["per_page"])


@blp.route("/villages", methods=["POST"])
@blp.arguments(VillageIn)
@blp.response(201, VillageOut)
def create_village(body: dict[str, Any]) -> Village:
    village = registry.create_village(db.session, current_actor(), body["township_id"],
                                      body["name"], body.get("code"))
    db.session.commit()
    return village


@blp.route("/villages/<int:village_id>", methods=["GET"])
@blp.response(200, VillageOut)
def get_village(village_id: int) -> Village:
    return get_visible(db.session, current_actor(), Village, village_id)


@blp.route("/villages/<int:village_id>", methods=["PATCH"])
@blp.arguments(VillagePatch)
@blp.response(200, VillageOut)
def update_village(body: dict[str, Any], village_id: int) -> Village:
    """Rename a village or set its code (township and county admins)."""
    village = registry.update_village(db.session, current_actor(), village_id, body)
    db.session.commit()
    return village


@blp.route("/villages/<int:village_id>/groups", methods=["GET"])
@blp.response(200, GroupOut(many=True))
def list_groups(village_id: int) -> list[VillagerGroup]:
    """The villager groups (村民小组) of a village."""
    village = get_visible(db.session, current_actor(), Village, village_id)
    return list(db.session.scalars(
        select(VillagerGroup).where(VillagerGroup.village_id == village.id)
        .order_by(VillagerGroup.id)
    ))


@blp.route("/villages/<int:village_id>/groups", methods=["POST"])
@blp.arguments(GroupIn)
@blp.response(201, GroupOut)
def create_group(body: dict[str, Any], village_id: int) -> VillagerGroup:
    group = registry.create_group(db.session, current_actor(), village_id, body["name"])
    db.session.commit()
    return group


# ---- households and members -----------------------------------------------------------------

@blp.route("/villages/<int:village_id>/households", methods=["GET"])
@blp.arguments(PageArgs, location="query")
@blp.response(200, page_of(HouseholdOut))
def list_households(args: dict[str, Any], village_id: int) -> dict[str, Any]:
    actor = current_actor()
    village = get_visible(db.session, actor, Village, village_id)
    stmt = visible(actor, Household).where(Household.village_id == village.id)
    page = paginate(db.session, stmt.order_by(Household.id), args["page"], args["per_page"])
    page["items"] = [present.household(h, actor) for h in page["items"]]
    return page


@blp.route("/villages/<int:village_id>/households", methods=["POST"])
@blp.arguments(HouseholdIn)
@blp.response(201, HouseholdOut)
def create_household(body: dict[str, Any], village_id: int) -> dict[str, Any]:
    actor = current_actor()
    household = registry.create_household(db.session, actor, village_id, **body)
    db.session.commit()
    return present.household(household, actor)


@blp.route("/households/<int:household_id>", methods=["GET"])
@blp.response(200, HouseholdOut)
def get_household(household_id: int) -> dict[str, Any]:
    actor = current_actor()
    return present.household(get_visible(db.session, actor, Household, household_id), actor)


@blp.route("/households/<int:household_id>", methods=["PATCH"])
@blp.arguments(HouseholdPatch)
@blp.response(200, HouseholdOut)
def update_household(body: dict[str, Any], household_id: int) -> dict[str, Any]:
    actor = current_actor()
    household = registry.update_household(db.session, actor, household_id, body)
    db.session.commit()
    return present.household(household, actor)


@blp.route("/households/<int:household_id>/members", methods=["POST"])
@blp.arguments(MemberIn)
@blp.response(201, VillagerOut)
def add_member(body: dict[str, Any], household_id: int) -> dict[str, Any]:
    actor = current_actor()
    member = registry.add_member(db.session, actor, household_id, **body)
    db.session.commit()
    return present.villager(member, actor)


@blp.route("/villagers/<int:villager_id>", methods=["GET"])
@blp.response(200, VillagerOut)
def get_villager(villager_id: int) -> dict[str, Any]:
    actor = current_actor()
    return present.villager(get_visible(db.session, actor, Villager, villager_id), actor)


@blp.route("/villagers/<int:villager_id>", methods=["PATCH"])
@blp.arguments(VillagerPatch)
@blp.response(200, VillagerOut)
def update_villager(body: dict[str, Any], villager_id: int) -> dict[str, Any]:
    actor = current_actor()
    villager = registry.update_villager(db.session, actor, villager_id, body)
    db.session.commit()
    return present.villager(villager, actor)


@blp.route("/villagers/<int:villager_id>/card.png", methods=["GET"])
@blp.response(200, BINARY, content_type="image/png")
def member_card(villager_id: int) -> Response:
    """The member-card QR (for people without phones: a cadre or clerk scans it)."""
    actor = current_actor()
    villager = get_visible(db.session, actor, Villager, villager_id)
    authorize(actor, "villager.card")
    token = qr_codec().encode(TokenType.MEMBER_CARD, (villager.id,))
    png = qr_png(token_url(current_app.config["PUBLIC_BASE_URL"], token))
    return Response(png, mimetype="image/png", headers={"Cache-Control": "private, no-store"})


@blp.route("/villagers/<int:villager_id>/binding-token", methods=["POST"])
@blp.response(201, BindingTokenOut)
def create_binding_token(villager_id: int) -> dict[str, Any]:
    """A single-use, expiring code that binds a villager's WeChat to this roster entry."""
    ttl = timedelta(hours=current_app.config["BINDING_TOKEN_HOURS"])
    token, expires_at = binding.create_binding_token(
        db.session, current_actor(), qr_codec(), villager_id, ttl
    )
    db.session.commit()
    url = token_url(current_app.config["PUBLIC_BASE_URL"], token)
    return {
        "token": token,
        "url": url,
        "expires_at": expires_at,
        "qr_png_base64": base64.b64encode(qr_png(url)).decode(),
    }


# ---- roster import --------------------------------------------------------------------------

@blp.route("/villages/<int:village_id>/roster", methods=["POST"])
@blp.arguments(RosterArgs, location="query", as_kwargs=True)
@blp.response(201, RosterResult)
@blp.doc(requestBody={
    "required": True,
    "description": "A CSV (UTF-8 or GBK) or XLSX roster, as multipart field `file` or as the "
                   "raw body. Columns: " + "、".join(roster.COLUMNS) + "; also accepted as "
                   "headers: " + "、".join(f"{a}→{c}" for a, c in roster.HEADER_ALIASES.items()
                                           if c in roster.COLUMNS),
    "content": {
        "multipart/form-data": {"schema": {"type": "object", "additionalProperties": False,
                                           "properties": {
            "file": {"type": "string", "format": "binary"},
            "create_groups": {"type": "boolean"}}}},
        "text/csv": {"schema": {"type": "string"}},
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
            "schema": {"type": "string", "format": "binary"}},
    },
})
def import_roster(village_id: int, create_groups: bool = False) -> dict[str, Any]:
    """Import households and members. Every row is checked first; if any row is wrong nothing
    is imported and the answer names each bad row (422 `roster_invalid`; text quoted from the
    file is cut to 50 characters). Headers may use the names villages use (电话, 户号, 小组
    …). A household whose 户编号 is already on the village's roster is updated: members
    matched by name, changes listed in `updated`, new names in `added`. A villager group the
    village does not have is an error unless `create_groups=true` (query, or a form field of
    a multipart upload). At most 5,000 villagers; only the first 20 columns and
    100,000 rows of a sheet are read. An XLSX that unpacks to over 20 MB, packs more than
    100:1 or holds over 60,000 cells is refused before it is read (422 `roster_too_large`)."""
    upload = request.files.get("file")
    if upload is not None:
        filename, data = upload.filename or "", upload.read()
    else:
        filename, data = "", request.get_data()
        if "spreadsheetml" in (request.content_type or ""):
            filename = "roster.xlsx"
    if not data:
        raise APIError(400, "file_required", "请上传花名册文件（CSV 或 XLSX）")
    if request.form.get("create_groups", "").strip().lower() in ("true", "1", "yes", "on"):
        create_groups = True
    summary = roster.import_roster(db.session, current_actor(), village_id, filename, data,
                                   now=now(), tz=village_tz(), create_groups=create_groups)
    db.session.commit()
    return summary.as_dict()
