"""Bare extension instances; `create_app` binds them to the app."""

from typing import TYPE_CHECKING

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_sqlalchemy import SQLAlchemy

from points.models import Base

from .openapi import VillageApi

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    class ScopedSession(Session):
        """What mypy sees `db.session` as: a Session that can also be handed back."""

        def remove(self) -> None: ...


class Database(SQLAlchemy):
    """Flask-SQLAlchemy, with `db.session` typed as the Session it stands for.

    `db.session` is a scoped_session: a proxy that hands every Session method to the session
    of the current request (or CLI command), plus `remove()` to close that session. points/
    takes a plain `Session`, so the proxy is declared as one here, once, instead of a cast or
    an ignore wherever backend/ passes `db.session` on. Nothing changes at run time.
    """

    if TYPE_CHECKING:
        session: ScopedSession  # type: ignore[assignment]


db = Database(model_class=Base)
api = VillageApi()
# Keyed by address by default; villager limits key by user (a village may share one address).
limiter = Limiter(key_func=get_remote_address, default_limits=[])
