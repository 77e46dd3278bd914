"""Pages of a list (docs/API_CONTRACT.md, Pages): `total` counted up to a cap, `total_exact`
false past it, a page starting past the cap refused (400 `page_too_deep`), and the filters
of the claim list returning the rows they name. The cap is patched small here; it is 10,000."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, func, select

from backend import openapi
from backend.extensions import db
from points.models import AuditEntry, Claim, Household, Redemption
from tests.factories import (
    World,
    add_household,
    add_reward,
    award,
    fund,
    order,
    self_report,
)
from tests.support.reads import error_code

API = "/api/v1"


@pytest.fixture()
def seven(app: Flask, world: World) -> list[int]:
    """Village A's households: household x and six more, in id order."""
    more = [
        add_household(app, world.village_a, f"{n}户", f"户主{n}")["household"] for n in "bcdefg"
    ]
    return [world.household_x, *more]


def households(client: FlaskClient, world: World, who: str = "cadre_a", **query: Any) -> Any:
    return client.get(
        f"{API}/villages/{world.village_a}/households",
        query_string=query,
        headers=world.headers(who),
    )


def test_a_list_within_the_cap_is_counted_exactly(
    client: FlaskClient, world: World, seven: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(openapi, "PAGE_CAP", 10)
    first = households(client, world, per_page=2).get_json()
    assert (first["total"], first["total_exact"]) == (7, True)
    assert [h["id"] for h in first["items"]] == seven[:2]
    last = households(client, world, per_page=2, page=4).get_json()
    assert ([h["id"] for h in last["items"]], last["total"], last["total_exact"]) == (
        seven[6:],
        7,
        True,
    )
    # past the list's end but not past the cap: an empty page, as before
    beyond = households(client, world, per_page=2, page=5).get_json()
    assert (beyond["items"], beyond["total"], beyond["total_exact"]) == ([], 7, True)


def test_a_list_longer_than_the_cap_says_so_and_pages_only_within_it(
    app: Flask,
    client: FlaskClient,
    world: World,
    seven: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(openapi, "PAGE_CAP", 5)
    first = households(client, world, per_page=2).get_json()
    assert (first["total"], first["total_exact"], first["page"]) == (5, False, 1)
    # the cap's last page shows the rows up to the cap, no further
    third = households(client, world, per_page=2, page=3).get_json()
    assert ([h["id"] for h in third["items"]], third["total"], third["total_exact"]) == (
        seven[4:5],
        5,
        False,
    )
    with app.app_context():
        before = (
            db.session.scalar(select(func.count()).select_from(Household)),
            db.session.scalar(select(func.count()).select_from(AuditEntry)),
        )
    refused = households(client, world, per_page=2, page=4)
    assert refused.status_code == 400
    assert error_code(refused) == "page_too_deep"
    body = refused.get_json()["error"]
    assert "筛选" in body["message"]
    assert body["details"] == {"cap": 5, "last_page": 3}
    with app.app_context():
        after = (
            db.session.scalar(select(func.count()).select_from(Household)),
            db.session.scalar(select(func.count()).select_from(AuditEntry)),
        )
    assert after == before
    # a filter that narrows the list below the cap counts it exactly again
    narrowed = client.get(
        f"{API}/claims",
        query_string={"household_id": world.household_x},
        headers=world.headers("cadre_a"),
    ).get_json()
    assert narrowed["total_exact"] is True


def test_the_console_shows_a_capped_total_and_refuses_a_page_past_it(
    client: FlaskClient, world: World, seven: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.console import console_login

    monkeypatch.setattr(openapi, "PAGE_CAP", 5)
    console_login(client, "cadre_a")
    page = client.get("/console/households")
    assert page.status_code == 200
    assert "共 5+ 户" in page.text
    monkeypatch.setattr(openapi, "PAGE_CAP", 100)
    assert "共 7 户" in client.get("/console/households").text
    monkeypatch.setattr(openapi, "PAGE_CAP", 5)
    refused = client.get("/console/households?page=3")  # 30 a page: rows 61…
    assert refused.status_code == 400
    assert "筛选" in refused.text


def listed(client: FlaskClient, world: World, path: str, who: str, **query: Any) -> list[int]:
    """The ids of a whole list, page by page (2 a page), checking each page's count."""
    found: list[int] = []
    page = 1
    while True:
        response = client.get(
            f"{API}{path}",
            query_string={"per_page": 2, "page": page, **query},
            headers=world.headers(who),
        )
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["total_exact"] is True
        found += [c["id"] for c in body["items"]]
        if len(body["items"]) < 2:
            assert body["total"] == len(found)
            return found
        page += 1


def newest_first(rows: list[Any], **where: Any) -> list[int]:
    return sorted(
        (r.id for r in rows if all(getattr(r, k) == v for k, v in where.items())), reverse=True
    )


def test_the_claim_filters_return_the_rows_they_name(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    others = [add_household(app, world.village_a, f"{n}户", f"户主{n}")["household"] for n in "pq"]
    targets = [world.household_x, *others]
    assert (
        award(client, world, items["ENV-YARD"], [{"household_id": h} for h in targets]).status_code
        == 201
    )
    assert self_report(client, world, "villager_x", items["PUB-VOLUNTEER"], 2).status_code == 201
    assert self_report(client, world, "villager_y", items["PUB-VOLUNTEER"], 2).status_code == 201
    with app.app_context():
        rows = db.session.execute(
            select(Claim.id, Claim.village_id, Claim.household_id, Claim.status)
        ).all()
    statuses = {r.status for r in rows}
    assert len(statuses) >= 2, statuses  # the status filter has something to leave out

    def claims(who: str, **query: Any) -> list[int]:
        return listed(client, world, "/claims", who, **query)

    def expected(**where: Any) -> list[int]:
        return newest_first(rows, **where)

    for who in ("county", "tadmin1"):
        assert claims(who) == expected()
        assert claims(who, village_id=world.village_a) == expected(village_id=world.village_a)
        assert claims(who, household_id=world.household_x) == expected(
            household_id=world.household_x
        )
        for status in statuses:
            assert claims(who, status=status) == expected(status=status)
            assert claims(who, village_id=world.village_a, status=status) == expected(
                village_id=world.village_a, status=status
            )
    assert claims("cadre_a") == expected(village_id=world.village_a)
    assert claims("villager_x") == expected(household_id=world.household_x)


def test_a_page_of_claims_reads_the_same_number_of_statements_whatever_its_size(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    others = [
        add_household(app, world.village_a, f"{n}户", f"户主{n}")["household"] for n in "pqrs"
    ]
    award(client, world, items["ENV-YARD"], [{"household_id": h} for h in others])
    award(client, world, items["ENV-YARD"], [{"household_id": world.household_x}])
    headers = world.headers("cadre_a")
    counted: list[int] = []
    with app.app_context():
        engine = db.engine

    def count(*_: Any) -> None:
        counted[-1] += 1

    event.listen(engine, "before_cursor_execute", count)
    try:
        for per_page in (1, 5):
            counted.append(0)
            # the whole list on one page (no count) or the first of several (a count)
            response = client.get(
                f"{API}/claims", query_string={"per_page": per_page}, headers=headers
            )
            assert response.status_code == 200
            assert len(response.get_json()["items"]) == per_page
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert counted[1] <= counted[0], counted


def test_the_order_filters_return_the_rows_they_name(
    app: Flask, client: FlaskClient, world: World
) -> None:
    fund(app, world.household_x, 100)
    soap = add_reward(app, world.shop_a, "香皂", 5, 50)
    placed = [
        order(client, world.headers("villager_x"), world.shop_a, [(soap, 1)]).get_json()["id"]
        for _ in range(3)
    ]
    cancel = client.post(
        f"{API}/redemptions/{placed[0]}/cancel", json={}, headers=world.headers("villager_x")
    )
    assert cancel.status_code == 200, cancel.get_json()
    with app.app_context():
        rows = db.session.execute(
            select(Redemption.id, Redemption.shop_id, Redemption.household_id, Redemption.status)
        ).all()
    assert {r.status for r in rows} == {"reserved", "cancelled"}

    def orders(who: str, **query: Any) -> list[int]:
        return listed(client, world, "/redemptions", who, **query)

    for who in ("county", "tadmin1", "clerk_a"):
        assert orders(who) == newest_first(rows)
        assert orders(who, shop_id=world.shop_a) == newest_first(rows, shop_id=world.shop_a)
        for status in ("reserved", "cancelled"):
            assert orders(who, status=status) == newest_first(rows, status=status)
        assert orders(who, household_id=world.household_x) == newest_first(
            rows, household_id=world.household_x
        )
    assert orders("villager_x") == newest_first(rows, household_id=world.household_x)
    assert orders("tadmin2") == []
