"""Rate limits: what is limited, counted by which key, and how a breach is documented.

The counters live in Redis when REDIS_URL is set, so every worker and every app server of a
deployment counts against one limit; without Redis each worker counts alone (memory). Every
limit is a setting (config.py, README "Configuration"), read per request, so a test or an
operator can change it without touching code. A breach answers 429 `rate_limited` with
`Retry-After` (errors.py, and `retry_after_floor` below)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Response, current_app, request
from flask_limiter.util import get_remote_address
from flask_smorest import Blueprint

from points.errors import Unauthenticated

from .caller import current_actor
from .errors import HTTP_ERRORS
from .extensions import limiter
from .openapi import ErrorSchema, raises

F = TypeVar("F", bound=Callable[..., Any])

RATE_LIMITED = (429, *HTTP_ERRORS[429])
RETRY_AFTER_DOC = {
    "Retry-After": {
        "description": "seconds to wait before trying again",
        "schema": {"type": "integer", "minimum": 1},
    }
}


def setting(name: str) -> Callable[[], str]:
    """The limit held by an app setting, looked up on each request."""
    return lambda: current_app.config[name]


def by_address() -> str:
    # The client's address as the WSGI server saw it; behind nginx that is nginx itself
    # unless TRUSTED_PROXIES lets ProxyFix take the address from X-Forwarded-For.
    return f"addr:{get_remote_address()}"


def by_user() -> str:
    """The logged-in user. A whole village often reaches us through one NAT address, so
    villagers (and the cadre or clerk acting for them) are counted one by one, never by
    address."""
    try:
        return f"user:{current_actor().user_id}"
    except Unauthenticated:
        # A key function must not raise: Flask-Limiter takes any exception while checking a
        # limit for a storage failure and would switch the worker to its in-memory fallback.
        # Without a valid token the view answers 401 anyway; count such calls by address.
        return by_address()


def by_username() -> str:
    """The username a password login tries, so guessing one account's password from many
    addresses is limited too. Read before validation: cut to the longest valid name. The
    console's login form sends it as a form field."""
    body = request.get_json(silent=True)
    username = body.get("username") if isinstance(body, dict) else request.form.get("username")
    # As the login looks it up: stripped, so padding the name gets no counter of its own.
    return f"login-user:{str(username).strip()[:64]}"


# The password login's counters, shared by the API's POST /auth/login and the console's
# login form: guessing through both gets no more tries than through one.
PASSWORD_LOGIN = "password-login"
# The typed pickup numbers' counters, shared by the API's POST /redemptions/pickup-code and
# the console's pickup page (looking an order up and handing it out): each try is a guess.
PICKUP_CODE = "pickup-code"


def limit_by(
    limit: str | Callable[[], str], *keys: Callable[[], str], shared: str | None = None
) -> Callable[[F], F]:
    """Count a view's calls against `limit` per key function; `shared` names counters that
    several views count together."""

    def decorate(view: F) -> F:
        wrapped: Any = view
        for key in keys:
            if shared:
                wrapped = limiter.shared_limit(limit, shared, key_func=key)(wrapped)
            else:
                wrapped = limiter.limit(limit, key_func=key)(wrapped)
        return wrapped

    return decorate


def limited(
    blp: Blueprint,
    limit: str | Callable[[], str],
    *keys: Callable[[], str],
    shared: str | None = None,
) -> Callable[[F], F]:
    """Limit a view (one counter per key function, each `limit`) and document its 429.

    Put it right under `@blp.route`/`@blp.doc` so the limit is counted before idempotency
    replays and body validation: a retry storm of bad or repeated requests counts too."""

    def decorate(view: F) -> F:
        wrapped: Any = blp.alt_response(
            429,
            schema=ErrorSchema,
            headers=RETRY_AFTER_DOC,
            description="rate_limited: too many requests; wait Retry-After seconds",
        )(raises(RATE_LIMITED)(view))
        return limit_by(limit, *keys, shared=shared)(wrapped)

    return decorate


def retry_after_floor(response: Response) -> Response:
    """Every 429 carries a positive Retry-After, and nothing else does. Flask-Limiter writes
    the seconds left in the window truncated to an integer, which is 0 in the window's last
    second (and nothing if it could not read the counter); a client told 0 retries in a
    tight loop. It also writes the header on every answer of a limited view (a 200, a 401):
    a client that honours it there would wait for nothing."""
    if response.status_code != 429:
        response.headers.pop("Retry-After", None)
    else:
        value = response.headers.get("Retry-After", "")
        if not value.isdigit() or int(value) < 1:
            response.headers["Retry-After"] = "1"
    return response
