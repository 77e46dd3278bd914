"""The staff console (管理后台): server-rendered pages for cadres, clerks and township and
county staff, at /console/.

The views are thin: they call the same `points/` services and scope checks as the JSON API,
so no rule is written twice. Jinja renders the pages; htmx (vendored under
backend/static/vendor/, no CDN) swaps the parts that update; what little script there is
lives in backend/static/console/console.js (the CSP allows no inline script). See
docs/CONSOLE.md."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Flask, g, redirect, render_template, request, url_for
from flask_limiter.errors import RateLimitExceeded
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from points.errors import DomainError, Unauthenticated
from points.scope import Actor

from ..caller import current_user
from ..clock import village_tz
from ..errors import HTTP_ERRORS, APIError
from ..extensions import db
from . import forms, session

bp = Blueprint("console", __name__, url_prefix="/console")

# The API pages' policy, but forms post back to this server, and the camera's frames and the
# QR previews are drawn from blob: and data: images.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

# Pages anyone may open: the login form itself.
OPEN_ENDPOINTS = frozenset({"console.login", "console.login_post"})

# Pages open to a user who must change the password an admin chose, before they have.
PASSWORD_ENDPOINTS = frozenset({"console.password", "console.password_post", "console.logout"})

# The menu: (endpoint, label, the action the page needs); a page whose action the role
# lacks is not offered (and refuses with 403 if opened).
MENU: list[tuple[str, str, str | None]] = [
    ("console.today", "今日", None),
]


# The menu's order, whatever order the modules are imported in: a cadre's day first, then
# the supermarket counter, the township's pages, the county's, and one's own password.
MENU_ORDER = [
    "console.today",
    "console.claims",
    "console.award_new",
    "console.activities_list",
    "console.households",
    "console.roster_import",
    "console.boards",
    "console.pickup",
    "console.counter",
    "console.shop",
    "console.settlements",
    "console.budget",
    "console.rules_index",
    "console.policy",
    "console.stats",
    "console.reports",
    "console.audit",
    "console.townships",
    "console.villages",
    "console.users",
    "console.password",
]


def menu_item(endpoint: str, label: str, action: str | None = None) -> None:
    """Put a page in the menu (each page module calls this for itself)."""
    MENU.append((endpoint, label, action))
    place = {name: i for i, name in enumerate(MENU_ORDER)}
    MENU.sort(key=lambda item: place.get(item[0], len(place)))


@bp.before_request
def _require_staff() -> Response | None:
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    try:
        session.load()
    except Unauthenticated as exc:
        reason = exc.code if exc.code in session.LOGIN_REASONS else None
        target = url_for("console.login", next=request.full_path.rstrip("?"), reason=reason)
        response = redirect(target, code=303)
        if request.headers.get("HX-Request"):
            # htmx follows a redirect inside the page; tell it to load the login page whole.
            response = Response(status=204, headers={"HX-Redirect": target})
        session.clear_cookie(response)
        return response
    # An admin chose this password (a new account, a reset) and knows it: every other page
    # waits until the holder has set their own (points.users.change_own_password).
    if request.endpoint not in PASSWORD_ENDPOINTS and current_user().must_change_password:
        target = url_for("console.password")
        if request.headers.get("HX-Request"):
            return Response(status=204, headers={"HX-Redirect": target})
        return redirect(target, code=303)
    return None


@bp.after_request
def _headers(response: Response) -> Response:
    if response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


@bp.app_template_global()
def csrf_token() -> str:
    return session.csrf_token()


@bp.app_template_global()
def idempotency_key() -> str:
    return forms.new_key()


ROLE_LABELS = {
    "county_admin": "县级管理员",
    "township_admin": "乡镇管理员",
    "cadre": "村干部",
    "clerk": "超市店员",
}


@bp.app_template_filter("local_time")
def local_time(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A stored (UTC) time as the village's clock shows it."""
    return value.astimezone(village_tz()).strftime(fmt) if value else ""


@bp.context_processor
def _page_context() -> dict[str, Any]:
    actor: Actor | None = g.get("actor")
    actor_label = ""
    if actor is not None:
        user = current_user()
        actor_label = f"{user.name or user.username} · {ROLE_LABELS.get(actor.role, actor.role)}"
    menu = [
        (endpoint, label)
        for endpoint, label, action in MENU
        if actor is not None and (action is None or actor.can(action))
    ]
    return {"actor": actor, "actor_label": actor_label, "menu": menu, "refusal": g.get("refusal")}


def refused(status: int, code: str, message: str) -> tuple[str, int]:
    """A page for a refusal that has no form to go back to (a 404, a 403, a CSRF failure)."""
    db.session.rollback()
    return (
        render_template("console/refused.html", status=status, code=code, message=message),
        status,
    )


@bp.errorhandler(session.CsrfRefused)
def _csrf(_exc: session.CsrfRefused) -> tuple[str, int]:
    return refused(403, "csrf_failed", "页面已过期或来源不明，请刷新页面后重试")


@bp.errorhandler(DomainError)
def _domain(exc: DomainError) -> tuple[str, int]:
    return refused(exc.status, exc.code, exc.message)


@bp.errorhandler(APIError)
def _api(exc: APIError) -> tuple[str, int]:
    return refused(exc.status, exc.code, exc.message)


@bp.errorhandler(RateLimitExceeded)
def _rate(_exc: RateLimitExceeded) -> tuple[str, int]:
    return refused(429, *HTTP_ERRORS[429])


@bp.errorhandler(HTTPException)
def _http(exc: HTTPException) -> tuple[str, int]:
    status = exc.code or 500
    code, message = HTTP_ERRORS.get(status, ("http_error", "请求无法处理"))
    return refused(status, code, message)


def register(app: Flask) -> None:
    # Importing the page modules registers their routes on `bp`.
    from . import activities as activities  # noqa: F401
    from . import audit as audit  # noqa: F401
    from . import awards as awards  # noqa: F401
    from . import boards as boards  # noqa: F401
    from . import budget as budget  # noqa: F401
    from . import claims as claims  # noqa: F401
    from . import clerk as clerk  # noqa: F401
    from . import county as county  # noqa: F401
    from . import households as households  # noqa: F401
    from . import login, today  # noqa: F401
    from . import password as password  # noqa: F401
    from . import policy as policy  # noqa: F401
    from . import reports as reports  # noqa: F401
    from . import roster as roster  # noqa: F401
    from . import rules as rules  # noqa: F401
    from . import shop as shop  # noqa: F401
    from . import stats as stats  # noqa: F401

    app.register_blueprint(bp)
