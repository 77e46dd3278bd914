"""The authorisation matrix of the registry API (points/scope.py).

One table: who calls which endpoint on which object, and the status they must get. Scope is
decided by `visible()` (another village's, township's or household's object is simply not
found: 404, never confirmed); the role table ACTIONS decides what a role may do at all (403).
A refused request must leave the database exactly as it was; an allowed write must change it.

URL templates name World ids in braces ({village_b}, {head_y}, ...)."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.factories import World
from tests.support.reads import error_code
from tests.support.scope import ROSTER_CSV, database_state

API = "/api/v1"

# ---- valid bodies -----------------------------------------------------------------------------

ROSTER = object()  # a valid roster CSV, sent as the raw body

VILLAGE = {"name": "改名村"}
GROUP = {"name": "第九村民小组"}
HOUSEHOLD = {"name": "新户", "address": "新村路9号"}
HOUSEHOLD_PATCH = {"address": "改过的地址88号"}
MEMBER = {"name": "新成员", "relation": "子女", "gender": "女", "birth_year": 2001}
VILLAGER_PATCH = {"name": "改过的名字"}
USER_PATCH = {"name": "改过的名字"}
TOWNSHIP = {"name": "新设镇", "code": "T9"}
NEW_VILLAGE_T1 = {"name": "新建村", "township_id": "{township_1}"}
NEW_CADRE_A = {
    "username": "new_cadre",
    "password": "long-enough-pw",
    "role": "cadre",
    "village_id": "{village_a}",
}


# (who, method, url template, body, expected status); who None = no Authorization header.
MATRIX: list[Any] = [
    # -- cadre of village A: village B, household Y, head_y (township 1) and village C (T2) --
    ("cadre_a", "GET", "/villages/{village_b}", None, 404),
    ("cadre_a", "GET", "/villages/{village_c}", None, 404),
    pytest.param("cadre_a", "PATCH", "/villages/{village_b}", VILLAGE, 404),
    pytest.param("cadre_a", "PATCH", "/villages/{village_c}", VILLAGE, 404),
    ("cadre_a", "GET", "/villages/{village_b}/groups", None, 404),
    ("cadre_a", "GET", "/villages/{village_c}/groups", None, 404),
    ("cadre_a", "POST", "/villages/{village_b}/groups", GROUP, 404),
    ("cadre_a", "POST", "/villages/{village_c}/groups", GROUP, 404),
    ("cadre_a", "GET", "/villages/{village_b}/households", None, 404),
    ("cadre_a", "GET", "/villages/{village_c}/households", None, 404),
    ("cadre_a", "POST", "/villages/{village_b}/households", HOUSEHOLD, 404),
    ("cadre_a", "POST", "/villages/{village_c}/households", HOUSEHOLD, 404),
    ("cadre_a", "GET", "/households/{household_y}", None, 404),
    ("cadre_a", "GET", "/households/{household_z}", None, 404),
    ("cadre_a", "PATCH", "/households/{household_y}", HOUSEHOLD_PATCH, 404),
    ("cadre_a", "PATCH", "/households/{household_z}", HOUSEHOLD_PATCH, 404),
    ("cadre_a", "POST", "/households/{household_y}/members", MEMBER, 404),
    ("cadre_a", "POST", "/households/{household_z}/members", MEMBER, 404),
    ("cadre_a", "GET", "/villagers/{head_y}", None, 404),
    ("cadre_a", "GET", "/villagers/{head_z}", None, 404),
    ("cadre_a", "PATCH", "/villagers/{head_y}", VILLAGER_PATCH, 404),
    ("cadre_a", "PATCH", "/villagers/{head_z}", VILLAGER_PATCH, 404),
    ("cadre_a", "GET", "/villagers/{head_y}/card.png", None, 404),
    ("cadre_a", "GET", "/villagers/{head_z}/card.png", None, 404),
    ("cadre_a", "POST", "/villagers/{head_y}/binding-token", None, 404),
    ("cadre_a", "POST", "/villagers/{head_z}/binding-token", None, 404),
    ("cadre_a", "POST", "/villages/{village_b}/roster", ROSTER, 404),
    ("cadre_a", "POST", "/villages/{village_c}/roster", ROSTER, 404),
    ("cadre_a", "GET", "/townships/{township_2}", None, 404),
    ("cadre_a", "PATCH", "/users/{cadre_b}", USER_PATCH, 404),
    # ... and the same endpoints on their own village work (so the 404s above are scope)
    ("cadre_a", "GET", "/villages/{village_a}", None, 200),
    ("cadre_a", "GET", "/villages/{village_a}/groups", None, 200),
    ("cadre_a", "POST", "/villages/{village_a}/groups", GROUP, 201),
    ("cadre_a", "GET", "/villages/{village_a}/households", None, 200),
    ("cadre_a", "POST", "/villages/{village_a}/households", HOUSEHOLD, 201),
    ("cadre_a", "GET", "/households/{household_x}", None, 200),
    ("cadre_a", "PATCH", "/households/{household_x}", HOUSEHOLD_PATCH, 200),
    ("cadre_a", "POST", "/households/{household_x}/members", MEMBER, 201),
    ("cadre_a", "GET", "/villagers/{head_x}", None, 200),
    ("cadre_a", "PATCH", "/villagers/{head_x}", VILLAGER_PATCH, 200),
    ("cadre_a", "GET", "/villagers/{head_x}/card.png", None, 200),
    ("cadre_a", "POST", "/villagers/{head_x}/binding-token", None, 201),
    ("cadre_a", "POST", "/villages/{village_a}/roster", ROSTER, 201),
    ("cadre_a", "GET", "/townships/{township_1}", None, 200),
    # a cadre may not manage accounts, not even their own
    ("cadre_a", "PATCH", "/users/{cadre_a}", USER_PATCH, 403),
    # -- villager_x (head of household X in village A) --
    ("villager_x", "GET", "/households/{household_y}", None, 404),
    ("villager_x", "PATCH", "/households/{household_y}", HOUSEHOLD_PATCH, 404),
    ("villager_x", "POST", "/households/{household_y}/members", MEMBER, 404),
    ("villager_x", "GET", "/villagers/{head_y}", None, 404),
    ("villager_x", "PATCH", "/villagers/{head_y}", VILLAGER_PATCH, 404),
    ("villager_x", "GET", "/villagers/{head_y}/card.png", None, 404),
    ("villager_x", "POST", "/villagers/{head_y}/binding-token", None, 404),
    ("villager_x", "GET", "/villages/{village_b}", None, 404),
    ("villager_x", "GET", "/villages/{village_b}/groups", None, 404),
    ("villager_x", "GET", "/villages/{village_b}/households", None, 404),
    ("villager_x", "POST", "/villages/{village_b}/roster", ROSTER, 404),
    ("villager_x", "GET", "/townships/{township_2}", None, 404),
    ("villager_x", "PATCH", "/users/{villager_y}", USER_PATCH, 404),
    # creating groups and households is refused by role before any lookup: 403 whatever the
    # id, so this confirms nothing about village B either
    ("villager_x", "POST", "/villages/{village_b}/groups", GROUP, 403),
    ("villager_x", "POST", "/villages/{village_b}/households", HOUSEHOLD, 403),
    # own household: reading works, every write is a role refusal
    ("villager_x", "GET", "/households/{household_x}", None, 200),
    ("villager_x", "GET", "/villagers/{head_x}", None, 200),
    ("villager_x", "GET", "/villagers/{spouse_x}", None, 200),
    ("villager_x", "GET", "/villagers/{head_x}/card.png", None, 200),
    ("villager_x", "GET", "/villagers/{spouse_x}/card.png", None, 200),
    ("villager_x", "GET", "/villages/{village_a}", None, 200),
    ("villager_x", "GET", "/townships/{township_1}", None, 200),
    ("villager_x", "PATCH", "/households/{household_x}", HOUSEHOLD_PATCH, 403),
    ("villager_x", "POST", "/households/{household_x}/members", MEMBER, 403),
    ("villager_x", "PATCH", "/villagers/{head_x}", VILLAGER_PATCH, 403),
    ("villager_x", "PATCH", "/villagers/{spouse_x}", VILLAGER_PATCH, 403),
    ("villager_x", "POST", "/villagers/{head_x}/binding-token", None, 403),
    ("villager_x", "POST", "/villages/{village_a}/roster", ROSTER, 403),
    ("villager_x", "POST", "/villages/{village_a}/groups", GROUP, 403),
    ("villager_x", "POST", "/villages/{village_a}/households", HOUSEHOLD, 403),
    ("villager_x", "PATCH", "/users/{villager_x}", USER_PATCH, 403),
    pytest.param("villager_x", "PATCH", "/villages/{village_a}", VILLAGE, 403),
    # -- a WeChat user not bound to anyone sees no household at all --
    ("unbound", "GET", "/households/{household_x}", None, 404),
    ("unbound", "GET", "/villagers/{head_x}", None, 404),
    ("unbound", "GET", "/villagers/{head_x}/card.png", None, 404),
    ("unbound", "GET", "/villages/{village_a}", None, 404),
    # -- township admin of township 1: villages A and B, not C --
    ("tadmin1", "GET", "/villages/{village_c}", None, 404),
    pytest.param("tadmin1", "PATCH", "/villages/{village_c}", VILLAGE, 404),
    ("tadmin1", "GET", "/villages/{village_c}/groups", None, 404),
    ("tadmin1", "POST", "/villages/{village_c}/groups", GROUP, 404),
    ("tadmin1", "GET", "/villages/{village_c}/households", None, 404),
    ("tadmin1", "POST", "/villages/{village_c}/households", HOUSEHOLD, 404),
    ("tadmin1", "GET", "/households/{household_z}", None, 404),
    ("tadmin1", "PATCH", "/households/{household_z}", HOUSEHOLD_PATCH, 404),
    ("tadmin1", "POST", "/households/{household_z}/members", MEMBER, 404),
    ("tadmin1", "GET", "/villagers/{head_z}", None, 404),
    ("tadmin1", "PATCH", "/villagers/{head_z}", VILLAGER_PATCH, 404),
    ("tadmin1", "GET", "/villagers/{head_z}/card.png", None, 404),
    ("tadmin1", "POST", "/villagers/{head_z}/binding-token", None, 404),
    ("tadmin1", "POST", "/villages/{village_c}/roster", ROSTER, 404),
    ("tadmin1", "GET", "/townships/{township_2}", None, 404),
    ("tadmin1", "PATCH", "/users/{tadmin2}", USER_PATCH, 404),
    ("tadmin1", "PATCH", "/users/{county}", USER_PATCH, 404),
    ("tadmin1", "GET", "/villages/{village_a}", None, 200),
    ("tadmin1", "GET", "/villages/{village_b}", None, 200),
    pytest.param("tadmin1", "PATCH", "/villages/{village_b}", VILLAGE, 200),
    ("tadmin1", "GET", "/villages/{village_b}/groups", None, 200),
    ("tadmin1", "POST", "/villages/{village_b}/groups", GROUP, 201),
    ("tadmin1", "GET", "/villages/{village_a}/households", None, 200),
    ("tadmin1", "GET", "/villages/{village_b}/households", None, 200),
    ("tadmin1", "POST", "/villages/{village_b}/households", HOUSEHOLD, 201),
    ("tadmin1", "GET", "/households/{household_x}", None, 200),
    ("tadmin1", "GET", "/households/{household_y}", None, 200),
    ("tadmin1", "PATCH", "/households/{household_y}", HOUSEHOLD_PATCH, 200),
    ("tadmin1", "POST", "/households/{household_y}/members", MEMBER, 201),
    ("tadmin1", "GET", "/villagers/{head_y}", None, 200),
    ("tadmin1", "PATCH", "/villagers/{head_y}", VILLAGER_PATCH, 200),
    ("tadmin1", "GET", "/villagers/{head_y}/card.png", None, 200),
    ("tadmin1", "POST", "/villagers/{head_y}/binding-token", None, 201),
    ("tadmin1", "POST", "/villages/{village_b}/roster", ROSTER, 201),
    ("tadmin1", "GET", "/townships/{township_1}", None, 200),
    ("tadmin1", "PATCH", "/users/{cadre_b}", USER_PATCH, 200),
    # -- clerk of shop A (serves village A): their shop and its orders, nothing of the
    # villages' records, not even of village A (the counter reads a card holder through
    # POST /shops/{id}/member-lookup); writes there are not found either --
    ("clerk_a", "GET", "/shops/{shop_a}", None, 200),
    ("clerk_a", "GET", "/townships/{township_1}", None, 200),
    ("clerk_a", "GET", "/townships/{township_2}", None, 404),
    ("clerk_a", "GET", "/villages/{village_a}", None, 404),
    ("clerk_a", "GET", "/villages/{village_b}", None, 404),
    ("clerk_a", "GET", "/villages/{village_a}/groups", None, 404),
    ("clerk_a", "GET", "/villages/{village_a}/households", None, 404),
    ("clerk_a", "GET", "/households/{household_x}", None, 404),
    ("clerk_a", "GET", "/households/{household_y}", None, 404),
    ("clerk_a", "GET", "/households/{household_x}/account", None, 404),
    ("clerk_a", "GET", "/households/{household_x}/ledger", None, 404),
    ("clerk_a", "GET", "/households/{household_x}/plate.png", None, 404),
    ("clerk_a", "GET", "/villagers/{head_x}", None, 404),
    ("clerk_a", "GET", "/villagers/{spouse_x}", None, 404),
    ("clerk_a", "GET", "/villagers/{head_x}/card.png", None, 404),
    ("clerk_a", "GET", "/villages/{village_a}/notices", None, 404),
    ("clerk_a", "GET", "/villages/{village_a}/board", None, 404),
    ("clerk_a", "GET", "/villages/{village_a}/board-settings", None, 404),
    ("clerk_a", "GET", "/villages/{village_a}/stats", None, 404),
    ("clerk_a", "GET", "/villages/{village_a}/rule-items", None, 404),
    ("clerk_a", "GET", "/rankings?village_id={village_a}", None, 404),
    ("clerk_a", "GET", "/rankings?group_id={group_x}", None, 404),
    ("clerk_a", "PATCH", "/households/{household_x}", HOUSEHOLD_PATCH, 404),
    ("clerk_a", "POST", "/households/{household_x}/members", MEMBER, 404),
    ("clerk_a", "PATCH", "/villagers/{head_x}", VILLAGER_PATCH, 404),
    ("clerk_a", "POST", "/villagers/{head_x}/binding-token", None, 404),
    ("clerk_a", "POST", "/villages/{village_a}/roster", ROSTER, 404),
    pytest.param("clerk_a", "PATCH", "/villages/{village_a}", VILLAGE, 404),
    # refused by role before any lookup, whatever the village
    ("clerk_a", "POST", "/villages/{village_a}/groups", GROUP, 403),
    ("clerk_a", "POST", "/villages/{village_a}/households", HOUSEHOLD, 403),
    ("clerk_a", "GET", "/rankings?township_id={township_1}", None, 403),
    ("clerk_a", "GET", "/townships/{township_1}/stats", None, 403),
    ("clerk_a", "PATCH", "/users/{clerk_a}", USER_PATCH, 403),
    # -- role-only actions (no object scope to hide behind) --
    ("cadre_a", "POST", "/townships", TOWNSHIP, 403),
    ("tadmin1", "POST", "/townships", TOWNSHIP, 403),
    ("villager_x", "POST", "/townships", TOWNSHIP, 403),
    ("clerk_a", "POST", "/townships", TOWNSHIP, 403),
    ("county", "POST", "/townships", TOWNSHIP, 201),
    ("cadre_a", "POST", "/villages", NEW_VILLAGE_T1, 403),
    ("villager_x", "POST", "/villages", NEW_VILLAGE_T1, 403),
    ("clerk_a", "POST", "/villages", NEW_VILLAGE_T1, 403),
    ("tadmin1", "POST", "/villages", NEW_VILLAGE_T1, 201),
    ("tadmin2", "POST", "/villages", NEW_VILLAGE_T1, 404),
    ("cadre_a", "GET", "/audit", None, 403),
    ("clerk_a", "GET", "/audit", None, 403),
    ("villager_x", "GET", "/audit", None, 403),
    ("cadre_a", "GET", "/users", None, 403),
    ("clerk_a", "GET", "/users", None, 403),
    ("villager_x", "GET", "/users", None, 403),
    ("cadre_a", "POST", "/users", NEW_CADRE_A, 403),
    ("clerk_a", "POST", "/users", NEW_CADRE_A, 403),
    ("villager_x", "POST", "/users", NEW_CADRE_A, 403),
    ("tadmin1", "GET", "/audit", None, 200),
    ("tadmin1", "GET", "/users", None, 200),
    ("tadmin1", "POST", "/users", NEW_CADRE_A, 201),
    # -- no token: 401 on every endpoint, whatever the object --
    (None, "GET", "/villages/{village_a}", None, 401),
    pytest.param(None, "PATCH", "/villages/{village_a}", VILLAGE, 401),
    (None, "GET", "/villages/{village_a}/groups", None, 401),
    (None, "POST", "/villages/{village_a}/groups", GROUP, 401),
    (None, "GET", "/villages/{village_a}/households", None, 401),
    (None, "POST", "/villages/{village_a}/households", HOUSEHOLD, 401),
    (None, "GET", "/households/{household_x}", None, 401),
    (None, "PATCH", "/households/{household_x}", HOUSEHOLD_PATCH, 401),
    (None, "POST", "/households/{household_x}/members", MEMBER, 401),
    (None, "GET", "/villagers/{head_x}", None, 401),
    (None, "PATCH", "/villagers/{head_x}", VILLAGER_PATCH, 401),
    (None, "GET", "/villagers/{head_x}/card.png", None, 401),
    (None, "POST", "/villagers/{head_x}/binding-token", None, 401),
    (None, "POST", "/villages/{village_a}/roster", ROSTER, 401),
    (None, "GET", "/townships/{township_1}", None, 401),
    (None, "GET", "/townships", None, 401),
    (None, "POST", "/townships", TOWNSHIP, 401),
    (None, "GET", "/villages", None, 401),
    (None, "POST", "/villages", NEW_VILLAGE_T1, 401),
    (None, "GET", "/users", None, 401),
    (None, "POST", "/users", NEW_CADRE_A, 401),
    (None, "PATCH", "/users/{cadre_a}", USER_PATCH, 401),
    (None, "GET", "/audit", None, 401),
    (None, "GET", "/shops", None, 401),
    (None, "GET", "/households/99999", None, 401),  # not even "does it exist" without a token
]


def _case_id(case: Any) -> str:
    values = case.values if hasattr(case, "values") else case
    who, method, url, _body, status = values
    return f"{who or 'anonymous'} {method} {url} -> {status}"


def _fill(value: Any, ids: dict[str, int]) -> Any:
    """The template with World ids filled in: "{village_a}" becomes the id (an int when the
    whole value is one placeholder, as in a JSON body)."""
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if (
        isinstance(value, str)
        and value.startswith("{")
        and value.endswith("}")
        and value[1:-1] in ids
    ):
        return ids[value[1:-1]]
    if isinstance(value, str):
        return value.format(**ids)
    return value


def call(
    client: FlaskClient, world: World, headers: dict[str, str], method: str, url: str, body: Any
) -> Any:
    path = API + _fill(url, world.ids)
    if body is ROSTER:
        return client.open(
            path, method=method, data=ROSTER_CSV, headers=headers, content_type="text/csv"
        )
    if body is None:
        return client.open(path, method=method, headers=headers)
    return client.open(path, method=method, json=_fill(body, world.ids), headers=headers)


@pytest.mark.parametrize(
    ("who", "method", "url", "body", "expected"), MATRIX, ids=[_case_id(c) for c in MATRIX]
)
def test_scope_matrix(
    app: Flask,
    client: FlaskClient,
    world: World,
    who: str | None,
    method: str,
    url: str,
    body: Any,
    expected: int,
) -> None:
    headers = world.headers(who) if who else {}  # log in before taking the snapshot
    before = database_state(app)

    response = call(client, world, headers, method, url, body)

    assert response.status_code == expected, response.get_data(as_text=True)
    after = database_state(app)
    if expected >= 400:
        code = {401: "unauthenticated", 403: "forbidden", 404: "not_found"}[expected]
        assert error_code(response) == code
        assert after == before, "a refused request changed the database"
        if expected == 404:
            # a hidden object is not described in any way, not even by name
            for name in ("户主y", "户主z", "配偶y", "桃源村", "白沙村", "白沙镇"):
                assert name not in response.get_data(as_text=True)
    elif method == "GET":
        assert after == before, "a read changed the database"
        if url.endswith("card.png"):
            assert response.mimetype == "image/png"
            assert response.data.startswith(b"\x89PNG\r\n\x1a\n")
        else:
            assert response.is_json
    else:
        assert after != before, "an accepted write stored nothing"
        assert response.is_json


def test_refused_patch_leaves_names_as_they_were(client: FlaskClient, world: World) -> None:
    """The matrix compares whole tables; this spells out what a cadre would check by eye."""
    cadre = world.headers("cadre_a")
    villager = world.headers("villager_x")

    assert (
        client.patch(
            f"{API}/villagers/{world.head_y}", json={"name": "篡改"}, headers=cadre
        ).status_code
        == 404
    )
    assert (
        client.patch(
            f"{API}/households/{world.household_y}", json={"address": "篡改地址"}, headers=cadre
        ).status_code
        == 404
    )
    assert (
        client.patch(
            f"{API}/villagers/{world.head_x}", json={"name": "自己改名"}, headers=villager
        ).status_code
        == 403
    )
    assert (
        client.post(
            f"{API}/households/{world.household_y}/members",
            json={"name": "混进来的人", "relation": "子女"},
            headers=cadre,
        ).status_code
        == 404
    )

    admin = world.headers("tadmin1")
    head_y = client.get(f"{API}/villagers/{world.head_y}", headers=admin).get_json()
    assert head_y["name"] == "户主y"
    household_y = client.get(f"{API}/households/{world.household_y}", headers=admin).get_json()
    assert household_y["address"] == "桃源村1号"
    assert [m["name"] for m in household_y["members"]] == ["户主y", "配偶y"]
    household_b = client.get(
        f"{API}/villages/{world.village_b}/households", headers=admin
    ).get_json()
    assert household_b["total"] == 1
    head_x = client.get(f"{API}/villagers/{world.head_x}", headers=admin).get_json()
    assert head_x["name"] == "户主x"


def test_villager_lists_only_their_own_household(client: FlaskClient, world: World) -> None:
    cadre = world.headers("cadre_a")
    created = client.post(
        f"{API}/villages/{world.village_a}/households",
        json={"name": "邻居户", "address": "清水村2号"},
        headers=cadre,
    )
    assert created.status_code == 201
    neighbour = created.get_json()["id"]

    villager = world.headers("villager_x")
    page = client.get(f"{API}/villages/{world.village_a}/households", headers=villager)
    assert page.status_code == 200
    assert [h["id"] for h in page.get_json()["items"]] == [world.household_x]
    assert page.get_json()["total"] == 1
    assert client.get(f"{API}/households/{neighbour}", headers=villager).status_code == 404
    # the cadre sees both
    all_a = client.get(f"{API}/villages/{world.village_a}/households", headers=cadre).get_json()
    assert {h["id"] for h in all_a["items"]} == {world.household_x, neighbour}


def test_missing_and_hidden_objects_answer_alike(client: FlaskClient, world: World) -> None:
    """404 for another village's household is the same answer as for no household at all."""
    cadre = world.headers("cadre_a")
    hidden = client.get(f"{API}/households/{world.household_y}", headers=cadre)
    missing = client.get(f"{API}/households/999999", headers=cadre)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.get_json() == missing.get_json()
