"""Claims, review, public notice (公示) and objections."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from points import claims as service
from points.claims import ClaimView
from points.errors import NotFound
from points.models import Claim, Objection, Village
from points.scope import get_visible, visible

from ..caller import current_actor
from ..clock import now, village_tz
from ..extensions import db
from ..idempotency import DOC as IDEMPOTENT
from ..idempotency import idempotent
from ..openapi import PAGE_TOO_DEEP, PageArgs, page_of, paginate, raises, township_parts
from ..schemas.claims import (
    AwardIn,
    ClaimIn,
    ClaimListArgs,
    ClaimOut,
    NoticeOut,
    ObjectionOut,
    ResolveIn,
)
from ..schemas.common import ReasonIn

blp = Blueprint("claims", __name__, description="申报、审核与公示 Claims, review and notice")


@blp.route("/claims", methods=["POST"])
@raises(
    (403, "not_bound"),
    (403, "not_self_reportable"),
    (403, "villager_inactive"),
    (404, "not_found"),
    (404, "rule_item_not_found"),
    (409, "account_busy"),
    (422, "evidence_required"),
    (422, "invalid_evidence"),
    (422, "invalid_units"),
    (422, "no_points"),
)
@blp.doc(**IDEMPOTENT)
@idempotent
@blp.arguments(ClaimIn)
@blp.response(201, ClaimOut)
def submit_claim(body: dict[str, Any]) -> ClaimView:
    """A villager's self-report (自主申报) for their household; the rule engine decides the
    points (caps included) and whether it needs review."""
    claim = service.submit(
        db.session,
        current_actor(),
        rule_item_id=body["rule_item_id"],
        units=body.get("units"),
        note=body.get("note"),
        evidence=body["evidence"],
        tz=village_tz(),
        now=now(),
    )
    return service.claim_view(db.session, claim)


@blp.route("/awards", methods=["POST"])
@raises(
    (403, "not_cadre_item"),
    (403, "self_approval"),
    (403, "villager_inactive"),
    (404, "not_found"),
    (404, "rule_item_not_found"),
    (409, "account_busy"),
    (409, "already_approved"),
    (409, "villager_inactive"),
    (422, "duplicate_target"),
    (422, "evidence_required"),
    (422, "invalid_evidence"),
    (422, "invalid_units"),
    (422, "member_required"),
    (422, "no_points"),
    (422, "note_required"),
)
@blp.doc(**IDEMPOTENT)
@idempotent
@blp.arguments(AwardIn)
@blp.response(201, ClaimOut(many=True))
def award(body: dict[str, Any]) -> list[ClaimView]:
    """A cadre's award or deduction for many villagers or households at once (all or
    nothing). Deductions need a note; items that need a photo need evidence."""
    created = service.award(
        db.session,
        current_actor(),
        rule_item_id=body["rule_item_id"],
        units=body.get("units"),
        note=body.get("note"),
        evidence=body["evidence"],
        targets=body["targets"],
        tz=village_tz(),
        now=now(),
    )
    return service.claim_views(db.session, created)


@blp.route("/claims", methods=["GET"])
@raises(PAGE_TOO_DEEP)
@blp.arguments(ClaimListArgs, location="query")
@blp.response(200, page_of(ClaimOut))
def list_claims(args: dict[str, Any]) -> dict[str, Any]:
    """Claims the caller may see (a villager: their household's; a cadre: their village's)."""
    actor = current_actor()
    stmt = visible(actor, Claim).order_by(Claim.id.desc())
    for name in ("village_id", "household_id", "status"):
        if name in args:
            stmt = stmt.where(getattr(Claim, name) == args[name])
    narrowed = bool({"village_id", "household_id"} & args.keys())
    page = paginate(
        db.session,
        stmt,
        args["page"],
        args["per_page"],
        key=Claim.id,
        parts=township_parts(db.session, actor, Claim.village_id, narrowed),
    )
    page["items"] = service.claim_views(db.session, list(page["items"]))
    return page


@blp.route("/claims/<int:claim_id>", methods=["GET"])
@blp.response(200, ClaimOut)
def get_claim(claim_id: int) -> ClaimView:
    return service.claim_view(db.session, get_visible(db.session, current_actor(), Claim, claim_id))


@blp.route("/claims/<int:claim_id>/approve", methods=["POST"])
@raises(
    (403, "needs_township_approval"),
    (403, "self_approval"),
    (403, "villager_inactive"),
    (409, "account_busy"),
    (409, "already_approved"),
    (409, "claim_not_pending"),
)
@blp.doc(**IDEMPOTENT)
@idempotent
@blp.response(200, ClaimOut)
def approve(claim_id: int) -> ClaimView:
    """Approve (审核通过). Not for one's own household; at or above the two-cadre threshold a
    second, different cadre must approve; past the monthly budget the township approves."""
    claim = service.approve(db.session, current_actor(), claim_id, village_tz(), now())
    return service.claim_view(db.session, claim)


@blp.route("/claims/<int:claim_id>/reject", methods=["POST"])
@raises((403, "self_approval"), (403, "villager_inactive"), (409, "claim_not_pending"))
@blp.doc(**IDEMPOTENT)
@idempotent
@blp.arguments(ReasonIn)
@blp.response(200, ClaimOut)
def reject(body: dict[str, Any], claim_id: int) -> ClaimView:
    """Reject with a reason the villager will read."""
    claim = service.reject(db.session, current_actor(), claim_id, body["reason"], now())
    return service.claim_view(db.session, claim)


@blp.route("/claims/<int:claim_id>/veto-withdrawal", methods=["POST"])
@raises(
    (403, "self_approval"),
    (403, "villager_inactive"),
    (409, "account_busy"),
    (409, "already_reversed"),
    (409, "not_posted_veto"),
    (409, "not_reversible"),
    (409, "veto_withdrawn"),
)
@blp.doc(**IDEMPOTENT)
@idempotent
@blp.arguments(ReasonIn)
@blp.response(200, ClaimOut)
def withdraw_veto(body: dict[str, Any], claim_id: int) -> ClaimView:
    """A township or county admin withdraws a posted veto (撤销一票否决) with a reason: the
    points it wiped are given back by entries reversing its own, its bar from boards and
    honours ends, and the next board notes it (correction kind `veto_withdrawal`). Once
    (409 veto_withdrawn); only a posted veto (409 not_posted_veto); cadres 403."""
    withdrawal = service.withdraw_veto(
        db.session, current_actor(), claim_id, body["reason"], now(), village_tz()
    )
    return service.claim_view(db.session, db.session.get_one(Claim, withdrawal.claim_id))


@blp.route("/claims/<int:claim_id>/withdraw", methods=["POST"])
@raises(
    (403, "needs_township_withdrawal"),
    (403, "self_approval"),
    (403, "villager_inactive"),
    (409, "claim_not_withdrawable"),
)
@blp.doc(**IDEMPOTENT)
@idempotent
@blp.arguments(ReasonIn)
@blp.response(200, ClaimOut)
def withdraw(body: dict[str, Any], claim_id: int) -> ClaimView:
    """Withdraw (撤回) a claim that has not posted (pending, approved, in notice or objected),
    e.g. a mistake found during 公示; the household reads the reason. Staff of the village,
    not for their own household (403 self_approval). A veto, or a deduction at or above the
    two-cadre threshold, only by a township or county admin (403 needs_township_withdrawal):
    two reviewers imposed it. Posted points are corrected by a reversal instead."""
    claim = service.withdraw(
        db.session, current_actor(), claim_id, body["reason"], now(), village_tz()
    )
    return service.claim_view(db.session, claim)


@blp.route("/villages/<int:village_id>/notices", methods=["GET"])
@raises(PAGE_TOO_DEEP)
@blp.arguments(PageArgs, location="query")
@blp.response(200, page_of(NoticeOut))
def notices(args: dict[str, Any], village_id: int) -> dict[str, Any]:
    """Claims in public notice (公示) now, for everyone of the village to see, the ones
    ending first at the top; a claim under objection stays listed (status `objected`) until
    a cadre decides. `can_object` says whether the caller may object to it now."""
    actor = current_actor()
    village = get_visible(db.session, actor, Village, village_id)
    page = paginate(
        db.session, service.notices_statement(village.id), args["page"], args["per_page"]
    )
    page["items"] = service.notice_views(
        db.session, actor, list(page["items"]), now(), village_tz()
    )
    return page


@blp.route("/notices/<int:claim_id>", methods=["GET"])
@blp.response(200, NoticeOut)
def notice(claim_id: int) -> dict[str, Any]:
    """One claim of a village's notice, as the list shows it, for whoever may read that
    list; 404 once it left the notice."""
    actor = current_actor()
    claim = db.session.get(Claim, claim_id)
    if claim is None or claim.status not in service.IN_NOTICE:
        raise NotFound()
    get_visible(db.session, actor, Village, claim.village_id)
    return service.notice_views(db.session, actor, [claim], now(), village_tz())[0]


@blp.route("/claims/<int:claim_id>/objections", methods=["POST"])
@raises(
    (403, "own_claim"),
    (403, "villager_inactive"),
    (403, "wrong_village"),
    (409, "already_objected"),
    (409, "not_in_notice"),
)
@blp.doc(**IDEMPOTENT)
@idempotent
@blp.arguments(ReasonIn)
@blp.response(201, ObjectionOut)
def object_to(body: dict[str, Any], claim_id: int) -> Objection:
    """A villager of the same village objects during notice; a cadre then decides. Several
    villagers may object to one claim, each once (409 `already_objected`), also while it is
    under review after another's objection, until its notice ends (409 `not_in_notice`, also
    for a claim not in notice); not to their own household's (403 `own_claim`)."""
    return service.object_to(db.session, current_actor(), claim_id, body["reason"], now())


@blp.route("/objections/<int:objection_id>/resolve", methods=["POST"])
@raises((403, "self_approval"), (403, "villager_inactive"), (409, "objection_resolved"))
@blp.doc(**IDEMPOTENT)
@idempotent
@blp.arguments(ResolveIn)
@blp.response(200, ObjectionOut)
def resolve(body: dict[str, Any], objection_id: int) -> Objection:
    """Uphold (the claim posts at notice end, once every objection to it is decided) or
    overturn (the claim is rejected, and every open objection to it is decided with it)."""
    return service.resolve(
        db.session,
        current_actor(),
        objection_id,
        body["outcome"],
        body.get("note"),
        now(),
        village_tz(),
    )
