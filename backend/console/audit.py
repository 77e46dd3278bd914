"""操作日志: staff writes in the township, newest first, filtered by village, person, kind of
change and date range, as GET /audit reads them (phone numbers masked as there).

Indexes: audit_log has (village_id, at), at, actor_id and (township_id, id); the
kind of change (`action`) has none, so that filter reads the township's entries in the other
filters' range. A list past 10,000 lines shows "10000+" and pages no further (`paginate`)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from flask import render_template, request
from sqlalchemy import select

from points.errors import Invalid
from points.models import AuditEntry, User, Village
from points.scope import VILLAGER, authorize, visible

from ..clock import village_tz
from ..extensions import db
from ..openapi import paginate
from ..present import audit_entry
from . import bp, menu_item, session

ACTION = "audit.read"
menu_item("console.audit", "操作日志", ACTION)
PER_PAGE = 50

# The kinds of change, as the office names them (an action not listed shows its own name).
ACTION_LABELS = {
    "activity.cancel": "取消活动",
    "activity.create": "新建活动",
    "activity.display_link": "活动大屏链接",
    "binding_token.create": "生成绑定码",
    "board.close": "红黑榜结榜",
    "board_settings.update": "红黑榜设置",
    "checkin.checkout": "签退",
    "checkin.proxy": "代签到",
    "claim.approve": "审核通过",
    "claim.award": "干部录入积分",
    "claim.reject": "驳回申报",
    "claim.withdraw": "撤回申报",
    "household.board_privacy": "榜单隐私",
    "ledger.reverse": "冲正",
    "ledger.reverse_confirm": "确认冲正",
    "ledger.reverse_request": "申请冲正",
    "opening_balance.import": "导入期初积分",
    "plate.renew": "更换门牌码",
    "redemption.cancel": "取消兑换",
    "reward.create": "新增商品",
    "reward.image": "商品图片",
    "reward.update": "修改商品",
    "roster.import": "导入花名册",
    "rule_catalog.create": "新建细则",
    "rule_catalog.import": "导入细则",
    "rule_catalog.policy": "修改积分政策",
    "rule_item.create": "新增细则条目",
    "rule_item.edit": "修改细则条目",
    "rule_item.retire": "停用细则条目",
    "shop.create": "新建超市",
    "township.create": "新建乡镇",
    "user.create": "新建账号",
    "user.update": "修改账号",
    "veto.withdraw": "撤销一票否决",
    "village.create": "新建村",
    "villager.card_reissue": "补办积分卡",
}


def _day(name: str) -> date | None:
    text = request.args.get(name, "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Invalid("日期格式应为 2026-01-31", code="validation_error") from None


def _start_of(day: date) -> datetime:
    """The village's midnight starting `day`: the dates a clerk types are village dates."""
    return datetime.combine(day, time(), tzinfo=village_tz())


def changed(before: Any, after: Any) -> list[tuple[str, Any, Any]]:
    """The keys whose values differ, for a line of the log (all of `after` when new)."""
    if not isinstance(after, dict):
        return []
    old = before if isinstance(before, dict) else {}
    return [(k, old.get(k), v) for k, v in after.items() if old.get(k) != v][:12]


@bp.get("/audit")
def audit() -> str:
    actor = session.load()
    authorize(actor, ACTION)
    args = request.args
    stmt = visible(actor, AuditEntry).order_by(AuditEntry.id.desc())
    village_id = args.get("village", type=int)
    person_id = args.get("person", type=int)
    kind = args.get("action", "").strip()
    since, until = _day("since"), _day("until")
    if village_id:
        stmt = stmt.where(AuditEntry.village_id == village_id)
    if person_id:
        stmt = stmt.where(AuditEntry.actor_id == person_id)
    if kind:
        stmt = stmt.where(AuditEntry.action == kind)
    if since:
        stmt = stmt.where(AuditEntry.at >= _start_of(since))
    if until:
        stmt = stmt.where(AuditEntry.at < _start_of(until + timedelta(days=1)))
    page_number = max(args.get("page", 1, type=int), 1)
    # Newest first by id: a page's ids come first (from an index covering the filter and the
    # id where there is one), then only its own 50 rows, not every line it skips.
    page = paginate(db.session, stmt, page_number, PER_PAGE, key=AuditEntry.id)
    entries = [audit_entry(entry, actor) for entry in page["items"]]
    villages = dict(
        db.session.execute(
            visible(actor, Village).with_only_columns(Village.id, Village.name).order_by(Village.id)
        ).all()
    )
    staff = db.session.execute(
        visible(actor, User)
        .with_only_columns(User.id, User.name, User.username, User.role)
        .where(User.role != VILLAGER)
        .order_by(User.id)
    ).all()
    names = {u.id: u.name or u.username for u in staff}
    missing = {e.actor_id for e in page["items"] if e.actor_id and e.actor_id not in names}
    if missing:  # e.g. a county admin's entry in the township's log
        names.update(
            {
                uid: name or username
                for uid, name, username in db.session.execute(
                    select(User.id, User.name, User.username).where(User.id.in_(missing))
                )
            }
        )
    # Only the filters: the page's links are built from them (url_for), and anything else a
    # visitor put in the address (`_external`, `_scheme`) must not shape those links.
    query = {
        k: v
        for k, v in args.items()
        if k in ("village", "person", "action", "since", "until") and v
    }
    return render_template(
        "console/audit/index.html",
        entries=entries,
        page=page,
        pages=max(1, -(-page["total"] // PER_PAGE)),
        villages=villages,
        staff=staff,
        names=names,
        action_labels=ACTION_LABELS,
        changed=changed,
        query=query,
    )
