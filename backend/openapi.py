"""flask-smorest set-up: the schemas that validate requests are the ones that document them,
so the OpenAPI document cannot drift from the code. Errors keep API.md's shape."""

from __future__ import annotations

from typing import Any

from apispec import BasePlugin
from apispec.ext.marshmallow import MarshmallowPlugin, OpenAPIConverter
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


# Every text the API takes is refused (422 `invalid_text`) if it holds a control character
# (guards.py); the document says so on every plain string field and parameter. Lone
# surrogates are refused too but left out of the pattern: valid UTF-8 cannot carry them, and
# a JSON Schema pattern that names them is not portable.
def _text_pattern(self: Any, field: fields.Field, ret: dict[str, Any], **kwargs: Any
                  ) -> dict[str, Any]:
    from .guards import CONTROL_CHARS

    if (isinstance(field, fields.String) and ret.get("type") == "string"
            and not {"pattern", "format", "enum"} & ret.keys()):
        return {"pattern": f"^[^{CONTROL_CHARS}]*$"}
    return {}


# "null" in OpenAPI 3.0, which has no null type.
NULL: dict[str, Any] = {"type": "object", "nullable": True, "enum": [None]}


def _own_schema(self: Any, field: fields.Field, ret: dict[str, Any], **kwargs: Any
                ) -> dict[str, Any]:
    """A field type that knows what it accepts better than its base class says (Money: text
    or a number; Moment: a bounded year) describes itself with `openapi()`, which replaces
    the type apispec derived."""
    describe = getattr(field, "openapi", None)
    if not callable(describe):
        return {}
    for key in ("type", "format", "pattern"):
        ret.pop(key, None)
    own = dict(describe())
    if "anyOf" in own and ret.pop("nullable", False):
        own["anyOf"] = [*own["anyOf"], NULL]  # `nullable` beside anyOf says nothing
    return own


class Converter(OpenAPIConverter):
    def schema2jsonschema(self, schema: Any) -> dict[str, Any]:
        # A rule between fields that a schema's @validates_schema enforces is stated beside
        # it as `Meta.openapi` (JSON Schema keywords), so the document carries it too.
        ret: dict[str, Any] = super().schema2jsonschema(schema)
        ret.update(getattr(getattr(schema, "Meta", None), "openapi", {}))
        return ret

    def field2nullable(self, field: fields.Field, ret: dict[str, Any]) -> dict[str, Any]:
        # apispec says a nullable nested object (OpenAPI 3.0) is "any object, or the schema",
        # which lets a client send `{}` where the server wants the nested schema; say "null,
        # or the schema" instead.
        attributes: dict[str, Any] = super().field2nullable(field, ret)
        if "anyOf" in attributes:
            attributes["anyOf"] = [
                NULL if branch == {"type": "object", "nullable": True} else branch
                for branch in attributes["anyOf"]
            ]
        return attributes


class _MarshmallowPlugin(MarshmallowPlugin):
    Converter = Converter


class StandardErrors(BasePlugin):
    def init_spec(self, spec: Any) -> None:
        self.spec = spec

    def _optional_if_nothing_required(self, body: dict[str, Any]) -> None:
        """webargs reads a missing JSON body as `{}`: a body schema with no required field
        may be left out (POST …/cancel with no reason), one with a required field may not."""
        content = body.get("content", {})
        if list(content) != ["application/json"]:
            return
        ref = content["application/json"].get("schema", {}).get("$ref", "")
        schema = self.spec.components.schemas.get(ref.rsplit("/", 1)[-1])
        if schema is not None and not schema.get("required"):
            body["required"] = False

    """The error answers every operation can give, whatever its view does, named in the
    document beside the ones its decorators declare (API.md, "Status use"):
    401/403 where a token is required (guards._require_login, points.scope), 404 where the
    path names an object, 400 (malformed JSON) and 409 (conflict, idempotency) on writes with
    a body, 422 everywhere (guards._refuse_bad_text looks at every query string)."""

    def operation_helper(self, path: str | None = None,
                         operations: dict[str, Any] | None = None, **kwargs: Any) -> None:
        for method, operation in (operations or {}).items():
            # Decorators key responses by int, the document by string: one key per status.
            responses = {str(code): r for code, r in operation.get("responses", {}).items()}
            operation["responses"] = responses
            security = operation.get("security")
            if security != []:
                responses.setdefault("401", "UNAUTHORIZED")
                responses.setdefault("403", "FORBIDDEN")
            if path and "{" in path:
                responses.setdefault("404", "NOT_FOUND")
            if method in ("post", "put", "patch", "delete"):
                responses.setdefault("409", "CONFLICT")
                if "requestBody" in operation:
                    responses.setdefault("400", "BAD_REQUEST")
                    self._optional_if_nothing_required(operation["requestBody"])
            responses.setdefault("422", "UNPROCESSABLE_ENTITY")


# Response schemas of operations that answer with a file or a page rather than JSON.
BINARY: dict[str, Any] = {"type": "string", "format": "binary"}
TEXT: dict[str, Any] = {"type": "string"}

class VillageApi(Api):
    ERROR_SCHEMA = ErrorSchema

    def _init_spec(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("marshmallow_plugin", _MarshmallowPlugin())
        kwargs.setdefault("extra_plugins", [StandardErrors()])
        super()._init_spec(*args, **kwargs)
        self.ma_plugin.converter.add_attribute_function(_text_pattern)
        self.ma_plugin.converter.add_attribute_function(_own_schema)

    def handle_http_exception(self, error: HTTPException) -> Response:  # type: ignore[override]
        from .errors import handle_http_exception

        return handle_http_exception(error)


class JsonBoolean(fields.Boolean):
    """A boolean of a JSON body: `true` or `false`, as the document says. (marshmallow's
    Boolean also takes 1, "yes", "on"…, which a query string needs and a body does not.)"""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):  # 0 == False and 1 == True, so a set cannot tell
            raise self.make_error("invalid", input=value)
        return value


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
