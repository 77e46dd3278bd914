"""Who is calling: the bearer token checked once per request and the caller's scope."""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache

from flask import current_app, g, request

from points import sessions
from points.errors import Unauthenticated
from points.models import User
from points.scope import Actor
from points.sessions import TokenSettings
from points.tokens import TokenCodec

from . import config as app_config
from .extensions import db


def token_settings() -> TokenSettings:
    config = current_app.config
    return TokenSettings(
        secret=config["SECRET_KEY"],
        issuer=config["JWT_ISSUER"],
        audience=config["JWT_AUDIENCE"],
        access_ttl=timedelta(minutes=config["ACCESS_TOKEN_MINUTES"]),
        refresh_ttl=timedelta(days=config["REFRESH_TOKEN_DAYS"]),
        leeway=timedelta(seconds=config["JWT_LEEWAY_SECONDS"]),
        reuse_grace=timedelta(seconds=config["REFRESH_REUSE_GRACE_SECONDS"]),
    )


def qr_codec() -> TokenCodec:
    config = current_app.config
    return _keyring(
        config["SECRET_KEY"],
        config["QR_KEY_ID"],
        tuple(sorted(app_config.qr_old_secrets(config).items())),
        frozenset(app_config.qr_revoked_key_ids(config)),
    )


@lru_cache(maxsize=8)
def _keyring(
    secret: str, kid: int, old: tuple[tuple[int, str], ...], revoked: frozenset[int]
) -> TokenCodec:
    # Deriving the ring is a few HMACs; cached because every check-in decodes a code.
    return TokenCodec.keyring(secret, kid, dict(old), revoked)


def _authenticate() -> tuple[Actor, str]:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated()
    return sessions.authenticate(db.session, token_settings(), token.strip())


def current_actor() -> Actor:
    """Who is calling, checked once per request (401 without a live session)."""
    if "actor" not in g:
        g.actor, g.session_id = _authenticate()
    return g.actor


def current_user() -> User:
    """The caller's user row, for the few views that show or change it; most need only
    `current_actor()`, which authentication builds without loading it."""
    if "user" not in g:
        g.user = db.session.get(User, current_actor().user_id)
    return g.user


def current_session_id() -> str:
    current_actor()
    return g.session_id
