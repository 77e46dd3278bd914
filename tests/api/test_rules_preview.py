"""The cadre's dry run (试算, `POST /rules/evaluate`) counts what the villager or household has
already been given for the item, as the award that follows does, so the two agree."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from tests.factories import World, default_items
from tests.support.clock import frozen, local
from tests.support.reads import error_code

API = "/api/v1"


def evaluate(
    client: FlaskClient, world: World, item_id: int, villager_id: int, **extra: Any
) -> dict[str, Any]:
    response = client.post(
        f"{API}/rules/evaluate",
        headers=world.headers("cadre_a"),
        json={"item_id": item_id, "villager_id": villager_id, **extra},
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def award(
    client: FlaskClient, world: World, item_id: int, target: dict[str, int], **extra: Any
) -> Any:
    return client.post(
        f"{API}/awards",
        headers=world.headers("cadre_a"),
        json={"rule_item_id": item_id, "targets": [target], **extra},
    )


def test_a_period_cap_reached_by_earlier_awards_caps_the_dry_run_as_the_award(
    app: Flask, client: FlaskClient, world: World
) -> None:
    # 志愿服务: 2 points an hour, at most 8 hours a time and 40 points a member a month.
    volunteer = default_items(app, world)["PUB-VOLUNTEER"]
    member = {"villager_id": world.head_x}
    with frozen(local(2026, 5, 12)):
        fresh = evaluate(client, world, volunteer, world.head_x, units=8)
        for _ in range(2):
            earlier = award(client, world, volunteer, member, units=8)
            assert earlier.status_code == 201, earlier.get_json()
            assert earlier.get_json()[0]["points"] == 16
        preview = evaluate(client, world, volunteer, world.head_x, units=8)
        awarded = award(client, world, volunteer, member, units=8)
        # Another member of the household has a cap of their own.
        spouse = evaluate(client, world, volunteer, world.spouse_x, units=8)
    assert (fresh["points"], fresh["capped"]) == (16, False)
    assert (preview["points"], preview["capped"]) == (8, True)
    assert "40" in preview["reason"]
    assert awarded.status_code == 201, awarded.get_json()
    assert (awarded.get_json()[0]["points"], awarded.get_json()[0]["capped"]) == (8, True)
    assert (spouse["points"], spouse["capped"]) == (16, False)

    with frozen(local(2026, 5, 20)):
        spent = evaluate(client, world, volunteer, world.head_x, units=8)
    with frozen(local(2026, 6, 1, 9)):
        next_month = evaluate(client, world, volunteer, world.head_x, units=8)
    assert (spent["points"], spent["capped"]) == (0, True)
    assert (next_month["points"], next_month["capped"]) == (16, False)
    # A dry run at a moment of its own counts that moment's period.
    at_earlier = evaluate(
        client, world, volunteer, world.head_x, units=8, at=local(2026, 5, 31, 23).isoformat()
    )
    assert (at_earlier["points"], at_earlier["capped"]) == (0, True)


def test_a_household_cap_counts_what_any_member_of_the_household_was_given(
    app: Flask, client: FlaskClient, world: World
) -> None:
    # 庭院整洁: once a household a month.
    yard = default_items(app, world)["ENV-YARD"]
    with frozen(local(2026, 5, 12)):
        first = award(client, world, yard, {"household_id": world.household_x})
        preview = evaluate(client, world, yard, world.spouse_x)
        again = award(client, world, yard, {"villager_id": world.spouse_x})
    assert first.status_code == 201, first.get_json()
    assert (preview["points"], preview["capped"]) == (0, True)
    # The award after the dry run agrees: nothing to give.
    assert again.status_code == 422 and error_code(again) == "no_points"
    assert again.get_json()["error"]["message"] == preview["reason"]
