"""Request checks that hold for every endpoint, so no schema can forget them."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask, request
from werkzeug.routing import IntegerConverter

from .errors import APIError

# NUL and other C0 controls (but tab and newlines) and lone surrogates: PostgreSQL cannot
# store them, UTF-8 cannot encode them, and no villager types them.
_BAD_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
MAX_ID = 2**31 - 1  # PostgreSQL integer


class IdConverter(IntegerConverter):
    """`<int:id>` bounded to what a database id can be: a larger one is simply not found."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:  # noqa: A002
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def _bad_text(value: Any) -> bool:
    if isinstance(value, str):
        return bool(_BAD_TEXT.search(value))
    if isinstance(value, dict):
        return any(_bad_text(k) or _bad_text(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_bad_text(v) for v in value)
    return False


def _refuse_bad_text() -> None:
    values: list[Any] = list(request.args.values())
    if request.is_json:
        values.append(request.get_json(silent=True))
    if request.form:
        values.extend(request.form.values())
    if any(_bad_text(v) for v in values):
        raise APIError(422, "invalid_text", "内容包含无法识别的字符，请检查后重新输入")


def register(app: Flask) -> None:
    app.url_map.converters["int"] = IdConverter
    app.before_request(_refuse_bad_text)
