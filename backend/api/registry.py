"""The village registry: townships, villages, groups, households, members, roster."""

from __future__ import annotations

import base64
from typing import Any

from flask import Response, request, url_for
from flask_smorest import Blueprint
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from points import cards, registry, roster
from points.models import Household, Township, Village, Villager, VillagerGroup
from points.scope import authorize, get_visible, visible

from .. import present, qr
from ..caller import current_actor
from ..clock import now, village_tz
from ..downloads import uploaded_sheet
from ..errors import APIError
from ..extensions import db
from ..idempotency import DOC as IDEMPOTENT
from ..idempotency import idempotent
from ..openapi import BINARY, PAGE_TOO_DEEP, PageArgs, page_of, paginate, raises
from ..schemas.common import SignatureArgs, SignedLinkOut
from ..schemas.registry import (
    BindingTokenOut,
    CardOut,
    CardsPrintArgs,
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
    TownshipPatch,
    VillageIn,
    VillageListArgs,
    VillageOut,
    VillagePatch,
    VillagerOut,
    VillagerPatch,
)
from ..signed_urls import (
    SIGNED_SECURITY,
    SignedLink,
    check_signature,
    is_signed_request,
    mark_signed,
    signed_link,
)

blp = Blueprint("registry", __name__, description="花名册 Townships, villages and households")


# ---- townships ------------------------------------------------------------------------------


@blp.route("/townships", methods=["GET"])
@raises(PAGE_TOO_DEEP)
@blp.arguments(PageArgs, location="query")
@blp.response(200, page_of(TownshipOut))
def list_townships(args: dict[str, Any]) -> dict[str, Any]:
    stmt = visible(current_actor(), Township).order_by(Township.id)
    return paginate(db.session, stmt, args["page"], args["per_page"])


@blp.route("/townships", methods=["POST"])
@raises((403, "villager_inactive"), (409, "duplicate_name"))
@blp.arguments(TownshipIn)
@blp.response(201, TownshipOut)
def create_township(body: dict[str, Any]) -> Township:
    township = registry.create_township(db.session, current_actor(), body["name"], body.get("code"))
    db.session.commit()
    return township


@blp.route("/townships/<int:township_id>", methods=["GET"])
@blp.response(200, TownshipOut)
def get_township(township_id: int) -> Township:
    return get_visible(db.session, current_actor(), Township, township_id)


@blp.route("/townships/<int:township_id>", methods=["PATCH"])
@raises((403, "villager_inactive"), (409, "duplicate_name"))
@blp.arguments(TownshipPatch)
@blp.response(200, TownshipOut)
def update_township(body: dict[str, Any], township_id: int) -> Township:
    """Rename a township or set its code (county admins); audited like a village's."""
    township = registry.update_township(db.session, current_actor(), township_id, body)
    db.session.commit()
    return township


# ---- villages -------------------------------------------------------------------------------


@blp.route("/villages", methods=["GET"])
@raises(PAGE_TOO_DEEP)
@blp.arguments(VillageListArgs, location="query")
@blp.response(200, page_of(VillageOut))
def list_villages(args: dict[str, Any]) -> dict[str, Any]:
    stmt = visible(current_actor(), Village).order_by(Village.id)
    if "township_id" in args:
        stmt = stmt.where(Village.township_id == args["township_id"])
    return paginate(db.session, stmt, args["page"], args["per_page"])


@blp.route("/villages", methods=["POST"])
@raises((403, "villager_inactive"), (404, "not_found"), (409, "duplicate_name"))
@blp.arguments(VillageIn)
@blp.response(201, VillageOut)
def create_village(body: dict[str, Any]) -> Village:
    village = registry.create_village(
        db.session, current_actor(), body["township_id"], body["name"], body.get("code")
    )
    db.session.commit()
    return village


@blp.route("/villages/<int:village_id>", methods=["GET"])
@blp.response(200, VillageOut)
def get_village(village_id: int) -> Village:
    return get_visible(db.session, current_actor(), Village, village_id)


@blp.route("/villages/<int:village_id>", methods=["PATCH"])
@raises((403, "villager_inactive"), (409, "duplicate_name"))
@blp.arguments(VillagePatch)
@blp.response(200, VillageOut)
def update_village(body: dict[str, Any], village_id: int) -> Village:
    """Rename a village or set its code (township and county admins)."""
    village = registry.update_village(db.session, current_actor(), village_id, body)
    db.session.commit()
    return village


@blp.route("/villages/<int:village_id>/groups", methods=["GET"])
@raises(PAGE_TOO_DEEP)
@blp.arguments(PageArgs, location="query")
@blp.response(200, page_of(GroupOut))
def list_groups(args: dict[str, Any], village_id: int) -> dict[str, Any]:
    """The villager groups (村民小组) of a village."""
    village = get_visible(db.session, current_actor(), Village, village_id)
    stmt = (
        select(VillagerGroup)
        .where(VillagerGroup.village_id == village.id)
        .order_by(VillagerGroup.id)
    )
    return paginate(db.session, stmt, args["page"], args["per_page"])


@blp.route("/villages/<int:village_id>/groups", methods=["POST"])
@raises((403, "villager_inactive"), (409, "duplicate_name"))
@blp.arguments(GroupIn)
@blp.response(201, GroupOut)
def create_group(body: dict[str, Any], village_id: int) -> VillagerGroup:
    group = registry.create_group(db.session, current_actor(), village_id, body["name"])
    db.session.commit()
    return group


# ---- households and members -----------------------------------------------------------------


@blp.route("/villages/<int:village_id>/households", methods=["GET"])
@raises(PAGE_TOO_DEEP)
@blp.arguments(PageArgs, location="query")
@blp.response(200, page_of(HouseholdOut))
def list_households(args: dict[str, Any], village_id: int) -> dict[str, Any]:
    actor = current_actor()
    village = get_visible(db.session, actor, Village, village_id)
    stmt = visible(actor, Household).where(Household.village_id == village.id)
    stmt = stmt.order_by(Household.id).options(selectinload(Household.members))
    page = paginate(db.session, stmt, args["page"], args["per_page"])
    page["items"] = present.households(list(page["items"]), actor)
    return page


@blp.route("/villages/<int:village_id>/households", methods=["POST"])
@raises((403, "villager_inactive"), (422, "invalid_group"))
@blp.arguments(HouseholdIn)
@blp.response(201, HouseholdOut)
def create_household(body: dict[str, Any], village_id: int) -> present.ShownHousehold:
    actor = current_actor()
    household = registry.create_household(db.session, actor, village_id, **body)
    db.session.commit()
    return present.household(household, actor)


@blp.route("/households/<int:household_id>", methods=["GET"])
@blp.response(200, HouseholdOut)
def get_household(household_id: int) -> present.ShownHousehold:
    actor = current_actor()
    return present.household(get_visible(db.session, actor, Household, household_id), actor)


@blp.route("/households/<int:household_id>", methods=["PATCH"])
@raises((403, "villager_inactive"), (422, "invalid_group"))
@blp.arguments(HouseholdPatch)
@blp.response(200, HouseholdOut)
def update_household(body: dict[str, Any], household_id: int) -> present.ShownHousehold:
    actor = current_actor()
    household = registry.update_household(db.session, actor, household_id, body)
    db.session.commit()
    return present.household(household, actor)


@blp.route("/households/<int:household_id>/members", methods=["POST"])
@raises((403, "villager_inactive"), (409, "household_has_head"), (422, "invalid_phone"))
@blp.arguments(MemberIn)
@blp.response(201, VillagerOut)
def add_member(body: dict[str, Any], household_id: int) -> present.ShownVillager:
    actor = current_actor()
    member = registry.add_member(db.session, actor, household_id, **body)
    db.session.commit()
    return present.villager(member, actor)


@blp.route("/villagers/<int:villager_id>", methods=["GET"])
@blp.response(200, VillagerOut)
def get_villager(villager_id: int) -> present.ShownVillager:
    actor = current_actor()
    return present.villager(get_visible(db.session, actor, Villager, villager_id), actor)


@blp.route("/villagers/<int:villager_id>", methods=["PATCH"])
@raises((403, "villager_inactive"), (409, "household_has_head"), (422, "invalid_phone"))
@blp.arguments(VillagerPatch)
@blp.response(200, VillagerOut)
def update_villager(body: dict[str, Any], villager_id: int) -> present.ShownVillager:
    actor = current_actor()
    villager = registry.update_villager(db.session, actor, villager_id, body)
    db.session.commit()
    return present.villager(villager, actor)


CARD = "card"  # the kind of image a member card's signed link names


def _card_villager(villager_id: int) -> Villager:
    """The card's villager, for the bearer of a signed link made for this card, or for a
    caller who may print it."""
    if is_signed_request():
        villager = db.session.get(Villager, villager_id)
        # Signed for the card of that moment: a link made before a lost card's reissue (a
        # forwarded chat) must not show the new card, whose QR pays at the counter.
        check_signature(CARD, villager_id, _card_version(villager))
        if villager is None:
            raise APIError(404, "not_found", "未找到该记录")
        return villager
    actor = current_actor()
    villager = get_visible(db.session, actor, Villager, villager_id)
    authorize(actor, "villager.card")
    return villager


@blp.route("/villagers/<int:villager_id>/card-link", methods=["GET"])
@blp.response(200, SignedLinkOut)
def member_card_link(villager_id: int) -> SignedLink:
    """A signed link to the member card that the mini-program's `<image>` opens without a
    token (SIGNED_URL_SECONDS), for whoever may see the card (the household's villagers,
    staff of the village)."""
    actor = current_actor()  # always the token: a signed link never makes another
    villager = get_visible(db.session, actor, Villager, villager_id)
    authorize(actor, "villager.card")
    return signed_link(
        f"/api/v1/villagers/{villager.id}/card.png", CARD, villager.id, _card_version(villager)
    )


def _card_version(villager: Villager | None) -> str:
    return f"s{villager.card_serial}" if villager is not None else "none"


@blp.route("/villagers/<int:villager_id>/card.png", methods=["GET"])
@raises((403, "link_expired"), (403, "link_invalid"), (403, "villager_inactive"))
@blp.doc(security=SIGNED_SECURITY)
@blp.arguments(SignatureArgs, location="query")
@blp.response(200, BINARY, content_type="image/png")
@blp.alt_response(503, response="SERVICE_UNAVAILABLE")  # no Chinese font installed
def member_card(args: dict[str, Any], villager_id: int) -> Response:
    """The villager's member card (积分卡) for people without phones, to print and cut: ID-1
    size (85.6 × 54 mm) at 300 dpi (1011 × 638 pixels), with the village, household, group,
    name, card number, the QR a cadre or clerk scans, and how to use it. Only the valid
    card: a reissued card's earlier ones are refused when scanned. By the bearer token or a
    signed link (GET …/card-link; 403 `link_expired` / `link_invalid`)."""
    villager = _card_villager(villager_id)
    village = db.session.get(Village, villager.household.village_id)
    assert village is not None
    png = qr.member_card_png(villager, village)
    response = Response(png, mimetype="image/png", headers={"Cache-Control": "private, no-store"})
    return mark_signed(response) if is_signed_request() else response


@blp.route("/villagers/<int:villager_id>/card/reissue", methods=["POST"])
@raises((409, "villager_inactive"))
@blp.doc(**IDEMPOTENT)
@idempotent
@blp.response(201, CardOut)
def reissue_card(villager_id: int) -> dict[str, Any]:
    """A new member card for a lost one (挂失补办; staff of the villager's village): from
    now on every earlier card of the villager is refused (409 `card_revoked`) at proxy
    check-in and at the supermarket counter. Print the new card from `card_path`."""
    villager = cards.reissue(db.session, current_actor(), villager_id)
    return {
        "villager_id": villager.id,
        "card_number": villager.card_number,
        "card_serial": villager.card_serial,
        "card_path": url_for("registry.member_card", villager_id=villager.id),
    }


@blp.route("/villages/<int:village_id>/cards.pdf", methods=["GET"])
@raises(
    (422, "group_not_in_village"),
    (422, "household_not_in_village"),
    (422, "no_cards"),
    (422, "too_many_cards"),
)
@blp.arguments(CardsPrintArgs, location="query")
@blp.response(200, BINARY, content_type="application/pdf")
@blp.alt_response(503, response="SERVICE_UNAVAILABLE")  # no Chinese font installed
def village_cards(args: dict[str, Any], village_id: int) -> Response:
    """The member cards of a village's active villagers (or of one group's, or one
    household's) to print: 10 to an A4 sheet (2 columns × 5 rows), with cut marks, at
    300 dpi; by group, household, head first. Staff of the village only. At most
    200 cards at once (422 `too_many_cards`: print by group or household); none is 422
    `no_cards`."""
    village, faces = qr.card_faces(
        current_actor(),
        village_id,
        group_id=args.get("group_id"),
        household_id=args.get("household_id"),
    )
    db.session.commit()
    return qr.cards_download(village, faces)


@blp.route("/villagers/<int:villager_id>/binding-token", methods=["POST"])
@raises((403, "villager_inactive"))
@blp.response(201, BindingTokenOut)
def create_binding_token(villager_id: int) -> dict[str, Any]:
    """A single-use, expiring code that binds a villager's WeChat to this roster entry. Its
    image names the villager it binds (name, village, household), so the right person
    scans it."""
    code = qr.binding_code(current_actor(), villager_id)
    db.session.commit()
    return {
        "token": code.token,
        "url": code.url,
        "expires_at": code.expires_at,
        "qr_png_base64": base64.b64encode(code.png).decode(),
    }


# ---- roster import --------------------------------------------------------------------------


@blp.route("/villages/<int:village_id>/roster", methods=["POST"])
@raises(
    (400, "file_required"),
    (403, "villager_inactive"),
    (422, "roster_invalid"),
    (422, "roster_too_large"),
)
@blp.arguments(RosterArgs, location="query", as_kwargs=True)
@blp.response(201, RosterResult)
@blp.doc(
    requestBody={
        "required": True,
        "description": "A CSV (UTF-8 or GBK) or XLSX roster, as multipart field `file` or as the "
        "raw body. Columns: " + "、".join(roster.COLUMNS) + "; also accepted as "
        "headers: "
        + "、".join(f"{a}→{c}" for a, c in roster.HEADER_ALIASES.items() if c in roster.COLUMNS),
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "create_groups": {"type": "boolean"},
                    },
                }
            },
            "text/csv": {"schema": {"type": "string"}},
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                "schema": {"type": "string", "format": "binary"}
            },
        },
    }
)
def import_roster(village_id: int, create_groups: bool = False) -> roster.RosterSummary:
    """Import households and members. Every row is checked first; if any row is wrong nothing
    is imported and the answer names each bad row (422 `roster_invalid`; text quoted from the
    file is cut to 50 characters). Headers may use the names villages use (电话, 户号, 小组
    …). A household whose 户编号 is already on the village's roster is updated: members
    matched by name, changes listed in `updated`, new names in `added`. A villager group the
    village does not have is an error unless `create_groups=true` (query, or a form field of
    a multipart upload). At most 5,000 villagers; only the first 20 columns and
    100,000 rows of a sheet are read. An XLSX that unpacks to over 20 MB, packs more than
    100:1 or holds over 60,000 cells is refused before it is read (422 `roster_too_large`)."""
    filename, data = uploaded_sheet("roster.xlsx", "请上传花名册文件（CSV 或 XLSX）")
    if request.form.get("create_groups", "").strip().lower() in ("true", "1", "yes", "on"):
        create_groups = True
    summary = roster.import_roster(
        db.session,
        current_actor(),
        village_id,
        filename,
        data,
        now=now(),
        tz=village_tz(),
        create_groups=create_groups,
    )
    db.session.commit()
    return summary
