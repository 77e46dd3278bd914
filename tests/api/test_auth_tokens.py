"""Bearer tokens on GET /api/v1/me, refresh rotation, logout and revocation, password login.

Every refused token must be a 401 with the one error shape; forged tokens are built with
PyJWT (or by hand where PyJWT would refuse to build them) around a real session id, and a
forged token with the right key and claims is accepted, so each refusal below is for the one
thing that was changed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient

from backend.extensions import db
from points.models import User
from tests.factories import PASSWORD, SECRET, World
from tests.support.reads import error_code

ME = "/api/v1/me"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"


# ---- helpers --------------------------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(
    header: dict[str, Any], claims: dict[str, Any], key: bytes | None, digest: Any = hashlib.sha256
) -> str:
    """A JWT built without PyJWT (which refuses 'none' and warns about short HS512 keys)."""
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    if key is None:
        return signing_input + "."
    signature = hmac.new(key, signing_input.encode(), digest).digest()
    return signing_input + "." + b64url(signature)


def good_claims(app: Flask, world: World, user: str = "cadre_a") -> dict[str, Any]:
    """Claims of a fresh, valid access token of `user`, with its real session id."""
    real = claims_of(world.tokens(user).access_token)
    now = int(time.time())
    return {
        "iss": app.config["JWT_ISSUER"],
        "aud": app.config["JWT_AUDIENCE"],
        "sub": real["sub"],
        "sid": real["sid"],
        "typ": "access",
        "iat": now,
        "exp": now + 600,
    }


def forge(claims: dict[str, Any], key: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def assert_401(response: Any, code: str | None = None) -> None:
    assert response.status_code == 401, response.data
    body = response.get_json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code


def login(client: FlaskClient, username: str, password: str, **kwargs: Any) -> Any:
    return client.post(LOGIN, json={"username": username, "password": password}, **kwargs)


# ---- positive controls ----------------------------------------------------------------------


def test_real_token_shows_user_role_and_scope(client: FlaskClient, world: World) -> None:
    response = client.get(ME, headers=world.headers("cadre_a"))

    assert response.status_code == 200
    body = response.get_json()
    assert body["user"]["id"] == world.cadre_a
    assert body["user"]["username"] == "cadre_a"
    assert body["role"] == "cadre"
    assert body["scope"]["village_id"] == world.village_a
    assert body["scope"]["township_id"] == world.township_1
    assert body["villager"] is None
    # the only "password" is the flag that says whether it must be changed
    assert "password" not in json.dumps(body).replace('"must_change_password"', "")


def test_forged_token_with_right_key_and_claims_is_accepted(
    app: Flask, client: FlaskClient, world: World
) -> None:
    # The control for every forged token below: only the changed part makes them fail.
    response = client.get(ME, headers=bearer(forge(good_claims(app, world))))

    assert response.status_code == 200
    assert response.get_json()["user"]["id"] == world.cadre_a


def test_refresh_returns_a_new_working_pair(client: FlaskClient, world: World) -> None:
    pair = world.tokens("cadre_a")

    response = client.post(REFRESH, json={"refresh_token": pair.refresh_token})

    assert response.status_code == 200
    body = response.get_json()
    assert body["refresh_token"] != pair.refresh_token
    assert body["user"]["id"] == world.cadre_a
    assert client.get(ME, headers=bearer(body["access_token"])).status_code == 200
    again = client.post(REFRESH, json={"refresh_token": body["refresh_token"]})
    assert again.status_code == 200
    assert client.get(ME, headers=bearer(again.get_json()["access_token"])).status_code == 200


# ---- refused tokens -------------------------------------------------------------------------


def test_no_header_is_401(client: FlaskClient, world: World) -> None:
    assert_401(client.get(ME))


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Bearer    ", "Basic abc:def", "abc"])
def test_empty_or_foreign_authorization_is_401(
    client: FlaskClient, world: World, header: str
) -> None:
    assert_401(client.get(ME, headers={"Authorization": header}))


def test_access_token_without_bearer_scheme_is_401(client: FlaskClient, world: World) -> None:
    token = world.tokens("cadre_a").access_token
    assert_401(client.get(ME, headers={"Authorization": token}))


def test_alg_none_is_401(app: Flask, client: FlaskClient, world: World) -> None:
    token = hand_made({"alg": "none", "typ": "JWT"}, good_claims(app, world), None)
    assert token.endswith(".")

    assert_401(client.get(ME, headers=bearer(token)), "token_invalid")


def test_hs512_with_the_right_key_is_401(app: Flask, client: FlaskClient, world: World) -> None:
    claims = good_claims(app, world)
    token = hand_made({"alg": "HS512", "typ": "JWT"}, claims, SECRET.encode(), hashlib.sha512)
    # the same claims, signed HS256 by hand, pass: the algorithm alone is refused
    control = hand_made({"alg": "HS256", "typ": "JWT"}, claims, SECRET.encode())
    assert client.get(ME, headers=bearer(control)).status_code == 200

    assert_401(client.get(ME, headers=bearer(token)), "token_invalid")


def test_hs256_with_a_wrong_key_is_401(app: Flask, client: FlaskClient, world: World) -> None:
    token = forge(good_claims(app, world), key="another-secret-key-that-is-long-enough-000")

    assert_401(client.get(ME, headers=bearer(token)), "token_invalid")


def test_tampered_payload_is_401(app: Flask, client: FlaskClient, world: World) -> None:
    token = forge(good_claims(app, world))
    header, _, signature = token.split(".")
    claims = good_claims(app, world, "county")  # a county admin's session, old signature
    tampered = f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"

    assert_401(client.get(ME, headers=bearer(tampered)), "token_invalid")


def test_expired_token_is_token_expired(app: Flask, client: FlaskClient, world: World) -> None:
    claims = good_claims(app, world)
    claims.update(iat=claims["iat"] - 3600, exp=claims["iat"] - 60)

    assert_401(client.get(ME, headers=bearer(forge(claims))), "token_expired")


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("aud", "some-other-app"),
        ("iss", "someone-else"),
    ],
)
def test_wrong_audience_or_issuer_is_401(
    app: Flask, client: FlaskClient, world: World, claim: str, value: str
) -> None:
    claims = good_claims(app, world) | {claim: value}

    assert_401(client.get(ME, headers=bearer(forge(claims))), "token_invalid")


@pytest.mark.parametrize("claim", ["exp", "iat", "iss", "aud", "sub", "typ", "sid"])
def test_missing_required_claim_is_401(
    app: Flask, client: FlaskClient, world: World, claim: str
) -> None:
    claims = good_claims(app, world)
    del claims[claim]

    assert_401(client.get(ME, headers=bearer(forge(claims))), "token_invalid")


def test_refresh_token_is_not_an_access_token(client: FlaskClient, world: World) -> None:
    pair = world.tokens("cadre_a")

    assert_401(client.get(ME, headers=bearer(pair.refresh_token)), "token_invalid")


def test_access_token_is_not_a_refresh_token(client: FlaskClient, world: World) -> None:
    pair = world.tokens("cadre_a")

    response = client.post(REFRESH, json={"refresh_token": pair.access_token})

    assert_401(response)
    assert client.get(ME, headers=bearer(pair.access_token)).status_code == 200


def test_session_of_another_user_is_401(app: Flask, client: FlaskClient, world: World) -> None:
    # cadre_a's user id with the county admin's (real, live) session id
    claims = good_claims(app, world, "cadre_a")
    claims["sid"] = claims_of(world.tokens("county").access_token)["sid"]

    assert_401(client.get(ME, headers=bearer(forge(claims))), "token_invalid")


def test_unknown_session_id_is_401(app: Flask, client: FlaskClient, world: World) -> None:
    claims = good_claims(app, world) | {"sid": "0" * 32}

    assert_401(client.get(ME, headers=bearer(forge(claims))), "token_invalid")


# ---- logout and revocation ------------------------------------------------------------------


def test_logout_ends_this_session_only(client: FlaskClient, world: World) -> None:
    pair = world.tokens("cadre_a")
    other_device = world.tokens("cadre_a")
    assert client.get(ME, headers=bearer(pair.access_token)).status_code == 200

    response = client.post(LOGOUT, headers=bearer(pair.access_token))

    assert response.status_code == 204
    assert_401(client.get(ME, headers=bearer(pair.access_token)), "token_revoked")
    assert_401(client.post(REFRESH, json={"refresh_token": pair.refresh_token}))
    # the same user's other session is untouched
    assert client.get(ME, headers=bearer(other_device.access_token)).status_code == 200


def test_logout_needs_a_token(client: FlaskClient, world: World) -> None:
    assert_401(client.post(LOGOUT))


def test_reused_refresh_token_revokes_the_family(
    app: Flask, client: FlaskClient, world: World
) -> None:
    pair = world.tokens("cadre_a")
    first = client.post(REFRESH, json={"refresh_token": pair.refresh_token})
    assert first.status_code == 200
    new = first.get_json()
    assert client.get(ME, headers=bearer(new["access_token"])).status_code == 200

    # past the grace in which a repeated refresh answers the same pair (test_refresh_grace)
    grace = app.config["REFRESH_REUSE_GRACE_SECONDS"]
    with time_machine.travel(time.time() + grace + 2, tick=False):
        reuse = client.post(REFRESH, json={"refresh_token": pair.refresh_token})

    assert_401(reuse, "token_reused")
    # whoever holds the tokens from the first refresh is logged out too
    assert_401(client.get(ME, headers=bearer(new["access_token"])))
    assert_401(client.post(REFRESH, json={"refresh_token": new["refresh_token"]}))
    assert_401(client.get(ME, headers=bearer(pair.access_token)))


def test_garbage_refresh_token_is_401(client: FlaskClient, world: World) -> None:
    assert_401(client.post(REFRESH, json={"refresh_token": "not-a-token"}), "token_invalid")


def test_disabled_user_token_says_account_disabled(client: FlaskClient, world: World) -> None:
    pair = world.tokens("cadre_a")

    patch = client.patch(
        f"/api/v1/users/{world.cadre_a}", json={"disabled": True}, headers=world.headers("county")
    )
    assert patch.status_code == 200

    assert_401(client.get(ME, headers=bearer(pair.access_token)), "account_disabled")


def test_disabled_user_is_locked_out(client: FlaskClient, world: World) -> None:
    pair = world.tokens("cadre_a")
    assert client.get(ME, headers=bearer(pair.access_token)).status_code == 200

    patch = client.patch(
        f"/api/v1/users/{world.cadre_a}", json={"disabled": True}, headers=world.headers("county")
    )

    assert patch.status_code == 200
    assert patch.get_json()["disabled"] is True
    assert_401(client.get(ME, headers=bearer(pair.access_token)))
    assert_401(client.post(REFRESH, json={"refresh_token": pair.refresh_token}))
    relogin = login(client, "cadre_a", PASSWORD)
    assert relogin.status_code == 401
    assert "access_token" not in relogin.get_json()


def test_password_reset_by_admin_ends_sessions(client: FlaskClient, world: World) -> None:
    pair = world.tokens("cadre_a")
    new_password = "a-brand-new-password-42"

    patch = client.patch(
        f"/api/v1/users/{world.cadre_a}",
        json={"password": new_password},
        headers=world.headers("tadmin1"),
    )

    assert patch.status_code == 200
    assert "password" not in patch.get_json()
    assert_401(client.get(ME, headers=bearer(pair.access_token)))
    assert_401(client.post(REFRESH, json={"refresh_token": pair.refresh_token}))
    assert login(client, "cadre_a", PASSWORD).status_code == 401
    fresh = login(client, "cadre_a", new_password)
    assert fresh.status_code == 200
    assert client.get(ME, headers=bearer(fresh.get_json()["access_token"])).status_code == 200


# ---- password login -------------------------------------------------------------------------


def test_password_login_returns_working_tokens(client: FlaskClient, world: World) -> None:
    response = login(client, "cadre_a", PASSWORD)

    assert response.status_code == 200
    body = response.get_json()
    assert body["access_token"] and body["refresh_token"]
    assert body["user"]["id"] == world.cadre_a
    assert body["user"]["role"] == "cadre"
    assert "password" not in body["user"] and "password_hash" not in body["user"]
    me = client.get(ME, headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.get_json()["user"]["username"] == "cadre_a"
    refreshed = client.post(REFRESH, json={"refresh_token": body["refresh_token"]})
    assert refreshed.status_code == 200


def test_wrong_password_and_unknown_user_look_the_same(client: FlaskClient, world: World) -> None:
    wrong = login(client, "cadre_a", PASSWORD + "x")
    unknown = login(client, "no-such-user", PASSWORD)

    assert wrong.status_code == unknown.status_code == 401
    assert error_code(wrong) == error_code(unknown) == "invalid_credentials"
    assert wrong.get_json() == unknown.get_json()
    assert "access_token" not in wrong.get_json()


@pytest.mark.parametrize("with_password", [False, True])
def test_villager_account_cannot_log_in_with_password(
    app: Flask, client: FlaskClient, world: World, with_password: bool
) -> None:
    from points.passwords import hash_password

    with app.app_context():
        user = db.session.get(User, world.villager_x)
        user.username = "villager_x"
        if with_password:
            user.password_hash = hash_password(PASSWORD)
        db.session.commit()

    response = login(client, "villager_x", PASSWORD)

    assert response.status_code == 401
    assert error_code(response) == "invalid_credentials"
    assert "access_token" not in response.get_json()


def test_login_rate_limited_per_client(app: Flask, client: FlaskClient, world: World) -> None:
    assert app.config["LOGIN_RATE_LIMIT"].startswith("10 per minute")
    for i in range(10):
        response = login(client, f"guess-{i}", "wrong-password")
        assert response.status_code == 401, (i, response.data)

    blocked = login(client, "cadre_a", PASSWORD)

    assert blocked.status_code == 429
    assert error_code(blocked) == "rate_limited"
    assert "access_token" not in blocked.get_json()
    assert int(blocked.headers["Retry-After"]) > 0
    # another client is not affected
    other = login(client, "cadre_a", PASSWORD, environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 200


def test_login_rate_limited_per_username(client: FlaskClient, world: World) -> None:
    for i in range(10):
        response = login(
            client, "cadre_a", "wrong-password", environ_base={"REMOTE_ADDR": f"10.1.0.{i + 1}"}
        )
        assert response.status_code == 401, (i, response.data)

    blocked = login(client, "cadre_a", PASSWORD, environ_base={"REMOTE_ADDR": "10.1.0.99"})

    assert blocked.status_code == 429
    assert error_code(blocked) == "rate_limited"
    assert "Retry-After" in blocked.headers


def test_login_unknown_field_is_named(client: FlaskClient, world: World) -> None:
    response = client.post(
        LOGIN, json={"username": "cadre_a", "password": PASSWORD, "remember_me": True}
    )

    assert response.status_code == 422
    assert error_code(response) == "unknown_fields"
    error = response.get_json()["error"]
    assert error["details"]["fields"] == ["remember_me"]
    assert "remember_me" in error["message"]
    assert "access_token" not in response.get_json()


def test_login_malformed_json_is_400(client: FlaskClient, world: World) -> None:
    response = client.post(
        LOGIN, data='{"username": "cadre_a", "password": ', content_type="application/json"
    )

    assert response.status_code == 400
    assert error_code(response) == "malformed_json"


def test_login_missing_password_is_422(client: FlaskClient, world: World) -> None:
    response = client.post(LOGIN, json={"username": "cadre_a"})

    assert response.status_code == 422
    assert error_code(response) == "validation_error"
    assert "password" in response.get_json()["error"]["details"]["fields"]
