"""Login (WeChat and password), token refresh, logout, binding and /me."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_smorest import Blueprint

from points import binding, sessions, users
from points.models import Household, User
from points.passwords import verify_password
from points.scope import Actor
from points.users import find_staff, wechat_user

from .. import present
from ..caller import current_actor, current_session_id, current_user, qr_codec, token_settings
from ..errors import APIError
from ..extensions import db
from ..openapi import raises
from ..ratelimits import PASSWORD_LOGIN, by_address, by_user, by_username, limited, setting
from ..schemas.login import (
    BindIn,
    LoginIn,
    MeOut,
    PasswordChangeIn,
    RefreshIn,
    TokensOut,
    WeChatLoginIn,
)
from ..wechat import WeChatClient

blp = Blueprint("auth", __name__, description="登录与身份 Login, tokens and binding")

PUBLIC: dict[str, Any] = {"security": []}


def _tokens(user: User) -> dict[str, Any]:
    pair = sessions.login(db.session, token_settings(), user)
    db.session.commit()
    return _signed_in(user, pair)


def _signed_in(user: User, pair: sessions.TokenPair) -> dict[str, Any]:
    """What a login and a refresh answer (TokensOut): the new pair, for this user."""
    return {
        "access_token": pair.access_token,
        "refresh_token": pair.refresh_token,
        "expires_in": pair.expires_in,
        "user": user,
        "bound": user.villager_id is not None,
        "must_change_password": user.must_change_password,
    }


def _wechat_openid(code: str) -> tuple[str, str | None]:
    config = current_app.config
    dev_login = config["APP_ENV"] == "development" and not config["WECHAT_APPID"]
    if code.startswith("dev-"):
        if not dev_login:
            raise APIError(401, "wechat_code_invalid", "登录凭证无效，请重新进入小程序")
        return code, None
    if not config["WECHAT_APPID"] or not config["WECHAT_SECRET"]:
        raise APIError(503, "wechat_not_configured", "微信登录尚未配置，请联系管理员")
    client = WeChatClient(
        config["WECHAT_API_BASE"],
        config["WECHAT_APPID"],
        config["WECHAT_SECRET"],
        timeout=config["WECHAT_TIMEOUT"],
    )
    result = client.code_to_session(code)
    return result.openid, result.unionid


@blp.route("/auth/wechat", methods=["POST"])
@raises(
    (401, "account_disabled"),
    (401, "wechat_code_invalid"),
    (401, "wechat_code_used"),
    (403, "wechat_login_blocked"),
    (429, "wechat_rate_limited"),
    (502, "wechat_error"),
    (503, "wechat_not_configured"),
    (503, "wechat_unavailable"),
)
# Per address only. A wx.login code is single-use and a real client never sends one twice,
# so a per-code key would stop nothing: a flood brings a fresh (fake) code each time. What a
# flood costs is our jscode2session quota with WeChat (whose 45011 would then refuse every
# villager), and the address is the one handle we have. The default is generous because a
# whole village may log in through one NAT address when a cadre introduces the app.
@limited(blp, setting("WECHAT_LOGIN_RATE_LIMIT"), by_address)
@blp.alt_response(401, response="UNAUTHORIZED")  # the code is invalid or used
@blp.alt_response(502, response="BAD_GATEWAY")  # WeChat answered with an error
@blp.alt_response(503, response="SERVICE_UNAVAILABLE")  # unreachable, or not configured
@blp.arguments(WeChatLoginIn)
@blp.response(200, TokensOut)
@blp.doc(**PUBLIC)
def wechat_login(body: dict[str, Any]) -> dict[str, Any]:
    """Log in with a wx.login code (jscode2session); the session_key never leaves the server."""
    openid, unionid = _wechat_openid(body["code"])
    return _tokens(wechat_user(db.session, openid, unionid))


@blp.route("/auth/login", methods=["POST"])
@raises((401, "account_disabled"), (401, "invalid_credentials"))
# Staff only; per address (one machine guessing many accounts) and per username (many
# machines guessing one account's password).
@limited(blp, setting("LOGIN_RATE_LIMIT"), by_address, by_username, shared=PASSWORD_LOGIN)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.arguments(LoginIn)
@blp.response(200, TokensOut)
@blp.doc(**PUBLIC)
def password_login(body: dict[str, Any]) -> dict[str, Any]:
    """Staff login. An unknown user and a wrong password get the same answer."""
    user = find_staff(db.session, body["username"])
    if not verify_password(user.password_hash if user else None, body["password"]):
        raise APIError(401, "invalid_credentials", "用户名或密码错误")
    assert user is not None
    return _tokens(user)


@blp.route("/auth/refresh", methods=["POST"])
@raises(
    (401, "account_disabled"),
    (401, "token_expired"),
    (401, "token_invalid"),
    (401, "token_reused"),
    (401, "token_revoked"),
)
@blp.alt_response(401, response="UNAUTHORIZED")  # invalid, spent or revoked
@blp.arguments(RefreshIn)
@blp.response(200, TokensOut)
@blp.doc(**PUBLIC)
def refresh(body: dict[str, Any]) -> dict[str, Any]:
    """Spend a refresh token for a new pair. Sent again within REFRESH_REUSE_GRACE_SECONDS
    (default 10; a mini-program refreshing from several pages at launch), a spent token
    answers the same new pair; sent again later, it ends this login (401 `token_reused`),
    since a copy of it is in someone else's hands. The user's other logins go on."""
    user, pair = sessions.refresh(db.session, token_settings(), body["refresh_token"])
    db.session.commit()
    return _signed_in(user, pair)


@blp.route("/auth/logout", methods=["POST"])
@blp.response(204)
def logout() -> None:
    """End this session: its access and refresh tokens stop working at once."""
    sessions.revoke_session(db.session, current_session_id(), "logout")
    db.session.commit()


@blp.route("/auth/password", methods=["POST"])
@raises(
    users.WrongPassword,
    (403, "villager_inactive"),
    (422, "same_password"),
    (422, "weak_password"),
)
# Guessing the current password with a stolen token counts with the logins' guesses.
@limited(blp, setting("LOGIN_RATE_LIMIT"), by_address, by_user, shared=PASSWORD_LOGIN)
@blp.arguments(PasswordChangeIn)
@blp.response(200, MeOut)
def change_password(body: dict[str, Any]) -> dict[str, Any]:
    """Staff set their own password, giving the current one (401 `invalid_credentials` if it
    is wrong; 422 `weak_password`, `same_password`). Clears `must_change_password`. Every
    other session of the user ends (the console's too); this one goes on. The API's other
    operations do not wait for this change: a client shows `must_change_password` (login
    answer, /me) and asks for it first, as the console does."""
    users.change_own_password(
        db.session,
        current_actor(),
        body["current_password"],
        body["new_password"],
        session_id=current_session_id(),
    )
    db.session.commit()
    return _me(current_user())


def _me(user: User) -> dict[str, Any]:
    actor = Actor.of(db.session, user)
    villager = user.villager
    household = db.session.get(Household, actor.household_id) if actor.household_id else None
    return {
        "user": user,
        "role": user.role,
        "villager": present.villager(villager, actor) if villager else None,
        "household": present.household(household, actor) if household else None,
        "scope": actor,  # ScopeOut: its township, village, shop and household
    }


@blp.route("/auth/bind", methods=["POST"])
@raises(
    (404, "not_found"),
    (404, "villager_inactive"),
    (409, "already_bound"),
    (409, "binding_token_used"),
    (409, "villager_already_bound"),
    (422, "roster_no_match"),
    (422, "qr_expired"),
    (422, "qr_invalid"),
    (422, "qr_wrong_type"),
)
@limited(blp, "10 per hour", by_user)
@blp.arguments(BindIn)
@blp.response(200, MeOut)
def bind(body: dict[str, Any]) -> dict[str, Any]:
    """Bind this WeChat user to a roster villager: a cadre's binding code, or name + phone.
    With `village_id`, matched in that village (422 `roster_no_match`, or 409
    `villager_already_bound`). Without it (a villager not yet bound sees no village to
    pick), matched across the county: bound only when exactly one active villager has that
    name and phone and no other WeChat is bound to them; otherwise one answer, 422
    `roster_no_match` with the same message, whether the pair is unknown, ambiguous or
    already bound, so that the roster cannot be probed."""
    user = current_user()
    if "token" in body:
        binding.bind_with_token(db.session, user, qr_codec(), body["token"])
    else:
        binding.bind_with_phone(
            db.session, user, body.get("village_id"), body["name"], body["phone"]
        )
    db.session.commit()
    return _me(user)


@blp.route("/me", methods=["GET"])
@blp.response(200, MeOut)
def me() -> dict[str, Any]:
    """The caller: user, role, bound villager and household, and scope."""
    current_actor()
    return _me(current_user())
