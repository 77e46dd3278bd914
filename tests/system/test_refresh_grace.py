"""A refresh token sent several times at once (a mini-program refreshing from every page it
opens at launch) keeps the session: within REFRESH_REUSE_GRACE_SECONDS each request gets
the same new pair; after it, a spent token is a stolen copy and ends its session.

The app is served for real (werkzeug on a thread, a thread per request, each with its own
database connection) and the requests sent from threads released together, so that on
PostgreSQL they do race on the refresh token's row."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
import time_machine
from flask import Flask
from sqlalchemy import func, select

from backend.extensions import db
from points.models import AuthSession, RefreshToken
from tests.factories import World
from tests.support.concurrency import together

REFRESH = "/api/v1/auth/refresh"
ME = "/api/v1/me"


def call(
    base: str, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def refresh(base: str, token: str) -> tuple[int, Any]:
    return call(base, "POST", REFRESH, {"refresh_token": token})


def tokens_of_session(app: Flask, refresh_token: str) -> tuple[int, bool]:
    """How many refresh tokens the token's session has issued, and whether it is revoked."""
    from points.sessions import _hash

    with app.app_context():
        sid = db.session.scalar(
            select(RefreshToken.session_id).where(RefreshToken.token_hash == _hash(refresh_token))
        )
        count = db.session.scalar(
            select(func.count()).select_from(RefreshToken).where(RefreshToken.session_id == sid)
        )
        revoked = db.session.get(AuthSession, sid).revoked_at is not None
        db.session.rollback()
    return count, revoked


@pytest.mark.parametrize("n", [2, 5, 10])
def test_concurrent_refreshes_with_one_token_share_one_new_pair(
    app: Flask, world: World, served: str, n: int
) -> None:
    pair = world.tokens("villager_x")

    replies = together(n, lambda _i: refresh(served, pair.refresh_token))

    assert [status for status, _ in replies] == [200] * n, replies
    pairs = {(body["access_token"], body["refresh_token"]) for _, body in replies}
    assert len(pairs) == 1, f"{len(pairs)} different pairs for one refresh token"
    access, new_refresh = pairs.pop()
    assert new_refresh != pair.refresh_token
    # one successor only, and the session lives on
    assert tokens_of_session(app, pair.refresh_token) == (2, False)
    status, me = call(served, "GET", ME, token=access)
    assert status == 200 and me["user"]["id"] == world.villager_x
    status, after = refresh(served, new_refresh)
    assert status == 200, after
    assert call(served, "GET", ME, token=after["access_token"])[0] == 200
    assert call(served, "GET", ME, token=access)[0] == 200  # the session was not revoked


def test_a_repeat_within_the_grace_answers_the_same_pair(
    app: Flask, world: World, served: str
) -> None:
    pair = world.tokens("villager_x")
    first = refresh(served, pair.refresh_token)
    grace = app.config["REFRESH_REUSE_GRACE_SECONDS"]
    assert grace >= 2

    with time_machine.travel(time.time() + grace - 1, tick=False):
        again = refresh(served, pair.refresh_token)

    assert first[0] == again[0] == 200
    assert (first[1]["access_token"], first[1]["refresh_token"]) == (
        again[1]["access_token"],
        again[1]["refresh_token"],
    )
    assert first[1]["expires_in"] == again[1]["expires_in"]
    assert tokens_of_session(app, pair.refresh_token) == (2, False)


def test_reuse_after_the_grace_revokes_the_family(app: Flask, world: World, served: str) -> None:
    pair = world.tokens("villager_x")
    other = world.tokens("villager_x")  # the same user on another phone
    status, new = refresh(served, pair.refresh_token)
    assert status == 200
    grace = app.config["REFRESH_REUSE_GRACE_SECONDS"]

    with time_machine.travel(time.time() + grace + 1, tick=False):
        status, body = refresh(served, pair.refresh_token)

    assert status == 401
    assert body["error"]["code"] == "token_reused"
    assert body["error"]["message"] == "登录凭证被重复使用，为安全起见本次登录已失效，请重新登录"
    assert tokens_of_session(app, pair.refresh_token)[1] is True
    assert call(served, "GET", ME, token=new["access_token"])[0] == 401
    assert refresh(served, new["refresh_token"])[0] == 401
    # only this login ended: the other phone's session goes on
    assert call(served, "GET", ME, token=other.access_token)[0] == 200


def test_concurrent_refreshes_without_a_grace_end_the_session(
    app: Flask, world: World, served: str
) -> None:
    # The control: with the grace off, the race the grace exists for ends the session.
    pair = world.tokens("villager_x")
    app.config["REFRESH_REUSE_GRACE_SECONDS"] = 0
    try:
        first = refresh(served, pair.refresh_token)
        time.sleep(0.05)
        second = refresh(served, pair.refresh_token)
    finally:
        app.config["REFRESH_REUSE_GRACE_SECONDS"] = 10

    assert first[0] == 200
    assert second[0] == 401 and second[1]["error"]["code"] == "token_reused"


def test_grace_is_bounded(app: Flask) -> None:
    from backend import config as app_config

    for bad in (-1, app_config.MAX_REFRESH_REUSE_GRACE + 1):
        with pytest.raises(RuntimeError, match="REFRESH_REUSE_GRACE_SECONDS"):
            app_config.check({**app.config, "REFRESH_REUSE_GRACE_SECONDS": bad})
