"""审核: the review queue of claims (申报) by status, and one claim with what its reviewer
decides: approve, reject, withdraw (撤回), and the objections (异议) raised in its notice.

Thin over points.claims, as the JSON API (backend/api/claims.py) is: the same scope
(`visible`, `get_visible`) and the same services. A page offers only what the rules let this
reviewer do now (not for their own household, not a second approval by the same cadre, only
what the claim's status admits); whatever the service still refuses is shown in Chinese
beside the forms."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import redirect, render_template, request, url_for
from marshmallow import Schema, ValidationError
from sqlalchemy import select
from werkzeug.wrappers import Response

from points import claims as service
from points import uploads as photos
from points.counting import capped_counts
from points.errors import NotFound
from points.models import (
    Claim,
    ClaimApproval,
    Household,
    Objection,
    RuleItemVersion,
    User,
    Village,
    Villager,
)
from points.scope import ADMINS, Actor, authorize, get_visible, is_own_household, visible
from rules.claim_status import WITHDRAWABLE, ClaimStatus

from ..clock import now, village_tz
from ..downloads import send_photo, upload_dir
from ..errors import APIError, chinese_messages
from ..extensions import db
from ..schemas.claims import ResolveIn
from ..schemas.common import ReasonIn
from . import bp, forms, menu_item, session

menu_item("console.claims", "审核", "claim.review")

# The queue's tabs, in the order a claim passes through them.
STATUS_TABS: tuple[tuple[ClaimStatus, str], ...] = (
    (ClaimStatus.PENDING, "待审核"),
    (ClaimStatus.APPROVED, "待乡镇审批"),
    (ClaimStatus.IN_NOTICE, "公示中"),
    (ClaimStatus.OBJECTED, "有异议"),
    (ClaimStatus.POSTED, "已入账"),
    (ClaimStatus.REJECTED, "已驳回"),
    (ClaimStatus.WITHDRAWN, "已撤回"),
)
STATUS_LABELS = dict(STATUS_TABS)
OBJECTION_LABELS = {"open": "待处理", "upheld": "异议不成立", "overturned": "异议成立"}
SOURCE_LABELS = {"villager": "村民自主申报", "cadre": "村干部录入", "checkin": "活动签到"}
PAGE_SIZE = 30
THUMBNAIL_WIDTH = 320  # one of points.uploads.THUMBNAIL_WIDTHS

# What a form field is called on the page, for a refusal of what was typed into it.
FIELD_LABELS = {"reason": "原因", "note": "处理说明", "outcome": "处理结果"}


@bp.app_template_filter("claim_status")
def claim_status(status: str) -> str:
    return STATUS_LABELS.get(status, status)  # type: ignore[call-overload]


# ---- the queue ------------------------------------------------------------------------------


@bp.get("/claims")
def claims() -> str:
    actor = session.load()
    authorize(actor, "claim.review")
    status = request.args.get("status", ClaimStatus.PENDING)
    if status not in STATUS_LABELS:
        status = ClaimStatus.PENDING
    before = request.args.get("before", type=int)
    mine = visible(actor, Claim)
    # Each tab's count stops at COUNT_CAP ("10000+"): a county's posted claims are a
    # million, and counting them all on every visit to the queue read the whole table.
    counts = capped_counts(
        db.session, {str(value): mine.where(Claim.status == value) for value, _ in STATUS_TABS}
    )
    # Newest first, a page at a time from the last id shown (keyset: as fast on page 50).
    stmt = (
        mine.where(Claim.status == status)
        .join(Household, Household.id == Claim.household_id)
        .join(Village, Village.id == Claim.village_id)
        .join(RuleItemVersion, RuleItemVersion.id == Claim.rule_item_version_id)
        .outerjoin(Villager, Villager.id == Claim.member_id)
        .add_columns(Household.name, Villager.name, RuleItemVersion.data, Village.name)
        .order_by(Claim.id.desc())
        .limit(PAGE_SIZE + 1)
    )
    if before:
        stmt = stmt.where(Claim.id < before)
    rows = db.session.execute(stmt).all()
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return render_template(
        "console/claims/queue.html",
        tabs=STATUS_TABS,
        status=status,
        counts=counts,
        rows=[
            QueueRow(claim, household, member, (data or {}).get("name"), village)
            for claim, household, member, data, village in rows
        ],
        next_before=rows[-1][0].id if more else None,
        first_page=before is None,
        many_villages=actor.role in ADMINS,
    )


@dataclass(frozen=True)
class QueueRow:
    claim: Claim
    household_name: str
    member_name: str | None
    item_name: str | None
    village_name: str


# ---- one claim ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Approval:
    who: str
    at: datetime


@dataclass(frozen=True)
class Offer:
    """What this reviewer may do to the claim now, as the services would decide it."""

    approve: bool
    reject: bool
    withdraw: bool
    resolve: bool
    own_household: bool
    approved_by_me: bool


def _offer(actor: Actor, claim: Claim, approvers: set[int]) -> Offer:
    own = is_own_household(db.session, actor, claim.household_id)
    mine = actor.user_id in approvers
    status = claim.status
    # A pending claim takes one approval from each reviewer; one the village approved past
    # its monthly budget (`approved`) waits for the township (points.claims.approve).
    approvable = (status == ClaimStatus.PENDING and not mine) or (
        status == ClaimStatus.APPROVED and actor.role in ADMINS
    )
    review = actor.can("claim.review") and not own
    return Offer(
        approve=review and approvable,
        reject=review and status in (ClaimStatus.PENDING, ClaimStatus.APPROVED),
        withdraw=actor.can("claim.withdraw")
        and not own
        and status in WITHDRAWABLE
        and not service.withdrawal_needs_township(db.session, actor, claim),
        resolve=review and status == ClaimStatus.OBJECTED,
        own_household=own,
        approved_by_me=mine,
    )


def _names(user_ids: set[int | None]) -> dict[int, str]:
    ids = {i for i in user_ids if i is not None}
    if not ids:
        return {}
    # A villager's account is named by its roster entry when it carries no name of its own.
    return {
        user_id: name or member or username or f"用户 {user_id}"
        for user_id, name, member, username in db.session.execute(
            select(User.id, User.name, Villager.name, User.username)
            .outerjoin(Villager, Villager.id == User.villager_id)
            .where(User.id.in_(ids))
        )
    }


def _claim_page(claim_id: int, **_: Any) -> str:
    actor = session.load()
    claim = get_visible(db.session, actor, Claim, claim_id)
    authorize(actor, "claim.review")
    view = service.claim_view(db.session, claim)
    approvals = db.session.execute(
        select(ClaimApproval.user_id, ClaimApproval.created_at)
        .where(ClaimApproval.claim_id == claim.id)
        .order_by(ClaimApproval.id)
    ).all()
    names = _names(
        {
            claim.submitted_by,
            claim.rejected_by,
            claim.withdrawn_by,
            *(user_id for user_id, _ in approvals),
            *(o.resolved_by for o in view.objections),
        }
    )
    village = db.session.get(Village, claim.village_id)
    return render_template(
        "console/claims/claim.html",
        view=view,
        claim=claim,
        village_name=village.name if village else "",
        approvals=[Approval(names.get(user_id, ""), at) for user_id, at in approvals],
        names=names,
        offer=_offer(actor, claim, {user_id for user_id, _ in approvals}),
        photos=[upload_id for upload_id in view.evidence if isinstance(upload_id, int)],
        thumbnail_width=THUMBNAIL_WIDTH,
        objection_labels=OBJECTION_LABELS,
        source_labels=SOURCE_LABELS,
    )


@bp.get("/claims/<int:claim_id>")
def claim(claim_id: int) -> str:
    return _claim_page(claim_id)


def _form(schema: Schema, fields: tuple[str, ...]) -> dict[str, Any]:
    """The form's fields, checked by the schema the JSON API checks the same request with
    (text trimmed: a reason of spaces is no reason)."""
    data = {name: request.form[name].strip() for name in fields if name in request.form}
    data = {name: value for name, value in data.items() if value or name == "reason"}
    try:
        loaded: dict[str, Any] = schema.load(data)
    except ValidationError as exc:
        problems = chinese_messages(exc.messages)
        said = "；".join(
            f"{FIELD_LABELS.get(name, name)}：{'、'.join(messages)}"
            for name, messages in problems.items()
        )
        raise APIError(422, "validation_error", f"请检查填写的内容：{said}") from exc
    return loaded


def _back(claim_id: int) -> Response:
    return redirect(url_for("console.claim", claim_id=claim_id), code=303)


@bp.post("/claims/<int:claim_id>/approve")
@forms.writes(on_refusal=_claim_page)
def claim_approve(claim_id: int) -> Response:
    service.approve(db.session, session.load(), claim_id, village_tz(), now())
    return _back(claim_id)


@bp.post("/claims/<int:claim_id>/reject")
@forms.writes(on_refusal=_claim_page)
def claim_reject(claim_id: int) -> Response:
    body = _form(ReasonIn(), ("reason",))
    service.reject(db.session, session.load(), claim_id, body["reason"], now())
    return _back(claim_id)


@bp.post("/claims/<int:claim_id>/withdraw")
@forms.writes(on_refusal=_claim_page)
def claim_withdraw(claim_id: int) -> Response:
    body = _form(ReasonIn(), ("reason",))
    service.withdraw(db.session, session.load(), claim_id, body["reason"], now(), village_tz())
    return _back(claim_id)


@bp.post("/claims/<int:claim_id>/objections/<int:objection_id>/resolve")
@forms.writes(on_refusal=_claim_page)
def objection_resolve(claim_id: int, objection_id: int) -> Response:
    actor = session.load()
    # The objection of this page's claim: a form for another claim's finds nothing here.
    if get_visible(db.session, actor, Objection, objection_id).claim_id != claim_id:
        raise NotFound()
    body = _form(ResolveIn(), ("outcome", "note"))
    service.resolve(
        db.session,
        actor,
        objection_id,
        body["outcome"],
        body.get("note"),
        now(),
        village_tz(),
    )
    return _back(claim_id)


# ---- the proof photos -----------------------------------------------------------------------


@bp.get("/uploads/<int:upload_id>")
def upload(upload_id: int) -> Response:
    """A proof photo (or, with `w`, its smaller copy) for whoever may see it, by the console's
    login, as GET /api/v1/uploads/<id> answers the bearer token (points.uploads.open_photo)."""
    width = request.args.get("w", type=int)
    if "w" in request.args and width not in photos.THUMBNAIL_WIDTHS:
        raise NotFound()
    found, path = photos.open_photo(db.session, session.load(), upload_id, upload_dir())
    response = send_photo(found, path, width, credential="Cookie")
    # The console runs on shared office PCs: a villager's proof photo must not stay in the
    # browser's cache after the cadre logs out.
    response.headers["Cache-Control"] = "private, no-store"
    return response
