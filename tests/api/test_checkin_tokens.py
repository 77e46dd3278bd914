"""Check-in codes against forgery (hypothesis), each refusal its own code, and key rotation
that leaves printed codes working.

The forgery runs go through the check-in service itself (2,000 examples) and through the
HTTP endpoint (a few hundred): no mutated, random or foreign-signed token ever checks anyone
in, and each is refused as qr_invalid."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from backend import config as app_config
from backend.caller import qr_codec
from backend.clock import clock_skew
from backend.extensions import db
from points.activities import checkin
from points.activities.checkin import Clock, Scan
from points.errors import DomainError
from points.models import Activity, CheckIn, Claim, User
from points.scope import Actor
from points.tokens import (
    QRTokenInvalid,
    QRTokenWrongType,
    TokenCodec,
    TokenType,
    derive_key,
)
from tests.factories import SECRET, World, add_household, check_in, default_items
from tests.support.clock import SHANGHAI, frozen, local
from tests.support.reads import count, error_code

API = "/api/v1"
START, END = local(2026, 12, 1, 9, 0), local(2026, 12, 1, 11, 0)
DURING = local(2026, 12, 1, 9, 5)
CODEC = TokenCodec.from_secret(SECRET)
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
FORGERIES = (QRTokenInvalid.code,)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def v1_token(
    secret: str,
    type_: int,
    fields: tuple[int, ...],
    kid: int = 1,
    expires_at: datetime | None = None,
) -> str:
    """A code as the first release printed it (format 1: a fixed 5-byte expiry)."""
    expiry = int(expires_at.timestamp()) if expires_at else 0
    body = bytes([1, type_, kid]) + expiry.to_bytes(5, "big") + b"".join(map(varint, fields))
    return b64(body + hmac.new(derive_key(secret, kid), body, hashlib.sha256).digest()[:12])


def new_activity(client: FlaskClient, world: World, item_id: int, **changes: Any) -> int:
    body = {
        "village_id": world.village_a,
        "title": "村民大会",
        "rule_item_id": item_id,
        "starts_at": START.isoformat(),
        "ends_at": END.isoformat(),
        "qr_mode": "static",
        **changes,
    }
    with frozen(local(2026, 11, 30, 15)):
        response = client.post(f"{API}/activities", json=body, headers=world.headers("cadre_a"))
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def shown_code(client: FlaskClient, world: World, activity_id: int) -> str:
    response = client.get(
        f"{API}/activities/{activity_id}/qr-token", headers=world.headers("cadre_a")
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()["token"]


@pytest.fixture()
def restore_config(app: Flask) -> Iterator[None]:
    keys = ("SECRET_KEY", "QR_KEY_ID", "QR_OLD_SECRETS", "QR_REVOKED_KEY_IDS")
    saved = {key: app.config[key] for key in keys}
    yield
    app.config.update(saved)


# ---- the codec ------------------------------------------------------------------------------


def test_codes_are_compact_and_typed() -> None:
    step = int(datetime(2030, 1, 1, tzinfo=UTC).timestamp()) // 30
    rotating = CODEC.encode(TokenType.ACTIVITY, (123_456, step))
    static = CODEC.encode(TokenType.ACTIVITY, (123_456, 0))
    assert len(rotating) <= 30 and len(static) <= 26
    assert CODEC.decode(rotating, TokenType.ACTIVITY).fields == (123_456, step)
    with pytest.raises(QRTokenWrongType):
        CODEC.decode(static, TokenType.MEMBER_CARD)


def test_only_the_one_canonical_spelling_of_a_code_is_read() -> None:
    token = CODEC.encode(TokenType.ACTIVITY, (7, 0))
    raw = unb64(token)
    # the last character carries spare bits a lenient decoder ignores
    spare = ALPHABET[ALPHABET.index(token[-1]) ^ 1]
    variants = [
        token[:-1] + spare,
        token + "=",
        token[:5] + "!" + token[5:],
        " " + token,
        token.replace("-", "+").replace("_", "/")
        if ("-" in token or "_" in token)
        else token + "A",
    ]
    for variant in variants:
        assert variant != token
        with pytest.raises(QRTokenInvalid):
            CODEC.decode(variant, TokenType.ACTIVITY)
    assert unb64(token[:-1] + spare)[:-1] == raw[:-1]  # same bytes, yet refused
    assert CODEC.decode(token, TokenType.ACTIVITY).fields == (7, 0)


def test_codes_printed_in_the_first_format_still_read() -> None:
    card = v1_token(SECRET, TokenType.MEMBER_CARD, (42,))
    binding = v1_token(
        SECRET, TokenType.BINDING, (9,), expires_at=datetime.now(UTC) + timedelta(hours=1)
    )
    assert CODEC.decode(card, TokenType.MEMBER_CARD).fields == (42,)
    assert CODEC.decode(binding, TokenType.BINDING).fields == (9,)
    with pytest.raises(QRTokenWrongType):
        CODEC.decode(card, TokenType.ACTIVITY)
    with pytest.raises(QRTokenInvalid):
        TokenCodec.from_secret("another-secret-key-that-is-long-enough-000").decode(
            card, TokenType.MEMBER_CARD
        )


def test_key_ring_keeps_lower_ids_and_old_secrets_and_drops_revoked_ones() -> None:
    old = TokenCodec.keyring("old-secret-" * 4, 1).encode(TokenType.ACTIVITY, (5, 0))
    first = TokenCodec.keyring(SECRET, 1).encode(TokenType.ACTIVITY, (5, 0))
    ring = TokenCodec.keyring(SECRET, 3, old_secrets={2: "old-secret-" * 4})
    assert ring.decode(first, TokenType.ACTIVITY).kid == 1
    assert ring.decode(ring.encode(TokenType.ACTIVITY, (5, 0)), TokenType.ACTIVITY).kid == 3
    with pytest.raises(QRTokenInvalid):  # kid 1 under the old secret: not on the ring
        ring.decode(old, TokenType.ACTIVITY)
    assert TokenCodec.keyring(SECRET, 2, old_secrets={1: "old-secret-" * 4}).decode(
        old, TokenType.ACTIVITY
    ).fields == (5, 0)
    with pytest.raises(QRTokenInvalid):
        TokenCodec.keyring(SECRET, 2, revoked={1}).decode(first, TokenType.ACTIVITY)
    with pytest.raises(ValueError):
        TokenCodec.keyring(SECRET, 2, revoked={2})


def test_settings_for_keys_are_checked_at_start() -> None:
    base = {"APP_ENV": "development", "SECRET_KEY": SECRET, "QR_ROTATE_SECONDS": 30}
    app_config.check(
        {**base, "QR_KEY_ID": 2, "QR_OLD_SECRETS": '{"1": "x"}', "QR_REVOKED_KEY_IDS": ""}
    )
    for bad in (
        {"QR_KEY_ID": 0},
        {"QR_KEY_ID": 256},
        {"QR_OLD_SECRETS": "1=x"},
        {"QR_KEY_ID": 2, "QR_REVOKED_KEY_IDS": "1,2"},
        {"QR_ROTATE_SECONDS": 1},
        {"QR_OLD_SECRETS": '{"300": "x"}'},
    ):
        with pytest.raises(RuntimeError):
            app_config.check(
                {**base, "QR_KEY_ID": 1, "QR_OLD_SECRETS": "", "QR_REVOKED_KEY_IDS": "", **bad}
            )


# ---- each refusal its own code (through HTTP) -------------------------------------------------


def test_each_kind_of_bad_code_has_its_own_refusal(
    app: Flask, client: FlaskClient, world: World
) -> None:
    items = default_items(app, world)
    static = new_activity(client, world, items["GOV-ASSEMBLY"])
    rotating = new_activity(client, world, items["GOV-ASSEMBLY"], qr_mode="rotating")
    with frozen(local(2026, 11, 30, 15)):
        in_b = client.post(
            f"{API}/activities",
            headers=world.headers("cadre_b"),
            json={
                "village_id": world.village_b,
                "title": "桃源村大会",
                "rule_item_id": items["GOV-ASSEMBLY"],
                "starts_at": START.isoformat(),
                "ends_at": END.isoformat(),
                "qr_mode": "static",
            },
        ).get_json()["id"]
    with frozen(DURING):
        step = int(DURING.timestamp()) // 30
        other_key = TokenCodec.from_secret("another-secret-key-that-is-long-enough-000")
        cases = {
            "qr_invalid": other_key.encode(TokenType.ACTIVITY, (static, 0)),
            "qr_wrong_type": CODEC.encode(TokenType.MEMBER_CARD, (world.head_x,)),
            "qr_expired": CODEC.encode(TokenType.ACTIVITY, (rotating, step - 2)),
            "wrong_village": CODEC.encode(TokenType.ACTIVITY, (in_b, 0)),
        }
        pickup = check_in(client, world, CODEC.encode(TokenType.PICKUP, (1,)))
        answers = {code: check_in(client, world, token) for code, token in cases.items()}
    for expected, response in answers.items():
        assert error_code(response) == expected, (expected, response.get_json())
        assert response.status_code == (403 if expected == "wrong_village" else 422)
    assert error_code(pickup) == "qr_wrong_type"
    assert count(app, CheckIn) == 0 and count(app, Claim) == 0


def test_key_rotation_keeps_printed_codes_working(
    app: Flask, client: FlaskClient, world: World, restore_config: None
) -> None:
    items = default_items(app, world)
    activity_id = new_activity(client, world, items["GOV-ASSEMBLY"])
    others = [
        add_household(app, world.village_a, f"{n}户", f"户主{n}", openid=f"o-{n}") for n in range(3)
    ]
    with frozen(DURING):
        printed = shown_code(client, world, activity_id)  # the poster on the wall, kid 1
        app.config["QR_KEY_ID"] = 2
        reprinted = shown_code(client, world, activity_id)
        with app.app_context():
            assert qr_codec().decode(reprinted, TokenType.ACTIVITY).kid == 2
        assert reprinted != printed
        assert check_in(client, world, printed).status_code == 201
        assert check_in(client, world, reprinted, user=others[0]["user"]).status_code == 201

        # the server secret itself changes: kid 1 codes live on through QR_OLD_SECRETS
        app.config.update(
            SECRET_KEY="a-brand-new-server-secret-0123456789abcdef",
            QR_OLD_SECRETS=json.dumps({"1": SECRET}),
        )
        assert check_in(client, world, printed, user=others[1]["user"]).status_code == 201
        # ... until they are revoked (a leaked batch of posters)
        app.config["QR_REVOKED_KEY_IDS"] = "1"
        revoked = check_in(client, world, printed, user=others[2]["user"])
    assert error_code(revoked) == "qr_invalid"
    assert count(app, CheckIn) == 3


def test_member_card_printed_in_the_first_format_checks_in_by_proxy(
    app: Flask, client: FlaskClient, world: World
) -> None:
    items = default_items(app, world)
    activity_id = new_activity(client, world, items["GOV-ASSEMBLY"])
    with frozen(DURING):
        response = client.post(
            f"{API}/activities/{activity_id}/proxy-checkins",
            json={"member_token": v1_token(SECRET, TokenType.MEMBER_CARD, (world.spouse_x,))},
            headers=world.headers("cadre_a"),
        )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["villager_id"] == world.spouse_x


# ---- forgery (hypothesis) ---------------------------------------------------------------------


def mutations(token: str) -> st.SearchStrategy[str]:
    """Small edits of a genuine code: a character changed, inserted or dropped, bits
    flipped in its bytes, a prefix, a suffix."""
    n = len(token)
    index = st.integers(0, n - 1)
    char = st.sampled_from(ALPHABET)
    raw = unb64(token)

    def flip(positions: list[tuple[int, int]]) -> str:
        data = bytearray(raw)
        for at, bit in positions:
            data[at % len(data)] ^= 1 << bit
        return b64(bytes(data))

    return st.one_of(
        st.tuples(index, char).map(lambda p: token[: p[0]] + p[1] + token[p[0] + 1 :]),
        st.tuples(st.integers(0, n), char).map(lambda p: token[: p[0]] + p[1] + token[p[0] :]),
        index.map(lambda i: token[:i] + token[i + 1 :]),
        st.lists(st.tuples(st.integers(0, 255), st.integers(0, 7)), min_size=1, max_size=4).map(
            flip
        ),
        st.integers(1, n - 1).map(lambda i: token[:i]),
        st.text(ALPHABET, min_size=1, max_size=8).map(lambda tail: token + tail),
    )


def structured(activity_ids: list[int]) -> st.SearchStrategy[str]:
    """Well-formed codes for real activities with a guessed tag, or signed with a key that
    is not the server's (another secret, or a key id it does not have)."""
    fields = st.tuples(st.sampled_from(activity_ids), st.integers(0, 2**32))
    guessed = st.tuples(fields, st.binary(min_size=12, max_size=12)).map(
        lambda p: b64(bytes([0x21, 1, 0]) + varint(p[0][0]) + varint(p[0][1]) + p[1])
    )
    foreign = st.tuples(st.text(min_size=1, max_size=40), st.integers(1, 255), fields).map(
        lambda p: TokenCodec.from_secret(p[0] + "-not-the-server-secret", p[1]).encode(
            TokenType.ACTIVITY, p[2]
        )
    )
    unknown_kid = st.tuples(st.integers(2, 255), fields).map(
        lambda p: TokenCodec.from_secret(SECRET, p[0]).encode(TokenType.ACTIVITY, p[1])
    )
    return st.one_of(guessed, foreign, unknown_kid)


def forgeries(genuine: list[str], activity_ids: list[int]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=120),
        st.text(ALPHABET, min_size=1, max_size=60),
        st.binary(max_size=60).map(b64),
        *[mutations(token) for token in genuine],
        structured(activity_ids),
    ).filter(lambda token: token not in genuine)


@pytest.fixture()
def open_activities(app: Flask, client: FlaskClient, world: World) -> dict[str, Any]:
    """A static and a rotating activity of village A, open for check-in at DURING, and
    their genuine codes at that moment."""
    items = default_items(app, world)
    static = new_activity(client, world, items["GOV-ASSEMBLY"])
    rotating = new_activity(client, world, items["GOV-ASSEMBLY"], qr_mode="rotating")
    with frozen(DURING):
        genuine = [shown_code(client, world, static), shown_code(client, world, rotating)]
    return {"ids": [static, rotating], "genuine": genuine}


def test_forged_codes_never_check_anyone_in_at_the_service(
    app: Flask, world: World, open_activities: dict[str, Any]
) -> None:
    refusals: dict[str, int] = {}
    with app.app_context():
        session = db.session
        user = session.get(User, world.villager_x)
        assert user is not None
        actor = Actor.of(session, user)
        codec = qr_codec()

        @settings(
            max_examples=2000,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        @given(token=forgeries(open_activities["genuine"], open_activities["ids"]))
        def attempt(token: str) -> None:
            try:
                checkin.check_in(
                    session, actor, codec, token, Scan(), Clock(DURING, SHANGHAI, clock_skew())
                )
            except DomainError as exc:
                refusals[exc.code] = refusals.get(exc.code, 0) + 1
                assert exc.code in FORGERIES, (token, exc.code)
            else:
                raise AssertionError(f"a forged code checked someone in: {token!r}")
            finally:
                session.rollback()

        attempt()
        # the set-up was able to check in: a genuine code does
        for token in open_activities["genuine"]:
            result = checkin.check_in(
                session,
                actor,
                codec,
                token,
                Scan(device_id=f"control-{token[:4]}"),
                Clock(DURING, SHANGHAI, clock_skew()),
            )
            assert result.status in ("in_notice", "no_points")
        session.rollback()
    assert sum(refusals.values()) >= 1500, refusals
    assert count(app, CheckIn) == 0 and count(app, Claim) == 0


def test_forged_codes_never_check_anyone_in_over_http(
    app: Flask, client: FlaskClient, world: World, open_activities: dict[str, Any]
) -> None:
    with frozen(DURING):
        headers = world.headers("villager_x")

        @settings(
            max_examples=300,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=[
                HealthCheck.too_slow,
                HealthCheck.filter_too_much,
                HealthCheck.function_scoped_fixture,
            ],
        )
        @given(token=forgeries(open_activities["genuine"], open_activities["ids"]))
        def attempt(token: str) -> None:
            response = client.post(f"{API}/checkins", json={"token": token}, headers=headers)
            assert response.status_code in (400, 422), (token, response.get_json())
            code = error_code(response)
            assert code in (*FORGERIES, "validation_error", "invalid_text"), (token, code)

        attempt()
        genuine = client.post(
            f"{API}/checkins", headers=headers, json={"token": open_activities["genuine"][0]}
        )
    assert genuine.status_code == 201
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(CheckIn)) == 1
        ids = open_activities["ids"]
        assert [db.session.get(Activity, i).places_taken for i in ids] == [0, 0]  # type: ignore[union-attr]
