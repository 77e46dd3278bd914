"""Codes are read as scanners hand them over: every QR holds `{PUBLIC_BASE_URL}/q/{token}`,
and the mini-program's scanner or a clerk's USB scanner passes on that whole text (with a
newline, or as WeChat opens the mini-program from a link, percent-encoded). The pickup code,
the member card at the counter and the binding code are accepted in every such form."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from backend.extensions import db
from points.models import Redemption, User
from points.tokens import MAX_SCANNED_CHARS, QRTokenInvalid, scanned_token
from tests.factories import (
    World,
    add_reward,
    default_items,
    fund,
    member_token,
    open_activity,
    order,
    scan,
)
from tests.support.reads import account_of, error_code

API = "/api/v1"
BASE = "https://jf.example.gov.cn"  # the tests' PUBLIC_BASE_URL
TOKEN = "IQFSg3kDiyuTzT2xIJ5ANzOI"  # base64url, as every token

# How the same code arrives from different scanners.
FORMS = {
    "bare": lambda t: t,
    "url": lambda t: f"{BASE}/q/{t}",
    "trailing_slash": lambda t: f"{BASE}/q/{t}/",
    "query": lambda t: f"{BASE}/q/{t}?from=poster&v=2",
    "fragment": lambda t: f"{BASE}/q/{t}#card",
    "query_and_fragment": lambda t: f"{BASE}/q/{t}/?s=1#x",
    "usb_scanner": lambda t: f"  {BASE}/q/{t}\r\n",
    "bare_with_newline": lambda t: f"{t}\n",
    "percent_encoded": lambda t: quote(f"{BASE}/q/{t}", safe=""),
    "base_url_with_a_path": lambda t: f"https://gov.example.cn/q/app/q/{t}",
}
SCANNER_FORMS = [
    "url",
    "trailing_slash",
    "query",
    "query_and_fragment",
    "usb_scanner",
    "percent_encoded",
]


# ---- the one reader -------------------------------------------------------------------------


@pytest.mark.parametrize("form", sorted(FORMS))
def test_the_token_is_read_from_every_form_a_scanner_hands_over(form: str) -> None:
    assert scanned_token(FORMS[form](TOKEN)) == TOKEN


@pytest.mark.parametrize("scanned", ["", "   ", f"{BASE}/q/", f"{BASE}/q/?x=1", "#frag"])
def test_nothing_left_of_the_scan_is_an_empty_token(scanned: str) -> None:
    assert scanned_token(scanned) == ""


def test_a_query_cannot_smuggle_another_token_in() -> None:
    assert scanned_token(f"{BASE}/q/{TOKEN}?next=/q/OTHER") == TOKEN


def test_an_overlong_scan_is_refused_before_it_is_read() -> None:
    with pytest.raises(QRTokenInvalid):
        scanned_token(f"{BASE}/q/{TOKEN}?" + "x" * MAX_SCANNED_CHARS)


# ---- the clerk's scan of a pickup code (取货码) ------------------------------------------------


def _ordered(app: Flask, client: FlaskClient, world: World) -> dict[str, object]:
    soap = add_reward(app, world.shop_a, "香皂", 5, 50)
    fund(app, world.household_x, 100)
    placed = order(client, world.headers("villager_x"), world.shop_a, [(soap, 2)])
    assert placed.status_code == 201, placed.get_json()
    return placed.get_json()


@pytest.mark.parametrize("form", SCANNER_FORMS)
def test_clerk_scans_the_pickup_code_as_the_scanner_reads_it(
    app: Flask, client: FlaskClient, world: World, form: str
) -> None:
    ordered = _ordered(app, client, world)
    assert ordered["pickup_url"] == f"{BASE}/q/{ordered['pickup_token']}"
    response = scan(client, world.headers("clerk_a"), FORMS[form](ordered["pickup_token"]))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "fulfilled"
    assert account_of(app, world.household_x)["available"] == 90


def test_a_pickup_scan_of_someone_elses_url_is_still_qr_invalid(
    app: Flask, client: FlaskClient, world: World
) -> None:
    ordered = _ordered(app, client, world)
    response = scan(
        client, world.headers("clerk_a"), f"https://evil.example/x/{ordered['pickup_token']}"
    )
    assert response.status_code == 422 and error_code(response) == "qr_invalid"
    with app.app_context():
        assert db.session.scalar(select(Redemption.status)) == "reserved"


# ---- counter redemption by member card (积分卡) ----------------------------------------------


@pytest.mark.parametrize("form", SCANNER_FORMS)
def test_counter_redemption_reads_the_scanned_member_card(
    app: Flask, client: FlaskClient, world: World, form: str
) -> None:
    soap = add_reward(app, world.shop_a, "香皂", 5, 50)
    fund(app, world.household_x, 100)
    card = FORMS[form](member_token(app, world.spouse_x))
    response = client.post(
        f"{API}/shops/{world.shop_a}/counter-redemptions",
        headers=world.headers("clerk_a"),
        json={"member_token": card, "items": [{"reward_id": soap, "quantity": 1}]},
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["member_id"] == world.spouse_x
    assert account_of(app, world.household_x)["available"] == 95
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Redemption)) == 1


# ---- binding with a cadre's binding code (绑定二维码) -----------------------------------------


@pytest.mark.parametrize("form", SCANNER_FORMS)
def test_binding_reads_the_scanned_binding_code(
    app: Flask, client: FlaskClient, world: World, form: str
) -> None:
    issued = client.post(
        f"{API}/villagers/{world.spouse_x}/binding-token", headers=world.headers("cadre_a")
    ).get_json()
    assert issued["url"] == f"{BASE}/q/{issued['token']}"
    response = client.post(
        f"{API}/auth/bind",
        json={"token": FORMS[form](issued["token"])},
        headers=world.headers("unbound"),
    )
    assert response.status_code == 200, response.get_json()
    with app.app_context():
        user = db.session.get(User, world.unbound)
        assert user is not None and user.villager_id == world.spouse_x


# ---- check-in and proxy check-in read codes the same way -------------------------------------


@pytest.mark.parametrize("form", SCANNER_FORMS)
def test_check_in_and_proxy_check_in_read_the_code_as_scanned(
    app: Flask, client: FlaskClient, world: World, form: str
) -> None:
    items = default_items(app, world)
    activity_id, code = open_activity(client, world, items["GOV-ASSEMBLY"])
    own = client.post(
        f"{API}/checkins", json={"token": FORMS[form](code)}, headers=world.headers("villager_x")
    )
    assert own.status_code == 201, own.get_json()
    proxy = client.post(
        f"{API}/activities/{activity_id}/proxy-checkins",
        json={"member_token": FORMS[form](member_token(app, world.spouse_x))},
        headers=world.headers("cadre_a"),
    )
    assert proxy.status_code == 201, proxy.get_json()


# ---- the contract -----------------------------------------------------------------------------


def test_the_openapi_document_says_the_url_or_the_token_is_accepted(
    client: FlaskClient,
) -> None:
    schemas = client.get(f"{API}/openapi.json").get_json()["components"]["schemas"]
    fields = {
        (name, field): props
        for name, schema in schemas.items()
        for field, props in schema.get("properties", {}).items()
    }
    for key in (
        ("PickupScanIn", "pickup_token"),
        ("CounterRedemptionIn", "member_token"),
        ("BindIn", "token"),
        ("CheckinIn", "token"),
        ("ProxyCheckinIn", "member_token"),
    ):
        description = fields[key]["description"]
        assert "{PUBLIC_BASE_URL}/q/{token}" in description and "token alone" in description
        assert fields[key]["maxLength"] == MAX_SCANNED_CHARS
