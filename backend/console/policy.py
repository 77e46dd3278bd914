"""积分政策: the township catalog's policy as a form, each field explained, saved by the same
service as PATCH /rule-catalogs/<id>/policy."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flask import g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

import rules
from points import catalogs
from points.errors import Invalid, NotFound
from points.models import RuleCatalog, Township
from points.scope import COUNTY, authorize, get_visible, visible

from ..extensions import db
from . import bp, forms, menu_item, session

ACTION = "catalog.edit"
menu_item("console.policy", "积分政策", ACTION)


@dataclass(frozen=True)
class PolicyField:
    """One field of `rules.Policy` on the form: how it is typed and what it means."""

    name: str
    label: str
    kind: str  # number, optional_number, decimal, levels, cycle, flag
    explanation: str


FIELDS = (
    PolicyField(
        "notice_days",
        "公示天数",
        "number",
        "审核通过的加分在村务公示栏公示的天数，公示期内村民可以提出异议，期满无异议才入账。",
    ),
    PolicyField(
        "two_cadre_threshold",
        "双人审核门槛（分）",
        "number",
        "单笔加分、扣分或冲正达到这个分数时，须由两名不同的村干部分别审核通过。",
    ),
    PolicyField(
        "monthly_budget",
        "每村每月发放额度（分）",
        "optional_number",
        "每个村每月最多发放的加分；超出部分由乡镇管理员在“额度审批”中审批。留空表示不限额。",
    ),
    PolicyField(
        "qualification_line",
        "合格线（分）",
        "number",
        "家庭积分低于合格线时不能兑换商品，也不能评星级文明户。",
    ),
    PolicyField(
        "star_levels",
        "星级分数线",
        "levels",
        "达到几条分数线就评几星（从低到高，用逗号分隔，如 60,70,80,90）。",
    ),
    PolicyField(
        "exchange_rate",
        "兑换比例（元/分）",
        "decimal",
        "每 1 分在积分超市折合多少元，用于与超市结算和统计积分的价值，如 1 或 0.5。",
    ),
    PolicyField(
        "min_redemption_points",
        "最低兑换分数",
        "number",
        "一次兑换至少要用的积分；0 表示不限。",
    ),
    PolicyField(
        "reset_cycle",
        "清零周期",
        "cycle",
        "可用积分定期清零的周期：不清零、每季度或每年。清零只影响可兑换的积分，不改变排名的历史。",
    ),
    PolicyField(
        "black_list_min_deduction",
        "上黑榜的扣分门槛（分）",
        "number",
        "一个周期内未撤销的扣分合计达到这个分数，家庭就会上黑榜（一票否决和标为“扣一次即上黑榜”的条目不受此限）。",
    ),
    PolicyField(
        "allow_village_items",
        "允许各村自设细则",
        "flag",
        "勾选后，各村干部可以在本乡镇细则之外，按村民大会通过的村规民约增设本村条目。",
    ),
    PolicyField(
        "village_items_skip_review",
        "各村自设条目可免审核",
        "flag",
        "勾选后，各村自设条目可以设为无需审核；不勾选则一律须村干部审核。公示天数不少于乡镇规定。",
    ),
)
RESET_NAMES = {"none": "不清零", "quarterly": "每季度清零", "yearly": "每年清零"}
_INTEGER = re.compile(r"[0-9]{1,9}")


def _number(text: str) -> int | str:
    """A typed number as an integer; anything else as typed, so the catalog rules name it."""
    text = text.strip()
    return int(text) if _INTEGER.fullmatch(text) else text


def policy_changes(form: Any) -> dict[str, Any]:
    """The form as the API's policy body."""
    changes: dict[str, Any] = {}
    for f in FIELDS:
        text = form.get(f.name, "").strip()
        if f.kind == "flag":
            changes[f.name] = form.get(f.name) == "1"
        elif f.kind == "optional_number":
            changes[f.name] = _number(text) if text else None
        elif f.kind == "levels":
            parts = [p for p in re.split(r"[,，、\s]+", text) if p]
            changes[f.name] = [_number(p) for p in parts]
        elif f.kind == "decimal":
            changes[f.name] = text
        elif f.kind == "cycle":
            changes[f.name] = text
        else:
            changes[f.name] = _number(text)
    return changes


def _form_value(policy: rules.Policy, f: PolicyField) -> Any:
    value = getattr(policy, f.name)
    if f.kind == "levels":
        return ",".join(str(level) for level in value)
    if f.kind == "decimal":
        return format(value, "f")
    if value is None:
        return ""
    return value


def _catalog() -> RuleCatalog | None:
    """The township catalog shown: the admin's township's, or the one a county admin chose."""
    actor = session.load()
    township_id = request.values.get("township", type=int) or actor.township_id
    if township_id is None:
        return None
    township = get_visible(db.session, actor, Township, township_id)
    return catalogs.township_catalog(db.session, township.id)


def policy_page(**_: Any) -> str:
    actor = session.load()
    authorize(actor, ACTION)
    catalog = _catalog()
    policy = catalogs.catalog_policy(db.session, catalog)[0] if catalog else None
    values: dict[str, Any] = {}
    if policy is not None:
        for f in FIELDS:
            if request.method != "POST":  # a refused form keeps what was typed
                values[f.name] = _form_value(policy, f)
            elif f.kind == "flag":
                values[f.name] = request.form.get(f.name) == "1"
            else:
                values[f.name] = request.form.get(f.name, "")
    return render_template(
        "console/policy/index.html",
        catalog=catalog,
        fields=FIELDS,
        values=values,
        reset_names=RESET_NAMES,
        problems=g.get("problems"),
        townships=list(db.session.scalars(visible(actor, Township).order_by(Township.id)))
        if actor.role == COUNTY
        else [],
        done=request.args.get("done"),
    )


@bp.get("/policy")
def policy() -> str:
    return policy_page()


@bp.post("/policy")
@forms.writes(on_refusal=policy_page)
def policy_save() -> Response:
    actor = session.load()
    catalog_id = request.form.get("catalog_id", type=int)
    if catalog_id is None:
        raise NotFound("本乡镇还没有积分细则，请先在积分细则中导入")
    catalog = get_visible(db.session, actor, RuleCatalog, catalog_id)
    if catalog.village_id is not None:
        raise Invalid("这里只设置乡镇的积分政策", code="validation_error")
    try:
        catalogs.set_policy(db.session, actor, catalog.id, policy_changes(request.form))
    except catalogs.CatalogInvalid as exc:
        g.problems = exc.problems
        raise
    return redirect(url_for("console.policy", township=catalog.township_id, done=1), code=303)
