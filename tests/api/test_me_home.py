"""The villager's home screen (GET /me/home) says what the screens' own endpoints say, and
the lists carry the names and figures a screen shows: the passbook's balance (余额) after
each line, who posted it and the deed's day; ranking rows' group; the items a villager may
report."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

import rules
from backend.extensions import db
from points import ledger
from points.boards import links
from tests.factories import (
    World,
    add_reward,
    approve,
    earn_posted,
    fund,
    object_to,
    order,
    self_report,
)
from tests.support.clock import SHANGHAI, frozen, local
from tests.support.reads import error_code

API = "/api/v1"
MARCH_10 = local(2026, 3, 10)


def get(client: FlaskClient, world: World, user: str | int, path: str) -> Any:
    response = client.get(f"{API}{path}", headers=world.headers(user))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def household_x_in_march(
    app: Flask,
    client: FlaskClient,
    runner: Any,
    world: World,
    items: dict[str, int],
    neighbour: dict[str, int],
) -> dict[str, Any]:
    """Household x on 12 March: 100 points funded, 6 earned by a claim then reversed by the
    cadre, 4 in notice (objected to by the neighbour), a claim rejected, and an order of 50
    points that expires on the 13th."""
    fund(app, world.household_x, 100, at=local(2026, 3, 2))
    earned = earn_posted(client, runner, world, items["PUB-VOLUNTEER"], 3, at=local(2026, 3, 3))
    rice = add_reward(app, world.shop_a, "大米 5kg", 50, 10)
    with frozen(MARCH_10):
        passbook = get(client, world, "villager_x", "/me/ledger")["items"]
        entry = next(e for e in passbook if e["claim_id"] == earned)
        reversed_ = client.post(
            f"{API}/ledger/{entry['id']}/reverse",
            json={"reason": "重复申报"},
            headers=world.headers("cadre_a"),
        )
        assert reversed_.status_code == 201, reversed_.get_json()
        reported = self_report(client, world, "villager_x", items["PUB-VOLUNTEER"], 2)
        in_notice = approve(client, world, "cadre_a", reported.get_json()["id"]).get_json()
        assert in_notice["status"] == "in_notice"
        objection = object_to(client, world, neighbour["user"], in_notice["id"])
        assert objection.status_code == 201, objection.get_json()
        refused = self_report(client, world, "villager_x", items["PUB-VOLUNTEER"], 1)
        rejected = client.post(
            f"{API}/claims/{refused.get_json()['id']}/reject",
            json={"reason": "照片看不清"},
            headers=world.headers("cadre_a"),
        )
        assert rejected.status_code == 200, rejected.get_json()
        ordered = order(client, world.headers("villager_x"), world.shop_a, [(rice, 1)])
        assert ordered.status_code == 201, ordered.get_json()
    return {
        "in_notice": in_notice,
        "objection": objection.get_json(),
        "rejected": rejected.get_json(),
        "order": ordered.get_json(),
    }


def test_home_says_what_the_screens_own_endpoints_say(
    app: Flask,
    client: FlaskClient,
    runner: Any,
    world: World,
    items: dict[str, int],
    neighbour: dict[str, int],
) -> None:
    made = household_x_in_march(app, client, runner, world, items, neighbour)
    with frozen(local(2026, 3, 12, 12)):  # the order expires on the 13th at 10:00
        home = get(client, world, "villager_x", "/me/home")
        account = get(client, world, "villager_x", "/me/account")
        passbook = get(client, world, "villager_x", "/me/ledger")
        notices = get(
            client, world, "villager_x", f"/villages/{world.village_a}/notices?per_page=100"
        )
        ranking = get(client, world, "villager_x", f"/rankings?village_id={world.village_a}")
        year_board = get(
            client, world, "villager_x", f"/villages/{world.village_a}/board?period=2026"
        )
        orders = get(client, world, "villager_x", "/redemptions?status=reserved")
        with app.app_context():
            plate = links.plate_view(
                db.session, world.household_x, local(2026, 3, 12, 12), SHANGHAI
            )

    assert (home["village_name"], home["household_name"], home["villager_name"]) == (
        "清水村",
        "x户",
        "户主x",
    )
    # Spendable and held as the account says; the passbook's last balance is both.
    assert (
        (home["points"]["available"], home["points"]["held"])
        == (account["available"], account["held"])
        == (50, 50)
    )
    assert (
        passbook["items"][0]["balance"]
        == 100
        == home["points"]["available"] + home["points"]["held"]
    )
    # In notice: what the notice lists of the household (objected claims included).
    mine = [n for n in notices["items"] if n["household_id"] == world.household_x]
    assert home["points"]["in_notice"] == sum(n["points"] for n in mine) == 4
    assert home["points"]["in_notice_count"] == len(mine) == 1
    # This month: the account's figure and the rankings' place (the reversal counted).
    assert home["month"]["points"] == account["this_month"] == ranking["mine"]["points"] == 100
    assert home["month"]["rank"] == ranking["mine"]["rank"] == 1
    assert home["month"]["households"] == ranking["mine"]["total"] == 2
    # Stars: one definition, as the plate and the year's board give them.
    assert home["stars"]["stars"] == plate["stars"] == year_board["mine"]["stars"] == 4
    assert home["stars"]["points"] == plate["year_points"] == 100
    # The qualification line of the policy, the 12-month score, the gap.
    assert home["qualification"] == {
        "line": 60,
        "score": 100,
        "gap": 0,
        "qualified": True,
        "months": 12,
    }
    # What needs attention: the objection, the rejection, the order about to expire.
    kinds = {a["kind"]: a for a in home["attention"]}
    assert set(kinds) == {"objection", "rejected", "order_expiring"}
    assert (
        kinds["objection"]["claim_id"],
        kinds["objection"]["objection_id"],
        kinds["objection"]["title"],
    ) == (made["in_notice"]["id"], made["objection"]["id"], "志愿服务")
    assert (kinds["rejected"]["claim_id"], kinds["rejected"]["reason"]) == (
        made["rejected"]["id"],
        "照片看不清",
    )
    reserved = orders["items"][0]
    assert kinds["order_expiring"]["redemption_id"] == reserved["id"] == made["order"]["id"]
    assert kinds["order_expiring"]["expires_at"] == reserved["expires_at"]
    assert kinds["order_expiring"]["points"] == 50
    assert kinds["order_expiring"]["title"].startswith("大米 5kg")


def test_home_of_a_household_with_nothing_yet(
    client: FlaskClient,
    world: World,
    items: dict[str, int],
    neighbour: dict[str, int],
) -> None:
    with frozen(MARCH_10):
        home = get(client, world, neighbour["user"], "/me/home")
        ranking = get(client, world, neighbour["user"], f"/rankings?village_id={world.village_a}")
    assert home["month"]["points"] == 0
    assert home["month"]["rank"] is None  # no place at 0 points
    assert ranking["mine"]["rank"] == 1  # the ranking still places it among equals
    assert home["month"]["households"] == 2
    assert home["points"] == {"available": 0, "held": 0, "in_notice": 0, "in_notice_count": 0}
    assert home["stars"]["stars"] == 0
    assert home["qualification"] == {
        "line": 60,
        "score": 0,
        "gap": 60,
        "qualified": False,
        "months": 12,
    }
    assert home["attention"] == []


def test_home_before_binding_and_for_staff(client: FlaskClient, world: World) -> None:
    for user in ("unbound", "cadre_a"):
        response = client.get(f"{API}/me/home", headers=world.headers(user))
        assert response.status_code == 403 and error_code(response) == "not_bound"


def test_home_reads_a_few_queries_whatever_it_lists(
    app: Flask,
    client: FlaskClient,
    runner: Any,
    world: World,
    items: dict[str, int],
    neighbour: dict[str, int],
) -> None:
    household_x_in_march(app, client, runner, world, items, neighbour)
    statements: list[str] = []
    with app.app_context():
        engine = db.engine

    def count(*args: Any) -> None:
        statements.append(args[2])

    with frozen(local(2026, 3, 12, 12)):
        headers = world.headers("villager_x")
        event.listen(engine, "before_cursor_execute", count)
        try:
            assert client.get(f"{API}/me/home", headers=headers).status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", count)
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(reads) <= 16, reads  # 13 today, the login included


# ---- the passbook: balance, who posted, the deed's day ----------------------------------------


def test_passbook_lines_carry_the_balance_after_them_on_any_page(
    app: Flask,
    client: FlaskClient,
    runner: Any,
    world: World,
    items: dict[str, int],
    neighbour: dict[str, int],
) -> None:
    household_x_in_march(app, client, runner, world, items, neighbour)
    fund(app, world.household_x, 7, at=local(2026, 4, 2))
    with frozen(local(2026, 4, 3)):
        whole = get(client, world, "villager_x", "/me/ledger")["items"]
        # Newest first: +7 (April), −6 reversal, +6 earned, +100 funded.
        assert [(e["amount"], e["balance"]) for e in whole] == [
            (7, 107),
            (-6, 100),
            (6, 106),
            (100, 100),
        ]
        for page in range(1, 5):
            one = get(client, world, "villager_x", f"/me/ledger?per_page=1&page={page}")
            assert one["total"] == 4
            assert one["items"][0]["balance"] == whole[page - 1]["balance"]
        march = get(client, world, "villager_x", "/me/ledger?month=2026-03")
        assert march["total"] == 3
        assert [e["balance"] for e in march["items"]] == [100, 106, 100]
        earned = whole[2]
        assert earned["deed_date"] == "2026-03-03"  # posted on the 9th, after the notice
        assert earned["created_by_name"] == "户主x"  # the villager reported it
        assert earned["approved_by_names"] == ["cadre_a"]
        reversal = whole[1]
        assert (reversal["kind"], reversal["created_by_name"], reversal["deed_date"]) == (
            "reverse",
            "cadre_a",
            None,
        )
        assert whole[3]["created_by_name"] is None  # posted by the system


def test_deep_pages_and_months_show_the_running_sum_of_the_whole_account(
    app: Flask, client: FlaskClient, world: World, neighbour: dict[str, int]
) -> None:
    """The balance of a line is the sum of the account's entries up to it, read on a deep
    page, under a month whose entries are interleaved with other months' (late postings),
    and with points held by an open order (held counts in the balance)."""
    months = [local(2026, 1, 5), local(2026, 2, 5), local(2026, 3, 5)]
    with app.app_context():
        for n in range(57):
            deed = months[n % 3] if n % 4 else months[(n + 1) % 3]
            ledger.append(
                db.session,
                household_id=world.household_x,
                kind="earn" if n % 5 else "deduct",
                amount=(n % 7 + 3) if n % 5 else -(n % 3 + 1),
                when=ledger.EntryTime(SHANGHAI, at=local(2026, 3, 20), counts_for=deed),
                origin=ledger.EntryOrigin(note=f"第{n}条"),
            )
        db.session.commit()
    rice = add_reward(app, world.shop_a, "大米 5kg", 30, 10)
    with frozen(local(2026, 3, 21)):
        placed = order(client, world.headers("villager_x"), world.shop_a, [(rice, 1)])
        assert placed.status_code == 201, placed.get_json()
        account = get(client, world, "villager_x", "/me/account")
        assert account["held"] == 30
        whole: list[dict[str, Any]] = []
        for page in (1, 2):
            whole += get(client, world, "villager_x", f"/me/ledger?per_page=50&page={page}")[
                "items"
            ]
    assert len(whole) == 57
    running, naive = 0, {}
    for line in sorted(whole, key=lambda e: e["id"]):
        running += line["amount"]
        naive[line["id"]] = running
    assert [e["balance"] for e in whole] == [naive[e["id"]] for e in whole]
    assert whole[0]["balance"] == account["available"] + account["held"]
    with frozen(local(2026, 3, 21)):
        for page in range(1, 10):  # 8 pages of 7, the last one of 1; then none
            got = get(client, world, "villager_x", f"/me/ledger?per_page=7&page={page}")
            assert got["total"] == 57
            assert [(e["id"], e["balance"]) for e in got["items"]] == [
                (e["id"], naive[e["id"]]) for e in whole[(page - 1) * 7 : page * 7]
            ]
        for month in ("2026-01", "2026-02", "2026-03"):
            of_month = [e for e in whole if e["month"] == month]
            for page in (1, 2, 3, 4):
                got = get(
                    client, world, "villager_x", f"/me/ledger?month={month}&per_page=6&page={page}"
                )
                assert got["total"] == len(of_month)
                assert [(e["id"], e["balance"]) for e in got["items"]] == [
                    (e["id"], naive[e["id"]]) for e in of_month[(page - 1) * 6 : page * 6]
                ]
        household = get(
            client, world, "cadre_a", f"/households/{world.household_x}/ledger?per_page=5&page=9"
        )
        assert [e["balance"] for e in household["items"]] == [naive[e["id"]] for e in whole[40:45]]


# ---- rankings and rule items ------------------------------------------------------------------


def test_ranking_rows_carry_their_group(
    app: Flask, client: FlaskClient, world: World, neighbour: dict[str, int]
) -> None:
    fund(app, world.household_x, 10, at=MARCH_10)
    with frozen(MARCH_10):
        rows = get(client, world, "cadre_a", f"/rankings?village_id={world.village_a}")
    groups = {r["household_id"]: r["group"] for r in rows["items"]}
    assert groups == {world.household_x: "第一村民小组", neighbour["household"]: None}


def test_a_villager_lists_the_items_they_may_report(
    client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    every = get(client, world, "villager_x", "/rule-items?per_page=100")
    assert every["total"] == 46
    own = get(client, world, "villager_x", "/rule-items?submit_by=villager&per_page=100")
    assert own["total"] == len(own["items"]) == 26
    assert all("villager" in item["submit_by"] for item in own["items"])
    # The same filter on the village's list, paged like every list.
    paged = get(
        client,
        world,
        "cadre_a",
        f"/villages/{world.village_a}/rule-items?submit_by=villager&per_page=10&page=3",
    )
    assert (paged["total"], len(paged["items"])) == (26, 6)
    assert [i["id"] for i in paged["items"]] == [i["id"] for i in own["items"][20:]]
    # A villager's report of the others is refused, by the same rule.
    other = next(i for i in every["items"] if "villager" not in i["submit_by"])
    refused = self_report(client, world, "villager_x", other["id"], 1)
    assert refused.status_code == 403 and error_code(refused) == "not_self_reportable"
    bad = client.get(f"{API}/rule-items?submit_by=anyone", headers=world.headers("villager_x"))
    assert bad.status_code == 422
    unbound = client.get(f"{API}/rule-items", headers=world.headers("unbound"))
    assert unbound.status_code == 403 and error_code(unbound) == "not_bound"
    township = client.get(f"{API}/rule-items", headers=world.headers("tadmin1"))
    assert township.status_code == 422 and error_code(township) == "village_required"


def test_a_delay_does_not_hide_an_order_expiring_tomorrow(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    """Only orders within 24 hours of their expiry are flagged."""
    fund(app, world.household_x, 100, at=local(2026, 3, 2))
    soap = add_reward(app, world.shop_a, "香皂", 5, 10)
    with frozen(MARCH_10):
        assert (
            order(client, world.headers("villager_x"), world.shop_a, [(soap, 1)]).status_code == 201
        )
    with frozen(MARCH_10 + timedelta(hours=47)):
        assert get(client, world, "villager_x", "/me/home")["attention"] == []
    with frozen(MARCH_10 + timedelta(hours=49)):
        flagged = get(client, world, "villager_x", "/me/home")["attention"]
        assert [a["kind"] for a in flagged] == ["order_expiring"]


def test_one_star_rule_for_boards_plates_and_home() -> None:
    """星级: one per level reached, none below the qualification line or when barred."""
    policy = rules.Policy(qualification_line=60, star_levels=(60, 70, 80, 90))
    assert [policy.stars(p) for p in (0, 59, 60, 75, 90, 200)] == [0, 0, 1, 2, 4, 4]
    assert policy.stars(95, barred=True) == 0
    # A line above the first level: below the line no star, whatever the levels say.
    assert rules.stars(65, 70, (60, 70)) == 0
    assert rules.stars(70, 70, (60, 70)) == 2
