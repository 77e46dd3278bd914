"""Rule catalogs through the API and the CLI: import and export round-trip the default 积分细则
byte for byte, malformed catalogs change nothing and name the item and field, only the right
people edit, villagers read their own village's rules, and the dry-run evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from backend.extensions import db
from points import catalogs
from points.models import AuditEntry, RuleCatalog, RuleItem, RuleItemVersion
from rules import default_catalog_path, load_default_catalog
from tests.factories import World
from tests.support.reads import error_code

API = "/api/v1"
DEFAULT_TEXT = default_catalog_path().read_text(encoding="utf-8")
DEFAULT_ITEMS = len(load_default_catalog().items)


def import_yaml(
    client: FlaskClient,
    world: World,
    text: str,
    *,
    user: str = "tadmin1",
    township: str = "township_1",
    replace: bool = False,
) -> Any:
    query = f"township_id={world.ids[township]}" + ("&replace=true" if replace else "")
    return client.post(
        f"{API}/rule-catalogs/import?{query}",
        data=text.encode("utf-8"),
        content_type="application/yaml",
        headers=world.headers(user),
    )


def import_default(client: FlaskClient, world: World) -> dict[str, Any]:
    response = import_yaml(client, world, DEFAULT_TEXT)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["catalog"]


def item_id(app: Flask, catalog_id: int, code: str) -> int:
    with app.app_context():
        found = db.session.scalar(
            select(RuleItem.id).where(RuleItem.catalog_id == catalog_id, RuleItem.code == code)
        )
    assert found is not None, code
    return found


def row_counts(app: Flask) -> tuple[int, ...]:
    with app.app_context():
        return tuple(
            db.session.scalar(select(func.count()).select_from(model))
            for model in (RuleCatalog, RuleItem, RuleItemVersion, AuditEntry)
        )


def export(client: FlaskClient, world: World, catalog_id: int, user: str = "tadmin1") -> Any:
    return client.get(f"{API}/rule-catalogs/{catalog_id}/export", headers=world.headers(user))


# ---- import and export ----------------------------------------------------------------------


def test_default_catalog_imports_and_exports_byte_for_byte(
    client: FlaskClient, world: World
) -> None:
    response = import_yaml(client, world, DEFAULT_TEXT)
    assert response.status_code == 201
    body = response.get_json()
    assert body["catalog"]["item_count"] == DEFAULT_ITEMS == body["created"]
    assert body["catalog"]["township_id"] == world.township_1
    assert body["catalog"]["policy"]["monthly_budget"] == 3000

    exported = export(client, world, body["catalog"]["id"])
    assert exported.status_code == 200
    assert exported.headers["Content-Type"] == "text/yaml; charset=utf-8"
    assert exported.data == DEFAULT_TEXT.encode("utf-8")


def test_import_as_json_by_the_county_for_any_township(client: FlaskClient, world: World) -> None:
    response = client.post(
        f"{API}/rule-catalogs/import",
        json={"township_id": world.township_2, "yaml": DEFAULT_TEXT},
        headers=world.headers("county"),
    )
    assert response.status_code == 201
    catalog = response.get_json()["catalog"]
    assert catalog["township_id"] == world.township_2
    assert export(client, world, catalog["id"], "tadmin2").data == DEFAULT_TEXT.encode()


def test_cli_import_then_export_matches_the_file(
    app: Flask, client: FlaskClient, runner: Any, world: World
) -> None:
    result = runner.invoke(
        args=[
            "rules",
            "import",
            str(default_catalog_path()),
            "--township-id",
            str(world.township_1),
        ]
    )
    assert result.exit_code == 0, result.output
    assert f"{DEFAULT_ITEMS} new" in result.output
    with app.app_context():
        catalog_id = db.session.scalar(
            select(RuleCatalog.id).where(RuleCatalog.township_id == world.township_1)
        )
    exported = runner.invoke(args=["rules", "export", "--catalog-id", str(catalog_id)])
    assert exported.exit_code == 0
    assert exported.output == DEFAULT_TEXT
    assert export(client, world, catalog_id).data == DEFAULT_TEXT.encode("utf-8")


def test_cli_import_of_a_bad_file_names_the_problem_and_writes_nothing(
    app: Flask, runner: Any, world: World, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        DEFAULT_TEXT.replace("  category: 生态宜居\n", "  category: 体育运动\n", 1),
        encoding="utf-8",
    )
    before = row_counts(app)
    result = runner.invoke(
        args=["rules", "import", str(bad), "--township-id", str(world.township_1)]
    )
    assert result.exit_code != 0
    assert "ENV-YARD / category" in result.output
    assert row_counts(app) == before


# Four refusals of a malformed catalog file, each made from the default file by one edit.
MALFORMED = {
    "unknown category": (
        ("  category: 生态宜居\n", "  category: 体育运动\n"),
        ("ENV-YARD", "category"),
    ),
    "negative cap": (
        ("    max_count: 1\n", "    max_count: -1\n"),
        ("ENV-YARD", "caps[0].max_count"),
    ),
    "duplicate code": (("- code: ENV-CLEANUP\n", "- code: ENV-YARD\n"), ("ENV-YARD", "code")),
    "bad yaml": (
        ("name: 乡村治理积分细则（参考版）\n", "name: [乡村治理积分细则\n"),
        (None, "yaml"),
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_catalog_is_refused_naming_item_and_field_and_changes_nothing(
    app: Flask, client: FlaskClient, world: World, case: str
) -> None:
    (old, new), expected = MALFORMED[case]
    assert old in DEFAULT_TEXT
    text = DEFAULT_TEXT.replace(old, new, 1)
    catalog = import_default(client, world)
    before = row_counts(app)

    # Replacing an existing catalog, and creating one for a township without any.
    for kwargs in ({"replace": True}, {"user": "tadmin2", "township": "township_2"}):
        response = import_yaml(client, world, text, **kwargs)
        assert response.status_code == 422
        assert error_code(response) == "catalog_invalid"
        problems = response.get_json()["error"]["details"]["problems"]
        assert expected in {(p["item"], p["field"]) for p in problems}
        assert all(p["message"] for p in problems)

    assert row_counts(app) == before
    assert export(client, world, catalog["id"]).data == DEFAULT_TEXT.encode("utf-8")


def test_a_second_import_needs_replace(client: FlaskClient, world: World) -> None:
    catalog = import_default(client, world)
    response = import_yaml(client, world, DEFAULT_TEXT)
    assert response.status_code == 409
    assert error_code(response) == "catalog_exists"

    same = import_yaml(client, world, DEFAULT_TEXT, replace=True)
    assert same.status_code == 201
    assert same.get_json()["unchanged"] == DEFAULT_ITEMS
    assert same.get_json()["catalog"]["id"] == catalog["id"]


def test_replace_revises_adds_and_retires_and_exports_the_new_file(
    app: Flask, client: FlaskClient, world: World
) -> None:
    catalog = import_default(client, world)
    cleanup = item_id(app, catalog["id"], "ENV-CLEANUP")
    start = DEFAULT_TEXT.index("- code: ENV-CLEANUP\n")
    end = DEFAULT_TEXT.index("- code: ", start + 1)
    text = (DEFAULT_TEXT[:start] + DEFAULT_TEXT[end:]).replace("  points: 3\n", "  points: 4\n", 1)
    text += (
        "- code: ENV-TOILET\n  name: 厕所改造\n  category: 生态宜居\n  class: bonus\n"
        "  points: 5\n  kind: once\n  applies_to: household\n  submit_by:\n  - cadre\n"
        "  requires_review: true\n  evidence_required: true\n"
    )
    response = import_yaml(client, world, text, replace=True)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["created"], body["revised"], body["retired"]) == (1, 1, 1)
    assert body["catalog"]["item_count"] == DEFAULT_ITEMS
    assert export(client, world, catalog["id"]).data == text.encode("utf-8")

    # The dropped item keeps its history; it is only out of the catalog.
    dropped = client.get(f"{API}/rule-items/{cleanup}", headers=world.headers("tadmin1"))
    assert dropped.get_json()["retired"] is True
    listed = client.get(
        f"{API}/rule-catalogs/{catalog['id']}/items?per_page=100", headers=world.headers("tadmin1")
    ).get_json()
    assert "ENV-CLEANUP" not in {item["code"] for item in listed["items"]}

    # Importing the original again brings it back as itself.
    back = import_yaml(client, world, DEFAULT_TEXT, replace=True).get_json()
    assert back["retired"] == 1 and back["revised"] == 2
    assert export(client, world, catalog["id"]).data == DEFAULT_TEXT.encode("utf-8")
    assert item_id(app, catalog["id"], "ENV-CLEANUP") == cleanup


def test_import_refuses_other_content(client: FlaskClient, world: World) -> None:
    response = client.post(
        f"{API}/rule-catalogs/import?township_id={world.township_1}",
        data={"x": "1"},
        headers=world.headers("tadmin1"),
    )
    assert response.status_code == 415
    # A county admin must say which township (test_catalog_import_township.py).
    missing = client.post(
        f"{API}/rule-catalogs/import",
        data=DEFAULT_TEXT.encode(),
        content_type="application/yaml",
        headers=world.headers("county"),
    )
    assert missing.status_code == 422


# ---- who may do what ------------------------------------------------------------------------


def test_cadre_cannot_import_or_edit_the_township_catalog(
    app: Flask, client: FlaskClient, world: World
) -> None:
    catalog = import_default(client, world)
    yard = item_id(app, catalog["id"], "ENV-YARD")
    cadre = world.headers("cadre_a")
    before = row_counts(app)
    attempts = [
        import_yaml(client, world, DEFAULT_TEXT, user="cadre_a", replace=True),
        client.patch(f"{API}/rule-items/{yard}", json={"points": 30}, headers=cadre),
        client.post(
            f"{API}/rule-catalogs/{catalog['id']}/items",
            json={
                "code": "X-1",
                "name": "自加",
                "category": "生态宜居",
                "class": "bonus",
                "points": 1,
                "kind": "fixed",
                "applies_to": "member",
                "submit_by": ["cadre"],
            },
            headers=cadre,
        ),
        client.patch(
            f"{API}/rule-catalogs/{catalog['id']}/policy", json={"notice_days": 0}, headers=cadre
        ),
        client.post(
            f"{API}/rule-catalogs",
            json={"name": "另一套", "township_id": world.township_1},
            headers=cadre,
        ),
    ]
    assert [r.status_code for r in attempts] == [403] * len(attempts)
    assert row_counts(app) == before


def test_another_township_cannot_see_the_catalog(
    app: Flask, client: FlaskClient, world: World
) -> None:
    catalog = import_default(client, world)
    yard = item_id(app, catalog["id"], "ENV-YARD")
    other = world.headers("tadmin2")
    for path in (
        f"/rule-catalogs/{catalog['id']}",
        f"/rule-catalogs/{catalog['id']}/items",
        f"/rule-catalogs/{catalog['id']}/export",
        f"/rule-items/{yard}",
        f"/rule-items/{yard}/versions",
    ):
        response = client.get(API + path, headers=other)
        assert response.status_code == 404, path
        assert error_code(response) == "not_found"
    assert (
        client.patch(f"{API}/rule-items/{yard}", json={"points": 9}, headers=other).status_code
        == 404
    )
    assert client.get(f"{API}/rule-catalogs", headers=other).get_json()["total"] == 0
    # Nor may its admin import into township 1.
    assert import_yaml(client, world, DEFAULT_TEXT, user="tadmin2", replace=True).status_code == 404


def test_villager_reads_the_rules_of_their_village_but_cannot_edit(
    app: Flask, client: FlaskClient, world: World
) -> None:
    catalog = import_default(client, world)
    yard = item_id(app, catalog["id"], "ENV-YARD")
    villager = world.headers("villager_x")
    assert client.get(f"{API}/rule-catalogs/{catalog['id']}", headers=villager).status_code == 200
    items = client.get(
        f"{API}/villages/{world.village_a}/rule-items?per_page=100", headers=villager
    )
    assert items.status_code == 200
    assert items.get_json()["total"] == DEFAULT_ITEMS
    assert items.get_json()["items"][0]["code"] == "ENV-YARD"

    response = client.patch(f"{API}/rule-items/{yard}", json={"points": 30}, headers=villager)
    assert response.status_code == 403
    assert error_code(response) == "forbidden"
    evaluate = client.post(
        f"{API}/rules/evaluate",
        json={"item_id": yard, "villager_id": world.head_x},
        headers=villager,
    )
    assert evaluate.status_code == 403
    # Another village of the same township is not theirs to read.
    assert (
        client.get(f"{API}/villages/{world.village_b}/rule-items", headers=villager).status_code
        == 404
    )


VILLAGE_ITEM = {
    "code": "QS-DOG",
    "name": "文明养犬",
    "category": "乡风文明",
    "class": "bonus",
    "points": 2,
    "kind": "fixed",
    "applies_to": "household",
    "submit_by": ["cadre"],
    "caps": [{"period": "month", "max_count": 1}],
}


def test_cadre_adds_village_items_only_when_the_township_allows(
    app: Flask, client: FlaskClient, world: World
) -> None:
    township = import_default(client, world)
    cadre = world.headers("cadre_a")
    created = client.post(
        f"{API}/rule-catalogs",
        json={"name": "清水村村规民约", "village_id": world.village_a},
        headers=cadre,
    )
    assert created.status_code == 201, created.get_json()
    own = created.get_json()
    assert own["own_policy"] is False and own["categories"] == township["categories"]

    added = client.post(f"{API}/rule-catalogs/{own['id']}/items", json=VILLAGE_ITEM, headers=cadre)
    assert added.status_code == 201, added.get_json()
    assert (added.get_json()["version"], added.get_json()["points"]) == (1, 2)

    # The village now uses the township's items, then its own; village B does not see them.
    rules_a = client.get(
        f"{API}/villages/{world.village_a}/rule-items?per_page=100",
        headers=world.headers("villager_x"),
    ).get_json()
    assert rules_a["total"] == DEFAULT_ITEMS + 1
    assert rules_a["items"][-1]["code"] == "QS-DOG"
    with app.app_context():
        in_force = catalogs.effective_items(db.session, world.village_a)
        assert [item.code for item in in_force] == [item["code"] for item in rules_a["items"]]
        assert len(catalogs.effective_items(db.session, world.village_b)) == DEFAULT_ITEMS
    assert (
        client.get(f"{API}/rule-catalogs/{own['id']}", headers=world.headers("cadre_b")).status_code
        == 404
    )

    # A village item cannot take a code the township's catalog already uses.
    clash = client.post(
        f"{API}/rule-catalogs/{own['id']}/items",
        json={**VILLAGE_ITEM, "code": "ENV-YARD"},
        headers=cadre,
    )
    assert clash.status_code == 409

    forbid = client.patch(
        f"{API}/rule-catalogs/{township['id']}/policy",
        json={"allow_village_items": False},
        headers=world.headers("tadmin1"),
    )
    assert forbid.status_code == 200
    assert forbid.get_json()["policy"]["allow_village_items"] is False
    refused = client.post(
        f"{API}/rule-catalogs/{own['id']}/items",
        json={**VILLAGE_ITEM, "code": "QS-2"},
        headers=cadre,
    )
    assert refused.status_code == 403
    assert error_code(refused) == "village_items_not_allowed"
    dog = added.get_json()["id"]
    assert (
        error_code(client.patch(f"{API}/rule-items/{dog}", json={"points": 3}, headers=cadre))
        == "village_items_not_allowed"
    )
    # The township's own admins still may, e.g. entering the village assembly's decision.
    by_admin = client.post(
        f"{API}/rule-catalogs/{own['id']}/items",
        json={**VILLAGE_ITEM, "code": "QS-2"},
        headers=world.headers("tadmin1"),
    )
    assert by_admin.status_code == 201


def test_cadre_cannot_start_village_items_when_forbidden(client: FlaskClient, world: World) -> None:
    township = import_default(client, world)
    client.patch(
        f"{API}/rule-catalogs/{township['id']}/policy",
        json={"allow_village_items": False},
        headers=world.headers("tadmin1"),
    )
    response = client.post(
        f"{API}/rule-catalogs",
        json={"name": "清水村村规民约", "village_id": world.village_a},
        headers=world.headers("cadre_a"),
    )
    assert response.status_code == 403
    assert error_code(response) == "village_items_not_allowed"


# ---- items, policies, audit -----------------------------------------------------------------


def test_item_bodies_are_checked(client: FlaskClient, world: World) -> None:
    catalog = import_default(client, world)
    admin = world.headers("tadmin1")
    url = f"{API}/rule-catalogs/{catalog['id']}/items"
    unknown = client.post(url, json={**VILLAGE_ITEM, "bonus_points": 5}, headers=admin)
    assert unknown.status_code == 422
    assert error_code(unknown) == "unknown_fields"

    wrong = client.post(
        url, json={**VILLAGE_ITEM, "class": "deduction", "category": "体育"}, headers=admin
    )
    assert wrong.status_code == 422
    assert error_code(wrong) == "catalog_invalid"
    problems = wrong.get_json()["error"]["details"]["problems"]
    assert {(p["item"], p["field"]) for p in problems} == {
        ("QS-DOG", "points"),
        ("QS-DOG", "category"),
    }

    duplicate = client.post(url, json={**VILLAGE_ITEM, "code": "ENV-YARD"}, headers=admin)
    assert duplicate.status_code == 409
    assert error_code(duplicate) == "duplicate_code"


def test_policy_is_validated_and_audited(client: FlaskClient, world: World) -> None:
    catalog = import_default(client, world)
    admin = world.headers("tadmin1")
    url = f"{API}/rule-catalogs/{catalog['id']}/policy"
    bad = client.patch(url, json={"star_levels": [90, 80], "exchange_rate": "-1"}, headers=admin)
    assert bad.status_code == 422
    assert error_code(bad) == "catalog_invalid"
    fields = {p["field"] for p in bad.get_json()["error"]["details"]["problems"]}
    assert fields == {"star_levels", "exchange_rate"}

    good = client.patch(
        url, json={"notice_days": 7, "exchange_rate": 0.5, "monthly_budget": None}, headers=admin
    )
    assert good.status_code == 200
    policy = good.get_json()["policy"]
    assert (policy["notice_days"], policy["exchange_rate"], policy["monthly_budget"]) == (
        7,
        "0.5",
        None,
    )
    audit = client.get(f"{API}/audit", headers=admin).get_json()["items"]
    assert [entry["action"] for entry in audit][:2] == [
        "rule_catalog.policy",
        "rule_catalog.import",
    ]
    assert audit[0]["before"]["policy"]["notice_days"] == 5
    assert audit[0]["after"]["policy"]["notice_days"] == 7


def village_a_catalog(client: FlaskClient, world: World) -> dict[str, Any]:
    """Village A's own catalog, made by its cadre under the township's default one."""
    import_default(client, world)
    created: dict[str, Any] = client.post(
        f"{API}/rule-catalogs",
        json={"name": "清水村村规民约", "village_id": world.village_a},
        headers=world.headers("cadre_a"),
    ).get_json()
    return created


def test_a_village_catalog_can_get_its_own_policy(client: FlaskClient, world: World) -> None:
    own = village_a_catalog(client, world)
    assert own["policy"]["monthly_budget"] == 3000  # the township's
    url = f"{API}/rule-catalogs/{own['id']}/policy"
    # The budget is the township's control over the village: its cadres cannot set it.
    assert (
        client.patch(
            url, json={"monthly_budget": 9999}, headers=world.headers("cadre_a")
        ).status_code
        == 403
    )
    response = client.patch(url, json={"monthly_budget": 2000}, headers=world.headers("tadmin1"))
    assert response.status_code == 200
    assert response.get_json()["own_policy"] is True
    assert response.get_json()["policy"]["monthly_budget"] == 2000


def test_the_policies_of_many_villages_read_at_once_are_each_villages_own(
    app: Flask, client: FlaskClient, world: World
) -> None:
    # Village A has its own policy, B follows township T1's, C's township has no catalog:
    # read together (the budget pages) as each is read alone (every award).
    own = village_a_catalog(client, world)
    client.patch(
        f"{API}/rule-catalogs/{own['id']}/policy",
        json={"monthly_budget": 2000},
        headers=world.headers("tadmin1"),
    )
    with app.app_context():
        townships = {
            world.village_a: world.township_1,
            world.village_b: world.township_1,
            world.village_c: world.township_2,
        }
        together = catalogs.effective_policies(db.session, townships)
        alone = {v: catalogs.effective_policy(db.session, v) for v in townships}
        assert together == alone
        assert [together[v].monthly_budget for v in townships] == [2000, 3000, None]
        assert catalogs.effective_policies(db.session, {}) == {}


# ---- the dry run ----------------------------------------------------------------------------


def evaluate(client: FlaskClient, world: World, body: dict[str, Any], user: str = "cadre_a") -> Any:
    return client.post(f"{API}/rules/evaluate", json=body, headers=world.headers(user))


def test_dry_run_caps_units_and_says_why(app: Flask, client: FlaskClient, world: World) -> None:
    catalog = import_default(client, world)
    volunteer = item_id(app, catalog["id"], "PUB-VOLUNTEER")  # 2 points an hour, 8 at most
    response = evaluate(
        client, world, {"item_id": volunteer, "villager_id": world.head_x, "units": 10}
    )
    assert response.status_code == 200
    body = response.get_json()
    assert (body["points"], body["capped"], body["units"]) == (16, True, 8)
    assert "8 小时" in body["reason"]

    plain = evaluate(
        client, world, {"item_id": volunteer, "villager_id": world.head_x, "units": 3}
    ).get_json()
    assert (plain["points"], plain["capped"]) == (6, False)


def test_dry_run_outside_the_effective_dates_gives_nothing(
    app: Flask, client: FlaskClient, world: World
) -> None:
    catalog = import_default(client, world)
    yard = item_id(app, catalog["id"], "ENV-YARD")
    client.patch(
        f"{API}/rule-items/{yard}",
        json={"effective_from": "2027-01-01"},
        headers=world.headers("tadmin1"),
    )
    body = evaluate(
        client,
        world,
        {"item_id": yard, "villager_id": world.head_x, "at": "2026-12-31T23:30:00+08:00"},
    ).get_json()
    assert (body["points"], body["capped"]) == (0, False)
    assert "2027-01-01" in body["reason"] and "不计分" in body["reason"]
    # 16:30 UTC on 31 December is already 1 January in the village.
    body = evaluate(
        client,
        world,
        {"item_id": yard, "villager_id": world.head_x, "at": "2026-12-31T16:30:00+00:00"},
    ).get_json()
    assert body["points"] == 3


@pytest.mark.parametrize(
    ("units", "code"),
    [
        (0, "invalid_units"),
        (None, "invalid_units"),
        ("3", "validation_error"),
        (2.5, "validation_error"),
    ],
)
def test_dry_run_refuses_bad_units(
    app: Flask, client: FlaskClient, world: World, units: Any, code: str
) -> None:
    catalog = import_default(client, world)
    volunteer = item_id(app, catalog["id"], "PUB-VOLUNTEER")
    response = evaluate(
        client, world, {"item_id": volunteer, "villager_id": world.head_x, "units": units}
    )
    assert response.status_code == 422
    assert error_code(response) == code


def test_dry_run_stays_in_scope(app: Flask, client: FlaskClient, world: World) -> None:
    catalog = import_default(client, world)
    yard = item_id(app, catalog["id"], "ENV-YARD")
    # A villager of another township: not the cadre's to see.
    assert (
        evaluate(client, world, {"item_id": yard, "villager_id": world.head_z}).status_code == 404
    )
    # The county sees both, but township 1's rules do not apply in township 2.
    response = evaluate(client, world, {"item_id": yard, "villager_id": world.head_z}, "county")
    assert response.status_code == 422
    assert error_code(response) == "item_not_applicable"


def test_openapi_lists_the_rules_paths(client: FlaskClient) -> None:
    paths = client.get(f"{API}/openapi.json").get_json()["paths"]
    for path in (
        "/rule-catalogs",
        "/rule-catalogs/{catalog_id}",
        "/rule-catalogs/{catalog_id}/items",
        "/rule-items/{item_id}",
        "/rule-items/{item_id}/versions",
        "/rule-catalogs/{catalog_id}/export",
        "/rule-catalogs/import",
        "/rule-catalogs/{catalog_id}/policy",
        "/rules/evaluate",
        "/villages/{village_id}/rule-items",
    ):
        assert API + path in paths, path
    assert set(paths[f"{API}/rule-items/{{item_id}}"]) >= {"get", "patch"}
    assert (
        "application/yaml" in paths[f"{API}/rule-catalogs/import"]["post"]["requestBody"]["content"]
    )
