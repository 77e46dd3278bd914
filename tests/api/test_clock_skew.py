"""Several app servers whose clocks are a few seconds apart, and the tests' own clock.

One app stands for every server: the clock is frozen at the time of the server that acts
(the one ahead issues, the one on time checks)."""

from __future__ import annotations

import os
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient

from backend import create_app
from points.tokens import TokenCodec, TokenType
from tests.factories import SECRET, World, add_household, check_in
from tests.support.clock import SERVER_ZONES, frozen, local
from tests.support.reads import checked_in, error_code

API = "/api/v1"
ME = f"{API}/me"
CODEC = TokenCodec.from_secret(SECRET)
# A step boundary for every step length that divides 300 s (the default 30 among them),
# inside the activity's check-in window.
BOUNDARY = local(2026, 12, 1, 9, 5)
STEP = 30


def rotating_activity(
    client: FlaskClient, world: World, item_id: int, step_seconds: int = STEP
) -> int:
    with frozen(local(2026, 11, 30, 15, 0)):
        response = client.post(
            f"{API}/activities",
            headers=world.headers("cadre_a"),
            json={
                "village_id": world.village_a,
                "title": "十二月村民大会",
                "rule_item_id": item_id,
                "starts_at": local(2026, 12, 1, 9, 0).isoformat(),
                "ends_at": local(2026, 12, 1, 11, 0).isoformat(),
                "qr_mode": "rotating",
                "qr_step_seconds": step_seconds,
            },
        )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def shown_code(client: FlaskClient, world: World, activity_id: int) -> dict[str, Any]:
    """What the display screen shows now (its server's clock is the frozen one)."""
    response = client.get(
        f"{API}/activities/{activity_id}/qr-token", headers=world.headers("cadre_a")
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


# ---- rotating activity codes ----------------------------------------------------------------


def test_the_next_step_from_a_screen_a_few_seconds_ahead_is_accepted(
    client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    activity_id = rotating_activity(client, world, items["GOV-ASSEMBLY"])
    with frozen(BOUNDARY + seconds(1)):  # the screen's server, 4 s ahead of the other
        shown = shown_code(client, world, activity_id)
    assert shown["step"] == int(BOUNDARY.timestamp()) // STEP
    with frozen(BOUNDARY - seconds(3)):  # the server checking the scan, on time
        response = check_in(client, world, shown["token"])
    assert response.status_code == 201, response.get_json()
    assert checked_in(client, world, activity_id) == 1


def test_the_next_step_is_refused_before_the_tolerance_and_two_steps_ahead_always(
    client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    activity_id = rotating_activity(client, world, items["GOV-ASSEMBLY"])
    next_step = int(BOUNDARY.timestamp()) // STEP
    upcoming = CODEC.encode(TokenType.ACTIVITY, (activity_id, next_step))
    two_ahead = CODEC.encode(TokenType.ACTIVITY, (activity_id, next_step + 1))
    with frozen(BOUNDARY - seconds(6)):  # more than the default 5 s before the boundary
        early = check_in(client, world, upcoming)
    with frozen(BOUNDARY - seconds(1)):
        too_far = check_in(client, world, two_ahead)
    for response in (early, too_far):
        assert response.status_code == 422, response.get_json()
        assert error_code(response) == "qr_expired"
    assert checked_in(client, world, activity_id) == 0


def test_the_previous_step_keeps_its_grace_and_no_more(
    client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    """A screen behind needs no tolerance: its code is accepted a whole step after it."""
    activity_id = rotating_activity(client, world, items["GOV-ASSEMBLY"])
    step = int(BOUNDARY.timestamp()) // STEP
    code = CODEC.encode(TokenType.ACTIVITY, (activity_id, step - 1))
    second = add_household(client.application, world.village_a, "二户", "户主二", openid="openid-2")
    with frozen(BOUNDARY + seconds(STEP - 1)):
        graced = check_in(client, world, code)
    with frozen(BOUNDARY + seconds(STEP)):
        stale = check_in(client, world, code, user=second["user"])
    assert graced.status_code == 201, graced.get_json()
    assert stale.status_code == 422 and error_code(stale) == "qr_expired"


def test_the_tolerance_is_the_configured_one(
    app: Flask,
    client: FlaskClient,
    world: World,
    items: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    activity_id = rotating_activity(client, world, items["GOV-ASSEMBLY"])
    second = add_household(app, world.village_a, "二户", "户主二", openid="openid-2")
    upcoming = CODEC.encode(TokenType.ACTIVITY, (activity_id, int(BOUNDARY.timestamp()) // STEP))
    monkeypatch.setitem(app.config, "QR_CLOCK_SKEW_SECONDS", 0)
    with frozen(BOUNDARY - seconds(0.5)):
        strict = check_in(client, world, upcoming)
    monkeypatch.setitem(app.config, "QR_CLOCK_SKEW_SECONDS", 9)
    with frozen(BOUNDARY - seconds(8)):
        tolerant = check_in(client, world, upcoming, user=second["user"])
    assert strict.status_code == 422 and error_code(strict) == "qr_expired"
    assert tolerant.status_code == 201, tolerant.get_json()
    assert checked_in(client, world, activity_id) == 1


# ---- access and refresh tokens --------------------------------------------------------------


def test_a_token_from_a_server_a_few_seconds_ahead_is_accepted(
    client: FlaskClient, world: World
) -> None:
    at = local(2026, 12, 1, 9, 0)
    with frozen(at + seconds(4)):  # logged in on the server ahead
        pair = world.tokens("cadre_a")
    with frozen(at):  # the next request lands on the server on time
        me = client.get(ME, headers={"Authorization": f"Bearer {pair.access_token}"})
        refreshed = client.post(f"{API}/auth/refresh", json={"refresh_token": pair.refresh_token})
    assert me.status_code == 200, me.get_json()
    assert me.get_json()["user"]["id"] == world.cadre_a
    assert refreshed.status_code == 200, refreshed.get_json()


def test_a_token_issued_beyond_the_leeway_is_refused(
    app: Flask, client: FlaskClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = local(2026, 12, 1, 9, 0)
    with frozen(at + seconds(30)):
        far_ahead = world.headers("cadre_a")
    with frozen(at + seconds(2)):
        slightly_ahead = world.headers("cadre_a")
    with frozen(at):
        refused = client.get(ME, headers=far_ahead)
        monkeypatch.setitem(app.config, "JWT_LEEWAY_SECONDS", 0)
        strict = client.get(ME, headers=slightly_ahead)
    for response in (refused, strict):
        assert response.status_code == 401
        assert error_code(response) == "token_invalid"


def test_the_leeway_also_applies_to_expiry(client: FlaskClient, world: World, app: Flask) -> None:
    at = local(2026, 12, 1, 9, 0)
    with frozen(at):
        headers = world.headers("cadre_a")
    expires = at + timedelta(minutes=app.config["ACCESS_TOKEN_MINUTES"])
    with frozen(expires + seconds(5)):
        late = client.get(ME, headers=headers)
    with frozen(expires + seconds(11)):
        expired = client.get(ME, headers=headers)
    assert late.status_code == 200, late.get_json()
    assert expired.status_code == 401 and error_code(expired) == "token_expired"


def test_a_binding_code_from_a_server_ahead_binds(
    app: Flask, client: FlaskClient, world: World
) -> None:
    """QR codes with an expiry carry no issued-at or not-before: nothing to refuse early."""
    at = local(2026, 12, 1, 9, 0)
    with frozen(at + seconds(30)):
        response = client.post(
            f"{API}/villagers/{world.spouse_x}/binding-token", headers=world.headers("cadre_a")
        )
    assert response.status_code == 201, response.get_json()
    with frozen(at):
        bound = client.post(
            f"{API}/auth/bind",
            json={"token": response.get_json()["token"]},
            headers=world.headers("unbound"),
        )
    assert bound.status_code == 200, bound.get_json()


# ---- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["QR_CLOCK_SKEW_SECONDS", "JWT_LEEWAY_SECONDS"])
@pytest.mark.parametrize("value", ["five", "-1", "61", "1.5"])
def test_an_unreadable_or_unreasonable_tolerance_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    if name == "QR_CLOCK_SKEW_SECONDS" and value == "61":
        value = "10"  # a whole step of the shortest rotation
    monkeypatch.setenv("APP_ENV", "development")
    monkeypatch.setenv(name, value)
    with pytest.raises(RuntimeError, match=name):
        create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})


def test_the_tolerances_default_to_a_few_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "development")
    monkeypatch.delenv("QR_CLOCK_SKEW_SECONDS", raising=False)
    monkeypatch.delenv("JWT_LEEWAY_SECONDS", raising=False)
    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    assert app.config["QR_CLOCK_SKEW_SECONDS"] == 5
    assert app.config["JWT_LEEWAY_SECONDS"] == 10
    monkeypatch.setenv("QR_CLOCK_SKEW_SECONDS", "0")
    monkeypatch.setenv("JWT_LEEWAY_SECONDS", "60")
    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    assert (app.config["QR_CLOCK_SKEW_SECONDS"], app.config["JWT_LEEWAY_SECONDS"]) == (0, 60)


# ---- the tests' own clock -------------------------------------------------------------------


@pytest.mark.server_zones
def test_freezing_the_clock_leaves_the_server_in_its_own_zone(server_zone: str) -> None:
    moment = local(2026, 12, 31, 23, 30)  # already the new year in the village
    zone = ZoneInfo(server_zone)
    offset = zone.utcoffset(moment.astimezone(zone).replace(tzinfo=None))
    assert offset is not None
    with frozen(moment):
        assert datetime.now(UTC) == moment
        assert time.localtime().tm_gmtoff == offset.total_seconds()
        assert date.today() == moment.astimezone(zone).date()
        assert datetime.now() == moment.astimezone(zone).replace(tzinfo=None)


def test_a_test_that_freezes_the_clock_runs_with_the_server_in_other_zones(
    request: pytest.FixtureRequest,
) -> None:
    zone = request.node.callspec.params["server_zone"]
    with frozen(local(2026, 12, 1, 9, 0)):
        assert os.environ["TZ"] == zone
        assert time.localtime().tm_gmtoff != 8 * 3600  # never the village's own zone
    assert zone in SERVER_ZONES
