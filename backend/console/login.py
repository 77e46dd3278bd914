"""Logging in and out of the console: the API's password check and its rate limits."""

from __future__ import annotations

from flask import g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from points import sessions
from points.errors import Unauthenticated
from points.passwords import verify_password
from points.users import find_staff

from ..clock import now
from ..extensions import db
from ..ratelimits import PASSWORD_LOGIN, by_address, by_username, limit_by, setting
from . import bp, forms, session


def _safe_next(target: str | None) -> str:
    """Where to go after logging in: a console page of this server, never another site."""
    if target and target.startswith("/console/") and not target.startswith("//"):
        return target
    return url_for("console.today")


def _login_page(status: int = 200) -> tuple[str, int]:
    reason = session.LOGIN_REASONS.get(request.args.get("reason", ""))
    return render_template(
        "console/login.html", reason=reason, login_token=session.login_token()
    ), status


@bp.get("/login")
def login() -> Response:
    html, status = _login_page()
    response = Response(html, status=status, mimetype="text/html")
    session.keep_login_token(response)
    return response


@bp.post("/login")
@limit_by(setting("LOGIN_RATE_LIMIT"), by_address, by_username, shared=PASSWORD_LOGIN)
def login_post() -> Response:
    session.check_login_csrf()
    user = find_staff(db.session, request.form.get("username", "").strip()[:64])
    try:
        if not verify_password(
            user.password_hash if user else None, request.form.get("password", "")
        ):
            raise sessions.TokenInvalid("用户名或密码错误", code="invalid_credentials")
        assert user is not None
        cookie = sessions.open_console(db.session, user, now())
    except Unauthenticated as exc:
        db.session.rollback()
        g.refusal = forms.refusal_of(exc)
        html, _ = _login_page()
        response = Response(html, status=401, mimetype="text/html")
        session.keep_login_token(response)
        return response
    db.session.commit()
    response = redirect(_safe_next(request.args.get("next")), code=303)
    session.set_cookie(response, cookie)
    response.delete_cookie(session.LOGIN_COOKIE, path="/console/login")
    return response


@bp.post("/logout")
def logout() -> Response:
    session.check_csrf()
    sessions.revoke_session(db.session, g.session_id, "logout")
    db.session.commit()
    response = redirect(url_for("console.login"), code=303)
    session.clear_cookie(response)
    return response
