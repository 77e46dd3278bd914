"""The registry through the HTTP API: townships, villages, groups, households, members, the
roster upload and shops, as a township admin, a cadre and a villager would use them."""

from __future__ import annotations

import io
import re
from datetime import datetime, timedelta
from typing import Any

import openpyxl
import pytest
from flask.testing import FlaskClient

from points.roster import COLUMNS
from tests.factories import World
from tests.support.reads import error_code

API = "/api/v1"
HEADER = "户编号,村民小组,地址,姓名,与户主关系,手机号,性别,出生年份"
GOOD_ROSTER = (
    "\n".join(
        [
            HEADER,
            "1,第二村民小组,清水村5号,王大山,户主,13911112222,男,1966",
            "1,第二村民小组,清水村5号,李秀英,配偶,,女,1968",
            "1,第二村民小组,清水村5号,王小明,子女,,男,1995",
            "2,第三村民小组,清水村6号,赵铁柱,户主,13933334444,男,1958",
        ]
    )
    + "\n"
)
BAD_ROSTER = (
    "\n".join(
        [
            HEADER,
            "1,第二村民小组,清水村5号,王大山,户主,13911112222,男,1966",
            "1,第二村民小组,清水村5号,李秀英,配偶,12345,女,1968",  # row 3: bad phone
            "2,第三村民小组,清水村6号,赵铁柱,户主,13933334444,男,1958",
        ]
    )
    + "\n"
)


def households_of(
    client: FlaskClient, world: World, village: int, who: str = "cadre_a"
) -> dict[str, Any]:
    response = client.get(
        f"{API}/villages/{village}/households?per_page=100", headers=world.headers(who)
    )
    assert response.status_code == 200
    return response.get_json()


def assert_local_time(value: str) -> None:
    """ISO 8601 with the +08:00 offset of Asia/Shanghai, and close to now."""
    assert value.endswith("+08:00"), value
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() == timedelta(hours=8)
    assert abs(datetime.now(parsed.tzinfo) - parsed) < timedelta(hours=1)


# ---- building the registry from the top ------------------------------------------------------


def test_township_village_group_household_members_read_back(
    client: FlaskClient, world: World
) -> None:
    county = world.headers("county")
    created = client.post(f"{API}/townships", json={"name": "红旗镇", "code": "T3"}, headers=county)
    assert created.status_code == 201, created.get_json()
    township = created.get_json()
    assert township["name"] == "红旗镇" and township["code"] == "T3"
    assert_local_time(township["created_at"])
    read = client.get(f"{API}/townships/{township['id']}", headers=county)
    assert read.status_code == 200 and read.get_json()["name"] == "红旗镇"

    admin = world.headers("tadmin1")
    # tadmin1 builds in their own township only
    elsewhere = client.post(
        f"{API}/villages", json={"name": "红旗村", "township_id": township["id"]}, headers=admin
    )
    assert elsewhere.status_code == 404
    village = client.post(
        f"{API}/villages", json={"name": "新建村", "township_id": world.township_1}, headers=admin
    )
    assert village.status_code == 201, village.get_json()
    village_id = village.get_json()["id"]
    assert village.get_json()["township_id"] == world.township_1
    assert_local_time(village.get_json()["created_at"])
    listed = client.get(f"{API}/villages?township_id={world.township_1}", headers=admin)
    assert {v["name"] for v in listed.get_json()["items"]} == {"清水村", "桃源村", "新建村"}

    group = client.post(
        f"{API}/villages/{village_id}/groups", json={"name": "第一村民小组"}, headers=admin
    )
    assert group.status_code == 201
    group_id = group.get_json()["id"]
    groups = client.get(f"{API}/villages/{village_id}/groups", headers=admin).get_json()
    assert groups == {
        "items": [{"id": group_id, "village_id": village_id, "name": "第一村民小组"}],
        "page": 1,
        "per_page": 20,
        "total": 1,
        "total_exact": True,
    }
    second = client.post(
        f"{API}/villages/{village_id}/groups", json={"name": "第二村民小组"}, headers=admin
    ).get_json()
    paged = client.get(
        f"{API}/villages/{village_id}/groups?page=2&per_page=1", headers=admin
    ).get_json()
    assert paged == {
        "items": [second],
        "page": 2,
        "per_page": 1,
        "total": 2,
        "total_exact": True,
    }

    household = client.post(
        f"{API}/villages/{village_id}/households",
        json={"group_id": group_id, "address": "新建村1组3号", "name": "张家"},
        headers=admin,
    )
    assert household.status_code == 201, household.get_json()
    household_id = household.get_json()["id"]
    assert household.get_json()["head"] is None
    assert household.get_json()["members"] == []
    assert_local_time(household.get_json()["created_at"])

    head = client.post(
        f"{API}/households/{household_id}/members",
        json={
            "name": "张建国",
            "relation": "户主",
            "phone": "13712345678",
            "gender": "男",
            "birth_year": 1965,
        },
        headers=admin,
    )
    assert head.status_code == 201, head.get_json()
    spouse = client.post(
        f"{API}/households/{household_id}/members",
        json={"name": "刘桂兰", "relation": "配偶", "gender": "女", "birth_year": 1967},
        headers=admin,
    )
    assert spouse.status_code == 201, spouse.get_json()
    assert spouse.get_json()["household_id"] == household_id
    assert spouse.get_json()["village_id"] == village_id
    assert spouse.get_json()["bound"] is False

    out = client.get(f"{API}/households/{household_id}", headers=admin).get_json()
    assert out["village_id"] == village_id and out["group_id"] == group_id
    assert out["address"] == "新建村1组3号" and out["name"] == "张家"
    assert out["head"] == {"id": head.get_json()["id"], "name": "张建国"}
    assert [(m["name"], m["relation"], m["gender"], m["birth_year"]) for m in out["members"]] == [
        ("张建国", "户主", "男", 1965),
        ("刘桂兰", "配偶", "女", 1967),
    ]
    villager = client.get(f"{API}/villagers/{spouse.get_json()['id']}", headers=admin)
    assert villager.status_code == 200 and villager.get_json()["name"] == "刘桂兰"


def test_patch_household_and_villager(client: FlaskClient, world: World) -> None:
    cadre = world.headers("cadre_a")
    patched = client.patch(
        f"{API}/households/{world.household_x}", json={"address": "清水村新址9号"}, headers=cadre
    )
    assert patched.status_code == 200
    assert patched.get_json()["address"] == "清水村新址9号"
    renamed = client.patch(
        f"{API}/villagers/{world.spouse_x}",
        json={"name": "配偶x改", "phone": "13655556666"},
        headers=cadre,
    )
    assert renamed.status_code == 200
    out = client.get(f"{API}/households/{world.household_x}", headers=cadre).get_json()
    assert out["address"] == "清水村新址9号"
    assert [(m["name"], m["phone"]) for m in out["members"]] == [
        ("户主x", "13800000000"),
        ("配偶x改", "13655556666"),
    ]


# ---- rules on members --------------------------------------------------------------------------


def test_second_head_is_refused(client: FlaskClient, world: World) -> None:
    cadre = world.headers("cadre_a")
    second = client.post(
        f"{API}/households/{world.household_x}/members",
        json={"name": "又一个户主", "relation": "户主"},
        headers=cadre,
    )
    assert second.status_code == 409
    assert error_code(second) == "household_has_head"

    promoted = client.patch(
        f"{API}/villagers/{world.spouse_x}", json={"relation": "户主"}, headers=cadre
    )
    assert promoted.status_code == 409
    assert error_code(promoted) == "household_has_head"

    # the head may keep being the head
    same = client.patch(f"{API}/villagers/{world.head_x}", json={"relation": "户主"}, headers=cadre)
    assert same.status_code == 200

    out = client.get(f"{API}/households/{world.household_x}", headers=cadre).get_json()
    assert out["head"] == {"id": world.head_x, "name": "户主x"}
    assert [(m["name"], m["relation"]) for m in out["members"]] == [
        ("户主x", "户主"),
        ("配偶x", "配偶"),
    ]


def test_head_can_move_once_the_old_head_steps_down(client: FlaskClient, world: World) -> None:
    cadre = world.headers("cadre_a")
    assert (
        client.patch(
            f"{API}/villagers/{world.head_x}", json={"relation": "其他"}, headers=cadre
        ).status_code
        == 200
    )
    assert (
        client.patch(
            f"{API}/villagers/{world.spouse_x}", json={"relation": "户主"}, headers=cadre
        ).status_code
        == 200
    )
    out = client.get(f"{API}/households/{world.household_x}", headers=cadre).get_json()
    assert out["head"] == {"id": world.spouse_x, "name": "配偶x"}


@pytest.mark.parametrize("phone", ["12345", "23800000000", "1380000000a", "138000000001"])
def test_bad_phone(client: FlaskClient, world: World, phone: str) -> None:
    cadre = world.headers("cadre_a")
    added = client.post(
        f"{API}/households/{world.household_x}/members",
        json={"name": "新人", "relation": "子女", "phone": phone},
        headers=cadre,
    )
    assert added.status_code == 422
    assert error_code(added) == "invalid_phone"
    patched = client.patch(
        f"{API}/villagers/{world.spouse_x}", json={"phone": phone}, headers=cadre
    )
    assert patched.status_code == 422
    assert error_code(patched) == "invalid_phone"
    out = client.get(f"{API}/households/{world.household_x}", headers=cadre).get_json()
    assert [m["phone"] for m in out["members"]] == ["13800000000", None]


def test_unknown_relation(client: FlaskClient, world: World) -> None:
    cadre = world.headers("cadre_a")
    response = client.post(
        f"{API}/households/{world.household_x}/members",
        json={"name": "表哥", "relation": "表亲"},
        headers=cadre,
    )
    assert response.status_code == 422
    assert error_code(response) == "validation_error"
    assert "relation" in response.get_json()["error"]["details"]["fields"]
    out = client.get(f"{API}/households/{world.household_x}", headers=cadre).get_json()
    assert len(out["members"]) == 2


def test_group_of_another_village(client: FlaskClient, world: World) -> None:
    admin = world.headers("tadmin1")
    before = households_of(client, world, world.village_a, "tadmin1")["total"]
    response = client.post(
        f"{API}/villages/{world.village_a}/households",
        json={"group_id": world.group_y, "address": "清水村7号"},
        headers=admin,
    )
    assert response.status_code == 422
    assert error_code(response) == "invalid_group"
    moved = client.patch(
        f"{API}/households/{world.household_x}", json={"group_id": world.group_y}, headers=admin
    )
    assert moved.status_code == 422
    assert error_code(moved) == "invalid_group"
    assert households_of(client, world, world.village_a, "tadmin1")["total"] == before
    household = client.get(f"{API}/households/{world.household_x}", headers=admin).get_json()
    assert household["group_id"] == world.group_x


def test_duplicate_village_name_in_a_township(client: FlaskClient, world: World) -> None:
    admin = world.headers("tadmin1")
    duplicate = client.post(
        f"{API}/villages", json={"name": "清水村", "township_id": world.township_1}, headers=admin
    )
    assert duplicate.status_code == 409
    assert error_code(duplicate) == "duplicate_name"
    # another township may have its own 清水村
    other = client.post(
        f"{API}/villages",
        json={"name": "清水村", "township_id": world.township_2},
        headers=world.headers("tadmin2"),
    )
    assert other.status_code == 201
    listed = client.get(f"{API}/villages?township_id={world.township_1}", headers=admin)
    assert [v["name"] for v in listed.get_json()["items"]].count("清水村") == 1


def test_duplicate_names_below_the_village(client: FlaskClient, world: World) -> None:
    cadre = world.headers("cadre_a")
    group = client.post(
        f"{API}/villages/{world.village_a}/groups", json={"name": "第一村民小组"}, headers=cadre
    )
    assert group.status_code == 409 and error_code(group) == "duplicate_name"
    # the same group name in village B is fine
    assert (
        client.post(
            f"{API}/villages/{world.village_b}/groups",
            json={"name": "第二村民小组"},
            headers=world.headers("cadre_b"),
        ).status_code
        == 201
    )
    assert (
        client.post(
            f"{API}/villages/{world.village_a}/groups", json={"name": "第二村民小组"}, headers=cadre
        ).status_code
        == 201
    )
    township = client.post(
        f"{API}/townships", json={"name": "青石镇"}, headers=world.headers("county")
    )
    assert township.status_code == 409 and error_code(township) == "duplicate_name"


# ---- lists -------------------------------------------------------------------------------------


def test_household_pagination(client: FlaskClient, world: World) -> None:
    cadre = world.headers("cadre_a")
    for n in (2, 3):
        assert (
            client.post(
                f"{API}/villages/{world.village_a}/households",
                json={"address": f"清水村{n}号"},
                headers=cadre,
            ).status_code
            == 201
        )
    url = f"{API}/villages/{world.village_a}/households"
    first = client.get(f"{url}?per_page=1", headers=cadre).get_json()
    assert first["total"] == 3 and first["page"] == 1 and first["per_page"] == 1
    assert len(first["items"]) == 1
    second = client.get(f"{url}?per_page=1&page=2", headers=cadre).get_json()
    assert len(second["items"]) == 1
    assert second["items"][0]["id"] != first["items"][0]["id"]
    beyond = client.get(f"{url}?per_page=1&page=9", headers=cadre).get_json()
    assert beyond["items"] == [] and beyond["total"] == 3

    for query in ("per_page=101", "page=0", "per_page=0", "page=abc"):
        refused = client.get(f"{url}?{query}", headers=cadre)
        assert refused.status_code == 422, query
        assert error_code(refused) == "validation_error"
    assert len(client.get(f"{url}?per_page=100", headers=cadre).get_json()["items"]) == 3


# ---- phone masking -----------------------------------------------------------------------------

MASKED = re.compile(r"^138\*{4}\d{4}$")


def test_only_the_village_cadre_sees_full_phones(client: FlaskClient, world: World) -> None:
    full = "13800000000"  # head_x's phone in the World
    cadre = world.headers("cadre_a")
    assert client.get(f"{API}/villagers/{world.head_x}", headers=cadre).get_json()["phone"] == full
    members = client.get(f"{API}/households/{world.household_x}", headers=cadre).get_json()[
        "members"
    ]
    assert members[0]["phone"] == full

    for who in ("tadmin1", "villager_x"):
        headers = world.headers(who)
        one = client.get(f"{API}/villagers/{world.head_x}", headers=headers)
        assert one.status_code == 200, who
        assert one.get_json()["phone"] == "138****0000", who
        household = client.get(f"{API}/households/{world.household_x}", headers=headers)
        phones = [m["phone"] for m in household.get_json()["members"]]
        assert phones == ["138****0000", None], who
        assert full not in household.get_data(as_text=True), who
        listed = client.get(f"{API}/villages/{world.village_a}/households", headers=headers)
        assert full not in listed.get_data(as_text=True), who
    # a clerk reads no villager at all (tests/api/test_clerk_scope.py)
    assert (
        client.get(f"{API}/villagers/{world.head_x}", headers=world.headers("clerk_a")).status_code
        == 404
    )

    # who has bound their WeChat shows, without saying who they are
    bound = {m["id"]: m["bound"] for m in members}
    assert bound == {world.head_x: True, world.spouse_x: False}

    # the cadre of village B is no cadre of village A's villagers
    head_y = client.get(f"{API}/villagers/{world.head_y}", headers=world.headers("tadmin1"))
    assert MASKED.match(head_y.get_json()["phone"])
    assert (
        client.get(f"{API}/villagers/{world.head_y}", headers=world.headers("cadre_b")).get_json()[
            "phone"
        ]
        == "13800000001"
    )


# ---- roster upload -----------------------------------------------------------------------------


def test_roster_multipart_csv(client: FlaskClient, world: World) -> None:
    cadre = world.headers("cadre_a")
    response = client.post(
        f"{API}/villages/{world.village_a}/roster",
        data={"file": (io.BytesIO(GOOD_ROSTER.encode()), "花名册.csv"), "create_groups": "true"},
        headers=cadre,
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json() == {
        "households": 2,
        "members": 4,
        "groups": 2,
        "added": [],
        "updated": [],
        "unchanged": 0,
    }

    page = households_of(client, world, world.village_a)
    assert page["total"] == 3
    imported = {h["head"]["name"]: h for h in page["items"] if h["id"] != world.household_x}
    assert set(imported) == {"王大山", "赵铁柱"}
    wang = imported["王大山"]
    assert wang["address"] == "清水村5号"
    assert [
        (m["name"], m["relation"], m["phone"], m["gender"], m["birth_year"])
        for m in wang["members"]
    ] == [
        ("王大山", "户主", "13911112222", "男", 1966),
        ("李秀英", "配偶", None, "女", 1968),
        ("王小明", "子女", None, "男", 1995),
    ]
    groups = client.get(f"{API}/villages/{world.village_a}/groups", headers=cadre).get_json()[
        "items"
    ]
    assert {g["name"] for g in groups} == {"第一村民小组", "第二村民小组", "第三村民小组"}
    assert wang["group_id"] == next(g["id"] for g in groups if g["name"] == "第二村民小组")


def test_roster_with_a_bad_row_imports_nothing(client: FlaskClient, world: World) -> None:
    cadre = world.headers("cadre_a")
    before = households_of(client, world, world.village_a)["total"]
    groups_before = client.get(f"{API}/villages/{world.village_a}/groups", headers=cadre).get_json()
    response = client.post(
        f"{API}/villages/{world.village_a}/roster?create_groups=true",
        data={"file": (io.BytesIO(BAD_ROSTER.encode()), "roster.csv")},
        headers=cadre,
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    assert error_code(response) == "roster_invalid"
    errors = response.get_json()["error"]["details"]["errors"]
    assert [(e["row"], e["field"]) for e in errors] == [(3, "手机号")]
    assert "12345" in errors[0]["message"]

    assert households_of(client, world, world.village_a)["total"] == before
    assert (
        client.get(f"{API}/villages/{world.village_a}/groups", headers=cadre).get_json()
        == groups_before
    )


@pytest.mark.parametrize("how", ["multipart", "raw"])
def test_roster_xlsx(client: FlaskClient, world: World, how: str) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(list(COLUMNS))
    sheet.append(["A1", "第一村民小组", "清水村8号", "孙有福", "户主", 13922223333, "男", 1970])
    sheet.append(["A1", "第一村民小组", "清水村8号", "周小红", "配偶", None, "女", 1972.0])
    buffer = io.BytesIO()
    workbook.save(buffer)

    cadre = world.headers("cadre_a")
    url = f"{API}/villages/{world.village_a}/roster"
    if how == "multipart":
        response = client.post(
            url,
            data={"file": (io.BytesIO(buffer.getvalue()), "花名册.xlsx")},
            headers=cadre,
            content_type="multipart/form-data",
        )
    else:
        response = client.post(
            url,
            data=buffer.getvalue(),
            headers=cadre,
            content_type=("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        )
    assert response.status_code == 201, response.get_json()
    assert {k: response.get_json()[k] for k in ("households", "members", "groups")} == {
        "households": 1,
        "members": 2,
        "groups": 0,
    }
    page = households_of(client, world, world.village_a)
    sun = next(h for h in page["items"] if h["head"]["name"] == "孙有福")
    assert sun["group_id"] == world.group_x
    assert [(m["name"], m["phone"], m["birth_year"]) for m in sun["members"]] == [
        ("孙有福", "13922223333", 1970),
        ("周小红", None, 1972),
    ]


def test_roster_raw_csv_body(client: FlaskClient, world: World) -> None:
    admin = world.headers("tadmin1")
    response = client.post(
        f"{API}/villages/{world.village_b}/roster?create_groups=true",
        data=GOOD_ROSTER.encode("gb18030"),
        headers=admin,
        content_type="text/csv",
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["households"] == 2
    names = {
        h["head"]["name"] for h in households_of(client, world, world.village_b, "tadmin1")["items"]
    }
    assert names == {"户主y", "王大山", "赵铁柱"}
    # and village A saw none of it
    assert households_of(client, world, world.village_a)["total"] == 1


@pytest.mark.parametrize("how", ["multipart", "raw"])
def test_empty_roster_upload(client: FlaskClient, world: World, how: str) -> None:
    cadre = world.headers("cadre_a")
    url = f"{API}/villages/{world.village_a}/roster"
    if how == "multipart":
        response = client.post(
            url,
            data={"file": (io.BytesIO(b""), "roster.csv")},
            headers=cadre,
            content_type="multipart/form-data",
        )
    else:
        response = client.post(url, data=b"", headers=cadre, content_type="text/csv")
    assert response.status_code == 400
    assert error_code(response) == "file_required"
    assert households_of(client, world, world.village_a)["total"] == 1


# ---- shops -------------------------------------------------------------------------------------


def test_shops(client: FlaskClient, world: World) -> None:
    admin = world.headers("tadmin1")
    created = client.post(
        f"{API}/shops",
        json={
            "name": "桃源村积分超市",
            "township_id": world.township_1,
            "village_ids": [world.village_b],
        },
        headers=admin,
    )
    assert created.status_code == 201, created.get_json()
    shop_b = created.get_json()
    assert shop_b["village_ids"] == [world.village_b]
    mine = client.get(f"{API}/shops", headers=world.headers("villager_x")).get_json()
    assert [s["name"] for s in mine["items"]] == ["清水村积分超市"]
    assert mine["items"][0] == {
        "id": world.shop_a,
        "name": "清水村积分超市",
        "township_id": world.township_1,
        "village_ids": [world.village_a],
    }

    both = client.post(
        f"{API}/shops",
        json={
            "name": "青石镇中心超市",
            "township_id": world.township_1,
            "village_ids": [world.village_a, world.village_b],
        },
        headers=admin,
    )
    assert both.status_code == 201
    assert both.get_json()["village_ids"] == sorted([world.village_a, world.village_b])

    refused = client.post(
        f"{API}/shops",
        json={
            "name": "跨乡超市",
            "township_id": world.township_1,
            "village_ids": [world.village_a, world.village_c],
        },
        headers=admin,
    )
    assert refused.status_code == 422
    assert error_code(refused) == "invalid_villages"

    listed = client.get(f"{API}/shops", headers=admin).get_json()
    assert {s["name"] for s in listed["items"]} == {
        "清水村积分超市",
        "桃源村积分超市",
        "青石镇中心超市",
    }

    mine = client.get(f"{API}/shops", headers=world.headers("villager_x")).get_json()
    assert {s["id"] for s in mine["items"]} == {world.shop_a, both.get_json()["id"]}
    assert shop_b["id"] not in {s["id"] for s in mine["items"]}
    theirs = client.get(f"{API}/shops", headers=world.headers("villager_y")).get_json()
    assert world.shop_a not in {s["id"] for s in theirs["items"]}


def test_household_board_opt_out_is_set_and_shown(client: FlaskClient, world: World) -> None:
    cadre = world.headers("cadre_a")
    url = f"/api/v1/households/{world.household_x}"
    assert client.get(url, headers=cadre).get_json()["public_board_opt_out"] is False
    patched = client.patch(url, json={"public_board_opt_out": True}, headers=cadre)
    assert patched.status_code == 200
    assert patched.get_json()["public_board_opt_out"] is True
    assert client.get(url, headers=cadre).get_json()["public_board_opt_out"] is True
