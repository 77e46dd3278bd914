"""农户档案 and 花名册导入 in the console: thin views over the registry API's services, so each
form changes exactly what the API's call would, in the same scope."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from backend.extensions import db
from points import users
from points.errors import Forbidden, Invalid, NotFound
from points.models import STAFF_ROLES, BindingToken, Household, User, Villager, VillagerGroup
from points.scope import Actor
from tests.factories import API, World, add_household, fund
from tests.support.console import console_login, csrf_in

HEADER = "户编号,村民小组,地址,姓名,与户主关系,手机号,性别,出生年份"
GOOD_ROSTER = "\n".join(
    [
        HEADER,
        "1,第一村民小组,清水村5号,王大山,户主,13911112222,男,1966",
        "1,第一村民小组,清水村5号,李秀英,配偶,,女,1968",
        "2,第一村民小组,清水村6号,赵铁柱,户主,13933334444,男,1958",
    ]
)
BAD_ROSTER = "\n".join(
    [
        HEADER,
        "1,第一村民小组,清水村5号,王大山,户主,13911112222,男,1966",
        "1,第一村民小组,清水村5号,李秀英,配偶,12345,女,1968",  # row 3: a bad phone
    ]
)
XSS = "<img src=x onerror=alert(1)>"


def _ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-household="(\d+)"', html)]


def _api(client: FlaskClient, world: World, path: str, who: str = "cadre_a") -> Any:
    response = client.get(f"{API}{path}", headers=world.headers(who))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _post(client: FlaskClient, path: str, data: dict[str, Any], **kwargs: Any) -> Any:
    """A console form as the browser sends it: with the CSRF token and an idempotency key
    of the page it was drawn on."""
    page = client.get(kwargs.pop("page", "/console/households"))
    key = re.search(r'name="idempotency_key" value="([^"]*)"', page.text)
    form = {"csrf_token": csrf_in(page.text), "idempotency_key": key.group(1) if key else ""}
    return client.post(path, data={**form, **data}, **kwargs)


def _households(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Household)) or 0


# ---- the list -----------------------------------------------------------------------------


def test_search_by_name_phone_and_address_and_filter_by_group(
    app: Flask, client: FlaskClient, world: World
) -> None:
    wang = add_household(app, world.village_a, "王家", "王大山")
    console_login(client, "cadre_a")

    def found(**args: Any) -> list[int]:
        response = client.get("/console/households", query_string=args)
        assert response.status_code == 200
        return _ids(response.text)

    assert set(found()) == {world.household_x, wang["household"]}  # village a only
    assert found(q="户主x") == [world.household_x]  # a member's name
    assert found(q="王家") == [wang["household"]]  # the household's name
    assert found(q="13800000000") == [world.household_x]  # a member's phone
    assert found(q="王家门牌") == [wang["household"]]  # the address
    assert found(q="%") == []  # a LIKE wildcard is a character like any other
    assert found(group_id=world.group_x) == [world.household_x]
    assert found(q="王", group_id=world.group_x) == []


def test_groups_are_offered_once_the_village_is_chosen(
    app: Flask, client: FlaskClient, world: World
) -> None:
    with app.app_context():
        other = VillagerGroup(village_id=world.village_b, name="白杨村民小组")
        db.session.add(other)
        db.session.commit()
        other_id = other.id
        of_b = list(
            db.session.scalars(
                select(VillagerGroup.id)
                .where(VillagerGroup.village_id == world.village_b)
                .order_by(VillagerGroup.id)
            )
        )
    assert other_id in of_b and world.group_x not in of_b
    console_login(client, "tadmin1")

    def offered(**args: Any) -> tuple[list[int], str]:
        html = client.get("/console/households", query_string=args).text
        select = re.search(r'<select name="group_id">(.*?)</select>', html, re.S)
        options = re.findall(r'<option value="(\d+)"', select.group(1)) if select else []
        return [int(o) for o in options], html

    groups, html = offered()  # two villages, none chosen: no list of every village's groups
    assert groups == [] and 'id="groups-hint"' in html
    assert offered(village_id=world.village_a)[0] == [world.group_x]
    assert offered(village_id=world.village_b)[0] == of_b
    # a group alone names its village: that village is shown, the group chosen, and filtered
    groups, html = offered(group_id=world.group_x)
    assert groups == [world.group_x]
    assert f'<option value="{world.group_x}" selected>' in html
    assert f'<option value="{world.village_a}" selected>' in html
    assert _ids(html) == [world.household_x]


def test_the_list_shows_head_group_address_members_and_balance(
    app: Flask, client: FlaskClient, world: World
) -> None:
    fund(app, world.household_x, 12)
    console_login(client, "cadre_a")
    html = client.get("/console/households").text
    row = html[html.index(f'data-household="{world.household_x}"') :].split("</tr>")[0]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    assert "x户" in cells[0]
    assert cells[1:] == ["户主x", "第一村民小组", "清水村1号", "2", "12"]


def test_an_admin_does_not_find_households_by_the_phones_he_sees_masked(
    client: FlaskClient, world: World
) -> None:
    console_login(client, "tadmin1")
    html = client.get("/console/households", query_string={"q": "13800000000"}).text
    assert _ids(html) == []
    every = _ids(client.get("/console/households").text)
    assert set(every) == {world.household_x, world.household_y}  # township 1's villages


def test_a_clerk_is_refused_the_register(client: FlaskClient, world: World) -> None:
    console_login(client, "clerk_a")
    assert client.get("/console/households").status_code == 403
    assert "农户档案" not in client.get("/console/").text


# ---- one household ------------------------------------------------------------------------


def test_the_passbook_shows_the_ledger_s_running_balance_and_the_account(
    app: Flask, client: FlaskClient, world: World
) -> None:
    for points in (10, 5, -3, 20):
        fund(app, world.household_x, points, kind="earn" if points > 0 else "deduct")
    console_login(client, "cadre_a")
    html = client.get(f"/console/households/{world.household_x}").text

    ledger = _api(client, world, f"/households/{world.household_x}/ledger")["items"]
    shown = [int(b) for b in re.findall(r'<td class="num balance">(-?\d+)</td>', html)]
    assert shown == [line["balance"] for line in ledger] == [32, 12, 15, 10]
    entries = [int(i) for i in re.findall(r'<tr data-entry="(\d+)"', html)]
    assert entries == [line["id"] for line in ledger]  # newest first
    account = _api(client, world, f"/households/{world.household_x}/account")
    assert f'<span class="figure" id="available">{account["available"]}</span>' in html
    assert f'<span id="held">{account["held"]}</span>' in html


def test_phones_show_as_the_api_shows_them_to_each_staff_member(
    client: FlaskClient, world: World
) -> None:
    console_login(client, "cadre_a")
    assert "13800000000" in client.get(f"/console/households/{world.household_x}").text
    client.post("/console/logout", data={"csrf_token": csrf_in(client.get("/console/").text)})
    console_login(client, "tadmin1")
    html = client.get(f"/console/households/{world.household_x}").text
    assert "13800000000" not in html
    assert "138****0000" in html


def test_another_village_s_household_is_a_404_page(
    app: Flask, client: FlaskClient, world: World
) -> None:
    console_login(client, "cadre_a")
    response = client.get(f"/console/households/{world.household_y}")
    assert response.status_code == 404
    assert "没有找到" in response.text
    assert "y户" not in response.text

    before = _members(app, world.household_y)
    refused = _post(
        client,
        f"/console/households/{world.household_y}/members",
        {"name": "外人", "relation": "子女"},
    )
    assert refused.status_code == 404
    assert _members(app, world.household_y) == before


def test_a_household_s_name_is_shown_escaped(app: Flask, client: FlaskClient, world: World) -> None:
    ids = add_household(app, world.village_a, XSS, XSS)
    console_login(client, "cadre_a")
    for path in ("/console/households", f"/console/households/{ids['household']}"):
        html = client.get(path).text
        assert XSS not in html
        assert "&lt;img src=x onerror=alert(1)&gt;" in html


# ---- writes -------------------------------------------------------------------------------


def _members(app: Flask, household_id: int) -> list[tuple[Any, ...]]:
    with app.app_context():
        return [
            (v.id, v.name, v.relation, v.phone, v.gender, v.birth_year, v.active)
            for v in db.session.scalars(
                select(Villager).where(Villager.household_id == household_id).order_by(Villager.id)
            )
        ]


def test_add_a_household_as_the_api_would(app: Flask, client: FlaskClient, world: World) -> None:
    console_login(client, "cadre_a")
    before = _households(app)
    response = _post(
        client,
        "/console/households/new",
        {"name": "新农户", "address": "清水村9号", "group_id": str(world.group_x)},
        page="/console/households/new",
    )
    assert response.status_code == 303
    household_id = int(response.location.rsplit("/", 1)[1])
    assert _households(app) == before + 1
    shown = _api(client, world, f"/households/{household_id}")
    assert {k: shown[k] for k in ("village_id", "group_id", "name", "address", "members")} == {
        "village_id": world.village_a,
        "group_id": world.group_x,
        "name": "新农户",
        "address": "清水村9号",
        "members": [],
    }


def test_a_group_of_another_village_is_refused_beside_the_form(
    app: Flask, client: FlaskClient, world: World
) -> None:
    console_login(client, "cadre_a")
    before = _households(app)
    response = _post(
        client,
        "/console/households/new",
        {"name": "新农户", "group_id": str(world.group_y)},
        page="/console/households/new",
    )
    assert response.status_code == 422
    assert 'data-code="invalid_group"' in response.text
    assert 'value="新农户"' in response.text  # what was typed is kept
    assert _households(app) == before


def test_edit_the_household(client: FlaskClient, world: World) -> None:
    console_login(client, "cadre_a")
    before = _api(client, world, f"/households/{world.household_x}")
    response = _post(
        client,
        f"/console/households/{world.household_x}",
        {"name": "改名户", "address": "清水村1号", "group_id": str(world.group_x)},
    )
    assert response.status_code == 303
    after = _api(client, world, f"/households/{world.household_x}")
    assert after == {**before, "name": "改名户"}


def test_add_a_member_then_deactivate_one(app: Flask, client: FlaskClient, world: World) -> None:
    console_login(client, "cadre_a")
    before = _members(app, world.household_x)
    page = f"/console/households/{world.household_x}"
    response = _post(
        client,
        f"/console/households/{world.household_x}/members",
        {"name": "新成员", "relation": "子女", "phone": "13912345678", "gender": "女"},
        page=page,
    )
    assert response.status_code == 303
    assert response.location.endswith(page)
    after = _members(app, world.household_x)
    assert after[:-1] == before
    assert after[-1][1:] == ("新成员", "子女", "13912345678", "女", None, True)
    shown = _api(client, world, f"/villagers/{after[-1][0]}")
    assert (shown["name"], shown["phone"], shown["active"]) == ("新成员", "13912345678", True)

    response = _post(
        client, f"/console/villagers/{world.spouse_x}/active", {"active": "0"}, page=page
    )
    assert response.status_code == 303
    changed = _members(app, world.household_x)
    assert changed == [m if m[0] != world.spouse_x else (*m[:-1], False) for m in after]
    assert _api(client, world, f"/villagers/{world.spouse_x}")["active"] is False
    assert "已停用" in client.get(page).text


def test_a_refused_member_form_keeps_the_typing_and_changes_nothing(
    app: Flask, client: FlaskClient, world: World
) -> None:
    console_login(client, "cadre_a")
    before = _members(app, world.household_x)
    page = f"/console/households/{world.household_x}"
    second_head = _post(
        client,
        f"/console/households/{world.household_x}/members",
        {"name": "又一户主", "relation": "户主"},
        page=page,
    )
    assert second_head.status_code == 409
    assert 'data-code="household_has_head"' in second_head.text
    assert 'value="又一户主"' in second_head.text
    bad_phone = _post(
        client,
        f"/console/villagers/{world.spouse_x}",
        {"name": "配偶x", "relation": "配偶", "phone": "12345"},
        page=page,
    )
    assert bad_phone.status_code == 422
    assert 'data-code="invalid_phone"' in bad_phone.text
    assert _members(app, world.household_x) == before


def test_a_post_without_csrf_changes_nothing(app: Flask, client: FlaskClient, world: World) -> None:
    console_login(client, "cadre_a")
    before = _members(app, world.household_x)
    response = client.post(
        f"/console/households/{world.household_x}/members",
        data={"name": "新成员", "relation": "子女"},
    )
    assert response.status_code == 403
    assert 'data-code="csrf_failed"' in response.text
    response = client.post(f"/console/villagers/{world.spouse_x}/active", data={"active": "0"})
    assert response.status_code == 403
    assert _members(app, world.household_x) == before


def test_the_same_form_sent_twice_adds_one_member(
    app: Flask, client: FlaskClient, world: World
) -> None:
    console_login(client, "cadre_a")
    page = client.get(f"/console/households/{world.household_x}").text
    key = re.findall(r'name="idempotency_key" value="([^"]*)"', page)[-1]
    form = {"csrf_token": csrf_in(page), "idempotency_key": key, "name": "甲", "relation": "子女"}
    path = f"/console/households/{world.household_x}/members"
    first, second = client.post(path, data=form), client.post(path, data=form)
    assert first.status_code == second.status_code == 303
    assert [m[1] for m in _members(app, world.household_x)].count("甲") == 1


def test_only_admins_are_offered_to_link_a_staff_account(
    app: Flask, client: FlaskClient, world: World
) -> None:
    console_login(client, "cadre_a")
    page = f"/console/households/{world.household_x}"
    assert "关联工作人员账号" not in client.get(page).text
    refused = _post(
        client,
        f"/console/villagers/{world.head_x}/staff-link",
        {"username": "cadre_a"},
        page=page,
    )
    assert refused.status_code == 403

    client.post("/console/logout", data={"csrf_token": csrf_in(client.get("/console/").text)})
    console_login(client, "tadmin1")
    assert "关联工作人员账号" in client.get(page).text
    response = _post(
        client, f"/console/villagers/{world.head_x}/staff-link", {"username": "cadre_a"}, page=page
    )
    assert response.status_code == 303
    with app.app_context():
        cadre = db.session.get(User, world.cadre_a)
        assert cadre is not None and cadre.villager_id == world.head_x
    assert "工作人员 cadre_a" in client.get(page).text
    # the service's own scope check: a cadre of village b is not a villager of village a
    out_of_scope = _post(
        client,
        f"/console/villagers/{world.spouse_x}/staff-link",
        {"username": "cadre_b"},
        page=page,
    )
    assert out_of_scope.status_code == 422
    assert 'data-code="villager_out_of_scope"' in out_of_scope.text


@pytest.mark.parametrize("admin", ["county", "tadmin1"])
def test_the_accounts_offered_to_link_are_those_the_service_links(
    app: Flask, client: FlaskClient, world: World, admin: str
) -> None:
    console_login(client, admin)
    page = client.get(f"/console/households/{world.household_x}").text
    datalist = re.search(r'<datalist id="staff-usernames">(.*?)</datalist>', page, re.S)
    assert datalist is not None
    offered = set(re.findall(r'<option value="([^"]+)">', datalist.group(1)))
    accepted = set()
    with app.app_context():
        actor = Actor.of(
            db.session, db.session.scalars(select(User).filter_by(username=admin)).one()
        )
        for user in db.session.scalars(select(User).where(User.role.in_(STAFF_ROLES))):
            try:
                with db.session.begin_nested() as savepoint:
                    users.update_user(db.session, actor, user.id, {"villager_id": world.head_x})
                    savepoint.rollback()
            except (Invalid, NotFound, Forbidden):
                continue
            accepted.add(user.username)
        db.session.rollback()
    # village a's cadre and township 1's admin, never village b's cadre or a clerk; never
    # the admin's own account (cannot_link_self) or one above them
    assert {"cadre_a", "tadmin1"} - {admin} <= offered
    assert not offered & {"cadre_b", "clerk_a", "tadmin2", "county", admin}
    assert offered == accepted


# ---- printed --------------------------------------------------------------------------------


def test_a_binding_code_is_shown_once_and_a_resend_makes_no_other(
    app: Flask, client: FlaskClient, world: World
) -> None:
    console_login(client, "cadre_a")
    page = client.get(f"/console/households/{world.household_x}").text
    action = f'action="/console/villagers/{world.spouse_x}/binding-code"'
    form_html = page[page.index(action) :]
    key = re.search(r'name="idempotency_key" value="([^"]*)"', form_html)
    assert key
    form = {"csrf_token": csrf_in(page), "idempotency_key": key.group(1)}
    path = f"/console/villagers/{world.spouse_x}/binding-code"
    response = client.post(path, data=form)
    assert response.status_code == 200
    assert 'src="data:image/png;base64,' in response.text
    assert "/q/" in response.text
    assert response.headers["Cache-Control"] == "no-store"
    again = client.post(path, data=form)
    assert again.status_code == 303
    assert client.get(again.location).status_code == 303  # to the household, no new code
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(BindingToken)) == 1


def test_cards_and_plate_are_drawn_for_the_village_s_staff_only(
    client: FlaskClient, world: World
) -> None:
    console_login(client, "cadre_a")
    cards = client.get(f"/console/households/{world.household_x}/cards.pdf")
    assert cards.status_code == 200, cards.text
    assert cards.mimetype == "application/pdf"
    assert cards.data.startswith(b"%PDF")
    village = client.get(f"/console/villages/{world.village_a}/cards.pdf")
    assert village.status_code == 200
    plate = client.get(f"/console/households/{world.household_x}/plate.png")
    assert plate.status_code == 200
    assert plate.data.startswith(b"\x89PNG")
    assert client.get(f"/console/households/{world.household_x}/plate").status_code == 200
    assert client.get(f"/console/households/{world.household_y}/cards.pdf").status_code == 404
    assert client.get(f"/console/villages/{world.village_b}/cards.pdf").status_code == 404
    assert client.get(f"/console/households/{world.household_y}/plate.png").status_code == 404


# ---- roster import --------------------------------------------------------------------------


def _upload(client: FlaskClient, text: str, **extra: str) -> Any:
    page = client.get("/console/roster/import").text
    key = re.search(r'name="idempotency_key" value="([^"]*)"', page)
    assert key
    return client.post(
        "/console/roster/import",
        data={
            "csrf_token": csrf_in(page),
            "idempotency_key": key.group(1),
            "file": (io.BytesIO(text.encode()), "花名册.csv"),
            **extra,
        },
        content_type="multipart/form-data",
    )


def test_a_roster_with_a_bad_row_shows_the_errors_and_imports_nothing(
    app: Flask, client: FlaskClient, world: World
) -> None:
    console_login(client, "cadre_a")
    before = _households(app)
    response = _upload(client, BAD_ROSTER)
    assert response.status_code == 422
    assert 'data-code="roster_invalid"' in response.text
    table = response.text[response.text.index('id="roster-errors"') :]
    rows = re.findall(r'<tr><td class="num">(\d+)</td><td>(.*?)</td><td>(.*?)</td></tr>', table)
    assert [(row, field) for row, field, _ in rows] == [("3", "手机号")]
    assert "12345" in rows[0][2]
    assert _households(app) == before


def test_a_good_roster_is_imported_and_its_new_households_listed(
    app: Flask, client: FlaskClient, world: World
) -> None:
    console_login(client, "cadre_a")
    before = _households(app)
    response = _upload(client, GOOD_ROSTER)
    assert response.status_code == 303, response.text
    assert _households(app) == before + 2
    page = client.get(response.location).text
    assert '<span class="figure" id="count-households">2</span>' in page
    assert '<span class="figure" id="count-members">3</span>' in page
    listed = page[page.index('id="new-households"') :]
    assert "王大山户" in listed and "赵铁柱户" in listed
    # the same roster again adds nothing: its households are matched by 户编号
    again = _upload(client, GOOD_ROSTER)
    assert again.status_code == 303
    assert _households(app) == before + 2
    assert '<span class="figure" id="count-households">0</span>' in client.get(again.location).text


def test_an_import_s_result_is_shown_only_to_who_imported(
    client: FlaskClient, world: World
) -> None:
    console_login(client, "cadre_a")
    done = _upload(client, GOOD_ROSTER).location
    client.post("/console/logout", data={"csrf_token": csrf_in(client.get("/console/").text)})
    console_login(client, "tadmin1")
    page = client.get(done).text
    assert 'id="imported"' not in page
    assert "王大山户" not in page


def test_no_file_is_refused_beside_the_form(app: Flask, client: FlaskClient, world: World) -> None:
    console_login(client, "cadre_a")
    page = client.get("/console/roster/import").text
    response = client.post(
        "/console/roster/import",
        data={"csrf_token": csrf_in(page), "idempotency_key": "k1"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert 'data-code="file_required"' in response.text
