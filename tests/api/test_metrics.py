"""GET /metrics: only with METRICS_TOKEN, or from this machine; request counts by endpoint
(not path); check-ins, posted claims and redemptions as the database counts them; every
scheduled command's last run, and a failing `flask ledger verify`, as the job records say."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, update

from backend.extensions import db
from points.jobs import record_run
from points.models import CheckIn, Claim, JobRun, LedgerEntry, Redemption
from tests.factories import (
    World,
    add_reward,
    default_items,
    fund,
    open_activity,
    order,
    scan,
    set_policy,
)
from tests.support.concurrency import on_postgres, together
from tests.support.reads import error_code

API = "/api/v1"
FAR = {"REMOTE_ADDR": "203.0.113.9"}


def scrape(
    client: FlaskClient, **kwargs: Any
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.data
    assert response.content_type.startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.fixture()
def token(app: Flask) -> Any:
    app.config["METRICS_TOKEN"] = "a-long-scrape-token-0123456789"
    yield app.config["METRICS_TOKEN"]
    app.config["METRICS_TOKEN"] = ""


def test_with_a_token_set_only_its_bearer_is_answered(client: FlaskClient, token: str) -> None:
    missing = client.get("/metrics")
    wrong = client.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
    basic = client.get("/metrics", headers={"Authorization": f"Basic {token}"})
    assert [r.status_code for r in (missing, wrong, basic)] == [401, 401, 401]
    assert error_code(missing) == "unauthenticated"
    # A token opens it from anywhere, loopback or not.
    assert (
        client.get(
            "/metrics", headers={"Authorization": f"Bearer {token}"}, environ_base=FAR
        ).status_code
        == 200
    )
    # ... and loopback alone no longer does.
    assert client.get("/metrics").status_code == 401


def test_without_a_token_only_this_machine_is_answered(client: FlaskClient) -> None:
    assert client.get("/metrics").status_code == 200  # the test client is 127.0.0.1
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    far = client.get("/metrics", environ_base=FAR)
    assert far.status_code == 404 and error_code(far) == "not_found"
    # Through a local proxy that TRUSTED_PROXIES does not name: forwarded from afar.
    proxied = client.get("/metrics", headers={"X-Forwarded-For": "198.51.100.7"})
    assert proxied.status_code == 404 and error_code(proxied) == "not_found"
    # A scrape through that proxy from the machine itself is still local.
    assert client.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"}).status_code == 200


def test_requests_are_counted_by_endpoint_not_by_path(
    app: Flask, client: FlaskClient, world: World
) -> None:
    before = scrape(client)
    headers = world.headers("cadre_a")
    for claim_id in (987654, 987655):
        assert client.get(f"{API}/claims/{claim_id}", headers=headers).status_code == 404
    assert client.get("/no/such/page/4242").status_code == 404
    assert client.get(f"{API}/claims/987656").status_code == 401  # refused before the view
    after = scrape(client)
    endpoint, _ = app.url_map.bind("localhost").match(f"{API}/claims/1", "GET")
    refused = {"endpoint": endpoint, "method": "GET", "status": "401"}
    assert value(after, "village_points_http_requests_total", **refused) == (
        (value(before, "village_points_http_requests_total", **refused) or 0) + 1
    )
    labels = {"endpoint": endpoint, "method": "GET", "status": "404"}
    assert value(after, "village_points_http_requests_total", **labels) == (
        (value(before, "village_points_http_requests_total", **labels) or 0) + 2
    )
    assert value(after, "village_points_http_request_duration_seconds_count", **labels) == (
        (value(before, "village_points_http_request_duration_seconds_count", **labels) or 0) + 2
    )
    unmatched = {"endpoint": "unmatched", "method": "GET", "status": "404"}
    assert value(after, "village_points_http_requests_total", **unmatched) == (
        (value(before, "village_points_http_requests_total", **unmatched) or 0) + 1
    )
    assert not any("9876" in str(key) or "4242" in str(key) for key in after)


def test_check_ins_posted_claims_and_redemptions_move_their_counters(
    app: Flask, client: FlaskClient, world: World
) -> None:
    before = scrape(client)
    assert value(before, "village_points_database_up") == 1
    items = default_items(app, world)
    set_policy(client, world, notice_days=0)  # a check-in posts at once
    _, code = open_activity(client, world, items["GOV-ASSEMBLY"])
    checked = client.post(
        f"{API}/checkins", json={"token": code}, headers=world.headers("villager_x")
    )
    assert checked.status_code == 201, checked.get_json()
    fund(app, world.household_x, 100)
    reward = add_reward(app, world.shop_a, "香皂", 10, 5)
    placed = order(client, world.headers("villager_x"), world.shop_a, [(reward, 1)])
    assert placed.status_code == 201, placed.get_json()
    fulfilled = scan(client, world.headers("clerk_a"), placed.get_json()["pickup_token"])
    assert fulfilled.status_code == 200, fulfilled.get_json()
    after = scrape(client)
    for name in ("village_points_checkins_total", "village_points_redemptions_total"):
        assert value(after, name) == (value(before, name) or 0) + 1, name
    assert checked.get_json()["status"] == "posted"
    assert value(after, "village_points_claims_posted_total") == (
        (value(before, "village_points_claims_posted_total") or 0) + 1
    )
    # Summed from the village months, they are what the check-ins, claims and orders
    # themselves say.
    with app.app_context():
        checkins = db.session.scalar(select(func.count()).select_from(CheckIn))
        posted = db.session.scalar(
            select(func.count()).select_from(Claim).where(Claim.status == "posted")
        )
        fulfilled = db.session.scalar(
            select(func.count()).select_from(Redemption).where(Redemption.status == "fulfilled")
        )
        db.session.rollback()
    assert value(after, "village_points_claims_posted_total") == posted
    assert value(after, "village_points_redemptions_total") == fulfilled == 1
    assert value(after, "village_points_checkins_total") == checkins == 1


def test_a_scheduled_command_records_its_last_success(
    app: Flask, client: FlaskClient, runner: Any
) -> None:
    assert value(scrape(client), "village_points_job_runs_total", job="claims post-due") is None
    result = runner.invoke(args=["claims", "post-due"])
    assert result.exit_code == 0, result.output
    samples = scrape(client)
    job = {"job": "claims post-due"}
    assert value(samples, "village_points_job_runs_total", **job) == 1
    assert value(samples, "village_points_job_failures_total", **job) == 0
    assert value(samples, "village_points_job_last_run_ok", **job) == 1
    with app.app_context():
        run = db.session.get(JobRun, "claims post-due")
        assert run is not None and run.last_success_at is not None
        assert value(samples, "village_points_job_last_success_timestamp_seconds", **job) == (
            pytest.approx(run.last_success_at.timestamp())
        )


def test_a_failing_ledger_verify_shows_until_a_run_passes(
    app: Flask, client: FlaskClient, world: World, runner: Any
) -> None:
    fund(app, world.household_x, 30)
    with app.app_context():
        entry_id = db.session.scalar(select(LedgerEntry.id))
        db.session.execute(
            update(LedgerEntry).where(LedgerEntry.id == entry_id).values(amount=3000)
        )  # someone edits the ledger by hand
        db.session.commit()
    try:
        failed = runner.invoke(args=["ledger", "verify"])
        assert failed.exit_code != 0
        samples = scrape(client)
        assert value(samples, "village_points_ledger_verify_ok") == 0
        assert value(samples, "village_points_job_failures_total", job="ledger verify") == 1
        assert (
            value(samples, "village_points_job_last_success_timestamp_seconds", job="ledger verify")
            is None
        )
        with app.app_context():
            run = db.session.get(JobRun, "ledger verify")
            assert run is not None and "do not verify" in (run.last_message or "")
    finally:
        with app.app_context():
            db.session.execute(
                update(LedgerEntry).where(LedgerEntry.id == entry_id).values(amount=30)
            )
            db.session.commit()
    assert runner.invoke(args=["ledger", "verify"]).exit_code == 0
    samples = scrape(client)
    assert value(samples, "village_points_ledger_verify_ok") == 1
    assert value(samples, "village_points_job_runs_total", job="ledger verify") == 2
    assert value(samples, "village_points_ledger_verify_last_run_timestamp_seconds") > 0


@on_postgres
def test_two_runs_of_a_job_ending_at_once_both_count(app: Flask) -> None:
    """Two servers' timers run the same command at the same moment: the row is made once and
    both runs are counted (the counters are incremented in SQL, not read and written)."""
    moment = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)

    def run(i: int) -> None:
        with app.app_context():
            record_run(
                db.session, "claims post-due", ok=i == 0, started_at=moment, finished_at=moment
            )
            db.session.commit()

    together(2, run)
    with app.app_context():
        job = db.session.get(JobRun, "claims post-due")
        assert job is not None and (job.runs, job.failures) == (2, 1)
