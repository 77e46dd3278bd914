"""Pytest fixtures and hooks, and nothing else: what makes test data lives in
tests/factories.py, the rest of the tests' support in tests/support/.

One app per run on SQLite (a temp file) or, with TEST_DATABASE_URL, on a fresh PostgreSQL
database; every table emptied after each test. Tests never hold an app context while calling
the client, so each request gets its own session as in production; the factories open a
context of their own and return ids."""

from __future__ import annotations

import os
import shutil
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from limits.storage import MemoryStorage
from sqlalchemy import text
from werkzeug.serving import make_server

from backend import create_app
from backend.extensions import db, limiter
from points.budget import verify_issued
from points.claims import verify_approvals
from points.ledger import verify_all
from points.models import Base
from points.village_totals import verify as verify_village_totals
from tests.factories import SECRET, World, add_household, build_world, default_items
from tests.support.clock import SERVER_ZONES
from tests.support.databases import is_postgres
from tests.support.fake_wechat import FakeWeChat
from tests.support.wechat import point_at


def database_url(tmp_dir: str) -> str:
    return os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{tmp_dir}/test.sqlite3"


# The server's own time zone must never matter: the village's is APP_TIMEZONE, and the
# server may run in UTC (most hosts) or anywhere. A test that freezes the clock
# (`tests.support.clock.frozen`, `earn_posted`) is about a moment near some boundary (a cap's
# period, a notice's end, a board's month, an order's expiry, a check-in window), so it runs
# once with the process in each of SERVER_ZONES: UTC, and two far from Asia/Shanghai on either
# side of the date line, so that the server's local date differs from the village's for most
# of the day. A test the rule does not find can ask for it with @pytest.mark.server_zones; a
# test that freezes the clock only to fix it, at no boundary, runs once with
# @pytest.mark.any_server_zone.
# The zone reaches only Python's clock (the databases store UTC, and PostgreSQL's session
# zone does not follow TZ), so the suite's second run, on PostgreSQL, does not repeat every
# zone: each test runs once there, in a zone picked by its name. CI runs the suite on both
# databases and the repeats cost a tenth of a second each on SQLite, a second on PostgreSQL.
CLOCK_HELPERS = frozenset({"frozen", "earn_posted"})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "server_zones: run the test with the server in each of SERVER_ZONES"
    )
    config.addinivalue_line(
        "markers", "any_server_zone: a frozen clock at no boundary; run once, in any zone"
    )


def is_clock_test(function: Any) -> bool:
    code = getattr(function, "__code__", None)
    return code is not None and bool(CLOCK_HELPERS & set(code.co_names))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marked = metafunc.definition.get_closest_marker
    if marked("any_server_zone") or not (
        marked("server_zones") or is_clock_test(metafunc.function)
    ):
        return
    if "server_zone" not in metafunc.fixturenames:
        metafunc.fixturenames.append("server_zone")  # lets parametrize name it; see below
    zones = SERVER_ZONES
    if is_postgres():
        pick = zlib.crc32(metafunc.definition.nodeid.encode()) % len(SERVER_ZONES)
        zones = (SERVER_ZONES[pick],)
    metafunc.parametrize("server_zone", zones, indirect=True)


@pytest.fixture(autouse=True)
def _in_server_zone(request: pytest.FixtureRequest) -> None:
    # A test parametrised by pytest_generate_tests without naming `server_zone` itself
    # would only carry the zone as a parameter: set the zone up for it, first of all.
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and "server_zone" in callspec.params:
        request.getfixturevalue("server_zone")


@pytest.fixture()
def server_zone(request: pytest.FixtureRequest) -> Iterator[str]:
    """The process's time zone (TZ) for one test: what `time.localtime`, naive
    `datetime.now()` and `date.today()` follow on the server."""
    zone = getattr(request, "param", "UTC")
    before = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()
    try:
        yield zone
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


def _test_engine_options() -> dict[str, Any]:
    """A test database need not survive a power cut: on PostgreSQL, commits do not wait for
    the write-ahead log to reach the disk (every test commits dozens of times). What one
    transaction sees of another is unchanged, so the concurrency tests prove the same."""
    if not is_postgres():
        return {}
    return {
        "SQLALCHEMY_ENGINE_OPTIONS": {
            "pool_pre_ping": True,
            "connect_args": {"options": "-c synchronous_commit=off"},
        }
    }


@pytest.fixture(scope="session")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    tmp = tmp_path_factory.mktemp("db")
    app = create_app(
        {
            "TESTING": True,
            "APP_ENV": "testing",
            "SECRET_KEY": SECRET,
            "SQLALCHEMY_DATABASE_URI": database_url(str(tmp)),
            "RATELIMIT_STORAGE_URI": "memory://",
            "PUBLIC_BASE_URL": "https://jf.example.gov.cn",
            "WECHAT_APPID": "",
            "WECHAT_SECRET": "",
            "UPLOAD_DIR": str(tmp / "uploads"),
            # Beside UPLOAD_DIR, not in it: tests count the files there.
            "RENDER_CACHE_DIR": str(tmp / "render-cache"),
            **_test_engine_options(),
            # Tests that check in or order hundreds of times as one user are not about rate
            # limits; test_rate_limits sets low ones for itself. (Login keeps its default,
            # which test_auth_tokens checks.)
            **{
                name: "100000 per minute"
                for name in (
                    "WECHAT_LOGIN_RATE_LIMIT",
                    "CHECKIN_RATE_LIMIT",
                    "PROXY_CHECKIN_RATE_LIMIT",
                    "ORDER_RATE_LIMIT",
                    "COUNTER_REDEMPTION_RATE_LIMIT",
                )
            },
        }
    )
    with app.app_context():
        Base.metadata.drop_all(db.engine)
        Base.metadata.create_all(db.engine)
    yield app
    with app.app_context():
        db.engine.dispose()


def _empty_tables(app: Flask) -> None:
    with app.app_context():
        tables = list(reversed(Base.metadata.sorted_tables))
        with db.engine.begin() as conn:
            # DELETE, not TRUNCATE: on PostgreSQL a TRUNCATE of every table makes new files
            # for each (about 80 ms a test); deleting the few rows a test wrote takes 8.
            for table in tables:
                conn.execute(table.delete())
            if conn.dialect.name == "postgresql":
                # Ids start again at 1, as TRUNCATE … RESTART IDENTITY did.
                conn.execute(
                    text(
                        "SELECT setval(c.oid, 1, false) FROM pg_class c "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE c.relkind = 'S' AND n.nspname = current_schema()"
                    )
                )


def assert_ledger_invariants(app: Flask) -> None:
    """After every test, for every account: available + held == sum(entries), and the hash
    chain verifies (docs/DESIGN.md, The ledger); every village's monthly issued points
    equal the sum of the claims they count; every village month total equals the sum of its
    households' month totals, and its check-ins the check-ins of the month."""
    with app.app_context():
        tz = ZoneInfo(app.config["APP_TIMEZONE"])
        report = verify_all(db.session)
        issued = verify_issued(db.session, tz)
        villages = verify_village_totals(db.session, tz)
        approvals = verify_approvals(db.session)
        db.session.rollback()
    assert approvals == [], approvals  # each claim's count of approvals = its approval rows
    assert report.breaks == [], report.breaks
    assert issued == [], issued  # the monthly budget's counter agrees with the claims
    assert villages == [], villages  # village months = their households' months, check-ins


@pytest.fixture(autouse=True)
def _clean(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "app" in request.fixturenames:
        app: Flask = request.getfixturevalue("app")
        try:
            assert_ledger_invariants(app)
        finally:
            _empty_tables(app)
            # The next test's rows get the same ids, so the same pictures: drawn anew there,
            # not found from this test (tests count and inspect what is drawn).
            shutil.rmtree(app.config["RENDER_CACHE_DIR"], ignore_errors=True)
        if not isinstance(limiter.storage, MemoryStorage):
            # The limiter is one object per process and follows the last app created; a
            # test that built an app with REDIS_URL left it on Redis. Back to memory.
            limiter.init_app(app)
        with app.app_context():
            limiter.reset()
        app.config.update(APP_ENV="testing", WECHAT_APPID="", WECHAT_SECRET="")


@pytest.fixture()
def served(app: Flask) -> Iterator[str]:
    """The app served over real HTTP on a loopback port, threaded: for clients in threads or
    in other processes (a tool run as a subprocess)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture()
def runner(app: Flask) -> Any:
    return app.test_cli_runner()


@pytest.fixture()
def world(app: Flask) -> World:
    return build_world(app)


@pytest.fixture()
def items(app: Flask, world: World) -> dict[str, int]:
    """The reference catalog installed for township 1; item ids by code, as village A sees
    them."""
    return default_items(app, world)


@pytest.fixture()
def neighbour(app: Flask, world: World) -> dict[str, int]:
    """Another household of village A with a bound villager user (ids: household, head,
    user): someone who may object to household x's claims."""
    return add_household(app, world.village_a, "w户", "户主w", openid="openid-w")


@pytest.fixture()
def wechat_server(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeWeChat]:
    """The fake WeChat jscode2session server, with the app pointed at it."""
    with FakeWeChat() as server:
        point_at(app, monkeypatch, server)
        yield server


@pytest.fixture()
def empty_upload_dir(app: Flask) -> Iterator[None]:
    """Photos and their copies go after the test, so that tests counting stored files start
    from none."""
    yield
    directory = Path(app.config["UPLOAD_DIR"])
    for path in directory.iterdir() if directory.exists() else []:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink()
