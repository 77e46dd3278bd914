"""The township office's console pages (积分细则, 积分政策, 额度审批, 统计, 操作日志, 积分报表):
each one a view over the API's services, so what they write is what the API would have
written, and what they show stays within the reader's township."""

from __future__ import annotations

import re
from io import BytesIO
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from backend.console.budget import VillageMonth
from backend.extensions import db
from points.models import AuditEntry, RuleCatalog, RuleItem, RuleItemVersion
from tests.factories import API, World, award, set_policy
from tests.support.clock import frozen, local
from tests.support.console import console_login
from tests.support.reads import catalog_id

FLAGS = ("requires_review", "evidence_required", "black_list")
FIELDS = ("name", "category", "class", "kind", "unit", "applies_to", "description")
NUMBERS = ("points", "max_units", "notice_days")


def item_form(item: dict[str, Any], token: str, **changes: Any) -> dict[str, Any]:
    """The edit form of an item (as GET /rule-items/<id> shows it), filled as a browser
    sends it, with `changes` typed over it."""
    data = {**item, **changes}
    form: dict[str, Any] = {"csrf_token": token}
    for name in FIELDS + NUMBERS + ("effective_from", "effective_to"):
        value = data.get(name)
        form[name] = "" if value is None else str(value)
    for name in FLAGS:
        if data.get(name):
            form[name] = "1"
    form["submit_by"] = list(data.get("submit_by", []))
    return form


def api_item(client: FlaskClient, world: World, item_id: int) -> dict[str, Any]:
    response = client.get(f"{API}/rule-items/{item_id}", headers=world.headers("tadmin1"))
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def versions(app: Flask, item_id: int) -> list[int]:
    with app.app_context():
        return list(
            db.session.scalars(
                select(RuleItemVersion.version)
                .where(RuleItemVersion.item_id == item_id)
                .order_by(RuleItemVersion.version)
            )
        )


def count(app: Flask, model: Any) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model)) or 0


# ---- 积分细则 -----------------------------------------------------------------------------------


def test_the_catalog_is_shown_by_category(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    console_login(client, "tadmin1")
    page = client.get("/console/rules")
    assert page.status_code == 200
    assert "生态宜居" in page.text and 'data-code="GOV-ASSEMBLY"' in page.text
    assert "新增条目" in page.text and "导入积分细则" in page.text


def test_editing_an_item_makes_a_new_version_and_an_old_claim_keeps_its_own(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    item_id = items["GOV-ASSEMBLY"]
    awarded = award(client, world, item_id, [{"household_id": world.household_x}])
    assert awarded.status_code == 201, awarded.get_json()
    old_claim = awarded.get_json()[0]
    before = api_item(client, world, item_id)

    token = console_login(client, "tadmin1")
    response = client.post(
        f"/console/rules/items/{item_id}",
        data=item_form(before, token, points=before["points"] + 2),
    )
    assert response.status_code == 303, response.text
    assert versions(app, item_id) == [1, 2]
    after = api_item(client, world, item_id)
    assert (after["version"], after["points"]) == (2, before["points"] + 2)

    claim = client.get(f"{API}/claims/{old_claim['id']}", headers=world.headers("tadmin1"))
    assert claim.get_json()["rule_item"]["version_id"] == before["version_id"]
    assert claim.get_json()["points"] == old_claim["points"]

    # The page says which version is current and that the old one still decides a claim.
    page = client.get(f"/console/rules/items/{item_id}")
    assert "第 2 版" in page.text and "按此版本记分 1 条" in page.text

    # The same form again changes nothing: no version 3.
    again = client.post(
        f"/console/rules/items/{item_id}",
        data=item_form(after, token),
    )
    assert again.status_code == 303
    assert versions(app, item_id) == [1, 2]


def test_the_history_names_the_field_that_changed(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    item_id = items["GOV-ASSEMBLY"]
    before = api_item(client, world, item_id)
    token = console_login(client, "tadmin1")
    response = client.post(
        f"/console/rules/items/{item_id}",
        data=item_form(before, token, name="参加村民代表大会"),
    )
    assert response.status_code == 303, response.text
    page = client.get(f"/console/rules/items/{item_id}")
    version_2 = page.text.split('data-version="2"')[1].split('data-version="1"')[0]
    assert 'data-field="name"' in version_2
    assert "参加村民代表大会" in version_2 and before["name"] in version_2
    assert 'data-field="points"' not in version_2  # only what changed


def test_a_refused_edit_names_the_field_and_makes_no_version(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    item_id = items["GOV-ASSEMBLY"]
    token = console_login(client, "tadmin1")
    response = client.post(
        f"/console/rules/items/{item_id}",
        data=item_form(api_item(client, world, item_id), token, points="很多"),
    )
    assert response.status_code == 422
    assert 'id="problems"' in response.text and "分值" in response.text
    assert 'value="很多"' in response.text  # what was typed is kept
    assert versions(app, item_id) == [1]


def test_an_item_is_added_and_retired_keeping_its_history(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    token = console_login(client, "tadmin1")
    catalog = catalog_id(app, world.township_1)
    form = item_form(
        {
            "name": "清理河道",
            "category": "生态宜居",
            "class": "bonus",
            "points": 4,
            "kind": "fixed",
            "applies_to": "member",
            "submit_by": ["cadre", "villager"],
            "requires_review": True,
        },
        token,
    )
    added = client.post(
        f"/console/rules/catalogs/{catalog}/items", data={**form, "code": "ENV-RIVER"}
    )
    assert added.status_code == 303, added.text
    item_id = int(added.headers["Location"].split("/items/")[1].split("?")[0])
    assert api_item(client, world, item_id)["points"] == 4

    retired = client.post(f"/console/rules/items/{item_id}/retire", data={"csrf_token": token})
    assert retired.status_code == 303, retired.text
    assert api_item(client, world, item_id)["retired"] is True
    listed = client.get("/console/rules")
    assert 'data-code="ENV-RIVER"' not in listed.text
    assert 'data-code="ENV-RIVER"' in client.get("/console/rules?retired=1").text
    with app.app_context():
        assert db.session.scalar(
            select(AuditEntry.action).where(AuditEntry.action == "rule_item.retire")
        )


BAD_YAML = """\
name: 新细则
categories: [生态宜居]
items:
- code: ENV-NEW
  name: 新条目
  category: 生态宜居
  class: bonus
  points: 3
  kind: fixed
  applies_to: household
  submit_by: [cadre]
- code: ENV-BAD
  name: 坏条目
  category: 不存在的分类
  class: bonus
  points: 很多
  kind: fixed
  applies_to: household
  submit_by: [cadre]
"""


def test_a_yaml_file_with_a_bad_item_shows_each_item_and_field_and_imports_nothing(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    token = console_login(client, "tadmin1")
    before_items = count(app, RuleItem)
    before_catalog = client.get(
        f"/console/rules/catalogs/{catalog_id(app, world.township_1)}/export"
    )
    response = client.post(
        "/console/rules/import",
        data={"csrf_token": token, "yaml": BAD_YAML, "replace": "1"},
    )
    assert response.status_code == 422
    table = response.text.split('id="problems"')[1].split("</table>")[0]
    assert "ENV-BAD" in table and "points" in table and "category" in table
    assert "ENV-NEW" not in table
    assert count(app, RuleItem) == before_items
    after_catalog = client.get(
        f"/console/rules/catalogs/{catalog_id(app, world.township_1)}/export"
    )
    assert after_catalog.data == before_catalog.data


def test_a_good_yaml_file_replaces_the_catalog_as_the_api_would(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    token = console_login(client, "tadmin1")
    exported = client.get(f"/console/rules/catalogs/{catalog_id(app, world.township_1)}/export")
    assert exported.status_code == 200 and exported.mimetype == "text/yaml"
    text = exported.data.decode().replace("name: 庭院整洁", "name: 庭院干净整洁")
    response = client.post(
        "/console/rules/import", data={"csrf_token": token, "yaml": text, "replace": "1"}
    )
    assert response.status_code == 303, response.text
    page = client.get(response.headers["Location"])
    assert "修改 1 条" in page.text
    assert versions(app, items["ENV-YARD"]) == [1, 2]


def test_a_catalog_file_is_uploaded_and_a_bad_one_changes_nothing(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    token = console_login(client, "tadmin1")
    before_items = count(app, RuleItem)
    response = client.post(
        "/console/rules/import",
        data={
            "csrf_token": token,
            "replace": "1",
            "file": (BytesIO(BAD_YAML.encode("gbk")), "细则.yaml"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    assert "ENV-BAD" in response.text.split('id="problems"')[1]
    assert count(app, RuleItem) == before_items
    kept = client.post(
        "/console/rules/import",
        data={"csrf_token": token, "file": (BytesIO(b""), "")},
        content_type="multipart/form-data",
    )
    assert kept.status_code == 400 and "file_required" in kept.text


def test_a_county_admin_chooses_the_township(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    console_login(client, "county")
    assert "白沙村" in client.get(f"/console/stats?township={world.township_2}").text
    assert "清水村" in client.get(f"/console/reports?township={world.township_1}").text
    policy = client.get(f"/console/policy?township={world.township_2}")
    assert policy.status_code == 200 and "还没有积分细则" in policy.text
    assert 'name="township_id"' in client.get("/console/rules").text


def test_a_clerk_may_not_open_the_rules(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    console_login(client, "clerk_a")
    assert client.get("/console/rules").status_code == 403
    assert client.get(f"/console/rules/items/{items['GOV-ASSEMBLY']}").status_code == 403


def test_a_cadre_reads_the_township_catalog_and_writes_only_village_items(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    token = console_login(client, "cadre_a")
    page = client.get("/console/rules")
    assert page.status_code == 200
    assert "新增条目" not in page.text and "导入积分细则" not in page.text
    assert "建立清水村自设细则" in page.text
    item_id = items["GOV-ASSEMBLY"]
    edited = client.post(
        f"/console/rules/items/{item_id}",
        data=item_form(api_item(client, world, item_id), token, points=99),
    )
    assert edited.status_code == 403
    assert versions(app, item_id) == [1]

    started = client.post("/console/rules/village-catalog", data={"csrf_token": token})
    assert started.status_code == 303, started.text
    with app.app_context():
        own = db.session.scalar(
            select(RuleCatalog.id).where(RuleCatalog.village_id == world.village_a)
        )
    assert own is not None
    assert "新增条目" in client.get(f"/console/rules?catalog={own}").text


def test_a_cadre_adds_a_village_item_only_where_the_township_allows_it(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    set_policy(client, world, allow_village_items=False)
    token = console_login(client, "cadre_a")
    assert "自设细则" not in client.get("/console/rules").text
    refused = client.post("/console/rules/village-catalog", data={"csrf_token": token})
    assert refused.status_code == 403 and "village_items_not_allowed" in refused.text

    set_policy(client, world, allow_village_items=True)
    started = client.post("/console/rules/village-catalog", data={"csrf_token": token})
    assert started.status_code == 303, started.text
    own = int(started.headers["Location"].split("catalog=")[1])
    form = item_form(
        {
            "name": "红白喜事简办",
            "category": "乡风文明",
            "class": "bonus",
            "points": 10,
            "kind": "once",
            "applies_to": "household",
            "submit_by": ["cadre"],
            "requires_review": True,
        },
        token,
    )
    added = client.post(f"/console/rules/catalogs/{own}/items", data={**form, "code": "QS-WED"})
    assert added.status_code == 303, added.text
    # A code the township's catalog uses is refused beside the form of the same catalog.
    clash = client.post(f"/console/rules/catalogs/{own}/items", data={**form, "code": "ENV-YARD"})
    assert clash.status_code == 409 and f'data-catalog="{own}"' in clash.text
    assert 'value="红白喜事简办"' in clash.text

    set_policy(client, world, allow_village_items=False)
    item_id = int(added.headers["Location"].split("/items/")[1].split("?")[0])
    edited = client.post(
        f"/console/rules/items/{item_id}",
        data=item_form(api_item(client, world, item_id), token, points=20),
    )
    assert edited.status_code == 403 and "village_items_not_allowed" in edited.text
    assert versions(app, item_id) == [1]


def test_a_township_admin_starts_a_villages_own_items_on_its_behalf(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    token = console_login(client, "tadmin1")
    page = client.get("/console/rules")
    assert "为村建立自设细则" in page.text and "白沙村" not in page.text
    started = client.post(
        "/console/rules/village-catalog",
        data={"csrf_token": token, "village_id": str(world.village_b)},
    )
    assert started.status_code == 303, started.text
    foreign = client.post(
        "/console/rules/village-catalog",
        data={"csrf_token": token, "village_id": str(world.village_c)},
    )
    assert foreign.status_code == 404
    with app.app_context():
        owners = db.session.scalars(
            select(RuleCatalog.village_id).where(RuleCatalog.village_id.is_not(None))
        ).all()
    assert owners == [world.village_b]


# ---- 积分政策 -----------------------------------------------------------------------------------


def test_the_policy_is_saved_as_the_api_would_save_it(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    token = console_login(client, "tadmin1")
    page = client.get("/console/policy")
    assert page.status_code == 200
    assert "公示天数" in page.text and "审核通过的加分在村务公示栏公示的天数" in page.text
    form = {
        "csrf_token": token,
        "notice_days": "7",
        "two_cadre_threshold": "40",
        "monthly_budget": "",
        "qualification_line": "50",
        "star_levels": "50, 65, 80",
        "exchange_rate": "0.5",
        "min_redemption_points": "10",
        "reset_cycle": "yearly",
        "black_list_min_deduction": "6",
        "allow_village_items": "1",
        "catalog_id": str(catalog_id(app, world.township_1)),
    }
    response = client.post("/console/policy", data=form)
    assert response.status_code == 303, response.text
    catalog = client.get(
        f"{API}/rule-catalogs/{catalog_id(app, world.township_1)}", headers=world.headers("tadmin1")
    ).get_json()
    assert catalog["policy"] == {
        "notice_days": 7,
        "two_cadre_threshold": 40,
        "monthly_budget": None,
        "reset_cycle": "yearly",
        "qualification_line": 50,
        "star_levels": [50, 65, 80],
        "exchange_rate": "0.5",
        "min_redemption_points": 10,
        "allow_village_items": True,
        "village_items_skip_review": False,
        "black_list_min_deduction": 6,
    }
    with app.app_context():
        assert db.session.scalar(
            select(func.count()).where(AuditEntry.action == "rule_catalog.policy")
        )


def test_a_refused_policy_names_the_field_and_changes_nothing(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    token = console_login(client, "tadmin1")
    before = client.get(
        f"{API}/rule-catalogs/{catalog_id(app, world.township_1)}", headers=world.headers("tadmin1")
    ).get_json()["policy"]
    response = client.post(
        "/console/policy",
        data={
            "csrf_token": token,
            "catalog_id": str(catalog_id(app, world.township_1)),
            "notice_days": "5",
            "two_cadre_threshold": "50",
            "qualification_line": "60",
            "star_levels": "90, 70",
            "exchange_rate": "1",
            "min_redemption_points": "0",
            "reset_cycle": "none",
            "black_list_min_deduction": "5",
        },
    )
    assert response.status_code == 422
    assert 'data-field="star_levels"' in response.text and 'value="90, 70"' in response.text
    after = client.get(
        f"{API}/rule-catalogs/{catalog_id(app, world.township_1)}", headers=world.headers("tadmin1")
    ).get_json()["policy"]
    assert after == before


# ---- 额度审批 -----------------------------------------------------------------------------------


def _over_budget(client: FlaskClient, world: World, items: dict[str, int]) -> int:
    """An award past village A's budget of 1 point: approved, waiting for the township."""
    set_policy(client, world, monthly_budget=1)
    awarded = award(client, world, items["GOV-ASSEMBLY"], [{"household_id": world.household_x}])
    assert awarded.status_code == 201, awarded.get_json()
    claim = awarded.get_json()[0]
    assert claim["status"] == "approved", claim
    return int(claim["id"])


def test_the_township_approves_a_claim_past_the_budget_into_notice(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    with frozen(local(2026, 3, 10)):
        claim_id = _over_budget(client, world, items)
        token = console_login(client, "tadmin1")
        page = client.get("/console/budget")
        assert page.status_code == 200
        assert f'data-claim="{claim_id}"' in page.text
        assert f'data-village="{world.village_a}"' in page.text
        row = re.search(rf'<tr data-village="{world.village_a}">.*?</tr>', page.text, re.S)
        assert row is not None and '<meter min="0" max="1" value="' in row.group(0)
        response = client.post(f"/console/budget/{claim_id}/approve", data={"csrf_token": token})
        assert response.status_code == 303, response.text
        assert "done=in_notice" in response.headers["Location"]
        claim = client.get(f"{API}/claims/{claim_id}", headers=world.headers("tadmin1")).get_json()
        assert claim["status"] == "in_notice"
        assert f'data-claim="{claim_id}"' not in client.get("/console/budget").text


def test_the_township_rejects_a_claim_past_the_budget_with_a_reason(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    claim_id = _over_budget(client, world, items)
    token = console_login(client, "tadmin1")
    empty = client.post(f"/console/budget/{claim_id}/reject", data={"csrf_token": token})
    assert empty.status_code == 422 and "请填写驳回理由" in empty.text
    response = client.post(
        f"/console/budget/{claim_id}/reject", data={"csrf_token": token, "reason": "本月额度已满"}
    )
    assert response.status_code == 303, response.text
    claim = client.get(f"{API}/claims/{claim_id}", headers=world.headers("tadmin1")).get_json()
    assert (claim["status"], claim["reject_reason"]) == ("rejected", "本月额度已满")


def test_a_cadre_may_not_open_the_budget_or_the_policy(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    claim_id = _over_budget(client, world, items)
    token = console_login(client, "cadre_b")
    assert client.get("/console/budget").status_code == 403
    assert client.get("/console/policy").status_code == 403
    approved = client.post(f"/console/budget/{claim_id}/approve", data={"csrf_token": token})
    assert approved.status_code in (403, 404)
    console_login(client, "cadre_a")
    assert client.get("/console/budget").status_code == 403
    assert "额度审批" not in client.get("/console/").text
    claim = client.get(f"{API}/claims/{claim_id}", headers=world.headers("tadmin1")).get_json()
    assert claim["status"] == "approved"


def test_a_post_without_the_csrf_token_changes_nothing(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    claim_id = _over_budget(client, world, items)
    console_login(client, "tadmin1")
    item_id = items["GOV-ASSEMBLY"]
    form = item_form(api_item(client, world, item_id), "", points=9)
    del form["csrf_token"]
    for url, data in (
        (f"/console/rules/items/{item_id}", form),
        (f"/console/rules/items/{item_id}/retire", {}),
        ("/console/policy", {"catalog_id": str(catalog_id(app, world.township_1))}),
        (f"/console/budget/{claim_id}/approve", {}),
        (f"/console/budget/{claim_id}/reject", {"reason": "不行"}),
        ("/console/rules/import", {"yaml": BAD_YAML}),
    ):
        assert client.post(url, data=data).status_code == 403, url
    assert versions(app, item_id) == [1]
    assert api_item(client, world, item_id)["retired"] is False
    claim = client.get(f"{API}/claims/{claim_id}", headers=world.headers("tadmin1")).get_json()
    assert claim["status"] == "approved"


# ---- 统计, 操作日志, 积分报表 ----------------------------------------------------------------


def test_the_stats_draw_the_townships_villages_only(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    console_login(client, "tadmin1")
    page = client.get("/console/stats")
    assert page.status_code == 200
    assert "<svg" in page.text and "<polyline" in page.text
    assert "清水村" in page.text and "桃源村" in page.text
    assert "白沙村" not in page.text
    assert client.get(f"/console/stats?township={world.township_2}").status_code == 404
    assert client.get("/console/stats?period=2026-13").status_code == 422


def test_the_audit_log_is_the_townships_and_filters(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    award(client, world, items["GOV-ASSEMBLY"], [{"household_id": world.household_x}])
    with app.app_context():  # a write in the other township
        db.session.add(
            AuditEntry(
                actor_id=world.tadmin2,
                action="claim.award",
                object_type="claims",
                object_id="1",
                township_id=world.township_2,
                village_id=world.village_c,
                after={"note": "白沙村的事"},
            )
        )
        db.session.commit()
    console_login(client, "tadmin1")
    page = client.get("/console/audit")
    assert page.status_code == 200
    assert 'data-action="claim.award"' in page.text
    assert "白沙村的事" not in page.text
    with app.app_context():
        other = db.session.scalars(
            select(AuditEntry.id).where(AuditEntry.village_id == world.village_c)
        ).all()
    for entry_id in other:
        assert f'data-entry="{entry_id}"' not in page.text
    filtered = client.get(f"/console/audit?village={world.village_b}&action=claim.award")
    assert 'data-action="claim.award"' not in filtered.text
    assert client.get("/console/audit?since=2026-02-30").status_code == 422
    console_login(client, "cadre_a")
    assert client.get("/console/audit").status_code == 403


def test_the_points_report_balances_and_lists_the_shops(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    console_login(client, "tadmin1")
    page = client.get("/console/reports")
    assert page.status_code == 200
    assert 'class="check good"' in page.text
    assert f'data-shop="{world.shop_a}"' in page.text
    assert "白沙村" not in page.text
    console_login(client, "clerk_a")
    assert client.get("/console/reports").status_code == 403


def test_a_villages_budget_bar_stops_at_the_budget_and_warns_at_nine_tenths() -> None:
    assert VillageMonth(1, "甲村", 150, 100, 0).meter == 100
    assert VillageMonth(1, "甲村", 50, 100, 0).meter == 50
    assert VillageMonth(1, "甲村", 50, 100, 0).meter_high == 90
    assert VillageMonth(1, "甲村", 0, 25, 0).meter_high == 22  # 22.5, to the even neighbour
