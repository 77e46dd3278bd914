"""Rule catalogs (积分细则): catalogs, items and their versions, policies, YAML import and
export, and the dry-run evaluation."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, current_app, request
from flask_smorest import Blueprint
from sqlalchemy.orm import selectinload

import rules
from points import catalogs, claims
from points.errors import Invalid
from points.models import RuleCatalog, RuleItem, RuleItemVersion, Village, utcnow
from points.scope import VILLAGER, get_visible, visible

from ..caller import current_actor
from ..downloads import download
from ..errors import APIError
from ..extensions import db
from ..openapi import PAGE_TOO_DEEP, PageArgs, page_of, paginate, raises
from ..schemas.rules import (
    CatalogIn,
    CatalogListArgs,
    CatalogOut,
    EvaluateIn,
    EvaluateOut,
    ImportArgs,
    ImportJsonIn,
    ImportOut,
    MyItemArgs,
    PolicyPatch,
    RuleItemIn,
    RuleItemListArgs,
    RuleItemOut,
    RuleItemPatch,
    RuleItemVersionOut,
    VillageItemArgs,
)

blp = Blueprint("rules", __name__, description="积分细则 Rule catalogs, items and versions")

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain")


def _catalog_out(catalog: RuleCatalog, count: int | None = None) -> dict[str, Any]:
    policy, own = catalogs.catalog_policy(db.session, catalog)
    if count is None:
        count = catalogs.item_count(db.session, [catalog.id])[catalog.id]
    return {
        "id": catalog.id,
        "name": catalog.name,
        "township_id": catalog.township_id,
        "village_id": catalog.village_id,
        "categories": catalog.categories,
        "policy": rules.policy_to_dict(policy),
        "own_policy": own,
        "item_count": count,
        "created_at": catalog.created_at,
    }


def _item_out(item: RuleItem) -> dict[str, Any]:
    version = item.current_version
    assert version is not None
    return {
        **version.data,
        "hourly": version.hourly,
        "id": item.id,
        "catalog_id": item.catalog_id,
        "version": version.version,
        "version_id": version.id,
        "retired": item.retired_at is not None,
        "created_at": item.created_at,
        "updated_at": version.created_at,
    }


def _version_out(version: RuleItemVersion, current_id: int | None) -> dict[str, Any]:
    return {
        "id": version.id,
        "item_id": version.item_id,
        "version": version.version,
        "points": version.points,
        "current": version.id == current_id,
        "data": version.data,
        "created_by": version.created_by,
        "created_at": version.created_at,
    }


# ---- catalogs -------------------------------------------------------------------------------


@blp.route("/rule-catalogs", methods=["GET"])
@raises(PAGE_TOO_DEEP, (404, "not_found"))
@blp.arguments(CatalogListArgs, location="query")
@blp.response(200, page_of(CatalogOut))
def list_catalogs(args: dict[str, Any]) -> dict[str, Any]:
    """The catalogs the caller may read: their township's, and villages' own items."""
    stmt = visible(current_actor(), RuleCatalog).order_by(RuleCatalog.id)
    if "township_id" in args:
        stmt = stmt.where(RuleCatalog.township_id == args["township_id"])
    if "village_id" in args:
        stmt = stmt.where(RuleCatalog.village_id == args["village_id"])
    page = paginate(db.session, stmt, args["page"], args["per_page"])
    counts = catalogs.item_count(db.session, [c.id for c in page["items"]])
    page["items"] = [_catalog_out(c, counts[c.id]) for c in page["items"]]
    return page


@blp.route("/rule-catalogs", methods=["POST"])
@raises(
    (403, "village_items_not_allowed"),
    (403, "villager_inactive"),
    (404, "not_found"),
    (409, "catalog_exists"),
    (422, "catalog_invalid"),
    (422, "owner_required"),
    (422, "township_required"),
)
@blp.arguments(CatalogIn)
@blp.response(201, CatalogOut)
def create_catalog(body: dict[str, Any]) -> dict[str, Any]:
    """An empty catalog: `{name, township_id}` (township admins) or `{name, village_id}`, a
    village's own items (村规民约; cadres too when the township's policy allows it)."""
    catalog = catalogs.create_catalog(
        db.session,
        current_actor(),
        body["name"],
        township_id=body.get("township_id"),
        village_id=body.get("village_id"),
        categories=body.get("categories"),
    )
    db.session.commit()
    return _catalog_out(catalog)


@blp.route("/rule-catalogs/<int:catalog_id>", methods=["GET"])
@blp.response(200, CatalogOut)
def get_catalog(catalog_id: int) -> dict[str, Any]:
    return _catalog_out(get_visible(db.session, current_actor(), RuleCatalog, catalog_id))


@blp.route("/rule-catalogs/<int:catalog_id>/policy", methods=["PATCH"])
@raises((403, "villager_inactive"), (422, "catalog_invalid"))
@blp.arguments(PolicyPatch)
@blp.response(200, CatalogOut)
def set_policy(body: dict[str, Any], catalog_id: int) -> dict[str, Any]:
    """Township admins set the policy: 公示 days, two-cadre threshold, monthly budget, reset
    cycle, qualification line, star levels, exchange rate, minimum redemption, whether
    villages may add their own items. On a village's catalog it gives that village its own
    policy, starting from the township's."""
    catalog = catalogs.set_policy(db.session, current_actor(), catalog_id, body)
    db.session.commit()
    return _catalog_out(catalog)


@blp.route("/rule-catalogs/<int:catalog_id>/export", methods=["GET"])
@blp.response(
    200,
    {"type": "object", "description": "the catalog in the import format"},
    content_type="text/yaml",
)
def export_catalog(catalog_id: int) -> Response:
    """The catalog as YAML, the same format `flask rules import` and the import endpoint read:
    importing a file and exporting it gives the same bytes back."""
    text = catalogs.export_yaml(db.session, catalog_id, current_actor())
    return download(text.encode("utf-8"), "text/yaml", f"rule-catalog-{catalog_id}.yaml")


@blp.route("/rule-catalogs/import", methods=["POST"])
@raises(
    (400, "file_required"),
    (403, "villager_inactive"),
    (404, "not_found"),
    (409, "catalog_exists"),
    (415, "unsupported_media_type"),
    (422, "catalog_invalid"),
    (422, "township_required"),
)
@blp.arguments(ImportArgs, location="query")
@blp.arguments(ImportJsonIn, location="json")
@blp.response(201, ImportOut)
@blp.doc(
    requestBody={
        "required": True,
        "description": "The catalog file: raw YAML (`?township_id=N&replace=false`), multipart "
        "field `file`, or JSON `{township_id, yaml, replace}`. `township_id` may be "
        "left out by a township admin (their own township); a county admin must "
        "name it (else 422 `township_required`). A catalog with any problem "
        "changes nothing: 422 `catalog_invalid`, details.problems naming each item "
        "and field. Refused as a whole (422): `yaml_too_large` (over 250,000 "
        "characters), `yaml_aliases` (YAML anchors or aliases, & and *), "
        "`yaml_too_deep`. Text quoted from the file is cut to 50 characters.",
        "content": {
            "application/yaml": {"schema": {"type": "string"}},
            "text/yaml": {"schema": {"type": "string"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
        },
    }
)
def import_catalog(args: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """Load a township's catalog from YAML (township admins; county admins for any township).
    A township that has a catalog keeps it unless `replace`: then changed items get a new
    version, new codes are added and items left out are retired; awards keep their versions."""
    data: str | bytes
    if request.is_json:
        if "yaml" not in body:
            raise APIError(
                422,
                "validation_error",
                "请提供细则内容（yaml）",
                {"fields": {"yaml": ["缺少必填字段"]}},
            )
        data = body["yaml"]
    elif request.files.get("file") is not None:
        data = request.files["file"].read()
    elif request.mimetype in YAML_TYPES or not request.mimetype:
        data = request.get_data()
    else:
        raise APIError(
            415, "unsupported_media_type", "请以 YAML（application/yaml）或 JSON 上传积分细则"
        )
    if not data:
        raise APIError(400, "file_required", "请上传积分细则文件（YAML）")
    township_id = body.get("township_id", args.get("township_id"))
    result = catalogs.import_catalog(
        db.session, current_actor(), township_id, data, replace=body.get("replace", args["replace"])
    )
    db.session.commit()
    return {
        "catalog": _catalog_out(result.catalog),
        "created": result.created,
        "revised": result.revised,
        "unchanged": result.unchanged,
        "retired": result.retired,
    }


# ---- items and versions ---------------------------------------------------------------------


@blp.route("/rule-catalogs/<int:catalog_id>/items", methods=["GET"])
@raises(PAGE_TOO_DEEP)
@blp.arguments(RuleItemListArgs, location="query")
@blp.response(200, page_of(RuleItemOut))
def list_items(args: dict[str, Any], catalog_id: int) -> dict[str, Any]:
    """A catalog's items in catalog order, each as its current version."""
    actor = current_actor()
    catalog = get_visible(db.session, actor, RuleCatalog, catalog_id)
    stmt = (
        visible(actor, RuleItem)
        .where(RuleItem.catalog_id == catalog.id)
        .order_by(RuleItem.position, RuleItem.id)
        .options(selectinload(RuleItem.current_version))
    )
    if not args["include_retired"]:
        stmt = stmt.where(RuleItem.retired_at.is_(None))
    page = paginate(db.session, stmt, args["page"], args["per_page"])
    page["items"] = [_item_out(item) for item in page["items"]]
    return page


@blp.route("/rule-catalogs/<int:catalog_id>/items", methods=["POST"])
@raises(
    (403, "village_items_not_allowed"),
    (403, "villager_inactive"),
    (409, "duplicate_code"),
    (422, "catalog_invalid"),
)
@blp.arguments(RuleItemIn)
@blp.response(201, RuleItemOut)
def add_item(body: dict[str, Any], catalog_id: int) -> dict[str, Any]:
    """A new item (version 1). Its sense is checked by the catalog rules: a refused item is a
    422 `catalog_invalid` naming each field."""
    item = catalogs.add_item(db.session, current_actor(), catalog_id, body)
    db.session.commit()
    return _item_out(item)


def _items_in_effect(args: dict[str, Any], village: Village) -> dict[str, Any]:
    actor = current_actor()
    stmt = catalogs.in_effect_for(visible(actor, RuleItem), village).options(
        selectinload(RuleItem.current_version)
    )
    submitter = args.get("submit_by")
    if submitter is None:
        page = paginate(db.session, stmt, args["page"], args["per_page"])
    else:
        # The rule that decides a report (RuleItem.may_submit) decides the list: a village
        # uses tens of items, read at once and paged here.
        chosen = [
            item
            for item in db.session.scalars(stmt)
            if claims.current_rule(item).may_submit(submitter)
        ]
        first = (args["page"] - 1) * args["per_page"]
        page = {
            "items": chosen[first : first + args["per_page"]],
            "page": args["page"],
            "per_page": args["per_page"],
            "total": len(chosen),
        }
    page["items"] = [_item_out(item) for item in page["items"]]
    return page


@blp.route("/villages/<int:village_id>/rule-items", methods=["GET"])
@raises(PAGE_TOO_DEEP)
@blp.arguments(VillageItemArgs, location="query")
@blp.response(200, page_of(RuleItemOut))
def village_items(args: dict[str, Any], village_id: int) -> dict[str, Any]:
    """The items a village uses: its township's catalog, then its own items (村规民约);
    `submit_by=villager` only those a villager may report themselves."""
    village = get_visible(db.session, current_actor(), Village, village_id)
    return _items_in_effect(args, village)


@blp.route("/rule-items", methods=["GET"])
@raises(PAGE_TOO_DEEP, (403, "not_bound"), (422, "village_required"))
@blp.arguments(MyItemArgs, location="query")
@blp.response(200, page_of(RuleItemOut))
def my_items(args: dict[str, Any]) -> dict[str, Any]:
    """The items the caller's village uses (or `village_id`'s), as GET
    /villages/{village_id}/rule-items lists them: the mini-program's report screen asks
    `submit_by=villager`. A caller of no village names one (422 `village_required`); a
    villager not bound yet is 403 `not_bound`."""
    actor = current_actor()
    village_id = args.get("village_id") or actor.village_id
    if village_id is None:
        if actor.role == VILLAGER:
            actor.require_household()  # a villager of no village is one not bound yet
        raise Invalid("请指定村（village_id）", code="village_required")
    village = get_visible(db.session, actor, Village, village_id)
    return _items_in_effect(args, village)


@blp.route("/rule-items/<int:item_id>", methods=["GET"])
@blp.response(200, RuleItemOut)
def get_item(item_id: int) -> dict[str, Any]:
    return _item_out(get_visible(db.session, current_actor(), RuleItem, item_id))


@blp.route("/rule-items/<int:item_id>", methods=["PATCH"])
@raises(
    (403, "village_items_not_allowed"),
    (403, "villager_inactive"),
    (409, "item_retired"),
    (422, "catalog_invalid"),
    (422, "code_immutable"),
)
@blp.arguments(RuleItemPatch)
@blp.response(200, RuleItemOut)
def edit_item(body: dict[str, Any], item_id: int) -> dict[str, Any]:
    """Change an item: the result is a new version (null clears an optional field). What was
    recorded against earlier versions keeps them; an unchanged body makes no version."""
    catalogs.edit_item(db.session, current_actor(), item_id, body)
    db.session.commit()
    return _item_out(get_visible(db.session, current_actor(), RuleItem, item_id))


@blp.route("/rule-items/<int:item_id>/retire", methods=["POST"])
@raises((403, "village_items_not_allowed"), (403, "villager_inactive"), (409, "item_retired"))
@blp.response(200, RuleItemOut)
def retire_item(item_id: int) -> dict[str, Any]:
    """Take the item out of its catalog (停用): it is no longer awarded or reported; what was
    recorded under its versions keeps them. Adding its code again (or an import listing it)
    brings it back. A retired item answers 409 `item_retired`."""
    catalogs.retire_item(db.session, current_actor(), item_id)
    db.session.commit()
    return _item_out(get_visible(db.session, current_actor(), RuleItem, item_id))


@blp.route("/rule-items/<int:item_id>/versions", methods=["GET"])
@raises(PAGE_TOO_DEEP)
@blp.arguments(PageArgs, location="query")
@blp.response(200, page_of(RuleItemVersionOut))
def list_versions(args: dict[str, Any], item_id: int) -> dict[str, Any]:
    """Every version of the item, newest first."""
    actor = current_actor()
    item = get_visible(db.session, actor, RuleItem, item_id)
    page = paginate(db.session, catalogs.versions_of(item.id), args["page"], args["per_page"])
    page["items"] = [_version_out(v, item.current_version_id) for v in page["items"]]
    return page


@blp.route("/rule-item-versions/<int:version_id>", methods=["GET"])
@blp.response(200, RuleItemVersionOut)
def get_version(version_id: int) -> dict[str, Any]:
    """One version, e.g. the one an award recorded."""
    version = catalogs.get_version(db.session, current_actor(), version_id)
    return _version_out(version, version.item.current_version_id)


# ---- dry run --------------------------------------------------------------------------------


@blp.route("/rules/evaluate", methods=["POST"])
@raises(
    (403, "villager_inactive"),
    (404, "not_found"),
    (409, "villager_inactive"),
    (422, "invalid_time"),
    (422, "invalid_units"),
    (422, "item_not_applicable"),
    (422, "item_retired"),
)
@blp.arguments(EvaluateIn)
@blp.response(200, EvaluateOut)
def evaluate(body: dict[str, Any]) -> dict[str, Any]:
    """What an item would give a villager now (or at `at`), with the reason; records nothing.
    Counts what the villager (or, for a household item, the household) has already been
    given for the item, as the award does: `capped` is true once a period's cap is reached.
    Days and months are the village's (APP_TIMEZONE)."""
    zone = ZoneInfo(current_app.config["APP_TIMEZONE"])
    at = (body.get("at") or utcnow()).astimezone(zone)
    return claims.evaluate_for(
        db.session,
        current_actor(),
        body["item_id"],
        body["villager_id"],
        body.get("units"),
        at,
        zone,
    )
