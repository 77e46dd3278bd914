"""The month root on the printed board: its fingerprint (公示指纹) printed large and the full root
small, carried by the QR's link, and shown by the online board (/b/…). A board without a root
(closed before roots were kept) prints and shows none of it."""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from backend import printed_boards
from backend.api import boards as boards_api
from points.boards.page import Page, find_font
from points.boards.render import board_png, notice_lines
from points.qr import qr_png
from rules import merkle
from tests.factories import World, earn
from tests.support.clock import frozen, local

ROOT = merkle.root([merkle.household_leaf(1, "2026-03", 9, 9, merkle.NO_ENTRY_HEAD)]).hex()
FINGERPRINT = merkle.fingerprint(ROOT)
APRIL_2 = local(2026, 4, 2)
DRAW_TEXT = Page.text


def a_board(**extra: Any) -> dict[str, Any]:
    return {
        "village_name": "清水村",
        "period_label": "2026年3月",
        "households": 3,
        "participating": 2,
        "status": "closed",
        "red": [],
        "black": [],
        "corrections": [],
        "tie_rule": "同分并列",
        "red_list_size": 10,
        "masked": False,
        **extra,
    }


def test_notice_lines():
    assert notice_lines(a_board()) == []
    assert notice_lines(a_board(month_root=None)) == []
    lines = notice_lines(a_board(month_root=ROOT))
    assert lines[0] == f"公示指纹 {FINGERPRINT}"
    assert lines[1] == f"月度根 {ROOT}"


def _drawn(
    monkeypatch: pytest.MonkeyPatch, app: Flask, board: dict[str, Any]
) -> tuple[bytes, list[tuple[str, float]]]:
    texts: list[tuple[str, float]] = []
    draw = DRAW_TEXT  # not the spy of an earlier call, which would record into its own list

    def spy(self: Any, x: float, y: float, text: str, size: float, *args: Any, **kw: Any) -> None:
        texts.append((text, size))
        draw(self, x, y, text, size, *args, **kw)

    monkeypatch.setattr(Page, "text", spy)
    font = find_font(app.config["BOARD_FONT_PATH"] or None)
    png = board_png(board, paper="A4", qr_png=qr_png("https://x/b/t"), font=font, dpi=100)
    return png, texts


def test_the_printed_board_draws_the_fingerprint_large_and_the_root_small(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain, plain_texts = _drawn(monkeypatch, app, a_board())
    rooted, texts = _drawn(monkeypatch, app, a_board(month_root=ROOT))
    assert plain != rooted
    assert not any("公示指纹" in t or ROOT in t for t, _ in plain_texts)
    sizes = dict(texts)
    # Large: a thousandth of the page width per unit, so 36 is about 7.5 mm on A4, read from
    # a metre; the root itself whole, not cut with an ellipsis.
    assert sizes[f"公示指纹 {FINGERPRINT}"] >= 30
    assert sizes[f"月度根 {ROOT}"] < 18
    with Image.open(io.BytesIO(rooted)) as image:
        assert image.size == (827, 1169)


@pytest.fixture()
def rooted_boards(monkeypatch: pytest.MonkeyPatch) -> dict[str, str | None]:
    """Boards carry the month root the close stores (set here, as the spec says it is)."""
    roots: dict[str, str | None] = {"2026-03": ROOT}
    village_board = boards_api.village_board

    def with_root(*args: Any, **kwargs: Any) -> dict[str, Any]:
        board = village_board(*args, **kwargs)
        return {**board, "month_root": roots.get(board["period"])}

    # The JSON board's view and the printed board (PNG, PDF, /b/) each build it.
    monkeypatch.setattr(boards_api, "village_board", with_root)
    monkeypatch.setattr(printed_boards, "village_board", with_root)
    return roots


def test_the_qr_and_the_online_board_carry_the_root(
    app: Flask,
    client: FlaskClient,
    world: World,
    rooted_boards: dict[str, str | None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    earn(app, world.household_x, 9, local(2026, 3, 10))
    qr_urls: list[str] = []

    def spy(data: str, *args: Any, **kwargs: Any) -> bytes:
        qr_urls.append(data)
        return qr_png(data, *args, **kwargs)

    monkeypatch.setattr(printed_boards, "qr_png", spy)
    # Each drawn here, the PDF not from the PNG's render cache entry.
    monkeypatch.setitem(app.config, "RENDER_CACHE_MB", 0)
    path = f"/api/v1/villages/{world.village_a}/board"
    with frozen(APRIL_2):
        assert (
            client.get(f"{path}.png?period=2026-03", headers=world.headers("cadre_a")).status_code
            == 200
        )
        assert (
            client.get(f"{path}.pdf?period=2026-03", headers=world.headers("cadre_a")).status_code
            == 200
        )
        online = client.get(
            path, query_string={"period": "2026-03"}, headers=world.headers("cadre_a")
        ).get_json()["online_url"]
    assert len(qr_urls) == 2
    for url in qr_urls + [online]:
        assert parse_qs(urlsplit(url).query) == {"period": ["2026-03"], "root": [ROOT]}

    parts = urlsplit(online)
    with frozen(APRIL_2):
        page = client.get(f"{parts.path}?{parts.query}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert FINGERPRINT in html and ROOT in html
    assert "不一致" not in html


def test_the_online_board_says_when_the_printed_root_differs(
    app: Flask, client: FlaskClient, world: World, rooted_boards: dict[str, str | None]
) -> None:
    with frozen(APRIL_2):
        # Printing makes the board's public link.
        assert (
            client.get(
                f"/api/v1/villages/{world.village_a}/board.png?period=2026-03",
                headers=world.headers("cadre_a"),
            ).status_code
            == 200
        )
        online = client.get(
            f"/api/v1/villages/{world.village_a}/board",
            query_string={"period": "2026-03"},
            headers=world.headers("cadre_a"),
        ).get_json()["online_url"]
    path = urlsplit(online).path
    other = "ab" * 32
    with frozen(APRIL_2):
        page = client.get(path, query_string={"period": "2026-03", "root": other.upper()})
        bad = client.get(path, query_string={"period": "2026-03", "root": "xyz"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "不一致" in html and merkle.fingerprint(other) in html and FINGERPRINT in html
    assert bad.status_code == 422


def test_a_board_without_a_root_prints_and_shows_none(
    app: Flask,
    client: FlaskClient,
    world: World,
    rooted_boards: dict[str, str | None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rooted_boards.clear()
    qr_urls: list[str] = []

    def spy(data: str, *args: Any, **kwargs: Any) -> bytes:
        qr_urls.append(data)
        return qr_png(data, *args, **kwargs)

    monkeypatch.setattr(printed_boards, "qr_png", spy)
    path = f"/api/v1/villages/{world.village_a}/board"
    with frozen(APRIL_2):
        assert (
            client.get(f"{path}.png?period=2026-03", headers=world.headers("cadre_a")).status_code
            == 200
        )
        online = client.get(
            path, query_string={"period": "2026-03"}, headers=world.headers("cadre_a")
        ).get_json()["online_url"]
        parts = urlsplit(online)
        html = client.get(f"{parts.path}?{parts.query}").get_data(as_text=True)
    assert "root=" not in qr_urls[0] and "root=" not in online
    assert "公示指纹" not in html
