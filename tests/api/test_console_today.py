"""今日: what waits for each staff member, read through their scope."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from tests.factories import World, add_cadre, approve, self_report, set_policy
from tests.support.console import console_login


def _section(html: str, section: str) -> str:
    found = re.search(rf'<section class="card" id="{section}">(.*?)</section>', html, re.S)
    assert found, section
    return found.group(1)


def test_a_claim_waits_for_a_first_review_then_for_a_second_cadre_but_not_the_first(
    app: Flask, client: FlaskClient, world: World, items: dict[str, int]
) -> None:
    second = add_cadre(app, world, "cadre_a2")
    set_policy(client, world, two_cadre_threshold=1)  # every award takes two cadres
    claim_id = self_report(client, world, "villager_x", items["PUB-VOLUNTEER"], 2).get_json()["id"]

    console_login(client, "cadre_a")
    today = client.get("/console/").text
    assert f"#{claim_id}" in _section(today, "waiting")
    assert f"#{claim_id}" not in _section(today, "second")

    assert approve(client, world, "cadre_a", claim_id).get_json()["status"] == "pending"
    today = client.get("/console/").text
    assert f"#{claim_id}" not in _section(today, "waiting")
    assert f"#{claim_id}" not in _section(today, "second")  # the first approver is done

    other = app.test_client()
    console_login(other, "cadre_a2")
    today = other.get("/console/").text
    assert f"#{claim_id}" in _section(today, "second")
    assert f"#{claim_id}" not in _section(today, "waiting")
    assert second  # the second cadre exists in village A

    console_login(other, "cadre_b")  # another village: nothing of village A's
    today = other.get("/console/").text
    assert f"#{claim_id}" not in today
