"""All tables. Importing this module registers every model on `Base.metadata`."""

from .audit import AuditEntry
from .auth import ROLES, STAFF_ROLES, AuthSession, BindingToken, RefreshToken, User
from .base import Base, UTCDateTime, utcnow
from .claims import (
    CLAIM_SOURCES,
    CLAIM_STATUSES,
    Claim,
    ClaimApproval,
    HouseholdFlag,
    IdempotencyKey,
    Objection,
    Upload,
)
from .ledger import ENTRY_KINDS, Account, LedgerEntry, MemberMonthTotal, MonthTotal
from .registry import (
    GENDERS,
    HEAD,
    RELATIONS,
    Household,
    Shop,
    Township,
    Village,
    Villager,
    VillagerGroup,
    shop_villages,
)
from .rules import RuleCatalog, RuleItem, RuleItemVersion

__all__ = [
    "GENDERS", "HEAD", "RELATIONS", "ROLES", "STAFF_ROLES",
    "AuditEntry", "AuthSession", "Base", "BindingToken", "Household", "RefreshToken", "Shop",
    "Township", "UTCDateTime", "User", "Village", "VillagerGroup", "Villager", "shop_villages",
    "utcnow",
    "RuleCatalog", "RuleItem", "RuleItemVersion",
    "CLAIM_SOURCES", "CLAIM_STATUSES", "ENTRY_KINDS", "Account", "Claim", "ClaimApproval",
    "HouseholdFlag", "IdempotencyKey", "LedgerEntry", "MemberMonthTotal", "MonthTotal",
    "Objection", "Upload",
]
