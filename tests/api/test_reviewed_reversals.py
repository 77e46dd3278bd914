"""Reversals (冲正) reviewed like awards: never for one's own household, and at or above the
township's two-cadre threshold a second, different reviewer (another cadre, or an admin of
the township or county) confirms before the reversing entry is posted; the pending request
is listed for that reviewer to find, and two confirming at once post one reversal."""

from __future__ import annotations

from collections import Counter
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from backend.extensions import db
from points.models import AuditEntry
from tests.factories import (
    World,
    add_cadre,
    earn,
    earn_posted,
    link_staff_to_villager,
    set_policy,
)
from tests.support.clock import frozen, local
from tests.support.concurrency import assert_no_server_errors, on_postgres, post_together
from tests.support.reads import account_of, entries_of, error_code
from tests.support.scope import database_state

API = "/api/v1"
MARCH_10 = local(2026, 3, 10)
MARCH_20 = local(2026, 3, 20)


def reverse(
    client: FlaskClient, world: World, user: str | int, entry_id: int, reason: str = "重复记分"
) -> Any:
    return client.post(
        f"{API}/ledger/{entry_id}/reverse", json={"reason": reason}, headers=world.headers(user)
    )


def pending(client: FlaskClient, world: World, user: str | int, **query: Any) -> list[dict]:
    response = client.get(
        f"{API}/reversal-requests", query_string=query, headers=world.headers(user)
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()["items"]


def audited(app: Flask) -> list[str]:
    with app.app_context():
        return list(
            db.session.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.action.like("ledger.%"))
                .order_by(AuditEntry.id)
            )
        )


def test_below_the_threshold_one_cadre_reverses_at_once(
    app: Flask, client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> None:
    earn_posted(client, runner, world, items["PUB-VOLUNTEER"], 3, MARCH_10)  # 6 points
    set_policy(client, world, two_cadre_threshold=7)
    [earned] = entries_of(app, world.household_x)
    with frozen(MARCH_20):
        done = reverse(client, world, "cadre_a", earned["id"])
        assert done.status_code == 201, done.get_json()
        assert (done.get_json()["kind"], done.get_json()["amount"]) == ("reverse", -6)
        assert pending(client, world, "cadre_a") == []
    assert audited(app) == ["ledger.reverse"]


def test_at_the_threshold_a_second_cadre_confirms_the_reversal(
    app: Flask, client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> None:
    earn_posted(client, runner, world, items["PUB-VOLUNTEER"], 3, MARCH_10)  # 6 points
    set_policy(client, world, two_cadre_threshold=6)
    second = add_cadre(app, world, "cadre_a2")
    [earned] = entries_of(app, world.household_x)

    with frozen(MARCH_20):
        asked = reverse(client, world, "cadre_a", earned["id"], "志愿时长登记重复")
        assert asked.status_code == 202, asked.get_json()
        request = asked.get_json()
        assert (
            request["status"],
            request["entry_id"],
            request["amount"],
            request["reason"],
            request["requested_by"],
            request["reversal_id"],
        ) == ("pending_confirmation", earned["id"], 6, "志愿时长登记重复", world.cadre_a, None)
        # Nothing is posted yet: the villager still has the points.
        assert [e["kind"] for e in entries_of(app, world.household_x)] == ["earn"]
        assert account_of(app, world.household_x)["available"] == 6

        # The second cadre finds it; nobody outside the village does.
        assert [r["id"] for r in pending(client, world, second)] == [request["id"]]
        assert [r["id"] for r in pending(client, world, "tadmin1", entry_id=earned["id"])] == [
            request["id"]
        ]
        assert pending(client, world, "cadre_b") == []
        assert pending(client, world, "tadmin2") == []

        before = database_state(app)
        twice = reverse(client, world, "cadre_a", earned["id"])
        assert twice.status_code == 409 and error_code(twice) == "already_approved"
        assert database_state(app) == before

        confirmed = reverse(client, world, second, earned["id"], "已核实")
        assert confirmed.status_code == 201, confirmed.get_json()
        reversal = confirmed.get_json()
        assert (
            reversal["kind"],
            reversal["amount"],
            reversal["reverses_id"],
            reversal["note"],
            reversal["created_by"],
        ) == ("reverse", -6, earned["id"], "志愿时长登记重复", second)
        assert account_of(app, world.household_x)["available"] == 0

        assert pending(client, world, "cadre_a") == []
        [done] = pending(client, world, "cadre_a", status="confirmed")
        assert (
            done["status"],
            done["confirmed_by"],
            done["confirm_note"],
            done["reversal_id"],
        ) == ("confirmed", second, "已核实", reversal["id"])

        again = reverse(client, world, "tadmin1", earned["id"])
        assert again.status_code == 409 and error_code(again) == "already_reversed"
    assert [e["kind"] for e in entries_of(app, world.household_x)] == ["earn", "reverse"]
    assert audited(app) == ["ledger.reverse_request", "ledger.reverse", "ledger.reverse_confirm"]


def test_a_deduction_at_the_threshold_needs_two_as_well(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    """The threshold is on the entry's size: undoing a deduction gives points back."""
    set_policy(client, world, two_cadre_threshold=5)
    deducted = earn(app, world.household_x, -5, MARCH_10)
    with frozen(MARCH_20):
        asked = reverse(client, world, "cadre_a", deducted)
        assert asked.status_code == 202, asked.get_json()
        assert asked.get_json()["amount"] == -5
    assert [e["kind"] for e in entries_of(app, world.household_x)] == ["deduct"]


def test_a_township_or_county_admin_is_the_second_reviewer(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    set_policy(client, world, two_cadre_threshold=5)
    first = earn(app, world.household_x, 8, MARCH_10)
    other = earn(app, world.household_x, 9, MARCH_10)
    with frozen(MARCH_20):
        assert reverse(client, world, "cadre_a", first).status_code == 202
        assert reverse(client, world, "tadmin2", first).status_code == 404
        assert reverse(client, world, "cadre_b", first).status_code == 404
        assert reverse(client, world, "tadmin1", first).status_code == 201

        # An admin may ask too; a cadre of the village confirms.
        assert reverse(client, world, "county", other).status_code == 202
        confirmed = reverse(client, world, "cadre_a", other)
        assert confirmed.status_code == 201, confirmed.get_json()
    assert [(e["kind"], e["amount"]) for e in entries_of(app, world.household_x)] == [
        ("earn", 8),
        ("earn", 9),
        ("reverse", -8),
        ("reverse", -9),
    ]


def test_no_one_reverses_their_own_household(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    """A cadre who is a villager of the village (linked to their roster entry) neither asks
    for nor confirms a reversal of their own household's points, below the threshold or
    above it."""
    set_policy(client, world, two_cadre_threshold=10)
    small = earn(app, world.household_x, 4, MARCH_10)
    large = earn(app, world.household_x, 12, MARCH_10)
    link_staff_to_villager(app, world.cadre_a, world.spouse_x)
    second = add_cadre(app, world, "cadre_a2")
    with frozen(MARCH_20):
        before = database_state(app)
        for entry_id in (small, large):
            own = reverse(client, world, "cadre_a", entry_id)
            assert own.status_code == 403 and error_code(own) == "self_approval"
        assert database_state(app) == before

        assert reverse(client, world, second, large).status_code == 202
        before = database_state(app)
        own = reverse(client, world, "cadre_a", large)
        assert own.status_code == 403 and error_code(own) == "self_approval"
        assert database_state(app) == before
    assert [e["kind"] for e in entries_of(app, world.household_x)] == ["earn", "earn"]


def test_a_confirmed_reversal_shows_as_a_correction_on_the_next_board(
    app: Flask, client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> None:
    earn_posted(client, runner, world, items["PUB-VOLUNTEER"], 3, MARCH_10)  # 6, March
    set_policy(client, world, two_cadre_threshold=6)
    second = add_cadre(app, world, "cadre_a2")
    [earned] = entries_of(app, world.household_x)
    with frozen(local(2026, 4, 5)):
        assert (
            reverse(client, world, "cadre_a", earned["id"], "志愿时长登记重复").status_code == 202
        )
        board = client.get(
            f"{API}/villages/{world.village_a}/board",
            query_string={"period": "2026-04"},
            headers=world.headers("cadre_a"),
        )
        assert board.get_json()["corrections"] == []  # nothing happened yet
        assert reverse(client, world, second, earned["id"]).status_code == 201
        board = client.get(
            f"{API}/villages/{world.village_a}/board",
            query_string={"period": "2026-04"},
            headers=world.headers("cadre_a"),
        )
    assert [
        (c["kind"], c["name"], c["amount"], c["month"], c["note"])
        for c in board.get_json()["corrections"]
    ] == [("reversal", "户主x", -6, "2026-03", "2026年3月加分冲正：志愿时长登记重复")]


@on_postgres
def test_two_cadres_confirming_at_once_post_one_reversal(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    set_policy(client, world, two_cadre_threshold=5)
    entry = earn(app, world.household_x, 20, MARCH_10)
    reviewers = [add_cadre(app, world, f"reviewer{i}") for i in range(6)]
    headers = [world.headers(user) for user in reviewers]
    assert reverse(client, world, "cadre_a", entry).status_code == 202

    replies = post_together(
        app,
        len(reviewers),
        f"{API}/ledger/{entry}/reverse",
        lambda i: headers[i],
        lambda i: {"reason": "已核实"},
    )
    assert_no_server_errors(replies)
    assert Counter((r.status, r.code) for r in replies) == {
        (201, None): 1,
        (409, "already_reversed"): len(reviewers) - 1,
    }
    assert [e["kind"] for e in entries_of(app, world.household_x)] == ["earn", "reverse"]
    assert account_of(app, world.household_x)["available"] == 0


@on_postgres
def test_two_cadres_asking_at_once_are_the_two_reviewers(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    """Two cadres who both ask for the same reversal at the same moment agree on it: one
    request, and the later of the two confirms it."""
    set_policy(client, world, two_cadre_threshold=5)
    entry = earn(app, world.household_x, 20, MARCH_10)
    reviewers = [world.cadre_a, add_cadre(app, world, "cadre_a2")]
    headers = [world.headers(user) for user in reviewers]

    replies = post_together(
        app,
        2,
        f"{API}/ledger/{entry}/reverse",
        lambda i: headers[i],
        lambda i: {"reason": "重复记分"},
    )
    assert_no_server_errors(replies)
    assert sorted(r.status for r in replies) == [201, 202]
    assert [e["kind"] for e in entries_of(app, world.household_x)] == ["earn", "reverse"]
