"""The render cache (backend/render_cache.py): a printed board (PNG, PDF) and the statistics
chart are drawn once for the same content and read from disk after; anything drawn that
changes (an entry, a correction, a household's privacy, the village's masking, the paper,
the drawing code) draws anew; a cache that cannot be used still serves the picture; the
directory keeps to its bound."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from backend import render_cache
from points import card_render
from points.boards import render
from tests.api.test_activities import new_activity
from tests.factories import World, earn
from tests.support.clock import frozen, local
from tests.support.console import console_login

APRIL_2 = local(2026, 4, 2)
MARCH = local(2026, 3, 10)


@pytest.fixture()
def cache(app: Flask, tmp_path: Path) -> Iterator[Path]:
    """A cache directory of the test's own, at the default bound."""
    directory = tmp_path / "render-cache"
    saved = {k: app.config[k] for k in ("RENDER_CACHE_DIR", "RENDER_CACHE_MB")}
    app.config.update(RENDER_CACHE_DIR=str(directory), RENDER_CACHE_MB=256)
    yield directory
    app.config.update(saved)


def spy(
    monkeypatch: pytest.MonkeyPatch, name: str, module: ModuleType = render
) -> list[dict[str, Any]]:
    """Record each call of `module`.`name` (points.boards.render's by default), and still
    draw."""
    calls: list[dict[str, Any]] = []
    draw: Callable[..., bytes] = getattr(module, name)

    def recording(*args: Any, **kwargs: Any) -> bytes:
        calls.append(kwargs)
        return draw(*args, **kwargs)

    monkeypatch.setattr(module, name, recording)
    return calls


def kept(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def printed(client: FlaskClient, world: World, kind: str = "png", **query: str) -> Any:
    response = client.get(
        f"/api/v1/villages/{world.village_a}/board.{kind}",
        query_string=query,
        headers=world.headers("cadre_a"),
    )
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return response


def test_the_same_board_is_drawn_once_and_read_from_disk_after(
    app: Flask, client: FlaskClient, world: World, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = spy(monkeypatch, "board_png")
    earn(app, world.household_x, 9, MARCH)
    with frozen(APRIL_2):
        first = printed(client, world)
        second = printed(client, world)
        # The PDF embeds the same PNG: no second drawing, and itself drawn once.
        pdf = printed(client, world, "pdf")
        pdf_again = printed(client, world, "pdf")
    assert len(calls) == 1
    assert second.data == first.data and second.headers["ETag"] == first.headers["ETag"]
    assert pdf_again.data == pdf.data and pdf.data.startswith(b"%PDF-")
    etag = first.headers["ETag"].strip('"')
    assert kept(cache) == [f"board-{etag}.pdf", f"board-{etag}.png"]
    assert (cache / f"board-{etag}.png").read_bytes() == first.data


def test_what_changes_on_the_board_draws_it_again(
    app: Flask, client: FlaskClient, world: World, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = spy(monkeypatch, "board_png")
    march_entry = earn(app, world.household_x, 9, MARCH)
    earn(app, world.household_x, 4, local(2026, 4, 10))
    tags: list[str] = []

    def print_again(drawn: bool = True) -> None:
        before = len(calls)
        tags.append(printed(client, world, period="2026-04").headers["ETag"])
        assert len(calls) == before + drawn, f"change {len(tags) - 1}"

    with frozen(local(2026, 4, 20)):
        print_again()
        earn(app, world.household_x, 2, local(2026, 4, 11))  # a new entry
        print_again()
        # A correction of March: a note (更正说明) on April's board.
        reversed_ = client.post(
            f"/api/v1/ledger/{march_entry}/reverse",
            json={"reason": "登记重复"},
            headers=world.headers("cadre_a"),
        )
        assert reversed_.status_code == 201, reversed_.get_json()
        print_again()
        # The household keeps its name off the public board, then changes its mind: the
        # same picture as before, from the cache.
        for opt_out in (True, False):
            opted = client.put(
                "/api/v1/me/board-privacy",
                json={"public_board_opt_out": opt_out},
                headers=world.headers("villager_x"),
            )
            assert opted.status_code == 200, opted.get_json()
        print_again(drawn=False)
        assert tags[-1] == tags[-2]
        opted = client.put(
            "/api/v1/me/board-privacy",
            json={"public_board_opt_out": True},
            headers=world.headers("villager_x"),
        )
        print_again()
        # The village stops masking names.
        unmasked = client.put(
            f"/api/v1/villages/{world.village_a}/board-settings",
            json={"mask_names": False},
            headers=world.headers("cadre_a"),
        )
        assert unmasked.status_code == 200
        print_again()
        # New drawing code.
        monkeypatch.setattr(render, "RENDER_VERSION", render.RENDER_VERSION + 1)
        print_again()
    assert len(set(tags)) == len(tags) - 1


def test_each_paper_is_its_own_picture(
    app: Flask, client: FlaskClient, world: World, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = spy(monkeypatch, "board_png")
    earn(app, world.household_x, 9, MARCH)
    with frozen(APRIL_2):
        a4 = printed(client, world, size="A4")
        a3 = printed(client, world, size="A3")
        printed(client, world, size="A3")
        printed(client, world, size="A4")
    assert [call["paper"] for call in calls] == ["A4", "A3"]
    assert a4.headers["ETag"] != a3.headers["ETag"]
    assert len(kept(cache)) == 2


def test_the_statistics_chart_is_drawn_once_for_the_same_figures(
    app: Flask, client: FlaskClient, world: World, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = spy(monkeypatch, "stats_png")
    earn(app, world.household_x, 5, MARCH)

    def chart() -> bytes:
        response = client.get(
            f"/api/v1/villages/{world.village_a}/stats.png?period=2026-03",
            headers=world.headers("cadre_a"),
        )
        assert (response.status_code, response.content_type) == (200, "image/png")
        assert response.headers["Cache-Control"] == "private, no-store"
        return response.data

    first, second = chart(), chart()
    assert second == first and len(calls) == 1
    earn(app, world.household_x, -3, MARCH)
    assert chart() != first and len(calls) == 2
    assert len([name for name in kept(cache) if name.startswith("stats-")]) == 2


def test_a_cache_that_cannot_be_used_still_serves_the_picture(
    app: Flask, client: FlaskClient, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = spy(monkeypatch, "board_png")
    earn(app, world.household_x, 9, MARCH)
    blocked = tmp_path / "a-file"
    blocked.write_bytes(b"")
    saved = app.config["RENDER_CACHE_DIR"]
    try:
        # The directory cannot be made (a file is in the way): nothing kept, each drawn.
        app.config["RENDER_CACHE_DIR"] = str(blocked / "render-cache")
        with frozen(APRIL_2):
            first = printed(client, world)
            assert printed(client, world).data == first.data
        assert len(calls) == 2
        # An entry that cannot be read nor replaced (a directory under its name).
        directory = tmp_path / "cache"
        app.config["RENDER_CACHE_DIR"] = str(directory)
        etag = first.headers["ETag"].strip('"')
        (directory / f"board-{etag}.png").mkdir(parents=True)
        with frozen(APRIL_2):
            assert printed(client, world).data == first.data
        assert len(calls) == 3
    finally:
        app.config["RENDER_CACHE_DIR"] = saved


def test_no_cache_at_zero_megabytes(
    app: Flask, client: FlaskClient, world: World, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = spy(monkeypatch, "board_png")
    app.config["RENDER_CACHE_MB"] = 0
    with frozen(APRIL_2):
        printed(client, world)
        printed(client, world)
    assert len(calls) == 2 and kept(cache) == []


def test_the_default_place_is_in_upload_dir(app: Flask) -> None:
    saved = app.config["RENDER_CACHE_DIR"]
    app.config["RENDER_CACHE_DIR"] = ""
    try:
        with app.app_context():
            assert render_cache.cache_dir() == Path(app.config["UPLOAD_DIR"]) / "render-cache"
    finally:
        app.config["RENDER_CACHE_DIR"] = saved


def _entry(directory: Path, n: int, size: int, age: float) -> Path:
    path = directory / f"board-{n:032x}.png"
    path.write_bytes(b"x" * size)
    moment = time.time() - age
    os.utime(path, (moment, moment))
    return path


def test_the_sweep_keeps_the_most_recently_used_within_the_bound(tmp_path: Path) -> None:
    # Ten files of 100 bytes, file n used n minutes ago; a temp file of a killed writer.
    files = [_entry(tmp_path, n, 100, 60 * n) for n in range(10)]
    stale = tmp_path / f"{render_cache.PART_PREFIX}abc.part"
    stale.write_bytes(b"half")
    old = time.time() - render_cache.STALE_PART_SECONDS - 10
    os.utime(stale, (old, old))
    fresh = tmp_path / f"{render_cache.PART_PREFIX}def.part"  # being written now
    fresh.write_bytes(b"half")
    other = tmp_path / "notes.txt"  # not the cache's: left alone
    other.write_text("x")

    assert render_cache.sweep(tmp_path, limit_bytes=450) == 7  # 6 over the bytes, 1 stale
    assert [p.exists() for p in files] == [True] * 4 + [False] * 6
    assert not stale.exists() and fresh.exists() and other.exists()
    assert render_cache.sweep(tmp_path, limit_bytes=10_000, max_files=2) == 2
    assert [p.exists() for p in files] == [True] * 2 + [False] * 8


def test_drawing_sweeps_the_directory_to_its_bound(
    app: Flask, client: FlaskClient, world: World, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(render_cache, "SWEEP_EVERY", 1)
    app.config["RENDER_CACHE_MB"] = 1
    cache.mkdir()
    old = [_entry(cache, n, 600 * 1024, 3600 + n) for n in range(3)]  # an hour old
    with frozen(APRIL_2):
        response = printed(client, world)
    etag = response.headers["ETag"].strip('"')
    # The new picture (far under 400 KB) stays, with the newest old file; the rest go.
    assert len(response.data) < 400 * 1024
    assert (cache / f"board-{etag}.png").exists()
    assert [p.exists() for p in old] == [True, False, False]


def test_a_hit_counts_as_a_use(app: Flask, cache: Path) -> None:
    cache.mkdir()
    path = _entry(cache, 1, 10, 3600)
    with app.app_context():
        assert render_cache.cached(path.name, lambda: b"drawn") == b"x" * 10
    assert time.time() - path.stat().st_mtime < 60


def test_a_name_outside_the_cache_is_refused(app: Flask, cache: Path) -> None:
    with app.app_context(), pytest.raises(ValueError):
        render_cache.cached("../board.png", lambda: b"")


def test_the_console_download_and_the_api_share_one_drawing(
    app: Flask, client: FlaskClient, world: World, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = spy(monkeypatch, "board_png")
    earn(app, world.household_x, 9, MARCH)
    with frozen(APRIL_2):
        api = printed(client, world, period="2026-03", size="A4")
        console_login(client, "cadre_a")
        query = {"village_id": world.village_a, "month": "2026-03", "paper": "a4"}
        png = client.get("/console/boards/board.png", query_string=query)
        pdf = client.get("/console/boards/board.pdf", query_string=query)
    assert png.status_code == 200 and png.data == api.data
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF-")
    assert len(calls) == 1


def test_the_same_member_cards_are_drawn_once_and_a_new_card_draws_them_again(
    client: FlaskClient, world: World, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sheets = spy(monkeypatch, "cards_pdf", card_render)
    qrs: list[str] = []
    draw_qr = card_render.draw_qr
    monkeypatch.setattr(card_render, "draw_qr", lambda text: qrs.append(text) or draw_qr(text))
    path = f"/api/v1/villages/{world.village_a}/cards.pdf"
    first = client.get(path, headers=world.headers("cadre_a"))
    drawn = len(qrs)
    again = client.get(path, headers=world.headers("tadmin1"))
    assert first.status_code == again.status_code == 200
    assert again.data == first.data and first.data.startswith(b"%PDF-")
    # Read from disk: neither the sheet nor any card's QR drawn a second time.
    assert len(sheets) == 1 and drawn > 0 and len(qrs) == drawn
    assert any(name.startswith("cards-") for name in kept(cache))
    # A card reissued carries a new code: the sheet is another picture.
    reissued = client.post(
        f"/api/v1/villagers/{world.spouse_x}/card/reissue", headers=world.headers("cadre_a")
    )
    assert reissued.status_code == 201, reissued.get_json()
    changed = client.get(path, headers=world.headers("cadre_a"))
    assert len(sheets) == 2 and changed.data != first.data


def test_an_activitys_poster_is_drawn_once_for_the_same_code_and_text(
    client: FlaskClient,
    world: World,
    items: dict[str, int],
    cache: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pngs = spy(monkeypatch, "poster_png", card_render)
    pdfs = spy(monkeypatch, "poster_pdf", card_render)
    one = new_activity(client, world, items["GOV-ASSEMBLY"])
    other = new_activity(client, world, items["GOV-ASSEMBLY"], title="另一场村民大会")

    def poster(activity: dict[str, Any], kind: str) -> bytes:
        answer = client.get(
            f"/api/v1/activities/{activity['id']}/poster.{kind}"
            if kind == "pdf"
            else f"/api/v1/activities/{activity['id']}/qr.png",
            headers=world.headers("cadre_a"),
        )
        assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
        return answer.data

    assert poster(one, "png") == poster(one, "png")
    assert len(pngs) == 1
    assert poster(one, "pdf") == poster(one, "pdf")
    assert len(pdfs) == 1
    drawn = len(pngs)  # (the PDF may draw its page as a PNG)
    assert poster(other, "png") != poster(one, "png")  # another code and title: drawn
    assert len(pngs) == drawn + 1


def test_the_township_month_report_is_drawn_once_until_another_village_closes(
    client: FlaskClient, world: World, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report is named by every line it prints: the same month asked again is read from
    disk; a village closing the month changes its line and the township's root, and the
    report is drawn anew."""
    from points import notice

    drawn = spy(monkeypatch, "township_report_pdf", notice)
    earn(client.application, world.household_x, 6, MARCH)

    def close(village: int, cadre: str) -> None:
        closed = client.post(
            f"/api/v1/villages/{village}/board/close",
            json={"period": "2026-03"},
            headers={**world.headers(cadre), "Idempotency-Key": f"close-{village}"},
        )
        assert closed.status_code == 201, closed.get_json()

    def report() -> bytes:
        answer = client.get(
            f"/api/v1/townships/{world.township_1}/month-report.pdf",
            query_string={"period": "2026-03"},
            headers=world.headers("tadmin1"),
        )
        assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
        assert answer.mimetype == "application/pdf"
        return answer.data

    with frozen(APRIL_2):
        close(world.village_a, "cadre_a")
        first = report()
        assert report() == first
        assert len(drawn) == 1
        assert any(name.startswith("report-") for name in kept(cache))
        close(world.village_b, "cadre_b")
        assert report() != first
        assert len(drawn) == 2
