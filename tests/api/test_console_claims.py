"""The console's review pages (审核) with a test client: the queue by status, one claim with
its reason, approvals, photos and objections, and the forms that approve, reject, withdraw
and resolve, which do exactly what the JSON API does and offer only what the rules allow."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from tests.factories import (
    World,
    add_cadre,
    approve,
    link_staff_to_villager,
    object_to,
    self_report,
    set_policy,
    upload_photo,
)
from tests.support.clock import frozen, local
from tests.support.console import console_login, csrf_in
from tests.support.reads import approval_count

MARCH_10 = local(2026, 3, 10)


def report(client: FlaskClient, world: World, items: dict[str, int], hours: int = 3) -> int:
    """villager_x's volunteer hours, waiting for review; the claim's id."""
    response = self_report(client, world, "villager_x", items["PUB-VOLUNTEER"], hours)
    assert response.status_code == 201, response.get_json()
    return int(response.get_json()["id"])


def api_claim(client: FlaskClient, world: World, claim_id: int) -> dict[str, Any]:
    response = client.get(f"/api/v1/claims/{claim_id}", headers=world.headers("cadre_a"))
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def post_form(client: FlaskClient, path: str, csrf: str, **fields: str) -> Any:
    return client.post(path, data={"csrf_token": csrf, "idempotency_key": path + "-1", **fields})


def test_the_queue_lists_claims_by_status_newest_first(
    client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    first, second = report(client, world, items, 1), report(client, world, items, 2)
    in_notice = report(client, world, items, 3)
    assert approve(client, world, "cadre_a", in_notice).status_code == 200
    console_login(client, "cadre_a")

    pending = client.get("/console/claims")
    assert pending.status_code == 200
    rows = re.findall(r'data-claim="(\d+)"', pending.text)
    assert rows == [str(second), str(first)]  # newest first; the approved one is elsewhere
    assert "户主x" in pending.text and "x户" in pending.text and "志愿服务" in pending.text
    assert 'data-status="pending" aria-current="page"' in pending.text

    noticed = client.get("/console/claims?status=in_notice")
    assert re.findall(r'data-claim="(\d+)"', noticed.text) == [str(in_notice)]
    assert "公示中" in noticed.text
    # an unknown status shows the pending tab rather than nothing
    assert re.findall(r'data-claim="(\d+)"', client.get("/console/claims?status=x").text) == [
        str(second),
        str(first),
    ]
    # the menu offers 审核
    assert 'href="/console/claims"' in client.get("/console/").text


def test_the_queue_pages_by_the_last_claim_shown(
    client: FlaskClient, world: World, items: dict[str, int], monkeypatch: Any
) -> None:
    from backend.console import claims as page

    monkeypatch.setattr(page, "PAGE_SIZE", 2)
    ids = [report(client, world, items, 1) for _ in range(3)]
    console_login(client, "cadre_a")
    first = client.get("/console/claims")
    assert re.findall(r'data-claim="(\d+)"', first.text) == [str(ids[2]), str(ids[1])]
    after = re.search(r'href="(/console/claims\?[^"]*before=\d+[^"]*)" rel="next"', first.text)
    assert after, first.text
    rest = client.get(after.group(1).replace("&amp;", "&"))
    assert re.findall(r'data-claim="(\d+)"', rest.text) == [str(ids[0])]
    assert 'rel="next"' not in rest.text


def test_another_village_sees_neither_the_claim_in_its_queue_nor_its_page(
    client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    claim_id = report(client, world, items)
    console_login(client, "cadre_b")
    assert f'data-claim="{claim_id}"' not in client.get("/console/claims").text
    page = client.get(f"/console/claims/{claim_id}")
    assert page.status_code == 404
    assert "没有找到" in page.text
    csrf = csrf_in(client.get("/console/").text)
    refused = post_form(client, f"/console/claims/{claim_id}/approve", csrf)
    assert refused.status_code == 404
    assert approval_count(world.app, claim_id) == 0


def test_a_clerk_has_no_review_menu_and_no_queue(client: FlaskClient, world: World) -> None:
    console_login(client, "clerk_a")
    assert 'href="/console/claims"' not in client.get("/console/").text
    assert client.get("/console/claims").status_code == 403


def test_the_claim_page_shows_item_points_reason_photos_and_approvals(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    photo = upload_photo(client, world.headers("villager_x"))
    response = self_report(
        client, world, "villager_x", items["PUB-VOLUNTEER"], 3, note="清扫广场", evidence=[photo]
    )
    claim_id = response.get_json()["id"]
    tadmin_id = world.tadmin1
    assert approve(client, world, tadmin_id, claim_id).status_code == 200
    console_login(client, "cadre_a")

    page = client.get(f"/console/claims/{claim_id}")
    assert page.status_code == 200
    text = page.text
    assert "PUB-VOLUNTEER" in text and "志愿服务" in text and "细则第 1 版" in text
    assert "按细则每小时计 2 分，3 小时共计 6 分" in text
    assert "清扫广场" in text and "户主x" in text and "x户" in text
    assert "村民自主申报" in text
    assert "青石镇管理员" in text or "tadmin1" in text  # who approved
    assert f'src="/console/uploads/{photo}?w=320"' in text
    assert f'href="/console/uploads/{photo}"' in text

    thumb = client.get(f"/console/uploads/{photo}?w=320")
    thumb.close()
    assert thumb.status_code == 200 and thumb.mimetype in ("image/jpeg", "image/webp")
    assert thumb.headers["Cache-Control"] == "private, no-store"
    full = client.get(f"/console/uploads/{photo}")
    full.close()
    assert full.status_code == 200 and full.mimetype == "image/jpeg"
    assert client.get(f"/console/uploads/{photo}?w=333").status_code == 404


def test_the_photo_route_checks_scope_like_the_api(
    client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    photo = upload_photo(client, world.headers("villager_x"))
    console_login(client, "cadre_b")
    assert client.get(f"/console/uploads/{photo}?w=320").status_code == 404
    api = client.get(f"/api/v1/uploads/{photo}", headers=world.headers("cadre_b"))
    assert api.status_code == 404


def test_approving_in_the_console_puts_the_claim_in_notice_as_the_api_does(
    client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    with frozen(MARCH_10):
        by_console, by_api = report(client, world, items), report(client, world, items)
        csrf = console_login(client, "cadre_a")
        page = client.get(f"/console/claims/{by_console}")
        assert 'id="approve"' in page.text
        done = post_form(client, f"/console/claims/{by_console}/approve", csrf)
        assert done.status_code == 303
        assert done.location.endswith(f"/console/claims/{by_console}")
        assert approve(client, world, "cadre_a", by_api).status_code == 200
        after = client.get(f"/console/claims/{by_console}").text
        assert "公示中" in after and 'id="approve"' not in after

    console, api = api_claim(client, world, by_console), api_claim(client, world, by_api)
    for name in ("status", "approvals", "notice_ends_at", "decided_at", "points", "reason"):
        assert console[name] == api[name], name
    assert console["status"] == "in_notice"


def test_the_same_form_sent_twice_approves_once(
    client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    claim_id = report(client, world, items)
    csrf = console_login(client, "cadre_a")
    first = post_form(client, f"/console/claims/{claim_id}/approve", csrf)
    again = post_form(client, f"/console/claims/{claim_id}/approve", csrf)
    assert (first.status_code, again.status_code) == (303, 303)
    assert again.location == first.location
    assert approval_count(world.app, claim_id) == 1


def test_rejecting_needs_a_reason_which_the_household_then_reads(
    client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    claim_id = report(client, world, items)
    csrf = console_login(client, "cadre_a")
    path = f"/console/claims/{claim_id}/reject"
    refused = post_form(client, path, csrf, reason="   ")
    assert refused.status_code == 422
    assert 'class="refusal"' in refused.text and "原因" in refused.text
    assert api_claim(client, world, claim_id)["status"] == "pending"

    done = client.post(
        path, data={"csrf_token": csrf, "idempotency_key": "reject-2", "reason": "照片看不清"}
    )
    assert done.status_code == 303
    claim = api_claim(client, world, claim_id)
    assert (claim["status"], claim["reject_reason"]) == ("rejected", "照片看不清")
    page = client.get(f"/console/claims/{claim_id}").text
    assert "照片看不清" in page and 'id="reject"' not in page and 'id="approve"' not in page


def test_withdrawing_a_claim_in_notice(
    client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    claim_id = report(client, world, items)
    assert approve(client, world, "cadre_a", claim_id).status_code == 200
    csrf = console_login(client, "cadre_a")
    page = client.get(f"/console/claims/{claim_id}").text
    assert 'id="withdraw"' in page and 'id="approve"' not in page and 'id="reject"' not in page
    done = post_form(client, f"/console/claims/{claim_id}/withdraw", csrf, reason="登记错了")
    assert done.status_code == 303
    claim = api_claim(client, world, claim_id)
    assert (claim["status"], claim["withdraw_reason"]) == ("withdrawn", "登记错了")
    assert 'id="withdraw"' not in client.get(f"/console/claims/{claim_id}").text


def test_ones_own_household_is_not_offered_and_is_refused_if_posted(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    claim_id = report(client, world, items)
    link_staff_to_villager(app, world.cadre_a, world.spouse_x)
    csrf = console_login(client, "cadre_a")
    page = client.get(f"/console/claims/{claim_id}").text
    assert 'id="own-household"' in page
    for form in ('id="approve"', 'id="reject"', 'id="withdraw"'):
        assert form not in page
    refused = post_form(client, f"/console/claims/{claim_id}/approve", csrf)
    assert refused.status_code == 403
    assert 'data-code="self_approval"' in refused.text
    assert "不能审核或处理自己家庭的积分" in refused.text
    assert approval_count(app, claim_id) == 0


def test_a_cadre_who_approved_is_not_offered_a_second_approval(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    set_policy(client, world, two_cadre_threshold=5)  # 6 points take two cadres
    claim_id = report(client, world, items)
    csrf = console_login(client, "cadre_a")
    assert post_form(client, f"/console/claims/{claim_id}/approve", csrf).status_code == 303
    assert api_claim(client, world, claim_id)["status"] == "pending"
    page = client.get(f"/console/claims/{claim_id}").text
    assert 'id="approve"' not in page and 'id="approved-by-me"' in page
    refused = client.post(
        f"/console/claims/{claim_id}/approve",
        data={"csrf_token": csrf, "idempotency_key": "second"},
    )
    assert refused.status_code == 409 and 'data-code="already_approved"' in refused.text

    add_cadre(app, world, "cadre_a2")
    other = FlaskClient(app, use_cookies=True)
    csrf2 = console_login(other, "cadre_a2")
    assert 'id="approve"' in other.get(f"/console/claims/{claim_id}").text
    assert post_form(other, f"/console/claims/{claim_id}/approve", csrf2).status_code == 303
    assert api_claim(client, world, claim_id)["status"] == "in_notice"


def test_a_claim_past_the_budget_waits_for_the_township_which_alone_is_offered_approval(
    client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    set_policy(client, world, monthly_budget=5)
    claim_id = report(client, world, items)  # 6 points
    csrf = console_login(client, "cadre_a")
    assert post_form(client, f"/console/claims/{claim_id}/approve", csrf).status_code == 303
    assert api_claim(client, world, claim_id)["status"] == "approved"
    assert f'data-claim="{claim_id}"' in client.get("/console/claims?status=approved").text
    page = client.get(f"/console/claims/{claim_id}").text
    assert 'id="approve"' not in page and 'id="reject"' in page

    township = FlaskClient(world.app, use_cookies=True)
    csrf = console_login(township, "tadmin1")
    page = township.get(f"/console/claims/{claim_id}").text
    assert 'id="approve"' in page and "乡镇审批通过" in page
    assert post_form(township, f"/console/claims/{claim_id}/approve", csrf).status_code == 303
    assert api_claim(client, world, claim_id)["status"] == "in_notice"


def test_an_objection_is_resolved_from_the_claim_page(
    client: FlaskClient, world: World, items: dict[str, int], neighbour: dict[str, int]
) -> None:
    claim_id = report(client, world, items)
    assert approve(client, world, "cadre_a", claim_id).status_code == 200
    objected = object_to(client, world, neighbour["user"], claim_id, "那天他不在村里")
    assert objected.status_code == 201, objected.get_json()
    objection_id = objected.get_json()["id"]
    csrf = console_login(client, "cadre_a")
    page = client.get("/console/claims?status=objected").text
    assert f'data-claim="{claim_id}"' in page
    page = client.get(f"/console/claims/{claim_id}").text
    assert "那天他不在村里" in page and 'class="resolve"' in page
    path = f"/console/claims/{claim_id}/objections/{objection_id}/resolve"
    done = post_form(client, path, csrf, outcome="uphold", note="村里有记录")
    assert done.status_code == 303
    claim = api_claim(client, world, claim_id)
    assert claim["status"] == "in_notice"
    assert claim["objections"][0]["status"] == "upheld"
    assert claim["objections"][0]["resolution_note"] == "村里有记录"
    after = client.get(f"/console/claims/{claim_id}").text
    assert 'class="resolve"' not in after and "异议不成立" in after


def test_a_post_without_the_csrf_token_changes_nothing(
    client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    claim_id = report(client, world, items)
    console_login(client, "cadre_a")
    for data in ({}, {"csrf_token": "forged"}):
        refused = client.post(f"/console/claims/{claim_id}/approve", data=data)
        assert refused.status_code == 403
        assert 'data-code="csrf_failed"' in refused.text
    refused = client.post(f"/console/claims/{claim_id}/reject", data={"reason": "x"})
    assert refused.status_code == 403
    assert approval_count(world.app, claim_id) == 0
    assert api_claim(client, world, claim_id)["status"] == "pending"


def test_a_veto_two_cadres_imposed_is_offered_for_withdrawal_to_the_township_only(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    second = add_cadre(app, world, "cadre_a2")
    photo = upload_photo(client, world.headers("cadre_a"))
    veto = client.post(
        "/api/v1/awards",
        json={
            "rule_item_id": items["CIV-LAVISH"],
            "note": "核实属实",
            "evidence": [photo],
            "targets": [{"household_id": world.household_x}],
        },
        headers=world.headers("cadre_a"),
    ).get_json()[0]["id"]
    approved = client.post(f"/api/v1/claims/{veto}/approve", headers=world.headers(second))
    assert approved.get_json()["status"] == "in_notice"

    console_login(client, "cadre_a")
    assert 'id="withdraw"' not in client.get(f"/console/claims/{veto}").text
    console_login(client, "tadmin1")
    assert 'id="withdraw"' in client.get(f"/console/claims/{veto}").text
