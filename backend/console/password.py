"""修改密码: a staff member sets their own password (the service of POST /auth/password).

A user whose password an admin chose (created the account, or reset it) is sent here by the
console's before_request hook and opens no other page until they have changed it. The form
carries no idempotency key: its row would keep a hash of what was sent, passwords included."""

from __future__ import annotations

from typing import Any

from flask import g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from points import users
from points.errors import Invalid

from ..caller import current_user
from ..extensions import db
from ..ratelimits import PASSWORD_LOGIN, by_address, by_user, limit_by, setting
from . import bp, forms, menu_item, session

menu_item("console.password", "修改密码", None)

MAX_PASSWORD = 128


def _page(**_: Any) -> str:
    session.load()
    return render_template(
        "console/county/password.html",
        must_change=current_user().must_change_password,
        min_length=users.MIN_PASSWORD,
    )


@bp.get("/password")
def password() -> str:
    return _page()


@bp.post("/password")
# Guessing the current password with a stolen cookie counts with the logins' guesses.
@limit_by(setting("LOGIN_RATE_LIMIT"), by_address, by_user, shared=PASSWORD_LOGIN)
@forms.writes(on_refusal=_page)
def password_post() -> Response:
    actor = session.load()
    new = request.form.get("new_password", "")
    if len(new) > MAX_PASSWORD:  # as PasswordChangeIn refuses it
        raise Invalid(f"密码不能超过 {MAX_PASSWORD} 位", details={"field": "new_password"})
    if new != request.form.get("new_password_again", ""):
        # The form's own check (the API takes the new password once): typed twice alike.
        raise Invalid("两次输入的新密码不一致", details={"field": "new_password_again"})
    users.change_own_password(
        db.session,
        actor,
        # No password is longer; cut, a long paste costs the hash no more.
        request.form.get("current_password", "")[: MAX_PASSWORD + 1],
        new,
        session_id=g.session_id,
    )
    return redirect(url_for("console.today"), code=303)
