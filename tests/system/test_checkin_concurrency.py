"""Check-in under concurrent scans, with real threads against the real app (the pattern of
tests/system/test_concurrency.py: a barrier, one test client per thread, no app context open
in the test's own thread while they run).

On PostgreSQL: 50 scans at once by one villager make one check-in and one claim (the unique
constraint decides); 100 villagers at once on an activity of capacity 30 make exactly 30
check-ins (a conditional UPDATE of the activity's counter decides). SQLite serialises
writers, so there the capacity run shows only that queued check-ins wait instead of failing.
"""

from __future__ import annotations

from collections import Counter

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from backend.extensions import db
from points.models import Activity, CheckIn, Claim, LedgerEntry
from points.tokens import TokenCodec, TokenType
from tests.factories import SECRET, World, bound_villagers, default_items, open_activity, set_policy
from tests.support.concurrency import assert_no_server_errors, on_postgres, post_together

API = "/api/v1"


def totals(app: Flask, activity_id: int) -> dict[str, int]:
    with app.app_context():
        s = db.session
        activity = s.get(Activity, activity_id)
        assert activity is not None
        return {
            "checkins": s.scalar(
                select(func.count()).select_from(CheckIn).where(CheckIn.activity_id == activity_id)
            )
            or 0,
            "claims": s.scalar(select(func.count()).select_from(Claim)) or 0,
            "entries": s.scalar(select(func.count()).select_from(LedgerEntry)) or 0,
            "counter": activity.places_taken,
        }


@on_postgres
def test_fifty_scans_at_once_by_one_villager_make_one_check_in(
    app: Flask, client: FlaskClient, world: World
) -> None:
    items = default_items(app, world)
    set_policy(client, world, notice_days=0)  # posted at once: the ledger is in the race too
    # a capacity, so the place taken is in the race too (a repeat must give its place back)
    activity_id, token = open_activity(client, world, items["GOV-ASSEMBLY"], capacity=100)
    headers = world.headers("villager_x")

    replies = post_together(
        app, 50, f"{API}/checkins", lambda i: headers, lambda i: {"token": token}
    )

    assert_no_server_errors(replies)
    assert Counter(r.status for r in replies) == {201: 1, 409: 49}
    assert {r.code for r in replies if r.status == 409} == {"already_checked_in"}
    winner = next(r.body for r in replies if r.status == 201)
    assert winner["status"] == "posted" and winner["points"] == 3
    assert totals(app, activity_id) == {"checkins": 1, "claims": 1, "entries": 1, "counter": 1}


@on_postgres
def test_a_double_tapped_member_card_checks_in_once(
    app: Flask, client: FlaskClient, world: World
) -> None:
    items = default_items(app, world)
    activity_id, _ = open_activity(client, world, items["GOV-ASSEMBLY"])
    card = TokenCodec.from_secret(SECRET).encode(TokenType.MEMBER_CARD, (world.spouse_x,))
    headers = world.headers("cadre_a")

    replies = post_together(
        app,
        20,
        f"{API}/activities/{activity_id}/proxy-checkins",
        lambda i: headers,
        lambda i: {"member_token": card},
    )

    assert_no_server_errors(replies)
    assert Counter(r.status for r in replies) == {201: 1, 409: 19}
    assert totals(app, activity_id)["checkins"] == 1
    assert totals(app, activity_id)["claims"] == 1


def test_a_hundred_villagers_at_once_fill_thirty_places_exactly(
    app: Flask, client: FlaskClient, world: World
) -> None:
    items = default_items(app, world)
    activity_id, token = open_activity(client, world, items["GOV-ASSEMBLY"], capacity=30)
    users = bound_villagers(app, world.village_a, 100)
    headers = [world.headers(user_id) for user_id in users]

    replies = post_together(
        app,
        100,
        f"{API}/checkins",
        lambda i: headers[i],
        lambda i: {"token": token, "lat": None, "lng": None},
    )

    assert_no_server_errors(replies)
    assert Counter(r.status for r in replies) == {201: 30, 409: 70}
    assert {r.code for r in replies if r.status == 409} == {"activity_full"}
    assert totals(app, activity_id) == {"checkins": 30, "claims": 30, "entries": 0, "counter": 30}
    with app.app_context():
        winners = set(
            db.session.scalars(
                select(CheckIn.villager_id).where(CheckIn.activity_id == activity_id)
            )
        )
        claimed = set(db.session.scalars(select(Claim.member_id)))
    assert winners == claimed  # every claim belongs to a check-in that counted
