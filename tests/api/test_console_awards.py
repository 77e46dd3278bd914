"""积分录入 in the console (/console/awards/new): a thin view over the service of POST
/api/v1/awards, with the engine's dry run, checked with the test client."""

from __future__ import annotations

from io import BytesIO
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from backend.extensions import db
from points.models import Claim, IdempotencyKey, Upload
from tests.factories import World, add_household, award, jpeg_bytes
from tests.support.console import console_login
from tests.support.reads import claim_count, count


def post_award(
    client: FlaskClient,
    csrf: str,
    item_id: int,
    targets: list[str],
    key: str = "",
    **fields: Any,
) -> Any:
    data: dict[str, Any] = {
        "csrf_token": csrf,
        "idempotency_key": key,
        "rule_item_id": str(item_id),
        "target": targets,
        **fields,
    }
    return client.post("/console/awards", data=data, content_type="multipart/form-data")


def claims_of(app: Flask, household_ids: list[int]) -> list[dict[str, Any]]:
    """The claims of the households, as the fields an award decides (not ids or times)."""
    with app.app_context():
        found = db.session.scalars(
            select(Claim).where(Claim.household_id.in_(household_ids)).order_by(Claim.id)
        )
        return [
            {
                "rule_item_id": c.rule_item_id,
                "rule_item_version_id": c.rule_item_version_id,
                "source": c.source,
                "units": c.units,
                "points": c.points,
                "capped": c.capped,
                "reason": c.reason,
                "note": c.note,
                "status": c.status,
                "submitted_by": c.submitted_by,
                "has_member": c.member_id is not None,
            }
            for c in found
        ]


def test_the_page_lists_the_cadre_items_of_the_village_and_a_group_households(
    client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    console_login(client, "cadre_a")
    page = client.get("/console/awards/new")
    assert page.status_code == 200
    assert "积分录入" in page.text and "清水村" in page.text
    # Only items a cadre may enter: ENV-CLEANUP yes (cadre among its submitters).
    assert "ENV-YARD" in page.text and "庭院整洁" in page.text
    found = client.get("/console/awards/items", query_string={"category": "生态宜居", "q": "垃圾"})
    assert "ENV-SORTING" in found.text and "ENV-YARD" not in found.text
    assert "须上传照片" in client.get("/console/awards/items", query_string={"q": "焚烧"}).text
    targets = client.get("/console/awards/targets", query_string={"group": world.group_x})
    assert "x户" in targets.text and "户主x" in targets.text and "y户" not in targets.text
    # Another village's group lists nothing of it.
    other = client.get("/console/awards/targets", query_string={"group": world.group_y})
    assert "y户" not in other.text
    by_phone = client.get("/console/awards/targets", query_string={"tq": "户主x"})
    assert f'value="h:{world.household_x}"' in by_phone.text


def test_an_award_to_two_households_creates_the_claims_the_api_would(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    mine = [world.household_x, add_household(app, world.village_a, "w户", "户主w")["household"]]
    theirs = [add_household(app, world.village_a, f"{n}户", f"户主{n}")["household"] for n in "pq"]
    api = award(client, world, items["ENV-YARD"], [{"household_id": h} for h in theirs])
    assert api.status_code == 201, api.get_json()

    csrf = console_login(client, "cadre_a")
    response = post_award(client, csrf, items["ENV-YARD"], [f"h:{h}" for h in mine], key="k1")
    assert response.status_code == 303, response.text
    assert "done=2" in response.location
    assert claims_of(app, mine) == claims_of(app, theirs)

    done = client.get(response.location)
    assert "已录入 2 条" in done.text
    for claim_id in (c.id for c in _claims(app, mine)):
        assert f'href="/console/claims/{claim_id}"' in done.text


def _claims(app: Flask, household_ids: list[int]) -> list[Claim]:
    with app.app_context():
        found = db.session.scalars(select(Claim).where(Claim.household_id.in_(household_ids)))
        return list(found)


def test_a_whole_group_is_awarded_with_a_photo(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    csrf = console_login(client, "cadre_a")
    data = {
        "csrf_token": csrf,
        "idempotency_key": "g1",
        "rule_item_id": str(items["ENV-STRAW"]),
        "all_group": str(world.group_x),
        "note": "村口焚烧秸秆",
        "photo": (BytesIO(jpeg_bytes()), "proof.jpg"),
    }
    response = client.post("/console/awards", data=data, content_type="multipart/form-data")
    assert response.status_code == 303, response.text
    claims = _claims(app, [world.household_x])
    assert [c.points for c in claims] == [-5]
    assert len(claims[0].evidence) == 1 and count(app, Upload) == 1


def test_a_deduction_without_a_note_is_refused_beside_the_form_and_nothing_is_written(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    csrf = console_login(client, "cadre_a")
    response = post_award(
        client, csrf, items["GOV-LATE"], [f"h:{world.household_x}"], key="n1", note="  "
    )
    assert response.status_code == 422
    assert 'data-code="note_required"' in response.text and "扣分须写明原因" in response.text
    # Everything stays as ticked.
    assert f'value="h:{world.household_x}" checked' in response.text
    assert f'value="{items["GOV-LATE"]}" checked' in response.text
    assert claim_count(app) == 0
    with app.app_context():
        assert db.session.scalar(select(IdempotencyKey.id)) is None


def test_the_preview_shows_each_target_points_with_the_cap(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    other = add_household(app, world.village_a, "w户", "户主w")["household"]
    assert (
        award(client, world, items["ENV-YARD"], [{"household_id": world.household_x}]).status_code
        == 201
    )
    csrf = console_login(client, "cadre_a")
    before = claim_count(app)
    preview = client.post(
        "/console/awards/preview",
        data={
            "rule_item_id": str(items["ENV-YARD"]),
            "target": [f"h:{world.household_x}", f"h:{other}"],
        },
        headers={"X-CSRF-Token": csrf, "HX-Request": "true"},
    )
    assert preview.status_code == 200
    text = preview.text
    assert "受上限限制" in text and "本月已达上限 1 次" in text
    assert "x户" in text and "w户" in text
    assert ">3</th>" in text  # the total: 0 for x (capped), 3 for w
    assert claim_count(app) == before


def test_the_preview_and_the_award_refuse_another_village_household(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    csrf = console_login(client, "cadre_a")
    response = post_award(
        client,
        csrf,
        items["ENV-YARD"],
        [f"h:{world.household_x}", f"h:{world.household_y}"],
        key="v1",
    )
    assert response.status_code == 404
    assert 'data-code="not_found"' in response.text
    assert "y户" not in response.text
    assert claim_count(app) == 0
    group = post_award(client, csrf, items["ENV-YARD"], [], key="v2", all_group=world.group_y)
    assert group.status_code == 404 and claim_count(app) == 0


def test_a_post_without_the_csrf_token_changes_nothing(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    console_login(client, "cadre_a")
    response = post_award(client, "", items["ENV-YARD"], [f"h:{world.household_x}"], key="c1")
    assert response.status_code == 403
    assert claim_count(app) == 0
    preview = client.post(
        "/console/awards/preview",
        data={"rule_item_id": str(items["ENV-YARD"]), "target": f"h:{world.household_x}"},
    )
    assert preview.status_code == 403


def test_the_same_idempotency_key_twice_awards_once(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    csrf = console_login(client, "cadre_a")
    first = post_award(client, csrf, items["ENV-SORTING"], [f"h:{world.household_x}"], key="same")
    second = post_award(client, csrf, items["ENV-SORTING"], [f"h:{world.household_x}"], key="same")
    assert first.status_code == second.status_code == 303
    assert first.location == second.location
    assert claim_count(app) == 1


def test_the_api_input_bounds_hold(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    csrf = console_login(client, "cadre_a")
    units = post_award(
        client, csrf, items["PUB-VOLUNTEER"], [f"v:{world.head_x}"], key="u1", units="5000"
    )
    assert units.status_code == 422 and "数量" in units.text
    nothing = post_award(client, csrf, items["ENV-YARD"], [], key="u2")
    assert nothing.status_code == 422 and "请勾选至少一户或一位村民" in nothing.text
    assert claim_count(app) == 0


def test_a_township_admin_picks_the_village_first(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    console_login(client, "tadmin1")
    page = client.get("/console/awards/new")
    assert "请先选择要录入积分的村" in page.text and "清水村" in page.text
    assert "白沙村" not in page.text  # another township's
    chosen = client.get("/console/awards/new", query_string={"village_id": world.village_a})
    assert "ENV-YARD" in chosen.text
    assert (
        client.get("/console/awards/new", query_string={"village_id": world.village_c}).status_code
        == 404
    )


def test_the_menu_offers_the_page_to_cadres_not_to_clerks(
    client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    console_login(client, "cadre_a")
    assert 'href="/console/awards/new"' in client.get("/console/").text
    client.post("/console/logout", data={"csrf_token": console_login(client, "cadre_a")})
    console_login(client, "clerk_a")
    assert 'href="/console/awards/new"' not in client.get("/console/").text
    assert client.get("/console/awards/new").status_code == 403


def test_an_admin_cannot_find_a_villager_by_the_phone_they_see_masked(
    client: FlaskClient, world: World
) -> None:
    """Only the village's cadres see phones in full; a search by a number must not confirm
    one to anyone else, digit by digit (nor with `_` as a wildcard)."""
    console_login(client, "tadmin1")
    for needle in ("1380000000", "138________"):
        found = client.get(
            "/console/awards/targets",
            query_string={"village_id": world.village_a, "tq": needle},
        )
        assert found.status_code == 200
        assert "x户" not in found.text, needle
    console_login(client, "cadre_a")
    by_cadre = client.get(
        "/console/awards/targets", query_string={"village_id": world.village_a, "tq": "1380000000"}
    )
    assert "x户" in by_cadre.text
