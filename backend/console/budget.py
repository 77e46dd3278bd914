"""额度审批: awards a village approved past its monthly budget (status `approved`) wait for
the township, which approves or rejects them by the same services as the API's approve and
reject; beside them, each village's points decided this month against its budget."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import redirect, render_template, request, url_for
from marshmallow import ValidationError
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from points import claims as service
from points.budget import VillageBudget, village_budgets
from points.errors import Forbidden
from points.models import (
    Claim,
    Household,
    RuleItemVersion,
    Village,
    Villager,
)
from points.scope import ADMINS, Actor, visible
from rules.claim_status import ClaimStatus
from rules.periods import month_key

from ..clock import now, village_tz
from ..errors import APIError
from ..extensions import db
from ..schemas.common import ReasonIn
from . import bp, forms, menu_item, session

# The budget is the township's policy (catalog.edit is its admins'); approving past it is
# theirs alone (points.claims.approve).
menu_item("console.budget", "额度审批", "catalog.edit")
SHOWN = 100  # claims on the page, oldest first; the count says how many wait in all


@dataclass(frozen=True)
class VillageMonth(VillageBudget):
    waiting: int  # points of the awards waiting here

    @property
    def meter(self) -> int:
        """What the bar shows: the issued points, up to the budget."""
        return min(self.issued, self.budget or 0)

    @property
    def meter_high(self) -> int:
        """Where the bar turns to a warning: nine tenths of the budget."""
        return round((self.budget or 0) * 0.9)


@dataclass(frozen=True)
class Waiting:
    claim: Claim
    village: str
    household: str | None
    member: str | None
    item: str
    month: str  # the month whose budget it draws on


def _require_township(actor: Actor) -> None:
    if actor.role not in ADMINS:
        raise Forbidden("超出本月发放额度的申报由乡镇管理员审批", code="needs_township_approval")


def _budgets(actor: Actor, month: str, waiting: dict[int, int]) -> list[VillageMonth]:
    """Each visible village's month (`budget.village_budgets`) with the points of the awards
    waiting here."""
    return [
        VillageMonth(b.village_id, b.village, b.issued, b.budget, waiting.get(b.village_id, 0))
        for b in village_budgets(db.session, actor, month)
    ]


def budget_page(**_: Any) -> str:
    actor = session.load()
    _require_township(actor)
    tz = village_tz()
    waiting_stmt = visible(actor, Claim).where(Claim.status == ClaimStatus.APPROVED)
    total = db.session.scalar(select(func.count()).select_from(waiting_stmt.subquery())) or 0
    rows = db.session.execute(
        waiting_stmt.with_only_columns(Claim, Village.name, Household.name, Villager.name)
        .join(Village, Village.id == Claim.village_id)
        .join(Household, Household.id == Claim.household_id)
        .outerjoin(Villager, Villager.id == Claim.member_id)
        .order_by(Claim.id)
        .limit(SHOWN)
    ).all()
    versions: dict[int, dict[str, Any]] = dict(
        db.session.execute(
            select(RuleItemVersion.id, RuleItemVersion.data).where(
                RuleItemVersion.id.in_({r[0].rule_item_version_id for r in rows})
            )
        ).all()
    )
    waiting = [
        Waiting(
            claim,
            village,
            household,
            member,
            versions.get(claim.rule_item_version_id, {}).get("name", ""),
            month_key(claim.occurred_at.astimezone(tz)),
        )
        for claim, village, household, member in rows
    ]
    waiting_points = dict(
        db.session.execute(
            waiting_stmt.with_only_columns(Claim.village_id, func.sum(Claim.points)).group_by(
                Claim.village_id
            )
        ).all()
    )
    month = month_key(now().astimezone(tz))
    return render_template(
        "console/budget/index.html",
        month=month,
        waiting=waiting,
        total=total,
        budgets=_budgets(actor, month, {k: int(v or 0) for k, v in waiting_points.items()}),
        done=request.args.get("done"),
        done_claim=request.args.get("claim", type=int),
        refused_claim=(request.view_args or {}).get("claim_id")
        if request.method == "POST"
        else None,
    )


@bp.get("/budget")
def budget() -> str:
    return budget_page()


@bp.post("/budget/<int:claim_id>/approve")
@forms.writes(on_refusal=budget_page)
def budget_approve(claim_id: int) -> Response:
    """As POST /claims/<id>/approve by a township admin: past the budget, into notice (公示)
    or posted."""
    actor = session.load()
    _require_township(actor)
    claim = service.approve(db.session, actor, claim_id, village_tz(), now())
    return redirect(
        url_for("console.budget", done=claim.status, claim=claim.id, _anchor="done"), code=303
    )


@bp.post("/budget/<int:claim_id>/reject")
@forms.writes(on_refusal=budget_page)
def budget_reject(claim_id: int) -> Response:
    """As POST /claims/<id>/reject: with a reason the household reads."""
    actor = session.load()
    _require_township(actor)
    try:
        body = ReasonIn().load({"reason": request.form.get("reason", "").strip()})
    except ValidationError as exc:
        raise APIError(
            422, "validation_error", "请填写驳回理由（500 字以内）", {"fields": exc.messages}
        ) from None
    service.reject(db.session, actor, claim_id, body["reason"], now())
    return redirect(url_for("console.budget", done="rejected", claim=claim_id), code=303)
