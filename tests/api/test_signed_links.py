"""Signed image links for the mini-program's <image>, which sends no Authorization header:
proof photos (and their smaller copies), member cards and pickup QR codes."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from tests.factories import World, add_reward, fund, order, upload_photo
from tests.support.clock import frozen, local
from tests.support.reads import error_code, get_read, link_path

pytestmark = pytest.mark.usefixtures("empty_upload_dir")

API = "/api/v1"


def _with(url: str, **changes: Any) -> str:
    parts = urlsplit(link_path(url))
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update({k: str(v) for k, v in changes.items()})
    return f"{parts.path}?{urlencode(query)}"


def _photo(client: FlaskClient, headers: dict[str, str], size: tuple[int, int]) -> int:
    out = BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(out, "JPEG")
    boundary, body = encode_multipart(
        {"file": FileStorage(BytesIO(out.getvalue()), filename="proof.jpg")}
    )
    response = client.post(
        f"{API}/uploads",
        headers=headers,
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


# ---- proof photos ---------------------------------------------------------------------------


@pytest.mark.any_server_zone
def test_a_signed_photo_link_works_without_a_token_until_it_expires(
    client: FlaskClient, world: World
) -> None:
    with frozen(local(2026, 5, 10, 9)):
        photo = upload_photo(client, world.headers("villager_x"))
        link = get_read(
            client, f"{API}/uploads/{photo}/link", headers=world.headers("villager_x")
        ).get_json()
        assert link["expires_at"].startswith("2026-05-10T01:10:00")  # 600 s, in UTC
        response = get_read(client, link_path(link["url"]))
        assert response.status_code == 200 and response.mimetype == "image/jpeg"
        assert response.headers["Cache-Control"] == "private, max-age=600"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        # Without the signature, a token is needed as before.
        assert get_read(client, f"{API}/uploads/{photo}").status_code == 401
    with frozen(local(2026, 5, 10, 9, 10)):
        expired = get_read(client, link_path(link["url"]))
    assert expired.status_code == 403 and error_code(expired) == "link_expired"


def test_a_tampered_link_or_another_photos_id_is_refused(client: FlaskClient, world: World) -> None:
    headers = world.headers("villager_x")
    mine, other = upload_photo(client, headers), upload_photo(client, headers)
    link = get_read(client, f"{API}/uploads/{mine}/link", headers=headers).get_json()["url"]
    sig = parse_qs(urlsplit(link).query)["sig"][0]
    exp = int(parse_qs(urlsplit(link).query)["exp"][0])
    refusals = [
        f"{API}/uploads/{other}?exp={exp}&sig={sig}",  # same signature, another photo
        _with(link, exp=exp + 3600),  # a later expiry
        _with(link, sig=sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB")),
        _with(link, w=320),  # a size the link was not made for
        _with(link, exp="soon"),
        _with(link, exp="²"),  # a digit to isdigit(), not to int()
        _with(link, sig="男性"),  # not ASCII: compared as bytes, never a 500
        f"{API}/uploads/{mine}?exp={exp}",
    ]
    for url in refusals:
        response = get_read(client, url)
        assert response.status_code == 403, url
        assert error_code(response) == "link_invalid", url


def test_a_link_is_handed_only_to_whoever_may_see_the_photo(
    client: FlaskClient, world: World
) -> None:
    photo = upload_photo(client, world.headers("villager_x"))
    for who in ("cadre_a", "tadmin1"):
        assert (
            get_read(client, f"{API}/uploads/{photo}/link", headers=world.headers(who)).status_code
            == 200
        ), who
    for who in ("villager_y", "cadre_b", "clerk_a", "tadmin2"):
        assert (
            get_read(client, f"{API}/uploads/{photo}/link", headers=world.headers(who)).status_code
            == 404
        ), who
    assert get_read(client, f"{API}/uploads/{photo}/link").status_code == 401
    # A signed link never makes another one.
    link = get_read(
        client, f"{API}/uploads/{photo}/link", headers=world.headers("villager_x")
    ).get_json()["url"]
    query = urlsplit(link).query
    assert get_read(client, f"{API}/uploads/{photo}/link?{query}").status_code == 401


def test_the_upload_answer_carries_a_signed_link(client: FlaskClient, world: World) -> None:
    boundary, body = encode_multipart({"file": FileStorage(BytesIO(_jpeg()), filename="a.jpg")})
    response = client.post(
        f"{API}/uploads",
        headers=world.headers("villager_x"),
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )
    assert get_read(client, link_path(response.get_json()["signed_url"])).status_code == 200


def _jpeg() -> bytes:
    out = BytesIO()
    Image.new("RGB", (40, 30), (1, 2, 3)).save(out, "JPEG")
    return out.getvalue()


# ---- smaller copies (?w=) -------------------------------------------------------------------


def test_smaller_copies_of_a_photo_are_made_once_and_tagged(
    app: Flask, client: FlaskClient, world: World
) -> None:
    headers = world.headers("villager_x")
    photo = _photo(client, headers, (1600, 1200))
    full = get_read(client, f"{API}/uploads/{photo}", headers=headers)
    small = get_read(client, f"{API}/uploads/{photo}?w=320", headers=headers)
    assert small.status_code == 200 and small.mimetype == "image/jpeg"
    assert len(small.data) < len(full.data)
    assert Image.open(BytesIO(small.data)).size == (320, 240)
    assert small.headers["ETag"] != full.headers["ETag"]
    assert small.headers["Cache-Control"] == "private, max-age=3600"
    # Kept on disk beside the photo, so the next request reads it.
    copies = [p.name for p in Path(app.config["UPLOAD_DIR"]).iterdir() if ".w320." in p.name]
    assert len(copies) == 1 and not any(".part" in p for p in copies)
    again = get_read(
        client,
        f"{API}/uploads/{photo}?w=320",
        headers={**headers, "If-None-Match": small.headers["ETag"]},
    )
    assert again.status_code == 304 and again.data == b""
    webp = get_read(
        client, f"{API}/uploads/{photo}?w=160", headers={**headers, "Accept": "image/webp,image/*"}
    )
    assert webp.mimetype == "image/webp"
    assert Image.open(BytesIO(webp.data)).format == "WEBP"
    assert "Accept" in webp.headers["Vary"]
    anything = get_read(
        client, f"{API}/uploads/{photo}?w=160", headers={**headers, "Accept": "*/*"}
    )
    assert anything.mimetype == "image/jpeg"  # */* is no promise to decode WebP


def test_a_copy_is_never_wider_than_the_photo(client: FlaskClient, world: World) -> None:
    headers = world.headers("villager_x")
    photo = _photo(client, headers, (400, 900))  # tall: its height is not what counts
    assert Image.open(
        BytesIO(get_read(client, f"{API}/uploads/{photo}?w=320", headers=headers).data)
    ).size == (320, 720)
    assert Image.open(
        BytesIO(get_read(client, f"{API}/uploads/{photo}?w=1280", headers=headers).data)
    ).size == (400, 900)


def test_other_widths_are_refused(client: FlaskClient, world: World) -> None:
    headers = world.headers("villager_x")
    photo = upload_photo(client, headers)
    for width in ("100", "321", "0", "-160", "abc", "99999999"):
        response = get_read(client, f"{API}/uploads/{photo}?w={width}", headers=headers)
        assert response.status_code == 422, width
        response = get_read(client, f"{API}/uploads/{photo}/link?w={width}", headers=headers)
        assert response.status_code == 422, width


def test_a_signed_link_names_its_size(client: FlaskClient, world: World) -> None:
    headers = world.headers("villager_x")
    photo = _photo(client, headers, (800, 600))
    link = get_read(client, f"{API}/uploads/{photo}/link?w=160", headers=headers).get_json()["url"]
    assert parse_qs(urlsplit(link).query)["w"] == ["160"]
    response = get_read(client, link_path(link))
    assert response.status_code == 200
    assert Image.open(BytesIO(response.data)).size == (160, 120)
    for other in ({"w": 640}, {"w": ""}):
        changed = _with(link, **other)
        assert get_read(client, changed).status_code in (403, 422), other


# ---- member cards and pickup codes ----------------------------------------------------------


def test_a_member_card_by_a_signed_link(client: FlaskClient, world: World) -> None:
    headers = world.headers("villager_x")
    link = get_read(
        client, f"{API}/villagers/{world.spouse_x}/card-link", headers=headers
    ).get_json()["url"]
    response = get_read(client, link_path(link))
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"].startswith("private, max-age=")
    query = urlsplit(link).query
    other = get_read(client, f"{API}/villagers/{world.head_x}/card.png?{query}")
    assert other.status_code == 403 and error_code(other) == "link_invalid"
    # Only those who may see the card get a link to it.
    assert (
        get_read(client, f"{API}/villagers/{world.head_y}/card-link", headers=headers).status_code
        == 404
    )
    assert (
        get_read(
            client, f"{API}/villagers/{world.head_x}/card-link", headers=world.headers("clerk_a")
        ).status_code
        == 404
    )


def test_a_pickup_code_by_a_signed_link_while_the_order_is_open(
    app: Flask, client: FlaskClient, world: World
) -> None:
    rice = add_reward(app, world.shop_a, "大米", 10, 5)
    fund(app, world.household_x, 100)
    placed = order(client, world.headers("villager_x"), world.shop_a, [(rice, 1)]).get_json()
    assert "id" in placed, placed
    link = placed["pickup_image_url"]
    response = get_read(client, link_path(link))
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    # The clerk's view of the order shows neither the code nor its picture.
    seen = get_read(
        client, f"{API}/redemptions/{placed['id']}", headers=world.headers("clerk_a")
    ).get_json()
    assert seen["pickup_image_url"] is None and seen["pickup_code"] is None
    cancelled = client.post(
        f"{API}/redemptions/{placed['id']}/cancel", headers=world.headers("villager_x"), json={}
    )
    assert cancelled.status_code == 200
    gone = get_read(client, link_path(link))
    assert gone.status_code == 404 and error_code(gone) == "no_pickup_code"


def test_a_card_link_made_before_a_reissue_does_not_show_the_new_card(
    client: FlaskClient, world: World
) -> None:
    link = get_read(
        client, f"{API}/villagers/{world.spouse_x}/card-link", headers=world.headers("villager_x")
    ).get_json()["url"]
    assert get_read(client, link_path(link)).status_code == 200
    reissued = client.post(
        f"{API}/villagers/{world.spouse_x}/card/reissue", headers=world.headers("cadre_a")
    )
    assert reissued.status_code == 201, reissued.get_json()
    # The card lost was forwarded with its link: the link does not open the new card.
    stale = get_read(client, link_path(link))
    assert stale.status_code == 403 and error_code(stale) == "link_invalid"
    fresh = get_read(
        client, f"{API}/villagers/{world.spouse_x}/card-link", headers=world.headers("villager_x")
    ).get_json()["url"]
    assert get_read(client, link_path(fresh)).status_code == 200
