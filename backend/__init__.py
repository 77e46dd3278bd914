"""The HTTP layer: app factory, auth, API blueprints, pages and CLI."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask

from points.db import configure_engine, normalise_url

from . import config as app_config
from . import extensions
from .extensions import db, limiter, migrate
from .jsonio import ChineseJSONProvider


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    app.json = ChineseJSONProvider(app)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    load_config(app, test_config)
    configure_logging(app)
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_commands(app)
    return app


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
            "components": {"securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
            "info": {"description": "The HTTP API of the 村务积分 mini-program and console."},
        },
        RATELIMIT_HEADERS_ENABLED=True,
    )


def configure_logging(app: Flask) -> None:
    # urllib3 at DEBUG logs full request URLs, and the WeChat one carries the app secret.
    logging.getLogger("urllib3").setLevel(logging.INFO)


def register_extensions(app: Flask) -> None:
    db.init_app(app)
    migrate.init_app(app, db, directory=str(Path(__file__).parent.parent / "migrations"))
    extensions.api.init_app(app)
    limiter.init_app(app)
    with app.app_context():
        configure_engine(db.engine)


def register_blueprints(app: Flask) -> None:
    from . import guards, pages

    guards.register(app)  # before any route is added: it defines what <int:…> means
    from .api import register_blueprints as register_api

    register_api(extensions.api)
    app.register_blueprint(pages.bp)


def register_errorhandlers(app: Flask) -> None:
    from .errors import register_error_handlers

    register_error_handlers(app)


def register_commands(app: Flask) -> None:
    from .cli import register

    register(app)
