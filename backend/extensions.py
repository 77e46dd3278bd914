"""Bare extension instances; `create_app` binds them to the app."""

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

from points.models import Base

from .openapi import VillageApi

db = SQLAlchemy(model_class=Base)
migrate = Migrate()
api = VillageApi()
# Keyed by address by default; villager limits key by user (a village may share one address).
limiter = Limiter(key_func=get_remote_address, default_limits=[])
