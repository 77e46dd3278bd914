"""The one authorisation mechanism (docs/DESIGN.md, Roles and scopes).

Two questions, always asked the same way:
- may this role take this action at all? `authorize(actor, action)`, else 403;
- is this object within the actor's scope? every object is fetched through `visible()`, so an
  object of another village, township or household is simply not found (404) and its
  existence is never confirmed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

from sqlalchemy import ColumnElement, Select, SQLColumnExpression, false, or_, select, true
from sqlalchemy.orm import Session

from .errors import Forbidden, NotBound, NotFound
from .models import (
    Account,
    Activity,
    AuditEntry,
    BoardSettings,
    BoardSnapshot,
    CheckIn,
    Claim,
    Household,
    LedgerEntry,
    Objection,
    Redemption,
    ReversalRequest,
    Reward,
    RuleCatalog,
    RuleItem,
    RuleItemVersion,
    Shop,
    StockMovement,
    Township,
    Upload,
    User,
    Village,
    Villager,
    VillagerGroup,
    shop_villages,
)

COUNTY = "county_admin"
TOWNSHIP = "township_admin"
CADRE = "cadre"
CLERK = "clerk"
VILLAGER = "villager"

ADMINS = frozenset({COUNTY, TOWNSHIP})
REGISTRY_STAFF = frozenset({COUNTY, TOWNSHIP, CADRE})

# Which roles may take which action. Scope (which objects) is decided by `visible()`.
ACTIONS: dict[str, frozenset[str]] = {
    "township.create": frozenset({COUNTY}),
    "township.update": frozenset({COUNTY}),
    "village.create": ADMINS,
    "village.update": ADMINS,
    "group.create": REGISTRY_STAFF,
    "household.create": REGISTRY_STAFF,
    "household.update": REGISTRY_STAFF,
    "member.create": REGISTRY_STAFF,
    "villager.update": REGISTRY_STAFF,
    "roster.import": REGISTRY_STAFF,
    "binding_token.create": REGISTRY_STAFF,
    # A villager may show their own household's member cards at the shop.
    "villager.card": REGISTRY_STAFF | {VILLAGER},
    # Printing a village's cards and reissuing a lost one (挂失补办) are the staff's.
    "villager.cards_print": REGISTRY_STAFF,
    "villager.card_reissue": REGISTRY_STAFF,
    "shop.create": ADMINS,
    "user.list": ADMINS,
    "user.create": ADMINS,
    "user.update": ADMINS,
    "audit.read": ADMINS,
    # 积分细则: a township's catalog and policies are the township's decision (a county admin
    # may set one up for any township); a village's own items (村规民约) may also be written
    # by its cadres, when the township's policy has allow_village_items (checked in
    # points.catalogs). Reading rules needs no action: villagers must be able to read them.
    "catalog.edit": ADMINS,
    "village_items.edit": ADMINS | {CADRE},
    "rules.evaluate": REGISTRY_STAFF,
    # 积分录入 and 审核: cadres of the village; township admins approve past the budget.
    "claim.award": REGISTRY_STAFF,
    "claim.review": REGISTRY_STAFF,
    # Withdrawing a claim (撤回) before it posts, e.g. a mistake found during 公示.
    "claim.withdraw": REGISTRY_STAFF,
    # 期初积分: points a village kept on paper before the system, entered once per household
    # by the township (not the village's own cadres: they would be setting their own).
    "opening_balance.import": ADMINS,
    # 冲正: a cadre corrects an entry, at or above the two-cadre threshold with a second.
    "ledger.reverse": REGISTRY_STAFF,
    # 撤销一票否决: the township's decision, as its catalog makes vetoes.
    "veto.withdraw": ADMINS,
    # Activities and check-in (签到): staff of the village run them and see their codes;
    # villagers check themselves in; a cadre checks in people without phones (代签).
    "activity.create": REGISTRY_STAFF,
    "activity.cancel": REGISTRY_STAFF,
    "activity.qr": REGISTRY_STAFF,
    "activity.checkins": REGISTRY_STAFF,
    "checkin.create": frozenset({VILLAGER}),
    "checkin.proxy": REGISTRY_STAFF,
    "checkin.checkout": REGISTRY_STAFF | {VILLAGER},
    # 积分超市: the township funds the shop and its clerks keep the shelves; villagers order
    # for their household; only a clerk hands goods out (scan, counter). A cadre may cancel
    # an order of their village (e.g. for an elderly villager who cannot get there).
    "reward.edit": ADMINS | {CLERK},
    "stock.adjust": ADMINS | {CLERK},
    "redemption.order": frozenset({VILLAGER}),
    "redemption.fulfil": frozenset({CLERK}),
    "redemption.counter": frozenset({CLERK}),
    "redemption.cancel": ADMINS | {CADRE, CLERK, VILLAGER},
    "settlement.read": ADMINS | {CLERK},
    "points_report.read": ADMINS,
    # 红黑榜 and rankings: a villager sees their village's public board, staff their scope.
    "board.read": REGISTRY_STAFF | {VILLAGER},
    "board.close": REGISTRY_STAFF,
    "board.settings": REGISTRY_STAFF,
    "board.township_settings": ADMINS,
    "ranking.township": ADMINS,
    "stats.read": REGISTRY_STAFF,
    "plate.print": REGISTRY_STAFF | {VILLAGER},
    "plate.renew": REGISTRY_STAFF | {VILLAGER},
    # 自主申报 and 公示异议 are the villager's own (staff award and review instead).
    "claim.submit": frozenset({VILLAGER}),
    "objection.create": frozenset({VILLAGER}),
}

# What a villager does through their bound WeChat that a deactivated villager (moved away,
# deceased: `villagers.active` false) may no longer do: earn, report, object, order, or
# renew the household's plate. Reading the passbook, the rules and the boards stays open,
# and so does cancelling an order, which only gives points and stock back.
ACTIVE_VILLAGER_ACTIONS = frozenset(
    {
        "checkin.create",
        "checkin.checkout",
        "claim.submit",
        "objection.create",
        "redemption.order",
        "plate.renew",
    }
)


class VillagerInactive(Forbidden):
    code = "villager_inactive"
    message = "您的村民身份已停用，只能查看积分，不能签到、申报、异议或兑换；如有疑问请联系村干部"


class VillagerScope(NamedTuple):
    """A bound user's household, the household's village and that village's township."""

    household_id: int
    village_id: int
    township_id: int | None
    active: bool = True  # the villager is still on the roster (not deactivated)


@dataclass(frozen=True)
class Actor:
    """Who is acting and where they may act, resolved once per request."""

    user_id: int
    role: str
    township_id: int | None = None
    village_id: int | None = None
    shop_id: int | None = None
    household_id: int | None = None
    villager_id: int | None = None
    villager_active: bool = True  # the bound villager is not deactivated

    @classmethod
    def of(cls, session: Session, user: User, villager_scope: VillagerScope | None = None) -> Actor:
        """`villager_scope`: the user's villager's household, its village and township, when
        the caller has read them already; otherwise they are read here, row by row."""
        scope = villager_scope if user.villager_id is not None else None
        if scope is None and user.villager is not None:
            household = user.villager.household
            scope = VillagerScope(household.id, household.village_id, None, user.villager.active)
        return cls.resolve(
            user_id=user.id,
            role=user.role,
            township_id=user.township_id,
            village_id=user.village_id,
            shop_id=user.shop_id,
            villager_id=user.villager_id,
            scope=scope,
            # The user's village and shop exist (foreign keys): session.get finds them.
            township_of_village=lambda village_id: (
                session.get(  # type: ignore[union-attr]
                    Village, village_id
                ).township_id
            ),
            township_of_shop=lambda shop_id: (
                session.get(  # type: ignore[union-attr]
                    Shop, shop_id
                ).township_id
            ),
        )

    @classmethod
    def resolve(
        cls,
        *,
        user_id: int,
        role: str,
        township_id: int | None,
        village_id: int | None,
        shop_id: int | None,
        villager_id: int | None,
        scope: VillagerScope | None,
        township_of_village: Callable[[int], int],
        township_of_shop: Callable[[int], int],
    ) -> Actor:
        """The actor of a user's stored fields and their villager's scope; the two functions
        give a township where the user row leaves it out (asked only then), so that
        authentication can answer them from the row it has already read."""
        household_id = None
        if scope is not None:
            # A villager's scope is their household; a cadre linked to their own roster
            # entry keeps their village scope, and the household only bars self-approval.
            household_id = scope.household_id
            if role == VILLAGER:
                village_id = scope.village_id
        if village_id is not None and township_id is None:
            if (
                scope is not None
                and scope.township_id is not None
                and village_id == scope.village_id
            ):
                township_id = scope.township_id
            else:
                township_id = township_of_village(village_id)
        if role == CLERK and shop_id is not None and township_id is None:
            township_id = township_of_shop(shop_id)
        return cls(
            user_id=user_id,
            role=role,
            township_id=township_id,
            village_id=village_id,
            shop_id=shop_id,
            household_id=household_id,
            villager_id=villager_id,
            villager_active=scope.active if scope is not None else True,
        )

    def can(self, action: str) -> bool:
        return self.role in ACTIONS[action]

    def require_household(self, message: str | None = None) -> int:
        """The actor's own household (户), or the one refusal every operation that needs it
        gives: a villager's account not yet bound to the roster answers 403 `not_bound`."""
        if self.household_id is None:
            raise NotBound(message)
        return self.household_id


def authorize(actor: Actor, action: str) -> None:
    if not actor.can(action):
        raise Forbidden()
    if action in ACTIVE_VILLAGER_ACTIONS and actor.role == VILLAGER and not actor.villager_active:
        raise VillagerInactive()


class SelfApproval(Forbidden):
    code = "self_approval"
    message = "不能审核或处理自己家庭的积分（录入、审核、撤回、处理异议、冲正）"


def is_own_household(session: Session, actor: Actor, household_id: int) -> bool:
    """Whether the household is the actor's own. A staff account is of a household once an
    admin links it to its roster entry (User.villager_id); unlinked, it has none."""
    if actor.villager_id is None:
        return False
    own = actor.household_id
    if own is None:
        own = session.scalar(select(Villager.household_id).where(Villager.id == actor.villager_id))
    return own == household_id


def refuse_own_household(
    session: Session, actor: Actor, household_id: int, message: str | None = None
) -> None:
    """Staff never decide points of their own household (award, approve, reject, withdraw,
    resolve an objection, reverse an entry, withdraw a veto): the one check every such
    decision makes."""
    if is_own_household(session, actor, household_id):
        raise SelfApproval(message)


def village_clause(
    actor: Actor, village_id: SQLColumnExpression[int | None]
) -> ColumnElement[bool]:
    """The villages an actor may see, as a condition on a village id column.

    None for a clerk (店员), not even the villages their shop serves: a clerk works the
    counter, not the village's records. Their shop, its shelf and its orders are scoped by
    the shop (below); the household at the counter is reached only through the member card
    its villager shows (`shop.counter.card_holder`), and then only its name, available
    points and whether it qualifies. So the households, members, passbooks, claims,
    objections, proof photos, activities, check-ins, boards and statistics of a village are
    all "not found" to a clerk, whatever endpoint names them."""
    if actor.role == COUNTY:
        return true()
    if actor.role == TOWNSHIP:
        return village_id.in_(select(Village.id).where(Village.township_id == actor.township_id))
    if actor.role in (CADRE, VILLAGER) and actor.village_id is not None:
        return village_id == actor.village_id
    return false()


def holds_village(village: Village) -> ColumnElement[bool]:
    """`village_clause` turned round: the accounts (`User`) whose own scope holds this
    village: the county's admins, its township's admins and its cadres. A clerk's holds
    none, and a villager's only their household."""
    return or_(
        User.role == COUNTY,
        (User.role == TOWNSHIP) & (User.township_id == village.township_id),
        (User.role == CADRE) & (User.village_id == village.id),
    )


def _household_clause(actor: Actor) -> ColumnElement[bool]:
    if actor.role == VILLAGER:
        return Household.id == actor.household_id if actor.household_id else false()
    return village_clause(actor, Household.village_id)


def _clause(actor: Actor, model: type) -> ColumnElement[bool]:
    if model is Township:
        return true() if actor.role == COUNTY else Township.id == actor.township_id
    if model is Village:
        return village_clause(actor, Village.id)
    if model is VillagerGroup:
        return village_clause(actor, VillagerGroup.village_id)
    if model is Household:
        return _household_clause(actor)
    if model is Villager:
        return Villager.household_id.in_(select(Household.id).where(_household_clause(actor)))
    if model is Shop:
        if actor.role == COUNTY:
            return true()
        if actor.role == TOWNSHIP:
            return Shop.township_id == actor.township_id
        if actor.role == CLERK:
            return Shop.id == actor.shop_id
        return Shop.id.in_(
            select(shop_villages.c.shop_id).where(village_clause(actor, shop_villages.c.village_id))
        )
    if model is User:
        if actor.role == COUNTY:
            return true()
        if actor.role == TOWNSHIP:
            return User.township_id == actor.township_id
        return User.id == actor.user_id
    if model is AuditEntry:
        if actor.role == COUNTY:
            return true()
        if actor.role == TOWNSHIP:
            return AuditEntry.township_id == actor.township_id
        return false()
    if model in (Claim, Account, ReversalRequest):
        if actor.role == VILLAGER:
            return model.household_id == actor.household_id if actor.household_id else false()
        return village_clause(actor, model.village_id)
    if model is LedgerEntry:
        return LedgerEntry.account_id.in_(select(Account.id).where(_clause(actor, Account)))
    if model is Objection:
        return Objection.claim_id.in_(select(Claim.id).where(_clause(actor, Claim)))
    if model is Upload:
        # A photo is seen by whoever uploaded it and by the staff of its village, who review
        # the claim it proves.
        if actor.role == VILLAGER:
            return Upload.user_id == actor.user_id
        return or_(Upload.user_id == actor.user_id, village_clause(actor, Upload.village_id))
    if model is RuleCatalog:
        return _catalog_clause(actor)
    if model is RuleItem:
        return RuleItem.catalog_id.in_(select(RuleCatalog.id).where(_catalog_clause(actor)))
    if model is RuleItemVersion:
        return RuleItemVersion.item_id.in_(select(RuleItem.id).where(_clause(actor, RuleItem)))
    if model is BoardSnapshot:
        return village_clause(actor, BoardSnapshot.village_id)
    if model is BoardSettings:
        if actor.role == COUNTY:
            return true()
        return or_(
            BoardSettings.township_id == actor.township_id,
            village_clause(actor, BoardSettings.village_id),
        )
    if model in (Reward, StockMovement):
        return model.shop_id.in_(select(Shop.id).where(_clause(actor, Shop)))
    if model is Redemption:
        # A clerk sees their shop's orders; a villager their household's; staff their
        # villages' (a village may be served by more than one shop).
        if actor.role == CLERK:
            return Redemption.shop_id == actor.shop_id
        if actor.role == VILLAGER:
            return Redemption.household_id == actor.household_id if actor.household_id else false()
        return village_clause(actor, Redemption.village_id)
    if model is Activity:
        return village_clause(actor, Activity.village_id)
    if model is CheckIn:
        if actor.role == VILLAGER:
            return CheckIn.household_id == actor.household_id if actor.household_id else false()
        return village_clause(actor, CheckIn.village_id)
    raise TypeError(f"no scope rule for {model.__name__}")


def _catalog_clause(actor: Actor) -> ColumnElement[bool]:
    # Everyone of a township sees its catalog (their village uses it; a clerk reads the
    # exchange rate that cash at the counter is counted at); a village's own items are seen
    # like the village itself.
    if actor.role == COUNTY:
        return true()
    township = (
        RuleCatalog.township_id == actor.township_id if actor.township_id is not None else false()
    )
    return or_(township, village_clause(actor, RuleCatalog.village_id))


M = TypeVar("M")


def visible(actor: Actor, model: type[M]) -> Select[M]:
    """`select(model)` narrowed to what the actor may see."""
    return select(model).where(_clause(actor, model))


def get_visible(session: Session, actor: Actor, model: type[M], object_id: int) -> M:
    obj = session.scalars(
        # Every model scoped here has an integer `id`; M is unbounded, so mypy cannot see it.
        visible(actor, model).where(model.id == object_id)  # type: ignore[attr-defined]
    ).first()
    if obj is None:
        raise NotFound()
    return obj


def get_for(session: Session, actor: Actor | None, model: type[M], object_id: int) -> M:
    """`get_visible`, or for `actor` None (the operator at the command line, who sees the
    whole county) the object itself; not found either way is NotFound."""
    if actor is not None:
        return get_visible(session, actor, model, object_id)
    obj = session.get(model, object_id)
    if obj is None:
        raise NotFound()
    return obj


def authorize_unless_operator(actor: Actor | None, action: str) -> None:
    """`authorize`, except for the operator at the command line (`actor` None)."""
    if actor is not None:
        authorize(actor, action)


def sees_phone(actor: Actor, village_id: int) -> bool:
    """Phone numbers are shown only to the cadres of the villager's own village."""
    return actor.role == CADRE and actor.village_id == village_id


def mask_phone(phone: str | None) -> str | None:
    if not phone:
        return phone
    if len(phone) < 7:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


def township_village_ids(session: Session, actor: Actor) -> list[int] | None:
    """A township admin's villages, for a list read village by village (`paginate`'s
    `parts`); None for every other role, whose lists are one village, one shop or all."""
    if actor.role != TOWNSHIP or actor.township_id is None:
        return None
    return list(
        session.scalars(
            select(Village.id).where(Village.township_id == actor.township_id).order_by(Village.id)
        )
    )
