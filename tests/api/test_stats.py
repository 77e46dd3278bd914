"""Village statistics for cadres (participation per villager group, points by category, top
items, a 12-month trend, a chart) and the township's comparison of its villages."""

from __future__ import annotations

import io
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from backend.extensions import db
from points.models import Household, VillagerGroup
from tests.factories import World, add_household, earn, earn_posted
from tests.support.clock import frozen, local
from tests.support.reads import entries_of


def stats(
    client: FlaskClient,
    world: World,
    user: str,
    period: str = "2026-03",
    village: str = "village_a",
) -> Any:
    return client.get(
        f"/api/v1/villages/{getattr(world, village)}/stats",
        query_string={"period": period},
        headers=world.headers(user),
    )


def second_group(app: Flask, world: World, names: list[str]) -> list[int]:
    """Households in a second villager group of village A; their ids."""
    with app.app_context():
        group = VillagerGroup(village_id=world.village_a, name="第二村民小组")
        db.session.add(group)
        db.session.commit()
        group_id = group.id
    ids = []
    for name in names:
        made = add_household(app, world.village_a, f"{name}户", name)
        with app.app_context():
            household = db.session.get(Household, made["household"])
            assert household is not None
            household.group_id = group_id
            db.session.commit()
        ids.append(made["household"])
    return ids


def test_village_statistics(
    app: Flask, client: FlaskClient, runner: Any, world: World, items: dict[str, int]
) -> None:
    b, c, d = second_group(app, world, ["李四", "王五", "赵六"])
    earn_posted(client, runner, world, items["PUB-VOLUNTEER"], 3, local(2026, 3, 10))  # x: 6
    earn(app, b, 4, local(2026, 3, 11))
    earn(app, c, -2, local(2026, 3, 12))  # a deduction is no participation
    earn(app, b, 7, local(2025, 12, 1))
    earn(app, b, 1, local(2025, 3, 31))  # 13 months back: outside the trend
    [volunteer] = entries_of(app, world.household_x)
    with frozen(local(2026, 3, 25)):
        undone = client.post(
            f"/api/v1/ledger/{volunteer['id']}/reverse",
            json={"reason": "重复登记"},
            headers=world.headers("cadre_a"),
        )
        assert undone.status_code == 201
        earn_posted(client, runner, world, items["PUB-VOLUNTEER"], 2, local(2026, 3, 26))

    body = stats(client, world, "cadre_a").get_json()
    assert (body["period"], body["households"], body["participating"]) == ("2026-03", 4, 2)
    assert body["participation_rate"] == 0.5
    assert body["points"] == 6 - 6 + 4 - 2 + 4
    assert body["participation_by_group"] == [
        {
            "group_id": world.group_x,
            "group": "第一村民小组",
            "households": 1,
            "participating": 1,
            "rate": 1.0,
        },
        {
            "group_id": body["participation_by_group"][1]["group_id"],
            "group": "第二村民小组",
            "households": 3,
            "participating": 1,
            "rate": round(1 / 3, 4),
        },
    ]
    by_category = {c["category"]: c for c in body["points_by_category"]}
    assert by_category["热心公益"] == {
        "category": "热心公益",
        "earned": 10,
        "deducted": 0,
        "corrected": -6,
        "net": 4,
    }
    assert by_category["其他"] == {
        "category": "其他",
        "earned": 4,
        "deducted": -2,
        "corrected": 0,
        "net": 2,
    }
    assert body["top_items"] == [
        {
            "code": "PUB-VOLUNTEER",
            "name": "志愿服务",
            "category": "热心公益",
            "count": 2,
            "points": 10,
        }
    ]
    trend = body["trend"]
    assert [t["month"] for t in trend] == [f"2025-{m:02d}" for m in range(4, 13)] + [
        "2026-01",
        "2026-02",
        "2026-03",
    ]
    assert trend[-1] == {
        "month": "2026-03",
        "points": 6,
        "earned": 14,
        "deducted": -2,
        "participating": 2,
    }
    assert trend[8] == {
        "month": "2025-12",
        "points": 7,
        "earned": 7,
        "deducted": 0,
        "participating": 1,
    }
    assert sum(t["points"] for t in trend) == 13  # March 2025 is left out

    year = stats(client, world, "cadre_a", period="2025").get_json()
    assert (year["participating"], year["points"]) == (1, 8)
    assert [t["month"] for t in year["trend"]][-1] == "2025-12"
    quarter = stats(client, world, "cadre_a", period="2026-Q1").get_json()
    assert quarter["points"] == body["points"]


def test_statistics_chart_for_the_cadre(app: Flask, client: FlaskClient, world: World) -> None:
    earn(app, world.household_x, 5, local(2026, 2, 11))
    earn(app, world.household_x, -3, local(2026, 3, 11))
    response = client.get(
        f"/api/v1/villages/{world.village_a}/stats.png?period=2026-03",
        headers=world.headers("cadre_a"),
    )
    assert (response.status_code, response.content_type) == (200, "image/png")
    with Image.open(io.BytesIO(response.data)) as image:
        assert image.size == (1600, 1200)
        colours = {colour for _, colour in image.convert("RGB").getcolors(1 << 20)}
    assert (46, 125, 50) in colours and (200, 16, 46) in colours  # earned and deducted bars


def test_statistics_are_for_the_villages_staff(
    app: Flask, client: FlaskClient, world: World
) -> None:
    for user in ("cadre_a", "tadmin1", "county"):
        assert stats(client, world, user).status_code == 200, user
    # a clerk sees nothing of the villages their shop serves
    for user in ("cadre_b", "tadmin2", "villager_y", "clerk_a"):
        assert stats(client, world, user).status_code == 404, user
    assert stats(client, world, "villager_x").status_code == 403
    assert stats(client, world, "cadre_a", period="2026-3").status_code == 422
    assert (
        client.get(
            f"/api/v1/villages/{world.village_a}/stats.png", headers=world.headers("villager_x")
        ).status_code
        == 403
    )


def test_township_compares_its_villages(app: Flask, client: FlaskClient, world: World) -> None:
    march = local(2026, 3, 10)
    extra = add_household(app, world.village_a, "b户", "李四")
    earn(app, world.household_x, 10, march)
    earn(app, extra["household"], -4, march)
    earn(app, world.household_y, 3, march)
    earn(app, world.household_z, 50, march)  # township 2

    def township(user: str, township_id: int) -> Any:
        return client.get(
            f"/api/v1/townships/{township_id}/stats",
            query_string={"period": "2026-03"},
            headers=world.headers(user),
        )

    body = township("tadmin1", world.township_1).get_json()
    assert body["period"] == "2026-03" and "1、2、2、4" in body["tie_rule"]
    assert [
        (
            v["rank"],
            v["village"],
            v["households"],
            v["participating"],
            v["participation_rate"],
            v["points"],
            v["points_per_household"],
            v["points_rank"],
        )
        for v in body["villages"]
    ] == [
        (1, "桃源村", 1, 1, 1.0, 3, 3.0, 1),
        (2, "清水村", 2, 1, 0.5, 6, 3.0, 1),  # the same points per household share rank 1
    ]
    # Over a year (several months) a household earning in two of them participates once.
    earn(app, world.household_x, 5, local(2026, 4, 10))
    year = client.get(
        f"/api/v1/townships/{world.township_1}/stats",
        query_string={"period": "2026"},
        headers=world.headers("tadmin1"),
    ).get_json()
    assert [
        (v["village"], v["households"], v["participating"], v["points"]) for v in year["villages"]
    ] == [
        ("桃源村", 1, 1, 3),
        ("清水村", 2, 1, 11),
    ]
    assert township("county", world.township_2).status_code == 200
    assert township("tadmin2", world.township_1).status_code == 404
    assert township("cadre_a", world.township_1).status_code == 403
    assert township("villager_x", world.township_1).status_code == 403
