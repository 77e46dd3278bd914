"""The HTTP layer: app factory, auth, API blueprints, pages and CLI."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from flask import Flask
from flask.logging import default_handler
from werkzeug.middleware.proxy_fix import ProxyFix

from points import card_render, time_zone
from points.db import configure_engine, normalise_url

from . import cli, console, guards, metrics, pages
from . import config as app_config
from .api import register_blueprints as register_api
from .compression import tag_and_compress
from .errors import register_error_handlers
from .extensions import api, db, limiter
from .headers import secure_headers
from .jsonio import ChineseJSONProvider
from .ratelimits import retry_after_floor


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    app.json = ChineseJSONProvider(app)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    load_config(app, test_config)
    configure_logging(app)
    log_production_warnings(app)
    register_extensions(app)
    register_blueprints(app)
    metrics.init_app(app)
    register_error_handlers(app, db)
    app.after_request(secure_headers)
    app.after_request(tag_and_compress)
    # What a print job kept for drawing (a face of the CJK font per size, 3 to 4 MB each,
    # and the villages' card backgrounds) goes when its request ends, so that a worker
    # serving lists and pages after it does not hold it.
    app.teardown_request(lambda _exc: card_render.release())
    cli.register(app)
    return app


def refuse_another_time_zone(app: Flask) -> None:
    """Stop, with one line on stderr and exit status 3, when APP_TIMEZONE is not the zone the
    database's months are stored in (points.time_zone); record it on a first start. Run by
    wsgi.py, the entry of gunicorn and of every `flask --app wsgi` command. Status 3 is what
    gunicorn reads as a worker that cannot boot: the master stops rather than starting
    workers again and again."""
    with app.app_context():
        try:
            problem = time_zone.refusal(db.session, app.config["APP_TIMEZONE"], datetime.now(UTC))
            db.session.commit()
        finally:
            db.session.remove()
            db.engine.dispose()  # no connection outlives the check into a forked worker
    if problem:
        print(problem, file=sys.stderr)
        raise SystemExit(3)


def log_production_warnings(app: Flask) -> None:
    """Warn at the service's start of production settings that are almost surely a mistake
    (backend/config.py). Not under a `flask` command: cron mails whatever a job prints, and
    a warning every ten minutes teaches the operator to ignore the mail."""
    if click.get_current_context(silent=True) is not None:
        return
    for warning in app_config.production_warnings(app.config):
        app.logger.warning("PRODUCTION SETTINGS: %s", warning)


def load_config(app: Flask, test_config: dict[str, Any] | None) -> None:
    app.config.update(app_config.from_environment(app.instance_path))
    app.config.update(test_config or {})
    app_config.check(app.config)
    app.config["SQLALCHEMY_DATABASE_URI"] = normalise_url(app.config["SQLALCHEMY_DATABASE_URI"])
    engine_options = app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"pool_pre_ping": True})
    # A database error's message carries the statement's parameters, and the traceback of an
    # unexpected one is logged: a new password's hash, a refresh token's hash. Keep them out.
    engine_options.setdefault("hide_parameters", True)
    app.config.update(
        API_TITLE="Village Points 村务积分",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "security": [{"bearerAuth": []}],
            "components": {
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
                }
            },
            "info": {"description": "The HTTP API of the 村务积分 mini-program and console."},
        },
        RATELIMIT_HEADERS_ENABLED=True,
    )
    configure_rate_limit_storage(app)


def configure_rate_limit_storage(app: Flask) -> None:
    """Redis, when REDIS_URL is set, holds the counters every worker shares.

    If Redis is down or unreachable the service stays up (a county would rather keep
    check-ins and the shop open than enforce a limit): each worker switches to an
    in-memory copy of the same limits (so the limit is per worker until Redis is back),
    logs a warning, and probes Redis again with a growing pause (1 s up to 32 s), returning
    to it on its own. Short socket timeouts keep an unreachable Redis host from stalling
    every request; errors Flask-Limiter meets elsewhere are logged, never answered as 500."""
    config = app.config
    if config["RATELIMIT_STORAGE_URI"].startswith(("redis", "rediss", "valkey")):
        config.setdefault(
            "RATELIMIT_STORAGE_OPTIONS",
            {
                # keys become "<REDIS_KEY_PREFIX>:limits:LIMITER/<key>/<endpoint>/…"; the
                # limiter's reset (and `flask limiter clear`) stay inside this deployment's keys
                "key_prefix": f"{config['REDIS_KEY_PREFIX']}:limits",
                "socket_connect_timeout": 0.5,
                "socket_timeout": 0.5,
            },
        )
    config.update(RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True, RATELIMIT_SWALLOW_ERRORS=True)


def configure_logging(app: Flask) -> None:
    # urllib3 at DEBUG logs full request URLs, and the WeChat one carries the app secret.
    logging.getLogger("urllib3").setLevel(logging.INFO)
    # Flask-Limiter logs to "flask-limiter" with only a NullHandler, so "Rate limit storage
    # unreachable - falling back to in-memory storage" (Redis down) would reach no one.
    # Give it the handler Flask gives app.logger (stderr, i.e. gunicorn's error log);
    # warnings and errors only, not a line per refused request.
    limiter_log = logging.getLogger("flask-limiter")
    if default_handler not in limiter_log.handlers:
        limiter_log.addHandler(default_handler)
        limiter_log.setLevel(logging.WARNING)


def register_extensions(app: Flask) -> None:
    db.init_app(app)
    api.init_app(app)
    # Registered before the limiter's own after-request hook, so it runs after it.
    app.after_request(retry_after_floor)
    limiter.init_app(app)
    if app.config["TRUSTED_PROXIES"]:
        # Behind nginx every request comes from nginx; the client's address (the key of
        # the login limits) is in X-Forwarded-For, believed for this many proxies only.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=app.config["TRUSTED_PROXIES"]
        )
    with app.app_context():
        configure_engine(db.engine)


def register_blueprints(app: Flask) -> None:
    guards.register(app)  # before any route is added: it defines what <int:…> means
    register_api(api)
    api.register_blueprint(pages.bp)
    console.register(app)
