"""Login sessions and JWTs: short access tokens, rotating refresh tokens kept as hashes.

A refresh token is spent by a conditional UPDATE; presenting a spent one revokes its whole
family (session), since it means a copy of the token is in someone else's hands — unless it
comes back within a short grace (`TokenSettings.reuse_grace`): a mini-program starting up
sends the same refresh from several pages at once, and each of those requests gets the pair
the first one was given, so the session survives its own launch."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, aliased

from .db import rowcount
from .errors import Unauthenticated
from .models import (
    STAFF_ROLES,
    AuthSession,
    Household,
    RefreshToken,
    Shop,
    User,
    Village,
    Villager,
    utcnow,
)
from .scope import Actor, VillagerScope

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "typ", "sid"]


class TokenInvalid(Unauthenticated):
    code = "token_invalid"
    message = "登录凭证无效，请重新登录"


class TokenExpired(Unauthenticated):
    code = "token_expired"
    message = "登录已过期，请重新登录"


class TokenRevoked(Unauthenticated):
    code = "token_revoked"
    message = "登录已失效，请重新登录"


class TokenReused(Unauthenticated):
    # Only this login (its family of tokens) ends; the user's other devices stay logged in.
    code = "token_reused"
    message = "登录凭证被重复使用，为安全起见本次登录已失效，请重新登录"


class AccountDisabled(Unauthenticated):
    code = "account_disabled"
    message = "账号已停用，请联系管理员"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int  # seconds the access token lives


@dataclass(frozen=True)
class TokenSettings:
    secret: str
    issuer: str
    audience: str
    access_ttl: timedelta
    refresh_ttl: timedelta
    # Several app servers' clocks differ by a little: a token just issued by one a second
    # ahead has an `iat` in the future of the next, which PyJWT refuses without leeway
    # (ImmatureSignatureError) — the user would be logged out by their first request.
    leeway: timedelta = timedelta(0)
    # How long a spent refresh token still answers the pair it was spent for.
    reuse_grace: timedelta = timedelta(0)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _encode(settings: TokenSettings, claims: dict[str, Any]) -> str:
    return jwt.encode(claims, settings.secret, algorithm=ALGORITHM)


def _decode(settings: TokenSettings, token: str, typ: str) -> dict[str, Any]:
    try:
        claims = jwt.decode(
            token,
            settings.secret,
            algorithms=[ALGORITHM],  # pinned: "none" and every other algorithm are refused
            audience=settings.audience,
            issuer=settings.issuer,
            leeway=settings.leeway,  # on `iat` and `exp` alike
            options={"require": REQUIRED_CLAIMS},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenExpired() from exc
    except jwt.PyJWTError as exc:
        raise TokenInvalid() from exc
    if claims.get("typ") != typ:
        raise TokenInvalid()
    return claims


def _sign_pair(
    settings: TokenSettings,
    user_id: int,
    sid: str,
    jti: str,
    issued: datetime,
    refresh_exp: datetime,
) -> TokenPair:
    """The pair of one refresh-token row. HS256 over the same claims gives the same bytes, so
    signing a row's pair again gives the very tokens it was issued with."""
    iat = int(issued.timestamp())
    base = {
        "iss": settings.issuer,
        "aud": settings.audience,
        "sub": str(user_id),
        "sid": sid,
        "iat": iat,
    }
    ttl = int(settings.access_ttl.total_seconds())
    access = _encode(settings, base | {"typ": "access", "exp": iat + ttl})
    refresh = _encode(
        settings, base | {"typ": "refresh", "exp": int(refresh_exp.timestamp()), "jti": jti}
    )
    return TokenPair(access, refresh, ttl)


def _issue(
    session: Session,
    settings: TokenSettings,
    user: User,
    sid: str,
) -> tuple[RefreshToken, TokenPair]:
    # Whole seconds, as the JWT carries them: the row signs the same tokens again.
    now = utcnow().replace(microsecond=0)
    jti = secrets.token_urlsafe(16)
    refresh_exp = now + settings.refresh_ttl
    pair = _sign_pair(settings, user.id, sid, jti, now, refresh_exp)
    row = RefreshToken(
        session_id=sid,
        token_hash=_hash(pair.refresh_token),
        jti=jti,
        created_at=now,
        expires_at=refresh_exp,
    )
    session.add(row)
    return row, pair


def login(session: Session, settings: TokenSettings, user: User) -> TokenPair:
    """Start a new session (token family) for a user who has just proven who they are."""
    if user.disabled:
        raise AccountDisabled()
    auth_session = AuthSession(id=secrets.token_hex(16), user_id=user.id)
    session.add(auth_session)
    session.flush()
    return _issue(session, settings, user, auth_session.id)[1]


# One query for the session, its user and everything the caller's scope (`Actor`) needs:
# for a user bound to a villager, the household, its village and township, and whether the
# villager is still active (a deactivated one may only read); the township of a cadre's
# village and of a clerk's shop. This runs on every request, so it reads plain
# columns (no ORM objects) and is built once: building a statement costs more CPU than
# running it.
_HOME_VILLAGE = aliased(Village)
_USER_VILLAGE = aliased(Village)
_AUTHENTICATE = (
    select(
        AuthSession.user_id,
        AuthSession.revoked_at,
        User.role,
        User.disabled,
        User.township_id,
        User.village_id,
        User.shop_id,
        User.villager_id,
        Villager.active,
        Household.id,
        Household.village_id,
        _HOME_VILLAGE.township_id,
        _USER_VILLAGE.township_id,
        Shop.township_id,
    )
    .join(User, User.id == AuthSession.user_id)
    .outerjoin(Villager, Villager.id == User.villager_id)
    .outerjoin(Household, Household.id == Villager.household_id)
    .outerjoin(_HOME_VILLAGE, _HOME_VILLAGE.id == Household.village_id)
    .outerjoin(_USER_VILLAGE, _USER_VILLAGE.id == User.village_id)
    .outerjoin(Shop, Shop.id == User.shop_id)
    .where(AuthSession.id == bindparam("sid"))
)


def authenticate(session: Session, settings: TokenSettings, token: str) -> tuple[Actor, str]:
    """The actor and session id behind an access token, checked against the database so that
    logout and disabling take effect at once rather than when the token expires."""
    claims = _decode(settings, token, "access")
    # Through the connection: plain columns need none of the ORM's result handling, and
    # nothing is pending to flush before the first query of a request.
    row = session.connection().execute(_AUTHENTICATE, {"sid": claims["sid"]}).first()
    if row is None or str(row[0]) != claims["sub"]:
        raise TokenInvalid()
    return _actor(tuple(row)), claims["sid"]


def _actor(row: tuple[Any, ...]) -> Actor:
    """The caller's scope from a row of `_AUTHENTICATE`, once the session is known to be the
    one presented: refused when the user is disabled or the session revoked."""
    (
        user_id,
        revoked_at,
        role,
        disabled,
        township_id,
        village_id,
        shop_id,
        villager_id,
        villager_active,
        household_id,
        home_village_id,
        home_township_id,
        user_village_township,
        shop_township,
    ) = row[:14]
    # Disabling also revokes the sessions; say the more useful thing first.
    if disabled:
        raise AccountDisabled()
    if revoked_at is not None:
        raise TokenRevoked()
    scope = None
    if household_id is not None:
        scope = VillagerScope(
            household_id, home_village_id, home_township_id, bool(villager_active)
        )
    return Actor.resolve(
        user_id=user_id,
        role=role,
        township_id=township_id,
        village_id=village_id,
        shop_id=shop_id,
        villager_id=villager_id,
        scope=scope,
        # Asked only for the user's own village (a villager's is answered by the scope).
        township_of_village=lambda _village_id: user_village_township,
        township_of_shop=lambda _shop_id: shop_township,
    )


# The staff console (管理后台): a browser's login held in a cookie `<session id>.<secret>`.
# The same session rows as the API's, so logout, disabling a user and a password reset end
# it at once, as they end the API's tokens.
_CONSOLE = _AUTHENTICATE.add_columns(AuthSession.secret_hash, AuthSession.last_seen_at)
# last_seen_at is written at most this often: a page load must not always be a write.
SEEN_EVERY = timedelta(minutes=1)


class ConsoleSessionExpired(Unauthenticated):
    code = "session_expired"
    message = "长时间未操作，已自动退出，请重新登录"


def open_console(session: Session, user: User, now: datetime) -> str:
    """Start a console session for a staff user who has just given their password; the
    cookie's value. Villagers have no console: they are refused as an unknown login is."""
    if user.disabled:
        raise AccountDisabled()
    if user.role not in STAFF_ROLES:
        raise TokenInvalid()
    secret = secrets.token_urlsafe(32)
    auth_session = AuthSession(
        id=secrets.token_hex(16),
        user_id=user.id,
        secret_hash=_hash(secret),
        created_at=now,
        last_seen_at=now,
    )
    session.add(auth_session)
    session.flush()
    return f"{auth_session.id}.{secret}"


def authenticate_console(
    session: Session, cookie: str, now: datetime, idle: timedelta, *, touch: bool = True
) -> tuple[Actor, str]:
    """The actor and session id behind a console cookie. A session unused for longer than
    `idle` is ended (committed by the caller) and refused with `session_expired`. `touch`
    False: a page polling on its own (a live list) is no sign that anyone is at the screen,
    so it does not keep the session alive."""
    sid, _, secret = cookie.partition(".")
    if not sid or not secret or len(sid) > 32:
        raise TokenInvalid()
    row = session.connection().execute(_CONSOLE, {"sid": sid}).first()
    if row is None or row.secret_hash is None:
        raise TokenInvalid()
    if not hmac.compare_digest(row.secret_hash, _hash(secret)):
        raise TokenInvalid()
    actor = _actor(tuple(row))
    if actor.role not in STAFF_ROLES:
        raise TokenInvalid()
    last_seen = row.last_seen_at
    if last_seen is not None and last_seen.tzinfo is None:
        last_seen = last_seen.replace(tzinfo=UTC)  # SQLite through the bare connection
    if last_seen is None or now - last_seen > idle:
        revoke_session(session, sid, "idle")
        raise ConsoleSessionExpired()
    if touch and now - last_seen >= SEEN_EVERY:
        session.execute(update(AuthSession).where(AuthSession.id == sid).values(last_seen_at=now))
    return actor, sid


def refresh(session: Session, settings: TokenSettings, token: str) -> tuple[User, TokenPair]:
    """Spend a refresh token for a new pair.

    The spend is a conditional UPDATE, so of several requests spending one token exactly one
    wins (on PostgreSQL the others wait on the row's lock until the winner commits; SQLite
    runs one writer at a time). Each of the others then finds the token spent: within the
    grace it answers the winner's pair again, signed anew from the successor's row (same
    claims, same key, same bytes); later, it is a stolen copy, and the family is revoked —
    committed before refusing, so the refusal cannot be rolled back with the request."""
    claims = _decode(settings, token, "refresh")
    row = session.scalars(
        select(RefreshToken).where(RefreshToken.token_hash == _hash(token))
    ).one_or_none()
    if row is None or row.session_id != claims["sid"]:
        raise TokenInvalid()
    auth_session = session.get(AuthSession, row.session_id)
    assert auth_session is not None
    owner = session.get(User, auth_session.user_id)
    if owner is None or owner.disabled:
        raise AccountDisabled()
    if auth_session.revoked_at is not None:
        raise TokenRevoked()
    now = utcnow()
    spent = rowcount(
        session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None))
            .values(used_at=now)
        )
    )
    if spent != 1:
        return owner, _repeat_or_revoke(session, settings, owner, row, now)
    successor, pair = _issue(session, settings, owner, auth_session.id)
    session.flush()
    session.execute(
        update(RefreshToken).where(RefreshToken.id == row.id).values(successor_id=successor.id)
    )
    return owner, pair


def _repeat_or_revoke(
    session: Session,
    settings: TokenSettings,
    owner: User,
    row: RefreshToken,
    now: datetime,
) -> TokenPair:
    """A spent token presented again: the pair it was spent for while the grace lasts (read
    afresh: the winner has committed, and this statement sees it), else the family ends."""
    spent = aliased(RefreshToken)
    found = session.execute(
        select(
            spent.used_at,
            RefreshToken.session_id,
            RefreshToken.jti,
            RefreshToken.created_at,
            RefreshToken.expires_at,
        )
        .join(RefreshToken, RefreshToken.id == spent.successor_id)
        .where(spent.id == row.id)
    ).first()
    if found is not None:
        used_at, sid, jti, issued, expires_at = found
        if jti is not None and used_at is not None and now - used_at <= settings.reuse_grace:
            return _sign_pair(settings, owner.id, sid, jti, issued, expires_at)
    revoke_session(session, row.session_id, "refresh_reused")
    session.commit()
    raise TokenReused()


def revoke_session(session: Session, sid: str, reason: str) -> None:
    session.execute(
        update(AuthSession)
        .where(AuthSession.id == sid, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
    )


def revoke_user_sessions(
    session: Session, user_id: int, reason: str, *, keep: str | None = None
) -> None:
    """End every session of the user, but `keep` (the one they are acting in) if given."""
    stmt = update(AuthSession).where(
        AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None)
    )
    if keep is not None:
        stmt = stmt.where(AuthSession.id != keep)
    session.execute(stmt.values(revoked_at=utcnow(), revoked_reason=reason))
