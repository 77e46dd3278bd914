"""Small things a county walk-through met: the service's root, the documented health check
and QR landing page, Chinese in JSON, Chinese validation messages, a plate's rank at 0."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.factories import World

API = "/api/v1"


def test_the_root_sends_a_browser_to_the_api_docs(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"] == f"{API}/docs"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    docs = client.get("/", follow_redirects=True)
    assert docs.status_code == 200 and docs.mimetype == "text/html"


def test_health_check_and_qr_landing_page_are_documented(client: FlaskClient) -> None:
    paths = client.get(f"{API}/openapi.json").get_json()["paths"]
    health = paths["/healthz"]["get"]
    assert health["security"] == []
    assert {"200", "503"} <= set(health["responses"])
    landing = paths["/q/{token}"]["get"]
    assert landing["security"] == []
    assert "text/html" in landing["responses"]["200"]["content"]
    assert paths["/"]["get"]["security"] == []
    assert client.get("/healthz").get_json() == {"status": "ok", "database": "ok"}


# ---- Chinese in every answer ----------------------------------------------------------------

CJK = re.compile(r"[\u4e00-\u9fff]")


def _messages(tree: Any) -> list[str]:
    if isinstance(tree, str):
        return [tree]
    if isinstance(tree, dict):
        return [m for value in tree.values() for m in _messages(value)]
    if isinstance(tree, list):
        return [m for value in tree for m in _messages(value)]
    return []


def test_every_validation_message_is_chinese(
    client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    cadre, admin = world.headers("cadre_a"), world.headers("tadmin1")
    long = "长" * 600
    provoked = [
        client.post(f"{API}/auth/login", json={"username": 1}),  # required, not a string
        client.post(f"{API}/auth/refresh", json={"refresh_token": None}),  # null
        client.get(f"{API}/townships?page=0&per_page=x", headers=admin),  # range, integer
        client.get(
            f"{API}/rankings?by=everyone&limit=0&public=maybe", headers=cadre
        ),  # one of, range, boolean
        client.post(
            f"{API}/awards",
            json={  # nested, list, length
                "rule_item_id": "x",
                "targets": "all",
                "evidence": [1] * 10,
                "note": long,
            },
            headers=cadre,
        ),
        client.post(
            f"{API}/awards",
            json={
                "rule_item_id": items["ENV-YARD"],
                "targets": [{"household_id": "x"}, {}],
                "evidence": {},
            },
            headers=cadre,
        ),
        client.post(f"{API}/claims/1/reject", json={"reason": ""}, headers=cadre),
        client.post(f"{API}/villages/{world.village_a}/groups", json={"name": long}, headers=cadre),
        client.patch(
            f"{API}/rule-items/{items['ENV-YARD']}",
            json={"points": "many", "kind": "maybe", "caps": {}, "effective_from": "soon"},
            headers=admin,
        ),
    ]
    seen = []
    for response in provoked:
        assert response.status_code == 422, (response.request.path, response.get_json())
        body = response.get_json()["error"]
        assert CJK.search(body["message"]), body
        messages = _messages(body["details"].get("fields", {}))
        assert messages, body
        english = [m for m in messages if not CJK.search(m)]
        assert not english, (response.request.path, english)
        seen += messages
    assert len(seen) >= 15


def test_english_marshmallow_messages_have_chinese_ones() -> None:
    from marshmallow import ValidationError, fields, validate

    from backend.errors import chinese_message

    defaults: list[str] = []
    for field in (
        fields.Field,
        fields.String,
        fields.Integer,
        fields.Float,
        fields.Decimal,
        fields.Boolean,
        fields.DateTime,
        fields.AwareDateTime,
        fields.Date,
        fields.Time,
        fields.List,
        fields.Tuple,
        fields.Dict,
        fields.Nested,
        fields.Email,
        fields.URL,
        fields.UUID,
        fields.TimeDelta,
    ):
        for cls in field.__mro__:
            defaults += [str(m) for m in getattr(cls, "default_error_messages", {}).values()]
    refusals = [
        (validate.Length(min=2), "a"),
        (validate.Length(max=1), "ab"),
        (validate.Length(min=1, max=2), "abc"),
        (validate.Length(equal=3), "a"),
        (validate.Range(min=1), 0),
        (validate.Range(max=9), 10),
        (validate.Range(min=1, max=9), 0),
        (validate.Range(min=1, min_inclusive=False), 1),
        (validate.Range(max=9, max_inclusive=False), 9),
        (validate.Range(min=1, max=9, min_inclusive=False, max_inclusive=False), 9),
        (validate.OneOf(["a", "b"]), "c"),
        (validate.Equal("x"), "y"),
        (validate.ContainsOnly(["a"]), ["b"]),
        (validate.Regexp("a"), "b"),
        (validate.NoneOf(["a"]), "a"),
    ]
    for validator, value in refusals:
        with pytest.raises(ValidationError) as refused:
            validator(value)
        defaults += refused.value.messages
    defaults = [
        m.format(obj_type="datetime", awareness="aware", input="x", min=1, max=9) for m in defaults
    ]
    untranslated = sorted({m for m in defaults if not CJK.search(chinese_message(m))})
    assert not untranslated


def test_answers_carry_chinese_as_utf8(client: FlaskClient, world: World) -> None:
    answers = [
        client.get(f"{API}/me", headers=world.headers("villager_x")),
        client.get(f"{API}/households/999999", headers=world.headers("cadre_a")),  # 404
        client.get(f"{API}/me"),  # 401
        client.post(f"{API}/auth/login", json={"username": 1}),  # 422
        client.delete(f"{API}/me", headers=world.headers("cadre_a")),  # 405
        client.get(f"{API}/openapi.json"),
    ]
    for response in answers:
        text = response.get_data(as_text=True)
        assert response.mimetype == "application/json", response.request.path
        assert "\\u" not in text, (response.request.path, text[:200])
        assert CJK.search(text), (response.request.path, text[:200])


# ---- a QR code's problems are not the login's -------------------------------------------------


def test_no_qr_code_problem_reads_as_an_expired_login(
    app: Flask, client: FlaskClient, world: World
) -> None:
    """To the mini-program a 401 `token_expired` means "refresh the login": an old poster,
    a stranger's code or a garbled scan answers 422 with a qr_* code instead."""
    from datetime import UTC, datetime, timedelta

    from points.tokens import TokenCodec, TokenType
    from tests.factories import SECRET

    codec = TokenCodec.from_secret(SECRET)
    expired_binding = codec.encode(TokenType.BINDING, (1,), datetime.now(UTC) - timedelta(hours=1))
    card = codec.encode(TokenType.MEMBER_CARD, (world.head_x,))
    villager, clerk = world.headers("villager_x"), world.headers("clerk_a")
    answers = {
        "checkin garbage": (
            client.post(f"{API}/checkins", json={"token": "garbage"}, headers=villager),
            "qr_invalid",
        ),
        "checkin with a member card": (
            client.post(f"{API}/checkins", json={"token": card}, headers=villager),
            "qr_wrong_type",
        ),
        "expired binding": (
            client.post(
                f"{API}/auth/bind",
                json={"token": expired_binding},
                headers=world.headers("unbound"),
            ),
            "qr_expired",
        ),
        "pickup garbage": (
            client.post(f"{API}/redemptions/scan", json={"pickup_token": "garbage"}, headers=clerk),
            "qr_invalid",
        ),
    }
    for label, (response, code) in answers.items():
        assert response.status_code == 422, (label, response.get_json())
        assert response.get_json()["error"]["code"] == code, label
