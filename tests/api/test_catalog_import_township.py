"""Importing a catalog (积分细则) without naming the township: a township admin's scope holds
exactly one township, which is the one; a county admin's holds them all, so they must name
it, and nothing is written until they do."""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from backend.extensions import db
from points.models import RuleCatalog, RuleItem
from rules import default_catalog_path, load_default_catalog
from tests.factories import World
from tests.support.reads import error_code

API = "/api/v1"
DEFAULT_TEXT = default_catalog_path().read_text(encoding="utf-8")


def catalogs_of(app: Flask) -> list[tuple[int | None, int]]:
    """(township, items) of every catalog."""
    with app.app_context():
        return [
            (township, items)
            for township, items in db.session.execute(
                select(RuleCatalog.township_id, func.count(RuleItem.id))
                .join(RuleItem, RuleItem.catalog_id == RuleCatalog.id, isouter=True)
                .group_by(RuleCatalog.id, RuleCatalog.township_id)
            )
        ]


def import_as(client: FlaskClient, world: World, user: str, how: str) -> Any:
    headers = world.headers(user)
    if how == "json":
        return client.post(
            f"{API}/rule-catalogs/import", json={"yaml": DEFAULT_TEXT}, headers=headers
        )
    if how == "multipart":
        return client.post(
            f"{API}/rule-catalogs/import",
            headers=headers,
            data={"file": (io.BytesIO(DEFAULT_TEXT.encode()), "rules.yaml")},
            content_type="multipart/form-data",
        )
    return client.post(
        f"{API}/rule-catalogs/import",
        data=DEFAULT_TEXT.encode(),
        content_type="application/yaml",
        headers=headers,
    )


@pytest.mark.parametrize("how", ["yaml", "json", "multipart"])
def test_a_township_admin_imports_into_their_own_township_without_naming_it(
    app: Flask, client: FlaskClient, world: World, how: str
) -> None:
    response = import_as(client, world, "tadmin2", how)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["catalog"]["township_id"] == world.township_2
    assert catalogs_of(app) == [(world.township_2, len(load_default_catalog().items))]


@pytest.mark.parametrize("how", ["yaml", "json", "multipart"])
def test_a_county_admin_must_name_the_township(
    app: Flask, client: FlaskClient, world: World, how: str
) -> None:
    response = import_as(client, world, "county", how)
    assert response.status_code == 422
    assert error_code(response) == "township_required"
    assert response.get_json()["error"]["details"] == {"field": "township_id"}
    assert catalogs_of(app) == []

    named = client.post(
        f"{API}/rule-catalogs/import",
        json={"yaml": DEFAULT_TEXT, "township_id": world.township_1},
        headers=world.headers("county"),
    )
    assert named.status_code == 201, named.get_json()
    assert named.get_json()["catalog"]["township_id"] == world.township_1


def test_a_township_admin_still_cannot_import_for_another_township(
    app: Flask, client: FlaskClient, world: World
) -> None:
    response = client.post(
        f"{API}/rule-catalogs/import",
        json={"yaml": DEFAULT_TEXT, "township_id": world.township_2},
        headers=world.headers("tadmin1"),
    )
    assert response.status_code == 404
    # A cadre may not import at all, named township or not.
    assert import_as(client, world, "cadre_a", "json").status_code == 403
    assert catalogs_of(app) == []
