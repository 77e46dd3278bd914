"""Rule item versions: editing an item makes a new version, and whatever was recorded against
an older version keeps it, with its points, after the edit. Versions are never updated."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

import rules
from backend.extensions import db
from points import catalogs
from points.models import RuleItem, RuleItemVersion, Township, User
from points.scope import Actor
from rules import default_catalog_path
from tests.factories import World
from tests.support.reads import error_code

API = "/api/v1"
DEFAULT_TEXT = default_catalog_path().read_text(encoding="utf-8")
SHANGHAI = ZoneInfo("Asia/Shanghai")


def setup_catalog(client: FlaskClient, world: World) -> tuple[int, int]:
    """Township 1's catalog from the default file; returns (catalog id, ENV-YARD's item id)."""
    response = client.post(
        f"{API}/rule-catalogs/import?township_id={world.township_1}",
        data=DEFAULT_TEXT.encode(),
        content_type="application/yaml",
        headers=world.headers("tadmin1"),
    )
    assert response.status_code == 201
    catalog_id = response.get_json()["catalog"]["id"]
    with world.app.app_context():
        yard = db.session.scalar(
            select(RuleItem.id).where(
                RuleItem.catalog_id == catalog_id, RuleItem.code == "ENV-YARD"
            )
        )
    assert yard is not None
    return catalog_id, yard


def version_row(app: Flask, version_id: int) -> dict[str, Any]:
    with app.app_context():
        version = db.session.get(RuleItemVersion, version_id)
        assert version is not None
        return {
            "item_id": version.item_id,
            "version": version.version,
            "data": version.data,
            "points": version.points,
            "created_at": version.created_at,
            "created_by": version.created_by,
        }


def version_count(app: Flask, item_id: int) -> int:
    with app.app_context():
        return (
            db.session.scalar(select(func.count()).where(RuleItemVersion.item_id == item_id)) or 0
        )


def test_editing_points_makes_version_two_and_keeps_version_one(
    app: Flask, client: FlaskClient, world: World
) -> None:
    _, yard = setup_catalog(client, world)
    admin = world.headers("tadmin1")
    first = client.get(f"{API}/rule-items/{yard}", headers=admin).get_json()
    assert (first["version"], first["points"]) == (1, 3)

    edited = client.patch(
        f"{API}/rule-items/{yard}",
        json={"points": 5, "description": "每月检查一次，由网格员评定"},
        headers=admin,
    )
    assert edited.status_code == 200
    body = edited.get_json()
    assert (body["version"], body["points"]) == (2, 5)
    assert body["version_id"] != first["version_id"]
    assert body["caps"] == first["caps"]  # untouched fields carry over

    listed = client.get(f"{API}/rule-items/{yard}/versions", headers=admin).get_json()
    assert (listed["page"], listed["per_page"], listed["total"]) == (1, 20, 2)
    versions = listed["items"]
    newest_only = client.get(
        f"{API}/rule-items/{yard}/versions?per_page=1", headers=admin
    ).get_json()
    assert [v["version"] for v in newest_only["items"]] == [2] and newest_only["total"] == 2
    assert [(v["version"], v["points"], v["current"]) for v in versions] == [
        (2, 5, True),
        (1, 3, False),
    ]
    assert versions[1]["data"]["description"] == first["description"]
    old = client.get(f"{API}/rule-item-versions/{first['version_id']}", headers=admin)
    assert old.status_code == 200
    assert (old.get_json()["points"], old.get_json()["data"]["points"]) == (3, 3)


def test_what_was_recorded_against_version_one_keeps_its_points(
    app: Flask, client: FlaskClient, world: World
) -> None:
    _, yard = setup_catalog(client, world)
    # What an award records: the version id current at the time.
    recorded = client.get(f"{API}/rule-items/{yard}", headers=world.headers("cadre_a")).get_json()[
        "version_id"
    ]
    client.patch(f"{API}/rule-items/{yard}", json={"points": 8}, headers=world.headers("tadmin1"))
    at = datetime(2026, 6, 1, 10, tzinfo=SHANGHAI)
    with app.app_context():
        then = catalogs.item_for(db.session, recorded)
        current = db.session.get(RuleItem, yard)
        assert current is not None and current.current_version is not None
        now = catalogs.item_for(db.session, current.current_version.id)
    assert (then.code, then.points) == ("ENV-YARD", 3)
    assert now.points == 8
    assert rules.evaluate(then, at, rules.History()).points == 3
    assert rules.evaluate(now, at, rules.History()).points == 8

    # A later whole-catalog replace (back to the file) does not touch it either.
    client.post(
        f"{API}/rule-catalogs/import?township_id={world.township_1}&replace=true",
        data=DEFAULT_TEXT.encode(),
        content_type="application/yaml",
        headers=world.headers("tadmin1"),
    )
    with app.app_context():
        assert catalogs.item_for(db.session, recorded).points == 3
    assert version_count(app, yard) == 3


def test_versions_are_never_updated(app: Flask, client: FlaskClient, world: World) -> None:
    _, yard = setup_catalog(client, world)
    v1 = client.get(f"{API}/rule-items/{yard}", headers=world.headers("tadmin1")).get_json()[
        "version_id"
    ]
    before = version_row(app, v1)
    for points in (4, 5, 6):
        assert (
            client.patch(
                f"{API}/rule-items/{yard}",
                json={"points": points},
                headers=world.headers("tadmin1"),
            ).status_code
            == 200
        )
    assert version_row(app, v1) == before
    assert version_count(app, yard) == 4

    # Even code that tries cannot rewrite a version in place.
    with app.app_context():
        version = db.session.get(RuleItemVersion, v1)
        assert version is not None
        version.points = 99
        with pytest.raises(RuntimeError, match="immutable"):
            db.session.flush()
        db.session.rollback()
    assert version_row(app, v1) == before


def test_invalid_edit_is_refused_and_makes_no_version(
    app: Flask, client: FlaskClient, world: World
) -> None:
    catalog_id, _ = setup_catalog(client, world)
    with app.app_context():
        straw = db.session.scalar(
            select(RuleItem.id).where(
                RuleItem.catalog_id == catalog_id, RuleItem.code == "ENV-STRAW"
            )
        )
    admin = world.headers("tadmin1")
    response = client.patch(f"{API}/rule-items/{straw}", json={"points": 5}, headers=admin)
    assert response.status_code == 422
    assert error_code(response) == "catalog_invalid"
    problems = response.get_json()["error"]["details"]["problems"]
    assert [(p["item"], p["field"]) for p in problems] == [("ENV-STRAW", "points")]
    assert "小于 0" in problems[0]["message"]

    renamed = client.patch(f"{API}/rule-items/{straw}", json={"code": "ENV-FIRE"}, headers=admin)
    assert renamed.status_code == 422
    assert error_code(renamed) == "code_immutable"
    unknown = client.patch(f"{API}/rule-items/{straw}", json={"score": -5}, headers=admin)
    assert error_code(unknown) == "unknown_fields"

    current = client.get(f"{API}/rule-items/{straw}", headers=admin).get_json()
    assert (current["version"], current["points"]) == (1, -5)
    assert version_count(app, straw) == 1


def test_an_unchanged_edit_makes_no_version_and_null_clears(
    app: Flask, client: FlaskClient, world: World
) -> None:
    _, yard = setup_catalog(client, world)
    admin = world.headers("tadmin1")
    same = client.patch(f"{API}/rule-items/{yard}", json={"points": 3}, headers=admin)
    assert same.get_json()["version"] == 1
    cleared = client.patch(
        f"{API}/rule-items/{yard}", json={"caps": None, "description": None}, headers=admin
    ).get_json()
    assert cleared["version"] == 2
    assert "caps" not in cleared and "description" not in cleared
    assert version_count(app, yard) == 2


def test_simultaneous_edits_each_get_their_own_version(
    app: Flask, client: FlaskClient, world: World
) -> None:
    """Edits that arrive together are queued on the item's row, so each becomes the next
    version instead of two of them colliding on the same number."""
    _, yard = setup_catalog(client, world)
    editors = 4
    barrier = threading.Barrier(editors)
    errors: list[BaseException] = []

    def edit(points: int) -> None:
        with app.app_context():
            try:
                user = db.session.get(User, world.tadmin1)
                assert user is not None
                actor = Actor.of(db.session, user)
                db.session.rollback()  # hold no lock while waiting for the others
                barrier.wait(timeout=10)
                catalogs.edit_item(db.session, actor, yard, {"points": points})
                db.session.commit()
            except BaseException as error:  # noqa: BLE001 - reported by the assertion below
                db.session.rollback()
                errors.append(error)

    threads = [threading.Thread(target=edit, args=(10 + n,)) for n in range(editors)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with app.app_context():
        rows = db.session.execute(
            select(RuleItemVersion.version, RuleItemVersion.points)
            .where(RuleItemVersion.item_id == yard)
            .order_by(RuleItemVersion.version)
        ).all()
        current = db.session.get(RuleItem, yard)
        assert current is not None and current.current_version is not None
        latest = current.current_version.version
    assert [version for version, _ in rows] == [1, 2, 3, 4, 5]
    assert sorted(points for _, points in rows[1:]) == [10, 11, 12, 13]
    assert latest == 5


def test_edits_are_audited_with_both_versions(client: FlaskClient, world: World) -> None:
    _, yard = setup_catalog(client, world)
    admin = world.headers("tadmin1")
    client.patch(f"{API}/rule-items/{yard}", json={"points": 4}, headers=admin)
    entry = client.get(f"{API}/audit", headers=admin).get_json()["items"][0]
    assert entry["action"] == "rule_item.edit"
    assert entry["actor_id"] == world.tadmin1
    assert (entry["before"]["version"], entry["before"]["data"]["points"]) == (1, 3)
    assert (entry["after"]["version"], entry["after"]["data"]["points"]) == (2, 4)


def test_demo_loads_the_default_catalog(app: Flask, client: FlaskClient, runner: Any) -> None:
    result = runner.invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        township = db.session.scalar(select(Township).where(Township.name == "青石镇"))
        assert township is not None
        catalog = catalogs.township_catalog(db.session, township.id)
        assert catalog is not None
        assert len(catalogs.live_items(db.session, catalog.id)) == len(
            rules.load_default_catalog().items
        )
        assert catalogs.export_yaml(db.session, catalog.id) == DEFAULT_TEXT
