"""Reward pictures (商品图片) uploaded to the service: checked like proof photos, re-encoded
without EXIF, at most 1024 px, served without login with an ETag and a long cache."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from backend.extensions import db
from points.models import Reward
from tests.api.test_upload_bombs import bomb_png
from tests.api.test_uploads import jpeg_with_gps
from tests.factories import World, add_reward
from tests.support.reads import error_code, get_read, link_path

pytestmark = pytest.mark.usefixtures("empty_upload_dir")

API = "/api/v1"


def _post(client: FlaskClient, reward_id: int, headers: dict[str, str], data: bytes) -> Any:
    boundary, body = encode_multipart({"file": FileStorage(BytesIO(data), filename="x.jpg")})
    return client.post(
        f"{API}/rewards/{reward_id}/image",
        headers=headers,
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )


def _stored(app: Flask) -> list[Path]:
    directory = Path(app.config["UPLOAD_DIR"]) / "rewards"
    return sorted(directory.iterdir()) if directory.exists() else []


def test_a_clerk_uploads_a_picture_shown_to_villagers_without_login(
    app: Flask, client: FlaskClient, world: World
) -> None:
    soap = add_reward(app, world.shop_a, "香皂", 5, 10)
    response = _post(client, soap, world.headers("clerk_a"), jpeg_with_gps((2000, 1500)))
    assert response.status_code == 200, response.get_json()
    url = response.get_json()["image_url"]
    assert url.startswith(f"https://jf.example.gov.cn{API}/rewards/{soap}/image?v=")
    shelf = client.get(
        f"{API}/shops/{world.shop_a}/rewards", headers=world.headers("villager_x")
    ).get_json()
    assert shelf["items"][0]["image_url"] == url

    picture = get_read(client, link_path(url))  # no Authorization: <image> sends none
    assert picture.status_code == 200 and picture.mimetype == "image/jpeg"
    image = Image.open(BytesIO(picture.data))
    assert image.size == (1024, 768)
    assert not image.getexif() and "exif" not in image.info  # the GPS position is gone
    assert picture.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    etag = picture.headers["ETag"]
    assert get_read(client, link_path(url), headers={"If-None-Match": etag}).status_code == 304
    # Without the current version it may be cached a little only.
    unversioned = get_read(client, f"{API}/rewards/{soap}/image")
    assert unversioned.headers["Cache-Control"] == "public, max-age=300"


def test_a_new_picture_replaces_the_old_one_and_its_version(
    app: Flask, client: FlaskClient, world: World
) -> None:
    soap = add_reward(app, world.shop_a, "香皂", 5, 10)
    first = _post(client, soap, world.headers("clerk_a"), jpeg_with_gps()).get_json()
    second = _post(client, soap, world.headers("tadmin1"), jpeg_with_gps()).get_json()
    assert first["image_url"] != second["image_url"]
    # The replaced file is kept on disk (a backup running meanwhile may name it), but no
    # longer served: only the reward's current picture is.
    assert len(_stored(app)) == 2
    cleared = client.patch(
        f"{API}/rewards/{soap}", headers=world.headers("clerk_a"), json={"image_url": None}
    )
    assert cleared.get_json()["image_url"] is None
    assert len(_stored(app)) == 2
    gone = get_read(client, f"{API}/rewards/{soap}/image")
    assert gone.status_code == 404 and error_code(gone) == "no_image"


@pytest.mark.parametrize(
    "data, code",
    [
        (b"<script>alert(1)</script>", "not_a_photo"),
        (b"GIF89a" + bytes(100), "not_a_photo"),
        (None, "image_too_large"),  # the decompression bomb of test_upload_bombs
    ],
)
def test_pictures_are_checked_like_proof_photos(
    app: Flask, client: FlaskClient, world: World, data: bytes | None, code: str
) -> None:
    soap = add_reward(app, world.shop_a, "香皂", 5, 10)
    response = _post(client, soap, world.headers("clerk_a"), data or bomb_png())
    assert response.status_code == 422 and error_code(response) == code
    assert _stored(app) == []
    with app.app_context():
        assert db.session.get(Reward, soap).image_name is None  # type: ignore[union-attr]


def test_only_the_shops_staff_may_set_a_picture(
    app: Flask, client: FlaskClient, world: World
) -> None:
    soap = add_reward(app, world.shop_a, "香皂", 5, 10)
    assert _post(client, soap, world.headers("villager_x"), jpeg_with_gps()).status_code == 403
    assert _post(client, soap, world.headers("cadre_a"), jpeg_with_gps()).status_code == 403
    assert _post(client, soap, world.headers("tadmin2"), jpeg_with_gps()).status_code == 404
    assert _post(client, soap, {}, jpeg_with_gps()).status_code == 401
    empty = client.post(
        f"{API}/rewards/{soap}/image",
        headers=world.headers("clerk_a"),
        data={},
        content_type="multipart/form-data",
    )
    assert empty.status_code == 400 and error_code(empty) == "file_required"
    assert _stored(app) == []
