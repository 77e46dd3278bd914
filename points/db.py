"""Engine set-up that both the app and scripts need (no Flask)."""

from __future__ import annotations

import sqlite3
from functools import lru_cache
from typing import Any, TypeVar, cast

from sqlalchemy import (
    Connection,
    CursorResult,
    Engine,
    Insert,
    Result,
    Table,
    create_engine,
    event,
    insert,
    inspect,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, configure_mappers, make_transient_to_detached

SQLITE_BUSY_TIMEOUT_MS = 15_000

M = TypeVar("M")


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
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def upsert_insert(dialect: str) -> Any:
    """The dialect's INSERT that takes ON CONFLICT (PostgreSQL's and SQLite's spell it
    alike), for `session.get_bind().dialect.name`."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def lock_exclusive(session: Session, *tables: str) -> None:
    """On PostgreSQL, lock `tables` against every other writer (readers go on) until the
    transaction ends: for a rebuild that replaces rows others add to. SQLite begins every
    transaction IMMEDIATE, which already shuts other writers out."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"LOCK TABLE {', '.join(tables)} IN EXCLUSIVE MODE"))


def rowcount(result: Result[*tuple[Any, ...]]) -> int:
    """How many rows an UPDATE or DELETE run by `session.execute` matched. The ORM types
    what it returns as a plain Result; for such a statement it is a CursorResult."""
    return cast(CursorResult[*tuple[Any, ...]], result).rowcount


def core(session: Session) -> Connection:
    """The session's connection, for a Core statement on a hot path (a check-in's reads and
    inserts). `session.execute` sends a Core statement through the ORM's execution path
    as well, about 0.1 ms a statement here; the connection does not. What is pending is
    flushed first, as `session.execute` would, so the statement sees it."""
    session.flush()
    return session.connection()


def insert_as_loaded(session: Session, obj: Any) -> None:
    """INSERT one new row with a single Core statement and let `obj` join the session as if
    it had just been loaded. For one row the unit of work's flush costs several times the
    statement itself, and the busiest write (a check-in's claim) inserts exactly one.
    Attributes left unset take their column defaults in the database and are loaded if read.
    """
    values = column_values(obj)
    table = inspect(obj).mapper.local_table
    join_as_loaded(
        session, obj, core(session).execute(_insert_returning(table), values).scalar_one()
    )


def new_for_insert(model: type[M], **values: Any) -> M:
    """A new (transient) `model` with `values` (attribute names) set as a load sets them,
    without the attribute event a constructor runs for each (about 45 µs an object of a
    dozen columns): for an object built to be inserted by `insert_as_loaded` or a statement
    of its own. Nothing is checked or defaulted here, as the constructor would not either;
    attributes set afterwards go through the instrumentation as usual. The mappers are
    configured first, as a constructor's first call would (a no-op once they are)."""
    configure_mappers()
    obj: M = inspect(model).class_manager.new_instance()
    obj.__dict__.update(values)
    return obj


def column_values(obj: Any) -> dict[str, Any]:
    """The column values set on a new object, by column name: what its INSERT sends."""
    mapper = inspect(obj).mapper
    return {
        attr.columns[0].key: obj.__dict__[attr.key]
        for attr in mapper.column_attrs
        if attr.key in obj.__dict__
    }


def join_as_loaded(session: Session, obj: Any, primary_key: int) -> None:
    """A new object whose row a Core statement inserted (its primary key `primary_key`)
    joins the session as if it had just been loaded."""
    mapper = inspect(obj).mapper
    (key,) = mapper.primary_key
    obj.__dict__[mapper.get_property_by_column(key).key] = primary_key
    make_transient_to_detached(obj)
    session.add(obj)


@lru_cache(maxsize=32)
def _insert_returning(table: Table) -> Insert:
    # The values go in as parameters: a statement built with .values() per row would cost
    # its cache key on every call.
    (key,) = table.primary_key
    return insert(table).returning(key)
