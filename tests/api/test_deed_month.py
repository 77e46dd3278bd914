"""Work counts in the month it was done (village time), whenever it is scored, decided or
posted: per-hour work checked out after midnight, a veto (一票否决) decided in a month's last
days, and the monthly budget, which a reversed award gives back to. Clocks are frozen at the
month's edges with aware moments (`local`), so the tests hold whatever zone `frozen` uses."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from backend.extensions import db
from points.models import Claim, HouseholdFlag
from tests.factories import (
    World,
    add_cadre,
    add_household,
    approve,
    award_veto,
    earn,
    earn_posted,
    post_due,
    set_policy,
    volunteer,
)
from tests.support.clock import frozen, local
from tests.support.reads import board, entries_of, error_code, issued

API = "/api/v1"


def evening_shift(
    client: FlaskClient, world: World, item_id: int, starts_at: datetime, ends_at: datetime
) -> int:
    """A per-hour activity of village A, created the day before; its id."""
    with frozen(local(2026, 3, 30, 15)):
        created = client.post(
            f"{API}/activities",
            headers=world.headers("cadre_a"),
            json={
                "village_id": world.village_a,
                "title": "防汛值守",
                "rule_item_id": item_id,
                "starts_at": starts_at.isoformat(),
                "ends_at": ends_at.isoformat(),
                "qr_mode": "static",
            },
        )
    assert created.status_code == 201, created.get_json()
    return int(created.get_json()["id"])


def check_in(
    client: FlaskClient, world: World, activity_id: int, user: str | int, at: datetime
) -> int:
    with frozen(at):
        token = client.get(
            f"{API}/activities/{activity_id}/qr-token", headers=world.headers("cadre_a")
        ).get_json()["token"]
        checked = client.post(f"{API}/checkins", json={"token": token}, headers=world.headers(user))
    assert checked.status_code == 201, checked.get_json()
    assert checked.get_json()["status"] == "checked_in"
    return int(checked.get_json()["checkin_id"])


def red(body: dict[str, Any]) -> list[tuple[str, int]]:
    return [(r["name"], r["points"]) for r in body["red"]]


def closed_months(output: str, village_id: int) -> set[str]:
    return {
        month
        for village, month in re.findall(r"village (\d+) (\d{4}-\d\d): closed", output)
        if int(village) == village_id
    }


def close_due(runner: Any) -> str:
    result = runner.invoke(args=["rankings", "close-due"])
    assert result.exit_code == 0, result.output
    return result.output


# ---- per-hour work checked out after midnight ----------------------------------------------


def test_hours_worked_on_31_march_and_checked_out_on_1_april_are_marchs(
    app: Flask, client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> None:
    """19:00–23:00 on 31 March, checked out at 08:00 on 1 April: March's cap (40 points a
    month, 36 already given), March's budget (38: the 4 points pass it, so the township
    decides) and March's board; April has nothing of it."""
    set_policy(client, world, monthly_budget=38)
    volunteering = items["PUB-VOLUNTEER"]  # 2 points an hour, 40 a month per person
    with frozen(local(2026, 3, 10)):
        for hours in (8, 8, 2):
            assert volunteer(client, world, volunteering, hours)["status"] == "in_notice"
    with frozen(local(2026, 3, 16)):
        assert post_due(runner) == 3
    shift = evening_shift(
        client, world, volunteering, local(2026, 3, 31, 19), local(2026, 3, 31, 23)
    )
    checkin = check_in(client, world, shift, "villager_x", local(2026, 3, 31, 18, 45))

    with frozen(local(2026, 4, 1, 8)):
        done = client.post(
            f"{API}/checkins/{checkin}/checkout", headers=world.headers("villager_x")
        )
    out = done.get_json()
    assert done.status_code == 200, out
    assert (out["status"], out["points"]) == ("pending", 4)  # 4 of the 8: March is at 36
    with app.app_context():
        claim = db.session.get(Claim, out["claim_id"])
        assert claim is not None and claim.capped
        # The deed is the work from 19:00 (the scan at 18:45 was before the start).
        assert claim.occurred_at == local(2026, 3, 31, 19)

    with frozen(local(2026, 4, 1, 9)):
        decided = approve(client, world, "cadre_a", out["claim_id"]).get_json()
        assert decided["status"] == "approved"  # 36 + 4 > 38: March's budget, not April's
        assert issued(app) == {(world.village_a, "2026-03"): 36}
        passed = approve(client, world, "tadmin1", out["claim_id"]).get_json()
        assert passed["status"] == "in_notice"
    assert issued(app) == {(world.village_a, "2026-03"): 40}

    with frozen(local(2026, 4, 7, 12)):
        assert post_due(runner) == 1
        march = board(client, world, "2026-03")
        april = board(client, world, "2026-04")
    assert [e["month"] for e in entries_of(app, world.household_x)] == ["2026-03"] * 4
    assert red(march) == [("户主x", 40)]
    assert red(april) == []


def test_an_open_check_in_holds_its_month_back_from_closing_until_its_activity_ends(
    app: Flask, client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> None:
    """A night watch from 22:00 on 31 March to 02:00 on 1 April, checked in at 21:50 and not
    yet checked out: March's work, to be scored at check-out, so March does not close at
    00:15; once the watch is over a forgotten check-out no longer holds the board."""
    earn(app, world.household_x, 2, local(2026, 3, 5))
    watcher = add_household(app, world.village_a, "w户", "户主w", openid="openid-w")
    watch = evening_shift(
        client, world, items["PUB-VOLUNTEER"], local(2026, 3, 31, 22), local(2026, 4, 1, 2)
    )
    check_in(client, world, watch, watcher["user"], local(2026, 3, 31, 21, 50))

    with frozen(local(2026, 4, 1, 0, 15)):
        assert closed_months(close_due(runner), world.village_a) == set()
        by_hand = client.post(
            f"{API}/villages/{world.village_a}/board/close",
            json={"period": "2026-03"},
            headers=world.headers("cadre_a"),
        )
        assert by_hand.status_code == 409 and error_code(by_hand) == "claims_undecided"
        assert board(client, world, "2026-03")["status"] == "open"
    with frozen(local(2026, 4, 1, 2, 15)):
        assert closed_months(close_due(runner), world.village_a) == {"2026-03"}
        assert board(client, world, "2026-03")["status"] == "closed"


# ---- a veto (一票否决) of a month's last days ---------------------------------------------


def vetoed_on_28_march(
    client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> int:
    """Household x earns 6 points in March, household w 2: x heads March's red list. A veto
    awarded on 28 March by two cadres goes into its 7-day notice; returns its claim id."""
    earn_posted(client, runner, world, items["PUB-VOLUNTEER"], 3, local(2026, 3, 10))
    neighbour = add_household(world.app, world.village_a, "w户", "户主w")
    earn(world.app, neighbour["household"], 2, local(2026, 3, 12))
    second = add_cadre(world.app, world, "cadre_a2")
    with frozen(local(2026, 3, 28)):
        claim = award_veto(client, world, items["CIV-LAVISH"])
        approved = approve(client, world, second, claim["id"])
        assert approved.get_json()["status"] == "in_notice", approved.get_json()
        assert red(board(client, world, "2026-03")) == [("户主x", 6), ("户主w", 2)]
    return int(claim["id"])


def test_a_veto_decided_late_in_march_bars_the_household_from_march_on(
    app: Flask, client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> None:
    veto = vetoed_on_28_march(client, runner, world, items)
    with frozen(local(2026, 4, 4, 12)):  # the notice ended at 10:00
        assert post_due(runner) == 1
        march = board(client, world, "2026-03")
        assert closed_months(close_due(runner), world.village_a) == {"2026-03"}
        published = board(client, world, "2026-03")
    assert red(march) == [("户主w", 2)]
    assert [(r["name"], r["vetoed"]) for r in march["black"]] == [("户主x", True)]
    assert published["status"] == "closed" and red(published) == [("户主w", 2)]
    with app.app_context():
        [flag] = db.session.scalars(select(HouseholdFlag)).all()
        assert (flag.from_month, flag.until_month) == ("2026-03", "2027-02")  # 12 months

    # Withdrawn in May: the note names the month the bar started.
    with frozen(local(2026, 5, 5)):
        done = client.post(
            f"{API}/claims/{veto}/veto-withdrawal",
            json={"reason": "复核撤销"},
            headers=world.headers("tadmin1"),
        )
        assert done.status_code == 200, done.get_json()
        may = board(client, world, "2026-05")
    assert done.get_json()["veto_withdrawal"]["vetoed_month"] == "2026-03"
    assert [(c["kind"], c["month"]) for c in may["corrections"]] == [("veto_withdrawal", "2026-03")]
    assert may["corrections"][0]["note"].startswith("2026年3月一票否决撤销")


def test_a_veto_of_a_month_closed_before_it_posted_shows_on_the_next_board(
    app: Flask, client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> None:
    """March is closed by hand (forced) while the veto of 28 March is in notice: the
    published board keeps x first, and April's board says that x was barred from March."""
    vetoed_on_28_march(client, runner, world, items)
    with frozen(local(2026, 4, 2)):
        forced = runner.invoke(args=["rankings", "close", "2026-03", "--force"])
        assert forced.exit_code == 0, forced.output
        published = board(client, world, "2026-03")
    assert red(published) == [("户主x", 6), ("户主w", 2)]

    with frozen(local(2026, 4, 4, 12)):
        assert post_due(runner) == 1
        assert board(client, world, "2026-03") == published  # a closed board never changes
        april = board(client, world, "2026-04")
    assert [(r["name"], r["vetoed"]) for r in april["black"]] == [("户主x", True)]
    assert [
        (c["kind"], c["name"], c["amount"], c["month"], c["item"]) for c in april["corrections"]
    ] == [("late_veto", "户主x", 0, "2026-03", "大操大办、天价彩礼")]
    assert april["corrections"][0]["note"] == (
        "2026年3月榜单发布后一票否决生效，2026年3月至2027年2月不参加评比（已发布榜单不变）"
    )

    # April's board is published with the note; May's starts clean (April barred x).
    with frozen(local(2026, 5, 2)):
        assert closed_months(close_due(runner), world.village_a) == {"2026-04"}
        assert board(client, world, "2026-04")["corrections"] == april["corrections"]
        assert board(client, world, "2026-05")["corrections"] == []


# ---- reversals and the monthly budget -----------------------------------------------------


def test_a_reversed_award_gives_its_points_back_to_its_months_budget(
    app: Flask, client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> None:
    """A budget of 10: 6 points posted in March, then reversed as a mistake. The right award
    of 8 that follows fits March's budget again, and `ledger verify` agrees."""
    set_policy(client, world, monthly_budget=10)
    earn_posted(client, runner, world, items["PUB-VOLUNTEER"], 3, local(2026, 3, 10))
    assert issued(app) == {(world.village_a, "2026-03"): 6}
    [entry] = entries_of(app, world.household_x)
    with frozen(local(2026, 3, 20)):
        reversed_ = client.post(
            f"{API}/ledger/{entry['id']}/reverse",
            json={"reason": "志愿时长登记错户"},
            headers=world.headers("cadre_a"),
        )
        assert reversed_.status_code == 201, reversed_.get_json()
        assert issued(app) == {(world.village_a, "2026-03"): 0}
        again = volunteer(client, world, items["PUB-VOLUNTEER"], 4)
    assert (again["status"], again["points"]) == ("in_notice", 8)
    assert issued(app) == {(world.village_a, "2026-03"): 8}
    verified = runner.invoke(args=["ledger", "verify"])
    assert verified.exit_code == 0, verified.output
