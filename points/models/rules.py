"""Rule catalogs (积分细则) as stored: a catalog, its items, and every version of each item.

An item is a stable identity (code, place in the catalog); what it says lives in versions.
Editing an item inserts a new version and moves `current_version_id`; a version is never
updated or deleted, so whatever was awarded against a version (claims, ledger entries) still
shows the exact points and wording it was awarded under, years later, when the village asks.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    event,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

import rules

from .base import Base, UTCDateTime, utcnow


class RuleCatalog(Base):  # 积分细则
    """A township's reference catalog, or a village's own items (村规民约), never both.

    A village uses its township's catalog plus its own items. `policy` is
    `rules.policy_to_dict`; on a village catalog None means "the township's policy", so a
    township's later change of, say, notice days reaches every village that did not set its
    own."""

    __tablename__ = "rule_catalogs"
    __table_args__ = (
        CheckConstraint("(township_id IS NULL) <> (village_id IS NULL)", name="one_owner"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    # unique: one catalog per township and one per village; NULLs never collide.
    township_id: Mapped[int | None] = mapped_column(ForeignKey("townships.id"), unique=True)
    village_id: Mapped[int | None] = mapped_column(ForeignKey("villages.id"), unique=True)
    # none_as_null: None must be SQL NULL ("inherit"), not the JSON value null.
    policy: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    categories: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RuleItem(Base):  # 细则条目: the identity; its content is in RuleItemVersion
    __tablename__ = "rule_items"
    __table_args__ = (UniqueConstraint("catalog_id", "code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    catalog_id: Mapped[int] = mapped_column(ForeignKey("rule_catalogs.id"), index=True)
    # The code is the item's name in YAML files and on printed sheets, so it never changes;
    # a new code is a new item.
    code: Mapped[str] = mapped_column(String(40))
    # Order in the catalog, so an export lists items as the township wrote them.
    position: Mapped[int] = mapped_column(Integer)
    # use_alter: items and versions point at each other; the constraint is added after both
    # tables exist. Deferred to commit, so that rows of the two tables can be inserted or
    # emptied in either order within a transaction. Null only while an item is being created.
    current_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("rule_item_versions.id", use_alter=True, deferrable=True, initially="DEFERRED")
    )
    # Set when a catalog import (replace) drops the item: it leaves the catalog but keeps its
    # versions, because awards point at them. An import that brings the code back revives it.
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    catalog: Mapped[RuleCatalog] = relationship()
    # post_update: the item row is inserted first, then its version, then this pointer.
    current_version: Mapped[RuleItemVersion | None] = relationship(
        foreign_keys=[current_version_id], post_update=True
    )


class RuleItemVersion(Base):  # one wording of an item, immutable
    __tablename__ = "rule_item_versions"
    __table_args__ = (UniqueConstraint("item_id", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("rule_items.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)  # 1, 2, 3 … per item
    data: Mapped[dict[str, Any]] = mapped_column(JSON)  # rules.item_to_dict of the item
    # Copied out of `data` so reports can sum and compare without parsing JSON.
    points: Mapped[int] = mapped_column(Integer)
    # The item's `hourly` (scored by the hour at check-out), copied out of `data` like the
    # points; `data` leaves it out when the unit says it (rules.item_to_dict).
    hourly: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # None: the CLI
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    item: Mapped[RuleItem] = relationship(foreign_keys=[item_id])

    @property
    def rule(self) -> rules.RuleItem:
        """The item as the engine reads it. `data` was validated when it was written, so this
        only rebuilds the frozen dataclass."""
        return stored_rule(self.data)


# What was stored was validated when it was written, and a stored version never changes; the
# parsed, frozen value is kept by its JSON text, since rebuilding it on every check-in and
# award (each field checked again) costs more than the query that read it.
@lru_cache(maxsize=512)
def _parse_rule(text: str) -> rules.RuleItem:
    return rules.parse_item(json.loads(text), None)


@lru_cache(maxsize=512)
def _parse_policy(text: str) -> rules.Policy:
    return rules.parse_policy(json.loads(text))


def _text(data: dict[str, Any] | str) -> str:
    # Text read from the column is its own key; a decoded value is keyed by its canonical
    # JSON. Either way the same content parses to the same value.
    return data if isinstance(data, str) else json.dumps(data, sort_keys=True, ensure_ascii=False)


def stored_rule(data: dict[str, Any] | str) -> rules.RuleItem:
    """A stored item version as the engine reads it: the decoded value, or its JSON text
    as read from the column."""
    return _parse_rule(_text(data))


def stored_policy(data: dict[str, Any] | str) -> rules.Policy:
    """A stored catalog policy as the engine reads it (decoded, or its JSON text)."""
    return _parse_policy(_text(data))


@event.listens_for(RuleItemVersion, "before_update")
def _versions_are_immutable(_mapper: Any, _connection: Any, target: RuleItemVersion) -> None:
    # Awards keep pointing at a version; changing one would rewrite history silently.
    raise RuntimeError(f"rule item version {target.id} is immutable; insert a new version")


@event.listens_for(RuleItemVersion, "before_delete")
def _versions_are_kept(_mapper: Any, _connection: Any, target: RuleItemVersion) -> None:
    raise RuntimeError(f"rule item version {target.id} is kept for history; never delete it")
