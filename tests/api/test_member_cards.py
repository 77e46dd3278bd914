"""Printed codes for people without phones: the member card (积分卡) at ID-1 size, a
village's cards on A4 sheets, lost cards (挂失补办: the old card refused at proxy check-in and
at the counter, the new one accepted, two reissues at once leaving one valid card), the
activity poster and the binding code that names whom it binds."""

from __future__ import annotations

import base64
import io
import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import select

import backend.qr
import points.qr
from backend.caller import qr_codec
from backend.extensions import db
from points import card_render, cards
from points.models import AuditEntry, Household, Villager
from points.tokens import TokenType
from tests.api.test_activities import DURING, new_activity
from tests.factories import World, counter, default_items, member_token, shelf
from tests.support.clock import frozen
from tests.support.concurrency import assert_no_server_errors, on_postgres, post_together
from tests.support.reads import error_code, stock_of

API = "/api/v1"
REVOKED_MESSAGE = "此卡已挂失补办，请使用新卡"


def printed_qr(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the QR codes drawn from now on carry, in order (a card's is drawn with the card,
    points.card_render; others by backend.qr)."""
    seen: list[str] = []
    draw = backend.qr.qr_png

    def recording(data: str, box_size: int = 10) -> bytes:
        seen.append(data)
        return draw(data, box_size)

    monkeypatch.setattr(backend.qr, "qr_png", recording)
    monkeypatch.setattr(card_render, "draw_qr", recording)
    return seen


def card(client: FlaskClient, world: World, villager_id: int, user: str = "cadre_a") -> Any:
    return client.get(f"{API}/villagers/{villager_id}/card.png", headers=world.headers(user))


def reissue(
    client: FlaskClient, world: World, villager_id: int, user: str = "cadre_a", **headers: str
) -> Any:
    return client.post(
        f"{API}/villagers/{villager_id}/card/reissue", headers={**world.headers(user), **headers}
    )


def lookup(client: FlaskClient, world: World, token: str) -> Any:
    return client.post(
        f"{API}/shops/{world.shop_a}/member-lookup",
        json={"member_token": token},
        headers=world.headers("clerk_a"),
    )


def proxy(client: FlaskClient, world: World, activity_id: int, token: str) -> Any:
    return client.post(
        f"{API}/activities/{activity_id}/proxy-checkins",
        json={"member_token": token},
        headers=world.headers("cadre_a"),
    )


def page_count(pdf: bytes) -> int:
    """Pages of a PDF by its page objects (`/Type /Page`, not `/Pages`), checked against the
    page tree's /Count."""
    assert pdf.startswith(b"%PDF-1.") and pdf.rstrip().endswith(b"%%EOF")
    pages = len(re.findall(rb"/Type /Page(?![s\w])", pdf))
    counts = [int(n) for n in re.findall(rb"/Type /Pages /Kids \[[^\]]*\] /Count (\d+)", pdf)]
    assert counts == [pages]
    return pages


# ---- the card -------------------------------------------------------------------------------


def test_member_card_is_id1_at_300_dpi_and_carries_its_version(
    app: Flask, client: FlaskClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = printed_qr(monkeypatch)
    response = card(client, world, world.spouse_x)
    assert response.status_code == 200 and response.mimetype == "image/png"
    with Image.open(io.BytesIO(response.data)) as image:
        # 85.6 × 54 mm at 300 dpi
        assert image.size == (round(85.6 / 25.4 * 300), round(54 / 25.4 * 300)) == (1011, 638)
        assert round(image.info["dpi"][0]) == 300
    assert card_render.card_pixels(300) == (1011, 638)
    assert len(seen) == 1 and seen[0].startswith(app.config["PUBLIC_BASE_URL"] + "/q/")
    with app.app_context():
        decoded = qr_codec().decode(seen[0].rsplit("/", 1)[-1], TokenType.MEMBER_CARD)
    assert decoded.fields == (world.spouse_x, 0)
    shown = client.get(
        f"{API}/villagers/{world.spouse_x}", headers=world.headers("cadre_a")
    ).get_json()
    assert shown["card_number"] == f"{world.spouse_x:06d}"


def test_card_face_names_village_household_group_and_number(
    app: Flask, client: FlaskClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    faces: list[card_render.CardFace] = []
    draw = card_render.card_png
    monkeypatch.setitem(app.config, "RENDER_CACHE_MB", 0)  # drawn here, not read from disk
    monkeypatch.setattr(
        card_render, "card_png", lambda face, *a, **k: faces.append(face) or draw(face, *a, **k)
    )
    assert card(client, world, world.spouse_x).status_code == 200
    face = faces[0]
    assert (face.village, face.household, face.group, face.name) == (
        "清水村",
        "x户",
        "第一村民小组",
        "配偶x",
    )
    assert face.card_number == f"{world.spouse_x:06d}"
    assert "工作人员扫码" in card_render.CARD_INSTRUCTION


# ---- lost cards ----------------------------------------------------------------------------


def test_reissue_refuses_every_earlier_card_at_proxy_checkin_and_counter(
    app: Flask, client: FlaskClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = default_items(app, world)
    activity = new_activity(client, world, items["GOV-ASSEMBLY"])
    ids = shelf(app, world)
    seen = printed_qr(monkeypatch)
    printed_long_ago = member_token(app, world.spouse_x)  # a card from before versions
    assert card(client, world, world.spouse_x).status_code == 200
    first = seen[-1]
    # An unversioned card works until the first reissue.
    assert lookup(client, world, printed_long_ago).status_code == 200

    response = reissue(client, world, world.spouse_x)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["card_serial"] == 1 and body["card_number"] == f"{world.spouse_x:06d}-1"
    assert body["card_path"] == f"{API}/villagers/{world.spouse_x}/card.png"
    assert client.get(body["card_path"], headers=world.headers("cadre_a")).status_code == 200
    new = seen[-1]
    assert new != first

    stock = stock_of(app, ids["soap"])
    with frozen(DURING):
        for old in (printed_long_ago, first):
            refused = [
                proxy(client, world, activity["id"], old),
                lookup(client, world, old),
                counter(client, world.headers("clerk_a"), world.shop_a, old, [(ids["soap"], 1)]),
            ]
            for answer in refused:
                assert answer.status_code == 409, answer.get_json()
                assert error_code(answer) == "card_revoked"
                assert answer.get_json()["error"]["message"] == REVOKED_MESSAGE
        assert stock_of(app, ids["soap"]) == stock
        assert proxy(client, world, activity["id"], new).status_code == 201
    holder = lookup(client, world, new)
    assert holder.status_code == 200 and holder.get_json()["villager_name"] == "配偶x"
    sold = counter(client, world.headers("clerk_a"), world.shop_a, new, [(ids["soap"], 1)])
    assert sold.status_code == 201, sold.get_json()
    # The other members' cards are untouched.
    assert lookup(client, world, member_token(app, world.head_x)).status_code == 200
    with app.app_context():
        entry = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "villager.card_reissue")
        ).one()
        assert entry.object_id == str(world.spouse_x) and entry.actor_id == world.cadre_a
        assert (entry.before, entry.after) == ({"card_serial": 0}, {"card_serial": 1})


def test_reissue_is_for_staff_in_scope_idempotent_and_not_for_the_inactive(
    app: Flask, client: FlaskClient, world: World
) -> None:
    assert reissue(client, world, world.spouse_x, user="villager_x").status_code == 403
    assert reissue(client, world, world.spouse_x, user="cadre_b").status_code == 404
    assert reissue(client, world, world.spouse_x, user="clerk_a").status_code == 404
    once = reissue(client, world, world.spouse_x, **{"Idempotency-Key": "lost-1"})
    again = reissue(client, world, world.spouse_x, **{"Idempotency-Key": "lost-1"})
    assert once.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert once.get_json() == again.get_json()
    by_township = reissue(client, world, world.spouse_x, user="tadmin1")
    assert by_township.status_code == 201 and by_township.get_json()["card_serial"] == 2
    with app.app_context():
        villager = db.session.get(Villager, world.spouse_x)
        assert villager is not None
        villager.active = False
        db.session.commit()
    inactive = reissue(client, world, world.spouse_x)
    assert inactive.status_code == 409 and error_code(inactive) == "villager_inactive"
    with app.app_context():
        assert db.session.get(Villager, world.spouse_x).card_serial == 2  # type: ignore


@on_postgres
def test_two_reissues_at_once_leave_exactly_one_valid_card(
    app: Flask, client: FlaskClient, world: World
) -> None:
    replies = post_together(
        app,
        2,
        f"{API}/villagers/{world.spouse_x}/card/reissue",
        lambda i: world.headers("cadre_a" if i else "tadmin1"),
    )
    assert_no_server_errors(replies)
    assert [r.status for r in replies] == [201, 201], [r.body for r in replies]
    serials = sorted(r.body["card_serial"] for r in replies)
    assert serials == [1, 2]
    with app.app_context():
        codec = qr_codec()
        tokens = [
            codec.encode(TokenType.MEMBER_CARD, (world.spouse_x, r.body["card_serial"]))
            for r in replies
        ]
        assert db.session.get(Villager, world.spouse_x).card_serial == 2  # type: ignore
    answers = sorted(lookup(client, world, token).status_code for token in tokens)
    assert answers == [200, 409]


# ---- a village's cards on A4 ---------------------------------------------------------------


def add_members(app: Flask, household_id: int, n: int, active: bool = True) -> None:
    with app.app_context():
        db.session.add_all(
            Villager(household_id=household_id, name=f"子女{k}", relation="子女", active=active)
            for k in range(n)
        )
        db.session.commit()


def test_village_cards_are_ten_to_an_a4_sheet(
    app: Flask, client: FlaskClient, world: World
) -> None:
    add_members(app, world.household_x, 4)
    add_members(app, world.household_x, 2, active=False)  # moved away: no card
    with app.app_context():
        other = Household(village_id=world.village_a, name="二户")
        db.session.add(other)
        db.session.flush()
        other_id = other.id
        db.session.commit()
    add_members(app, other_id, 5)  # 2 + 4 + 5 = 11 active villagers in village A
    path = f"{API}/villages/{world.village_a}/cards.pdf"
    whole = client.get(path, headers=world.headers("cadre_a"))
    assert whole.status_code == 200 and whole.mimetype == "application/pdf"
    assert page_count(whole.data) == 2
    # an A4 page (595 × 842 pt) of a 300 dpi image
    assert b"/MediaBox [0 0 595.20 841.92]" in whole.data
    assert (
        page_count(
            client.get(f"{path}?group_id={world.group_x}", headers=world.headers("tadmin1")).data
        )
        == 1
    )
    household = client.get(f"{path}?household_id={other_id}", headers=world.headers("cadre_a"))
    assert household.status_code == 200 and page_count(household.data) == 1

    assert client.get(path, headers=world.headers("villager_x")).status_code == 403
    assert client.get(path, headers=world.headers("cadre_b")).status_code == 404
    assert client.get(path, headers=world.headers("clerk_a")).status_code == 404
    foreign = client.get(f"{path}?group_id={world.group_y}", headers=world.headers("cadre_a"))
    assert foreign.status_code == 422 and error_code(foreign) == "group_not_in_village"
    elsewhere = client.get(
        f"{path}?household_id={world.household_y}", headers=world.headers("tadmin1")
    )
    assert elsewhere.status_code == 422 and error_code(elsewhere) == "household_not_in_village"


def test_a_sheet_has_its_cards_and_cut_marks(app: Flask) -> None:
    with app.app_context():
        font = backend.qr.print_font()
    qr = points.qr.qr_png("https://jf.example.gov.cn/q/x")
    face = card_render.CardFace(
        village="清水村", household="x户", name="配偶x", card_number="000002", qr_png=qr
    )
    pdf = card_render.cards_pdf([face] * 11, font, title="清水村积分卡")
    assert page_count(pdf) == 2
    layout = card_render.sheet_layout(300)
    assert (layout.width, layout.height) == (2480, 3508)  # A4 at 300 dpi
    pt = 72 / 300
    first = re.search(rb"stream\n(q [^\n]*? cm /Im0 Do Q.*?)\nendstream", pdf, re.S)
    assert first is not None
    content = first.group(1).decode()
    # Each card is the card PNG itself (ID-1 at 300 dpi), placed in its box on the sheet.
    placed = re.findall(r"q ([\d.]+) 0 0 ([\d.]+) ([\d.]+) ([\d.]+) cm /Im(\d+) Do Q", content)
    boxes = [
        (x0 * pt, 841.92 - y1 * pt, x1 * pt, 841.92 - y0 * pt) for x0, y0, x1, y1 in layout.boxes
    ]
    assert len(placed) == 11  # 10 cards and the footer
    for (w, h, x, y, _), (bx0, by0, _, _) in zip(placed, boxes, strict=False):
        assert abs(float(w) - 85.6 / 25.4 * 72) < 0.2 and abs(float(h) - 54 / 25.4 * 72) < 0.2
        assert abs(float(x) - bx0) < 0.01 and abs(float(y) - by0) < 0.01
    # Cut marks: 8 lines a card, each on the line of a card's edge and on no card.
    lines = [
        tuple(map(float, m))
        for m in re.findall(r"([\d.]+) ([\d.]+) m ([\d.]+) ([\d.]+) l", content)
    ]
    assert len(lines) == 80
    for x0, y0, x1, y1 in lines:
        assert x0 == x1 or y0 == y1
        for bx0, by0, bx1, by1 in boxes:
            mid_x, mid_y = (x0 + x1) / 2, (y0 + y1) / 2
            assert not (bx0 < mid_x < bx1 and by0 < mid_y < by1)
    left, top = boxes[0][0], boxes[0][3]
    assert any(y0 == y1 and abs(y0 - top) < 0.01 and x1 < left for x0, y0, x1, y1 in lines)


def test_no_cards_to_print_is_refused(app: Flask, client: FlaskClient, world: World) -> None:
    with app.app_context():
        empty = Household(village_id=world.village_a, name="空户")
        db.session.add(empty)
        db.session.commit()
        empty_id = empty.id
    response = client.get(
        f"{API}/villages/{world.village_a}/cards.pdf?household_id={empty_id}",
        headers=world.headers("cadre_a"),
    )
    assert response.status_code == 422 and error_code(response) == "no_cards"


# ---- the activity poster and the binding code ----------------------------------------------


def test_activity_poster_names_the_activity_and_keeps_the_bare_code(
    app: Flask, client: FlaskClient, world: World
) -> None:
    items = default_items(app, world)
    activity = new_activity(client, world, items["GOV-ASSEMBLY"], place="村委会二楼会议室")
    assert activity["place"] == "村委会二楼会议室"
    base = f"{API}/activities/{activity['id']}"
    with frozen(DURING):
        cadre = world.headers("cadre_a")
        poster = client.get(f"{base}/qr.png", headers=cadre)
        bare = client.get(f"{base}/qr.png?bare=1&box_size=4", headers=cadre)
        svg = client.get(f"{base}/qr.svg", headers=cadre)
        pdf = client.get(f"{base}/poster.pdf", headers=cadre)
        by_villager = client.get(f"{base}/poster.pdf", headers=world.headers("villager_x"))
    assert poster.status_code == 200, poster.get_json()
    with Image.open(io.BytesIO(poster.data)) as image:
        assert image.size == (1654, 2339)  # A4 at 200 dpi
    with Image.open(io.BytesIO(bare.data)) as image:
        assert image.size[0] == image.size[1] < 300
    text = svg.data.decode()
    ET.fromstring(svg.data)
    for shown in (
        "十二月村民大会",
        "地点：村委会二楼会议室",
        "2026年12月1日 09:00–11:00",
        "打开微信小程序「村务积分」扫码签到",
        "清水村",
    ):
        assert shown in text, shown
    assert pdf.status_code == 200 and page_count(pdf.data) == 1
    assert by_villager.status_code == 403


def test_binding_code_names_the_villager_it_binds(
    app: Flask, client: FlaskClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []
    draw = card_render.binding_png
    monkeypatch.setattr(card_render, "binding_png", lambda **k: calls.append(k) or draw(**k))
    response = client.post(
        f"{API}/villagers/{world.spouse_x}/binding-token", headers=world.headers("cadre_a")
    )
    assert response.status_code == 201
    assert (calls[0]["name"], calls[0]["village"], calls[0]["household"]) == (
        "配偶x",
        "清水村",
        "x户",
    )
    png = base64.b64decode(response.get_json()["qr_png_base64"])
    with Image.open(io.BytesIO(png)) as image:
        assert image.size == (709, 945)  # 90 × 120 mm at 200 dpi


def test_too_many_cards_at_once_are_refused(
    app: Flask, client: FlaskClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cards, "MAX_CARDS_PER_PRINT", 1)
    path = f"{API}/villages/{world.village_a}/cards.pdf"
    response = client.get(path, headers=world.headers("cadre_a"))
    assert response.status_code == 422 and error_code(response) == "too_many_cards"
    assert response.get_json()["error"]["details"] == {"cards": 2, "max": 1}
