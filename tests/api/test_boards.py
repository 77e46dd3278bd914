"""Boards (红黑榜): the red and black lists, star households, closing a month (结榜) and the
corrections that show on the next board, privacy on public boards, the printed PNG and PDF,
and the household plate (门牌) with its public page."""

from __future__ import annotations

import io
import re
from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import func, select

from backend.extensions import db
from points.boards import closing
from points.boards.page import RED, WHITE, _font, find_font
from points.models import AuditEntry, BoardSnapshot, PublicLink
from tests.factories import (
    World,
    add_household,
    approve,
    bar,
    earn,
    earn_posted,
    post_due,
    self_report,
    set_policy,
    upload_photo,
)
from tests.support.clock import SHANGHAI, frozen, local
from tests.support.concurrency import on_postgres, together
from tests.support.reads import catalog_id, entries_of, error_code

APRIL_2 = local(2026, 4, 2)


def board(
    client: FlaskClient,
    world: World,
    user: str | int,
    period: str = "2026-03",
    village: str = "village_a",
    **params: Any,
) -> Any:
    return client.get(
        f"/api/v1/villages/{getattr(world, village)}/board",
        query_string={"period": period, **params},
        headers=world.headers(user),
    )


def close(runner: Any, *args: str) -> Any:
    return runner.invoke(args=["rankings", "close", *args])


def deduct(
    client: FlaskClient,
    runner: Any,
    world: World,
    item_id: int,
    household_id: int,
    note: str,
    at: datetime,
) -> int:
    """A cadre's deduction with its photo, made at `at` and posted when its 5-day notice is
    over; returns the claim id."""
    with frozen(at):
        photo = upload_photo(client, world.headers("cadre_a"))
        response = client.post(
            "/api/v1/awards",
            json={
                "rule_item_id": item_id,
                "note": note,
                "evidence": [photo],
                "targets": [{"household_id": household_id}],
            },
            headers=world.headers("cadre_a"),
        )
        assert response.status_code == 201, response.get_json()
    with frozen(at + timedelta(days=5)):
        assert post_due(runner) == 1
    return int(response.get_json()[0]["id"])


def settings(
    client: FlaskClient, world: World, user: str, body: dict[str, Any], township: bool = False
) -> Any:
    path = (
        f"/api/v1/townships/{world.township_1}/board-settings"
        if township
        else f"/api/v1/villages/{world.village_a}/board-settings"
    )
    return client.put(path, json=body, headers=world.headers(user))


# ---- the lists ------------------------------------------------------------------------------


def test_red_list_black_list_and_stars(
    app: Flask, client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> None:
    assert set_policy(client, world, qualification_line=5, star_levels=[5, 8, 10, 12])[
        "star_levels"
    ] == [5, 8, 10, 12]
    march = local(2026, 3, 10)
    b = add_household(app, world.village_a, "b户", "李四")
    c = add_household(app, world.village_a, "c户", "王五")
    d = add_household(app, world.village_a, "d户", "赵六")
    vetoed = add_household(app, world.village_a, "e户", "钱七")
    burner = add_household(app, world.village_a, "f户", "孙八")
    earn(app, world.household_x, 12, march)
    earn(app, b["household"], 10, march)
    earn(app, c["household"], 10, march)
    earn(app, d["household"], 3, march)
    earn(app, vetoed["household"], 20, march)
    bar(app, vetoed["household"], "2026-03", "2027-02")
    earn(app, world.household_y, 40, march)  # another village
    deduct(
        client,
        runner,
        world,
        items["ENV-STRAW"],
        burner["household"],
        "3月11日焚烧秸秆",
        local(2026, 3, 12),
    )
    assert [e["amount"] for e in entries_of(app, burner["household"])] == [-5]
    assert settings(client, world, "cadre_a", {"red_list_size": 2}).status_code == 200

    with frozen(APRIL_2):
        body = board(client, world, "cadre_a").get_json()
    assert (body["status"], body["period"], body["period_label"], body["village_name"]) == (
        "open",
        "2026-03",
        "2026年3月",
        "清水村",
    )
    assert (body["households"], body["participating"], body["red_list_size"]) == (6, 5, 2)
    # Top 2 with the tie at the boundary: 1, 2, 2. The vetoed household is not on it.
    assert [(r["rank"], r["name"], r["points"], r["stars"]) for r in body["red"]] == [
        (1, "户主x", 12, 4),
        (2, "李四", 10, 3),
        (2, "王五", 10, 3),
    ]
    assert [(r["name"], r["vetoed"], r["points"]) for r in body["black"]] == [
        ("钱七", True, 20),
        ("孙八", False, -5),
    ]
    veto_item = body["black"][0]["items"][0]
    assert (veto_item["kind"], veto_item["until_month"]) == ("veto", "2027-02")
    [straw] = body["black"][1]["items"]
    assert (
        straw["kind"],
        straw["item"],
        straw["points"],
        straw["note"],
        straw["date"],
        straw["reversed"],
    ) == ("deduct", "焚烧秸秆", -5, "3月11日焚烧秸秆", "2026-03-12", False)
    # 星级文明户: at or over the qualification line; the vetoed household gets none.
    assert [(s["name"], s["stars"]) for s in body["stars"]] == [
        ("户主x", 4),
        ("李四", 3),
        ("王五", 3),
    ]
    assert (body["qualification_line"], body["star_levels"]) == (5, [5, 8, 10, 12])
    assert body["corrections"] == [] and body["mine"] is None


def test_the_black_list_names_serious_deductions_and_vetoes_only(
    app: Flask, client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> None:
    """黑榜 is a board setting: standing deductions of at least black_list_min_deduction
    points in the period (default 5), or one of an item marked black_list, or a veto. A
    household on the red list is on the black list only when it met that bar too."""
    march = local(2026, 3, 10)
    late = add_household(app, world.village_a, "b户", "李四")
    repeat = add_household(app, world.village_a, "c户", "王五")
    burner = add_household(app, world.village_a, "d户", "赵六")
    earn(app, world.household_x, 12, march)
    earn(app, late["household"], 10, march)
    earn(app, late["household"], -1, march)  # late for a meeting once
    earn(app, repeat["household"], 8, march)
    earn(app, repeat["household"], -3, march)
    earn(app, repeat["household"], -2, local(2026, 3, 20))
    deduct(
        client,
        runner,
        world,
        items["ENV-STRAW"],
        burner["household"],
        "焚烧秸秆",
        local(2026, 3, 12),
    )

    with frozen(APRIL_2):
        body = board(client, world, "cadre_a").get_json()
    assert [(r["rank"], r["name"]) for r in body["red"]] == [(1, "户主x"), (2, "李四"), (3, "王五")]
    # 李四's single −1 keeps him off; 王五's −3 and −2 reach the 5 points, red list or not
    assert [(r["name"], r["points"]) for r in body["black"]] == [("赵六", -5), ("王五", 3)]
    assert body["black"][1]["items"][0]["points"] == -3

    # A village that names only heavier deductions still names the black-list items.
    policy = set_policy(client, world, black_list_min_deduction=10)
    assert policy["black_list_min_deduction"] == 10
    with frozen(APRIL_2):
        body = board(client, world, "cadre_a").get_json()
    assert [r["name"] for r in body["black"]] == ["赵六"]

    refused = client.patch(
        f"/api/v1/rule-catalogs/{catalog_id(app, world.township_1)}/policy",
        json={"black_list_min_deduction": 0},
        headers=world.headers("tadmin1"),
    )
    assert refused.status_code == 422


def test_a_black_list_mark_is_for_deduction_items_only(
    client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    yard = client.get(
        f"/api/v1/rule-items/{items['ENV-YARD']}", headers=world.headers("tadmin1")
    ).get_json()
    straw = client.get(
        f"/api/v1/rule-items/{items['ENV-STRAW']}", headers=world.headers("tadmin1")
    ).get_json()
    assert straw["black_list"] is True and "black_list" not in yard
    marked = client.patch(
        f"/api/v1/rule-items/{items['ENV-YARD']}",
        json={"black_list": True},
        headers=world.headers("tadmin1"),
    )
    assert marked.status_code == 422, marked.get_json()


def test_a_deduction_reversed_in_its_month_leaves_the_black_list(
    app: Flask, client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> None:
    deduct(
        client, runner, world, items["ENV-STRAW"], world.household_x, "焚烧秸秆", local(2026, 3, 12)
    )
    with frozen(local(2026, 3, 20)):
        assert [r["name"] for r in board(client, world, "cadre_a").get_json()["black"]] == ["户主x"]
        [entry] = entries_of(app, world.household_x)
        undone = client.post(
            f"/api/v1/ledger/{entry['id']}/reverse",
            json={"reason": "核实为邻户所为"},
            headers=world.headers("cadre_a"),
        )
        assert undone.status_code == 201, undone.get_json()
        assert board(client, world, "cadre_a").get_json()["black"] == []


# ---- closing a month and corrections --------------------------------------------------------


def test_a_correction_after_closing_leaves_the_closed_board_and_shows_on_the_next(
    app: Flask, client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> None:
    march = local(2026, 3, 10)
    other = add_household(app, world.village_a, "b户", "李四")
    earn_posted(client, runner, world, items["PUB-VOLUNTEER"], 3, march)  # x: 6 points
    earn(app, other["household"], 4, march)
    deduct(
        client,
        runner,
        world,
        items["ENV-STRAW"],
        other["household"],
        "焚烧秸秆",
        local(2026, 3, 20),
    )

    with frozen(APRIL_2):
        result = close(runner, "2026-03")
        assert result.exit_code == 0, result.output
        assert f"village {world.village_a} 2026-03: closed" in result.output
        published = board(client, world, "cadre_a").get_json()
    assert published["status"] == "closed" and published["closed_by"] is None
    assert published["closed_at"].startswith("2026-04-02T10:00:00")
    assert [(r["name"], r["points"]) for r in published["red"]] == [("户主x", 6)]
    assert [r["name"] for r in published["black"]] == ["李四"]

    # April 5: both March entries are found wrong and reversed.
    with frozen(local(2026, 4, 5)):
        printed = client.get(
            f"/api/v1/villages/{world.village_a}/board.png",
            query_string={"period": "2026-03"},
            headers=world.headers("cadre_a"),
        )
        assert printed.status_code == 200
        [earned] = entries_of(app, world.household_x)
        [straw] = [e for e in entries_of(app, other["household"]) if e["kind"] == "deduct"]
        for entry, reason in ((earned, "志愿时长登记重复"), (straw, "核实为邻户所为")):
            response = client.post(
                f"/api/v1/ledger/{entry['id']}/reverse",
                json={"reason": reason},
                headers=world.headers("cadre_a"),
            )
            assert response.status_code == 201, response.get_json()
        again = board(client, world, "cadre_a").get_json()
        reprinted = client.get(
            f"/api/v1/villages/{world.village_a}/board.png",
            query_string={"period": "2026-03"},
            headers=world.headers("cadre_a"),
        )
        april = board(client, world, "cadre_a", period="2026-04").get_json()
    # It does not move; printing it made its public link, so its picture's address is now
    # versioned (png_url).
    assert again == published | {"online_url": again["online_url"], "png_url": again["png_url"]}
    assert "&v=" in again["png_url"] and "&v=" not in published["png_url"]
    assert _same_board_pixels(printed.data, reprinted.data)
    assert [
        (c["kind"], c["name"], c["amount"], c["month"], c["note"]) for c in april["corrections"]
    ] == [
        ("reversal", "户主x", -6, "2026-03", "2026年3月加分冲正：志愿时长登记重复"),
        ("reversal", "李四", 5, "2026-03", "2026年3月扣分冲正：核实为邻户所为"),
    ]
    assert april["status"] == "open"
    # The reversal counts in April: x's April score is -6, and no deduction made it.
    assert [r["name"] for r in april["black"]] == []

    # Once April is closed its notes are frozen with it, and May starts clean.
    with frozen(local(2026, 5, 3)):
        assert close(runner, "2026-04").exit_code == 0
        closed_april = board(client, world, "cadre_a", period="2026-04").get_json()
        may = board(client, world, "cadre_a", period="2026-05").get_json()
    assert closed_april["corrections"] == april["corrections"]
    assert may["corrections"] == []


def _same_board_pixels(first: bytes, second: bytes) -> bool:
    with Image.open(io.BytesIO(first)) as a, Image.open(io.BytesIO(second)) as b:
        return a.tobytes() == b.tobytes()


def test_points_posted_into_a_closed_month_show_as_a_note_on_the_next_board(
    app: Flask, client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> None:
    earn(app, world.household_x, 2, local(2026, 3, 5))
    with frozen(local(2026, 3, 30)):
        claim = self_report(client, world, "villager_x", items["PUB-VOLUNTEER"], 3)
        assert claim.status_code == 201
        assert (
            approve(client, world, "cadre_a", claim.get_json()["id"]).get_json()["status"]
            == "in_notice"
        )  # notice ends 4 April
    with frozen(APRIL_2):
        waiting = close(runner, "2026-03", "--village-id", str(world.village_a))
        assert waiting.exit_code == 0, waiting.output
        assert "skipped: 1 claim(s) undecided" in waiting.output
        forced = close(runner, "2026-03", "--village-id", str(world.village_a), "--force")
        assert "2026-03: closed" in forced.output
        published = board(client, world, "cadre_a").get_json()
    assert [(r["name"], r["points"]) for r in published["red"]] == [("户主x", 2)]

    with frozen(local(2026, 4, 5)):
        assert post_due(runner) == 1  # counts in March, when the deed was done
        assert board(client, world, "cadre_a").get_json() == published
        april = board(client, world, "cadre_a", period="2026-04").get_json()
        live = client.get(
            "/api/v1/rankings",
            query_string={"village_id": world.village_a, "period": "2026-03"},
            headers=world.headers("cadre_a"),
        ).get_json()
    assert [(c["kind"], c["name"], c["amount"], c["month"]) for c in april["corrections"]] == [
        ("late", "户主x", 6, "2026-03")
    ]
    assert "榜单发布后补记" in april["corrections"][0]["note"]
    assert live["items"][0]["points"] == 8  # the ranking itself is always current


def test_closing_refusals_and_repeats(
    app: Flask, client: FlaskClient, runner: Any, world: World
) -> None:
    earn(app, world.household_x, 2, local(2026, 3, 5))
    with frozen(local(2026, 3, 31, 23)):
        running = close(runner, "2026-03")
        assert running.exit_code != 0 and "还没有结束" in running.output
    with frozen(APRIL_2):
        for bad in ("2026-3", "2026-Q1", "march"):
            result = close(runner, bad)
            assert result.exit_code != 0, bad
        missing = close(runner, "2026-03", "--village-id", "9999")
        assert missing.exit_code != 0
        assert close(runner, "2026-03").exit_code == 0
        repeat = close(runner, "2026-03")
        assert repeat.exit_code == 0 and "closed 0 board(s)" in repeat.output
        assert "already closed" in repeat.output
    with app.app_context():
        assert (
            db.session.scalar(
                select(BoardSnapshot.id).where(
                    BoardSnapshot.village_id == world.village_a, BoardSnapshot.period == "2026-03"
                )
            )
            is not None
        )


def test_cron_closes_months_once_their_claims_are_decided(
    app: Flask, client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> None:
    earn(app, world.household_x, 2, local(2026, 1, 15))
    earn(app, world.household_y, 3, local(2026, 2, 15))
    with frozen(local(2026, 3, 29)):
        claim = self_report(client, world, "villager_x", items["PUB-VOLUNTEER"], 1)
        approve(client, world, "cadre_a", claim.get_json()["id"])

    def close_due() -> str:
        result = runner.invoke(args=["rankings", "close-due"])
        assert result.exit_code == 0, result.output
        return result.output

    with frozen(APRIL_2):
        output = close_due()
    # Village A: January and February (nothing claimed then), not March (in notice).
    # Village B: February and March, from its first month with points.
    assert set(re.findall(r"village (\d+) (\d{4}-\d\d): closed", output)) == {
        (str(world.village_a), "2026-01"),
        (str(world.village_a), "2026-02"),
        (str(world.village_b), "2026-02"),
        (str(world.village_b), "2026-03"),
    }
    with frozen(local(2026, 4, 3, 12)):
        assert post_due(runner) == 1
        output = close_due()
        assert set(re.findall(r"village (\d+) (\d{4}-\d\d): closed", output)) == {
            (str(world.village_a), "2026-03")
        }
        assert "closed 0 board(s)" in close_due()
        closed = board(client, world, "cadre_a").get_json()
    assert closed["status"] == "closed"
    assert [(r["name"], r["points"]) for r in closed["red"]] == [("户主x", 2)]


def test_a_cadre_closes_the_board_through_the_api(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    earn(app, world.household_x, 2, local(2026, 3, 5))
    path = f"/api/v1/villages/{world.village_a}/board/close"

    def post(user: str, body: dict[str, Any], **headers: str) -> Any:
        return client.post(path, json=body, headers={**world.headers(user), **headers})

    with frozen(local(2026, 3, 29)):
        early = post("cadre_a", {"period": "2026-03"})
        assert early.status_code == 422 and error_code(early) == "month_not_over"
        claim = self_report(client, world, "villager_x", items["PUB-VOLUNTEER"], 1)
        approve(client, world, "cadre_a", claim.get_json()["id"])
    with frozen(APRIL_2):
        assert post("villager_x", {"period": "2026-03"}).status_code == 403
        assert post("cadre_b", {"period": "2026-03"}).status_code == 404
        assert post("tadmin2", {"period": "2026-03"}).status_code == 404
        assert post("cadre_a", {"period": "2026-13"}).status_code == 422
        assert post("cadre_a", {"period": "2026-03", "extra": 1}).status_code == 422
        waiting = post("cadre_a", {"period": "2026-03"})
        assert waiting.status_code == 409 and error_code(waiting) == "claims_undecided"
        assert waiting.get_json()["error"]["details"] == {"period": "2026-03", "claims": 1}
        done = post(
            "cadre_a", {"period": "2026-03", "force": True}, **{"Idempotency-Key": "close-march"}
        )
        assert done.status_code == 201, done.get_json()
        assert (done.get_json()["status"], done.get_json()["closed_by"]) == (
            "closed",
            world.cadre_a,
        )
        replay = post(
            "cadre_a", {"period": "2026-03", "force": True}, **{"Idempotency-Key": "close-march"}
        )
        assert replay.status_code == 201 and replay.get_json() == done.get_json()
        again = post("cadre_a", {"period": "2026-03", "force": True})
        assert again.status_code == 409 and error_code(again) == "board_closed"
    with app.app_context():
        actions = db.session.scalars(
            select(AuditEntry.action).where(AuditEntry.action == "board.close")
        ).all()
    assert actions == ["board.close"]


# ---- privacy --------------------------------------------------------------------------------


def test_public_board_masks_names_and_hides_opted_out_households(
    app: Flask, client: FlaskClient, runner: Any, world: World
) -> None:
    march = local(2026, 3, 10)
    shy = add_household(app, world.village_a, "b户", "欧阳小明", openid="openid-shy")
    earn(app, world.household_x, 9, march)
    earn(app, shy["household"], 10, march)
    earn(app, shy["household"], -5, march)  # on the black list too (the default 5 points)
    patched = client.patch(
        f"/api/v1/households/{shy['household']}",
        json={"public_board_opt_out": True},
        headers=world.headers("cadre_a"),
    )
    assert patched.status_code == 200, patched.get_json()

    with frozen(APRIL_2):
        public = board(client, world, "villager_x").get_json()
        own = board(client, world, shy["user"]).get_json()
        staff = board(client, world, "cadre_a").get_json()
        posted = board(client, world, "cadre_a", public="true").get_json()
    assert [(r["name"], r["household_id"]) for r in public["red"]] == [
        ("户*x", world.household_x),
        ("（不公开）", None),
    ]
    assert [(r["name"], r["household_id"]) for r in public["black"]] == [("（不公开）", None)]
    assert public["masked"] is True
    assert public["mine"] == {
        "household_id": world.household_x,
        "points": 9,
        "rank": 1,
        "total": 2,
        "barred": False,
        "stars": 0,
        "on_black_list": False,
    }
    # The household that opted out still sees its own place.
    assert own["mine"] | {"stars": 0} == {
        "household_id": shy["household"],
        "points": 5,
        "rank": 2,
        "total": 2,
        "barred": False,
        "stars": 0,
        "on_black_list": True,
    }
    assert [r["name"] for r in staff["red"]] == ["户主x", "欧阳小明"]
    assert [r["name"] for r in posted["red"]] == ["户*x", "（不公开）"]

    # The township turns masking off for its villages; village A turns it back on.
    assert (
        settings(client, world, "tadmin1", {"mask_names": False}, township=True).status_code == 200
    )
    with frozen(APRIL_2):
        assert [r["name"] for r in board(client, world, "villager_x").get_json()["red"]] == [
            "户主x",
            "（不公开）",
        ]
    own_setting = settings(client, world, "cadre_a", {"mask_names": True})
    assert own_setting.get_json() | {"township_id": None} == {
        "village_id": world.village_a,
        "township_id": None,
        "mask_names": True,
        "red_list_size": None,
        "effective": {"mask_names": True, "red_list_size": 10},
    }
    with frozen(APRIL_2):
        assert [r["name"] for r in board(client, world, "villager_x").get_json()["red"]] == [
            "户*x",
            "（不公开）",
        ]
        # A household that opts out after its month was published is hidden there too.
        assert close(runner, "2026-03").exit_code == 0
        client.put(
            "/api/v1/me/board-privacy",
            json={"public_board_opt_out": True},
            headers=world.headers("villager_x"),
        )
        closed = board(client, world, "villager_x").get_json()
    assert [r["name"] for r in closed["red"]] == ["（不公开）", "（不公开）"]
    assert closed["mine"]["rank"] == 1
    with app.app_context():
        actions = set(db.session.scalars(select(AuditEntry.action)))
    assert {"board_settings.update", "household.board_privacy", "household.update"} <= actions


def test_board_settings_scope_and_validation(app: Flask, client: FlaskClient, world: World) -> None:
    assert settings(client, world, "villager_x", {"mask_names": False}).status_code == 403
    assert settings(client, world, "cadre_b", {"mask_names": False}).status_code == 404
    assert settings(client, world, "tadmin2", {"mask_names": False}).status_code == 404
    assert (
        settings(client, world, "cadre_a", {"mask_names": False}, township=True).status_code == 403
    )
    assert (
        settings(client, world, "tadmin2", {"mask_names": False}, township=True).status_code == 404
    )
    for bad in (
        {"red_list_size": 0},
        {"red_list_size": 101},
        {"mask": True},
        {"mask_names": "yes please"},
    ):
        response = settings(client, world, "cadre_a", bad)
        assert response.status_code == 422, bad
    assert (
        settings(client, world, "tadmin1", {"red_list_size": 5}, township=True).status_code == 200
    )
    got = client.get(
        f"/api/v1/villages/{world.village_a}/board-settings", headers=world.headers("cadre_a")
    ).get_json()
    assert (got["red_list_size"], got["effective"]["red_list_size"]) == (None, 5)
    assert (
        client.get(
            f"/api/v1/townships/{world.township_1}/board-settings", headers=world.headers("tadmin1")
        ).get_json()["red_list_size"]
        == 5
    )
    assert (
        client.put(
            "/api/v1/me/board-privacy",
            json={"public_board_opt_out": True},
            headers=world.headers("cadre_a"),
        ).status_code
        == 403
    )
    assert (
        client.put(
            "/api/v1/me/board-privacy", json={}, headers=world.headers("villager_x")
        ).status_code
        == 422
    )


def test_board_scope(app: Flask, client: FlaskClient, world: World) -> None:
    for user in ("villager_x", "cadre_a", "tadmin1", "county"):
        assert board(client, world, user).status_code == 200, user
    for user in ("villager_y", "cadre_b", "tadmin2"):
        assert board(client, world, user).status_code == 404, user
    # a clerk sees nothing of the villages their shop serves
    assert board(client, world, "clerk_a").status_code == 404
    assert client.get(f"/api/v1/villages/{world.village_a}/board").status_code == 401
    assert board(client, world, "cadre_a", period="2026-00").status_code == 422
    quarter = board(client, world, "cadre_a", period="2026-Q1").get_json()
    assert (quarter["period_label"], quarter["status"]) == ("2026年第1季度", "open")


# ---- printing -------------------------------------------------------------------------------


def _pixels(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def test_printed_board_png_and_pdf_on_a4_and_a3(
    app: Flask, client: FlaskClient, world: World
) -> None:
    earn(app, world.household_x, 9, local(2026, 3, 10))
    path = f"/api/v1/villages/{world.village_a}/board"
    with frozen(APRIL_2):
        a4 = client.get(f"{path}.png", headers=world.headers("cadre_a"))
        a3 = client.get(f"{path}.png?size=A3", headers=world.headers("villager_x"))
        pdf = client.get(f"{path}.pdf?period=2026-03&size=A4", headers=world.headers("cadre_a"))
        pdf3 = client.get(f"{path}.pdf?size=A3", headers=world.headers("cadre_a"))
        assert (
            client.get(f"{path}.png?size=A5", headers=world.headers("cadre_a")).status_code == 422
        )
        assert client.get(f"{path}.png", headers=world.headers("villager_y")).status_code == 404
        assert client.get(f"{path}.pdf", headers=world.headers("clerk_a")).status_code == 404
    assert (a4.status_code, a4.content_type) == (200, "image/png")
    assert _pixels(a4.data) == (1654, 2339)  # 210 × 297 mm at 200 dpi
    assert _pixels(a3.data) == (2339, 3307)
    assert (pdf.status_code, pdf.content_type) == (200, "application/pdf")
    assert pdf.data.startswith(b"%PDF-") and pdf.data.rstrip().endswith(b"%%EOF")
    assert b"/MediaBox [0 0 595.44 842.04]" in pdf.data  # A4 in points
    assert b"/MediaBox [0 0 842.04 1190.52]" in pdf3.data  # A3
    assert 'filename="board-' in pdf.headers["Content-Disposition"]
    # The header band is the board's red, and the page is otherwise mostly white paper.
    with Image.open(io.BytesIO(a4.data)) as image:
        assert image.convert("RGB").getpixel((20, 20)) == RED
        assert image.convert("RGB").getpixel((20, 1000)) == WHITE


def test_the_board_font_has_real_chinese_glyphs(app: Flask) -> None:
    """The glyphs the board prints are drawn by the font, not its empty-box glyph (豆腐块)."""
    spec = find_font(app.config["BOARD_FONT_PATH"] or None)
    font = _font(spec, 40)
    missing = bytes(font.getmask("\U0010fffd"))
    for char in "清水村积分红黑榜示范户限期整改星级名次第★张欧阳":
        mask = font.getmask(char)
        assert mask.getbbox() is not None and bytes(mask) != missing, char


def test_a_missing_font_is_a_clear_error_not_empty_boxes(
    app: Flask, client: FlaskClient, world: World
) -> None:
    app.config["BOARD_FONT_PATH"] = "/nonexistent/font.ttf"
    try:
        response = client.get(
            f"/api/v1/villages/{world.village_a}/board.png", headers=world.headers("cadre_a")
        )
    finally:
        app.config["BOARD_FONT_PATH"] = ""
    assert response.status_code == 503 and error_code(response) == "board_font_missing"


def test_the_printed_qr_opens_the_online_board_without_login(
    app: Flask, client: FlaskClient, world: World
) -> None:
    earn(app, world.household_x, 9, local(2026, 3, 10))
    earn(app, world.household_x, -5, local(2026, 3, 11))
    with frozen(APRIL_2):
        assert (
            client.get(
                f"/api/v1/villages/{world.village_a}/board.png", headers=world.headers("cadre_a")
            ).status_code
            == 200
        )
        with app.app_context():
            token = db.session.scalar(
                select(PublicLink.token).where(PublicLink.village_id == world.village_a)
            )
        assert token is not None
        page = client.get(f"/b/{token}", query_string={"period": "2026-03"})
        gone = client.get("/b/not-a-real-token")
    assert (page.status_code, page.content_type) == (200, "text/html; charset=utf-8")
    html = page.get_data(as_text=True)
    assert "清水村积分红黑榜" in html and "2026年3月" in html and "户*x" in html
    assert "户主x" not in html  # masked, as on the wall
    assert "扣分 -5" in html
    assert gone.status_code == 404 and "二维码已失效" in gone.get_data(as_text=True)


# ---- the household plate (门牌) ---------------------------------------------------------------


def test_household_plate_and_its_public_page(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    set_policy(client, world, qualification_line=5, star_levels=[5, 8, 10, 12])
    other = add_household(app, world.village_a, "b户", "李四")
    earn(app, world.household_x, 6, local(2026, 2, 10))
    earn(app, world.household_x, 3, local(2026, 4, 3))
    earn(app, other["household"], 5, local(2026, 4, 3))
    path = f"/api/v1/households/{world.household_x}/plate.png"
    with frozen(local(2026, 4, 20)):
        plate = client.get(path, headers=world.headers("cadre_a"))
        assert client.get(path, headers=world.headers("villager_x")).status_code == 200
        assert (
            client.get(
                f"/api/v1/households/{other['household']}/plate.png",
                headers=world.headers("villager_x"),
            ).status_code
            == 404
        )
        assert client.get(path, headers=world.headers("cadre_b")).status_code == 404
        assert client.get(path, headers=world.headers("clerk_a")).status_code == 404
    assert plate.content_type == "image/png" and _pixels(plate.data) == (1181, 1654)
    with app.app_context():
        token = db.session.scalar(
            select(PublicLink.token).where(PublicLink.household_id == world.household_x)
        )
    assert token is not None

    with frozen(local(2026, 4, 20)):
        page = client.get(f"/h/{token}")
        data = client.get(f"/api/v1/plates/{token}").get_json()
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "清水村" in html and "户*x" in html and "全村第 <strong>2</strong> 名" in html
    assert "★★" in html and "★★★" not in html  # 9 points this year: lines 5 and 8
    assert data == {
        "village": "清水村",
        "name": "户*x",
        "opted_out": False,
        "month": "2026-04",
        "month_label": "2026年4月",
        "points": 3,
        "rank": 2,
        "households": 2,
        "barred": False,
        "year": "2026",
        "stars": 2,
        "year_points": 9,
    }

    # A vetoed household's page says it is not ranked this month.
    bar(app, world.household_x, "2026-04", "2026-06")
    with frozen(local(2026, 4, 20)):
        barred = client.get(f"/api/v1/plates/{token}").get_json()
        assert (barred["rank"], barred["barred"], barred["stars"]) == (None, True, 0)
        assert "不参加评比" in client.get(f"/h/{token}").get_data(as_text=True)

    # Renewing the code retires the printed plate.
    with frozen(local(2026, 4, 21)):
        assert (
            client.post(
                f"/api/v1/households/{world.household_x}/plate/renew",
                headers=world.headers("cadre_b"),
            ).status_code
            == 404
        )
        renewed = client.post(
            f"/api/v1/households/{world.household_x}/plate/renew",
            headers=world.headers("villager_x"),
        )
        assert renewed.status_code == 201, renewed.get_json()
        new_token = renewed.get_json()["url"].rsplit("/", 1)[1]
        assert renewed.get_json()["url"] == f"https://jf.example.gov.cn/h/{new_token}"
        assert client.get(f"/h/{token}").status_code == 404
        assert client.get(f"/api/v1/plates/{token}").status_code == 404
        assert client.get(f"/h/{new_token}").status_code == 200

        # The household opts out: the page no longer shows its points.
        client.put(
            "/api/v1/me/board-privacy",
            json={"public_board_opt_out": True},
            headers=world.headers("villager_x"),
        )
        hidden = client.get(f"/api/v1/plates/{new_token}").get_json()
        assert (hidden["name"], hidden["points"], hidden["rank"], hidden["stars"]) == (
            "（不公开）",
            None,
            None,
            None,
        )
        assert "不在公开榜单上展示" in client.get(f"/h/{new_token}").get_data(as_text=True)


def test_a_plate_shows_no_rank_before_the_household_has_points(
    app: Flask, client: FlaskClient, world: World
) -> None:
    """Early in a month the whole village ties at 0: no plate reads "全村第 1 名"."""
    other = add_household(app, world.village_a, "b户", "李四")
    earn(app, other["household"], 5, local(2026, 3, 3))  # last month's points do not count
    with frozen(local(2026, 4, 2)):
        created = client.post(
            f"/api/v1/households/{world.household_x}/plate/renew", headers=world.headers("cadre_a")
        )
        assert created.status_code == 201, created.get_json()
        token = created.get_json()["url"].rsplit("/", 1)[1]
        data = client.get(f"/api/v1/plates/{token}").get_json()
        html = client.get(f"/h/{token}").get_data(as_text=True)
    assert (data["points"], data["rank"], data["barred"]) == (0, None, False)
    assert "全村第" not in html and "暂不排名" in html

    earn(app, world.household_x, 2, local(2026, 4, 3))
    with frozen(local(2026, 4, 5)):
        data = client.get(f"/api/v1/plates/{token}").get_json()
        html = client.get(f"/h/{token}").get_data(as_text=True)
    assert (data["points"], data["rank"]) == (2, 1)
    assert "全村第 <strong>1</strong> 名" in html


def test_stale_records_are_not_needed_for_a_new_month(
    app: Flask, client: FlaskClient, world: World
) -> None:
    """A board for a month with no entries at all is empty, not an error."""
    with frozen(APRIL_2 + timedelta(days=400)):
        body = board(client, world, "cadre_a", period="2027-03").get_json()
    assert (body["red"], body["black"], body["participating"], body["households"]) == ([], [], 0, 1)


# ---- closing at once (PostgreSQL) -------------------------------------------------------------


@on_postgres
def test_closing_the_same_month_at_once_publishes_one_board(app: Flask, world: World) -> None:
    earn(app, world.household_x, 5, local(2026, 3, 10))

    def close_it(_: int) -> tuple[int, bool]:
        with app.app_context():
            snapshot, created = closing.close_month(
                db.session, world.village_a, "2026-03", now=APRIL_2, tz=SHANGHAI
            )
            db.session.commit()
            return snapshot.id, created

    results = together(6, close_it)
    assert sorted(created for _, created in results) == [False] * 5 + [True]
    assert len({snapshot_id for snapshot_id, _ in results}) == 1
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(BoardSnapshot)) == 1


@on_postgres
def test_printing_a_plate_at_once_makes_one_code(
    app: Flask, client: FlaskClient, world: World
) -> None:
    headers = world.headers("cadre_a")

    def plate(_: int) -> int:
        response = app.test_client().get(
            f"/api/v1/households/{world.household_x}/plate.png", headers=headers
        )
        return response.status_code

    assert together(4, plate) == [200] * 4
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(PublicLink)) == 1
