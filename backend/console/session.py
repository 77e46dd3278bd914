"""The console's login: a server-side session in a cookie, and its CSRF token.

The cookie holds `<session id>.<secret>` of an `AuthSession` row (points/sessions.py), so a
logout, a disabled user and a password reset end a console login at once, as they end the
API's tokens. It is HttpOnly (no script reads it), SameSite=Lax (no other site's form or
request carries it) and Secure outside development.

Every state-changing request carries a CSRF token: the form field `csrf_token` or the header
`X-CSRF-Token` (htmx sends it from the page's `hx-headers`). The token is an HMAC of the
session id under SECRET_KEY, so it needs no storage and dies with the session. The login form,
before any session exists, is protected by a double-submit token: a random value in a cookie
of its own and the same value in the form."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from flask import current_app, g, request
from werkzeug.wrappers import Response

from points import sessions
from points.scope import Actor

from ..clock import now
from ..extensions import db

COOKIE = "vp_console"
LOGIN_COOKIE = "vp_console_login"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
# Sent by parts of a page that refresh themselves (hx-trigger="every …"): such a request
# does not count as the staff member's activity for the idle timeout.
POLL_HEADER = "X-Console-Poll"


# Why a login page was shown instead of the page asked for, by the refusal's code; the page
# says only these fixed words, never what the address carries.
LOGIN_REASONS = {
    "session_expired": sessions.ConsoleSessionExpired.message,
    "token_revoked": "您已退出或登录已失效，请重新登录",
    "account_disabled": sessions.AccountDisabled.message,
}


class CsrfRefused(Exception):
    """A state-changing request without the session's CSRF token: nothing is changed."""


def secure_cookie() -> bool:
    return bool(current_app.config["CONSOLE_SECURE_COOKIE"])


def idle() -> timedelta:
    return timedelta(minutes=current_app.config["CONSOLE_IDLE_MINUTES"])


def load() -> Actor:
    """The staff member behind the cookie; sets what `backend.caller` reads, so the helpers
    shared with the API (rate limits by user, idempotency keys) see the same caller."""
    if "actor" not in g:
        cookie = request.cookies.get(COOKIE, "")
        if not cookie:
            raise sessions.TokenInvalid()
        try:
            g.actor, g.session_id = sessions.authenticate_console(
                db.session, cookie, now(), idle(), touch=POLL_HEADER not in request.headers
            )
        finally:
            # The idle revocation and the last-seen time are written even when refused.
            db.session.commit()
    actor: Actor = g.actor
    return actor


def set_cookie(response: Response, value: str) -> None:
    response.set_cookie(
        COOKIE,
        value,
        httponly=True,
        samesite="Lax",
        secure=secure_cookie(),
        path="/console",
    )


def clear_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="Lax")


def _digest(value: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, b"console-csrf:" + value.encode(), hashlib.sha256).hexdigest()


def csrf_token() -> str:
    """The token every form and htmx request of this session carries. Kept for the
    request beside the session it was made for: a page of 300 forms draws it 300 times, and
    a login within the request changes the session."""
    if "session_id" not in g:
        return ""
    kept: tuple[str, str] | None = g.get("csrf_for")
    if kept is None or kept[0] != g.session_id:
        kept = g.csrf_for = (g.session_id, _digest(g.session_id))
    return kept[1]


def check_csrf() -> None:
    sent = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    expected = csrf_token()
    # As bytes: compare_digest refuses a str with a character outside ASCII (a 500).
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise CsrfRefused()


def login_token() -> str:
    """The double-submit value of the login form (kept in LOGIN_COOKIE as it is rendered)."""
    if "login_token" not in g:
        g.login_token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    token: str = g.login_token
    return token


def keep_login_token(response: Response) -> None:
    response.set_cookie(
        LOGIN_COOKIE,
        login_token(),
        httponly=True,
        samesite="Strict",
        secure=secure_cookie(),
        path="/console/login",
        max_age=3600,
    )


def check_login_csrf() -> None:
    sent = request.form.get(CSRF_FIELD, "")
    kept = request.cookies.get(LOGIN_COOKIE, "")
    if not kept or not hmac.compare_digest(sent.encode(), kept.encode()):
        raise CsrfRefused()
