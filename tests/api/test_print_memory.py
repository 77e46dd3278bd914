"""What drawing the printed things holds of a worker's memory: a big page is drawn a strip at a
time (the same pixels as drawn whole), a village's cards go into their PDF a sheet at a time,
and the font's faces are let go when the request that drew ends."""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from points import card_render
from points.boards import page, render
from points.qr import qr_png
from tests.factories import World, earn
from tests.support.clock import frozen, local

QR = "https://jf.example.gov.cn/b/strips"


def a_board() -> dict[str, Any]:
    """A board in its public form with both lists, corrections and a month root: text of
    every size the board prints, some of it across the strips' edges."""
    names = ["王*山", "李*红", "张*丰", "赵*孙", "周*郑", "冯*褚", "卫*沈", "韩*朱"]
    return {
        "village_name": "清水村",
        "period_label": "2026年10月",
        "status": "closed",
        "households": 334,
        "participating": 26,
        "tie_rule": "同分同名次：积分相同者名次并列，其后名次顺延（1、2、2、4）",
        "red_list_size": 10,
        "masked": True,
        "month_root": "790a97e60c0df95dc8fb3b2cd9df1d66b7457854980ce31417a81ea8b5dd9ed3",
        "red": [
            {"rank": n + 1, "name": name, "group": "第1村民小组", "points": 90 - n, "stars": 3}
            for n, name in enumerate(names * 3)
        ],
        "black": [
            {
                "name": name,
                "group": "第二组",
                "vetoed": n == 0,
                "points": -5 - n,
                "items": [
                    {
                        "reversed": False,
                        "kind": "veto" if n == 0 else "deduction",
                        "item": "乱堆乱放柴草杂物影响村容村貌",
                        "points": -5,
                        "until_month": "2027-03" if n == 0 else None,
                    }
                ],
            }
            for n, name in enumerate(names)
        ],
        "corrections": [{"name": "王*山", "note": "十月误记的义务劳动已更正", "amount": -5}] * 4,
    }


def whole_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Draw render's pages as before: on a whole white image, at once."""

    def drawn_at_once(width: int, height: int, font: page.FontSpec) -> page.Page:
        return page.Page(width, height, font, Image.new("RGB", (width, height), page.WHITE))

    monkeypatch.setattr(render, "Page", drawn_at_once)


def test_a_board_drawn_in_strips_is_the_board_drawn_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    font = page.find_font()
    qr = qr_png(QR)
    board = a_board()
    # Strips of 30 rows at A3: every line of text crosses a strip's edge somewhere.
    monkeypatch.setattr(page, "STRIP_BYTES", 30 * 4 * 2339)
    made: list[tuple[int, int]] = []
    new = Image.new

    def counted(mode: str, size: tuple[int, int], *args: Any, **kwargs: Any) -> Image.Image:
        made.append(size)
        return new(mode, size, *args, **kwargs)

    monkeypatch.setattr(page.Image, "new", counted)
    striped = render.board_png(board, paper="A3", qr_png=qr, font=font, printed_on="今日")
    monkeypatch.setattr(page.Image, "new", new)
    # No image of the page's size was ever made: the biggest was a strip.
    assert made and max(h for _, h in made) <= 30
    whole_pages(monkeypatch)
    whole = render.board_png(board, paper="A3", qr_png=qr, font=font, printed_on="今日")
    with Image.open(io.BytesIO(striped)) as a, Image.open(io.BytesIO(whole)) as b:
        assert a.size == b.size == (2339, 3307)
        assert a.mode == b.mode == "RGB"
        assert a.info["dpi"] == b.info["dpi"]
        assert a.tobytes() == b.tobytes()
    # The PDF embeds the PNG written in strips as it embeds Pillow's.
    pdf = render.board_pdf_of_png(board, striped)
    assert pdf.startswith(b"%PDF-") and b"/Predictor 15" in pdf


def test_a_page_drawn_whole_after_recording_is_the_same_picture() -> None:
    """`Page.image` of a recorded page (a card's background) draws what was recorded."""
    font = page.find_font()
    recorded = page.Page(400, 300, font)
    at_once = page.Page(400, 300, font, Image.new("RGB", (400, 300), page.WHITE))
    for drawing in (recorded, at_once):
        drawing.box(0, 0, 1000, 200, page.RED)
        drawing.text(500, 100, "清水村积分卡", 80, page.WHITE, anchor="mm", bold=True)
        drawing.text(40, 400, drawing.fit("农户：王大山户（第一组）", 60, 500), 60)
    assert recorded.image.tobytes() == at_once.image.tobytes()
    with Image.open(io.BytesIO(recorded.png(300))) as image:
        assert image.tobytes() == at_once.image.tobytes()


def test_a_villages_cards_go_into_their_pdf_a_sheet_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    font = page.find_font()
    events: list[str] = []
    draw, embed = card_render.card_png, page._png_chunks

    def drawing(*args: Any, **kwargs: Any) -> bytes:
        events.append("card")
        return draw(*args, **kwargs)

    def embedding(png: bytes) -> Any:
        events.append("embed")
        return embed(png)

    monkeypatch.setattr(card_render, "card_png", drawing)
    monkeypatch.setattr(page, "_png_chunks", embedding)
    qr = qr_png("https://jf.example.gov.cn/q/x")
    face = card_render.CardFace(
        village="清水村", household="x户", name="王x", card_number="1", qr_png=qr
    )
    card_render.cards_pdf([face] * 25, font, title="清水村积分卡")
    # The first sheet's 10 cards (and its footer) are in the PDF before the 11th is drawn.
    assert events[:10] == ["card"] * 10
    assert events[10:21] == ["embed"] * 11
    assert events[21] == "card"


def test_a_print_request_leaves_no_font_face_open(
    app: Flask, client: FlaskClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    earn(app, world.household_x, 9, local(2026, 3, 10))
    page.release_fonts()
    opened: list[int] = []
    truetype = page.ImageFont.truetype

    def opening(*args: Any, **kwargs: Any) -> Any:
        opened.append(kwargs["size"])
        return truetype(*args, **kwargs)

    monkeypatch.setattr(page.ImageFont, "truetype", opening)
    with frozen(local(2026, 4, 2)):
        printed = client.get(
            f"/api/v1/villages/{world.village_a}/board.png", headers=world.headers("cadre_a")
        )
    assert printed.status_code == 200
    assert opened  # it drew, with faces of the font
    assert page._font.cache_info().currsize == 0
