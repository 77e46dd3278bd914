"""The village registry: township → village → villager group → household → member (一户一档)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, UTCDateTime, utcnow

# 与户主关系: the relation of a member to the head of the household.
RELATIONS = ("户主", "配偶", "子女", "父母", "其他")
HEAD = "户主"
GENDERS = ("男", "女")


class Township(Base):  # 乡镇
    __tablename__ = "townships"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    code: Mapped[str | None] = mapped_column(String(40), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Village(Base):  # 村
    __tablename__ = "villages"
    __table_args__ = (UniqueConstraint("township_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    township_id: Mapped[int] = mapped_column(ForeignKey("townships.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    code: Mapped[str | None] = mapped_column(String(40), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    township: Mapped[Township] = relationship()


class VillagerGroup(Base):  # 村民小组
    __tablename__ = "villager_groups"
    __table_args__ = (UniqueConstraint("village_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))


class Household(Base):  # 户
    __tablename__ = "households"
    __table_args__ = (UniqueConstraint("village_id", "code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id"), index=True)
    # 户编号 of the village's roster: what a re-imported roster and an opening-balance file
    # name the household by. None for a household made one by one, without a roster.
    code: Mapped[str | None] = mapped_column(String(40))
    group_id: Mapped[int | None] = mapped_column(ForeignKey("villager_groups.id"), index=True)
    name: Mapped[str | None] = mapped_column(String(100))
    address: Mapped[str | None] = mapped_column(String(200))
    # The household asked to be left off public boards (红黑榜, printed and online): it is
    # shown there without its name. Its own view still shows its rank.
    public_board_opt_out: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    members: Mapped[list[Villager]] = relationship(
        back_populates="household", order_by="Villager.id"
    )
    group: Mapped[VillagerGroup | None] = relationship()

    @property
    def head(self) -> Villager | None:
        return next((m for m in self.members if m.relation == HEAD), None)


class Villager(Base):  # 村民 (a member of a household)
    __tablename__ = "villagers"
    __table_args__ = (
        CheckConstraint("relation IN ('户主','配偶','子女','父母','其他')", name="relation"),
        # One head per household, enforced by the database rather than by a read.
        Index(
            "uq_villagers_one_head",
            "household_id",
            unique=True,
            sqlite_where=text("relation = '户主'"),
            postgresql_where=text("relation = '户主'"),
        ),
        Index("ix_villagers_name_phone", "name", "phone"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), index=True)
    name: Mapped[str] = mapped_column(String(50))
    relation: Mapped[str] = mapped_column(String(10))
    phone: Mapped[str | None] = mapped_column(String(20))
    gender: Mapped[str | None] = mapped_column(String(4))
    birth_year: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The version of the member card (积分卡) in the villager's hands: a QR carrying any other
    # version is a card reported lost (挂失补办) and is refused. 0 is the first card, and the
    # version every card printed before cards had versions is read as.
    card_serial: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    household: Mapped[Household] = relationship(back_populates="members")

    @property
    def card_number(self) -> str:
        """The number printed on the card in the villager's hands: the villager's id, and
        after a reissue the card's version, so the old and the new card read differently."""
        number = f"{self.id:06d}"
        return f"{number}-{self.card_serial}" if self.card_serial else number


shop_villages = Table(
    "shop_villages",
    Base.metadata,
    Column("shop_id", ForeignKey("shops.id"), primary_key=True),
    Column("village_id", ForeignKey("villages.id"), primary_key=True),
)


class Shop(Base):  # 积分超市; its shelves and redemptions are in models/shop.py
    __tablename__ = "shops"
    id: Mapped[int] = mapped_column(primary_key=True)
    township_id: Mapped[int] = mapped_column(ForeignKey("townships.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    villages: Mapped[list[Village]] = relationship(secondary=shop_villages)

    @property
    def village_ids(self) -> list[int]:
        """The villages it serves, in id order, as the API lists them."""
        return sorted(v.id for v in self.villages)
