"""One error shape for every response: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask, Response, jsonify
from flask_limiter.errors import RateLimitExceeded
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.exc import DataError, IntegrityError, InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

from points.errors import DomainError
from rules import excerpt


class APIError(Exception):
    """An error raised by the HTTP layer with its status, stable code and Chinese message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    response = jsonify(error_body(code, message, details))
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


# A body that is not JSON, or nested deeper than any request of the API (jsonio.MAX_DEPTH).
MALFORMED_JSON = ("malformed_json", "请求内容不是有效的 JSON")

# A text that holds NUL or another C0 control (but tab and newlines), or a lone surrogate:
# PostgreSQL cannot store them, UTF-8 cannot encode them, and no villager types them. Refused
# in every request by guards.py; the OpenAPI document states the pattern on every string.
CONTROL_CHARS = r"\x00-\x08\x0b\x0c\x0e-\x1f"
INVALID_TEXT = ("invalid_text", "内容包含无法识别的字符，请检查后重新输入")

# The database cannot be reached (down, restarting, the network): a 503 the client may retry,
# not a 500 that says the server is broken.
DATABASE_UNAVAILABLE = ("database_unavailable", "服务暂时不可用，请稍后再试")


def unreachable_database(error: Exception) -> bool:
    """A connection that failed or broke, as opposed to a statement the database refused (a
    lock timeout, a serialization failure: OperationalErrors too, but with their statement,
    on a live connection). A failed connect has no statement."""
    if not isinstance(error, OperationalError | InterfaceError):
        return False
    return bool(error.connection_invalidated) or error.statement is None


# Chinese messages for the HTTP errors Flask raises itself.
HTTP_ERRORS: dict[int, tuple[str, str]] = {
    400: ("bad_request", "请求格式不正确"),
    401: ("unauthenticated", "请先登录"),
    403: ("forbidden", "您没有权限进行此操作"),
    404: ("not_found", "未找到该记录"),
    405: ("method_not_allowed", "不支持该请求方法"),
    409: ("conflict", "与现有记录冲突"),
    413: ("payload_too_large", "上传的内容太大"),
    415: ("unsupported_media_type", "不支持的内容类型"),
    422: ("validation_error", "提交的内容不符合要求"),
    429: ("rate_limited", "操作太频繁，请稍后再试"),
}


def _unknown_fields(errors: dict[Any, Any], prefix: str = "") -> list[str]:
    """Names of the unknown fields, nested ones as a path ("items.0.points"): a field
    smuggled into a list item is as unknown as one at the top."""
    found = []
    for name, errs in errors.items():
        path = f"{prefix}{name}"
        if isinstance(errs, list) and "Unknown field." in errs:
            found.append(path)
        elif isinstance(errs, dict):
            found.extend(_unknown_fields(errs, f"{path}."))
    return found


# marshmallow's and webargs' own messages, in Chinese: every 422 a villager or clerk reads is
# Chinese, whichever schema or validator refused the value. Messages a schema words itself
# (backend/schemas/) are Chinese already and pass through unchanged.
_MESSAGES: dict[str, str] = {
    "Missing data for required field.": "缺少必填字段",
    "Field may not be null.": "不能为空",
    "Invalid value.": "取值无效",
    "Invalid input.": "取值无效",
    "Invalid type.": "类型不正确",
    "Invalid input type.": "类型不正确",
    "Unknown field.": "不支持的字段",
    "Not a valid string.": "应为文字",
    "Not a valid utf-8 string.": "应为 UTF-8 文字",
    "Not a valid integer.": "应为整数",
    "Not a valid number.": "应为数字",
    "Number too large.": "数值太大",
    "Special numeric values (nan or infinity) are not permitted.": "不能是 NaN 或无穷大",
    "Not a valid boolean.": "应为 true 或 false",
    "Not a valid datetime.": "应为日期时间，如 2026-01-01T08:00:00+08:00",
    "Not a valid date.": "应为日期，如 2026-01-01",
    "Not a valid time.": "应为时间，如 08:00:00",
    "Not a valid period of time.": "应为时长",
    "Not a valid list.": "应为列表",
    "Not a valid tuple.": "应为列表",
    "Not a valid mapping type.": "应为键值对象",
    "Not a valid email address.": "应为有效的电子邮箱",
    "Not a valid URL.": "应为有效的网址",
    "Not a valid UUID.": "应为有效的 UUID",
    "String does not match expected pattern.": "格式不正确",
    "Field cannot be blank.": "不能为空",
}
# Messages with values in them (the validators'); the values are kept.
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(pattern), chinese)
    for pattern, chinese in (
        (r"Length must be between (\S+) and (\S+)\.", r"长度应在 \1 到 \2 之间"),
        (r"Length must be (\S+)\.", r"长度应为 \1"),
        (r"Shorter than minimum length (\S+)\.", r"长度不能少于 \1"),
        (r"Longer than maximum length (\S+)\.", r"长度不能超过 \1"),
        (
            r"Must be greater than or equal to (\S+) and less than or equal to (\S+)\.",
            r"应在 \1 到 \2 之间",
        ),
        (r"Must be greater than (\S+) and less than (\S+)\.", r"应大于 \1 且小于 \2"),
        (
            r"Must be greater than or equal to (\S+) and less than (\S+)\.",
            r"应大于等于 \1 且小于 \2",
        ),
        (
            r"Must be greater than (\S+) and less than or equal to (\S+)\.",
            r"应大于 \1 且小于等于 \2",
        ),
        (r"Must be greater than or equal to (\S+)\.", r"不能小于 \1"),
        (r"Must be less than or equal to (\S+)\.", r"不能大于 \1"),
        (r"Must be greater than (\S+)\.", r"应大于 \1"),
        (r"Must be less than (\S+)\.", r"应小于 \1"),
        (r"Must be one of: (.*)\.", r"应为以下之一：\1"),
        (r"Must be equal to (.*)\.", r"应等于 \1"),
        (r"One or more of the choices you made was not in: (.*)\.", r"只能从以下选择：\1"),
        (r"One or more of the choices you made was in: (.*)\.", r"不能选择：\1"),
        (r"Not a valid (.+)\.", r"格式不正确（应为 \1）"),
        (r".* cannot be formatted as an? (.+)\.", r"无法按 \1 格式处理"),
    )
]


def chinese_message(message: str) -> str:
    """One of marshmallow's English messages in Chinese; any other text as it is."""
    if message in _MESSAGES:
        return _MESSAGES[message]
    for pattern, chinese in _PATTERNS:
        if pattern.fullmatch(message):
            return pattern.sub(chinese, message)
    return message


def chinese_messages(errors: Any) -> Any:
    """A marshmallow error tree ({field: [msgs]}, nested dicts, list indexes) in Chinese."""
    if isinstance(errors, str):
        return chinese_message(errors)
    if isinstance(errors, dict):
        return {key: chinese_messages(value) for key, value in errors.items()}
    if isinstance(errors, list | tuple):
        return [chinese_messages(value) for value in errors]
    return errors


def _validation_details(messages: Any) -> tuple[str, str, dict[str, Any]]:
    """Turn webargs' {location: {field: [msgs]}} into our code, message and details."""
    fields: dict[str, Any] = {}
    if isinstance(messages, dict):
        for location_errors in messages.values():
            if isinstance(location_errors, dict):
                fields.update(location_errors)
    # A field name is the client's text: quoted, it is cut like any other echo.
    unknown = sorted(excerpt(name) for name in _unknown_fields(fields))
    if unknown:
        return "unknown_fields", "包含不支持的字段：" + "、".join(unknown), {"fields": unknown}
    return "validation_error", "提交的内容不符合要求", {"fields": chinese_messages(fields)}


def handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    code, message = HTTP_ERRORS.get(status, ("http_error", "请求失败"))
    details: dict[str, Any] = {}
    headers: dict[str, str] = {}
    data = getattr(error, "data", None) or {}
    if status == 422 and "messages" in data:
        code, message, details = _validation_details(data["messages"])
    elif status == 400 and "messages" in data:
        code, message = MALFORMED_JSON
    if status == 405 and error.valid_methods:  # type: ignore[attr-defined]
        headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
    # A breached limit's Retry-After (the seconds left in its window) is added by
    # Flask-Limiter's after-request hook; presetting one here would override it, since the
    # hook keeps the later of the two times (ratelimits.retry_after_floor keeps it >= 1).
    if status == 429 and not isinstance(error, RateLimitExceeded):
        retry = getattr(error, "retry_after", None)
        headers["Retry-After"] = str(retry or 60)
    for key, value in (data.get("headers") or {}).items():
        headers[key] = value
    response = error_response(status, code, message, details, headers)
    # Keep the headers the exception's own response carries (TooManyRequests(retry_after=…)).
    original = error.get_response()
    for key in ("Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
        if key in original.headers:
            response.headers[key] = original.headers[key]
    return response


def register_error_handlers(app: Flask, db: SQLAlchemy) -> None:
    """Answer every error in the one shape; `db` (extensions.db, passed in so this module stays
    below the extensions) is rolled back first, as an error changes nothing."""

    @app.errorhandler(APIError)
    def _api_error(error: APIError) -> Response:
        return error_response(error.status, error.code, error.message, error.details, error.headers)

    @app.errorhandler(DomainError)
    def _domain_error(error: DomainError) -> Response:
        db.session.rollback()  # an error changes nothing
        return error_response(error.status, error.code, error.message, error.details)

    @app.errorhandler(IntegrityError)
    def _integrity_error(error: IntegrityError) -> Response:
        # A unique constraint settled a race that the service's own check could not see.
        db.session.rollback()
        return error_response(409, "conflict", "与现有记录冲突，请刷新后重试")

    @app.errorhandler(DataError)
    def _data_error(error: DataError) -> Response:
        # A value the column cannot hold (a number past its range) is the client's mistake.
        db.session.rollback()
        return error_response(422, "value_out_of_range", "提交的数值超出允许范围")

    @app.errorhandler(OverflowError)
    def _overflow(error: OverflowError) -> Response:
        db.session.rollback()
        return error_response(422, "value_out_of_range", "提交的数值超出允许范围")

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        if isinstance(error, HTTPException):
            return handle_http_exception(error)
        if unreachable_database(error):
            app.logger.error("database unreachable: %s", type(error.__cause__ or error).__name__)
            try:
                db.session.rollback()
            except (OperationalError, InterfaceError):
                pass  # nothing was written on a connection that never opened
            return error_response(503, *DATABASE_UNAVAILABLE)
        db.session.rollback()
        app.logger.exception("unhandled error")
        return error_response(500, "internal_error", "服务器出错了，请稍后再试")
