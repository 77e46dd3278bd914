"""积分细则: a township's catalog by category, its items' versions and what changed between
them, a village's own items (村规民约), and the catalog's YAML import and export.

The same services as the API's rule views (points.catalogs): an edit is a new version, what
was recorded under an older version keeps it, and a refused item or file names each item and
field (shown here as a table)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flask import g, redirect, render_template, request, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload
from werkzeug.wrappers import Response

import rules
from points import catalogs
from points.errors import Invalid
from points.models import Claim, RuleCatalog, RuleItem, Township, User, Village
from points.scope import CADRE, COUNTY, Actor, authorize, get_visible, visible
from rules.catalog import CLASS_NAMES, KIND_NAMES

from ..downloads import download
from ..errors import APIError
from ..extensions import db
from . import bp, forms, menu_item, session

# Reading a catalog needs no action (villagers read it too), but this page is where rules are
# written: a township's admins write its catalog, a village's cadres their own items.
ACTION = "village_items.edit"
menu_item("console.rules_index", "积分细则", ACTION)

# The item's fields as the form and the history name them, in the catalog's order.
FIELD_LABELS = {
    "code": "编码",
    "name": "名称",
    "category": "分类",
    "class": "类别",
    "points": "分值",
    "kind": "计分方式",
    "unit": "单位",
    "max_units": "单次最多单位数",
    "hourly": "按签到时长计分",
    "applies_to": "计分对象",
    "submit_by": "申报方式",
    "requires_review": "需要审核",
    "evidence_required": "需要上传照片",
    "notice_days": "公示天数",
    "caps": "上限",
    "effective_from": "生效日期",
    "effective_to": "失效日期",
    "veto": "一票否决",
    "black_list": "一次即上黑榜",
    "description": "说明",
}
APPLIES_NAMES = {"member": "按人", "household": "按户"}
SUBMITTER_NAMES = {"villager": "村民申报", "cadre": "干部录入", "checkin": "扫码签到"}
PERIOD_NAMES = {"day": "每日", "week": "每周", "month": "每月", "quarter": "每季度", "year": "每年"}

# The form's fields: texts and numbers (blank clears an optional one), and check boxes.
TEXT_FIELDS = ("name", "category", "class", "kind", "unit", "applies_to", "description")
NUMBER_FIELDS = ("points", "max_units", "notice_days")
DAY_FIELDS = ("effective_from", "effective_to")
FLAG_FIELDS = ("requires_review", "evidence_required", "black_list")
_INTEGER = re.compile(r"-?[0-9]{1,9}")


def _number(text: str) -> int | str:
    """A typed number as an integer; anything else as typed, so the catalog rules name it."""
    text = text.strip()
    return int(text) if _INTEGER.fullmatch(text) else text


def item_data(form: Any, *, with_code: bool) -> dict[str, Any]:
    """The item form as the API's item body: blank optional fields are None (cleared)."""
    data: dict[str, Any] = {}
    if with_code:
        data["code"] = form.get("code", "").strip()
    for name in TEXT_FIELDS + DAY_FIELDS:
        # Browsers send a textarea's line breaks as CRLF; the catalog keeps LF.
        data[name] = form.get(name, "").replace("\r\n", "\n").strip() or None
    for name in NUMBER_FIELDS:
        text = form.get(name, "").strip()
        data[name] = _number(text) if text else None
    for name in FLAG_FIELDS:
        data[name] = form.get(name) == "1"
    data["submit_by"] = [s for s in rules.SUBMITTERS if s in form.getlist("submit_by")]
    return data


def shown(key: str, value: Any) -> str:
    """A stored field's value as a cadre reads it."""
    if value is None or value == [] or value == ():
        return "（无）"
    if isinstance(value, bool):
        return "是" if value else "否"
    if key == "class":
        return CLASS_NAMES.get(value, value)
    if key == "kind":
        return KIND_NAMES.get(value, value)
    if key == "applies_to":
        return APPLIES_NAMES.get(value, value)
    if key == "submit_by":
        return "、".join(SUBMITTER_NAMES.get(s, s) for s in value)
    if key == "caps":
        parts = []
        for cap in value:
            limits = []
            if cap.get("max_count") is not None:
                limits.append(f"最多 {cap['max_count']} 次")
            if cap.get("max_points") is not None:
                limits.append(f"最多 {cap['max_points']} 分")
            parts.append(PERIOD_NAMES.get(cap.get("period"), cap.get("period")) + "".join(limits))
        return "；".join(parts)
    if key == "veto":
        wipe = "清空可用积分" if value.get("wipe_available", True) else "不清空积分"
        return f"{wipe}，{value.get('bar_periods', 0)} 个月不得评优"
    return str(value)


@dataclass(frozen=True)
class Change:
    field: str
    label: str
    before: str
    after: str


def changes_between(older: dict[str, Any] | None, newer: dict[str, Any]) -> list[Change]:
    """What a version changed from the one before it, field by field (all its fields for
    the first version), from the stored versions' data."""
    before = older or {}
    keys = [k for k in FIELD_LABELS if k in before or k in newer]
    keys += sorted((set(before) | set(newer)) - set(keys))
    return [
        Change(key, FIELD_LABELS.get(key, key), shown(key, before.get(key)), shown(key, newer[key]))
        if key in newer
        else Change(key, FIELD_LABELS.get(key, key), shown(key, before.get(key)), "（无）")
        for key in keys
        if before.get(key) != newer.get(key)
    ]


def _may_write(actor: Actor, catalog: RuleCatalog, township_policy: rules.Policy | None) -> bool:
    """Whether to offer the forms that write (the service decides again on every write)."""
    if catalog.village_id is None:
        return actor.can("catalog.edit")
    if actor.role == CADRE:
        return township_policy is not None and township_policy.allow_village_items
    return actor.can("village_items.edit")


def _township_policy(catalog: RuleCatalog, shown_catalogs: list[RuleCatalog]) -> rules.Policy:
    if catalog.village_id is None:
        return catalogs.catalog_policy(db.session, catalog)[0]
    village = db.session.get(Village, catalog.village_id)
    assert village is not None
    parent = next((c for c in shown_catalogs if c.township_id == village.township_id), None)
    if parent is None:
        parent = catalogs.township_catalog(db.session, village.township_id)
    if parent is None or parent.policy is None:
        return rules.Policy(allow_village_items=False)
    return catalogs.catalog_policy(db.session, parent)[0]


def _catalog_label(catalog: RuleCatalog, villages: dict[int, str]) -> str:
    if catalog.village_id is not None:
        return f"{villages.get(catalog.village_id, '')} 自设细则（村规民约）"
    return catalog.name


def index_page(catalog_id: int | None = None, **_: Any) -> str:
    """The catalog page; `catalog_id` the one a refused form was posted to."""
    actor = session.load()
    authorize(actor, ACTION)
    all_catalogs = list(db.session.scalars(visible(actor, RuleCatalog).order_by(RuleCatalog.id)))
    villages = dict(
        db.session.execute(
            visible(actor, Village).with_only_columns(Village.id, Village.name).order_by(Village.id)
        ).all()
    )
    wanted = catalog_id or request.args.get("catalog", type=int)
    catalog = next((c for c in all_catalogs if c.id == wanted), None)
    if catalog is None and all_catalogs:
        township_id = actor.township_id
        catalog = next(
            (c for c in all_catalogs if c.township_id is not None and c.township_id == township_id),
            all_catalogs[0],
        )
    show_retired = request.args.get("retired") == "1"
    by_category: list[tuple[str, list[RuleItem]]] = []
    may_write = False
    township_policy = None
    if catalog is not None:
        stmt = (
            select(RuleItem)
            .where(RuleItem.catalog_id == catalog.id)
            .order_by(RuleItem.position, RuleItem.id)
            .options(selectinload(RuleItem.current_version))
        )
        if not show_retired:
            stmt = stmt.where(RuleItem.retired_at.is_(None))
        items = list(db.session.scalars(stmt))
        groups: dict[str, list[RuleItem]] = {c: [] for c in catalog.categories}
        for item in items:
            assert item.current_version is not None
            groups.setdefault(item.current_version.data.get("category", "其他"), []).append(item)
        by_category = [(name, rows) for name, rows in groups.items() if rows]
        township_policy = _township_policy(catalog, all_catalogs)
        may_write = _may_write(actor, catalog, township_policy)
    # A cadre's village without its own items yet: offer to start them, where allowed.
    own_village_id = actor.village_id if actor.role == CADRE else None
    may_start_village = (
        own_village_id is not None
        and not any(c.village_id == own_village_id for c in all_catalogs)
        and bool(catalog and township_policy and township_policy.allow_village_items)
    )
    townships = (
        list(db.session.scalars(visible(actor, Township).order_by(Township.id)))
        if actor.role == COUNTY
        else []
    )
    return render_template(
        "console/rules/index.html",
        catalogs=[(c, _catalog_label(c, villages)) for c in all_catalogs],
        catalog=catalog,
        by_category=by_category,
        show_retired=show_retired,
        may_write=may_write,
        may_import=actor.can("catalog.edit"),
        may_start_village=may_start_village,
        own_village=villages.get(own_village_id) if own_village_id else None,
        # An admin may enter a village's 村规民约 on its behalf: the villages without them.
        admin_villages=[]
        if actor.role == CADRE or not actor.can("village_items.edit")
        else [
            (vid, name)
            for vid, name in villages.items()
            if not any(c.village_id == vid for c in all_catalogs)
        ],
        townships=townships,
        problems=g.get("problems"),
        class_names=CLASS_NAMES,
        kind_names=KIND_NAMES,
        applies_names=APPLIES_NAMES,
        submitter_names=SUBMITTER_NAMES,
        field_labels=FIELD_LABELS,
        done=request.args.get("done"),
    )


@bp.get("/rules")
def rules_index() -> str:
    return index_page()


def _refused_problems(exc: catalogs.CatalogInvalid) -> None:
    # forms.writes keeps only the message; the table of items and fields is kept here.
    g.problems = exc.problems[: catalogs.MAX_PROBLEMS]


@bp.post("/rules/catalogs/<int:catalog_id>/items")
@forms.writes(on_refusal=index_page)
def rules_add_item(catalog_id: int) -> Response:
    actor = session.load()
    try:
        item = catalogs.add_item(
            db.session, actor, catalog_id, item_data(request.form, with_code=True)
        )
    except catalogs.CatalogInvalid as exc:
        _refused_problems(exc)
        raise
    return redirect(url_for("console.rules_item", item_id=item.id, done="added"), code=303)


@bp.post("/rules/village-catalog")
@forms.writes(on_refusal=lambda **_: index_page())
def rules_start_village() -> Response:
    """A village's own items (村规民约) begin with an empty catalog of their own."""
    actor = session.load()
    village_id = request.form.get("village_id", type=int) or actor.village_id
    if village_id is None:
        raise Invalid("请选择村", code="village_required")
    village = get_visible(db.session, actor, Village, village_id)
    catalog = catalogs.create_catalog(
        db.session, actor, f"{village.name}村规民约", village_id=village.id
    )
    db.session.flush()
    return redirect(url_for("console.rules_index", catalog=catalog.id), code=303)


def item_page(item_id: int, **_: Any) -> str:
    actor = session.load()
    authorize(actor, ACTION)
    item = get_visible(db.session, actor, RuleItem, item_id)
    catalog = item.catalog
    versions = list(db.session.scalars(catalogs.versions_of(item.id)))
    history = [
        (
            version,
            changes_between(versions[n + 1].data if n + 1 < len(versions) else None, version.data),
        )
        for n, version in enumerate(versions)
    ]
    authors = dict(
        db.session.execute(
            select(User.id, func.coalesce(User.name, User.username)).where(
                User.id.in_({v.created_by for v in versions if v.created_by is not None})
            )
        ).all()
    )
    # How many claims each version decided, within the reader's scope: an edit leaves them.
    recorded = dict(
        db.session.execute(
            visible(actor, Claim)
            .with_only_columns(Claim.rule_item_version_id, func.count())
            .where(Claim.rule_item_id == item.id)
            .group_by(Claim.rule_item_version_id)
        ).all()
    )
    township_policy = _township_policy(catalog, [])
    return render_template(
        "console/rules/item.html",
        item=item,
        catalog=catalog,
        current=item.current_version,
        history=history,
        authors=authors,
        recorded=recorded,
        may_write=_may_write(actor, catalog, township_policy) and item.retired_at is None,
        problems=g.get("problems"),
        class_names=CLASS_NAMES,
        kind_names=KIND_NAMES,
        applies_names=APPLIES_NAMES,
        submitter_names=SUBMITTER_NAMES,
        field_labels=FIELD_LABELS,
        done=request.args.get("done"),
    )


@bp.get("/rules/items/<int:item_id>")
def rules_item(item_id: int) -> str:
    return item_page(item_id)


@bp.post("/rules/items/<int:item_id>")
@forms.writes(on_refusal=item_page)
def rules_edit_item(item_id: int) -> Response:
    """An edit is a new version (none when nothing changed), as PATCH /rule-items/<id>."""
    actor = session.load()
    try:
        catalogs.edit_item(db.session, actor, item_id, item_data(request.form, with_code=False))
    except catalogs.CatalogInvalid as exc:
        _refused_problems(exc)
        raise
    return redirect(url_for("console.rules_item", item_id=item_id, done="edited"), code=303)


@bp.post("/rules/items/<int:item_id>/retire")
@forms.writes(on_refusal=item_page)
def rules_retire_item(item_id: int) -> Response:
    actor = session.load()
    item = catalogs.retire_item(db.session, actor, item_id)
    return redirect(
        url_for("console.rules_index", catalog=item.catalog_id, done="retired"), code=303
    )


@bp.post("/rules/import")
@forms.writes(on_refusal=lambda **_: index_page())
def rules_import() -> Response:
    """The township's catalog from a YAML file (or pasted text), as POST /rule-catalogs/import:
    a file with any problem changes nothing and names each item and field."""
    actor = session.load()
    upload = request.files.get("file")
    data: str | bytes = upload.read() if upload is not None and upload.filename else b""
    if not data:
        data = request.form.get("yaml", "")
    if not data:
        raise APIError(400, "file_required", "请上传积分细则文件（YAML）或粘贴其内容")
    township_id = request.form.get("township_id", type=int)
    try:
        result = catalogs.import_catalog(
            db.session, actor, township_id, data, replace=request.form.get("replace") == "1"
        )
    except catalogs.CatalogInvalid as exc:
        _refused_problems(exc)
        raise
    return redirect(
        url_for(
            "console.rules_index",
            catalog=result.catalog.id,
            done=f"imported:{result.created}:{result.revised}:{result.unchanged}:{result.retired}",
        ),
        code=303,
    )


@bp.get("/rules/catalogs/<int:catalog_id>/export")
def rules_export(catalog_id: int) -> Response:
    """The catalog as YAML, as GET /rule-catalogs/<id>/export."""
    actor = session.load()
    authorize(actor, ACTION)
    text = catalogs.export_yaml(db.session, catalog_id, actor)
    return download(text.encode("utf-8"), "text/yaml", f"rule-catalog-{catalog_id}.yaml")
