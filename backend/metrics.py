"""GET /metrics for Prometheus: requests, the domain's counts and the scheduled jobs.

Two kinds of numbers, kept in two places on purpose:

* Requests (count and latency by Flask endpoint, method and status) are counted in the
  worker that answers them. The label is the endpoint's name, never the raw path, so ids in
  URLs cannot grow the number of series; a path no route matches is "unmatched". Under
  gunicorn with several workers, set PROMETHEUS_MULTIPROC_DIR (an empty directory, emptied
  at every start) and each scrape adds up every worker's numbers; without it a scrape sees
  the numbers of the one worker that answered it.
* Check-ins, posted claims, redemptions and the last run of every scheduled command are read
  from the database at scrape time (open claims counted over an indexed column; check-ins,
  posted claims and fulfilled orders summed from the village month totals, which count
  them as they are written; and `job_runs`). A claim is
  posted by `flask claims post-due`, an order expired by a timer: these happen in processes
  that are never scraped, on any of several servers, so a counter kept in memory would miss
  them. The database is the one place that sees them all, and it survives restarts.

Not public: with METRICS_TOKEN set, only `Authorization: Bearer <METRICS_TOKEN>`; without it,
only a client on this machine (loopback, after ProxyFix) that no proxy forwarded."""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Iterable, Iterator
from ipaddress import ip_address
from typing import Any

from flask import Flask, Response, current_app, g, request
from flask_smorest import Blueprint
from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from points.jobs import all_runs
from points.models import Claim, VillageMonthTotal
from rules.claim_status import UNDECIDED

from .errors import APIError
from .extensions import db
from .openapi import TEXT

PREFIX = "village_points"
VERIFY_JOB = "ledger verify"
# Seconds; an answer of the API takes milliseconds, a printed board's PDF or an export seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# Kept apart from prometheus_client's global registry: the app factory runs many times in
# one process (tests), and the process/platform collectors add nothing a county reads.
REQUEST_REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter(
    f"{PREFIX}_http_requests",
    "HTTP requests answered, by Flask endpoint",
    ["endpoint", "method", "status"],
    registry=REQUEST_REGISTRY,
)
LATENCY = Histogram(
    f"{PREFIX}_http_request_duration_seconds",
    "Time to answer an HTTP request, by Flask endpoint",
    ["endpoint", "method", "status"],
    buckets=BUCKETS,
    registry=REQUEST_REGISTRY,
)

blp = Blueprint("metrics", __name__, description="监控 Monitoring (Prometheus)")


def init_app(app: Flask) -> None:
    # First of the before-request hooks: one that refuses the request (no login, malformed
    # JSON) skips those after it, and its 401 or 400 must be timed and counted too.
    app.before_request_funcs.setdefault(None, []).insert(0, _start_timer)
    app.after_request(_count_request)


def register(api: Any) -> None:
    api.spec.components.security_scheme(
        "metricsToken",
        {
            "type": "http",
            "scheme": "bearer",
            "description": "METRICS_TOKEN, when the server sets one",
        },
    )
    api.register_blueprint(blp)


def _start_timer() -> None:
    g.metrics_started = time.perf_counter()


def _count_request(response: Response) -> Response:
    started = g.pop("metrics_started", None)
    if started is not None:
        labels = (request.endpoint or "unmatched", request.method, str(response.status_code))
        REQUESTS.labels(*labels).inc()
        LATENCY.labels(*labels).observe(time.perf_counter() - started)
    return response


@blp.route("/metrics", methods=["GET"])
@blp.doc(
    summary="Prometheus metrics (text exposition format)",
    description="Request counts and latency by endpoint, check-ins, posted claims, "
    "redemptions, and each scheduled command's last run. With METRICS_TOKEN "
    "set: `Authorization: Bearer <METRICS_TOKEN>`; without it, answered "
    "only to a client on the server itself.",
    # the token, or nothing from this machine; not a login's JWT
    security=[{"metricsToken": []}, {}],
)
@blp.response(200, TEXT, content_type="text/plain")
@blp.alt_response(401, description="METRICS_TOKEN is set and the request does not carry it")
@blp.alt_response(404, description="no METRICS_TOKEN, and the client is not on this machine")
def metrics() -> Response:
    _allow()
    body = generate_latest(_request_registry()) + generate_latest(_domain_registry())
    # The classic text format every Prometheus reads; no name here needs the newer one.
    return Response(
        body, content_type=CONTENT_TYPE_PLAIN_0_0_4, headers={"Cache-Control": "no-store"}
    )


def _allow() -> None:
    token = current_app.config.get("METRICS_TOKEN") or ""
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if not (
            scheme.lower() == "bearer"
            and hmac.compare_digest(given.strip().encode(), token.encode())
        ):
            raise APIError(
                401, "unauthenticated", "需要监控令牌", headers={"WWW-Authenticate": "Bearer"}
            )
        return
    # Behind a proxy that TRUSTED_PROXIES does not name, every request comes from
    # 127.0.0.1: one that carries a forwarded address from elsewhere is not local.
    forwarded = [
        part.strip()
        for part in request.headers.get("X-Forwarded-For", "").split(",")
        if part.strip()
    ]
    if not all(_loopback(address) for address in [request.remote_addr or "", *forwarded]):
        raise APIError(404, "not_found", "未找到该记录")


def _loopback(address: str) -> bool:
    try:
        return ip_address(address).is_loopback
    except ValueError:
        return False


def _request_registry() -> Any:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REQUEST_REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # every worker's files, the dead ones' included
    return registry


class _Snapshot:
    """A collector holding metrics read once, for one scrape."""

    def __init__(self, metrics: Iterable[Metric]) -> None:
        self.metrics = list(metrics)

    def collect(self) -> Iterator[Metric]:
        return iter(self.metrics)


def _domain_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    up = GaugeMetricFamily(
        f"{PREFIX}_database_up", "1 when this scrape could read the database, else 0"
    )
    try:
        metrics = list(_domain_metrics())
        up.add_metric([], 1)
    except SQLAlchemyError:
        db.session.rollback()
        current_app.logger.exception("metrics: the database could not be read")
        metrics = []
        up.add_metric([], 0)
    finally:
        db.session.rollback()  # read only; ends the transaction the counts opened
    registry.register(_Snapshot([up, *metrics]))
    return registry


def _domain_metrics() -> Iterator[Metric]:
    # A check-in is counted in its village's month as it is recorded, a claim enters the
    # ledger once at most (its entry carries it), a fulfilled order once (its redeem entry):
    # the village months count these as they are written, so a scrape sums a row per village
    # and month instead of counting every check-in, posted claim and order ever made. (A
    # veto that only bars a household, posted with no entry, is not a claim entered into
    # the ledger.)
    checkins, posted, redeemed = db.session.execute(
        select(
            func.coalesce(func.sum(VillageMonthTotal.checkins), 0),
            func.coalesce(func.sum(VillageMonthTotal.claims_posted), 0),
            func.coalesce(func.sum(VillageMonthTotal.redemptions), 0),
        )
    ).one()
    yield CounterMetricFamily(
        f"{PREFIX}_checkins", "Check-ins at activities (签到)", value=int(checkins)
    )
    yield CounterMetricFamily(
        f"{PREFIX}_claims_posted",
        "Claims entered into the ledger (入账: posted with an entry)",
        value=int(posted),
    )
    yield CounterMetricFamily(
        f"{PREFIX}_redemptions", "Redemptions fulfilled at a shop (兑换)", value=int(redeemed)
    )
    waiting = GaugeMetricFamily(
        f"{PREFIX}_claims_open", "Claims not yet decided or posted, by status", labels=["status"]
    )
    by_status = dict(
        db.session.execute(
            select(Claim.status, func.count())
            .where(Claim.status.in_(UNDECIDED))
            .group_by(Claim.status)
        ).all()
    )
    for status in UNDECIDED:
        waiting.add_metric([str(status)], by_status.get(status, 0))
    yield waiting
    yield from _job_metrics()


def _job_metrics() -> Iterator[Metric]:
    runs = CounterMetricFamily(f"{PREFIX}_job_runs", "Runs of a scheduled command", labels=["job"])
    failures = CounterMetricFamily(
        f"{PREFIX}_job_failures", "Failed runs of a scheduled command", labels=["job"]
    )
    last_ok = GaugeMetricFamily(
        f"{PREFIX}_job_last_run_ok", "1 if the command's last run succeeded, else 0", labels=["job"]
    )
    last_run = GaugeMetricFamily(
        f"{PREFIX}_job_last_run_timestamp_seconds",
        "When the command's last run ended (Unix time)",
        labels=["job"],
    )
    last_success = GaugeMetricFamily(
        f"{PREFIX}_job_last_success_timestamp_seconds",
        "When the command last succeeded (Unix time)",
        labels=["job"],
    )
    verify_ok = GaugeMetricFamily(
        f"{PREFIX}_ledger_verify_ok",
        "1 if the last `flask ledger verify` found every hash chain "
        "and monthly budget counter intact, 0 if it did not",
    )
    verify_at = GaugeMetricFamily(
        f"{PREFIX}_ledger_verify_last_run_timestamp_seconds",
        "When `flask ledger verify` last ran (Unix time)",
    )
    for job in all_runs(db.session):
        runs.add_metric([job.name], job.runs)
        failures.add_metric([job.name], job.failures)
        if job.last_finished_at is not None:
            last_ok.add_metric([job.name], 1 if job.last_ok else 0)
            last_run.add_metric([job.name], job.last_finished_at.timestamp())
        if job.last_success_at is not None:
            last_success.add_metric([job.name], job.last_success_at.timestamp())
        if job.name == VERIFY_JOB and job.last_finished_at is not None:
            verify_ok.add_metric([], 1 if job.last_ok else 0)
            verify_at.add_metric([], job.last_finished_at.timestamp())
    yield from (runs, failures, last_ok, last_run, last_success, verify_ok, verify_at)
