"""points.db.insert_as_loaded: the one-statement insert the busiest write (a check-in's claim)
uses instead of a unit-of-work flush must leave the object exactly as if it had been loaded."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import inspect, select

from backend.extensions import db
from points.db import insert_as_loaded, new_for_insert
from points.models import Township


def test_an_object_inserted_as_loaded_is_persistent_and_tracks_changes(app: Flask) -> None:
    with app.app_context():
        township = Township(name="插入镇")  # code and created_at left unset
        insert_as_loaded(db.session, township)
        state = inspect(township)
        assert state.persistent and township.id is not None
        assert db.session.get(Township, township.id) is township  # in the identity map
        # an attribute left unset took its column default and loads when read
        assert township.created_at is not None and township.code is None
        township.code = "CR"  # a later change is an UPDATE at the next flush
        db.session.commit()
        stored = db.session.execute(
            select(Township.name, Township.code).where(Township.id == township.id)
        ).one()
        assert tuple(stored) == ("插入镇", "CR")


def test_an_object_built_by_new_for_insert_behaves_as_one_built_by_its_constructor(
    app: Flask,
) -> None:
    with app.app_context():
        township = new_for_insert(Township, name="新建镇")
        assert inspect(township).transient and township.name == "新建镇"
        township.code = "XJ"  # set after building: through the instrumentation, as usual
        insert_as_loaded(db.session, township)
        assert inspect(township).persistent
        assert db.session.get(Township, township.id) is township
        township.name = "新建镇二"
        db.session.commit()
        stored = db.session.execute(
            select(Township.name, Township.code).where(Township.id == township.id)
        ).one()
        assert tuple(stored) == ("新建镇二", "XJ")
