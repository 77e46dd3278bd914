"""Small requests that answered 500: a deeply nested JSON body, an amount of 1e308 yuan, a
moment in the year 9999, an exchange rate of 1E-999999 yuan a point. Each is refused with a
4xx and a stable code, logs no traceback, and changes nothing; the bounds are those of the
shared JSON parsing (backend/jsonio.py, guards.py), the shared fields (Money, Moment, Id in
backend/schemas/common.py) and the rule validation (rules/catalog.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from backend.clock import now
from backend.jsonio import MAX_DEPTH
from tests.factories import World, add_reward, default_items, fund, member_token
from tests.support.reads import account_of, catalog_id, error_code, stock_of
from tests.support.scope import database_state

API = "/api/v1"


@pytest.fixture()
def errors_logged(caplog: pytest.LogCaptureFixture) -> Iterator[list[logging.LogRecord]]:
    """The records at ERROR or above (an unexpected error logs one, with its traceback)."""
    with caplog.at_level(logging.ERROR):
        yield caplog.records


def fields_named(response: Any) -> set[str]:
    return set(response.get_json()["error"]["details"]["fields"])


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# ---- JSON bodies: one parsing for every endpoint --------------------------------------------


def test_login_with_a_body_nested_400_deep_is_malformed_json(
    app: Flask, client: FlaskClient, world: World, errors_logged: list[logging.LogRecord]
) -> None:
    before = database_state(app)
    response = client.post(f"{API}/auth/login", data=nested(400), content_type="application/json")
    assert response.status_code == 400
    assert error_code(response) == "malformed_json"
    assert errors_logged == []
    assert database_state(app) == before


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1000, 100_000])
def test_a_body_nested_past_the_bound_is_refused_on_any_endpoint(
    app: Flask,
    client: FlaskClient,
    world: World,
    errors_logged: list[logging.LogRecord],
    depth: int,
) -> None:
    items = default_items(app, world)
    before = database_state(app)
    body = (
        f'{{"rule_item_id": {items["PUB-VOLUNTEER"]}, "note": "x", '
        f'"evidence": {nested(depth - 1)}}}'
    )
    response = client.post(
        f"{API}/claims",
        data=body,
        content_type="application/json",
        headers=world.headers("villager_x"),
    )
    assert response.status_code == 400
    assert error_code(response) == "malformed_json"
    assert errors_logged == []
    assert database_state(app) == before


def test_a_body_within_the_bound_is_read(client: FlaskClient, world: World) -> None:
    """32 levels parse: the login is refused for its shape (422), not as malformed."""
    body = f'{{"username": {nested(MAX_DEPTH - 1)}, "password": "x"}}'
    response = client.post(f"{API}/auth/login", data=body, content_type="application/json")
    assert response.status_code == 422
    assert error_code(response) == "validation_error"
    assert fields_named(response) == {"username"}


@pytest.mark.parametrize(
    "body",
    [
        '{"username": 1' + "0" * 5000 + ', "password": "x"}',  # Python reads no int this long
        b'{"username": "\xff", "password": "x"}',  # not UTF-8
        '{"username": "a", "password": "x"',  # never closed
    ],
)
def test_unreadable_json_is_malformed_json(
    client: FlaskClient,
    world: World,
    errors_logged: list[logging.LogRecord],
    body: str | bytes,
) -> None:
    response = client.post(f"{API}/auth/login", data=body, content_type="application/json")
    assert response.status_code == 400
    assert error_code(response) == "malformed_json"
    assert errors_logged == []


def test_brackets_inside_text_do_not_count(client: FlaskClient, world: World) -> None:
    username = "[{" * 200
    response = client.post(
        f"{API}/auth/login",
        content_type="application/json",
        json={"username": username[:64], "password": "x" + "]" * 100},
    )
    assert response.status_code == 401


# ---- money: the shared Money field ----------------------------------------------------------


@pytest.mark.parametrize(
    "cash",
    [
        "1e308",
        1e308,
        "1E+999999",
        "1E-999999",
        pytest.param(10**400, id="10**400"),
        "1000000",
        1_000_000,
        "12.345",
        0.001,
        "NaN",
        "-0.01",
        " 5",
        "5.",
        True,
    ],
)
def test_counter_redemption_with_an_amount_no_till_takes(
    app: Flask,
    client: FlaskClient,
    world: World,
    errors_logged: list[logging.LogRecord],
    cash: Any,
) -> None:
    soap = add_reward(app, world.shop_a, "香皂", 5, 50)
    fund(app, world.household_x, 100)
    before = database_state(app)
    response = client.post(
        f"{API}/shops/{world.shop_a}/counter-redemptions",
        headers=world.headers("clerk_a"),
        json={
            "member_token": member_token(app, world.head_x),
            "items": [{"reward_id": soap, "quantity": 2}],
            "cash_paid": cash,
        },
    )
    assert response.status_code == 422, response.get_json()
    assert error_code(response) == "validation_error"
    assert fields_named(response) == {"cash_paid"}
    assert errors_logged == []
    assert database_state(app) == before
    assert account_of(app, world.household_x)["available"] == 100
    assert stock_of(app, soap) == 50


@pytest.mark.parametrize("cash", ["999999.99", "0", 0, 5, "5.00", 5.0])
def test_amounts_within_the_bounds_reach_the_till(
    app: Flask, client: FlaskClient, world: World, cash: Any
) -> None:
    """In range, the amount is the shop's business: a multiple of the rate, less than the
    goods (`invalid_cash`), or taken."""
    soap = add_reward(app, world.shop_a, "香皂", 5, 50)
    fund(app, world.household_x, 100)
    response = client.post(
        f"{API}/shops/{world.shop_a}/counter-redemptions",
        headers=world.headers("clerk_a"),
        json={
            "member_token": member_token(app, world.head_x),
            "items": [{"reward_id": soap, "quantity": 2}],
            "cash_paid": cash,
        },
    )
    if cash == "999999.99":
        assert response.status_code == 422 and error_code(response) == "invalid_cash"
        return
    assert response.status_code == 201, response.get_json()
    receipt = response.get_json()
    assert receipt["cash_paid"] in ("0.00", "5.00")
    assert receipt["points"] == 10 - int(float(receipt["cash_paid"]))


# ---- moments: the shared Moment field -------------------------------------------------------


def _activity(world: World, items: dict[str, int], **changes: str) -> dict[str, Any]:
    starts = now() + timedelta(days=1)
    return {
        "village_id": world.village_a,
        "title": "村民大会",
        "rule_item_id": items["GOV-ASSEMBLY"],
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=2)).isoformat(),
        "qr_mode": "static",
        **changes,
    }


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        (
            {"starts_at": "9999-12-31T23:59:00-12:00", "ends_at": "9999-12-31T23:59:30-12:00"},
            {"starts_at", "ends_at"},
        ),
        ({"ends_at": "9999-12-31T23:59:00-12:00"}, {"ends_at"}),
        ({"checkin_opens_at": "0001-01-01T00:00:00+14:00"}, {"checkin_opens_at"}),
        ({"checkin_closes_at": "9999-12-31T23:59:59.999999-23:59"}, {"checkin_closes_at"}),
        ({"starts_at": "2101-01-01T00:00:00+08:00"}, {"starts_at"}),
        ({"starts_at": "1999-12-31T23:59:59+08:00"}, {"starts_at"}),
    ],
)
def test_an_activity_outside_the_years_2000_to_2100(
    app: Flask,
    client: FlaskClient,
    world: World,
    errors_logged: list[logging.LogRecord],
    changes: dict[str, str],
    named: set[str],
) -> None:
    items = default_items(app, world)
    before = database_state(app)
    response = client.post(
        f"{API}/activities",
        headers=world.headers("cadre_a"),
        json=_activity(world, items, **changes),
    )
    assert response.status_code == 422, response.get_json()
    assert error_code(response) == "validation_error"
    assert fields_named(response) == named
    assert errors_logged == []
    assert database_state(app) == before


def test_the_last_minute_of_2100_far_west_converts_without_overflow(
    app: Flask, client: FlaskClient, world: World
) -> None:
    items = default_items(app, world)
    response = client.post(
        f"{API}/activities",
        headers=world.headers("cadre_a"),
        json=_activity(world, items, ends_at="2100-12-31T23:59:00-12:00"),
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["ends_at"] == "2101-01-01T19:59:00+08:00"


@pytest.mark.parametrize("since", ["9999-12-31T23:59:00-12:00", "0001-01-01T00:00:00+14:00"])
def test_the_audit_log_since_a_moment_out_of_range(
    client: FlaskClient, world: World, errors_logged: list[logging.LogRecord], since: str
) -> None:
    response = client.get(
        f"{API}/audit", query_string={"since": since}, headers=world.headers("county")
    )
    assert response.status_code == 422
    assert error_code(response) == "validation_error"
    assert fields_named(response) == {"since"}
    assert errors_logged == []


def test_a_dry_run_at_a_moment_out_of_range(app: Flask, client: FlaskClient, world: World) -> None:
    items = default_items(app, world)
    response = client.post(
        f"{API}/rules/evaluate",
        headers=world.headers("cadre_a"),
        json={
            "item_id": items["PUB-VOLUNTEER"],
            "villager_id": world.head_x,
            "at": "9999-12-31T23:59:00-12:00",
        },
    )
    assert response.status_code == 422
    assert fields_named(response) == {"at"}


# ---- ids and counts: bounded like the columns that hold them --------------------------------


@pytest.mark.parametrize("reward_id", [2**31, 2**63, 2**64, -(2**63) - 1])
def test_an_order_naming_an_id_no_column_holds(
    app: Flask, client: FlaskClient, world: World, reward_id: int
) -> None:
    fund(app, world.household_x, 100)
    before = database_state(app)
    response = client.post(
        f"{API}/redemptions",
        headers=world.headers("villager_x"),
        json={"shop_id": world.shop_a, "items": [{"reward_id": reward_id, "quantity": 1}]},
    )
    assert response.status_code == 422
    assert error_code(response) == "validation_error"
    assert fields_named(response) == {"items"}
    assert database_state(app) == before


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/activities", {"village_id": 2**64}),
        ("/redemptions", {"household_id": 2**63}),
        ("/rule-catalogs", {"township_id": 2**31}),
        ("/rankings", {"group_id": 2**40}),
        ("/claims", {"per_page": 2**64}),
    ],
)
def test_a_query_naming_an_id_no_column_holds(
    client: FlaskClient, world: World, path: str, query: dict[str, int]
) -> None:
    response = client.get(f"{API}{path}", query_string=query, headers=world.headers("county"))
    assert response.status_code == 422
    assert error_code(response) == "validation_error"
    assert fields_named(response) == set(query)


# ---- the exchange rate and the policy: the rule validation ----------------------------------


def _policy_url(app: Flask, world: World) -> str:
    return f"{API}/rule-catalogs/{catalog_id(app, world.township_1)}/policy"


@pytest.mark.parametrize(
    "rate",
    [
        "1E-999999",
        "1E+999999",
        "0.0009",
        "1000.0001",
        "0",
        "0.00001",
        "0.12345",
        1e-300,
        1e300,
        "1e3",
        " 0.5",
        pytest.param("9" * 5000, id="5000 nines"),
    ],
)
def test_an_exchange_rate_out_of_bounds_is_refused_naming_it(
    app: Flask,
    client: FlaskClient,
    world: World,
    errors_logged: list[logging.LogRecord],
    rate: Any,
) -> None:
    default_items(app, world)
    before = database_state(app)
    response = client.patch(
        _policy_url(app, world), json={"exchange_rate": rate}, headers=world.headers("tadmin1")
    )
    assert response.status_code == 422
    assert error_code(response) == "catalog_invalid"
    problems = response.get_json()["error"]["details"]["problems"]
    assert [p["field"] for p in problems] == ["exchange_rate"]
    assert len(response.data) < 2000
    assert errors_logged == []
    assert database_state(app) == before


@pytest.mark.parametrize(
    ("rate", "shown", "value"),
    [
        ("0.001", "0.001", "0.01"),  # 10 points at a tenth of a fen: rounded to the fen
        ("1000", "1000", "10000.00"),
        (0.0025, "0.0025", "0.03"),
        ("2.5000", "2.5", "25.00"),
    ],
)
def test_exchange_rates_at_the_bounds_price_a_redemption_in_a_short_receipt(
    app: Flask,
    client: FlaskClient,
    world: World,
    rate: Any,
    shown: str,
    value: str,
) -> None:
    default_items(app, world)
    policy = client.patch(
        _policy_url(app, world), json={"exchange_rate": rate}, headers=world.headers("tadmin1")
    )
    assert policy.status_code == 200, policy.get_json()
    assert policy.get_json()["policy"]["exchange_rate"] in (shown, str(rate))
    soap = add_reward(app, world.shop_a, "香皂", 5, 50)
    fund(app, world.household_x, 100)
    response = client.post(
        f"{API}/shops/{world.shop_a}/counter-redemptions",
        headers=world.headers("clerk_a"),
        json={
            "member_token": member_token(app, world.head_x),
            "items": [{"reward_id": soap, "quantity": 2}],
        },
    )
    assert response.status_code == 201, response.get_json()
    receipt = response.get_json()
    assert (receipt["exchange_rate"], receipt["value"], receipt["cash_paid"]) == (
        shown,
        value,
        "0.00",
    )
    assert len(response.data) < 2000


def test_a_catalog_file_with_an_exchange_rate_out_of_bounds_is_refused(
    app: Flask, client: FlaskClient, world: World
) -> None:
    text = "name: 细则\ncategories: [热心公益]\npolicy:\n  exchange_rate: '1E-999999'\nitems: []\n"
    before = database_state(app)
    response = client.post(
        f"{API}/rule-catalogs/import",
        query_string={"township_id": world.township_1},
        data=text.encode(),
        content_type="application/yaml",
        headers=world.headers("tadmin1"),
    )
    assert response.status_code == 422
    assert error_code(response) == "catalog_invalid"
    fields = {p["field"] for p in response.get_json()["error"]["details"]["problems"]}
    assert "policy.exchange_rate" in fields
    assert database_state(app) == before


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("monthly_budget", 2**63),
        ("qualification_line", 10**20),
        ("two_cadre_threshold", 2**31),
        ("min_redemption_points", 10**12),
        ("star_levels", [60, 70, 2**64]),
    ],
)
def test_policy_numbers_past_any_column_are_refused_naming_them(
    app: Flask, client: FlaskClient, world: World, field: str, value: Any
) -> None:
    default_items(app, world)
    before = database_state(app)
    response = client.patch(
        _policy_url(app, world), json={field: value}, headers=world.headers("tadmin1")
    )
    assert response.status_code == 422
    assert error_code(response) == "catalog_invalid"
    problems = response.get_json()["error"]["details"]["problems"]
    assert [p["field"] for p in problems] == [field]
    assert database_state(app) == before
