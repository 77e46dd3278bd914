"""The console's 红黑榜 page: the board as the API posts it, its PNG and PDF on both papers,
closing a month (结榜) once, the notice (公示) list, and the scope and CSRF checks."""

from __future__ import annotations

import io
import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import func, select

from backend.extensions import db
from points.models import BoardSnapshot
from tests.factories import World, add_household, award, earn
from tests.support.clock import frozen, local
from tests.support.console import console_login, csrf_in

APRIL_2 = local(2026, 4, 2)
BOARDS = "/console/boards"


def _march_board(app: Flask, world: World) -> dict[str, int]:
    """Village A's March: three households with points, one of another village."""
    march = local(2026, 3, 10)
    b = add_household(app, world.village_a, "b户", "李四")
    c = add_household(app, world.village_a, "c户", "王五")
    earn(app, world.household_x, 12, march)
    earn(app, b["household"], 10, march)
    earn(app, c["household"], 3, march)
    earn(app, world.household_y, 40, march)
    return {"b": b["household"], "c": c["household"]}


def _api_board(client: FlaskClient, world: World, user: str, **params: Any) -> dict[str, Any]:
    response = client.get(
        f"/api/v1/villages/{world.village_a}/board",
        query_string={"period": "2026-03", "public": "true", **params},
        headers=world.headers(user),
    )
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def _snapshots(app: Flask, village_id: int) -> int:
    with app.app_context():
        count = db.session.scalar(
            select(func.count())
            .select_from(BoardSnapshot)
            .where(BoardSnapshot.village_id == village_id)
        )
        db.session.rollback()
    return int(count or 0)


def _close(client: FlaskClient, csrf: str, village_id: int, month: str, key: str) -> Any:
    return client.post(
        f"{BOARDS}/close",
        data={
            "csrf_token": csrf,
            "idempotency_key": key,
            "village_id": str(village_id),
            "month": month,
        },
    )


def test_the_page_shows_the_board_as_the_api_posts_it(
    app: Flask, client: FlaskClient, world: World
) -> None:
    _march_board(app, world)
    with frozen(APRIL_2):
        api = _api_board(client, world, "cadre_a")
        console_login(client, "cadre_a")
        page = client.get(BOARDS, query_string={"month": "2026-03"})
    assert page.status_code == 200
    html = page.text
    red = html.split('id="red-list"')[1].split("</table>")[0]
    assert [r["name"] for r in api["red"]] == re.findall(r"<td>([^<]+)</td><td class=\"hide", red)
    assert len(api["red"]) == 3
    for row in api["red"]:
        assert f'<td class="num">{row["points"]}</td>' in red
    assert "户主x" not in html or not api["masked"]  # names as posted on the wall
    assert "清水村积分红黑榜" in html and "2026年3月" in html
    assert "未结榜" in html
    # The menu offers the page; the picker does not offer other villages to a cadre.
    assert 'href="/console/boards"' in html
    assert 'name="village_id"' in html and "桃源村" not in html


def test_the_page_defaults_to_the_running_month(
    app: Flask, client: FlaskClient, world: World
) -> None:
    with frozen(APRIL_2):
        console_login(client, "cadre_a")
        page = client.get(BOARDS)
    assert page.status_code == 200
    assert "2026年4月" in page.text
    assert "本月结束后才能结榜" in page.text
    assert 'action="/console/boards/close"' not in page.text


def test_downloads_are_png_and_pdf_on_both_papers(
    app: Flask, client: FlaskClient, world: World
) -> None:
    _march_board(app, world)
    with frozen(APRIL_2):
        console_login(client, "cadre_a")
        sizes = {}
        for paper in ("a4", "a3"):
            query = {"village_id": world.village_a, "month": "2026-03", "paper": paper}
            png = client.get(f"{BOARDS}/board.png", query_string=query)
            assert png.status_code == 200 and png.mimetype == "image/png"
            sizes[paper] = Image.open(io.BytesIO(png.data)).size
            pdf = client.get(f"{BOARDS}/board.pdf", query_string=query)
            assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
            assert pdf.data.startswith(b"%PDF")
            assert f"-{paper.upper()}.pdf" in pdf.headers["Content-Disposition"]
        bad = client.get(
            f"{BOARDS}/board.png",
            query_string={"village_id": world.village_a, "month": "2026-03", "paper": "a5"},
        )
    assert bad.status_code == 422
    # A3 is twice A4's area: its long side is A4's short side doubled.
    (w4, h4), (w3, h3) = sizes["a4"], sizes["a3"]
    assert w3 > w4 and h3 > h4


def test_closing_works_once_and_a_second_close_is_refused(
    app: Flask, client: FlaskClient, world: World
) -> None:
    _march_board(app, world)
    with frozen(APRIL_2):
        csrf = console_login(client, "cadre_a")
        page = client.get(BOARDS, query_string={"month": "2026-03"})
        assert 'action="/console/boards/close"' in page.text and "data-confirm=" in page.text
        closed = _close(client, csrf, world.village_a, "2026-03", "close-1")
        assert closed.status_code == 303
        assert closed.location.endswith(f"{BOARDS}?village_id={world.village_a}&month=2026-03")
        after = client.get(closed.location)
        assert "已结榜" in after.text and 'action="/console/boards/close"' not in after.text
        api = _api_board(client, world, "cadre_a")
        assert api["status"] == "closed"
        # The same form sent again (a double click) lands on the same page, changing nothing.
        again = _close(client, csrf, world.village_a, "2026-03", "close-1")
        assert again.status_code == 303 and again.location == closed.location
        # A second close (a stale form, a new key) is refused beside the form.
        second = _close(client, csrf, world.village_a, "2026-03", "close-2")
    assert second.status_code == 409
    assert 'data-code="board_closed"' in second.text and "这个月的榜单已经发布" in second.text
    assert _snapshots(app, world.village_a) == 1


def test_a_running_month_is_not_closed(app: Flask, client: FlaskClient, world: World) -> None:
    with frozen(APRIL_2):
        csrf = console_login(client, "cadre_a")
        refused = _close(client, csrf, world.village_a, "2026-04", "close-april")
    assert refused.status_code == 422
    assert 'data-code="month_not_over"' in refused.text
    assert _snapshots(app, world.village_a) == 0


def test_undecided_claims_hold_the_close_until_forced(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    with frozen(local(2026, 3, 30)):
        awarded = award(client, world, items["ENV-YARD"], [{"household_id": world.household_x}])
        assert awarded.status_code == 201, awarded.get_json()
    with frozen(APRIL_2):
        csrf = console_login(client, "cadre_a")
        held = _close(client, csrf, world.village_a, "2026-03", "close-held")
        assert held.status_code == 409 and 'data-code="claims_undecided"' in held.text
        assert 'name="force"' in held.text
        forced = client.post(
            f"{BOARDS}/close",
            data={
                "csrf_token": csrf,
                "idempotency_key": "close-forced",
                "village_id": str(world.village_a),
                "month": "2026-03",
                "force": "1",
            },
        )
    assert forced.status_code == 303
    assert _snapshots(app, world.village_a) == 1


def test_the_notice_lists_the_claims_in_notice_printably(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    with frozen(APRIL_2):
        awarded = award(client, world, items["ENV-YARD"], [{"household_id": world.household_x}])
        assert awarded.status_code == 201, awarded.get_json()
        claim_id = awarded.get_json()[0]["id"]
        api = client.get(
            f"/api/v1/villages/{world.village_a}/notices", headers=world.headers("cadre_a")
        ).get_json()
        console_login(client, "cadre_a")
        html = client.get(BOARDS).text
    assert [n["claim_id"] for n in api["items"]] == [claim_id]
    notices = html.split('id="notice-list"')[1].split("</table>")[0]
    assert f'data-claim="{claim_id}"' in notices and "x户" in notices
    assert '<button type="button" data-print>' in html


def test_a_township_admin_picks_a_village_of_their_own_township_only(
    app: Flask, client: FlaskClient, world: World
) -> None:
    _march_board(app, world)
    with frozen(APRIL_2):
        csrf = console_login(client, "tadmin1")
        page = client.get(BOARDS, query_string={"month": "2026-03"})
        assert "清水村" in page.text and "桃源村" in page.text and "白沙村" not in page.text
        other = client.get(BOARDS, query_string={"month": "2026-03", "village_id": world.village_b})
        assert other.status_code == 200 and "桃源村积分红黑榜" in other.text
        foreign = {"village_id": world.village_c, "month": "2026-03"}
        assert client.get(BOARDS, query_string=foreign).status_code == 404
        assert client.get(f"{BOARDS}/board.png", query_string=foreign).status_code == 404
        assert client.get(f"{BOARDS}/board.pdf", query_string=foreign).status_code == 404
        refused = _close(client, csrf, world.village_c, "2026-03", "close-foreign")
    assert refused.status_code == 404
    assert _snapshots(app, world.village_c) == 0


def test_a_cadre_cannot_open_another_village_and_a_clerk_not_the_board(
    app: Flask, client: FlaskClient, world: World
) -> None:
    with frozen(APRIL_2):
        console_login(client, "cadre_a")
        assert client.get(BOARDS, query_string={"village_id": world.village_b}).status_code == 404
        clerk = app.test_client()
        console_login(clerk, "clerk_a")
        assert clerk.get(BOARDS).status_code == 403
        assert 'href="/console/boards"' not in clerk.get("/console/").text


def test_a_close_without_csrf_changes_nothing(
    app: Flask, client: FlaskClient, world: World
) -> None:
    _march_board(app, world)
    with frozen(APRIL_2):
        csrf = console_login(client, "cadre_a")
        assert csrf_in(client.get(BOARDS).text) == csrf
        forged = client.post(
            f"{BOARDS}/close",
            data={"idempotency_key": "forged", "village_id": world.village_a, "month": "2026-03"},
        )
        wrong = _close(client, "not-the-token", world.village_a, "2026-03", "forged-2")
    assert forged.status_code == 403 and wrong.status_code == 403
    assert _snapshots(app, world.village_a) == 0


def test_a_clerk_is_refused_the_downloads_and_the_close_whatever_they_send(
    app: Flask, client: FlaskClient, world: World
) -> None:
    with frozen(APRIL_2):
        csrf = console_login(client, "clerk_a")
        assert client.get(f"{BOARDS}/board.png").status_code == 403
        assert client.get(f"{BOARDS}/board.pdf?paper=a9").status_code == 403
        refused = client.post(
            f"{BOARDS}/close", data={"csrf_token": csrf, "idempotency_key": "clerk"}
        )
    assert refused.status_code == 403
    assert _snapshots(app, world.village_a) == 0
