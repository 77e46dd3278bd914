"""Engine set-up that both the app and scripts need (no Flask)."""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import Engine, create_engine, event

SQLITE_BUSY_TIMEOUT_MS = 15_000


def configure_engine(engine: Engine) -> Engine:
    """Make SQLite behave for a multi-threaded web app; leave PostgreSQL alone.

    SQLite: foreign keys on (off by default), WAL so readers don't block the writer, a busy
    timeout, and every transaction begun IMMEDIATE: a deferred transaction that reads and then
    writes can fail at once with "database is locked" when another writer got there first,
    which no busy timeout cures. Taking the write lock up front makes writers queue instead."""
    if engine.dialect.name != "sqlite":
        return engine

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event decide when a transaction starts.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for CLI scripts and benchmarks that run without the Flask app."""
    return configure_engine(create_engine(normalise_url(url), **kwargs))


def normalise_url(url: str) -> str:
    # Heroku-style and bare postgresql:// URLs both mean psycopg 3 here.
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url
