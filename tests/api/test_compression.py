"""Fewer bytes on a village network: JSON answers gzipped when the client accepts it, an ETag
on every JSON answer to a GET (304 when the client holds it), and the printed board's PNG
tagged and cached by whether its month is closed."""

from __future__ import annotations

import gzip
import json
import shutil
from io import BytesIO
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from tests.factories import World, add_reward, earn, install_default_catalog
from tests.support.clock import frozen, local
from tests.support.reads import catalog_id

API = "/api/v1"
GZIP = {"Accept-Encoding": "gzip, deflate, br"}


def _rules(client: FlaskClient, world: World, **headers: str) -> Any:
    return client.get(
        f"{API}/villages/{world.village_a}/rule-items?per_page=100",
        headers={**world.headers("villager_x"), **headers},
    )


def test_a_long_json_answer_is_gzipped_for_a_client_that_accepts_it(
    app: Flask, client: FlaskClient, world: World
) -> None:
    install_default_catalog(app, world.township_1)
    plain = _rules(client, world)
    packed = _rules(client, world, **GZIP)
    assert plain.status_code == packed.status_code == 200
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in packed.headers["Vary"]
    assert "Accept-Encoding" in plain.headers["Vary"]  # a cache must not mix the two
    raw = plain.get_data()
    assert len(raw) > 15_000, len(raw)  # the whole reference catalog: about 20 KB
    assert len(packed.get_data()) * 5 < len(raw), (len(packed.get_data()), len(raw))
    assert json.loads(gzip.decompress(packed.get_data())) == json.loads(raw)
    assert int(packed.headers["Content-Length"]) == len(packed.get_data())
    # The same JSON: the same (weak) ETag for either form.
    assert packed.headers["ETag"] == plain.headers["ETag"]
    assert plain.headers["ETag"].startswith('W/"')
    refused = _rules(client, world, **{"Accept-Encoding": "gzip;q=0, identity"})
    assert "Content-Encoding" not in refused.headers


def test_small_answers_and_files_are_not_gzipped(
    app: Flask, client: FlaskClient, world: World
) -> None:
    soap = add_reward(app, world.shop_a, "香皂", 5, 10)
    small = client.get(f"{API}/rewards/{soap}", headers={**world.headers("clerk_a"), **GZIP})
    assert small.status_code == 200 and "Content-Encoding" not in small.headers
    image = BytesIO()
    Image.new("RGB", (40, 30), (9, 9, 9)).save(image, "JPEG")
    boundary, body = encode_multipart(
        {"file": FileStorage(BytesIO(image.getvalue()), filename="a.jpg")}
    )
    headers = world.headers("villager_x")
    photo = client.post(
        f"{API}/uploads",
        headers=headers,
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    ).get_json()
    response = client.get(f"{API}/uploads/{photo['id']}", headers={**headers, **GZIP})
    data = response.get_data()
    response.close()
    assert "Content-Encoding" not in response.headers
    assert data[:2] == b"\xff\xd8"  # the JPEG itself
    shutil.rmtree(app.config["UPLOAD_DIR"], ignore_errors=True)


def test_lists_answer_304_while_unchanged(app: Flask, client: FlaskClient, world: World) -> None:
    install_default_catalog(app, world.township_1)
    add_reward(app, world.shop_a, "香皂", 5, 10)
    catalog = catalog_id(app, world.township_1)
    villager = world.headers("villager_x")
    for path in (
        f"{API}/villages/{world.village_a}/rule-items",
        f"{API}/rule-catalogs/{catalog}/items",
        f"{API}/rule-catalogs",
        f"{API}/shops/{world.shop_a}/rewards",
    ):
        first = client.get(path, headers=villager)
        assert first.status_code == 200, path
        etag = first.headers["ETag"]
        assert first.headers["Cache-Control"] == "private, no-cache", path
        again = client.get(path, headers={**villager, "If-None-Match": etag, **GZIP})
        assert again.status_code == 304 and again.get_data() == b"", path
        assert again.headers["ETag"] == etag
        assert "Content-Encoding" not in again.headers
    # A change makes a new ETag: the shelf gets another reward.
    path = f"{API}/shops/{world.shop_a}/rewards"
    etag = client.get(path, headers=villager).headers["ETag"]
    add_reward(app, world.shop_a, "大米", 50, 10)
    changed = client.get(path, headers={**villager, "If-None-Match": etag})
    assert changed.status_code == 200 and len(changed.get_json()["items"]) == 2


def test_errors_and_writes_carry_no_etag(client: FlaskClient, world: World) -> None:
    missing = client.get(f"{API}/rewards/999999", headers=world.headers("clerk_a"))
    assert missing.status_code == 404 and "ETag" not in missing.headers
    written = client.post(
        f"{API}/shops/{world.shop_a}/rewards",
        headers=world.headers("clerk_a"),
        json={"name": "皂", "points": 1},
    )
    assert written.status_code == 201 and "ETag" not in written.headers


# ---- the printed board ----------------------------------------------------------------------


def _board_png(client: FlaskClient, world: World, period: str, **headers: str) -> Any:
    return client.get(
        f"{API}/villages/{world.village_a}/board.png",
        query_string={"period": period},
        headers={**world.headers("cadre_a"), **headers},
    )


def test_the_running_months_board_is_revalidated_and_a_closed_one_kept_for_good(
    app: Flask, client: FlaskClient, world: World
) -> None:
    earn(app, world.household_x, 5, local(2026, 3, 5))
    with frozen(local(2026, 3, 20)):
        running = _board_png(client, world, "2026-03")
        assert running.status_code == 200
        assert running.headers["Cache-Control"] == "private, no-cache"
        etag = running.headers["ETag"]
        same = _board_png(client, world, "2026-03", **{"If-None-Match": etag})
        assert same.status_code == 304 and same.get_data() == b""
        earn(app, world.household_x, 3, local(2026, 3, 20))  # the board moves
        moved = _board_png(client, world, "2026-03", **{"If-None-Match": etag})
        assert moved.status_code == 200 and moved.headers["ETag"] != etag
    with frozen(local(2026, 4, 2)):
        closed = client.post(
            f"{API}/villages/{world.village_a}/board/close",
            json={"period": "2026-03", "force": True},
            headers=world.headers("cadre_a"),
        )
        assert closed.status_code == 201, closed.get_json()
        published = _board_png(client, world, "2026-03")
        assert published.headers["Cache-Control"] == "private, max-age=86400"
        kept = _board_png(client, world, "2026-03", **{"If-None-Match": published.headers["ETag"]})
        assert kept.status_code == 304
        # The phone is given a versioned address, which may be kept for good.
        png_url = _board_json(client, world, "2026-03")["png_url"]
        assert png_url.endswith(f"&v={published.headers['ETag'].strip(chr(34))}")
        versioned = client.get(png_url, headers=world.headers("villager_x"))
        assert versioned.status_code == 200
        assert versioned.headers["Cache-Control"] == "private, max-age=31536000, immutable"
        assert versioned.get_data() == published.get_data()
    # A closed month's picture carries the day it was published, not the day it is shown:
    # the next day it is the same picture.
    with frozen(local(2026, 4, 3)):
        next_day = _board_png(
            client, world, "2026-03", **{"If-None-Match": published.headers["ETag"]}
        )
        assert next_day.status_code == 304
        assert _board_json(client, world, "2026-03")["png_url"] == png_url
        # A household withdrawing its name changes the posted board: a new ETag and a new
        # address, so no phone keeps showing the name under the old one.
        opted = client.put(
            f"{API}/me/board-privacy",
            json={"public_board_opt_out": True},
            headers=world.headers("villager_x"),
        )
        assert opted.status_code == 200
        withdrawn = _board_png(
            client, world, "2026-03", **{"If-None-Match": published.headers["ETag"]}
        )
        assert withdrawn.status_code == 200
        assert _board_json(client, world, "2026-03")["png_url"] != png_url
        stale = client.get(png_url, headers=world.headers("villager_x"))
        assert stale.headers["Cache-Control"] == "private, max-age=86400"  # not for good


def _board_json(client: FlaskClient, world: World, period: str) -> dict[str, Any]:
    response = client.get(
        f"{API}/villages/{world.village_a}/board?period={period}",
        headers=world.headers("villager_x"),
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_the_board_json_is_tagged_too(client: FlaskClient, world: World) -> None:
    with frozen(local(2026, 4, 2)):
        first = client.get(
            f"{API}/villages/{world.village_a}/board?period=2026-03",
            headers=world.headers("villager_x"),
        )
        assert first.status_code == 200 and first.get_json()["status"] == "open"
        again = client.get(
            f"{API}/villages/{world.village_a}/board?period=2026-03",
            headers={**world.headers("villager_x"), "If-None-Match": first.headers["ETag"]},
        )
        assert again.status_code == 304
