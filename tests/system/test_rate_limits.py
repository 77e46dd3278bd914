"""Rate limits: every limited endpoint answers 429 `rate_limited` with Retry-After
once over its limit, villagers are counted one by one, the OpenAPI document says so, and —
with real gunicorn processes — two workers share one limit through Redis, and a Redis outage
leaves the service up with per-worker limits."""

from __future__ import annotations

import fcntl
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response
from flask.testing import FlaskClient
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from backend import create_app
from backend.config import LIMIT_SETTINGS
from backend.extensions import limiter
from backend.ratelimits import retry_after_floor
from points.db import configure_engine
from points.models import Base, User
from points.passwords import hash_password
from tests.factories import SECRET, World
from tests.support.reads import error_code

API = "/api/v1"
LIMIT = 3
ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")


@pytest.fixture()
def low_limits(app: Flask) -> Iterator[None]:
    """Every configurable limit set to LIMIT per minute for one test, restored after."""
    saved = {name: app.config[name] for name in LIMIT_SETTINGS}
    app.config.update({name: f"{LIMIT} per minute" for name in LIMIT_SETTINGS})
    yield
    app.config.update(saved)


# (setting, user or None, path, body); most bodies are refused by the views (4xx) but every
# request counts: the limit is checked before the body is read, so a storm of bad requests
# is limited too.
def endpoints(world: World) -> list[tuple[str, str | None, str, dict[str, Any]]]:
    return [
        (
            "LOGIN_RATE_LIMIT",
            None,
            f"{API}/auth/login",
            {"username": "nobody", "password": "wrong-password"},
        ),
        # a development login (APP_ENV=development, set below) succeeds: 200 until the limit
        ("WECHAT_LOGIN_RATE_LIMIT", None, f"{API}/auth/wechat", {"code": "dev-limits"}),
        ("CHECKIN_RATE_LIMIT", "villager_x", f"{API}/checkins", {"token": "not-a-code"}),
        (
            "PROXY_CHECKIN_RATE_LIMIT",
            "cadre_a",
            f"{API}/activities/999999/proxy-checkins",
            {"member_token": "not-a-card"},
        ),
        (
            "ORDER_RATE_LIMIT",
            "villager_x",
            f"{API}/redemptions",
            {"shop_id": world.shop_a, "items": [{"reward_id": 999999, "quantity": 1}]},
        ),
        (
            "COUNTER_REDEMPTION_RATE_LIMIT",
            "clerk_a",
            f"{API}/shops/{world.shop_a}/counter-redemptions",
            {"member_token": "not-a-card", "items": [{"reward_id": 999999, "quantity": 1}]},
        ),
        (
            "PICKUP_CODE_RATE_LIMIT",
            "clerk_a",
            f"{API}/redemptions/pickup-code",
            {"pickup_code": "000000"},
        ),
    ]


def assert_rate_limited(response: Any, window_seconds: int = 60) -> None:
    assert response.status_code == 429, response.data
    assert error_code(response) == "rate_limited"
    error = response.get_json()["error"]
    assert error["message"] == "操作太频繁，请稍后再试"
    assert error["details"] == {}
    assert 1 <= int(response.headers["Retry-After"]) <= window_seconds


@pytest.mark.parametrize("setting", LIMIT_SETTINGS)
def test_each_limited_endpoint_answers_429_once_over_its_limit(
    app: Flask, client: FlaskClient, world: World, low_limits: None, setting: str
) -> None:
    app.config["APP_ENV"] = "development"  # conftest puts it back
    _, user, path, body = next(e for e in endpoints(world) if e[0] == setting)
    headers = world.headers(user) if user else {}
    for i in range(LIMIT):
        response = client.post(path, json=body, headers=headers)
        assert response.status_code != 429, (i, response.data)
        assert response.status_code < 500, (i, response.data)

    blocked = client.post(path, json=body, headers=headers)

    assert_rate_limited(blocked)
    assert blocked.headers["X-RateLimit-Limit"] == str(LIMIT)


def test_limits_are_read_from_the_settings(
    app: Flask, client: FlaskClient, world: World, low_limits: None
) -> None:
    app.config["CHECKIN_RATE_LIMIT"] = "1 per hour"
    headers = world.headers("villager_x")
    assert client.post(f"{API}/checkins", json={"token": "x"}, headers=headers).status_code != 429
    blocked = client.post(f"{API}/checkins", json={"token": "x"}, headers=headers)
    assert_rate_limited(blocked, window_seconds=3600)
    assert int(blocked.headers["Retry-After"]) > 60  # the hour's window, not a fixed minute


@pytest.mark.parametrize(
    ("setting", "other"),
    [
        ("CHECKIN_RATE_LIMIT", "villager_y"),
        ("ORDER_RATE_LIMIT", "villager_y"),
        ("PROXY_CHECKIN_RATE_LIMIT", "cadre_b"),
    ],
)
def test_limits_count_each_user_alone(
    client: FlaskClient, world: World, low_limits: None, setting: str, other: str
) -> None:
    _, user, path, body = next(e for e in endpoints(world) if e[0] == setting)
    assert user is not None
    headers = world.headers(user)
    for _ in range(LIMIT):
        client.post(path, json=body, headers=headers)
    assert_rate_limited(client.post(path, json=body, headers=headers))

    # the other user, from the same address, is not blocked by the first one's count
    response = client.post(path, json=body, headers=world.headers(other))

    assert response.status_code != 429, response.data
    assert error_code(response) != "rate_limited"


def test_a_village_behind_one_address_is_counted_person_by_person(
    client: FlaskClient, world: World, low_limits: None
) -> None:
    shared = {"REMOTE_ADDR": "10.20.30.40"}
    # callers without a token are counted by address (they get 401 anyway) ...
    for _ in range(LIMIT):
        anonymous = client.post(f"{API}/checkins", json={"token": "x"}, environ_base=shared)
        assert anonymous.status_code == 401
    # ... which takes nothing from the villagers behind the same address
    for name in ("villager_x", "villager_y"):
        headers = world.headers(name)
        for i in range(LIMIT):
            response = client.post(
                f"{API}/checkins", json={"token": "x"}, headers=headers, environ_base=shared
            )
            assert response.status_code != 429, (name, i, response.data)
        assert_rate_limited(
            client.post(
                f"{API}/checkins", json={"token": "x"}, headers=headers, environ_base=shared
            )
        )


def test_wechat_login_is_counted_per_address(
    app: Flask, client: FlaskClient, world: World, low_limits: None
) -> None:
    app.config["APP_ENV"] = "development"  # dev-<name> codes log in; conftest puts it back
    for i in range(LIMIT):  # a different code each time: the address is what counts
        response = client.post(
            f"{API}/auth/wechat",
            json={"code": f"dev-{i}"},
            environ_base={"REMOTE_ADDR": "10.0.0.1"},
        )
        assert response.status_code == 200, response.data
    assert_rate_limited(
        client.post(
            f"{API}/auth/wechat", json={"code": "dev-new"}, environ_base={"REMOTE_ADDR": "10.0.0.1"}
        )
    )

    other = client.post(
        f"{API}/auth/wechat", json={"code": "dev-new"}, environ_base={"REMOTE_ADDR": "10.0.0.2"}
    )

    assert other.status_code == 200, other.data


def test_openapi_documents_the_429_of_every_limited_operation(client: FlaskClient) -> None:
    paths = client.get(f"{API}/openapi.json").get_json()["paths"]
    for path in (
        "/auth/login",
        "/auth/wechat",
        "/checkins",
        "/activities/{activity_id}/proxy-checkins",
        "/redemptions",
        "/shops/{shop_id}/counter-redemptions",
        "/auth/bind",
        "/uploads",
    ):
        response = paths[API + path]["post"]["responses"]["429"]
        assert "Retry-After" in response["headers"], path
        schema = response["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Error"}, path
    # reads are not limited, and not documented as if they were
    assert "429" not in paths[f"{API}/redemptions"]["get"]["responses"]


def test_an_unparseable_limit_refuses_to_start() -> None:
    with pytest.raises(RuntimeError, match="CHECKIN_RATE_LIMIT"):
        create_app(
            {
                "SECRET_KEY": SECRET,
                "SQLALCHEMY_DATABASE_URI": "sqlite://",
                "CHECKIN_RATE_LIMIT": "lots per minute",
            }
        )


def test_retry_after_is_never_zero() -> None:
    # Flask-Limiter truncates the seconds left; in a window's last second that is 0
    for value in ("0", "-1", None):
        response = Response(status=429)
        if value is not None:
            response.headers["Retry-After"] = value
        assert retry_after_floor(response).headers["Retry-After"] == "1"
    kept = Response(status=429, headers={"Retry-After": "42"})
    assert retry_after_floor(kept).headers["Retry-After"] == "42"


def test_behind_a_trusted_proxy_the_client_address_is_the_key(app: Flask) -> None:
    proxied = create_app(
        {
            "APP_ENV": "testing",
            "SECRET_KEY": SECRET,
            "SQLALCHEMY_DATABASE_URI": "sqlite://",
            "RATELIMIT_STORAGE_URI": "memory://",
            "TRUSTED_PROXIES": 1,
            "WECHAT_LOGIN_RATE_LIMIT": "1 per minute",
        }
    )
    try:
        client = proxied.test_client()

        def wechat(forwarded_for: str) -> Any:
            return client.post(
                f"{API}/auth/wechat",
                json={"code": "081abc"},
                headers={"X-Forwarded-For": forwarded_for},
                environ_base={"REMOTE_ADDR": "127.0.0.1"},
            )

        assert wechat("203.0.113.7").status_code == 503  # not configured, but counted
        assert_rate_limited(wechat("203.0.113.7"))
        # another villager's phone behind the same nginx has a count of its own
        assert wechat("198.51.100.20").status_code == 503
    finally:
        limiter.init_app(app)  # the shared limiter back on the session app's storage


# ---- real processes: two gunicorn servers, one Redis ------------------------------------------


def redis_or_skip() -> Any:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        reason = f"Redis is not reachable at {REDIS_URL} ({exc})"
        if os.environ.get("REQUIRE_REDIS") == "1":
            pytest.fail(f"{reason}, and REQUIRE_REDIS=1")
        pytest.skip(reason)
    return client


@pytest.fixture
def free_ports() -> Iterator[Callable[[int], list[int]]]:
    """Ports in 5060-5069 nothing listens on (the range set aside for these servers), the
    range held for the test: CI runs the suite on SQLite and on PostgreSQL at once, and the
    other run's server must not bind a port between its probe here and this test's gunicorn."""
    with (Path(tempfile.gettempdir()) / "vp-test-ports-5060-5069.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield _free_ports


def _free_ports(count: int) -> list[int]:
    ports = []
    for port in range(5060, 5070):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return ports
    pytest.fail("no free port in 5060-5069 for the test servers")


def prepared_database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/shared.sqlite3"
    engine = configure_engine(create_engine(url))
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add(
            User(
                username="county",
                password_hash=hash_password("right-password"),
                role="county_admin",
            )
        )
        session.commit()
    engine.dispose()
    return url


class Server:
    """`gunicorn wsgi:app` with one worker, started with the given environment."""

    def __init__(self, port: int, env: dict[str, str], log: Path) -> None:
        self.port = port
        self.log = log
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--workers",
                "1",
                "--bind",
                f"127.0.0.1:{port}",
                "wsgi:app",
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60  # start-up only; never part of an assertion
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if self.request("GET", "/healthz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        pytest.fail(f"server on {self.port} did not start:\n{self.log.read_text()}")

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, str], Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            data = json.dumps(body) if body is not None else None
            conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            payload = response.read()
            return response.status, dict(response.getheaders()), json.loads(payload or b"null")
        finally:
            conn.close()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log_file.close()


def server_env(tmp_path: Path, database_url: str, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "TEST_DATABASE_URL")
    }
    env.update(
        {
            "APP_ENV": "production",
            "SECRET_KEY": SECRET,
            "DATABASE_URL": database_url,
            "PUBLIC_BASE_URL": "https://jf.example.gov.cn",
            "UPLOAD_DIR": str(tmp_path / "uploads"),
            "PYTHONPATH": str(ROOT),
            "LOGIN_RATE_LIMIT": f"{LIMIT + 2} per hour",  # an hour: no window ends mid-test
        }
    )
    env.update(extra)
    return env


def start(servers: list[Server]) -> None:
    for server in servers:
        server.wait_ready()


def test_two_workers_share_one_limit_through_redis(
    tmp_path: Path, free_ports: Callable[[int], list[int]]
) -> None:
    redis_client = redis_or_skip()
    prefix = f"vp-test-{uuid.uuid4().hex}"
    limit = LIMIT + 2
    env = server_env(
        tmp_path, prepared_database(tmp_path), REDIS_URL=REDIS_URL, REDIS_KEY_PREFIX=prefix
    )
    servers = [Server(port, env, tmp_path / f"server-{port}.log") for port in free_ports(2)]
    try:
        start(servers)
        answers: list[tuple[int, int, dict[str, str], Any]] = []
        for i in range(2 * limit + 2):  # alternate: each server alone would allow `limit`
            server = servers[i % 2]
            status, headers, body = server.request(
                "POST", f"{API}/auth/login", {"username": "county", "password": "wrong"}
            )
            answers.append((server.port, status, headers, body))

        statuses = [status for _, status, _, _ in answers]
        assert statuses == [401] * limit + [429] * (limit + 2), statuses
        for port in (servers[0].port, servers[1].port):  # both servers refused some
            assert any(p == port and s == 429 for p, s, _, _ in answers)
        for _, _, headers, body in answers[limit:]:
            assert body["error"]["code"] == "rate_limited"
            assert body["error"]["message"] == "操作太频繁，请稍后再试"
            assert 1 <= int(headers["Retry-After"]) <= 3600
        # the counters are in Redis under this deployment's prefix
        assert list(redis_client.scan_iter(f"{prefix}:limits:*"))
    finally:
        for server in servers:
            server.stop()
        for key in redis_client.scan_iter(f"{prefix}:*"):
            redis_client.delete(key)
    assert not list(redis_client.scan_iter(f"{prefix}:*"))


def test_without_redis_the_service_stays_up_with_per_worker_limits(
    tmp_path: Path, free_ports: Callable[[int], list[int]]
) -> None:
    # port 1 on localhost: nothing listens, so every connection is refused
    env = server_env(
        tmp_path,
        prepared_database(tmp_path),
        REDIS_URL="redis://127.0.0.1:1/0",
        REDIS_KEY_PREFIX="vp-test-down",
    )
    server = Server(free_ports(1)[0], env, tmp_path / "server.log")
    limit = LIMIT + 2
    try:
        start([server])
        statuses = []
        for _ in range(limit + 2):
            status, headers, body = server.request(
                "POST", f"{API}/auth/login", {"username": "county", "password": "wrong"}
            )
            statuses.append(status)
        good = server.request("POST", f"{API}/auth/wechat", {"code": "081abc"})
    finally:
        server.stop()

    # answered (no 500), and still limited: the worker counts in memory meanwhile
    assert statuses == [401] * limit + [429, 429], (statuses, server.log.read_text())
    assert body["error"]["code"] == "rate_limited"
    assert good[0] == 503 and good[2]["error"]["code"] == "wechat_not_configured"
    assert "falling back to in-memory storage" in server.log.read_text()
