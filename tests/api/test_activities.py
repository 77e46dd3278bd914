"""Activities and QR check-in through the HTTP API: creating and listing activities, static
and rotating codes, check-in into the claims workflow (passbook, notice, review queue),
every refusal, geofence, capacity, proxy check-in by member card, the anti-fraud signals,
check-out for per-hour items, printable posters and the display screen."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from typing import Any

import qrcode
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from qrcode.constants import ERROR_CORRECT_M
from sqlalchemy import JSON, func, select, update

import rules
from backend.caller import token_settings
from backend.extensions import db
from points import catalogs, sessions
from points.demo import DEMO_PASSWORD
from points.models import Activity, AuditEntry, CheckIn, Claim, RuleCatalog, RuleItem, User
from points.scope import Actor
from points.tokens import TokenCodec, TokenType
from tests.factories import (
    SECRET,
    World,
    add_household,
    approve,
    check_in,
    post_due,
    set_policy,
)
from tests.support.clock import frozen, local
from tests.support.reads import account_of, checked_in, count, entries_of, error_code

API = "/api/v1"
START = local(2026, 12, 1, 9, 0)  # a Tuesday morning village assembly (村民大会)
END = local(2026, 12, 1, 11, 0)
DURING = local(2026, 12, 1, 9, 5)
BEFORE = local(2026, 11, 30, 15, 0)
CODEC = TokenCodec.from_secret(SECRET)  # the app's key ring with the default QR_KEY_ID 1


def body(world: World, item_id: int, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "village_id": world.village_a,
        "title": "十二月村民大会",
        "rule_item_id": item_id,
        "starts_at": START.isoformat(),
        "ends_at": END.isoformat(),
        "qr_mode": "static",
    }
    data.update(changes)
    return data


def create(
    client: FlaskClient, world: World, item_id: int, user: str = "cadre_a", **changes: Any
) -> Any:
    return client.post(
        f"{API}/activities", json=body(world, item_id, **changes), headers=world.headers(user)
    )


def new_activity(client: FlaskClient, world: World, item_id: int, **changes: Any) -> dict[str, Any]:
    """Created the afternoon before (call outside a frozen block)."""
    with frozen(BEFORE):
        response = create(client, world, item_id, **changes)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def code(client: FlaskClient, world: World, activity_id: int, user: str = "cadre_a") -> str:
    response = client.get(f"{API}/activities/{activity_id}/qr-token", headers=world.headers(user))
    assert response.status_code == 200, response.get_json()
    return response.get_json()["token"]


def places_taken(app: Flask, activity_id: int) -> int:
    with app.app_context():
        activity = db.session.get(Activity, activity_id)
        assert activity is not None
        return activity.places_taken


def member_card(villager_id: int) -> str:
    return CODEC.encode(TokenType.MEMBER_CARD, (villager_id,))


# ---- creating and listing -------------------------------------------------------------------


def test_cadre_creates_an_activity_villagers_of_the_village_see_it(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    activity = new_activity(
        client,
        world,
        items["GOV-ASSEMBLY"],
        capacity=80,
        location={"lat": 30.5, "lng": 114.3, "radius_m": 300},
    )

    assert activity["status"] == "upcoming"
    assert activity["rule_item"]["code"] == "GOV-ASSEMBLY"
    assert activity["rule_item"]["points"] == 3
    # check-in opens 30 minutes before the start by default, shown in the village's zone
    assert activity["checkin_opens_at"] == "2026-12-01T08:30:00+08:00"
    assert activity["checkin_closes_at"] == "2026-12-01T11:00:00+08:00"
    assert activity["location"] == {"lat": 30.5, "lng": 114.3, "radius_m": 300, "mode": "refuse"}
    assert activity["qr_step_seconds"] == 30 and activity["checked_in"] == 0
    with app.app_context():
        actions = db.session.scalars(select(AuditEntry.action)).all()
    assert "activity.create" in actions

    with frozen(BEFORE):
        mine = client.get(f"{API}/activities", headers=world.headers("villager_x")).get_json()
        other = client.get(f"{API}/activities", headers=world.headers("villager_y")).get_json()
        hidden = client.get(f"{API}/activities/{activity['id']}", headers=world.headers("cadre_b"))
    assert [a["id"] for a in mine["items"]] == [activity["id"]]
    assert mine["items"][0]["my_checkin_id"] is None
    assert other["items"] == []
    assert hidden.status_code == 404


def test_villagers_list_only_what_is_still_to_come(
    client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    past = new_activity(client, world, items["GOV-ASSEMBLY"], title="上周的会")
    later = new_activity(
        client,
        world,
        items["GOV-ASSEMBLY"],
        title="下周的会",
        starts_at=(START + timedelta(days=7)).isoformat(),
        ends_at=(END + timedelta(days=7)).isoformat(),
    )
    cancelled = new_activity(client, world, items["GOV-ASSEMBLY"], title="取消的会")
    with frozen(BEFORE):
        assert (
            client.post(
                f"{API}/activities/{cancelled['id']}/cancel",
                json={},
                headers=world.headers("cadre_a"),
            ).status_code
            == 200
        )

    with frozen(END + timedelta(days=1)):
        villager = client.get(f"{API}/activities", headers=world.headers("villager_x"))
        closed = client.get(f"{API}/activities?status=closed", headers=world.headers("cadre_a"))
        gone = client.get(f"{API}/activities?status=cancelled", headers=world.headers("cadre_a"))
        everything = client.get(f"{API}/activities", headers=world.headers("cadre_a"))
    assert [a["id"] for a in villager.get_json()["items"]] == [later["id"]]
    assert [a["id"] for a in closed.get_json()["items"]] == [past["id"]]
    assert [a["id"] for a in gone.get_json()["items"]] == [cancelled["id"]]
    assert everything.get_json()["total"] == 3


def test_an_activity_needs_an_item_scored_by_check_in(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    with frozen(BEFORE):
        cadre_only = create(client, world, items["ENV-SORTING"])
        bad_times = create(client, world, items["GOV-ASSEMBLY"], ends_at=START.isoformat())
        past = create(
            client,
            world,
            items["GOV-ASSEMBLY"],
            starts_at=local(2026, 11, 1, 9).isoformat(),
            ends_at=local(2026, 11, 1, 11).isoformat(),
        )
        naive = create(client, world, items["GOV-ASSEMBLY"], starts_at="2026-12-01T09:00:00")
        unknown = create(client, world, items["GOV-ASSEMBLY"], secret_points=100)
        by_villager = create(client, world, items["GOV-ASSEMBLY"], user="villager_x")
        other_village = create(client, world, items["GOV-ASSEMBLY"], user="cadre_b")

    assert cadre_only.status_code == 422 and error_code(cadre_only) == "not_checkin_item"
    assert bad_times.status_code == 422 and error_code(bad_times) == "invalid_times"
    assert past.status_code == 422 and error_code(past) == "invalid_times"
    assert naive.status_code == 422
    assert unknown.status_code == 422 and error_code(unknown) == "unknown_fields"
    assert by_villager.status_code == 403
    assert other_village.status_code == 404
    assert count(app, Activity) == 0


# ---- check-in into the claims workflow ------------------------------------------------------


def test_check_in_of_a_no_review_item_shows_in_the_household_passbook(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    set_policy(client, world, notice_days=0)
    activity = new_activity(client, world, items["GOV-ASSEMBLY"])
    with frozen(DURING):
        token = code(client, world, activity["id"])
        response = check_in(client, world, token, headers={"X-Device-Id": "phone-1"})
        passbook = client.get(
            f"{API}/households/{world.household_x}/ledger", headers=world.headers("villager_x")
        ).get_json()
        listed = client.get(f"{API}/activities", headers=world.headers("villager_x"))

    assert response.status_code == 201, response.get_json()
    result = response.get_json()
    assert result["status"] == "posted" and result["points"] == 3
    assert result["checkin_id"] and result["claim_id"]
    line = passbook["items"][0]
    assert line["amount"] == 3 and line["claim_id"] == result["claim_id"]
    assert line["rule_item_name"] == "参加村民大会" and line["member_name"] == "户主x"
    assert account_of(app, world.household_x)["available"] == 3
    assert listed.get_json()["items"][0]["my_checkin_id"] == result["checkin_id"]
    with app.app_context():
        claim = db.session.get(Claim, result["claim_id"])
        assert claim is not None and claim.source == "checkin"
        assert claim.note == "十二月村民大会"
        row = db.session.scalar(select(CheckIn))
        assert row is not None and row.device_id == "phone-1" and row.proxy_by is None


def test_no_review_item_with_notice_days_posts_after_its_notice(
    app: Flask, client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> None:
    activity = new_activity(client, world, items["GOV-ASSEMBLY"])
    with frozen(DURING):
        response = check_in(client, world, code(client, world, activity["id"]))
        notices = client.get(
            f"{API}/villages/{world.village_a}/notices", headers=world.headers("villager_x")
        ).get_json()["items"]
    body = response.get_json()
    assert body["status"] == "in_notice"
    assert [n["claim_id"] for n in notices] == [body["claim_id"]]
    # The check-in screen names what was checked in to, and until when it is in notice.
    assert (body["activity_title"], body["rule_item_name"]) == (
        activity["title"],
        activity["rule_item"]["name"],
    )
    assert body["notice_ends_at"] == notices[0]["notice_ends_at"] is not None
    with frozen(DURING):
        again = client.get(
            f"{API}/checkins/{body['checkin_id']}", headers=world.headers("villager_x")
        ).get_json()
    assert {k: again[k] for k in ("activity_title", "rule_item_name", "notice_ends_at")} == {
        k: body[k] for k in ("activity_title", "rule_item_name", "notice_ends_at")
    }
    assert entries_of(app, world.household_x) == []

    with frozen(DURING + timedelta(days=6)):
        assert post_due(runner) == 1
    assert [e["amount"] for e in entries_of(app, world.household_x)] == [3]


def test_a_catalog_policy_stored_as_json_null_reads_as_no_policy_of_its_own(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    """The mapped column reads a JSON null as None (no policy of its own: the defaults); a
    scan reads the policy as text, and must not take it for a policy to parse."""
    activity = new_activity(client, world, items["GOV-ASSEMBLY"])
    with app.app_context():
        db.session.execute(update(RuleCatalog).values(policy=JSON.NULL))
        db.session.commit()
        expected = catalogs.effective_policy(db.session, world.village_a)
        many = catalogs.effective_policies(db.session, {world.village_a: world.township_1})
    assert expected == rules.Policy() and many == {world.village_a: expected}
    with frozen(DURING):
        response = check_in(client, world, code(client, world, activity["id"]))
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["status"] == ("in_notice" if expected.notice_days else "posted")


def test_check_in_of_a_review_item_waits_in_the_cadres_queue(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    activity = new_activity(client, world, items["ENV-CLEANUP"], title="村道大扫除")
    with frozen(DURING):
        response = check_in(client, world, code(client, world, activity["id"]))
        queue = client.get(
            f"{API}/claims?status=pending", headers=world.headers("cadre_a")
        ).get_json()
    result = response.get_json()
    assert response.status_code == 201 and result["status"] == "pending"
    assert result["points"] == 5
    assert [(c["id"], c["source"], c["member_name"]) for c in queue["items"]] == [
        (result["claim_id"], "checkin", "户主x")
    ]
    assert entries_of(app, world.household_x) == []

    with frozen(DURING + timedelta(minutes=30)):
        approved = approve(client, world, "cadre_a", result["claim_id"])
    assert approved.get_json()["status"] == "in_notice"


def test_a_second_scan_by_the_same_villager_is_409_and_changes_nothing(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    activity = new_activity(client, world, items["GOV-ASSEMBLY"])
    with frozen(DURING):
        token = code(client, world, activity["id"])
        first = check_in(client, world, token)
        again = check_in(client, world, token)

    assert first.status_code == 201
    assert again.status_code == 409 and error_code(again) == "already_checked_in"
    details = again.get_json()["error"]["details"]
    assert details["checkin_id"] == first.get_json()["checkin_id"]
    assert details["claim_id"] == first.get_json()["claim_id"]
    assert count(app, CheckIn) == 1 and count(app, Claim) == 1


def test_a_repeat_scan_is_answered_as_a_repeat_before_anything_else_is_judged(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    """The repeat is looked up before the claim is made: a villager who already checked in
    hears that, even when the item has since stopped taking check-ins (which a first scan
    would be refused for), and nothing is written."""
    activity = new_activity(client, world, items["GOV-ASSEMBLY"])
    with frozen(DURING):
        token = code(client, world, activity["id"])
        first = check_in(client, world, token)
    edited = client.patch(
        f"{API}/rule-items/{items['GOV-ASSEMBLY']}",
        json={"submit_by": ["cadre"]},
        headers=world.headers("tadmin1"),
    )
    assert edited.status_code == 200, edited.get_json()
    with frozen(BEFORE):
        refused = create(client, world, items["GOV-ASSEMBLY"])
    with frozen(DURING):
        again = check_in(client, world, token)

    assert first.status_code == 201
    assert refused.status_code == 422 and error_code(refused) == "not_checkin_item"
    assert again.status_code == 409 and error_code(again) == "already_checked_in"
    assert again.get_json()["error"]["details"]["checkin_id"] == first.get_json()["checkin_id"]
    assert count(app, CheckIn) == 1 and count(app, Claim) == 1
    assert checked_in(client, world, activity["id"]) == 1


def test_a_cap_reached_records_attendance_without_points(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    """Two assemblies on one day: the item counts once a day; the second attendance is
    still recorded (the villager was there) and says why it earned nothing."""
    morning = new_activity(client, world, items["GOV-ASSEMBLY"])
    afternoon = new_activity(
        client,
        world,
        items["GOV-ASSEMBLY"],
        title="下午议事会",
        starts_at=local(2026, 12, 1, 14).isoformat(),
        ends_at=local(2026, 12, 1, 16).isoformat(),
    )
    with frozen(DURING):
        assert check_in(client, world, code(client, world, morning["id"])).status_code == 201
    with frozen(local(2026, 12, 1, 14, 10)):
        second = check_in(client, world, code(client, world, afternoon["id"]))
    assert second.status_code == 201
    result = second.get_json()
    assert result["status"] == "no_points" and result["points"] == 0
    assert result["claim_id"] is None and "上限" in result["reason"]
    assert count(app, Claim) == 1 and count(app, CheckIn) == 2


# ---- refusals -------------------------------------------------------------------------------


def test_check_in_window(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    activity = new_activity(client, world, items["GOV-ASSEMBLY"])
    with frozen(BEFORE):
        token = code(client, world, activity["id"])
    with frozen(local(2026, 12, 1, 8, 29)):
        early = check_in(client, world, token)
    with frozen(END):
        late = check_in(client, world, token)
    assert early.status_code == 422 and error_code(early) == "checkin_not_open"
    assert "08:30" in early.get_json()["error"]["message"]
    assert late.status_code == 422 and error_code(late) == "checkin_closed"
    assert count(app, CheckIn) == 0 and count(app, Claim) == 0
    with frozen(local(2026, 12, 1, 8, 30)):
        assert check_in(client, world, token).status_code == 201


def test_a_code_of_another_village_is_wrong_village(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    activity = new_activity(client, world, items["GOV-ASSEMBLY"])
    with frozen(DURING):
        response = check_in(client, world, code(client, world, activity["id"]), user="villager_y")
        staff = check_in(client, world, code(client, world, activity["id"]), user="cadre_a")
        unbound = check_in(client, world, code(client, world, activity["id"]), user="unbound")
    assert response.status_code == 403 and error_code(response) == "wrong_village"
    assert staff.status_code == 403
    assert unbound.status_code == 403 and error_code(unbound) == "not_bound"
    assert count(app, CheckIn) == 0


def test_a_cancelled_activity_refuses_its_codes(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    activity = new_activity(client, world, items["GOV-ASSEMBLY"])
    with frozen(BEFORE):
        token = code(client, world, activity["id"])
        by_villager = client.post(
            f"{API}/activities/{activity['id']}/cancel",
            json={},
            headers=world.headers("villager_x"),
        )
        cancelled = client.post(
            f"{API}/activities/{activity['id']}/cancel",
            json={"reason": "暴雨改期"},
            headers=world.headers("cadre_a"),
        )
        twice = client.post(
            f"{API}/activities/{activity['id']}/cancel", json={}, headers=world.headers("cadre_a")
        )
    with frozen(DURING):
        response = check_in(client, world, token)
        poster = client.get(
            f"{API}/activities/{activity['id']}/qr.png", headers=world.headers("cadre_a")
        )
    assert by_villager.status_code == 403
    assert cancelled.status_code == 200
    assert cancelled.get_json()["status"] == "cancelled"
    assert cancelled.get_json()["cancel_reason"] == "暴雨改期"
    assert twice.status_code == 409
    assert response.status_code == 409 and error_code(response) == "activity_cancelled"
    assert poster.status_code == 409
    assert count(app, CheckIn) == 0


def test_rotating_code_accepts_the_current_and_previous_step_only(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    activity = new_activity(client, world, items["GOV-ASSEMBLY"], qr_mode="rotating")
    second = add_household(app, world.village_a, "二户", "户主二", openid="openid-2")
    third = add_household(app, world.village_a, "三户", "户主三", openid="openid-3")
    at = local(2026, 12, 1, 9, 0)
    with frozen(at):
        shown = client.get(
            f"{API}/activities/{activity['id']}/qr-token", headers=world.headers("cadre_a")
        ).get_json()
        assert check_in(client, world, shown["token"]).status_code == 201
    step = int(at.timestamp()) // 30
    assert shown["step"] == step
    assert datetime.fromisoformat(shown["refresh_at"]).timestamp() == (step + 1) * 30
    assert datetime.fromisoformat(shown["expires_at"]).timestamp() == (step + 2) * 30
    # one step later, the code on a photo still works (grace) ...
    with frozen(at + timedelta(seconds=30)):
        assert check_in(client, world, shown["token"], user=second["user"]).status_code == 201
    # ... two steps later it does not
    with frozen(at + timedelta(seconds=60)):
        stale = check_in(client, world, shown["token"], user=third["user"])
        poster = check_in(
            client, world, CODEC.encode(TokenType.ACTIVITY, (activity["id"], 0)), user=third["user"]
        )
        future = check_in(
            client,
            world,
            CODEC.encode(TokenType.ACTIVITY, (activity["id"], step + 9)),
            user=third["user"],
        )
        printable = client.get(
            f"{API}/activities/{activity['id']}/qr.png", headers=world.headers("cadre_a")
        )
    assert stale.status_code == 422 and error_code(stale) == "qr_expired"
    assert error_code(poster) == "qr_expired" and error_code(future) == "qr_expired"
    assert printable.status_code == 409
    assert error_code(printable) == "rotating_code_not_printable"
    assert checked_in(client, world, activity["id"]) == 2


def test_geofence_refuses_far_away_and_missing_locations(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    # the village square; 0.01° of latitude is about 1.1 km
    activity = new_activity(
        client, world, items["GOV-ASSEMBLY"], location={"lat": 30.0, "lng": 114.0, "radius_m": 200}
    )
    with frozen(DURING):
        token = code(client, world, activity["id"])
        far = check_in(client, world, token, lat=30.01, lng=114.0)
        nowhere = check_in(client, world, token)
        half = check_in(client, world, token, lat=30.0)
        near = check_in(client, world, token, lat=30.001, lng=114.0)
    assert far.status_code == 422 and error_code(far) == "out_of_area"
    assert 1100 <= far.get_json()["error"]["details"]["distance_m"] <= 1115
    assert error_code(nowhere) == "location_required"
    assert half.status_code == 422
    assert near.status_code == 201 and 105 <= near.get_json()["distance_m"] <= 115
    assert count(app, CheckIn) == 1 and checked_in(client, world, activity["id"]) == 1


def test_capacity_refuses_past_the_limit(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    activity = new_activity(client, world, items["GOV-ASSEMBLY"], capacity=1)
    other = add_household(app, world.village_a, "二户", "户主二", openid="openid-2")
    with frozen(DURING):
        token = code(client, world, activity["id"])
        assert check_in(client, world, token).status_code == 201
        full = check_in(client, world, token, user=other["user"])
    assert full.status_code == 409 and error_code(full) == "activity_full"
    assert count(app, CheckIn) == 1 and count(app, Claim) == 1
    assert checked_in(client, world, activity["id"]) == 1
    assert places_taken(app, activity["id"]) == 1


# ---- proxy check-in (代签) and anti-fraud signals ---------------------------------------------


def test_cadre_checks_in_a_villager_by_member_card(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    set_policy(client, world, notice_days=0)
    activity = new_activity(
        client, world, items["GOV-ASSEMBLY"], location={"lat": 30.0, "lng": 114.0, "radius_m": 200}
    )
    path = f"{API}/activities/{activity['id']}/proxy-checkins"
    with frozen(DURING):
        done = client.post(
            path,
            json={"member_token": member_card(world.spouse_x)},
            headers=world.headers("cadre_a"),
        )
        again = client.post(
            path,
            json={"member_token": member_card(world.spouse_x)},
            headers=world.headers("cadre_a"),
        )
        activity_code = client.post(
            path,
            json={"member_token": code(client, world, activity["id"])},
            headers=world.headers("cadre_a"),
        )
        other_village = client.post(
            path, json={"member_token": member_card(world.head_y)}, headers=world.headers("cadre_a")
        )
        by_villager = client.post(
            path,
            json={"member_token": member_card(world.spouse_x)},
            headers=world.headers("villager_x"),
        )
        by_other_cadre = client.post(
            path, json={"member_token": member_card(world.head_y)}, headers=world.headers("cadre_b")
        )
        listed = client.get(
            f"{API}/activities/{activity['id']}/checkins", headers=world.headers("cadre_a")
        ).get_json()

    assert done.status_code == 201, done.get_json()
    assert done.get_json()["proxy_by"] == world.cadre_a
    assert done.get_json()["status"] == "posted"
    assert again.status_code == 409 and error_code(again) == "already_checked_in"
    assert error_code(activity_code) == "qr_wrong_type"
    assert other_village.status_code == 403 and error_code(other_village) == "wrong_village"
    assert by_villager.status_code == 403
    assert by_other_cadre.status_code == 404
    row = listed["items"][0]
    assert (row["villager_name"], row["proxy_by"], row["proxy_by_name"]) == (
        "配偶x",
        world.cadre_a,
        "cadre_a",
    )
    assert [e["member_id"] for e in entries_of(app, world.household_x)] == [world.spouse_x]
    with app.app_context():
        assert (
            db.session.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == "checkin.proxy")
            )
            == 1
        )
        claim = db.session.scalar(select(Claim))
        assert claim is not None and claim.submitted_by == world.cadre_a


def test_signals_one_device_many_villagers_and_out_of_area(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    activity = new_activity(
        client,
        world,
        items["GOV-ASSEMBLY"],
        location={"lat": 30.0, "lng": 114.0, "radius_m": 200, "mode": "flag"},
    )
    others = [
        add_household(app, world.village_a, f"{n}户", f"户主{n}", openid=f"o-{n}") for n in range(3)
    ]
    with frozen(DURING):
        token = code(client, world, activity["id"])
        one_phone = {"X-Device-Id": "same-phone"}
        assert (
            check_in(client, world, token, headers=one_phone, lat=30.0, lng=114.0).status_code
            == 201
        )
        assert (
            check_in(
                client, world, token, user=others[0]["user"], headers=one_phone, lat=30.0, lng=114.0
            ).status_code
            == 201
        )
        away = check_in(
            client,
            world,
            token,
            user=others[1]["user"],
            headers={"X-Device-Id": "own-phone"},
            lat=30.05,
            lng=114.0,
        )
        unlocated = check_in(client, world, token, user=others[2]["user"])
        listed = client.get(
            f"{API}/activities/{activity['id']}/checkins", headers=world.headers("cadre_a")
        )
        for_villager = client.get(
            f"{API}/activities/{activity['id']}/checkins", headers=world.headers("villager_x")
        )

    assert away.status_code == 201 and away.get_json()["flags"] == ["out_of_area"]
    assert unlocated.status_code == 201 and unlocated.get_json()["flags"] == ["no_location"]
    data = listed.get_json()
    signals = data["signals"]
    assert [(s["device_id"], s["villager_ids"]) for s in signals["shared_devices"]] == [
        ("same-phone", sorted([world.head_x, others[0]["head"]]))
    ]
    assert signals["out_of_area"] == [away.get_json()["checkin_id"]]
    assert signals["no_location"] == [unlocated.get_json()["checkin_id"]]
    flags = {row["villager_id"]: row["flags"] for row in data["items"]}
    assert flags[world.head_x] == ["shared_device"]
    assert flags[others[1]["head"]] == ["out_of_area"]
    assert data["total"] == 4 and data["checked_in"] == 4
    assert for_villager.status_code == 403


def test_signals_a_burst_of_proxy_check_ins_by_one_cadre(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    activity = new_activity(client, world, items["GOV-ASSEMBLY"])
    heads = [add_household(app, world.village_a, f"{n}户", f"老人{n}")["head"] for n in range(12)]
    path = f"{API}/activities/{activity['id']}/proxy-checkins"
    # two slow ones at the start, then eleven within two minutes: more than 10 in 3 minutes
    moments = [DURING, DURING + timedelta(minutes=10)] + [
        DURING + timedelta(minutes=20, seconds=10 * n) for n in range(11)
    ]
    people = [world.spouse_x, *heads]
    for moment, villager_id in zip(moments, people, strict=True):
        with frozen(moment):
            response = client.post(
                path,
                json={"member_token": member_card(villager_id)},
                headers=world.headers("cadre_a"),
            )
            assert response.status_code == 201, response.get_json()
    with frozen(DURING + timedelta(minutes=30)):
        data = client.get(
            f"{API}/activities/{activity['id']}/checkins?per_page=5",
            headers=world.headers("cadre_a"),
        ).get_json()

    (burst,) = data["signals"]["proxy_bursts"]
    assert burst["cadre_id"] == world.cadre_a and burst["count"] == 11
    assert data["proxy_count"] == 13 and data["total"] == 13 and len(data["items"]) == 5
    assert data["signals"]["burst_rule"] == {"more_than": 10, "within_minutes": 3.0}
    # the page lists the first five: the two slow ones are not part of the burst
    assert [("proxy_burst" in row["flags"]) for row in data["items"]] == [
        False,
        False,
        True,
        True,
        True,
    ]


# ---- check-out for per-hour items ---------------------------------------------------------------


def test_per_hour_item_is_scored_at_check_out_within_the_activity_time(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    activity = new_activity(
        client,
        world,
        items["PUB-VOLUNTEER"],
        title="敬老院志愿服务",
        starts_at=START.isoformat(),
        ends_at=local(2026, 12, 1, 19).isoformat(),
    )
    with frozen(local(2026, 12, 1, 8, 40)):  # before the start: counts from 09:00
        checked = check_in(client, world, code(client, world, activity["id"]))
    result = checked.get_json()
    assert checked.status_code == 201
    assert (result["status"], result["points"], result["claim_id"]) == ("checked_in", 0, None)
    path = f"{API}/checkins/{result['checkin_id']}/checkout"
    with frozen(local(2026, 12, 1, 21)):  # forgot to leave: counts until 19:00
        done = client.post(path, headers=world.headers("villager_x"))
        twice = client.post(path, headers=world.headers("villager_x"))
    out = done.get_json()
    assert done.status_code == 200, out
    # 10 hours on the clock; the item counts at most 8 hours a time, 2 points an hour
    assert (out["points"], out["status"]) == (16, "pending")
    assert "8 小时" in out["reason"]
    assert twice.status_code == 409 and error_code(twice) == "already_checked_out"
    with app.app_context():
        claim = db.session.get(Claim, out["claim_id"])
        assert claim is not None and claim.units == 8 and claim.capped


def test_check_out_counts_whole_hours_and_is_only_for_per_hour_items(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    volunteer = new_activity(
        client,
        world,
        items["PUB-VOLUNTEER"],
        title="植树",
        ends_at=local(2026, 12, 1, 17).isoformat(),
    )
    assembly = new_activity(client, world, items["GOV-ASSEMBLY"])
    other = add_household(app, world.village_a, "二户", "户主二", openid="openid-2")
    with frozen(DURING):
        mine = check_in(client, world, code(client, world, volunteer["id"])).get_json()
        theirs = check_in(
            client, world, code(client, world, volunteer["id"]), user=other["user"]
        ).get_json()
        meeting = check_in(client, world, code(client, world, assembly["id"])).get_json()
    with frozen(DURING + timedelta(minutes=50)):
        short = client.post(
            f"{API}/checkins/{theirs['checkin_id']}/checkout", headers=world.headers(other["user"])
        )
    with frozen(DURING + timedelta(hours=2, minutes=59)):
        not_mine = client.post(
            f"{API}/checkins/{theirs['checkin_id']}/checkout", headers=world.headers("villager_x")
        )
        two_hours = client.post(
            f"{API}/checkins/{mine['checkin_id']}/checkout", headers=world.headers("villager_x")
        )
        not_needed = client.post(
            f"{API}/checkins/{meeting['checkin_id']}/checkout", headers=world.headers("villager_x")
        )
    assert short.status_code == 200
    assert (short.get_json()["status"], short.get_json()["points"]) == ("no_points", 0)
    assert not_mine.status_code == 404
    assert two_hours.get_json()["points"] == 4
    assert not_needed.status_code == 409 and error_code(not_needed) == "checkout_not_needed"


def test_per_unit_items_that_do_not_count_hours_cannot_be_activities(
    client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    with frozen(BEFORE):
        response = create(client, world, items["IND-JOBS"])
    assert response.status_code == 422 and error_code(response) == "not_checkin_item"


def test_an_item_that_says_hourly_is_scored_at_check_out_whatever_its_unit(
    client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    """Scoring by the hour is the item's `hourly`, not a reading of its unit: volunteer
    work counted in 次 but marked hourly is scored at check-out by the hours worked."""
    edited = client.patch(
        f"{API}/rule-items/{items['PUB-VOLUNTEER']}",
        json={"unit": "次", "hourly": True},
        headers=world.headers("tadmin1"),
    )
    assert edited.status_code == 200, edited.get_json()
    assert (edited.get_json()["unit"], edited.get_json()["hourly"]) == ("次", True)
    activity = new_activity(
        client,
        world,
        items["PUB-VOLUNTEER"],
        title="植树",
        ends_at=local(2026, 12, 1, 17).isoformat(),
    )
    with frozen(DURING):
        checked = check_in(client, world, code(client, world, activity["id"])).get_json()
    assert (checked["status"], checked["points"], checked["claim_id"]) == ("checked_in", 0, None)
    with frozen(DURING + timedelta(hours=3, minutes=10)):
        done = client.post(
            f"{API}/checkins/{checked['checkin_id']}/checkout", headers=world.headers("villager_x")
        )
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["points"] == 6  # three whole hours, 2 points each


# ---- posters and the display screen ---------------------------------------------------------


def test_poster_codes_are_small_and_print_sharp(
    client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    activity = new_activity(client, world, items["GOV-ASSEMBLY"])
    rotating = new_activity(client, world, items["GOV-ASSEMBLY"], qr_mode="rotating")
    with frozen(DURING):
        png = client.get(
            f"{API}/activities/{activity['id']}/qr.png?bare=1&box_size=8",
            headers=world.headers("cadre_a"),
        )
        svg = client.get(
            f"{API}/activities/{activity['id']}/qr.svg?bare=1", headers=world.headers("cadre_a")
        )
        static = client.get(
            f"{API}/activities/{activity['id']}/qr-token", headers=world.headers("cadre_a")
        ).get_json()
        moving = client.get(
            f"{API}/activities/{rotating['id']}/qr-token", headers=world.headers("cadre_a")
        ).get_json()
        by_villager = client.get(
            f"{API}/activities/{activity['id']}/qr.png", headers=world.headers("villager_x")
        )
        token_by_villager = client.get(
            f"{API}/activities/{activity['id']}/qr-token", headers=world.headers("villager_x")
        )

    # {PUBLIC_BASE_URL}/q/{token} with https://jf.example.gov.cn: QR version 4 at most
    # (33 modules), about 0.7 mm a module at 3 cm with the quiet zone
    versions = []
    for shown in (static, moving):
        assert shown["url"] == f"https://jf.example.gov.cn/q/{shown['token']}"
        qr = qrcode.QRCode(error_correction=ERROR_CORRECT_M)
        qr.add_data(shown["url"])
        qr.make(fit=True)
        versions.append(qr.version)
    assert max(versions) <= 4, versions
    assert static["expires_at"] == "2026-12-01T11:00:00+08:00"
    assert static["refresh_at"] is None and static["step"] == 0

    assert png.status_code == 200 and png.mimetype == "image/png"
    with Image.open(io.BytesIO(png.data)) as image:
        modules = 17 + 4 * versions[0] + 2 * 4
        assert image.size == (modules * 8, modules * 8)
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml"
    root = ET.fromstring(svg.data)
    assert root.tag.endswith("svg") and root.get("viewBox")
    assert by_villager.status_code == 403 and token_by_villager.status_code == 403


def test_a_display_link_made_days_ahead_lasts_until_check_in_closes(
    client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    activity = new_activity(client, world, items["GOV-ASSEMBLY"], qr_mode="rotating")
    with frozen(local(2026, 11, 28, 16, 0)):  # the screen is set up on Saturday
        link = client.post(
            f"{API}/activities/{activity['id']}/display-link", headers=world.headers("cadre_a")
        )
    assert link.status_code == 201, link.get_json()
    assert link.get_json()["expires_at"] == "2026-12-01T11:00:00+08:00"
    key = link.get_json()["url"].partition("#key=")[2]
    path = f"{API}/activities/{activity['id']}/qr-token"
    with frozen(END - timedelta(minutes=1)):
        shown = client.get(path, headers={"X-Display-Key": key})
    with frozen(END + timedelta(seconds=1)):
        after = client.get(path, headers={"X-Display-Key": key})
    assert shown.status_code == 200, shown.get_json()
    assert after.status_code == 422 and error_code(after) == "qr_expired"


def test_display_screen_shows_the_rotating_code_by_its_key(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    activity = new_activity(client, world, items["GOV-ASSEMBLY"], qr_mode="rotating")
    other = new_activity(client, world, items["GOV-ASSEMBLY"], qr_mode="rotating")
    path = f"{API}/activities/{activity['id']}/qr-token?svg=1"
    with frozen(local(2026, 12, 1, 8, 0)):
        link = client.post(
            f"{API}/activities/{activity['id']}/display-link", headers=world.headers("cadre_a")
        )
        by_villager = client.post(
            f"{API}/activities/{activity['id']}/display-link", headers=world.headers("villager_x")
        )
    assert link.status_code == 201
    url = link.get_json()["url"]
    page_path, _, fragment = url.removeprefix("https://jf.example.gov.cn").partition("#key=")
    assert page_path == f"/activities/{activity['id']}/display"
    # the key lives until check-in closes at 11:00
    assert link.get_json()["expires_at"] == "2026-12-01T11:00:00+08:00"
    assert by_villager.status_code == 403

    page = client.get(page_path)
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert 'data-key-header="X-Display-Key"' in html
    assert f'data-activity-id="{activity["id"]}"' in html
    script = client.get("/static/js/activity_display.js")
    assert "qr-token?svg=1" in script.get_data(as_text=True)
    script.close()

    with frozen(DURING):
        shown = client.get(path, headers={"X-Display-Key": fragment})
        wrong_activity = client.get(
            f"{API}/activities/{other['id']}/qr-token", headers={"X-Display-Key": fragment}
        )
        as_checkin = check_in(client, world, fragment)
        nobody = client.get(path)
    assert shown.status_code == 200, shown.get_json()
    data = shown.get_json()
    assert data["svg"].lstrip().startswith("<") and "svg" in data["svg"]
    assert data["title"] == "十二月村民大会" and data["status"] == "open"
    with frozen(DURING):
        assert check_in(client, world, data["token"]).status_code == 201
    assert error_code(wrong_activity) == "qr_invalid"
    assert error_code(as_checkin) == "qr_wrong_type"
    assert nobody.status_code == 401

    with frozen(END + timedelta(minutes=1)):
        expired = client.get(path, headers={"X-Display-Key": fragment})
    assert error_code(expired) == "qr_expired"

    with app.app_context():
        cadre = db.session.get(User, world.cadre_a)
        assert cadre is not None
        cadre.disabled = True
        db.session.commit()
    with frozen(DURING):
        revoked = client.get(path, headers={"X-Display-Key": fragment})
    assert revoked.status_code == 403 and error_code(revoked) == "display_key_revoked"


def test_openapi_documents_the_activity_endpoints(client: FlaskClient) -> None:
    paths = client.get(f"{API}/openapi.json").get_json()["paths"]
    for path in (
        "/api/v1/activities",
        "/api/v1/activities/{activity_id}",
        "/api/v1/activities/{activity_id}/cancel",
        "/api/v1/activities/{activity_id}/qr.png",
        "/api/v1/activities/{activity_id}/qr.svg",
        "/api/v1/activities/{activity_id}/qr-token",
        "/api/v1/activities/{activity_id}/display-link",
        "/api/v1/activities/{activity_id}/proxy-checkins",
        "/api/v1/activities/{activity_id}/checkins",
        "/api/v1/checkins",
        "/api/v1/checkins/{checkin_id}/checkout",
        "/activities/{activity_id}/display",
    ):
        assert path in paths, path
    names = [p["name"] for p in paths["/api/v1/checkins"]["post"]["parameters"]]
    assert "X-Device-Id" in names and "Idempotency-Key" in names


def test_the_prefetched_actor_is_the_scope_actor(app: Flask, world: World) -> None:
    """Authentication reads the villager's household, village and township with the session
    (check-in is the busiest request); the actor built from that must be exactly the actor
    the scope mechanism builds row by row, for villagers and for anyone else."""
    with app.app_context():
        # Staff whose rows leave the township out (it then comes from their village or
        # shop), and a cadre who is also a villager of their own village.
        extra = {
            "cadre_no_township": User(
                username="c_nt", password_hash="x", role="cadre", village_id=world.village_b
            ),
            "clerk_no_township": User(
                username="k_nt", password_hash="x", role="clerk", shop_id=world.shop_a
            ),
            "cadre_villager": User(
                username="c_v",
                password_hash="x",
                role="cadre",
                village_id=world.village_a,
                villager_id=world.spouse_x,
            ),
        }
        db.session.add_all(extra.values())
        db.session.flush()
        world.ids.update({name: user.id for name, user in extra.items()})
        for name in ("villager_x", "villager_y", "unbound", "cadre_a", "clerk_a", "county", *extra):
            pair = sessions.login(
                db.session, token_settings(), db.session.get(User, world.ids[name])
            )
            actor, _sid = sessions.authenticate(db.session, token_settings(), pair.access_token)
            user = db.session.get(User, world.ids[name])
            assert actor == Actor.of(db.session, user), name
        db.session.rollback()


def test_a_check_in_item_retired_from_the_rules_refuses_the_code(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    activity = new_activity(client, world, items["GOV-ASSEMBLY"])
    with app.app_context():
        item = db.session.get(RuleItem, items["GOV-ASSEMBLY"])
        assert item is not None
        item.retired_at = BEFORE
        db.session.commit()
    with frozen(DURING):
        response = check_in(client, world, code(client, world, activity["id"]))
    assert response.status_code == 404 and error_code(response) == "rule_item_not_found"
    assert count(app, CheckIn) == 0


def test_the_demo_has_activities_to_check_in_to(
    app: Flask, client: FlaskClient, runner: Any
) -> None:
    assert runner.invoke(args=["demo"]).exit_code == 0
    login = client.post(
        f"{API}/auth/login", json={"username": "cadre_qs", "password": DEMO_PASSWORD}
    )
    headers = {"Authorization": f"Bearer {login.get_json()['access_token']}"}
    listed = client.get(f"{API}/activities", headers=headers).get_json()["items"]
    assert {(a["rule_item"]["code"], a["qr_mode"], a["status"]) for a in listed} == {
        ("GOV-ASSEMBLY", "static", "upcoming"),
        ("ENV-CLEANUP", "rotating", "upcoming"),
    }
    rotating = next(a for a in listed if a["qr_mode"] == "rotating")
    assert rotating["location"]["mode"] == "flag" and rotating["capacity"] == 40
    shown = client.get(f"{API}/activities/{rotating['id']}/qr-token", headers=headers)
    assert shown.status_code == 200 and shown.get_json()["refresh_at"]


def test_the_mini_program_may_send_the_whole_scanned_url(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    activity = new_activity(client, world, items["GOV-ASSEMBLY"])
    with frozen(DURING):
        shown = client.get(
            f"{API}/activities/{activity['id']}/qr-token", headers=world.headers("cadre_a")
        ).get_json()
        response = check_in(client, world, shown["url"] + "\n")
        card = client.post(
            f"{API}/activities/{activity['id']}/proxy-checkins",
            json={"member_token": "https://jf.example.gov.cn/q/" + member_card(world.spouse_x)},
            headers=world.headers("cadre_a"),
        )
    assert response.status_code == 201, response.get_json()
    assert card.status_code == 201, card.get_json()
    assert count(app, CheckIn) == 2
