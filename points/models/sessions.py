"""Users, their login sessions and binding tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, String, false, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, UTCDateTime, utcnow
from .registry import Villager

ROLES = ("county_admin", "township_admin", "cadre", "clerk", "villager")
STAFF_ROLES = ("county_admin", "township_admin", "cadre", "clerk")


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(
            "role IN ('county_admin','township_admin','cadre','clerk','villager')", name="role"
        ),
        # One roster villager is bound to at most one WeChat user. A staff account linked to
        # its holder's roster entry (to bar self-approval) may share it with that person's
        # own WeChat user, so the uniqueness holds among villager users only.
        Index(
            "uq_users_villager_binding",
            "villager_id",
            unique=True,
            sqlite_where=text("role = 'villager'"),
            postgresql_where=text("role = 'villager'"),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    role: Mapped[str] = mapped_column(String(20))
    username: Mapped[str | None] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    # WeChat users log in by openid; staff by username and password.
    openid: Mapped[str | None] = mapped_column(String(128), unique=True)
    unionid: Mapped[str | None] = mapped_column(String(128))
    name: Mapped[str | None] = mapped_column(String(50))
    township_id: Mapped[int | None] = mapped_column(ForeignKey("townships.id"), index=True)
    village_id: Mapped[int | None] = mapped_column(ForeignKey("villages.id"), index=True)
    shop_id: Mapped[int | None] = mapped_column(ForeignKey("shops.id"), index=True)
    # A villager user: the roster entry it is bound to (绑定). A staff account: its holder's
    # own roster entry, set by an admin, so that they never decide their household's points.
    villager_id: Mapped[int | None] = mapped_column(ForeignKey("villagers.id"))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set when someone else chose the password (an admin creating the account or resetting
    # it): the holder must choose their own before the console lets them do anything else.
    # Cleared when they change it themselves.
    must_change_password: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    villager: Mapped[Villager | None] = relationship()


class AuthSession(Base):
    """A login and the family of refresh tokens rotated from it.

    Access tokens name their session, so revoking the session (logout, a reused refresh token,
    a disabled user) ends every token of it at once."""

    __tablename__ = "auth_sessions"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(40))
    # A staff console login (管理后台) is opened by a cookie, not a bearer token: the cookie
    # holds this id and a secret, the row the secret's SHA-256. Null for the API's sessions,
    # so no cookie opens one of them.
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    # When the console session was last used, for its idle timeout (to the minute).
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("auth_sessions.id"), index=True)
    # sha256 of the token: a copy of the table cannot be replayed.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The JWT's id: with SECRET_KEY, created_at (its `iat`) and expires_at it signs this very
    # token again, which is how a refresh repeated within REFRESH_REUSE_GRACE_SECONDS answers
    # the same pair. It is no token: without the key a copy of the table replays nothing.
    jti: Mapped[str | None] = mapped_column(String(32))
    # The token this one was spent for (set when it is spent).
    successor_id: Mapped[int | None] = mapped_column(ForeignKey("refresh_tokens.id"))


class BindingToken(Base):
    """A single-use code a cadre prints so a villager's WeChat account joins the roster."""

    __tablename__ = "binding_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    villager_id: Mapped[int] = mapped_column(ForeignKey("villagers.id"), index=True)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    used_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
