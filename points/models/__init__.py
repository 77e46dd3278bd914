"""All tables. Importing this module registers every model on `Base.metadata`."""

from .audit import AuditEntry
from .auth import ROLES, STAFF_ROLES, AuthSession, BindingToken, RefreshToken, User
from .base import Base, UTCDateTime, utcnow
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

__all__ = [
    "GENDERS", "HEAD", "RELATIONS", "ROLES", "STAFF_ROLES",
    "AuditEntry", "AuthSession", "Base", "BindingToken", "Household", "RefreshToken", "Shop",
    "Township", "UTCDateTime", "User", "Village", "VillagerGroup", "Villager", "shop_villages",
    "utcnow",
]
