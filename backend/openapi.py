"""flask-smorest set-up: the schemas that validate requests are the ones that document them,
so the OpenAPI document cannot drift from the code. One error shape: docs/API_CONTRACT.md."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from apispec import APISpec, BasePlugin
from apispec.ext.marshmallow import MarshmallowPlugin, OpenAPIConverter
from flask import Response
from flask_smorest import Api, Blueprint
from marshmallow import EXCLUDE, Schema, fields, validate
from sqlalchemy import Select, select, union_all
from sqlalchemy.orm import InstrumentedAttribute, Session
from werkzeug.exceptions import HTTPException

from points.counting import COUNT_CAP, Count, capped_count
from points.errors import DomainError
from points.scope import Actor, township_village_ids
from points.sessions import AccountDisabled, TokenExpired, TokenInvalid, TokenRevoked

from .errors import CONTROL_CHARS, HTTP_ERRORS, MALFORMED_JSON, handle_http_exception
from .errors import DATABASE_UNAVAILABLE as UNAVAILABLE
from .errors import INVALID_TEXT as TEXT_REFUSED

F = TypeVar("F", bound=Callable[..., Any])


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
def _text_pattern(
    self: Any, field: fields.Field, ret: dict[str, Any], **kwargs: Any
) -> dict[str, Any]:
    if (
        isinstance(field, fields.String)
        and ret.get("type") == "string"
        and not {"pattern", "format", "enum"} & ret.keys()
    ):
        return {"pattern": f"^[^{CONTROL_CHARS}]*$"}
    return {}


# "null" in OpenAPI 3.0, which has no null type.
NULL: dict[str, Any] = {"type": "object", "nullable": True, "enum": [None]}


def _own_schema(
    self: Any, field: fields.Field, ret: dict[str, Any], **kwargs: Any
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


# The fields a schema always writes when it answers (see `ContractSpec`): a vendor key of
# the converted schema, turned into `required` for the schemas a response uses and removed
# before the document is served.
ANSWERED = "x-answered"


def optional(**metadata: Any) -> dict[str, Any]:
    """`metadata=` of a response field a response may leave out (absent, not null): the one
    exception to "every field of a response is required"."""
    return {**metadata, "optional": True}


class Converter(OpenAPIConverter):
    def schema2jsonschema(self, schema: Any) -> dict[str, Any]:
        # A rule between fields that a schema's @validates_schema enforces is stated beside
        # it as `Meta.openapi` (JSON Schema keywords), so the document carries it too.
        ret: dict[str, Any] = super().schema2jsonschema(schema)
        ret.update(getattr(getattr(schema, "Meta", None), "openapi", {}))
        instance = schema() if isinstance(schema, type) else schema
        ret[ANSWERED] = [
            field.data_key or name
            for name, field in instance.fields.items()
            if not field.load_only and not field.metadata.get("optional")
        ]
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


# ---- errors ---------------------------------------------------------------------------------
# An error an operation may answer: (status, code, Chinese message). `raises` declares the
# ones its view (and the services it calls) raise; `StandardErrors` adds the ones every
# operation of a kind can give. The document lists them per status, each with an example.
Declared = tuple[int, str, str]
Declarable = type[DomainError] | DomainError | tuple[int, str] | tuple[int, str, str]

RAISES = "x-raises"


def declared(error: Declarable) -> Declared:
    if isinstance(error, tuple):
        status, code, *message = error
        return status, code, message[0] if message else ""
    return error.status, error.code, error.message


def _domain_messages() -> dict[tuple[int, str], str]:
    """The message of each domain error class, by (status, code): the example of a code
    declared as a tuple."""
    found: dict[tuple[int, str], str] = {}
    todo: list[type[DomainError]] = [DomainError]
    while todo:
        cls = todo.pop()
        found.setdefault((cls.status, cls.code), cls.message)
        todo.extend(cls.__subclasses__())
    return found


def raises(*errors: Declarable) -> Callable[[F], F]:
    """Declare, under `@blp.route`, the errors a view answers beside the common ones: domain
    error classes (their status, code and message), or `(status, code[, message])` for a code
    raised inline (`Invalid(..., code="invalid_units")`)."""
    doc = {RAISES: {f"{status} {code}": message for status, code, message in map(declared, errors)}}
    return Blueprint.doc(**doc)


def _http(status: int) -> Declared:
    return (status, *HTTP_ERRORS[status])


# The 401s of a bearer token (points.sessions); a refresh token's reuse is the refresh's own.
TOKEN_ERRORS: tuple[Declared, ...] = (
    _http(401),
    *(declared(e) for e in (TokenInvalid, TokenExpired, TokenRevoked, AccountDisabled)),
)
INVALID_TEXT: Declared = (422, *TEXT_REFUSED)
UNKNOWN_FIELDS: Declared = (422, "unknown_fields", "包含不支持的字段")
VALUE_OUT_OF_RANGE: Declared = (422, "value_out_of_range", "提交的数值超出允许范围")
INTERNAL_ERROR: Declared = (500, "internal_error", "服务器出错了，请稍后再试")
DATABASE_UNAVAILABLE: Declared = (503, *UNAVAILABLE)
ERROR_REF = {"$ref": "#/components/schemas/Error"}


def common_errors(method: str, path: str, operation: dict[str, Any]) -> list[Declared]:
    """What any operation of its kind may answer, whatever its view does: 401/403 where a
    token is sent (guards._require_login, points.scope), 404 where the path names an object,
    400 (malformed JSON), 413 and 409 (a unique constraint settling a race) on writes, 422
    everywhere (guards._refuse_bad_text reads every query string), 500 and 503 (the database
    unreachable) everywhere. A 429 is declared by `ratelimits.limited`, where a limit is."""
    errors: list[Declared] = [
        _http(422),
        UNKNOWN_FIELDS,
        INVALID_TEXT,
        INTERNAL_ERROR,
        DATABASE_UNAVAILABLE,
    ]
    if operation.get("security") != []:
        errors += [*TOKEN_ERRORS, _http(403)]
    if "{" in path:
        errors.append(_http(404))
    if method in ("post", "put", "patch", "delete"):
        errors.append(_http(409))
        if "requestBody" in operation:
            # value_out_of_range: a number the column cannot hold (errors._data_error)
            errors += [_http(400), (400, *MALFORMED_JSON), _http(413), VALUE_OUT_OF_RANGE]
    return errors


def error_response(errors: list[Declared], headers: dict[str, Any] | None) -> dict[str, Any]:
    codes = list(dict.fromkeys(code for _, code, _ in errors))
    messages = {code: message for _, code, message in reversed(errors)}
    response: dict[str, Any] = {
        "description": "error codes: " + ", ".join(f"`{code}`" for code in codes),
        "content": {
            "application/json": {
                "schema": ERROR_REF,
                "examples": {
                    code: {
                        "summary": messages[code],
                        "value": {
                            "error": {"code": code, "message": messages[code], "details": {}}
                        },
                    }
                    for code in codes
                },
            }
        },
    }
    if headers:
        response["headers"] = headers
    return response


class StandardErrors(BasePlugin):
    """Per operation: an `operationId` (its view's name, which is unique: a test says so),
    and every error it may answer, by status, with its codes and an example of each."""

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

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        rule = kwargs.get("rule")
        for method, operation in (operations or {}).items():
            if rule is not None:
                operation.setdefault("operationId", rule.endpoint.rsplit(".", 1)[-1])
            # Decorators key responses by int, the document by string: one key per status.
            responses = {str(code): r for code, r in operation.get("responses", {}).items()}
            operation["responses"] = responses
            if method in ("post", "put", "patch", "delete") and "requestBody" in operation:
                self._optional_if_nothing_required(operation["requestBody"])
            errors = common_errors(method, path or "", operation)
            messages = _domain_messages()
            for key, message in operation.pop(RAISES, {}).items():
                status, code = int(key.split()[0]), key.split()[1]
                errors.append(
                    (
                        status,
                        code,
                        message
                        or messages.get(
                            (status, code), HTTP_ERRORS.get(status, ("", "请求失败"))[1]
                        ),
                    )
                )
            by_status: dict[int, list[Declared]] = {}
            for error in errors:
                by_status.setdefault(error[0], []).append(error)
            for status, listed in sorted(by_status.items()):
                given = responses.get(str(status))
                if isinstance(given, dict) and "application/json" not in given.get(
                    "content", {"application/json": None}
                ):
                    continue  # a page or a file answers this status, not the error shape
                headers = given.get("headers") if isinstance(given, dict) else None
                responses[str(status)] = error_response(listed, headers)


class ContractSpec(APISpec):
    """The served document: every response schema names its `required` fields (all but
    those declared `optional`), so a generated client can trust them."""

    def to_dict(self) -> dict[str, Any]:
        # apispec hands out its own dicts, whose schemas must keep ANSWERED for the next call
        # (the document is built again on every request for it): a copy of the schemas'
        # dicts only, which is all this changes (a deep copy of the whole document cost a
        # worker some 10 MB at its peak).
        document: dict[str, Any] = dict(super().to_dict())
        components = document["components"] = dict(document.get("components", {}))
        schemas = components["schemas"] = {
            name: dict(schema) for name, schema in components.get("schemas", {}).items()
        }
        for name in _referenced(document.get("paths", {}), schemas, "responses"):
            answered = schemas[name].get(ANSWERED, [])
            if answered:
                schemas[name]["required"] = sorted(
                    set(schemas[name].get("required", [])) | set(answered),
                    key=list(schemas[name].get("properties", {})).index,
                )
        for schema in schemas.values():
            schema.pop(ANSWERED, None)
        return document


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            yield ref.rsplit("/", 1)[-1]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _referenced(paths: dict[str, Any], schemas: dict[str, Any], part: str) -> set[str]:
    """The component schemas the operations' `part` (responses) use, nested ones included."""
    roots = [
        operation.get(part, {})
        for item in paths.values()
        for operation in item.values()
        if isinstance(operation, dict)
    ]
    found: set[str] = set()
    todo = list(_refs(roots))
    while todo:
        name = todo.pop()
        if name not in found and name in schemas:
            found.add(name)
            todo.extend(_refs(schemas[name]))
    return found


# Response schemas of operations that answer with a file or a page rather than JSON.
BINARY: dict[str, Any] = {"type": "string", "format": "binary"}
TEXT: dict[str, Any] = {"type": "string"}


class VillageApi(Api):
    ERROR_SCHEMA = ErrorSchema

    def _init_spec(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("marshmallow_plugin", _MarshmallowPlugin())
        kwargs.setdefault("extra_plugins", [StandardErrors()])
        super()._init_spec(*args, **kwargs)
        self.spec.__class__ = ContractSpec  # flask-smorest builds a plain APISpec
        self.ma_plugin.converter.add_attribute_function(_text_pattern)
        self.ma_plugin.converter.add_attribute_function(_own_schema)

    def handle_http_exception(self, error: HTTPException) -> Response:
        return handle_http_exception(error)


class JsonBoolean(fields.Boolean):
    """A boolean of a JSON body: `true` or `false`, as the document says. (marshmallow's
    Boolean also takes 1, "yes", "on"…, which a query string needs and a body does not.)"""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):  # 0 == False and 1 == True, so a set cannot tell
            raise self.make_error("invalid", input=value)
        return value


def Choice(values: tuple[str, ...], **kwargs: Any) -> fields.String:  # noqa: N802 - a field
    """A string of a closed set of the domain (a tuple in points/ or rules/, never a copy):
    an `enum` in the document, so a generated client gets a union of literals."""
    return fields.String(validate=validate.OneOf(values), **kwargs)


class QueryArgs(Schema):
    class Meta:
        # A query string may carry cache busters from the mini-program; bodies stay strict.
        unknown = EXCLUDE


class PageArgs(QueryArgs):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    per_page = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


# ---- pages ----------------------------------------------------------------------------------
# A list counts at most PAGE_CAP rows, and pages no deeper: past that an offset and a count
# cost as much as the list is long (a county's claims and audit lines run to millions), and
# nobody reads the ten-thousandth claim by paging; a filter (village, month, status) finds it.
PAGE_CAP = COUNT_CAP


class PageTooDeep(DomainError):
    """A page starting past the first PAGE_CAP rows of a list (docs/API_CONTRACT.md, Pages)."""

    status = 400
    code = "page_too_deep"
    message = f"列表太长，只能往后翻到第 {PAGE_CAP} 条；请按村、月份或状态筛选后再查看"


PAGE_TOO_DEEP: Declared = declared(PageTooDeep)

_page_schemas: dict[str, type[Schema]] = {}


def page_of(item: type[Schema]) -> type[Schema]:
    """A `{"items", "page", "per_page", "total", "total_exact"}` schema around an item schema.
    `total_exact` is false when the list is longer than PAGE_CAP (`total` is then the cap);
    a page made elsewhere than `paginate` (the passbook) counts exactly and need not say so."""
    name = item.__name__.removesuffix("Schema") + "Page"
    if name not in _page_schemas:
        _page_schemas[name] = Schema.from_dict(
            {
                "items": fields.List(fields.Nested(item), required=True),
                "page": fields.Integer(required=True),
                "per_page": fields.Integer(required=True),
                "total": fields.Integer(
                    required=True,
                    metadata={"description": f"the rows of the list, counted up to {PAGE_CAP}"},
                ),
                "total_exact": fields.Boolean(
                    required=True,
                    dump_default=True,
                    metadata={
                        "description": f"false: the list has more than {PAGE_CAP} rows and "
                        "`total` is that cap; narrow it with a filter to see them all"
                    },
                ),
            },
            name=name,
        )
    return _page_schemas[name]


def paginate(
    session: Session,
    stmt: Select[Any],
    page: int,
    per_page: int,
    *,
    key: InstrumentedAttribute[int] | None = None,
    parts: Parts | None = None,
) -> dict[str, Any]:
    """One page of `stmt` (ordered), with the list's length counted up to PAGE_CAP. A page
    starting past the cap is refused (400 `page_too_deep`) before anything is read; a page
    that shows the list's end (fewer rows than `per_page`) needs no count at all.

    `key`, for a long table listed newest first (`ORDER BY key DESC`): the page's keys are
    read first, from an index that covers the filters where there is one, then only the page's
    rows, instead of every skipped row. `parts` (a column and its values, e.g. a township's
    villages) reads the keys of each part newest first and merges them, so that the page
    costs the rows it skips whichever part holds the newest ones."""
    offset = (page - 1) * per_page
    if offset >= PAGE_CAP:
        raise PageTooDeep(details={"cap": PAGE_CAP, "last_page": -(-PAGE_CAP // per_page)})
    limit = min(per_page, PAGE_CAP - offset)  # the cap's last page may be a short one
    if key is None:
        items = session.scalars(stmt.limit(limit).offset(offset)).all()
    else:
        keys = _page_keys(session, stmt, key, parts, limit, offset)
        found = {getattr(row, key.key): row for row in session.scalars(stmt.where(key.in_(keys)))}
        items = [found[k] for k in keys if k in found]
    if len(items) < limit and (items or offset == 0):
        total = Count(offset + len(items))  # this page shows the list's end
    else:
        # Any PAGE_CAP + 1 rows tell "more than the cap", read in no order (an index-only
        # scan where an index covers the filters).
        total = capped_count(session, stmt, PAGE_CAP)
    return {
        "items": items,
        "page": page,
        "per_page": per_page,
        "total": total.value,
        "total_exact": total.exact,
    }


Parts = tuple[InstrumentedAttribute[int], Sequence[int]]


def township_parts(
    session: Session, actor: Actor, village: InstrumentedAttribute[int], narrowed: bool
) -> Parts | None:
    """`paginate`'s `parts` for a township admin's list, read village by village by
    `village`; None for any other role, or when a filter (`narrowed`) already confines the
    list to one village, household or shop."""
    villages = None if narrowed else township_village_ids(session, actor)
    return (village, villages) if villages else None


def _page_keys(
    session: Session,
    stmt: Select[Any],
    key: InstrumentedAttribute[int],
    parts: Parts | None,
    limit: int,
    offset: int,
) -> list[int]:
    keys = stmt.with_only_columns(key).order_by(None).order_by(key.desc())
    if parts is None or len(parts[1]) < 2:
        return list(session.scalars(keys.limit(limit).offset(offset)))
    column, values = parts
    # Each part's newest offset + limit keys (an index on (column, …, key) serves each in
    # order), merged newest first: PostgreSQL merges the ordered parts (Merge Append).
    # (Each part is a subquery of its own: SQLite takes no LIMIT inside a UNION's member.)
    branches = []
    for value in values:
        part = keys.where(column == value).limit(offset + limit).subquery()
        branches.append(select(part.c[0]))
    merged = union_all(*branches).subquery()
    newest = select(merged.c[0]).order_by(merged.c[0].desc()).limit(limit).offset(offset)
    return list(session.scalars(newest))
