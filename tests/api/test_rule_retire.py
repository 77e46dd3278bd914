"""POST /rule-items/{id}/retire (停用): the township takes an item out of its catalog; what
was recorded under it keeps its version, and a cadre may not retire the township's items."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from tests.factories import World, award
from tests.support.reads import error_code

API = "/api/v1"


def test_a_township_retires_an_item_which_is_then_neither_listed_nor_awarded(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    item_id = items["GOV-ASSEMBLY"]
    before = award(client, world, item_id, [{"household_id": world.household_x}])
    assert before.status_code == 201

    retired = client.post(f"{API}/rule-items/{item_id}/retire", headers=world.headers("tadmin1"))

    assert retired.status_code == 200, retired.get_json()
    assert retired.get_json()["retired"] is True
    listed = client.get(f"{API}/rule-items", headers=world.headers("cadre_a")).get_json()
    assert item_id not in {i["id"] for i in listed["items"]}
    again = award(client, world, item_id, [{"household_id": world.household_y}], user="cadre_b")
    assert again.status_code == 404
    claim = client.get(
        f"{API}/claims/{before.get_json()[0]['id']}", headers=world.headers("cadre_a")
    ).get_json()
    assert claim["rule_item"]["id"] == item_id  # the award keeps its item and version
    twice = client.post(f"{API}/rule-items/{item_id}/retire", headers=world.headers("tadmin1"))
    assert twice.status_code == 409
    assert error_code(twice) == "item_retired"


def test_a_cadre_cannot_retire_the_townships_item(
    client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    response = client.post(
        f"{API}/rule-items/{items['GOV-ASSEMBLY']}/retire", headers=world.headers("cadre_a")
    )
    assert response.status_code == 403
