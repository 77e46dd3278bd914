"""Photo uploads: checked by content, re-encoded without EXIF, stored by random name, and
seen only by the uploader and the staff of the uploader's village."""

from __future__ import annotations

import hashlib
import os
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image, ImageCms
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from backend.extensions import db
from points import uploads
from points.errors import DomainError
from points.models import Upload, User
from points.scope import Actor
from tests.factories import World
from tests.support.reads import error_code

pytestmark = pytest.mark.usefixtures("empty_upload_dir")

GPS_IFD = 0x8825
MAKE, ORIENTATION = 0x010F, 0x0112


def jpeg_with_gps(size: tuple[int, int] = (40, 30), orientation: int | None = None) -> bytes:
    exif = Image.Exif()
    exif[MAKE] = "VillagePhone"
    if orientation is not None:
        exif[ORIENTATION] = orientation
    gps = exif.get_ifd(GPS_IFD)
    gps.update({1: "N", 2: (39.0, 54.0, 27.0), 3: "E", 4: (116.0, 23.0, 50.0)})
    out = BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(out, "JPEG", exif=exif)
    return out.getvalue()


def png_bytes(size: tuple[int, int] = (30, 20), mode: str = "RGB", color: Any = "blue") -> bytes:
    out = BytesIO()
    Image.new(mode, size, color).save(out, "PNG")
    return out.getvalue()


def post_photo(
    client: FlaskClient, headers: dict[str, str], data: bytes, filename: str = "photo.jpg"
) -> Any:
    # Encoded here in memory: the test client spools bodies over 500 kB to a temporary file
    # it never closes.
    boundary, body = encode_multipart({"file": FileStorage(BytesIO(data), filename=filename)})
    return client.post(
        "/api/v1/uploads",
        headers=headers,
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )


def get_photo(client: FlaskClient, upload_id: int, headers: dict[str, str]) -> Any:
    response = client.get(f"/api/v1/uploads/{upload_id}", headers=headers)
    response.get_data()  # read the file, then let go of it
    response.close()
    return response


def upload_dir(app: Flask) -> Path:
    return Path(app.config["UPLOAD_DIR"])


def stored_files(app: Flask) -> list[Path]:
    directory = upload_dir(app)
    return sorted(directory.iterdir()) if directory.exists() else []


def upload_row(app: Flask, upload_id: int) -> dict[str, Any]:
    with app.app_context():
        row = db.session.get(Upload, upload_id)
        assert row is not None
        out = {c.name: getattr(row, c.name) for c in Upload.__table__.columns}
        db.session.rollback()
    return out


def upload_count(app: Flask) -> int:
    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(Upload))
        db.session.rollback()
    return count or 0


def test_fixture_really_carries_exif_and_gps() -> None:
    data = jpeg_with_gps()
    assert b"Exif" in data
    exif = Image.open(BytesIO(data)).getexif()
    assert exif[MAKE] == "VillagePhone"
    assert exif.get_ifd(GPS_IFD)[2] == (39.0, 54.0, 27.0)


def test_jpeg_is_stored_without_any_exif(app: Flask, client: FlaskClient, world: World) -> None:
    response = post_photo(client, world.headers("villager_x"), jpeg_with_gps())
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["url"] == f"/api/v1/uploads/{body['id']}"
    assert (body["width"], body["height"]) == (40, 30)

    row = upload_row(app, body["id"])
    path = upload_dir(app) / row["stored_name"]
    stored = path.read_bytes()
    assert b"Exif" not in stored
    assert b"VillagePhone" not in stored
    with Image.open(path) as image:
        assert image.format == "JPEG"
        assert len(image.getexif()) == 0
        assert "exif" not in image.info
    assert row["size"] == body["size"] == len(stored)
    assert row["sha256"] == hashlib.sha256(stored).hexdigest()
    assert row["content_type"] == "image/jpeg"
    assert row["village_id"] == world.village_a
    assert row["user_id"] == world.villager_x


def test_orientation_is_applied(app: Flask, client: FlaskClient, world: World) -> None:
    response = post_photo(
        client, world.headers("villager_x"), jpeg_with_gps(size=(20, 10), orientation=6)
    )
    assert response.status_code == 201
    body = response.get_json()
    assert (body["width"], body["height"]) == (10, 20)
    row = upload_row(app, body["id"])
    with Image.open(upload_dir(app) / row["stored_name"]) as image:
        assert image.size == (10, 20)
        assert ORIENTATION not in image.getexif()


def test_png_with_transparency_is_stored_as_jpeg_on_white(
    app: Flask, client: FlaskClient, world: World
) -> None:
    data = png_bytes(mode="RGBA", color=(0, 0, 0, 0))
    response = post_photo(client, world.headers("villager_x"), data, filename="photo.png")
    assert response.status_code == 201
    row = upload_row(app, response.get_json()["id"])
    assert row["stored_name"].endswith(".jpg")
    with Image.open(upload_dir(app) / row["stored_name"]) as image:
        assert image.format == "JPEG"
        assert image.mode == "RGB"
        assert all(channel > 245 for channel in image.getpixel((5, 5)))


def test_colour_profile_is_not_stored(app: Flask, client: FlaskClient, world: World) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    out = BytesIO()
    Image.new("RGB", (16, 16), (10, 120, 200)).save(out, "JPEG", icc_profile=icc)
    assert Image.open(BytesIO(out.getvalue())).info.get("icc_profile") == icc
    response = post_photo(client, world.headers("villager_x"), out.getvalue())
    assert response.status_code == 201
    row = upload_row(app, response.get_json()["id"])
    with Image.open(upload_dir(app) / row["stored_name"]) as image:
        assert "icc_profile" not in image.info
        red, green, blue = image.getpixel((8, 8))
        assert abs(red - 10) < 8 and abs(green - 120) < 8 and abs(blue - 200) < 8


def test_large_photo_is_scaled_down(app: Flask, client: FlaskClient, world: World) -> None:
    out = BytesIO()
    Image.new("RGB", (3000, 1500), "green").save(out, "JPEG")
    response = post_photo(client, world.headers("villager_x"), out.getvalue())
    assert response.status_code == 201
    body = response.get_json()
    assert (body["width"], body["height"]) == (2048, 1024)


def test_webp_is_accepted(client: FlaskClient, world: World) -> None:
    out = BytesIO()
    Image.new("RGB", (16, 16), "yellow").save(out, "WEBP")
    response = post_photo(client, world.headers("villager_x"), out.getvalue(), "a.webp")
    assert response.status_code == 201


@pytest.mark.parametrize(
    "data",
    [
        "这不是照片，只是改了名字的文本文件".encode(),
        b"<script>alert(1)</script>",
        b"GIF89a" + bytes(50),
    ],
)
def test_not_a_photo_is_refused_and_nothing_stored(
    app: Flask, client: FlaskClient, world: World, data: bytes
) -> None:
    response = post_photo(client, world.headers("villager_x"), data, filename="photo.jpg")
    assert response.status_code == 422
    assert error_code(response) == "not_a_photo"
    assert upload_count(app) == 0
    assert stored_files(app) == []


def test_other_image_formats_and_truncated_photos_are_refused(
    app: Flask, client: FlaskClient, world: World
) -> None:
    gif = BytesIO()
    Image.new("RGB", (10, 10), "red").save(gif, "GIF")
    truncated = jpeg_with_gps(size=(200, 200))[:-400]
    for data in (gif.getvalue(), truncated):
        response = post_photo(client, world.headers("villager_x"), data)
        assert response.status_code == 422, response.get_json()
        assert error_code(response) == "not_a_photo"
    assert upload_count(app) == 0
    assert stored_files(app) == []


def test_over_five_megabytes_is_refused(app: Flask, client: FlaskClient, world: World) -> None:
    response = post_photo(client, world.headers("villager_x"), os.urandom(5 * 1024 * 1024 + 1))
    assert response.status_code == 413
    assert error_code(response) == "file_too_large"
    assert "5 MB" in response.get_json()["error"]["message"]
    assert upload_count(app) == 0
    assert stored_files(app) == []


def test_decompression_bomb_is_refused(app: Flask, client: FlaskClient, world: World) -> None:
    # A one-bit PNG of ~100 million pixels compresses to a few kilobytes.
    out = BytesIO()
    Image.new("1", (10_000, 10_000), 1).save(out, "PNG")
    assert len(out.getvalue()) < 100_000
    response = post_photo(client, world.headers("villager_x"), out.getvalue())
    assert response.status_code == 422
    assert error_code(response) == "image_too_large"
    assert stored_files(app) == []


def test_missing_file_field(client: FlaskClient, world: World) -> None:
    headers = world.headers("villager_x")
    response = client.post(
        "/api/v1/uploads", headers=headers, data={"other": "x"}, content_type="multipart/form-data"
    )
    assert response.status_code == 400
    assert error_code(response) == "file_required"
    response = post_photo(client, headers, b"")
    assert error_code(response) == "file_required"


def test_stored_name_is_random_not_the_clients(
    app: Flask, client: FlaskClient, world: World
) -> None:
    headers = world.headers("villager_x")
    data = jpeg_with_gps()
    before = {p.name for p in stored_files(app)}  # the session's folder keeps other tests' files
    first = post_photo(client, headers, data, filename="../../etc/passwd.jpg").get_json()
    second = post_photo(client, headers, data, filename="../../etc/passwd.jpg").get_json()
    names = [upload_row(app, body["id"])["stored_name"] for body in (first, second)]
    assert names[0] != names[1]
    for name in names:
        assert "passwd" not in name
        stem, suffix = name.split(".")
        assert suffix == "jpg" and len(stem) == 32
        int(stem, 16)
    # no temp files left behind
    assert sorted(p.name for p in stored_files(app) if p.name not in before) == sorted(names)


def test_uploader_and_village_staff_see_it_others_do_not(
    app: Flask, client: FlaskClient, world: World
) -> None:
    data = jpeg_with_gps()
    upload_id = post_photo(client, world.headers("villager_x"), data).get_json()["id"]
    stored = (upload_dir(app) / upload_row(app, upload_id)["stored_name"]).read_bytes()
    for name in ("villager_x", "cadre_a", "tadmin1"):
        response = get_photo(client, upload_id, world.headers(name))
        assert response.status_code == 200, name
        assert response.mimetype == "image/jpeg"
        assert response.data == stored
        assert response.headers["Cache-Control"] == "private, max-age=3600"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    for name in ("villager_y", "cadre_b", "tadmin2"):
        response = get_photo(client, upload_id, world.headers(name))
        assert response.status_code == 404, name
        assert error_code(response) == "not_found"
    assert get_photo(client, upload_id, {}).status_code == 401
    response = get_photo(client, upload_id + 1, world.headers("cadre_a"))
    assert response.status_code == 404


def test_cadre_upload_belongs_to_their_village(
    app: Flask, client: FlaskClient, world: World
) -> None:
    upload_id = post_photo(client, world.headers("cadre_a"), png_bytes()).get_json()["id"]
    assert upload_row(app, upload_id)["village_id"] == world.village_a
    assert get_photo(client, upload_id, world.headers("cadre_a")).status_code == 200
    assert get_photo(client, upload_id, world.headers("cadre_b")).status_code == 404
    # A villager sees only their own uploads, not even their own village cadre's.
    assert get_photo(client, upload_id, world.headers("villager_x")).status_code == 404


def test_unbound_villager_may_not_upload(app: Flask, client: FlaskClient, world: World) -> None:
    response = post_photo(client, world.headers("unbound"), jpeg_with_gps())
    assert response.status_code == 403
    assert error_code(response) == "not_bound"
    assert upload_count(app) == 0
    assert stored_files(app) == []


def test_upload_needs_a_login(client: FlaskClient, world: World) -> None:
    response = post_photo(client, {}, jpeg_with_gps())
    assert response.status_code == 401


def test_uploads_are_rate_limited_per_user(client: FlaskClient, world: World) -> None:
    headers_x, headers_cadre = world.headers("villager_x"), world.headers("cadre_a")
    data = png_bytes(size=(2, 2))
    for _ in range(60):
        assert post_photo(client, headers_x, data).status_code == 201
    response = post_photo(client, headers_x, data)
    assert response.status_code == 429
    assert error_code(response) == "rate_limited"
    assert post_photo(client, headers_cadre, data).status_code == 201


def test_openapi_documents_the_multipart_body(client: FlaskClient) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    post = spec["paths"]["/api/v1/uploads"]["post"]
    schema = post["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert schema["properties"]["file"]["format"] == "binary"
    assert "201" in post["responses"]
    get = spec["paths"]["/api/v1/uploads/{upload_id}"]["get"]
    assert "image/jpeg" in get["responses"]["200"]["content"]


# ---- the service without HTTP ----------------------------------------------------------------


def _actor(app: Flask, user_id: int) -> Actor:
    with app.app_context():
        actor = Actor.of(db.session, db.session.get(User, user_id))
        db.session.rollback()
    return actor


def test_service_applies_its_size_limit_before_decoding(
    app: Flask, world: World, tmp_path: Path
) -> None:
    actor = _actor(app, world.villager_x)
    with app.app_context():
        with pytest.raises(DomainError) as refused:
            uploads.store_photo(db.session, actor, b"x" * 101, tmp_path / "u", max_bytes=100)
        db.session.rollback()
    assert refused.value.status == 413
    assert refused.value.code == "file_too_large"
    assert not (tmp_path / "u").exists()


def test_service_converts_sixteen_bit_greyscale(app: Flask, world: World, tmp_path: Path) -> None:
    out = BytesIO()
    Image.new("I;16", (8, 8), 32768).save(out, "PNG")
    actor = _actor(app, world.villager_x)
    with app.app_context():
        upload = uploads.store_photo(db.session, actor, out.getvalue(), tmp_path)
        _, path = uploads.open_photo(db.session, actor, upload.id, tmp_path)
        db.session.rollback()
    with Image.open(path) as image:
        assert 120 < image.getpixel((4, 4))[0] < 136  # mid grey, not clipped to white
