"""Claims (申报): from proof to points.

`pending → in_notice (公示) → posted`, or `rejected`; `objected` while an objection waits;
`approved` when the village approved but the award would pass its monthly budget and the
township must approve. The rule engine decides the points at submission and again at
posting, against what the subject has already been given for that item.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Join,
    Select,
    SQLColumnExpression,
    Text,
    and_,
    bindparam,
    case,
    cast,
    func,
    insert,
    join,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

import rules
from rules.claim_status import OPEN_OR_POSTED, WITHDRAWABLE, ClaimStatus
from rules.periods import add_months, month_key, period_end, period_start

from . import audit, budget, catalogs, ledger
from .budget import ISSUED_STATUSES, REVERSED_CLAIMS, budget_month, unissue
from .db import (
    column_values,
    core,
    insert_as_loaded,
    join_as_loaded,
    lock_exclusive,
    new_for_insert,
    rowcount,
)
from .errors import Conflict, DomainError, Forbidden, Invalid, NotFound, WrongVillage
from .models import (
    HEAD,
    Account,
    Household,
    LedgerEntry,
    RuleCatalog,
    RuleItem,
    RuleItemVersion,
    Village,
    Villager,
)
from .models.claims import (
    Claim,
    ClaimApproval,
    HouseholdFlag,
    Objection,
    Upload,
    VetoWithdrawal,
)
from .models.rules import stored_rule
from .scope import (
    ADMINS,
    COUNTY,
    TOWNSHIP,
    VILLAGER,
    Actor,
    authorize,
    get_visible,
    is_own_household,
    refuse_own_household,
    visible,
)

# The note of the entry that wipes a vetoed household's spendable points.
VETO_WIPE_NOTE = "一票否决：可用积分清零"

# Claims whose points count against an item's caps when a new claim comes in are those
# OPEN_OR_POSTED (rules.claim_status): a villager cannot get past a cap by filing several
# claims before the first is reviewed.


class NoPoints(DomainError):
    status = 422
    code = "no_points"
    message = "按细则本次不计分"


class ClaimNotPending(DomainError):
    status = 409
    code = "claim_not_pending"
    message = "该申报已经处理过了"


class NotInNotice(DomainError):
    status = 409
    code = "not_in_notice"
    message = "该申报不在公示期内"


class VillagerDeactivated(Conflict):
    # 409, not 404: the villager is on the roster and in the cadre's scope; 409, not 422:
    # nothing is wrong with the request, the villager's state refuses it, and the same
    # request succeeds once a cadre reactivates them.
    code = "villager_inactive"
    message = "该村民已停用，不能为其签到或记分；如需恢复，请先在花名册中重新启用该村民"


class ClaimNotWithdrawable(DomainError):
    status = 409
    code = "claim_not_withdrawable"
    message = "该申报已入账或已处理，不能撤回；已入账的积分请冲正"


class NeedsTownshipWithdrawal(DomainError):
    status = 403
    code = "needs_township_withdrawal"
    message = "一票否决和达到双人审核分值的扣分，只能由乡镇管理员撤回"


# In public notice (公示): listed by the notice, and open to objections until it ends, also
# once another villager objected (`objected`: under review).
IN_NOTICE: tuple[ClaimStatus, ...] = (ClaimStatus.IN_NOTICE, ClaimStatus.OBJECTED)


class AlreadyObjected(DomainError):
    status = 409
    code = "already_objected"
    message = "您已经对这条申报提出过异议，每人对同一申报只能提一次"


@dataclass(frozen=True)
class Target:
    household_id: int
    member_id: int | None
    village_id: int


class ScoredItem(Protocol):
    """What a claim records of its rule item: the item and the version in force. A
    `RuleItem` is one; so is an `ItemVersion` read as plain columns."""

    @property
    def id(self) -> int: ...

    @property
    def current_version_id(self) -> int | None: ...


@dataclass(frozen=True)
class ItemVersion:
    """A rule item and its current version as a check-in reads them, with its activity."""

    id: int
    current_version_id: int


def current_rule(item: ScoredItem) -> rules.RuleItem:
    """The rule of an item's current version, for callers that did not read it already."""
    assert isinstance(item, RuleItem) and item.current_version is not None
    return item.current_version.rule


def one_of(column: SQLColumnExpression[str], values: tuple[str, ...]) -> ColumnElement[bool]:
    """`column IN (values)` for values fixed in the code, each its own bound parameter. A
    plain `in_` renders an expanding parameter, and SQLAlchemy renders the statement's text
    again on every execution; this one is rendered once with the cached statement."""
    return column.in_([literal(value) for value in values])


# ---- rules as a village sees them -----------------------------------------------------------


def village_item(session: Session, village_id: int, rule_item_id: int) -> RuleItem:
    """A rule item the village may use now: its township's catalog or its own items."""
    village = session.get(Village, village_id)
    assert village is not None
    item = session.scalar(
        catalogs.in_effect_for(select(RuleItem), village).where(RuleItem.id == rule_item_id)
    )
    if item is None or item.current_version is None:
        raise NotFound("本村积分细则中没有这一项", code="rule_item_not_found")
    return item


@dataclass(frozen=True)
class AwardItem:
    """An item a village may use now as an award reads it, in one query (`award_item`): the
    item and its current version, the rule the village decides by (`rule_in_force`), the
    village's policy (`catalogs.effective_policy`) and its township (to file the audit)."""

    item: ItemVersion
    rule: rules.RuleItem
    version_rule: rules.RuleItem  # the version's own, which posting decides by (`_post`)
    policy: rules.Policy
    township_id: int


_OWN_CATALOG = aliased(RuleCatalog)
_TOWNSHIP_CATALOG = aliased(RuleCatalog)


_AWARD_ITEM_COLUMNS = (
    RuleItem.id,
    RuleItem.current_version_id,
    cast(RuleItemVersion.data, Text),
    Village.township_id,
    RuleCatalog.village_id,
    catalogs.policy_text(_OWN_CATALOG),
    catalogs.policy_text(_TOWNSHIP_CATALOG),
)


def _award_item_join() -> Join:
    """The village joined to the item (bound as item_id) as `catalogs.in_effect_for` narrows
    it (its township's catalog or the village's own, not retired), its current version, and
    both catalogs as `catalogs.effective_policy` reads them: no row for a village that may
    not use the item."""
    return (
        join(
            Village,
            RuleItem,
            and_(RuleItem.id == bindparam("item_id"), RuleItem.retired_at.is_(None)),
        )
        .join(
            RuleCatalog,
            and_(
                RuleCatalog.id == RuleItem.catalog_id,
                or_(
                    RuleCatalog.township_id == Village.township_id,
                    RuleCatalog.village_id == Village.id,
                ),
            ),
        )
        .join(RuleItemVersion, RuleItemVersion.id == RuleItem.current_version_id)
        .outerjoin(_OWN_CATALOG, _OWN_CATALOG.village_id == Village.id)
        .outerjoin(_TOWNSHIP_CATALOG, _TOWNSHIP_CATALOG.township_id == Village.township_id)
    )


# Built once: building a statement costs more CPU than running it, and every award runs it.
# The version and the policies as their JSON text, the key of their parsed values
# (`stored_rule`, `stored_policy`).
_AWARD_ITEM = (
    select(*_AWARD_ITEM_COLUMNS)
    .select_from(_award_item_join())
    .where(Village.id == bindparam("village_id"))
)


def award_item(session: Session, village_id: int, rule_item_id: int) -> AwardItem:
    """`village_item`, `rule_in_force` and `catalogs.effective_policy` in one query."""
    params = {"village_id": village_id, "item_id": rule_item_id}
    return _award_item_of(core(session).execute(_AWARD_ITEM, params).first())


def _award_item_of(found: Sequence[Any] | None) -> AwardItem:
    """An `AwardItem` from `_AWARD_ITEM_COLUMNS` as read (None, or NULLs: not found)."""
    if found is None or found[0] is None:
        raise NotFound("本村积分细则中没有这一项", code="rule_item_not_found")
    item_id, version_id, version, township_id, catalog_village, own, township = found
    assert version_id is not None  # joined to its version
    policy = catalogs.policy_of(own, township)
    stored = rule = stored_rule(version)
    if catalog_village is not None:
        rule = rules.village_item_in_force(stored, policy)
    return AwardItem(ItemVersion(item_id, version_id), rule, stored, policy, township_id)


def rule_in_force(
    session: Session,
    item: RuleItem,
    village_id: int,
    rule: rules.RuleItem | None = None,
    policy: rules.Policy | None = None,
) -> rules.RuleItem:
    """The rule a village decides a claim on `item` by: `rule` (default: the item's current
    version), and for the village's own item (村规民约) the township's policy as a floor
    (`rules.village_item_in_force`). Applied when a claim is decided, not only when the item
    is written, so a floor the township raises later holds for items written before it."""
    rule = rule or current_rule(item)
    if item.catalog.village_id is None:
        return rule
    return rules.village_item_in_force(
        rule, policy or catalogs.effective_policy(session, village_id)
    )


def _claim_rule(session: Session, claim: Claim) -> rules.RuleItem:
    """The rule in force for a claim's recorded item version."""
    item = session.get(RuleItem, claim.rule_item_id)
    version = session.get(RuleItemVersion, claim.rule_item_version_id)
    assert item is not None and version is not None
    return rule_in_force(session, item, claim.village_id, version.rule)


@lru_cache(maxsize=64)
def _history_statement(
    applies_to: str,
    statuses: tuple[str, ...],
    caps: int,
    ever: bool,
    exclude: bool,
) -> Select[*tuple[Any, ...]]:
    """One statement for all of an item's cap periods: per period (bound as start_i, end_i)
    a count and a sum, and the count ever when `ever`. Built once per shape: building a
    statement costs more CPU than running it, and every claim runs one."""
    subject = Claim.household_id if applies_to == "household" else Claim.member_id
    conditions = [
        Claim.rule_item_id == bindparam("item_id"),
        subject == bindparam("subject_id"),
        one_of(Claim.status, statuses),
        Claim.points != 0,
        Claim.id.not_in(REVERSED_CLAIMS),
    ]
    if exclude:
        conditions.append(Claim.id != bindparam("exclude_id"))
    columns: list[ColumnElement[int]] = []
    for i in range(caps):
        within = and_(
            Claim.occurred_at >= bindparam(f"start_{i}"), Claim.occurred_at < bindparam(f"end_{i}")
        )
        columns += [
            func.count(case((within, 1))),
            func.coalesce(func.sum(case((within, Claim.points), else_=0)), 0),
        ]
    if ever:
        columns.append(func.count())
    elif caps:
        # Only the claims of the widest period need be read.
        conditions += [
            Claim.occurred_at >= bindparam("from"),
            Claim.occurred_at < bindparam("until"),
        ]
    return select(*columns).where(*conditions)


def history(
    session: Session,
    item: ScoredItem,
    rule: rules.RuleItem,
    target: Target,
    at: datetime,
    tz: ZoneInfo,
    statuses: tuple[str, ...],
    exclude_claim: int | None = None,
) -> rules.History:
    """What the subject has already been given for this item, per cap period around `at`,
    in one query."""
    ever = rule.kind == "once"
    if not rule.caps and not ever:
        return rules.History(by_period={}, ever_count=0)
    local = at.astimezone(tz)
    params: dict[str, Any] = {
        "item_id": item.id,
        "subject_id": target.household_id if rule.applies_to == "household" else target.member_id,
        "exclude_id": exclude_claim,
    }
    for i, cap in enumerate(rule.caps):
        params[f"start_{i}"] = period_start(cap.period, local)
        params[f"end_{i}"] = period_end(cap.period, local)
    if rule.caps:
        params["from"] = min(params[f"start_{i}"] for i in range(len(rule.caps)))
        params["until"] = max(params[f"end_{i}"] for i in range(len(rule.caps)))
    stmt = _history_statement(
        rule.applies_to, statuses, len(rule.caps), ever, exclude_claim is not None
    )
    row = core(session).execute(stmt, params).one()
    by_period = {
        cap.period: rules.Usage(count=row[2 * i], points=abs(row[2 * i + 1]))
        for i, cap in enumerate(rule.caps)
    }
    ever_count = row[2 * len(rule.caps)] if ever else 0
    return rules.History(by_period=by_period, ever_count=ever_count)


def _evaluate(
    session: Session,
    item: ScoredItem,
    target: Target,
    units: int | None,
    at: datetime,
    tz: ZoneInfo,
    statuses: tuple[str, ...],
    rule: rules.RuleItem | None = None,
) -> tuple[rules.RuleItem, rules.Evaluation]:
    """`rule`: the item's current version as the engine reads it, if the caller has it."""
    if rule is None:
        rule = current_rule(item)
    past = history(session, item, rule, target, at, tz, statuses)
    try:
        evaluation = rules.evaluate(rule, at.astimezone(tz), past, units)
    except rules.EvaluationError as exc:
        raise Invalid(exc.message, code="invalid_units") from exc
    return rule, evaluation


def evaluate_for(
    session: Session,
    actor: Actor,
    item_id: int,
    villager_id: int,
    units: int | None,
    at: datetime,
    tz: ZoneInfo,
) -> dict[str, Any]:
    """What awarding the item to a villager at `at` would give, recording nothing: the
    cadre's dry run (试算) before an award. It takes the award's own road (the villager as the
    award's target, what the villager or household has already been given counted by
    `_evaluate`), so a cap the earlier claims reached shows here as in the award after it."""
    authorize(actor, "rules.evaluate")
    if at.tzinfo is None or at.utcoffset() is None:
        raise Invalid("试算时间缺少时区", code="invalid_time", details={"field": "at"})
    target = _target(session, actor, {"villager_id": villager_id})
    item = catalogs.applicable_item(session, actor, item_id, target.village_id)
    version = item.current_version
    assert version is not None
    _, result = _evaluate(session, item, target, units, at, tz, OPEN_OR_POSTED, rule=version.rule)
    return {
        "points": result.points,
        "capped": result.capped,
        "units": result.units,
        "reason": result.reason,
        "item_id": item.id,
        "version_id": version.id,
        "version": version.version,
    }


# ---- submission -----------------------------------------------------------------------------


def _check_evidence(
    session: Session, actor: Actor, evidence: list[int], rule: rules.RuleItem
) -> list[int]:
    if rule.evidence_required and not evidence:
        raise Invalid("这一项需要上传照片作为证明", code="evidence_required")
    ids = sorted(set(evidence))
    if ids:
        owned = set(
            session.scalars(
                select(Upload.id).where(Upload.id.in_(ids), Upload.user_id == actor.user_id)
            )
        )
        if owned != set(ids):
            raise Invalid(
                "照片不存在或不是您上传的",
                code="invalid_evidence",
                details={"upload_ids": sorted(set(ids) - owned)},
            )
    return ids


@dataclass(frozen=True)
class Report:
    """What a claim reports: how it came (`source`: villager, cadre or checkin), the units
    done, the note, the photos proving it, and when the deed was done if before the claim
    is made (`occurred_at`, work scored at check-out: its month is the claim's month for
    the caps, the board and the budget)."""

    source: str
    units: int | None
    note: str | None = None
    evidence: list[int] = field(default_factory=list)
    occurred_at: datetime | None = None


def _new_claim(
    session: Session,
    actor: Actor,
    item: ScoredItem,
    target: Target,
    report: Report,
    *,
    now: datetime,
    tz: ZoneInfo,
    approve_with: rules.Policy | None = None,
    rule: rules.RuleItem | None = None,
    reviewed: bool = False,
    version_rule: rules.RuleItem | None = None,
) -> Claim:
    """Evaluate and insert a claim. `approve_with` (the village's policy): the claim is
    approved at once (an item that needs no review, or a cadre's award that one approval
    decides), and inserted with the status that approval gives it rather than inserted
    `pending` and updated; posted, if it has no notice days, right after. `reviewed`: a
    staff member enters it (积分录入), which is its first approval (`_record_approval`): not
    for their own household; with `approve_with`, decided at once only if one approval is
    enough (`Policy.takes_two_reviewers`), as `_advance` would. `version_rule`: the item
    version's own rule, which posting decides by (`_post`), if the caller read it."""
    deed = report.occurred_at or now
    rule, evaluation = _evaluate(
        session, item, target, report.units, deed, tz, OPEN_OR_POSTED, rule=rule
    )
    if evaluation.points == 0 and rule.kind != "veto":
        raise NoPoints(
            evaluation.reason,
            details={"household_id": target.household_id, "member_id": target.member_id},
        )
    if reviewed:
        refuse_own_household(session, actor, target.household_id)
    claim = new_for_insert(
        Claim,
        village_id=target.village_id,
        household_id=target.household_id,
        member_id=target.member_id,
        rule_item_id=item.id,
        rule_item_version_id=item.current_version_id,
        source=report.source,
        units=evaluation.units,
        points=evaluation.points,
        capped=evaluation.capped,
        reason=evaluation.reason,
        note=report.note,
        evidence=report.evidence,
        status=ClaimStatus.PENDING,
        approvals=1 if reviewed else 0,  # a reviewed claim goes in with its first approval
        occurred_at=deed,
        submitted_by=actor.user_id,
        created_at=now,
        # Every column given, so that the inserted claim is complete as loaded and reading
        # it (its audit snapshot) queries nothing.
        notice_ends_at=None,
        decided_at=None,
        posted_at=None,
        reject_reason=None,
        rejected_by=None,
        withdraw_reason=None,
        withdrawn_by=None,
        withdrawn_at=None,
    )
    if reviewed and approve_with is not None:
        if approve_with.takes_two_reviewers(claim.points, veto=rule.kind == "veto"):
            approve_with = None  # a second reviewer decides it (`approve`)
    post = False
    if approve_with is not None:
        # Decided before the claim joins the session, so that counting it against the budget
        # (which flushes what is pending) does not insert it through the unit of work.
        by_township = reviewed and actor.role in ADMINS
        post = _decide(session, claim, rule, now, tz, by_township=by_township, policy=approve_with)
    if post:
        # Inserted posted: no other transaction can see the row before this one commits, so
        # `_post`'s conditional update (two runners, one posting) has nothing to guard here.
        claim.status, claim.posted_at = ClaimStatus.POSTED, now
    locked = None
    if reviewed:
        # A new claim has no approvals yet: this one cannot be a second by the same cadre.
        locked = _insert_reviewed(session, claim, actor.user_id, now, lock=post)
    else:
        insert_as_loaded(session, claim)
    if post:
        if version_rule is None:
            version = session.get(RuleItemVersion, claim.rule_item_version_id)
            assert version is not None
            version_rule = version.rule
        _post_entry(session, claim, item, version_rule, now, tz, locked=locked)
    return claim


_INSERT_APPROVAL = insert(ClaimApproval).values(
    claim_id=bindparam("claim_id"), user_id=bindparam("user_id"), created_at=bindparam("at")
)


def _insert_reviewed(
    session: Session, claim: Claim, user_id: int, at: datetime, *, lock: bool
) -> ledger.Head | None:
    """Insert a new claim with its first approval, by `user_id` at `at`; the claim joins the
    session as loaded (`insert_as_loaded`). On PostgreSQL one statement, else two. `lock`
    (the claim posts next): on PostgreSQL the same statement locks and reads its household's
    account row for the entry (`ledger.lock_head_columns`, or `ledger.open_account` when it
    has none yet; None on SQLite: `ledger.append` locks it then). The budget's row was
    locked before, so the account's comes after it, the order every posting takes them in."""
    if session.get_bind().dialect.name != "postgresql":
        insert_as_loaded(session, claim)
        core(session).execute(
            _INSERT_APPROVAL, {"claim_id": claim.id, "user_id": user_id, "at": at}
        )
        return None
    values = column_values(claim)
    params = {f"c_{name}": value for name, value in values.items()}
    params |= {"a_user_id": user_id, "a_at": at, "h_household_id": claim.household_id}
    row = core(session).execute(_reviewed_statement(tuple(values), lock), params).one()
    join_as_loaded(session, claim, row[0])
    if not lock:
        return None
    if row[1] is None:  # the household's first entry
        return ledger.open_account(session, claim.household_id)
    return ledger.Head(*row[1:])


@lru_cache(maxsize=8)
def _reviewed_statement(columns: tuple[str, ...], lock: bool) -> Any:
    """PostgreSQL: the claim (its `columns` bound as `c_<column>`) and its first approval in
    one statement, which returns the claim's id and, with `lock`, its household's account
    row locked (`ledger.lock_head_columns`, NULLs when there is none). Built once per shape."""
    claim = (
        insert(Claim)
        .values({name: bindparam(f"c_{name}") for name in columns})
        .returning(Claim.id)
        .cte("claim")
    )
    approval = (
        insert(ClaimApproval)
        .from_select(
            ["claim_id", "user_id", "created_at"],
            select(
                claim.c.id,
                bindparam("a_user_id", type_=ClaimApproval.user_id.type),
                bindparam("a_at", type_=ClaimApproval.created_at.type),
            ),
        )
        .cte("approval")
    )
    if not lock:
        return select(claim.c.id).add_cte(approval)
    head = ledger.lock_head_columns(bindparam("h_household_id", type_=Claim.household_id.type))
    return select(claim.c.id, *head.c).select_from(claim).outerjoin(head, true()).add_cte(approval)


def submit(
    session: Session,
    actor: Actor,
    *,
    rule_item_id: int,
    units: int | None,
    note: str | None,
    evidence: list[int],
    tz: ZoneInfo,
    now: datetime,
) -> Claim:
    """A villager's self-report (自主申报) for their own household."""
    if actor.role != VILLAGER:
        raise Forbidden("只有村民可以自主申报；村干部请使用积分录入")
    authorize(actor, "claim.submit")
    household_id = actor.require_household()
    # A villager's household is of their village, and its member is them.
    assert actor.villager_id is not None and actor.village_id is not None
    item = village_item(session, actor.village_id, rule_item_id)
    rule = rule_in_force(session, item, actor.village_id)
    if not rule.may_submit("villager"):
        raise Forbidden("这一项不能自主申报，由村干部录入", code="not_self_reportable")
    evidence = _check_evidence(session, actor, evidence, rule)
    target = Target(household_id, actor.villager_id, actor.village_id)
    policy = None if rule.requires_review else catalogs.effective_policy(session, target.village_id)
    return _new_claim(
        session,
        actor,
        item,
        target,
        Report("villager", units, note=note, evidence=evidence),
        now=now,
        tz=tz,
        approve_with=policy,
        rule=rule,
    )


def submit_checkin(
    session: Session,
    actor: Actor,
    item: ScoredItem,
    rule: rules.RuleItem,
    target: Target,
    report: Report,
    *,
    now: datetime,
    tz: ZoneInfo,
    policy: rules.Policy | None = None,
) -> Claim:
    """The claim a check-in (签到) proves: made by the villager's own scan, or by the cadre
    who scanned their member card (`actor` either way, recorded as the submitter). An item
    that needs no review is approved at once, then posted, or shown in notice (公示) when it
    has notice days; an item that needs review waits in the cadres' queue. Raises NoPoints
    when a cap leaves nothing to award, before anything is written. `policy`: the village's
    policy when the caller has already read it (check-in reads it with the activity). `rule`:
    the item's rule in force for the village (`rule_in_force`). `report`: of source
    checkin, without photos; its `occurred_at` for work scored at check-out."""
    if not rule.may_submit("checkin"):
        raise Forbidden("这一项不能通过签到计分", code="not_checkin_item")
    if rule.applies_to == "member" and target.member_id is None:
        raise Invalid("这一项按人计分，请选择村民", code="member_required")
    # A cadre's proxy check-in or check-out of their own household is not approved by the
    # scan: another cadre reviews it, as for any award to one's own household.
    review = rule.requires_review or (
        actor.role != VILLAGER and is_own_household(session, actor, target.household_id)
    )
    if not review and policy is None:
        policy = catalogs.effective_policy(session, target.village_id)
    return _new_claim(
        session,
        actor,
        item,
        target,
        report,
        now=now,
        tz=tz,
        approve_with=None if review else policy,
        rule=rule,
    )


def member_target(villager: Villager) -> Target:
    """A roster member named by staff to be given points (an award, a proxy check-in): a
    deactivated member (迁出、去世) earns nothing more."""
    if not villager.active:
        raise VillagerDeactivated(details={"villager_id": villager.id})
    household = villager.household
    return Target(household.id, villager.id, household.village_id)


def _target(session: Session, actor: Actor, spec: dict[str, int]) -> Target:
    return _target_row(session, actor, spec, None)[0]


def _target_and_item(
    session: Session, actor: Actor, spec: dict[str, int], rule_item_id: int
) -> tuple[Target, AwardItem]:
    """`_target` and its village's `award_item`, in one query."""
    target, item = _target_row(session, actor, spec, rule_item_id)
    return target, _award_item_of(item)


def _target_row(
    session: Session, actor: Actor, spec: dict[str, int], rule_item_id: int | None
) -> tuple[Target, Sequence[Any]]:
    """The target a spec names, and with `rule_item_id` the `_AWARD_ITEM_COLUMNS` of its
    village as read (NULLs: the village may not use the item)."""
    by_villager = "villager_id" in spec
    params = {"subject_id": spec["villager_id" if by_villager else "household_id"]}
    if rule_item_id is not None:
        params["item_id"] = rule_item_id
    stmt = _target_statement(actor, by_villager, rule_item_id is not None)
    found = core(session).execute(stmt, params).first()
    if found is None:
        raise NotFound()
    if by_villager:
        # `member_target` of the villager `get_visible` finds.
        villager_id, active, household_id, village_id = found[:4]
        if not active:
            raise VillagerDeactivated(details={"villager_id": villager_id})
        return Target(household_id, villager_id, village_id), found[4:]
    household_id, village_id, head_id = found[:3]
    return Target(household_id, head_id, village_id), found[3:]


# Built once per caller (the scope is the actor's) and shape: building the statement and its
# cache key cost more CPU than running it, and every award runs one per target.
@lru_cache(maxsize=256)
def _target_statement(actor: Actor, by_villager: bool, with_item: bool) -> Any:
    """A villager (`by_villager`: id, active, household, village) or a household with its
    head (户主, at most one: uq_villagers_one_head; id, village, head), bound as subject_id,
    as the actor may see them; `with_item`: and `_AWARD_ITEM_COLUMNS` of its village, NULLs
    when the village may not use the item."""
    stmt: Select[*tuple[Any, ...]]
    if by_villager:
        stmt = (
            visible(actor, Villager)
            .with_only_columns(
                Villager.id, Villager.active, Villager.household_id, Household.village_id
            )
            .select_from(Villager)
            .join(Household, Household.id == Villager.household_id)
            .where(Villager.id == bindparam("subject_id"))
        )
    else:
        stmt = (
            visible(actor, Household)
            .with_only_columns(Household.id, Household.village_id, Villager.id)
            .select_from(Household)
            .outerjoin(
                Villager, and_(Villager.household_id == Household.id, Villager.relation == HEAD)
            )
            .where(Household.id == bindparam("subject_id"))
        )
    if not with_item:
        return stmt
    return stmt.add_columns(*_AWARD_ITEM_COLUMNS).outerjoin(
        _award_item_join(), Village.id == Household.village_id
    )


def award(
    session: Session,
    actor: Actor,
    *,
    rule_item_id: int,
    units: int | None,
    note: str | None,
    evidence: list[int],
    targets: list[dict[str, int]],
    tz: ZoneInfo,
    now: datetime,
) -> list[Claim]:
    """A cadre's award or deduction (积分录入), for one or many villagers or households.
    All or nothing: one target over its cap refuses the batch, naming it."""
    authorize(actor, "claim.award")
    # One target (most awards): its village's item read with it.
    read: AwardItem | None = None
    if len(targets) == 1:
        target, read = _target_and_item(session, actor, targets[0], rule_item_id)
        resolved = [target]
    else:
        resolved = [_target(session, actor, spec) for spec in targets]
    if len({(t.household_id, t.member_id) for t in resolved}) != len(resolved):
        raise Invalid("同一对象重复出现", code="duplicate_target")
    claims: dict[int, Claim] = {}
    # An approved claim locks its village's monthly budget row, and one that posts at once
    # its household's account, until the commit. Taken in village then household order, two
    # batches naming the same villages and households in different orders queue instead of
    # each holding one row and waiting for the other's (a deadlock).
    for index, target in sorted(
        enumerate(resolved), key=lambda it: (it[1].village_id, it[1].household_id)
    ):
        found = read or award_item(session, target.village_id, rule_item_id)
        rule = found.rule
        if not rule.may_submit("cadre"):
            raise Forbidden("这一项不能由村干部直接录入", code="not_cadre_item")
        if rule.applies_to == "member" and target.member_id is None:
            raise Invalid("这一项按人计分，请选择村民", code="member_required")
        if rule.points < 0 or rule.kind == "veto":
            if not (note and note.strip()):
                raise Invalid("扣分须写明原因", code="note_required")
        checked = _check_evidence(session, actor, evidence, rule)
        # Entering the award is this cadre's approval; a second cadre may still be needed.
        claim = _new_claim(
            session,
            actor,
            found.item,
            target,
            Report("cadre", units, note=note, evidence=checked),
            now=now,
            tz=tz,
            approve_with=found.policy,
            rule=rule,
            reviewed=True,
            version_rule=found.version_rule,
        )
        claims[index] = claim
        audit.record(
            session,
            actor,
            "claim.award",
            claim,
            village_id=claim.village_id,
            township_id=found.township_id,
        )
    return [claims[index] for index in range(len(resolved))]  # in the order asked


def verify_approvals(session: Session) -> list[str]:
    """Every claim whose count of approvals (`claims.approvals`, what 今日 tells a first review
    from a second by) differs from its approval rows (empty: all agree)."""
    counted = (
        select(ClaimApproval.claim_id, func.count().label("n"))
        .group_by(ClaimApproval.claim_id)
        .subquery()
    )
    rows = session.execute(
        select(Claim.id, Claim.approvals, func.coalesce(counted.c.n, 0))
        .outerjoin(counted, counted.c.claim_id == Claim.id)
        .where(Claim.approvals != func.coalesce(counted.c.n, 0))
        .order_by(Claim.id)
    )
    return [f"申报 {cid} 记为 {kept} 人审核，审核记录 {n} 条" for cid, kept, n in rows]


def recount_approvals(session: Session) -> int:
    """Set each claim's count of approvals to its approval rows (after `verify_approvals`
    named one, or rows loaded in bulk); the number of claims changed. Locks the approval
    rows' table first, so that no review counts meanwhile and none is counted twice."""
    lock_exclusive(session, "claim_approvals")
    counted = func.coalesce(
        select(func.count())
        .where(ClaimApproval.claim_id == Claim.id)
        .correlate(Claim)
        .scalar_subquery(),
        0,
    )
    changed = core(session).execute(
        update(Claim).where(Claim.approvals != counted).values(approvals=counted)
    )
    return changed.rowcount


# ---- review ---------------------------------------------------------------------------------


def _record_approval(session: Session, actor: Actor, claim: Claim) -> None:
    refuse_own_household(session, actor, claim.household_id)
    exists = session.scalar(
        select(ClaimApproval.id).where(
            ClaimApproval.claim_id == claim.id, ClaimApproval.user_id == actor.user_id
        )
    )
    if exists:
        raise Conflict("您已经审核过这条申报，需要另一位村干部审核", code="already_approved")
    session.add(ClaimApproval(claim_id=claim.id, user_id=actor.user_id))
    claim.approvals = Claim.approvals + 1  # counted in the database, with the row
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict("您已经审核过这条申报", code="already_approved") from exc


def _approvals(session: Session, claim: Claim) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(ClaimApproval)
            .where(ClaimApproval.claim_id == claim.id)
        )
        or 0
    )


def _advance(
    session: Session,
    actor: Actor,
    claim: Claim,
    rule: rules.RuleItem,
    now: datetime,
    tz: ZoneInfo,
) -> None:
    """After an approval: enough cadres? within budget? then notice or post. A veto (一票否决)
    scores nothing but wipes a household's points and bars it from boards: always two."""
    policy = catalogs.effective_policy(session, claim.village_id)
    needed = 2 if policy.takes_two_reviewers(claim.points, veto=rule.kind == "veto") else 1
    if _approvals(session, claim) < needed:
        return
    _approved(session, actor, claim, rule, now, tz, by_township=actor.role in ADMINS, policy=policy)


def _decide(
    session: Session,
    claim: Claim,
    rule: rules.RuleItem,
    now: datetime,
    tz: ZoneInfo,
    *,
    by_township: bool,
    policy: rules.Policy,
) -> bool:
    """The status an approval gives the claim: `approved` past the village's monthly budget,
    else in notice (公示) or, without notice days, to be posted (True: the caller posts).
    An award counts against its deed's month (`budget_month`), also when the township lets
    it past the budget."""
    limit = None if by_township else policy.monthly_budget
    month = budget_month(claim, tz)
    unbudgeted = policy.monthly_budget is None
    if claim.points > 0 and not budget.issue(session, claim, month, limit, unbudgeted=unbudgeted):
        # Awards past the budget need the township (docs/DESIGN.md, The monthly budget).
        claim.status = ClaimStatus.APPROVED
        claim.reason = f"{claim.reason}；超出本村本月发放额度，待乡镇审批"
        return False
    days = rule.notice_days if rule.notice_days is not None else policy.notice_days
    claim.decided_at = now
    if days > 0:
        claim.status = ClaimStatus.IN_NOTICE
        claim.notice_ends_at = now + timedelta(days=days)
        return False
    return True


def _approved(
    session: Session,
    actor: Actor,
    claim: Claim,
    rule: rules.RuleItem,
    now: datetime,
    tz: ZoneInfo,
    *,
    by_township: bool,
    policy: rules.Policy | None = None,
) -> None:
    policy = policy or catalogs.effective_policy(session, claim.village_id)
    if _decide(session, claim, rule, now, tz, by_township=by_township, policy=policy):
        _post(session, claim, now, tz, from_status=claim.status)
    elif claim.status == ClaimStatus.IN_NOTICE:
        session.flush()


def _lock_claim(session: Session, actor: Actor, claim_id: int) -> Claim:
    visible_claim = get_visible(session, actor, Claim, claim_id)
    locked = session.scalar(
        select(Claim)
        .where(Claim.id == visible_claim.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert locked is not None
    return locked


def approve(session: Session, actor: Actor, claim_id: int, tz: ZoneInfo, now: datetime) -> Claim:
    claim = _lock_claim(session, actor, claim_id)
    authorize(actor, "claim.review")
    if claim.status == ClaimStatus.APPROVED:
        # Over the village budget: only the township can let it through.
        if actor.role not in (TOWNSHIP, COUNTY):
            raise Forbidden("超出本月发放额度，需乡镇管理员审批", code="needs_township_approval")
        refuse_own_household(session, actor, claim.household_id)
        _approved(session, actor, claim, _claim_rule(session, claim), now, tz, by_township=True)
        audit.record(session, actor, "claim.approve", claim, village_id=claim.village_id)
        return claim
    if claim.status != ClaimStatus.PENDING:
        raise ClaimNotPending()
    _record_approval(session, actor, claim)
    _advance(session, actor, claim, _claim_rule(session, claim), now, tz)
    audit.record(session, actor, "claim.approve", claim, village_id=claim.village_id)
    return claim


def reject(session: Session, actor: Actor, claim_id: int, reason: str, now: datetime) -> Claim:
    claim = _lock_claim(session, actor, claim_id)
    authorize(actor, "claim.review")
    # Rejecting one's own household's deduction is deciding its points as much as approving.
    refuse_own_household(session, actor, claim.household_id)
    if claim.status not in (ClaimStatus.PENDING, ClaimStatus.APPROVED):
        raise ClaimNotPending()
    before = audit.snapshot(claim)
    claim.status, claim.reject_reason = ClaimStatus.REJECTED, reason
    claim.rejected_by, claim.decided_at = actor.user_id, now
    audit.record(session, actor, "claim.reject", claim, before=before, village_id=claim.village_id)
    return claim


# Before posting, a claim can still be withdrawn (撤回, WITHDRAWABLE): posted points are
# corrected by a reversal (冲正) instead, which the passbook shows.


def withdrawal_needs_township(session: Session, actor: Actor, claim: Claim) -> bool:
    """Whether only the township may withdraw this claim: a veto or a deduction that took two
    reviewers to impose, which one cadre must not be able to lift alone (the township, which
    withdraws posted vetoes too, decides)."""
    if actor.role in ADMINS:
        return False
    veto = _claim_rule(session, claim).kind == "veto"
    if not (veto or claim.points < 0):
        return False
    policy = catalogs.effective_policy(session, claim.village_id)
    return policy.takes_two_reviewers(claim.points, veto=veto)


def withdraw(
    session: Session, actor: Actor, claim_id: int, reason: str, now: datetime, tz: ZoneInfo
) -> Claim:
    """Staff of the village withdraw a claim that has not posted, e.g. a mistake found during
    公示, with a reason the household reads. Points counted against the month's budget are
    taken off as when an objection overturns a claim; an objection waiting on it is settled
    in the objector's favour, since the claim no longer stands."""
    claim = _lock_claim(session, actor, claim_id)
    authorize(actor, "claim.withdraw")
    refuse_own_household(session, actor, claim.household_id)
    if claim.status not in WITHDRAWABLE:
        raise ClaimNotWithdrawable(details={"status": claim.status})
    if withdrawal_needs_township(session, actor, claim):
        raise NeedsTownshipWithdrawal()
    before = audit.snapshot(claim)
    if claim.status in ISSUED_STATUSES:
        unissue(session, claim, claim.points, tz)
    for objection in session.scalars(
        select(Objection).where(Objection.claim_id == claim.id, Objection.status == "open")
    ):
        objection.status = "overturned"
        objection.resolved_by, objection.resolved_at = actor.user_id, now
        objection.resolution_note = f"申报已撤回：{reason}"[:500]
    claim.status, claim.withdraw_reason = ClaimStatus.WITHDRAWN, reason
    claim.withdrawn_by, claim.withdrawn_at = actor.user_id, now
    audit.record(
        session, actor, "claim.withdraw", claim, before=before, village_id=claim.village_id
    )
    return claim


# ---- notice and objections (公示与异议) --------------------------------------------------


def object_to(
    session: Session, actor: Actor, claim_id: int, reason: str, now: datetime
) -> Objection:
    if actor.role != VILLAGER:
        get_visible(session, actor, Claim, claim_id)  # 404 before 403, as everywhere
        raise WrongVillage("只有本村村民可以在公示期内提出异议")
    authorize(actor, "objection.create")
    # 公示 is public within the village: any claim of the village may be objected to.
    claim = session.scalar(
        select(Claim).where(Claim.id == claim_id, Claim.village_id == actor.village_id)
    )
    if claim is None:
        raise NotFound()
    if claim.household_id == actor.household_id:
        raise Forbidden("不能对自己家庭的申报提出异议", code="own_claim")
    # One objection per villager per claim: a cadre's decision on it is final for them, or
    # one villager could object again after each decision and hold the claim back forever.
    if session.scalar(
        select(Objection.id).where(
            Objection.claim_id == claim.id, Objection.user_id == actor.user_id
        )
    ):
        raise AlreadyObjected()
    # Several villagers may object to one claim: a claim already objected to (under review)
    # still takes the objections of others until its notice ends, so the cadre who decides
    # reads every one of them, and nobody is told "not in notice" about a claim the notice
    # still lists. The claim's row lock orders this against a cadre's decision on it.
    locked = session.scalar(
        select(Claim)
        .where(Claim.id == claim.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert locked is not None
    if locked.status not in IN_NOTICE or locked.notice_ends_at is None:
        raise NotInNotice()
    if locked.notice_ends_at <= now:
        raise NotInNotice(
            "该申报的公示期已经结束，不能再提出异议",
            details={"notice_ended_at": locked.notice_ends_at.isoformat()},
        )
    locked.status = ClaimStatus.OBJECTED
    objection = Objection(claim_id=claim.id, user_id=actor.user_id, reason=reason, created_at=now)
    session.add(objection)
    try:
        session.flush()  # the unique (claim_id, user_id) settles two objections at once
    except IntegrityError as exc:
        raise AlreadyObjected() from exc
    return objection


def resolve(
    session: Session,
    actor: Actor,
    objection_id: int,
    outcome: str,
    note: str | None,
    now: datetime,
    tz: ZoneInfo,
) -> Objection:
    objection = session.get(Objection, objection_id)
    if objection is None:
        raise NotFound()
    claim = _lock_claim(session, actor, objection.claim_id)
    authorize(actor, "claim.review")
    refuse_own_household(session, actor, claim.household_id)
    if objection.status != "open" or claim.status != ClaimStatus.OBJECTED:
        raise Conflict("该异议已经处理过了", code="objection_resolved")
    others = list(
        session.scalars(
            select(Objection).where(
                Objection.claim_id == claim.id,
                Objection.status == "open",
                Objection.id != objection.id,
            )
        )
    )
    status = "upheld" if outcome == "uphold" else "overturned"
    # Overturning the claim answers every open objection to it at once (they all stood);
    # upholding it answers this one: the claim waits until each objection is decided.
    for decided in [objection, *(others if outcome == "overturn" else [])]:
        decided.status = status
        decided.resolved_by, decided.resolved_at = actor.user_id, now
        decided.resolution_note = note
    if outcome == "uphold":
        if not others:
            # Back in notice; it posts when the notice ends (at the next post-due run if
            # it has).
            claim.status = ClaimStatus.IN_NOTICE
    else:
        claim.status, claim.reject_reason = ClaimStatus.REJECTED, note or "公示期异议成立"
        claim.rejected_by = actor.user_id
        unissue(session, claim, claim.points, tz)
    audit.record(
        session, actor, f"objection.{objection.status}", objection, village_id=claim.village_id
    )
    return objection


# ---- posting --------------------------------------------------------------------------------


def _origin(claim: Claim, note: str | None) -> ledger.EntryOrigin:
    """What a claim's entries are about: its member, item version, the claim and who
    reported it."""
    return ledger.EntryOrigin(
        member_id=claim.member_id,
        rule_item_version_id=claim.rule_item_version_id,
        claim_id=claim.id,
        created_by=claim.submitted_by,
        note=note,
    )


def _post(session: Session, claim: Claim, now: datetime, tz: ZoneInfo, *, from_status: str) -> None:
    """Post a claim: re-decide its points against what is posted, then append the entry.
    The conditional update makes posting idempotent: two runners, one posting."""
    moved = rowcount(
        session.execute(
            update(Claim)
            .where(Claim.id == claim.id, Claim.status == from_status)
            .values(status=ClaimStatus.POSTED, posted_at=now)
            .execution_options(synchronize_session=False)
        )
    )
    if moved != 1:
        return
    session.refresh(claim)
    item = session.get(RuleItem, claim.rule_item_id)
    version = session.get(RuleItemVersion, claim.rule_item_version_id)
    assert item is not None and version is not None
    _post_entry(session, claim, item, version.rule, now, tz)


def _post_entry(
    session: Session,
    claim: Claim,
    item: ScoredItem,
    rule: rules.RuleItem,
    now: datetime,
    tz: ZoneInfo,
    locked: ledger.Head | None = None,
) -> None:
    """A claim now `posted` (by `_post`, or inserted so): its points decided again against
    what is posted under its item version's `rule`, then its entry appended (or the claim
    rejected, when a cap reached meanwhile leaves it nothing). `locked`: its household's
    account row, if the caller locked it already (`ledger.append`)."""
    target = Target(claim.household_id, claim.member_id, claim.village_id)
    evaluation = rules.evaluate(
        rule,
        claim.occurred_at.astimezone(tz),
        history(
            session,
            item,
            rule,
            target,
            claim.occurred_at,
            tz,
            (ClaimStatus.POSTED,),
            exclude_claim=claim.id,
        ),
        claim.units,
    )
    if evaluation.points == 0 and rule.kind != "veto":
        unissue(session, claim, claim.points, tz)
        claim.status, claim.points = ClaimStatus.REJECTED, 0
        claim.reject_reason = f"公示结束时重新核算：{evaluation.reason}"
        claim.posted_at = None
        return
    if abs(evaluation.points) < abs(claim.points):
        # Only ever lower: the notice showed these points, and the approvals and the budget
        # were decided on them; a cap reached meanwhile may cut them, nothing may raise them.
        unissue(session, claim, claim.points - evaluation.points, tz)
        claim.points, claim.capped = evaluation.points, evaluation.capped
        claim.reason = evaluation.reason
    if claim.points != 0:
        ledger.append(
            session,
            household_id=claim.household_id,
            kind="earn" if claim.points > 0 else "deduct",
            amount=claim.points,
            when=ledger.EntryTime(tz, at=now, counts_for=claim.occurred_at),
            origin=_origin(claim, claim.note),
            locked=locked,
        )
    if rule.kind == "veto" and rule.veto is not None:
        _apply_veto(session, claim, rule.veto, now, tz)
    session.flush()


def _apply_veto(
    session: Session, claim: Claim, veto: rules.VetoEffect, now: datetime, tz: ZoneInfo
) -> None:
    """一票否决: spendable points wiped by an entry, and a bar from boards by a flag —
    never a silent edit. The wipe carries the claim (a veto scores nothing, so it is the
    claim's one entry), so that withdrawing the veto finds what to give back."""
    if veto.wipe_available:
        account = ledger.account_for(session, claim.household_id, lock=True)
        if account.available > 0:
            ledger.append(
                session,
                household_id=claim.household_id,
                kind="expire",
                amount=-account.available,
                when=ledger.EntryTime(tz, at=now),
                origin=_origin(claim, VETO_WIPE_NOTE),
            )
    if veto.bar_periods > 0:
        # The bar starts with the deed's month, not the posting's: a veto decided in the last
        # days of March posts in April after its notice, and March's board must not keep the
        # household on its red list. A March board already closed stays as published; the
        # next board notes the bar (points.boards.corrections, `late_veto`).
        first = month_key(claim.occurred_at.astimezone(tz))
        session.add(
            HouseholdFlag(
                household_id=claim.household_id,
                kind="veto",
                claim_id=claim.id,
                from_month=first,
                until_month=add_months(first, veto.bar_periods - 1),
                note=f"一票否决：{veto.bar_periods} 个月内不参加评比",
                created_at=now,
            )
        )


class NotPostedVeto(DomainError):
    status = 409
    code = "not_posted_veto"
    message = "只有已生效的一票否决可以撤销"


class VetoWithdrawn(DomainError):
    status = 409
    code = "veto_withdrawn"
    message = "该一票否决已经撤销过了"


# What undoing a veto may reverse: its wipe, and an entry of its own if it ever had points.
VETO_ENTRY_KINDS = ledger.REVERSIBLE_KINDS | {"expire"}


def withdraw_veto(
    session: Session, actor: Actor, claim_id: int, reason: str, now: datetime, tz: ZoneInfo
) -> VetoWithdrawal:
    """The township withdraws a posted veto (撤销一票否决), e.g. one found wrong on appeal:
    what it wiped is given back by entries reversing its own, and its bar flag stops
    counting; the next board notes it. Once: the claim's row lock queues a second
    withdrawal, which then finds the first."""
    claim = _lock_claim(session, actor, claim_id)
    authorize(actor, "veto.withdraw")
    refuse_own_household(session, actor, claim.household_id)
    version = session.get(RuleItemVersion, claim.rule_item_version_id)
    assert version is not None
    if claim.status != ClaimStatus.POSTED or version.rule.kind != "veto":
        raise NotPostedVeto()
    if session.scalar(select(VetoWithdrawal.id).where(VetoWithdrawal.claim_id == claim.id)):
        raise VetoWithdrawn()
    withdrawal = VetoWithdrawal(
        claim_id=claim.id,
        village_id=claim.village_id,
        household_id=claim.household_id,
        reason=reason,
        restored=0,
        vetoed_month=month_key(claim.occurred_at.astimezone(tz)),
        month=month_key(now.astimezone(tz)),
        withdrawn_by=actor.user_id,
        withdrawn_at=now,
    )
    session.add(withdrawal)
    session.flush()
    for entry in _veto_entries(session, claim):
        if session.scalar(select(LedgerEntry.id).where(LedgerEntry.reverses_id == entry.id)):
            continue
        given = ledger.reverse(
            session,
            entry,
            reason=f"撤销一票否决：{reason}",
            created_by=actor.user_id,
            tz=tz,
            kinds=VETO_ENTRY_KINDS,
        )
        withdrawal.restored += given.amount
    session.execute(
        update(HouseholdFlag)
        .where(HouseholdFlag.claim_id == claim.id)
        .values(withdrawal_id=withdrawal.id)
        .execution_options(synchronize_session=False)
    )
    audit.record(session, actor, "veto.withdraw", withdrawal, village_id=claim.village_id)
    return withdrawal


def _veto_entries(session: Session, claim: Claim) -> list[LedgerEntry]:
    """What a posted veto wrote to the ledger. Its wipe carries the claim; one written
    before it did is the wipe posted with the claim, at its moment, for its item."""
    own = list(session.scalars(select(LedgerEntry).where(LedgerEntry.claim_id == claim.id)))
    if own:
        return own
    earlier = session.scalar(
        select(LedgerEntry)
        .join(Account, Account.id == LedgerEntry.account_id)
        .where(
            Account.household_id == claim.household_id,
            LedgerEntry.kind == "expire",
            LedgerEntry.claim_id.is_(None),
            LedgerEntry.note == VETO_WIPE_NOTE,
            LedgerEntry.rule_item_version_id == claim.rule_item_version_id,
            LedgerEntry.created_at == claim.posted_at,
        )
        .order_by(LedgerEntry.seq)
        .limit(1)
    )
    return [earlier] if earlier is not None else []


def due_claim_ids(session: Session, now: datetime) -> list[int]:
    return list(
        session.scalars(
            select(Claim.id)
            .where(Claim.status == ClaimStatus.IN_NOTICE, Claim.notice_ends_at <= now)
            .order_by(Claim.id)
        )
    )


def post_due(session: Session, now: datetime, tz: ZoneInfo) -> int:
    """Post every claim whose notice has ended, each in its own transaction, so one bad claim
    does not hold the others back and a concurrent run posts each claim once."""
    posted = 0
    for claim_id in due_claim_ids(session, now):
        session.rollback()
        claim = session.get(Claim, claim_id)
        if claim is None or claim.status != ClaimStatus.IN_NOTICE:
            continue
        _post(session, claim, now, tz, from_status=ClaimStatus.IN_NOTICE)
        if claim.status == ClaimStatus.POSTED:
            posted += 1
        session.commit()
    return posted


@dataclass(frozen=True)
class ClaimView:
    """A claim as its household and the cadres read it: the claim, and what is read beside
    it (the item as scored, the names, the approvals so far, its objections, a veto's
    withdrawal)."""

    claim: Claim
    rule_item: catalogs.ItemRef
    member_name: str | None
    household_name: str | None
    approvals: int
    objections: list[Objection]
    veto_withdrawal: VetoWithdrawal | None

    @property
    def evidence(self) -> list[Any]:
        return self.claim.evidence or []


def claim_view(session: Session, claim: Claim) -> ClaimView:
    return claim_views(session, [claim])[0]


def claim_views(session: Session, claims: list[Claim]) -> list[ClaimView]:
    """Each claim with what is read beside it, for a page of a list: one query per kind of
    thing (versions, members, households, approvals, objections, veto withdrawals), whatever
    the page's size, where reading them claim by claim cost five a claim."""
    if not claims:
        return []
    ids = [c.id for c in claims]
    versions = {
        v.id: v
        for v in session.scalars(
            select(RuleItemVersion).where(
                RuleItemVersion.id.in_({c.rule_item_version_id for c in claims})
            )
        )
    }
    members = ledger.member_names(session, {c.member_id for c in claims if c.member_id})
    households = {
        h.id: h
        for h in session.scalars(
            select(Household).where(Household.id.in_({c.household_id for c in claims}))
        )
    }
    approvals: dict[int, int] = {
        claim_id: count
        for claim_id, count in session.execute(
            select(ClaimApproval.claim_id, func.count())
            .where(ClaimApproval.claim_id.in_(ids))
            .group_by(ClaimApproval.claim_id)
        )
    }
    objections: dict[int, list[Objection]] = {}
    for objection in session.scalars(
        select(Objection).where(Objection.claim_id.in_(ids)).order_by(Objection.id)
    ):
        objections.setdefault(objection.claim_id, []).append(objection)
    items = {
        c.id: catalogs.item_ref(
            c.rule_item_id, c.rule_item_version_id, versions.get(c.rule_item_version_id)
        )
        for c in claims
    }
    vetoes = [c.id for c in claims if items[c.id].kind == "veto"]
    withdrawals: dict[int, VetoWithdrawal] = (
        {
            w.claim_id: w
            for w in session.scalars(
                select(VetoWithdrawal).where(VetoWithdrawal.claim_id.in_(vetoes))
            )
        }
        if vetoes
        else {}
    )
    views = []
    for claim in claims:
        member = members.get(claim.member_id) if claim.member_id else None
        household = households.get(claim.household_id)
        views.append(
            ClaimView(
                claim=claim,
                rule_item=items[claim.id],
                member_name=member[0] if member else None,
                household_name=household.name if household else None,
                approvals=approvals.get(claim.id, 0),
                objections=objections.get(claim.id, []),
                veto_withdrawal=withdrawals.get(claim.id),
            )
        )
    return views


# ---- the public notice as a villager reads it (公示栏) -----------------------------------------


def notices_statement(village_id: int) -> Select[Claim]:
    """Claims of the village in public notice now (under objection included: the notice
    still lists them), the ones ending first at the top."""
    return (
        select(Claim)
        .where(Claim.village_id == village_id, Claim.status.in_(IN_NOTICE))
        .order_by(Claim.notice_ends_at, Claim.id)
    )


def may_object(actor: Actor, claim: Claim, objected: bool, now: datetime) -> bool:
    """Whether this caller may object to the claim now, as `object_to` decides it: a
    villager of its village, not of its household, who has not objected to it yet, while
    its notice runs."""
    return (
        actor.role == VILLAGER
        and actor.village_id == claim.village_id
        and actor.household_id is not None
        and claim.household_id != actor.household_id
        and not objected
        and claim.status in IN_NOTICE
        and claim.notice_ends_at is not None
        and claim.notice_ends_at > now
    )


def notice_views(
    session: Session, actor: Actor, claims: list[Claim], now: datetime, tz: ZoneInfo
) -> list[dict[str, Any]]:
    """What the notice shows of each claim: who, for what and when, the note and photos,
    the objections so far and whether the caller may object. Five queries for a page,
    whatever its size."""
    if not claims:
        return []
    ids = [c.id for c in claims]
    versions: dict[int, dict[str, Any]] = dict(
        session.execute(
            select(RuleItemVersion.id, RuleItemVersion.data).where(
                RuleItemVersion.id.in_({c.rule_item_version_id for c in claims})
            )
        ).all()
    )
    member_ids = {c.member_id for c in claims if c.member_id}
    members = (
        dict(
            session.execute(
                select(Villager.id, Villager.name).where(Villager.id.in_(member_ids))
            ).all()
        )
        if member_ids
        else {}
    )
    households = dict(
        session.execute(
            select(Household.id, Household.name).where(
                Household.id.in_({c.household_id for c in claims})
            )
        ).all()
    )
    counts = dict(
        session.execute(
            select(Objection.claim_id, func.count())
            .where(Objection.claim_id.in_(ids))
            .group_by(Objection.claim_id)
        ).all()
    )
    mine = set(
        session.scalars(
            select(Objection.claim_id).where(
                Objection.claim_id.in_(ids), Objection.user_id == actor.user_id
            )
        )
    )
    out = []
    for claim in claims:
        data = versions.get(claim.rule_item_version_id) or {}
        out.append(
            {
                "claim_id": claim.id,
                "household_id": claim.household_id,
                "household_name": households.get(claim.household_id),
                "member_name": members.get(claim.member_id) if claim.member_id else None,
                "rule_item": data.get("name"),
                "category": data.get("category"),
                "points": claim.points,
                "status": claim.status,
                "notice_ends_at": claim.notice_ends_at,
                "note": claim.note,
                "deed_date": claim.occurred_at.astimezone(tz).date(),
                "evidence": list(claim.evidence or []),
                "objection_count": counts.get(claim.id, 0),
                "objected_by_me": claim.id in mine,
                "can_object": may_object(actor, claim, claim.id in mine, now),
            }
        )
    return out
