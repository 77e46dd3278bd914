"""CLI commands: the demo township and staff accounts."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from backend.extensions import db
from points.demo import DEMO_PASSWORD
from points.models import Household, LedgerEntry, Shop, User, Village, Villager
from tests.support.reads import count


def test_demo_seeds_the_township_and_its_logins_work(
    app: Flask, runner: Any, client: FlaskClient
) -> None:
    result = runner.invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    assert count(app, Village) == 2
    assert 25 <= count(app, Household) <= 40
    assert count(app, Villager) > count(app, Household)
    assert count(app, Shop) == 2
    # Last months' awards are posted, so passbooks and boards have something in them.
    assert count(app, LedgerEntry) > 50
    assert "posted awards" in result.output
    for username in (
        "county_admin",
        "township_admin",
        "cadre_qs",
        "clerk_qs",
        "cadre_ty",
        "clerk_ty",
    ):
        assert username in result.output
        response = client.post(
            "/api/v1/auth/login", json={"username": username, "password": DEMO_PASSWORD}
        )
        assert response.status_code == 200, username
    with app.app_context():
        # every household has exactly one head (户主)
        heads = db.session.execute(
            select(Villager.household_id, func.count())
            .where(Villager.relation == "户主")
            .group_by(Villager.household_id)
        ).all()
    assert len(heads) == count(app, Household)
    assert all(n == 1 for _, n in heads)


def test_demo_refuses_a_non_empty_database(app: Flask, runner: Any) -> None:
    assert runner.invoke(args=["demo"]).exit_code == 0
    households = count(app, Household)
    result = runner.invoke(args=["demo"])
    assert result.exit_code != 0
    assert "不是空的" in result.output
    assert count(app, Household) == households


def test_demo_if_empty_skips_quietly(app: Flask, runner: Any) -> None:
    assert runner.invoke(args=["demo", "--if-empty"]).exit_code == 0
    households = count(app, Household)
    result = runner.invoke(args=["demo", "--if-empty"])
    assert result.exit_code == 0
    assert count(app, Household) == households


def test_users_create_county_admin_who_can_log_in(
    app: Flask, runner: Any, client: FlaskClient
) -> None:
    result = runner.invoke(
        args=[
            "users",
            "create",
            "--role",
            "county_admin",
            "--username",
            "root",
            "--password",
            "a-long-password",
        ]
    )
    assert result.exit_code == 0, result.output
    response = client.post(
        "/api/v1/auth/login", json={"username": "root", "password": "a-long-password"}
    )
    assert response.status_code == 200
    assert response.get_json()["user"]["role"] == "county_admin"


def test_users_create_cadre_needs_a_real_village(app: Flask, runner: Any) -> None:
    result = runner.invoke(
        args=[
            "users",
            "create",
            "--role",
            "cadre",
            "--username",
            "c1",
            "--password",
            "a-long-password",
            "--village-id",
            "999",
        ]
    )
    assert result.exit_code != 0
    assert "村" in result.output
    with app.app_context():
        assert db.session.scalar(select(User).where(User.username == "c1")) is None


def test_users_create_refuses_a_short_password(app: Flask, runner: Any) -> None:
    result = runner.invoke(
        args=[
            "users",
            "create",
            "--role",
            "county_admin",
            "--username",
            "root",
            "--password",
            "short",
        ]
    )
    assert result.exit_code != 0
    assert count(app, User) == 0
