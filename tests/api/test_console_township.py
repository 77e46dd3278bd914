"""The township office's console pages: the catalog and its versions, the policy, claims past
a village's budget, the statistics, the audit log and the points report."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from tests.factories import World
from tests.support.console import console_login


def test_smoke(app: Flask, client: FlaskClient, world: World, items: dict[str, int]) -> None:
    console_login(client, "tadmin1")
    page = client.get("/console/rules")
    assert page.status_code == 200, page.text
    print(page.text[:200])
    page = client.get(f"/console/rules/items/{items['GOV-ASSEMBLY']}")
    assert page.status_code == 200, page.text
