"""One error shape everywhere: {"error": {"code", "message", "details"}}, a Chinese message,
and never a 5xx for a body a client can send."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import World

API = "/api/v1"
CJK = re.compile(r"[\u4e00-\u9fff]")


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is our error: JSON, exactly three keys, a Chinese message."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json", response.get_data(as_text=True)[:200]
    body = response.get_json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and re.fullmatch(r"[a-z_]+", error["code"])
    assert isinstance(error["message"], str) and CJK.search(error["message"]), error
    assert isinstance(error["details"], dict)
    if code is not None:
        assert error["code"] == code, error
    return error


def household_count(client: FlaskClient, world: World) -> int:
    page = client.get(
        f"{API}/villages/{world.village_a}/households", headers=world.headers("cadre_a")
    ).get_json()
    return page["total"]


@pytest.mark.parametrize(
    "path", [f"{API}/nope", f"{API}/villages/1/nope", "/nope", f"{API}/villages/abc"]
)
def test_unknown_path(client: FlaskClient, world: World, path: str) -> None:
    response = client.get(path, headers=world.headers("cadre_a"))
    assert_error(response, 404, "not_found")
    assert b"<html" not in response.data.lower()


def test_method_not_allowed(client: FlaskClient, world: World) -> None:
    response = client.delete(f"{API}/villages/{world.village_a}", headers=world.headers("county"))
    assert_error(response, 405, "method_not_allowed")
    allowed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert "GET" in allowed and "DELETE" not in allowed
    # and the village is still there
    assert (
        client.get(f"{API}/villages/{world.village_a}", headers=world.headers("county")).status_code
        == 200
    )


def test_malformed_json(client: FlaskClient, world: World) -> None:
    before = household_count(client, world)
    response = client.post(
        f"{API}/villages/{world.village_a}/households",
        data='{"address": "清水村2号",',
        content_type="application/json",
        headers=world.headers("cadre_a"),
    )
    assert_error(response, 400, "malformed_json")
    assert household_count(client, world) == before


@pytest.mark.parametrize("body", [[], [{"address": "清水村2号"}], "清水村", 42, None])
def test_json_that_is_not_an_object(client: FlaskClient, world: World, body: Any) -> None:
    before = household_count(client, world)
    response = client.post(
        f"{API}/villages/{world.village_a}/households",
        data=json.dumps(body),
        content_type="application/json",
        headers=world.headers("cadre_a"),
    )
    assert 400 <= response.status_code < 500
    assert_error(response, response.status_code)
    assert household_count(client, world) == before


def test_unknown_fields_are_named(client: FlaskClient, world: World) -> None:
    before = household_count(client, world)
    response = client.post(
        f"{API}/villages/{world.village_a}/households",
        json={"address": "清水村2号", "points": 100, "vip": True},
        headers=world.headers("cadre_a"),
    )
    error = assert_error(response, 422, "unknown_fields")
    assert sorted(error["details"]["fields"]) == ["points", "vip"]
    assert "points" in error["message"] and "vip" in error["message"]
    assert household_count(client, world) == before

    patch = client.patch(
        f"{API}/villagers/{world.head_x}",
        json={"name": "户主x", "household_id": world.household_y},
        headers=world.headers("cadre_a"),
    )
    assert assert_error(patch, 422, "unknown_fields")["details"]["fields"] == ["household_id"]
    head = client.get(
        f"{API}/villagers/{world.head_x}", headers=world.headers("cadre_a")
    ).get_json()
    assert head["household_id"] == world.household_x


def test_missing_required_field(client: FlaskClient, world: World) -> None:
    response = client.post(
        f"{API}/households/{world.household_x}/members",
        json={"name": "新人"},
        headers=world.headers("cadre_a"),
    )
    error = assert_error(response, 422, "validation_error")
    assert "relation" in error["details"]["fields"]
    assert "name" not in error["details"]["fields"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "新人", "relation": "子女", "birth_year": "一九九零"}, "birth_year"),
        ({"name": 123, "relation": "子女"}, "name"),
        ({"name": "新人", "relation": ["子女"]}, "relation"),
        ({"name": "新人", "relation": "子女", "birth_year": 1800}, "birth_year"),
    ],
)
def test_wrong_type(client: FlaskClient, world: World, body: dict[str, Any], field: str) -> None:
    response = client.post(
        f"{API}/households/{world.household_x}/members", json=body, headers=world.headers("cadre_a")
    )
    error = assert_error(response, 422, "validation_error")
    assert field in error["details"]["fields"]
    members = client.get(
        f"{API}/households/{world.household_x}", headers=world.headers("cadre_a")
    ).get_json()["members"]
    assert len(members) == 2


def test_body_too_large(
    app: Flask, client: FlaskClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = world.headers("cadre_a")
    before = household_count(client, world)
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 256)
    json_response = client.post(
        f"{API}/villages/{world.village_a}/households",
        json={"address": "清水村" * 200},
        headers=headers,
    )
    assert_error(json_response, 413, "payload_too_large")
    roster = ("户编号,姓名,与户主关系\n" + "1,钱多多,户主\n" * 50).encode()
    raw = client.post(
        f"{API}/villages/{world.village_a}/roster",
        data=roster,
        content_type="text/csv",
        headers=headers,
    )
    assert_error(raw, 413, "payload_too_large")
    multipart = client.post(
        f"{API}/villages/{world.village_a}/roster",
        data={"file": (io.BytesIO(roster), "roster.csv")},
        content_type="multipart/form-data",
        headers=headers,
    )
    assert_error(multipart, 413, "payload_too_large")
    monkeypatch.undo()
    assert household_count(client, world) == before
    # a small body still goes through under the limit
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 4096)
    ok = client.post(
        f"{API}/villages/{world.village_a}/households",
        json={"address": "清水村2号"},
        headers=headers,
    )
    assert ok.status_code == 201


def test_no_token_and_bad_token(client: FlaskClient, world: World) -> None:
    url = f"{API}/households/{world.household_x}"
    assert_error(client.get(url), 401, "unauthenticated")
    assert_error(
        client.get(url, headers={"Authorization": "Bearer not-a-jwt"}), 401, "token_invalid"
    )
    assert_error(client.get(url, headers={"Authorization": "Basic Y2FkcmU6cHc="}), 401)


def test_forbidden_and_conflict_share_the_shape(client: FlaskClient, world: World) -> None:
    assert_error(
        client.post(f"{API}/townships", json={"name": "新镇"}, headers=world.headers("cadre_a")),
        403,
        "forbidden",
    )
    assert_error(
        client.post(
            f"{API}/households/{world.household_x}/members",
            json={"name": "二号户主", "relation": "户主"},
            headers=world.headers("cadre_a"),
        ),
        409,
        "household_has_head",
    )


# ---- input the database could not hold: refused, never a 500 -----------------------------

# (method, url, body); BIG is replaced by the number.
HUGE_ID_CASES = [
    ("POST", "/villages/{village_a}/households", {"group_id": "BIG"}),
    ("PATCH", "/households/{household_x}", {"group_id": "BIG"}),
    ("POST", "/villages", {"name": "新村", "township_id": "BIG"}),
    (
        "POST",
        "/users",
        {
            "username": "cadre_new",
            "password": "long-enough-pw",
            "role": "cadre",
            "village_id": "BIG",
        },
    ),
    ("PATCH", "/users/BIG", {"name": "新名字"}),
    ("GET", "/households/BIG", None),
    ("GET", "/villagers/BIG", None),
    ("GET", "/villages?township_id=BIG", None),
    ("GET", "/audit?actor=BIG", None),
    ("GET", "/villages/{village_a}/households?page=BIG", None),
]


def _huge_id_params() -> list[Any]:
    params = []
    for method, url, body in HUGE_ID_CASES:
        for big in (2**31, 2**63):
            params.append(pytest.param(method, url, body, big, id=f"{method} {url} {big}"))
    return params


@pytest.mark.parametrize(("method", "url", "body", "big"), _huge_id_params())
def test_huge_ids_are_client_errors(
    client: FlaskClient, world: World, big: int, method: str, url: str, body: Any
) -> None:
    """An id no row can have is "not found" or "invalid" (or an empty list), never a server
    error, and nothing is written."""
    headers = world.headers("tadmin1")
    before = household_count(client, world)
    json_body = {k: big if v == "BIG" else v for k, v in body.items()} if body else None
    path = API + url.format(**world.ids).replace("BIG", str(big))
    response = client.open(path, method=method, json=json_body, headers=headers)
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code == 200:
        assert method == "GET" and response.get_json()["items"] == []
    else:
        assert response.status_code in (404, 422), response.get_data(as_text=True)
        assert_error(response, response.status_code)
    assert household_count(client, world) == before
    household = client.get(f"{API}/households/{world.household_x}", headers=headers)
    assert household.get_json()["group_id"] == world.group_x


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("\\u0000", id="NUL"),
        pytest.param("\\ud800", id="lone-surrogate"),
    ],
)
@pytest.mark.parametrize(
    ("url", "template"),
    [
        ("/villages/{village_a}/households", '{"address": "清水村%s2号"}'),
        ("/households/{household_x}/members", '{"name": "王%s五", "relation": "子女"}'),
    ],
)
def test_text_the_database_cannot_store_is_refused(
    client: FlaskClient, world: World, url: str, template: str, bad: str
) -> None:
    """Valid JSON escapes (\\u0000, a lone \\ud800) that no database column can hold are a
    422, not a 500, and not stored."""
    before = household_count(client, world)
    response = client.post(
        API + url.format(**world.ids),
        data=template % bad,
        content_type="application/json",
        headers=world.headers("cadre_a"),
    )
    assert_error(response, 422, "invalid_text")
    assert household_count(client, world) == before
    members = client.get(
        f"{API}/households/{world.household_x}", headers=world.headers("cadre_a")
    ).get_json()["members"]
    assert len(members) == 2


# ---- property: no body a client can send gives a 5xx -------------------------------------------
# Any text (NUL and lone surrogates included) and any integer, however large.

INT32 = 2**31 - 1
any_char = st.characters()
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(any_char, max_size=30)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(any_char, max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
HOUSEHOLD_FIELDS = ["group_id", "address", "name"]
MEMBER_FIELDS = ["name", "relation", "phone", "gender", "birth_year"]
# Plausible values for known fields too, so that bodies get past the schema into the service.
field_values = json_values | st.sampled_from(
    ["户主", "配偶", "子女", "男", "女", "13812345678", 1990, "王五", "清水村3号", 1, 2, 3]
)


def bodies(fields: list[str]) -> st.SearchStrategy[Any]:
    known = st.dictionaries(st.sampled_from(fields), field_values, max_size=len(fields))
    mixed = st.dictionaries(
        st.sampled_from([*fields, "extra"]) | st.text(any_char, max_size=8),
        field_values,
        max_size=5,
    )
    return json_values | known | mixed


def _check_never_5xx(client: FlaskClient, url: str, headers: dict[str, str], body: Any) -> None:
    response = client.post(
        url, data=json.dumps(body), content_type="application/json", headers=headers
    )
    assert response.status_code < 500, (body, response.get_data(as_text=True))
    if response.status_code >= 400:
        assert_error(response, response.status_code)
    else:
        assert response.status_code == 201
        assert isinstance(response.get_json()["id"], int)


@settings(
    max_examples=75, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=bodies(HOUSEHOLD_FIELDS))
def test_random_household_bodies_never_5xx(client: FlaskClient, world: World, body: Any) -> None:
    _check_never_5xx(
        client, f"{API}/villages/{world.village_a}/households", world.headers("cadre_a"), body
    )


@settings(
    max_examples=75, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=bodies(MEMBER_FIELDS))
def test_random_member_bodies_never_5xx(client: FlaskClient, world: World, body: Any) -> None:
    _check_never_5xx(
        client, f"{API}/households/{world.household_x}/members", world.headers("cadre_a"), body
    )
