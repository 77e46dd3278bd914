"""All tables. Importing this module registers every model on `Base.metadata`."""

from .activities import Activity, CheckIn
from .audit import AuditEntry
from .base import Base, UTCDateTime, utcnow
from .boards import BoardSettings, BoardSnapshot, LatePosting, PublicLink
from .claims import (
    CLAIM_SOURCES,
    CLAIM_STATUSES,
    OBJECTION_STATUSES,
    Claim,
    ClaimApproval,
    HouseholdFlag,
    IdempotencyKey,
    MonthlyIssued,
    Objection,
    Upload,
    VetoWithdrawal,
)
from .jobs import JobRun
from .ledger import (
    ENTRY_KINDS,
    REVERSAL_REQUEST_STATUSES,
    Account,
    LedgerEntry,
    MemberMonthTotal,
    MonthTotal,
    ReversalRequest,
)
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
from .resets import PeriodReset, PeriodResetHold
from .rules import RuleCatalog, RuleItem, RuleItemVersion
from .sessions import ROLES, STAFF_ROLES, AuthSession, BindingToken, RefreshToken, User
from .settings import AppSettings
from .shop import (
    REDEMPTION_SOURCES,
    REDEMPTION_STATUSES,
    STOCK_MOVEMENT_KINDS,
    Redemption,
    RedemptionLine,
    Reward,
    StockMovement,
)

__all__ = [
    "REDEMPTION_SOURCES", "REDEMPTION_STATUSES", "STOCK_MOVEMENT_KINDS", "Redemption",
    "RedemptionLine", "Reward", "StockMovement",
    "GENDERS", "HEAD", "RELATIONS", "ROLES", "STAFF_ROLES",
    "AuditEntry", "AuthSession", "Base", "BindingToken", "Household", "RefreshToken", "Shop",
    "Township", "UTCDateTime", "User", "Village", "VillagerGroup", "Villager", "shop_villages",
    "utcnow",
    "RuleCatalog", "RuleItem", "RuleItemVersion",
    "CLAIM_SOURCES", "CLAIM_STATUSES", "OBJECTION_STATUSES", "ENTRY_KINDS", "Account", "Claim",
    "ClaimApproval",
    "HouseholdFlag", "IdempotencyKey", "LedgerEntry", "MemberMonthTotal", "MonthlyIssued",
    "MonthTotal", "Objection", "Upload",
    "REVERSAL_REQUEST_STATUSES", "ReversalRequest", "VetoWithdrawal",
    "Activity", "CheckIn",
    "BoardSettings", "BoardSnapshot", "LatePosting", "PublicLink",
    "PeriodReset", "PeriodResetHold", "AppSettings", "JobRun",
]
