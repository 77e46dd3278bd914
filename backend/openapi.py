"""flask-smorest set-up: the schemas that validate requests are the ones that document them,
so the OpenAPI document cannot drift from the code. Errors keep API.md's shape."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask_smorest import Api
from marshmallow import EXCLUDE, Schema, fields, validate
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException


class ErrorDetail(Schema):
    code = fields.String(required=True, metadata={"description": "stable machine code"})
    message = fields.String(required=True, metadata={"description": "Chinese, for villagers"})
    details = fields.Dict()


class ErrorSchema(Schema):
    error = fields.Nested(ErrorDetail, required=True)


class VillageApi(Api):
    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error: HTTPException) -> Response:  # type: ignore[override]
        from .errors import handle_http_exception

        return handle_http_exception(error)


class QueryArgs(Schema):
    class Meta:
        # A query string may carry cache busters from the mini-program; bodies stay strict.
        unknown = EXCLUDE


class PageArgs(QueryArgs):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    per_page = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


_page_schemas: dict[str, type[Schema]] = {}


def page_of(item: type[Schema]) -> type[Schema]:
    """A `{"items", "page", "per_page", "total"}` schema around an item schema."""
    name = item.__name__.removesuffix("Schema") + "Page"
    if name not in _page_schemas:
        _page_schemas[name] = Schema.from_dict(
            {
                "items": fields.List(fields.Nested(item), required=True),
                "page": fields.Integer(required=True),
                "per_page": fields.Integer(required=True),
                "total": fields.Integer(required=True),
            },
            name=name,
        )
    return _page_schemas[name]


def paginate(session: Session, stmt: Select[Any], page: int, per_page: int) -> dict[str, Any]:
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    items = session.scalars(stmt.limit(per_page).offset((page - 1) * per_page)).all()
    return {"items": items, "page": page, "per_page": per_page, "total": total or 0}
