"""The points supermarket (积分超市): rewards on the shelf, their stock movements, and
redemptions (兑换单) with their lines."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from .base import Base, UTCDateTime, utcnow

REDEMPTION_STATUSES = ("reserved", "fulfilled", "cancelled", "expired")
REDEMPTION_SOURCES = ("order", "counter")
# initial: put on the shelf; restock: goods delivered; correction: a count found a difference.
STOCK_MOVEMENT_KINDS = ("initial", "restock", "correction")


class DecimalText(TypeDecorator[Decimal]):
    """An exact decimal kept as text: SQLite has no decimal type (its NUMERIC is a float), and
    yuan amounts and exchange rates must come back exactly as written."""

    impl = String(24)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: object) -> str | None:
        return None if value is None else str(Decimal(value))

    def process_result_value(self, value: str | None, dialect: object) -> Decimal | None:
        return None if value is None else Decimal(value)


class Reward(Base):  # 商品: a shelf item priced in points
    __tablename__ = "rewards"
    __table_args__ = (
        UniqueConstraint("shop_id", "name"),
        # The database itself refuses overselling, whatever the code above it does.
        CheckConstraint("stock >= 0", name="stock_not_negative"),
        CheckConstraint("points > 0", name="points_positive"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    points: Mapped[int] = mapped_column(Integer)
    # Moved only by conditional updates: orders reserve, voids return, restocks add.
    stock: Mapped[int] = mapped_column(Integer, default=0)
    # A link typed in before pictures were uploaded (shown as it is, never accepted anew);
    # `image_name` is the picture the service checked and stored (points/reward_images.py).
    image_url: Mapped[str | None] = mapped_column(String(500))
    image_name: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class StockMovement(Base):
    """A restock or a correction of a reward's stock: who, why, by how much, and the stock it
    left. Orders and voids are not here: their lines are the record of those."""

    __tablename__ = "stock_movements"
    __table_args__ = (
        CheckConstraint("kind IN ('initial','restock','correction')", name="kind"),
        Index("ix_stock_movements_reward", "reward_id", "id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    reward_id: Mapped[int] = mapped_column(ForeignKey("rewards.id"))
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"), index=True)
    kind: Mapped[str] = mapped_column(String(12))
    change: Mapped[int] = mapped_column(Integer)
    stock_after: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(200))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Redemption(Base):  # 兑换单
    """Two-phase (docs/DESIGN.md, The supermarket): `reserved` holds the points (available →
    held) and the stock; the clerk's scan makes it `fulfilled` and posts the redeem entry out
    of the hold; cancel or expiry voids it (`cancelled`/`expired`) and returns both. A counter
    redemption is reserved and fulfilled in one transaction."""

    __tablename__ = "redemptions"
    __table_args__ = (
        CheckConstraint("status IN ('reserved','fulfilled','cancelled','expired')", name="status"),
        CheckConstraint("source IN ('order','counter')", name="source"),
        CheckConstraint("points >= 0 AND points <= total_points", name="points_in_range"),
        Index("ix_redemptions_shop_month", "shop_id", "status", "month"),
        Index("ix_redemptions_due", "status", "expires_at"),
        Index("ix_redemptions_household", "household_id", "id"),
        # The order lists, newest first (migration 0020): a village's (of a status), a shop's,
        # a status's.
        Index("ix_redemptions_village", "village_id", "id"),
        Index("ix_redemptions_village_status", "village_id", "status", "id"),
        Index("ix_redemptions_shop", "shop_id", "id"),
        # A township admin's count of one shop's orders, in the admin's villages (0023).
        Index("ix_redemptions_shop_village", "shop_id", "village_id"),
        Index("ix_redemptions_status", "status", "id"),
        # A pickup number names one open order of its shop: the clerk types it instead of
        # scanning. Unique among the shop's reserved orders only, so numbers come back into
        # use once an order is picked up or voided.
        Index(
            "uq_redemptions_open_pickup_code",
            "shop_id",
            "pickup_code",
            unique=True,
            sqlite_where=text("status = 'reserved'"),
            postgresql_where=text("status = 'reserved'"),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"))
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id"))  # ix_redemptions_village
    member_id: Mapped[int | None] = mapped_column(ForeignKey("villagers.id"))
    source: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(10))
    total_points: Mapped[int] = mapped_column(Integer)  # the goods at shelf prices
    cash_paid: Mapped[Decimal] = mapped_column(DecimalText, default=Decimal("0.00"))  # 现金补差
    points: Mapped[int] = mapped_column(Integer)  # spent: total_points less what cash paid
    # Yuan per point of the household's village when ordered: the settlement's price.
    exchange_rate: Mapped[Decimal] = mapped_column(DecimalText)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fulfilled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fulfilled_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    month: Mapped[str | None] = mapped_column(String(7))  # of the redeem entry, when fulfilled
    # A redemption posts at most one entry: the database refuses a second.
    ledger_entry_id: Mapped[int | None] = mapped_column(
        ForeignKey("ledger_entries.id"), unique=True
    )
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    voided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    void_reason: Mapped[str | None] = mapped_column(String(200))
    pickup_code: Mapped[str | None] = mapped_column(String(6))  # 取货号, for orders only

    lines: Mapped[list[RedemptionLine]] = relationship(
        order_by="RedemptionLine.id", cascade="all, delete-orphan"
    )


class RedemptionLine(Base):
    """One reward on a redemption, with its name and price as they were when ordered."""

    __tablename__ = "redemption_lines"
    __table_args__ = (
        UniqueConstraint("redemption_id", "reward_id"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    redemption_id: Mapped[int] = mapped_column(ForeignKey("redemptions.id"), index=True)
    reward_id: Mapped[int] = mapped_column(ForeignKey("rewards.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    unit_points: Mapped[int] = mapped_column(Integer)
    quantity: Mapped[int] = mapped_column(Integer)
    points: Mapped[int] = mapped_column(Integer)
